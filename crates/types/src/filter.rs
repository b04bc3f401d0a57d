//! EC2-style filters: `Filter.N.Name` / `Filter.N.Value.M`, values with `*`/`?` wildcards.
//! Values of one filter are ORed; filters are ANDed.

use crate::wildcard_match;
use serde_json::Value;

/// One filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

/// Read the `Filters` member of an input value (`[{"Name": .., "Values": [..]}]`).
pub fn from_value(v: Option<&Value>) -> Vec<Filter> {
    let Some(Value::Array(items)) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|f| {
            let name = f.get("Name")?.as_str()?.to_string();
            let values = f
                .get("Values")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Some(Filter { name, values })
        })
        .collect()
}

/// Whether a resource passes every filter. `field(name)` gives the resource's values for a
/// filter name (`None` when the filter name is unknown for this resource: the caller decides
/// beforehand whether that is an error).
pub fn matches(filters: &[Filter], field: impl Fn(&str) -> Option<Vec<String>>) -> bool {
    filters.iter().all(|f| {
        let Some(have) = field(&f.name) else {
            return false;
        };
        f.values
            .iter()
            .any(|want| have.iter().any(|h| wildcard_match(want, h)))
    })
}

/// Values of the `tag:Key` and `tag-key`/`tag-value` filters for a resource with `tags`.
pub fn tag_field(name: &str, tags: &[(String, String)]) -> Option<Vec<String>> {
    if let Some(key) = name.strip_prefix("tag:") {
        return Some(
            tags.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect(),
        );
    }
    match name {
        "tag-key" => Some(tags.iter().map(|(k, _)| k.clone()).collect()),
        "tag-value" => Some(tags.iter().map(|(_, v)| v.clone()).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn and_of_ors() {
        let f = from_value(Some(&json!([
            {"Name": "instance-state-name", "Values": ["running", "pending"]},
            {"Name": "tag:Name", "Values": ["web-*"]}
        ])));
        let tags = vec![("Name".to_string(), "web-1".to_string())];
        let field = |n: &str| match n {
            "instance-state-name" => Some(vec!["running".to_string()]),
            other => tag_field(other, &tags),
        };
        assert!(matches(&f, field));
        let field2 = |n: &str| match n {
            "instance-state-name" => Some(vec!["stopped".to_string()]),
            other => tag_field(other, &tags),
        };
        assert!(!matches(&f, field2));
    }
}
