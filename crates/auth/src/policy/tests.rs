//! Policy parsing and evaluation tests.

use super::*;
use serde_json::json;

const ACCT: &str = "111122223333";
const OTHER: &str = "444455556666";

fn pol(v: Value) -> Policy {
    Policy::from_value(&v, PolicyKind::Any).expect("valid policy")
}

fn err(v: Value, kind: PolicyKind) -> String {
    Policy::from_value(&v, kind)
        .expect_err("invalid policy")
        .message()
        .to_string()
}

fn allow(action: Value, resource: Value) -> Policy {
    pol(
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": action, "Resource": resource}}),
    )
}

fn alice(action: &str, resource: &str) -> AuthzRequest {
    AuthzRequest::new(
        format!("arn:aws:iam::{ACCT}:user/alice"),
        ACCT,
        action,
        resource,
    )
}

fn with_condition(cond: Value) -> Policy {
    pol(json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": cond
    }]}))
}

fn cond_allows(cond: Value, req: &AuthzRequest) -> bool {
    evaluate(req, &[with_condition(cond)], None).is_allowed()
}

fn get() -> AuthzRequest {
    alice("s3:GetObject", "arn:aws:s3:::bucket/key")
}

/// AmazonEC2ContainerRegistryReadOnly, as AWS publishes it.
const ECR_READ_ONLY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:GetRepositoryPolicy",
                "ecr:DescribeRepositories",
                "ecr:ListImages",
                "ecr:DescribeImages",
                "ecr:BatchGetImage",
                "ecr:GetLifecyclePolicy",
                "ecr:GetLifecyclePolicyPreview",
                "ecr:ListTagsForResource",
                "ecr:DescribeImageScanFindings"
            ],
            "Resource": "*"
        }
    ]
}"#;

// ---- parsing ---------------------------------------------------------------------------------

