//! Policy document checks, with the messages IAM answers `MalformedPolicyDocument` with.

use super::util::malformed_policy;
use fc_protocol::ApiError;
use serde_json::Value;

/// Which grammar a document follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// Managed and inline identity policies: no `Principal`, `Resource` required.
    Identity,
    /// Role trust policies: `Principal` required, no `Resource`.
    Trust,
    /// STS session policies: like identity policies.
    Session,
}

/// Check `doc`; returns the parsed document.
pub fn validate(doc: &str, kind: DocKind) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_str(doc)
        .map_err(|_| malformed_policy("This policy contains invalid Json"))?;
    let Value::Object(obj) = &v else {
        return Err(malformed_policy("This policy contains invalid Json"));
    };
    for k in obj.keys() {
        if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
            return Err(malformed_policy(format!(
                "Syntax errors in policy. Unknown field {k}"
            )));
        }
    }
    match obj.get("Version") {
        None => {}
        Some(Value::String(s)) if s == "2012-10-17" || s == "2008-10-17" => {}
        Some(_) => return Err(malformed_policy("The policy failed legacy parsing")),
    }
    let statements: Vec<&Value> = match obj.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        Some(_) => return Err(malformed_policy("Syntax errors in policy.")),
        None => return Err(malformed_policy("Missing required field Statement")),
    };
    for s in statements {
        check_statement(s, kind)?;
    }
    Ok(v)
}

fn check_statement(s: &Value, kind: DocKind) -> Result<(), ApiError> {
    let Value::Object(st) = s else {
        return Err(malformed_policy("Syntax errors in policy."));
    };
    for k in st.keys() {
        if !matches!(
            k.as_str(),
            "Sid"
                | "Effect"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Principal"
                | "NotPrincipal"
                | "Condition"
        ) {
            return Err(malformed_policy(format!(
                "Syntax errors in policy. Unknown field {k}"
            )));
        }
    }
    match st.get("Effect") {
        Some(Value::String(e)) if e == "Allow" || e == "Deny" => {}
        Some(Value::String(e)) => return Err(malformed_policy(format!("Invalid effect: {e}"))),
        Some(_) => return Err(malformed_policy("Syntax errors in policy.")),
        None => return Err(malformed_policy("Missing required field Effect")),
    }
    let actions = match (st.get("Action"), st.get("NotAction")) {
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Err(malformed_policy("Policy statement must contain actions.")),
        (Some(_), Some(_)) => return Err(malformed_policy("Syntax errors in policy.")),
    };
    for a in strings(actions)? {
        if a != "*" && !a.contains(':') {
            return Err(malformed_policy(
                "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
            ));
        }
    }
    let has_resource = st.contains_key("Resource") || st.contains_key("NotResource");
    let has_principal = st.contains_key("Principal") || st.contains_key("NotPrincipal");
    if let Some(r) = st.get("Resource").or_else(|| st.get("NotResource")) {
        strings(r)?;
    }
    match kind {
        DocKind::Identity | DocKind::Session => {
            if has_principal {
                return Err(malformed_policy(
                    "Policy document should not specify a principal.",
                ));
            }
            if !has_resource {
                return Err(malformed_policy("Policy statement must contain resources."));
            }
        }
        DocKind::Trust => {
            if has_resource {
                return Err(malformed_policy("Has prohibited field Resource"));
            }
            if !has_principal {
                return Err(malformed_policy("Missing required field Principal"));
            }
            if let Some(Value::Object(p)) = st.get("Principal").or_else(|| st.get("NotPrincipal")) {
                for (k, v) in p {
                    if !matches!(
                        k.as_str(),
                        "AWS" | "Service" | "Federated" | "CanonicalUser"
                    ) {
                        return Err(malformed_policy(format!(
                            "Invalid principal in policy: \"{k}\""
                        )));
                    }
                    strings(v)?;
                }
            } else if st.get("Principal").or_else(|| st.get("NotPrincipal"))
                != Some(&Value::String("*".into()))
            {
                return Err(malformed_policy("Invalid principal in policy"));
            }
        }
    }
    if let Some(c) = st.get("Condition") {
        if !c.is_object() {
            return Err(malformed_policy("Syntax errors in policy."));
        }
    }
    Ok(())
}

/// A string or a non-empty list of strings.
fn strings(v: &Value) -> Result<Vec<&str>, ApiError> {
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| {
                x.as_str()
                    .ok_or_else(|| malformed_policy("Syntax errors in policy."))
            })
            .collect(),
        _ => Err(malformed_policy("Syntax errors in policy.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_trust() {
        let id = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        assert!(validate(id, DocKind::Identity).is_ok());
        assert_eq!(
            validate(id, DocKind::Trust).unwrap_err().message,
            "Has prohibited field Resource"
        );
        let trust = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}}"#;
        assert!(validate(trust, DocKind::Trust).is_ok());
        assert!(validate(trust, DocKind::Identity).is_err());
        for bad in [
            "nope",
            "[]",
            r#"{"Statement":[]}"#,
            r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Maybe","Action":"*","Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":"get","Resource":"*"}}"#,
        ] {
            let e = validate(bad, DocKind::Identity).unwrap_err();
            assert_eq!(e.code, "MalformedPolicyDocument", "{bad}");
        }
    }
}
