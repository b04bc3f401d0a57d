//! IAM policy documents (identity and resource-based) and their evaluation with AWS semantics:
//! an explicit `Deny` anywhere wins; otherwise an `Allow` from an identity policy or, within one
//! account, from the resource policy allows; across accounts both are needed.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::condition::{expand, tokens_match, Condition, Operator};

/// The policy language version that enables `${...}` variables.
pub const VERSION_2012: &str = "2012-10-17";
/// The older version (variables are literal text).
pub const VERSION_2008: &str = "2008-10-17";

/// A policy document that is not valid. IAM answers `MalformedPolicyDocument` (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed policy document: {message}")]
pub struct PolicyError {
    message: String,
}

impl PolicyError {
    pub fn new(message: impl Into<String>) -> Self {
        PolicyError {
            message: message.into(),
        }
    }

    /// IAM's error code.
    pub fn code(&self) -> &'static str {
        "MalformedPolicyDocument"
    }

    /// The message, in IAM's wording where IAM has one.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// HTTP status.
    pub fn status(&self) -> u16 {
        400
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

/// A `Principal` / `NotPrincipal` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    /// `"*"`: everyone, including anonymous callers.
    Any,
    /// `{"AWS": [...], "Service": [...], "Federated": [...], "CanonicalUser": [...]}`.
    Map(Vec<(String, Vec<String>)>),
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<Principals>,
    pub not_principal: Option<Principals>,
    pub action: Option<Vec<String>>,
    pub not_action: Option<Vec<String>>,
    pub resource: Option<Vec<String>>,
    pub not_resource: Option<Vec<String>>,
    /// ANDed.
    pub conditions: Vec<Condition>,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `2012-10-17` or `2008-10-17` (the default when absent).
    pub version: String,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

/// Where a document is used; decides whether `Principal` is required or forbidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user, group or role (also permissions boundaries and session policies):
    /// no `Principal`, `Resource` required.
    Identity,
    /// Attached to a resource (bucket, repository, key, role trust policy): `Principal`
    /// required, `Resource` optional.
    Resource,
    /// No placement checks.
    Any,
}

impl Policy {
    /// Parse a document without placement checks.
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        Policy::parse_as(json, PolicyKind::Any)
    }

    /// Parse an identity-based policy.
    pub fn parse_identity(json: &str) -> Result<Policy, PolicyError> {
        Policy::parse_as(json, PolicyKind::Identity)
    }

    /// Parse a resource-based policy.
    pub fn parse_resource(json: &str) -> Result<Policy, PolicyError> {
        Policy::parse_as(json, PolicyKind::Resource)
    }

    /// Parse a document for the given placement.
    pub fn parse_as(json: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let value: Value =
            serde_json::from_str(json).map_err(|_| PolicyError::new("Syntax errors in policy."))?;
        Policy::from_value(&value, kind)
    }

    /// Build from already-parsed JSON.
    pub fn from_value(value: &Value, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let Value::Object(doc) = value else {
            return Err(PolicyError::new("Syntax errors in policy."));
        };
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError::new(format!(
                    "Syntax errors in policy. Unknown field {key}"
                )));
            }
        }
        let version = match doc.get("Version") {
            None => VERSION_2008.to_string(),
            Some(Value::String(v)) if v == VERSION_2012 || v == VERSION_2008 => v.clone(),
            Some(other) => {
                return Err(PolicyError::new(format!(
                    "The policy failed legacy parsing: invalid Version {other}; use \
                     \"{VERSION_2012}\""
                )))
            }
        };
        let id = match doc.get("Id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(PolicyError::new(
                    "Syntax errors in policy. Id must be a string",
                ))
            }
        };
        let statements = match doc.get("Statement") {
            None => return Err(PolicyError::new("Missing required field Statement")),
            Some(Value::Object(s)) => vec![parse_statement(s, kind)?],
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Value::Object(s) = item else {
                        return Err(PolicyError::new(
                            "Syntax errors in policy. Each Statement must be an object",
                        ));
                    };
                    out.push(parse_statement(s, kind)?);
                }
                out
            }
            Some(_) => {
                return Err(PolicyError::new(
                    "Syntax errors in policy. Statement must be an object or an array",
                ))
            }
        };
        let mut sids: Vec<&str> = statements.iter().filter_map(|s| s.sid.as_deref()).collect();
        sids.sort_unstable();
        if let Some(w) = sids.windows(2).find(|w| w[0] == w[1]) {
            return Err(PolicyError::new(format!(
                "Statement IDs (SID) in a single policy must be unique: {}",
                w[0]
            )));
        }
        Ok(Policy {
            version,
            id,
            statements,
        })
    }

    /// Whether `${...}` policy variables are substituted.
    pub fn variables_enabled(&self) -> bool {
        self.version == VERSION_2012
    }
}