#[test]
fn parses_statement_object_and_array_forms() {
    let one = pol(
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}),
    );
    assert_eq!(one.statements.len(), 1);
    assert_eq!(one.statements[0].action, Some(vec!["s3:*".to_string()]));
    let two = pol(json!({"Version": "2012-10-17", "Id": "x", "Statement": [
        {"Sid": "A", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": ["arn:aws:s3:::b/*"]},
        {"Sid": "B", "Effect": "Deny", "NotAction": "s3:*", "NotResource": "arn:aws:s3:::b"}
    ]}));
    assert_eq!(two.statements.len(), 2);
    assert_eq!(two.id.as_deref(), Some("x"));
    assert_eq!(two.statements[1].effect, Effect::Deny);
    assert_eq!(two.statements[1].not_action, Some(vec!["s3:*".to_string()]));
    assert!(two.variables_enabled());
}

#[test]
fn parses_real_managed_policy_text() {
    let p = Policy::parse_identity(ECR_READ_ONLY).unwrap();
    assert_eq!(p.statements[0].action.as_ref().unwrap().len(), 12);
}

#[test]
fn missing_version_means_2008() {
    let p = pol(json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}));
    assert_eq!(p.version, VERSION_2008);
    assert!(!p.variables_enabled());
}

#[test]
fn rejects_invalid_json() {
    let e = Policy::parse("{not json").unwrap_err();
    assert_eq!(e.message(), "Syntax errors in policy.");
    assert_eq!(e.code(), "MalformedPolicyDocument");
    assert_eq!(e.status(), 400);
    assert_eq!(
        Policy::parse("[]").unwrap_err().message(),
        "Syntax errors in policy."
    );
}

#[test]
fn rejects_missing_statement_and_effect() {
    assert_eq!(
        err(json!({"Version": "2012-10-17"}), PolicyKind::Any),
        "Missing required field Statement"
    );
    assert_eq!(
        err(
            json!({"Statement": {"Action": "s3:*", "Resource": "*"}}),
            PolicyKind::Any
        ),
        "Missing required field Effect"
    );
    assert_eq!(
        err(
            json!({"Statement": {"Effect": "allow", "Action": "s3:*", "Resource": "*"}}),
            PolicyKind::Any
        ),
        "Invalid effect: allow"
    );
}

#[test]
fn rejects_bad_actions() {
    assert_eq!(
        err(
            json!({"Statement": {"Effect": "Allow", "Resource": "*"}}),
            PolicyKind::Any
        ),
        "Policy statement must contain actions."
    );
    assert_eq!(
        err(
            json!({"Statement": {"Effect": "Allow", "Action": "GetObject", "Resource": "*"}}),
            PolicyKind::Any
        ),
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
    );
    assert!(err(
        json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "NotAction": "s3:Get*", "Resource": "*"}}),
        PolicyKind::Any
    )
    .contains("both Action and NotAction"));
    assert!(err(
        json!({"Statement": {"Effect": "Allow", "Action": [1], "Resource": "*"}}),
        PolicyKind::Any
    )
    .contains("Action must be a string"));
}

#[test]
fn placement_rules() {
    let with_principal = json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}});
    assert_eq!(
        err(with_principal.clone(), PolicyKind::Identity),
        "Policy document should not specify a principal."
    );
    assert!(Policy::from_value(&with_principal, PolicyKind::Resource).is_ok());
    let no_principal = json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}});
    assert_eq!(
        err(no_principal, PolicyKind::Resource),
        "Missing required field Principal"
    );
    assert_eq!(
        err(
            json!({"Statement": {"Effect": "Allow", "Action": "s3:*"}}),
            PolicyKind::Identity
        ),
        "Policy statement must contain resources."
    );
    // Repository policies (ECR) leave Resource out.
    assert!(Policy::parse_resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"ecr:BatchGetImage"}]}"#
    )
    .is_ok());
}

#[test]
fn rejects_unknown_fields_bad_principals_and_conditions() {
    assert!(err(json!({"Statement": [], "Foo": 1}), PolicyKind::Any).contains("Unknown field Foo"));
    assert!(err(
        json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Extra": 1}}),
        PolicyKind::Any
    )
    .contains("Unknown field Extra"));
    assert_eq!(
        err(
            json!({"Statement": {"Effect": "Allow", "Principal": {"Bogus": "x"}, "Action": "s3:*"}}),
            PolicyKind::Any
        ),
        "Invalid principal in policy"
    );
    assert_eq!(
        err(
            json!({"Statement": {"Effect": "Allow", "Principal": "someone", "Action": "s3:*"}}),
            PolicyKind::Any
        ),
        "Invalid principal in policy"
    );
    assert_eq!(
        err(
            json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"StringEqualz": {"aws:username": "x"}}}}),
            PolicyKind::Any
        ),
        "Invalid Condition type : StringEqualz"
    );
    assert!(err(
        json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:username": {"a": 1}}}}}),
        PolicyKind::Any
    )
    .contains("Invalid value for condition key aws:username"));
}

#[test]
fn rejects_bad_version_resource_and_duplicate_sids() {
    assert!(err(
        json!({"Version": "2019-01-01", "Statement": []}),
        PolicyKind::Any
    )
    .contains("Version"));
    assert!(err(
        json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "bucket"}}),
        PolicyKind::Any
    )
    .contains("ARN format"));
    assert!(err(
        json!({"Statement": [
            {"Sid": "S", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Sid": "S", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}),
        PolicyKind::Any
    )
    .contains("unique"));
}

#[test]
fn condition_values_may_be_numbers_and_bools() {
    let p = with_condition(
        json!({"Bool": {"aws:SecureTransport": true}, "NumericLessThan": {"s3:max-keys": [10, "20"]}}),
    );
    let conds = &p.statements[0].conditions;
    assert_eq!(conds[0].values, vec!["true"]);
    assert_eq!(conds[1].values, vec!["10", "20"]);
}

// ---- actions and resources -----------------------------------------------------------------

#[test]
fn ecr_read_only_allows_pulls_not_pushes() {
    let p = Policy::parse_identity(ECR_READ_ONLY).unwrap();
    let repo = format!("arn:aws:ecr:us-east-1:{ACCT}:repository/app");
    for action in [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "ecr:DescribeRepositories",
    ] {
        assert_eq!(
            evaluate(&alice(action, &repo), std::slice::from_ref(&p), None),
            Decision::Allow,
            "{action}"
        );
    }
    for action in [
        "ecr:PutImage",
        "ecr:InitiateLayerUpload",
        "ecr:DeleteRepository",
        "s3:GetObject",
    ] {
        assert_eq!(
            evaluate(&alice(action, &repo), std::slice::from_ref(&p), None),
            Decision::ImplicitDeny,
            "{action}"
        );
    }
}

#[test]
fn no_policies_is_implicit_deny() {
    assert_eq!(evaluate(&get(), &[], None), Decision::ImplicitDeny);
    assert!(!Decision::ImplicitDeny.is_allowed());
}

#[test]
fn explicit_deny_wins() {
    let allow_all = allow(json!("*"), json!("*"));
    let deny = pol(
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}}),
    );
    assert_eq!(
        evaluate(&get(), &[allow_all.clone(), deny.clone()], None),
        Decision::ExplicitDeny
    );
    assert_eq!(
        evaluate(&get(), &[deny, allow_all], None),
        Decision::ExplicitDeny
    );
}

#[test]
fn action_wildcards_are_case_insensitive() {
    let p = allow(json!(["ecr:Batch*"]), json!("*"));
    assert!(evaluate(
        &alice("ecr:BatchGetImage", "*"),
        std::slice::from_ref(&p),
        None
    )
    .is_allowed());
    assert!(evaluate(
        &alice("ECR:batchgetimage", "*"),
        std::slice::from_ref(&p),
        None
    )
    .is_allowed());
    assert!(!evaluate(&alice("ecr:GetDownloadUrlForLayer", "*"), &[p], None).is_allowed());
    let all = allow(json!("ecr:*"), json!("*"));
    assert!(evaluate(
        &alice("ecr:PutImage", "*"),
        std::slice::from_ref(&all),
        None
    )
    .is_allowed());
    assert!(!evaluate(&alice("ecrx:PutImage", "*"), &[all], None).is_allowed());
    let q = allow(json!("s3:Get?bject"), json!("*"));
    assert!(evaluate(&get(), std::slice::from_ref(&q), None).is_allowed());
    assert!(!evaluate(&alice("s3:GetObjectAcl", "*"), &[q], None).is_allowed());
    assert!(action_matches("*", "anything:AtAll"));
}

#[test]
fn not_action_allows_everything_else() {
    let p = pol(
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}}),
    );
    assert!(evaluate(&get(), std::slice::from_ref(&p), None).is_allowed());
    assert!(!evaluate(&alice("iam:CreateUser", "*"), &[p], None).is_allowed());
}

#[test]
fn resource_wildcards_are_case_sensitive() {
    let p = allow(json!("s3:*"), json!("arn:aws:s3:::bucket/*"));
    assert!(evaluate(&get(), std::slice::from_ref(&p), None).is_allowed());
    assert!(!evaluate(
        &alice("s3:GetObject", "arn:aws:s3:::Bucket/key"),
        std::slice::from_ref(&p),
        None
    )
    .is_allowed());
    assert!(!evaluate(&alice("s3:ListBucket", "arn:aws:s3:::bucket"), &[p], None).is_allowed());
    let q = allow(
        json!("ecr:*"),
        json!("arn:aws:ecr:*:111122223333:repository/team-?/*"),
    );
    assert!(evaluate(
        &alice(
            "ecr:PutImage",
            "arn:aws:ecr:eu-west-1:111122223333:repository/team-a/app"
        ),
        std::slice::from_ref(&q),
        None
    )
    .is_allowed());
    assert!(!evaluate(
        &alice(
            "ecr:PutImage",
            "arn:aws:ecr:eu-west-1:111122223333:repository/team-ab/app"
        ),
        &[q],
        None
    )
    .is_allowed());
}

#[test]
fn not_resource() {
    let p = pol(
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}}),
    );
    assert!(evaluate(&get(), std::slice::from_ref(&p), None).is_allowed());
    assert!(!evaluate(&alice("s3:GetObject", "arn:aws:s3:::secret/x"), &[p], None).is_allowed());
}

#[test]
fn username_variable_in_resource() {
    let p = allow(json!("s3:*"), json!("arn:aws:s3:::home/${aws:username}/*"));
    let mine = alice("s3:GetObject", "arn:aws:s3:::home/alice/notes.txt");
    let theirs = alice("s3:GetObject", "arn:aws:s3:::home/bob/notes.txt");
    assert!(evaluate(&mine, std::slice::from_ref(&p), None).is_allowed());
    assert!(!evaluate(&theirs, std::slice::from_ref(&p), None).is_allowed());
    // Explicit context wins over the value derived from the ARN.
    let renamed = theirs.clone().with_context("aws:username", ["bob"]);
    assert!(evaluate(&renamed, &[p], None).is_allowed());
    // In a 2008-10-17 policy the variable is literal text.
    let old = pol(
        json!({"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username}/*"}}),
    );
    assert!(!evaluate(&mine, std::slice::from_ref(&old), None).is_allowed());
    assert!(evaluate(
        &alice("s3:GetObject", "arn:aws:s3:::home/${aws:username}/x"),
        &[old],
        None
    )
    .is_allowed());
    // A role session has no aws:username: the statement does not match.
    let role = AuthzRequest::new(
        format!("arn:aws:sts::{ACCT}:assumed-role/R/s"),
        ACCT,
        "s3:GetObject",
        "arn:aws:s3:::home/alice/x",
    );
    assert!(!evaluate(
        &role,
        &[allow(
            json!("s3:*"),
            json!("arn:aws:s3:::home/${aws:username}/*")
        )],
        None
    )
    .is_allowed());
}

#[test]
fn principal_tag_variable() {
    let p = allow(
        json!("s3:*"),
        json!("arn:aws:s3:::team-${aws:PrincipalTag/team}/*"),
    );
    let req = alice("s3:GetObject", "arn:aws:s3:::team-red/x")
        .with_context("aws:PrincipalTag/team", ["red"]);
    assert!(evaluate(&req, std::slice::from_ref(&p), None).is_allowed());
    let req = alice("s3:GetObject", "arn:aws:s3:::team-blue/x")
        .with_context("aws:principaltag/TEAM", ["red"]);
    assert!(!evaluate(&req, &[p], None).is_allowed());
}

// ---- resource policies, principals, accounts -------------------------------------------------

fn resource_policy(principal: Value) -> Policy {
    Policy::from_value(
        &json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": principal, "Action": "ecr:BatchGetImage"}}),
        PolicyKind::Resource,
    )
    .unwrap()
}

fn pull(principal_arn: &str, account: &str) -> AuthzRequest {
    AuthzRequest::new(
        principal_arn,
        account,
        "ecr:BatchGetImage",
        format!("arn:aws:ecr:us-east-1:{ACCT}:repository/app"),
    )
    .with_resource_account(ACCT)
}

#[test]
fn same_account_resource_policy_alone_allows() {
    let rp = resource_policy(json!({"AWS": format!("arn:aws:iam::{ACCT}:user/alice")}));
    let req = pull(&format!("arn:aws:iam::{ACCT}:user/alice"), ACCT);
    assert_eq!(evaluate(&req, &[], Some(&rp)), Decision::Allow);
    let bob = pull(&format!("arn:aws:iam::{ACCT}:user/bob"), ACCT);
    assert_eq!(evaluate(&bob, &[], Some(&rp)), Decision::ImplicitDeny);
}

#[test]
fn cross_account_needs_both_sides() {
    let rp = resource_policy(json!({"AWS": OTHER}));
    let identity = allow(json!("ecr:*"), json!("*"));
    let req = pull(&format!("arn:aws:iam::{OTHER}:user/carol"), OTHER);
    assert_eq!(evaluate(&req, &[], Some(&rp)), Decision::ImplicitDeny);
    assert_eq!(
        evaluate(&req, std::slice::from_ref(&identity), None),
        Decision::ImplicitDeny
    );
    assert_eq!(
        evaluate(&req, std::slice::from_ref(&identity), Some(&rp)),
        Decision::Allow
    );
    // A resource policy naming someone else does not help.
    let rp2 = resource_policy(json!({"AWS": "999999999999"}));
    assert_eq!(
        evaluate(&req, &[identity], Some(&rp2)),
        Decision::ImplicitDeny
    );
}

#[test]
fn principal_forms() {
    let carol = format!("arn:aws:iam::{OTHER}:user/carol");
    let req = pull(&carol, OTHER);
    let p = |v: Value| {
        principal_matches(
            resource_policy(v).statements[0].principal.as_ref().unwrap(),
            &req,
        )
    };
    assert!(p(json!("*")));
    assert!(p(json!({"AWS": "*"})));
    assert!(p(json!({"AWS": OTHER})));
    assert!(p(json!({"AWS": format!("arn:aws:iam::{OTHER}:root")})));
    assert!(p(
        json!({"AWS": ["arn:aws:iam::999999999999:root", carol.clone()]})
    ));
    assert!(!p(json!({"AWS": format!("arn:aws:iam::{ACCT}:root")})));
    assert!(!p(
        json!({"AWS": format!("arn:aws:iam::{OTHER}:user/dave")})
    ));
    assert!(!p(json!({"Service": "lambda.amazonaws.com"})));
}

#[test]
fn role_principal_matches_its_sessions() {
    let rp =
        resource_policy(json!({"AWS": format!("arn:aws:iam::{ACCT}:role/service-role/Builder")}));
    let session = pull(
        &format!("arn:aws:sts::{ACCT}:assumed-role/Builder/ci-job-1"),
        ACCT,
    );
    assert!(evaluate(&session, &[], Some(&rp)).is_allowed());
    let other_role = pull(
        &format!("arn:aws:sts::{ACCT}:assumed-role/Deployer/x"),
        ACCT,
    );
    assert!(!evaluate(&other_role, &[], Some(&rp)).is_allowed());
    let other_account = pull(
        &format!("arn:aws:sts::{OTHER}:assumed-role/Builder/x"),
        OTHER,
    );
    assert!(!evaluate(&other_account, &[allow(json!("*"), json!("*"))], Some(&rp)).is_allowed());
}

#[test]
fn service_principal() {
    let rp =
        resource_policy(json!({"Service": ["lambda.amazonaws.com", "codebuild.amazonaws.com"]}));
    let req = AuthzRequest::new(
        "",
        ACCT,
        "ecr:BatchGetImage",
        "arn:aws:ecr:us-east-1:111122223333:repository/app",
    )
    .with_service_principal("codebuild.amazonaws.com");
    assert!(evaluate(&req, &[], Some(&rp)).is_allowed());
    assert_eq!(
        req.context_values("aws:PrincipalServiceName"),
        Some(vec!["codebuild.amazonaws.com".to_string()])
    );
    let user = pull(&format!("arn:aws:iam::{ACCT}:user/alice"), ACCT);
    assert!(!evaluate(&user, &[], Some(&rp)).is_allowed());
}

#[test]
fn anonymous_callers_only_match_star() {
    let anon = AuthzRequest::new("", "", "s3:GetObject", "arn:aws:s3:::public/x")
        .with_resource_account(ACCT);
    let public = Policy::parse_resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::public/*"}]}"#,
    )
    .unwrap();
    assert!(evaluate(&anon, &[], Some(&public)).is_allowed());
    let account_only = resource_policy(json!({"AWS": ACCT}));
    let anon_pull = AuthzRequest::new("", "", "ecr:BatchGetImage", "x").with_resource_account(ACCT);
    assert!(!evaluate(&anon_pull, &[], Some(&account_only)).is_allowed());
}

#[test]
fn not_principal_deny() {
    let rp = Policy::parse_resource(&json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "ecr:*"},
        {"Effect": "Deny", "NotPrincipal": {"AWS": format!("arn:aws:iam::{ACCT}:user/alice")}, "Action": "ecr:*"}
    ]}).to_string())
    .unwrap();
    assert!(evaluate(
        &pull(&format!("arn:aws:iam::{ACCT}:user/alice"), ACCT),
        &[],
        Some(&rp)
    )
    .is_allowed());
    assert_eq!(
        evaluate(
            &pull(&format!("arn:aws:iam::{ACCT}:user/bob"), ACCT),
            &[],
            Some(&rp)
        ),
        Decision::ExplicitDeny
    );
}

#[test]
fn resource_policy_deny_beats_identity_allow() {
    let rp = Policy::parse_resource(
        &json!({"Version": "2012-10-17", "Statement":
        {"Effect": "Deny", "Principal": "*", "Action": "ecr:BatchGetImage"}})
        .to_string(),
    )
    .unwrap();
    let req = pull(&format!("arn:aws:iam::{ACCT}:user/alice"), ACCT);
    assert_eq!(
        evaluate(&req, &[allow(json!("*"), json!("*"))], Some(&rp)),
        Decision::ExplicitDeny
    );
}

#[test]
fn permissions_boundary_and_session_policies_limit_identity_allows() {
    let admin = allow(json!("*"), json!("*"));
    let boundary = allow(json!("s3:*"), json!("*"));
    let session = allow(json!("s3:Get*"), json!("*"));
    let set = |b: Option<&Policy>, s: &[Policy]| {
        let identity = [admin.clone()];
        let put = alice("s3:PutObject", "arn:aws:s3:::b/k");
        let iam = alice("iam:CreateUser", "*");
        let get = get();
        let ps = PolicySet {
            identity: &identity,
            resource: None,
            permissions_boundary: b,
            session: s,
        };
        (
            evaluate_set(&get, &ps),
            evaluate_set(&put, &ps),
            evaluate_set(&iam, &ps),
        )
    };
    assert_eq!(
        set(None, &[]),
        (Decision::Allow, Decision::Allow, Decision::Allow)
    );
    assert_eq!(
        set(Some(&boundary), &[]),
        (Decision::Allow, Decision::Allow, Decision::ImplicitDeny)
    );
    assert_eq!(
        set(Some(&boundary), std::slice::from_ref(&session)),
        (
            Decision::Allow,
            Decision::ImplicitDeny,
            Decision::ImplicitDeny
        )
    );
    let deny_boundary = pol(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}]}));
    assert_eq!(set(Some(&deny_boundary), &[]).0, Decision::ExplicitDeny);
}

// ---- conditions ------------------------------------------------------------------------------

#[test]
fn string_equals_and_not_equals() {
    let req = get().with_context("aws:RequestedRegion", ["us-east-1"]);
    assert!(cond_allows(
        json!({"StringEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}}),
        &req
    ));
    assert!(!cond_allows(
        json!({"StringEquals": {"aws:RequestedRegion": "US-EAST-1"}}),
        &req
    ));
    assert!(!cond_allows(
        json!({"StringNotEquals": {"aws:RequestedRegion": ["us-east-1"]}}),
        &req
    ));
    assert!(cond_allows(
        json!({"StringNotEquals": {"aws:RequestedRegion": "eu-west-1"}}),
        &req
    ));
    // Missing key: positive false, negated true.
    assert!(!cond_allows(
        json!({"StringEquals": {"aws:SourceVpc": "vpc-1"}}),
        &req
    ));
    assert!(cond_allows(
        json!({"StringNotEquals": {"aws:SourceVpc": "vpc-1"}}),
        &req
    ));
}

#[test]
fn string_ignore_case_and_like() {
    let req = get().with_context("aws:RequestedRegion", ["us-east-1"]);
    assert!(cond_allows(
        json!({"StringEqualsIgnoreCase": {"aws:RequestedRegion": "US-EAST-1"}}),
        &req
    ));
    assert!(!cond_allows(
        json!({"StringNotEqualsIgnoreCase": {"aws:RequestedRegion": "US-East-1"}}),
        &req
    ));
    assert!(cond_allows(
        json!({"StringLike": {"aws:RequestedRegion": "us-*"}}),
        &req
    ));
    assert!(cond_allows(
        json!({"StringLike": {"aws:RequestedRegion": "us-east-?"}}),
        &req
    ));
    assert!(!cond_allows(
        json!({"StringLike": {"aws:RequestedRegion": "US-*"}}),
        &req
    ));
    assert!(!cond_allows(
        json!({"StringNotLike": {"aws:RequestedRegion": ["eu-*", "us-*"]}}),
        &req
    ));
    assert!(cond_allows(
        json!({"StringNotLike": {"aws:RequestedRegion": "eu-*"}}),
        &req
    ));
}

#[test]
fn string_equals_treats_star_literally() {
    let req = get().with_context("s3:prefix", ["home/*"]);
    assert!(cond_allows(
        json!({"StringEquals": {"s3:prefix": "home/*"}}),
        &req
    ));
    let req = get().with_context("s3:prefix", ["home/x"]);
    assert!(!cond_allows(
        json!({"StringEquals": {"s3:prefix": "home/*"}}),
        &req
    ));
}

#[test]
fn arn_conditions() {
    let req = get().with_context(
        "aws:SourceArn",
        ["arn:aws:sns:us-east-1:111122223333:topic"],
    );
    assert!(cond_allows(
        json!({"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:topic"}}),
        &req
    ));
    assert!(cond_allows(
        json!({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:111122223333:*"}}),
        &req
    ));
    assert!(!cond_allows(
        json!({"ArnLike": {"aws:SourceArn": "arn:aws:sqs:*:*:*"}}),
        &req
    ));
    assert!(!cond_allows(
        json!({"ArnNotEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:topic"}}),
        &req
    ));
    assert!(cond_allows(
        json!({"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:999999999999:*"}}),
        &req
    ));
    // The wildcard of one part does not swallow the separators.
    assert!(!cond_allows(
        json!({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:topic"}}),
        &req
    ));
}

#[test]
fn numeric_conditions() {
    let req = get().with_context("s3:max-keys", ["10"]);
    let c = |op: &str, v: Value| cond_allows(json!({op: {"s3:max-keys": v}}), &req);
    assert!(c("NumericEquals", json!(10)));
    assert!(c("NumericEquals", json!("10.0")));
    assert!(!c("NumericNotEquals", json!(10)));
    assert!(c("NumericNotEquals", json!(11)));
    assert!(c("NumericLessThan", json!(11)));
    assert!(!c("NumericLessThan", json!(10)));
    assert!(c("NumericLessThanEquals", json!(10)));
    assert!(c("NumericGreaterThan", json!(9)));
    assert!(!c("NumericGreaterThan", json!(10)));
    assert!(c("NumericGreaterThanEquals", json!(10)));
    assert!(!c("NumericEquals", json!("ten")));
}

#[test]
fn date_conditions() {
    let req = get().with_context("aws:CurrentTime", ["2026-11-25T12:00:00Z"]);
    let c = |op: &str, v: &str| cond_allows(json!({op: {"aws:CurrentTime": v}}), &req);
    assert!(c("DateGreaterThan", "2026-01-01T00:00:00Z"));
    assert!(!c("DateGreaterThan", "2027-01-01T00:00:00Z"));
    assert!(c("DateLessThan", "2027-01-01"));
    assert!(c("DateLessThanEquals", "2026-11-25T12:00:00Z"));
    assert!(c("DateGreaterThanEquals", "2026-11-25T12:00:00Z"));
    assert!(c("DateEquals", "2026-11-25T12:00:00.000Z"));
    assert!(!c("DateNotEquals", "2026-11-25T12:00:00Z"));
    assert!(c("DateNotEquals", "2026-11-25T12:00:01Z"));
    let epoch = get().with_context("aws:EpochTime", ["1795608000"]);
    assert!(cond_allows(
        json!({"DateEquals": {"aws:EpochTime": "2026-11-25T12:00:00Z"}}),
        &epoch
    ));
}

#[test]
fn bool_and_null_conditions() {
    let https = get().with_context("aws:SecureTransport", ["true"]);
    let http = get().with_context("aws:SecureTransport", ["false"]);
    let c = json!({"Bool": {"aws:SecureTransport": "true"}});
    assert!(cond_allows(c.clone(), &https));
    assert!(!cond_allows(c.clone(), &http));
    assert!(!cond_allows(c, &get()));
    // Null: true means "absent".
    assert!(cond_allows(
        json!({"Null": {"aws:MultiFactorAuthAge": "true"}}),
        &get()
    ));
    assert!(!cond_allows(
        json!({"Null": {"aws:SecureTransport": "true"}}),
        &https
    ));
    assert!(cond_allows(
        json!({"Null": {"aws:SecureTransport": false}}),
        &https
    ));
    assert!(!cond_allows(
        json!({"Null": {"aws:MultiFactorAuthAge": "false"}}),
        &get()
    ));
}

#[test]
fn ip_address_conditions() {
    let req = get().with_context("aws:SourceIp", ["203.0.113.25"]);
    assert!(cond_allows(
        json!({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "203.0.113.0/24"]}}),
        &req
    ));
    assert!(!cond_allows(
        json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        &req
    ));
    assert!(cond_allows(
        json!({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        &req
    ));
    assert!(!cond_allows(
        json!({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}),
        &req
    ));
    let v6 = get().with_context("aws:SourceIp", ["2001:db8::1"]);
    assert!(cond_allows(
        json!({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}),
        &v6
    ));
    assert!(!cond_allows(
        json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        &v6
    ));
}

#[test]
fn deny_unless_from_network() {
    let p = pol(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}]}));
    let inside = get().with_context("aws:SourceIp", ["192.0.2.10"]);
    let outside = get().with_context("aws:SourceIp", ["198.51.100.1"]);
    assert_eq!(
        evaluate(&inside, std::slice::from_ref(&p), None),
        Decision::Allow
    );
    assert_eq!(evaluate(&outside, &[p], None), Decision::ExplicitDeny);
}

#[test]
fn if_exists_suffix() {
    let c = json!({"StringEqualsIfExists": {"ec2:InstanceType": ["t3.micro"]}});
    assert!(cond_allows(c.clone(), &get()));
    assert!(cond_allows(
        c.clone(),
        &get().with_context("ec2:InstanceType", ["t3.micro"])
    ));
    assert!(!cond_allows(
        c,
        &get().with_context("ec2:InstanceType", ["m5.large"])
    ));
    let n = json!({"NumericLessThanIfExists": {"s3:max-keys": 5}});
    assert!(cond_allows(n.clone(), &get()));
    assert!(!cond_allows(n, &get().with_context("s3:max-keys", ["7"])));
}

#[test]
fn for_any_value_and_for_all_values() {
    let tags = |v: &[&str]| get().with_context("aws:TagKeys", v.iter().copied());
    let any = json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["env", "team"]}});
    assert!(cond_allows(any.clone(), &tags(&["env", "other"])));
    assert!(!cond_allows(any.clone(), &tags(&["other"])));
    assert!(!cond_allows(any, &get()));
    let all = json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team"]}});
    assert!(cond_allows(all.clone(), &tags(&["env", "team"])));
    assert!(!cond_allows(all.clone(), &tags(&["env", "other"])));
    assert!(
        cond_allows(all.clone(), &get()),
        "ForAllValues on a missing key is true"
    );
    assert!(cond_allows(all, &tags(&[])));
    let all_like = json!({"ForAllValues:StringLike": {"aws:TagKeys": "app-*"}});
    assert!(cond_allows(all_like.clone(), &tags(&["app-a", "app-b"])));
    assert!(!cond_allows(all_like, &tags(&["app-a", "b"])));
    // Negated operators apply per value.
    let none_secret = json!({"ForAllValues:StringNotEquals": {"aws:TagKeys": "secret"}});
    assert!(cond_allows(none_secret.clone(), &tags(&["a", "b"])));
    assert!(!cond_allows(none_secret, &tags(&["a", "secret"])));
    let some_other = json!({"ForAnyValue:StringNotLike": {"aws:TagKeys": "app-*"}});
    assert!(cond_allows(some_other.clone(), &tags(&["app-a", "x"])));
    assert!(!cond_allows(some_other, &tags(&["app-a"])));
}

#[test]
fn keys_are_anded_values_ored() {
    let c = json!({
        "StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"], "aws:PrincipalTag/team": "red"},
        "Bool": {"aws:SecureTransport": "true"}
    });
    let full = get()
        .with_context("aws:RequestedRegion", ["us-west-2"])
        .with_context("aws:PrincipalTag/team", ["red"])
        .with_context("aws:SecureTransport", ["true"]);
    assert!(cond_allows(c.clone(), &full));
    let wrong_team = full.clone().with_context("aws:PrincipalTag/team", ["blue"]);
    assert!(!cond_allows(c.clone(), &wrong_team));
    let insecure = full.clone().with_context("aws:SecureTransport", ["false"]);
    assert!(!cond_allows(c, &insecure));
}

#[test]
fn context_keys_are_case_insensitive() {
    let req = get()
        .with_context("ecr:ResourceTag/Env", ["prod"])
        .with_context("AWS:SOURCEIP", ["10.1.1.1"]);
    assert!(cond_allows(
        json!({"StringEquals": {"ecr:resourcetag/env": "prod"}}),
        &req
    ));
    assert!(cond_allows(
        json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        &req
    ));
}

#[test]
fn implicit_context_keys() {
    let req = get();
    assert!(cond_allows(
        json!({"StringEquals": {"aws:PrincipalAccount": ACCT}}),
        &req
    ));
    assert!(cond_allows(
        json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}),
        &req
    ));
    assert!(cond_allows(
        json!({"StringEquals": {"aws:ResourceAccount": ACCT}}),
        &req
    ));
    assert!(cond_allows(
        json!({"StringEquals": {"aws:username": "alice"}}),
        &req
    ));
    let other = get().with_resource_account(OTHER);
    assert_eq!(
        other.context_values("aws:ResourceAccount"),
        Some(vec![OTHER.to_string()])
    );
}

#[test]
fn variables_in_condition_values() {
    let c = json!({"StringEquals": {"aws:ResourceTag/owner": "${aws:username}"}});
    let owned = get().with_context("aws:ResourceTag/owner", ["alice"]);
    let foreign = get().with_context("aws:ResourceTag/owner", ["bob"]);
    assert!(cond_allows(c.clone(), &owned));
    assert!(!cond_allows(c, &foreign));
    let tag = json!({"StringEquals": {"ecr:ResourceTag/team": "${aws:PrincipalTag/team}"}});
    let req = get()
        .with_context("aws:PrincipalTag/team", ["red"])
        .with_context("ecr:ResourceTag/team", ["red"]);
    assert!(cond_allows(tag.clone(), &req));
    // Without the principal tag the value resolves to nothing: no match.
    assert!(!cond_allows(
        tag,
        &get().with_context("ecr:ResourceTag/team", ["red"])
    ));
}

#[test]
fn s3_deny_insecure_transport_bucket_policy() {
    let bp = Policy::parse_resource(r#"{
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AllowAccount", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::bucket/*"},
            {"Sid": "DenyHttp", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": ["arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*"],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
        ]
    }"#)
    .unwrap();
    let https = get().with_context("aws:SecureTransport", ["true"]);
    let http = get().with_context("aws:SecureTransport", ["false"]);
    assert_eq!(evaluate(&https, &[], Some(&bp)), Decision::Allow);
    assert_eq!(evaluate(&http, &[], Some(&bp)), Decision::ExplicitDeny);
}

#[test]
fn statement_with_failing_condition_does_not_deny() {
    let p = pol(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}}]}));
    assert_eq!(
        evaluate(
            &get().with_context("aws:RequestedRegion", ["us-east-1"]),
            std::slice::from_ref(&p),
            None
        ),
        Decision::Allow
    );
    assert_eq!(
        evaluate(
            &get().with_context("aws:RequestedRegion", ["eu-west-1"]),
            &[p],
            None
        ),
        Decision::ExplicitDeny
    );
}
