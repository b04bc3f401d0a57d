//! Tags: validation as AWS applies it, and conversion from the shapes services use.

use serde_json::Value;

/// A tag problem, worded as AWS words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("Tag keys must be between 1 and 128 characters, got {0} characters")]
    KeyLength(usize),
    #[error("Tag values must be at most 256 characters, got {0} characters")]
    ValueLength(usize),
    #[error("Tag keys starting with 'aws:' are reserved for internal use")]
    Reserved,
    #[error("Too many tags: at most 50 are allowed, got {0}")]
    TooMany(usize),
}

/// Check one tag.
pub fn validate(key: &str, value: &str) -> Result<(), TagError> {
    let kl = key.chars().count();
    if kl == 0 || kl > 128 {
        return Err(TagError::KeyLength(kl));
    }
    let vl = value.chars().count();
    if vl > 256 {
        return Err(TagError::ValueLength(vl));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(TagError::Reserved);
    }
    Ok(())
}

/// Check a whole tag set.
pub fn validate_all(tags: &[(String, String)]) -> Result<(), TagError> {
    if tags.len() > 50 {
        return Err(TagError::TooMany(tags.len()));
    }
    tags.iter().try_for_each(|(k, v)| validate(k, v))
}

/// Read a `[{"Key": .., "Value": ..}]` list (EC2, IAM, autoscaling style).
pub fn from_list(v: Option<&Value>) -> Vec<(String, String)> {
    let Some(Value::Array(items)) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|t| {
            let k = t.get("Key")?.as_str()?.to_string();
            let v = t
                .get("Value")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            Some((k, v))
        })
        .collect()
}

/// Read a `{"key": "value"}` map (Lambda, Logs, ECR style).
pub fn from_map(v: Option<&Value>) -> Vec<(String, String)> {
    let Some(Value::Object(m)) = v else {
        return Vec::new();
    };
    m.iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect()
}

/// Tags of `TagSpecifications` that apply to `resource_type` (EC2 `RunInstances`, ...).
pub fn from_specifications(v: Option<&Value>, resource_type: &str) -> Vec<(String, String)> {
    let Some(Value::Array(specs)) = v else {
        return Vec::new();
    };
    specs
        .iter()
        .filter(|s| s.get("ResourceType").and_then(Value::as_str) == Some(resource_type))
        .flat_map(|s| from_list(s.get("Tags")))
        .collect()
}

/// Insert or replace tags.
pub fn merge(into: &mut Vec<(String, String)>, new: &[(String, String)]) {
    for (k, v) in new {
        match into.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => into.push((k.clone(), v.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn specs_and_validation() {
        let v = json!([{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]},
                       {"ResourceType": "volume", "Tags": [{"Key": "x", "Value": "y"}]}]);
        assert_eq!(
            from_specifications(Some(&v), "instance"),
            vec![("Name".into(), "web".into())]
        );
        assert!(validate(&"k".repeat(129), "v").is_err());
        assert!(validate("aws:x", "v").is_err());
        assert!(validate("k", &"v".repeat(256)).is_ok());
        let mut t = vec![("a".to_string(), "1".to_string())];
        merge(
            &mut t,
            &[("a".into(), "2".into()), ("b".into(), "3".into())],
        );
        assert_eq!(t, vec![("a".into(), "2".into()), ("b".into(), "3".into())]);
    }
}