fn parse_statement(s: &Map<String, Value>, kind: PolicyKind) -> Result<Statement, PolicyError> {
    for key in s.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(PolicyError::new(format!(
                "Syntax errors in policy. Unknown field {key} in Statement"
            )));
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(_) => {
            return Err(PolicyError::new(
                "Syntax errors in policy. Sid must be a string",
            ))
        }
    };
    let effect = match s.get("Effect") {
        None => return Err(PolicyError::new("Missing required field Effect")),
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(PolicyError::new(format!(
                "Invalid effect: {}",
                other.as_str().unwrap_or(&other.to_string())
            )))
        }
    };
    let principal = s.get("Principal").map(parse_principals).transpose()?;
    let not_principal = s.get("NotPrincipal").map(parse_principals).transpose()?;
    if principal.is_some() && not_principal.is_some() {
        return Err(PolicyError::new(
            "Syntax errors in policy. Statement cannot have both Principal and NotPrincipal",
        ));
    }
    match kind {
        PolicyKind::Identity if principal.is_some() || not_principal.is_some() => {
            return Err(PolicyError::new(
                "Policy document should not specify a principal.",
            ))
        }
        PolicyKind::Resource if principal.is_none() && not_principal.is_none() => {
            return Err(PolicyError::new("Missing required field Principal"))
        }
        _ => {}
    }
    let action = s.get("Action").map(|v| strings(v, "Action")).transpose()?;
    let not_action = s
        .get("NotAction")
        .map(|v| strings(v, "NotAction"))
        .transpose()?;
    match (&action, &not_action) {
        (None, None) => return Err(PolicyError::new("Policy statement must contain actions.")),
        (Some(_), Some(_)) => {
            return Err(PolicyError::new(
                "Syntax errors in policy. Statement cannot have both Action and NotAction",
            ))
        }
        _ => {}
    }
    for a in action.iter().chain(not_action.iter()).flatten() {
        if a != "*"
            && !a
                .split_once(':')
                .is_some_and(|(v, r)| !v.is_empty() && !r.is_empty())
        {
            return Err(PolicyError::new(
                "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
            ));
        }
    }
    let resource = s
        .get("Resource")
        .map(|v| strings(v, "Resource"))
        .transpose()?;
    let not_resource = s
        .get("NotResource")
        .map(|v| strings(v, "NotResource"))
        .transpose()?;
    if resource.is_some() && not_resource.is_some() {
        return Err(PolicyError::new(
            "Syntax errors in policy. Statement cannot have both Resource and NotResource",
        ));
    }
    if kind == PolicyKind::Identity && resource.is_none() && not_resource.is_none() {
        return Err(PolicyError::new("Policy statement must contain resources."));
    }
    for r in resource.iter().chain(not_resource.iter()).flatten() {
        if r != "*" && !r.starts_with("arn:") {
            return Err(PolicyError::new(format!(
                "Resource {r} must be in ARN format or \"*\"."
            )));
        }
    }
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(v) => parse_conditions(v)?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        not_principal,
        action,
        not_action,
        resource,
        not_resource,
        conditions,
    })
}

