//! Resource-based policies of functions (`AddPermission`, `RemovePermission`, `GetPolicy`) and
//! their evaluation for callers that are not IAM identities: AWS services through the bus
//! (`s3.amazonaws.com`) and anonymous callers of function URLs.

use super::{conflict, invalid, key_of, not_found, resource_not_found, str_of, tables, target};
use crate::Inner;
use fc_auth::policy::{evaluate, AuthzRequest, Policy, PolicyKind};
use fc_protocol::ApiError;
use fc_services::RequestContext;
use fc_store::{Scope, Store, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// One function's (or one version's / alias's) policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PolicyRec {
    #[serde(default)]
    pub v: u32,
    pub revision_id: String,
    pub statements: Vec<Value>,
}

impl PolicyRec {
    /// The policy document as `GetPolicy` returns it.
    pub fn document(&self) -> Value {
        json!({"Version": "2012-10-17", "Id": "default", "Statement": self.statements})
    }
}

fn load(store: &dyn Store, scope: &Scope, key: &str) -> Result<Option<PolicyRec>, ApiError> {
    store
        .get_json(scope, tables::POLICIES, key)
        .map_err(super::store_error)
}

fn precondition_failed() -> ApiError {
    ApiError::new(
        412,
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id",
    )
    .with_field("Type", "User".into())
}

fn pattern_ok(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
}

/// The `Principal` element for what `AddPermission` was given.
pub(crate) fn principal_element(p: &str) -> Result<Value, ApiError> {
    let bad =
        || invalid("The provided principal was invalid. Please check the principal and try again.");
    if p == "*" {
        return Ok(json!("*"));
    }
    if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(json!({"AWS": format!("arn:aws:iam::{p}:root")}));
    }
    if p.starts_with("arn:") {
        fc_types::Arn::parse(p).map_err(|_| bad())?;
        return Ok(json!({"AWS": p}));
    }
    if p.contains('.') && !p.contains(char::is_whitespace) {
        return Ok(json!({"Service": p}));
    }
    Err(bad())
}

/// The statement `AddPermission` adds.
pub(crate) fn build_statement(input: &Value, sid: &str, resource: &str) -> Result<Value, ApiError> {
    let action = str_of(input, "Action").unwrap_or_default();
    let principal = principal_element(str_of(input, "Principal").unwrap_or_default())?;
    let mut string_equals = Map::new();
    let mut conditions = Map::new();
    if let Some(a) = str_of(input, "SourceAccount") {
        string_equals.insert("AWS:SourceAccount".into(), json!(a));
    }
    if let Some(o) = str_of(input, "PrincipalOrgID") {
        string_equals.insert("aws:PrincipalOrgID".into(), json!(o));
    }
    if let Some(t) = str_of(input, "EventSourceToken") {
        string_equals.insert("lambda:EventSourceToken".into(), json!(t));
    }
    if let Some(t) = str_of(input, "FunctionUrlAuthType") {
        if t != "NONE" && t != "AWS_IAM" {
            return Err(super::validation(
                t,
                "functionUrlAuthType",
                "Member must satisfy enum value set: [AWS_IAM, NONE]",
            ));
        }
        string_equals.insert("lambda:FunctionUrlAuthType".into(), json!(t));
    }
    if !string_equals.is_empty() {
        conditions.insert("StringEquals".into(), Value::Object(string_equals));
    }
    if let Some(arn) = str_of(input, "SourceArn") {
        conditions.insert("ArnLike".into(), json!({"AWS:SourceArn": arn}));
    }
    if input.get("InvokedViaFunctionUrl").and_then(Value::as_bool) == Some(true) {
        conditions.insert(
            "Bool".into(),
            json!({"lambda:InvokedViaFunctionUrl": "true"}),
        );
    }
    let mut st = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": resource,
    });
    if !conditions.is_empty() {
        st["Condition"] = Value::Object(conditions);
    }
    Ok(st)
}

pub(crate) async fn add_permission(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let sid = str_of(input, "StatementId").unwrap_or_default();
    if !pattern_ok(sid, &[]) || sid.len() > 100 {
        return Err(super::validation(
            sid,
            "statementId",
            "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)",
        ));
    }
    let action = str_of(input, "Action").unwrap_or_default();
    let action_ok = action == "*"
        || action.strip_prefix("lambda:").is_some_and(|a| {
            a == "*" || (!a.is_empty() && a.chars().all(|c| c.is_ascii_alphabetic()))
        });
    if !action_ok {
        return Err(super::validation(
            action,
            "action",
            "Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])",
        ));
    }
    let t = target(
        inner,
        ctx,
        str_of(input, "FunctionName").unwrap_or_default(),
        str_of(input, "Qualifier"),
    )
    .await?;
    if t.qualifier.as_deref() == Some("$LATEST") {
        return Err(invalid(
            "We currently do not support adding policies for $LATEST.",
        ));
    }
    let store = inner.deps.store.as_ref();
    let key = t.key();
    let mut rec = load(store, &t.scope, &key)?.unwrap_or_default();
    if let Some(rev) = str_of(input, "RevisionId") {
        if !rec.revision_id.is_empty() && rev != rec.revision_id {
            return Err(precondition_failed());
        }
    }
    if rec
        .statements
        .iter()
        .any(|s| s.get("Sid").and_then(Value::as_str) == Some(sid))
    {
        return Err(conflict(format!(
            "The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement."
        )));
    }
    let st = build_statement(input, sid, &t.arn())?;
    // The document must stay one the evaluator understands.
    let mut next = rec.clone();
    next.statements.push(st.clone());
    Policy::from_value(&next.document(), PolicyKind::Resource)
        .map_err(|e| invalid(format!("The policy is not valid: {}", e.message())))?;
    rec = next;
    rec.revision_id = uuid::Uuid::new_v4().to_string();
    store
        .put_json(&t.scope, tables::POLICIES, &key, &rec)
        .map_err(super::store_error)?;
    Ok(json!({"Statement": st.to_string()}))
}

pub(crate) async fn remove_permission(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let sid = str_of(input, "StatementId").unwrap_or_default();
    let t = target(
        inner,
        ctx,
        str_of(input, "FunctionName").unwrap_or_default(),
        str_of(input, "Qualifier"),
    )
    .await?;
    let store = inner.deps.store.as_ref();
    let key = t.key();
    let missing = || not_found(format!("Statement {sid} is not found in resource policy."));
    let Some(mut rec) = load(store, &t.scope, &key)? else {
        return Err(missing());
    };
    if let Some(rev) = str_of(input, "RevisionId") {
        if rev != rec.revision_id {
            return Err(precondition_failed());
        }
    }
    let before = rec.statements.len();
    rec.statements
        .retain(|s| s.get("Sid").and_then(Value::as_str) != Some(sid));
    if rec.statements.len() == before {
        return Err(missing());
    }
    if rec.statements.is_empty() {
        store
            .delete(&t.scope, tables::POLICIES, &key)
            .map_err(super::store_error)?;
    } else {
        rec.revision_id = uuid::Uuid::new_v4().to_string();
        store
            .put_json(&t.scope, tables::POLICIES, &key, &rec)
            .map_err(super::store_error)?;
    }
    Ok(json!({}))
}

pub(crate) async fn get_policy(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, ApiError> {
    let t = target(
        inner,
        ctx,
        str_of(input, "FunctionName").unwrap_or_default(),
        str_of(input, "Qualifier"),
    )
    .await?;
    match load(inner.deps.store.as_ref(), &t.scope, &t.key())? {
        Some(rec) if !rec.statements.is_empty() => Ok(json!({
            "Policy": rec.document().to_string(),
            "RevisionId": rec.revision_id,
        })),
        _ => Err(resource_not_found()),
    }
}

/// Whether the policy of `name` (+ `qualifier`) allows `req`.
pub(crate) fn allows(
    store: &dyn Store,
    scope: &Scope,
    name: &str,
    qualifier: Option<&str>,
    req: &AuthzRequest,
) -> bool {
    let rec = match load(store, scope, &key_of(name, qualifier)) {
        Ok(Some(rec)) => rec,
        _ => return false,
    };
    rec_allows(&rec, req)
}

pub(crate) fn rec_allows(rec: &PolicyRec, req: &AuthzRequest) -> bool {
    match Policy::from_value(&rec.document(), PolicyKind::Resource) {
        Ok(p) => evaluate(req, &[], Some(&p)).is_allowed(),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable function policy");
            false
        }
    }
}

/// What an AWS service (e.g. `s3.amazonaws.com`) asks when it invokes `resource` for
/// `source_arn` on behalf of `source_account`.
pub(crate) fn service_request(
    service: &str,
    action: &str,
    resource: &str,
    source_arn: &str,
    source_account: &str,
) -> AuthzRequest {
    AuthzRequest::new("", "", action, resource)
        .with_service_principal(service)
        .with_context("aws:SourceArn", [source_arn])
        .with_context("aws:SourceAccount", [source_account])
}