/// A string or a non-empty array of strings.
fn strings(v: &Value, field: &str) -> Result<Vec<String>, PolicyError> {
    let bad = || {
        PolicyError::new(format!(
            "Syntax errors in policy. {field} must be a string or an array of strings"
        ))
    };
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

fn parse_principals(v: &Value) -> Result<Principals, PolicyError> {
    let invalid = || PolicyError::new("Invalid principal in policy");
    match v {
        Value::String(s) if s == "*" => Ok(Principals::Any),
        Value::Object(map) if !map.is_empty() => {
            let mut out = Vec::new();
            for (k, val) in map {
                if !matches!(
                    k.as_str(),
                    "AWS" | "Service" | "Federated" | "CanonicalUser"
                ) {
                    return Err(invalid());
                }
                let vals = strings(val, "Principal").map_err(|_| invalid())?;
                if vals.iter().any(String::is_empty) {
                    return Err(invalid());
                }
                out.push((k.clone(), vals));
            }
            Ok(Principals::Map(out))
        }
        _ => Err(invalid()),
    }
}

fn parse_conditions(v: &Value) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(ops) = v else {
        return Err(PolicyError::new(
            "Syntax errors in policy. Condition must be an object",
        ));
    };
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let operator = Operator::parse(op_name)?;
        let Value::Object(keys) = keys else {
            return Err(PolicyError::new(format!(
                "Syntax errors in policy. Condition {op_name} must map keys to values"
            )));
        };
        for (key, vals) in keys {
            if !key.contains(':') {
                return Err(PolicyError::new(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
                ));
            }
            let values = condition_values(vals).ok_or_else(|| {
                PolicyError::new(format!(
                    "Syntax errors in policy. Invalid value for condition key {key}"
                ))
            })?;
            out.push(Condition {
                operator: operator.clone(),
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}

fn condition_values(v: &Value) -> Option<Vec<String>> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    match v {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

// ------------------------------------------------------------------------------------------
// Evaluation.

/// One request to authorize.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthzRequest {
    /// The caller: `arn:aws:iam::ACCOUNT:user/...`, `arn:aws:sts::ACCOUNT:assumed-role/R/S`,
    /// `arn:aws:iam::ACCOUNT:root`; empty for anonymous callers.
    pub principal_arn: String,
    /// The caller's account id.
    pub principal_account: String,
    /// When an AWS service calls (e.g. `lambda.amazonaws.com`), its service principal.
    pub principal_service: Option<String>,
    /// `service:Action`, e.g. `ecr:BatchGetImage`.
    pub action: String,
    /// The resource ARN (or `*` for actions without a resource).
    pub resource: String,
    /// The account owning the resource; `None` means the caller's own account.
    pub resource_account: Option<String>,
    /// Condition context keys (matched case-insensitively) and their values.
    pub context: HashMap<String, Vec<String>>,
}

impl AuthzRequest {
    pub fn new(
        principal_arn: impl Into<String>,
        principal_account: impl Into<String>,
        action: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        AuthzRequest {
            principal_arn: principal_arn.into(),
            principal_account: principal_account.into(),
            action: action.into(),
            resource: resource.into(),
            ..AuthzRequest::default()
        }
    }

    /// Set the account that owns the resource.
    pub fn with_resource_account(mut self, account: impl Into<String>) -> Self {
        self.resource_account = Some(account.into());
        self
    }

    /// Set the calling service principal.
    pub fn with_service_principal(mut self, service: impl Into<String>) -> Self {
        self.principal_service = Some(service.into());
        self
    }

    /// Add (or replace) a context key.
    pub fn with_context<I, S>(mut self, key: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.context
            .insert(key.into(), values.into_iter().map(Into::into).collect());
        self
    }

    /// The values of a context key (case-insensitive name). `aws:PrincipalArn`,
    /// `aws:PrincipalAccount`, `aws:ResourceAccount`, `aws:PrincipalServiceName` and (for IAM
    /// users) `aws:username` default to what the request's fields say.
    pub fn context_values(&self, key: &str) -> Option<Vec<String>> {
        if let Some(v) = self.context.get(key) {
            return Some(v.clone());
        }
        if let Some((_, v)) = self
            .context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            return Some(v.clone());
        }
        let lower = key.to_ascii_lowercase();
        let one = |s: &str| (!s.is_empty()).then(|| vec![s.to_string()]);
        match lower.as_str() {
            "aws:principalarn" => one(&self.principal_arn),
            "aws:principalaccount" => one(&self.principal_account),
            "aws:resourceaccount" => one(self
                .resource_account
                .as_deref()
                .unwrap_or(&self.principal_account)),
            "aws:principalservicename" => self.principal_service.as_deref().and_then(one),
            "aws:username" => {
                let (_, rest) = self.principal_arn.split_once(":user/")?;
                one(rest.rsplit('/').next().unwrap_or(rest))
            }
            _ => None,
        }
    }

    fn same_account(&self) -> bool {
        match self.resource_account.as_deref() {
            None => true,
            Some(a) => a == self.principal_account,
        }
    }
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    /// A matching `Deny` statement.
    ExplicitDeny,
    /// Nothing allowed it.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Every policy that applies to one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicySet<'a> {
    /// Policies attached to the caller (user, its groups, or role).
    pub identity: &'a [Policy],
    /// The resource's own policy, if it has one.
    pub resource: Option<&'a Policy>,
    /// The caller's permissions boundary: identity allows must also be allowed here.
    pub permissions_boundary: Option<&'a Policy>,
    /// Session policies passed when assuming a role: identity allows must also be allowed here.
    pub session: &'a [Policy],
}

/// Evaluate identity policies and an optional resource policy.
pub fn evaluate(
    req: &AuthzRequest,
    identity_policies: &[Policy],
    resource_policy: Option<&Policy>,
) -> Decision {
    evaluate_set(
        req,
        &PolicySet {
            identity: identity_policies,
            resource: resource_policy,
            ..PolicySet::default()
        },
    )
}

/// Evaluate a full policy set.
pub fn evaluate_set(req: &AuthzRequest, set: &PolicySet<'_>) -> Decision {
    let identity = scan(req, set.identity.iter(), false);
    let resource = scan(req, set.resource.into_iter(), true);
    let boundary = set
        .permissions_boundary
        .map(|b| scan(req, std::iter::once(b), false));
    let session = (!set.session.is_empty()).then(|| scan(req, set.session.iter(), false));
    let denied = identity.deny
        || resource.deny
        || boundary.is_some_and(|b| b.deny)
        || session.is_some_and(|s| s.deny);
    if denied {
        return Decision::ExplicitDeny;
    }
    let identity_allows = identity.allow && allows_or_absent(boundary) && allows_or_absent(session);
    // Anonymous callers and service principals have no identity policies: the resource
    // policy alone decides.
    let allowed = if req.principal_arn.is_empty() {
        resource.allow
    } else if req.same_account() {
        identity_allows || resource.allow
    } else {
        identity_allows && resource.allow
    };
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    allow: bool,
    deny: bool,
}

/// An optional limiting policy set (boundary, session) allows when absent or allowing.
fn allows_or_absent(scan: Option<Scan>) -> bool {
    match scan {
        None => true,
        Some(s) => s.allow,
    }
}

fn scan<'p>(
    req: &AuthzRequest,
    policies: impl Iterator<Item = &'p Policy>,
    check_principal: bool,
) -> Scan {
    let mut out = Scan::default();
    for policy in policies {
        for st in &policy.statements {
            if statement_applies(st, req, policy.variables_enabled(), check_principal) {
                match st.effect {
                    Effect::Allow => out.allow = true,
                    Effect::Deny => out.deny = true,
                }
            }
        }
    }
    out
}

/// Whether a statement matches the request (principal, action, resource and conditions).
pub fn statement_applies(
    st: &Statement,
    req: &AuthzRequest,
    variables: bool,
    check_principal: bool,
) -> bool {
    if check_principal {
        let ok = match (&st.principal, &st.not_principal) {
            (Some(p), _) => principal_matches(p, req),
            (None, Some(np)) => !principal_matches(np, req),
            (None, None) => false,
        };
        if !ok {
            return false;
        }
    }
    let action_ok = match (&st.action, &st.not_action) {
        (Some(a), _) => a.iter().any(|p| action_matches(p, &req.action)),
        (None, Some(na)) => !na.iter().any(|p| action_matches(p, &req.action)),
        (None, None) => false,
    };
    if !action_ok {
        return false;
    }
    let resource_ok = match (&st.resource, &st.not_resource) {
        (Some(r), _) => r
            .iter()
            .any(|p| resource_matches(p, &req.resource, variables, req)),
        (None, Some(nr)) => !nr
            .iter()
            .any(|p| resource_matches(p, &req.resource, variables, req)),
        (None, None) => true,
    };
    if !resource_ok {
        return false;
    }
    st.conditions.iter().all(|c| c.evaluate(req, variables))
}

/// `ecr:Batch*` against `ecr:BatchGetImage`, case-insensitively.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    match expand(pattern, false, &AuthzRequest::default()) {
        Some(toks) => tokens_match(&toks, action, true),
        None => false,
    }
}

/// A `Resource` pattern (wildcards, variables) against a resource ARN, case-sensitively.
pub fn resource_matches(
    pattern: &str,
    resource: &str,
    variables: bool,
    req: &AuthzRequest,
) -> bool {
    if pattern == "*" {
        return true;
    }
    match expand(pattern, variables, req) {
        Some(toks) => tokens_match(&toks, resource, false),
        None => false,
    }
}

/// Whether a `Principal` element names the caller.
pub fn principal_matches(p: &Principals, req: &AuthzRequest) -> bool {
    let map = match p {
        Principals::Any => return true,
        Principals::Map(m) => m,
    };
    map.iter().any(|(kind, values)| match kind.as_str() {
        "AWS" => values.iter().any(|v| aws_principal_matches(v, req)),
        "Service" => values.iter().any(|v| {
            v == "*"
                || req
                    .principal_service
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(v))
        }),
        _ => values
            .iter()
            .any(|v| v == "*" || (!req.principal_arn.is_empty() && *v == req.principal_arn)),
    })
}

fn aws_principal_matches(v: &str, req: &AuthzRequest) -> bool {
    if v == "*" {
        return true;
    }
    if req.principal_arn.is_empty() && req.principal_account.is_empty() {
        return false;
    }
    if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
        return v == req.principal_account;
    }
    if v == req.principal_arn {
        return true;
    }
    let Ok(arn) = fc_types::Arn::parse(v) else {
        return false;
    };
    if arn.service == "iam" && arn.resource == "root" {
        return arn.account == req.principal_account;
    }
    // A role in the policy names every session of that role.
    if arn.service == "iam" {
        if let (Some(role_path), Ok(caller)) = (
            arn.resource.strip_prefix("role/"),
            fc_types::Arn::parse(&req.principal_arn),
        ) {
            let role_name = role_path.rsplit('/').next().unwrap_or(role_path);
            if caller.service == "sts" && caller.account == arn.account {
                if let Some(rest) = caller.resource.strip_prefix("assumed-role/") {
                    return rest.split('/').next() == Some(role_name);
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests;