/// Drops the policies of a deleted function (or one qualifier of it).
pub(crate) fn forget(inner: &Arc<Inner>, scope: &Scope, name: &str, qualifier: Option<&str>) {
    super::forget_records(inner, scope, tables::POLICIES, name, qualifier);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

    fn rec_with(input: Value) -> PolicyRec {
        PolicyRec {
            v: 1,
            revision_id: "r".into(),
            statements: vec![build_statement(&input, "s1", ARN).unwrap()],
        }
    }

    #[test]
    fn principals_map_to_policy_elements() {
        assert_eq!(principal_element("*").unwrap(), json!("*"));
        assert_eq!(
            principal_element("123456789012").unwrap(),
            json!({"AWS": "arn:aws:iam::123456789012:root"})
        );
        assert_eq!(
            principal_element("s3.amazonaws.com").unwrap(),
            json!({"Service": "s3.amazonaws.com"})
        );
        assert_eq!(
            principal_element("arn:aws:iam::123456789012:role/r").unwrap(),
            json!({"AWS": "arn:aws:iam::123456789012:role/r"})
        );
        assert_eq!(
            principal_element("nobody").unwrap_err().code,
            "InvalidParameterValueException"
        );
    }

    #[test]
    fn statements_carry_conditions() {
        let st = build_statement(
            &json!({"Action": "lambda:InvokeFunction", "Principal": "s3.amazonaws.com",
                    "SourceArn": "arn:aws:s3:::b", "SourceAccount": "123456789012"}),
            "s3",
            ARN,
        )
        .unwrap();
        assert_eq!(
            st["Condition"]["ArnLike"]["AWS:SourceArn"],
            "arn:aws:s3:::b"
        );
        assert_eq!(
            st["Condition"]["StringEquals"]["AWS:SourceAccount"],
            "123456789012"
        );
        assert_eq!(st["Principal"]["Service"], "s3.amazonaws.com");
        assert_eq!(st["Resource"], ARN);
    }

    #[test]
    fn service_principal_with_source_arn() {
        let rec = rec_with(
            json!({"Action": "lambda:InvokeFunction", "Principal": "s3.amazonaws.com",
                                  "SourceArn": "arn:aws:s3:::bucket-a"}),
        );
        let ok = service_request(
            "s3.amazonaws.com",
            "lambda:InvokeFunction",
            ARN,
            "arn:aws:s3:::bucket-a",
            "123456789012",
        );
        assert!(rec_allows(&rec, &ok));
        let other_bucket = service_request(
            "s3.amazonaws.com",
            "lambda:InvokeFunction",
            ARN,
            "arn:aws:s3:::bucket-b",
            "123456789012",
        );
        assert!(!rec_allows(&rec, &other_bucket));
        let other_service = service_request(
            "sns.amazonaws.com",
            "lambda:InvokeFunction",
            ARN,
            "arn:aws:s3:::bucket-a",
            "123456789012",
        );
        assert!(!rec_allows(&rec, &other_service));
        let other_fn = service_request(
            "s3.amazonaws.com",
            "lambda:InvokeFunction",
            &format!("{ARN}x"),
            "arn:aws:s3:::bucket-a",
            "123456789012",
        );
        assert!(!rec_allows(&rec, &other_fn));
    }

    #[test]
    fn wildcard_source_arn_and_source_account() {
        let rec = rec_with(
            json!({"Action": "lambda:*", "Principal": "s3.amazonaws.com",
                                  "SourceArn": "arn:aws:s3:::logs-*", "SourceAccount": "123456789012"}),
        );
        let ok = service_request(
            "s3.amazonaws.com",
            "lambda:InvokeFunction",
            ARN,
            "arn:aws:s3:::logs-1",
            "123456789012",
        );
        assert!(rec_allows(&rec, &ok));
        let wrong_account = service_request(
            "s3.amazonaws.com",
            "lambda:InvokeFunction",
            ARN,
            "arn:aws:s3:::logs-1",
            "999999999999",
        );
        assert!(!rec_allows(&rec, &wrong_account));
    }

    #[test]
    fn public_url_permission() {
        let rec = rec_with(
            json!({"Action": "lambda:InvokeFunctionUrl", "Principal": "*",
                                  "FunctionUrlAuthType": "NONE"}),
        );
        let anon = AuthzRequest::new("", "", "lambda:InvokeFunctionUrl", ARN)
            .with_context("lambda:FunctionUrlAuthType", ["NONE"]);
        assert!(rec_allows(&rec, &anon));
        let iam = AuthzRequest::new("", "", "lambda:InvokeFunctionUrl", ARN)
            .with_context("lambda:FunctionUrlAuthType", ["AWS_IAM"]);
        assert!(!rec_allows(&rec, &iam));
        let invoke = AuthzRequest::new("", "", "lambda:InvokeFunction", ARN)
            .with_context("lambda:FunctionUrlAuthType", ["NONE"]);
        assert!(!rec_allows(&rec, &invoke));
    }

    #[test]
    fn invoked_via_url_condition() {
        let rec = rec_with(json!({"Action": "lambda:InvokeFunction", "Principal": "*",
                                  "InvokedViaFunctionUrl": true}));
        let via_url = AuthzRequest::new("", "", "lambda:InvokeFunction", ARN)
            .with_context("lambda:InvokedViaFunctionUrl", ["true"]);
        assert!(rec_allows(&rec, &via_url));
        let direct = AuthzRequest::new("", "", "lambda:InvokeFunction", ARN)
            .with_context("lambda:InvokedViaFunctionUrl", ["false"]);
        assert!(!rec_allows(&rec, &direct));
    }

    #[test]
    fn documents_parse_as_resource_policies() {
        let rec = rec_with(json!({"Action": "lambda:InvokeFunction", "Principal": "123456789012"}));
        let doc = rec.document();
        assert_eq!(doc["Id"], "default");
        assert!(Policy::from_value(&doc, PolicyKind::Resource).is_ok());
    }
}
