//! Service-level tests of STS through `Service::call`.

use super::*;
use crate::iam::Iam;
use crate::Principal;
use fc_store::SqliteStore;

const ACCT: &str = "000000000000";
const OTHER: &str = "222222222222";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;

fn setup() -> (Iam, Sts, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("in-memory store"));
    (Iam::new(store.clone()), Sts::new(store.clone()), store)
}

fn ctx(account: &str, service: &str, op: &str) -> RequestContext {
    RequestContext::for_account(account, "us-east-1", service, op)
}

async fn create_role(iam: &Iam, account: &str, name: &str, extra: Value) -> Value {
    let mut input = json!({"RoleName": name, "AssumeRolePolicyDocument": TRUST});
    if let (Value::Object(m), Value::Object(e)) = (&mut input, extra) {
        m.extend(e);
    }
    iam.call(&ctx(account, "iam", "CreateRole"), input)
        .await
        .expect("create role")
}

#[tokio::test]
async fn caller_identity() {
    let (_, sts, _) = setup();
    let out = sts
        .call(&ctx(ACCT, "sts", "GetCallerIdentity"), json!({}))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"UserId": ACCT, "Account": ACCT, "Arn": "arn:aws:iam::000000000000:root"})
    );
    assert_eq!(sts.name(), "sts");
}

#[tokio::test]
async fn assume_role_records_a_credential() {
    let (iam, sts, store) = setup();
    let role = create_role(&iam, ACCT, "deployer", json!({"Path": "/ci/"})).await;
    let role_arn = role["Role"]["Arn"].as_str().unwrap().to_string();
    let role_id = role["Role"]["RoleId"].as_str().unwrap().to_string();
    let out = sts
        .call(
            &ctx(ACCT, "sts", "AssumeRole"),
            json!({"RoleArn": role_arn, "RoleSessionName": "build-42", "DurationSeconds": 900}),
        )
        .await
        .unwrap();
    let creds = &out["Credentials"];
    let key = creds["AccessKeyId"].as_str().unwrap();
    assert!(key.starts_with("ASIA") && key.len() == 20);
    assert_eq!(creds["SecretAccessKey"].as_str().unwrap().len(), 40);
    let token = creds["SessionToken"].as_str().unwrap();
    assert!(token.len() > 100);
    let exp = creds["Expiration"].as_f64().unwrap();
    let now = fc_protocol::value::now_secs();
    assert!(exp > now + 800.0 && exp < now + 1000.0);
    let arn = "arn:aws:sts::000000000000:assumed-role/deployer/build-42";
    assert_eq!(out["AssumedRoleUser"]["Arn"], arn);
    assert_eq!(
        out["AssumedRoleUser"]["AssumedRoleId"],
        format!("{role_id}:build-42")
    );

    let cred = identity::lookup(store.as_ref(), key)
        .unwrap()
        .expect("saved");
    assert_eq!(cred.account, ACCT);
    assert_eq!(cred.arn, arn);
    assert_eq!(cred.user_id, format!("{role_id}:build-42"));
    assert_eq!(cred.session_token.as_deref(), Some(token));
    assert_eq!(cred.expires, Some(exp));
    assert_eq!(
        cred.secret_access_key,
        creds["SecretAccessKey"].as_str().unwrap()
    );

    // A call signed with it identifies as the assumed role.
    let mut c = ctx(&cred.account, "sts", "GetCallerIdentity");
    c.access_key = Some(key.to_string());
    c.principal = Principal {
        arn: cred.arn.clone(),
        user_id: cred.user_id.clone(),
    };
    let me = sts.call(&c, json!({})).await.unwrap();
    assert_eq!(me["Arn"], arn);
    // Role chaining is limited to an hour; sessions cannot get session tokens.
    c.operation = "AssumeRole".into();
    let e = sts
        .call(
            &c,
            json!({"RoleArn": role_arn, "RoleSessionName": "again", "DurationSeconds": 7200}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "ValidationError");
    let chained = sts
        .call(&c, json!({"RoleArn": role_arn, "RoleSessionName": "again"}))
        .await
        .unwrap();
    assert!(chained["Credentials"]["AccessKeyId"].is_string());
    c.operation = "GetSessionToken".into();
    let e = sts.call(&c, json!({})).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("AccessDenied", 403));

    // The role records its last use.
    let got = iam
        .call(
            &ctx(ACCT, "iam", "GetRole"),
            json!({"RoleName": "deployer"}),
        )
        .await
        .unwrap();
    assert_eq!(got["Role"]["RoleLastUsed"]["Region"], "us-east-1");
    // Key info.
    let info = sts
        .call(
            &ctx(OTHER, "sts", "GetAccessKeyInfo"),
            json!({"AccessKeyId": key}),
        )
        .await
        .unwrap();
    assert_eq!(info["Account"], ACCT);
}

#[tokio::test]
async fn assume_role_errors() {
    let (iam, sts, _) = setup();
    create_role(&iam, ACCT, "r", json!({})).await;
    let c = ctx(ACCT, "sts", "AssumeRole");
    let missing = "arn:aws:iam::000000000000:role/ghost";
    let e = sts
        .call(&c, json!({"RoleArn": missing, "RoleSessionName": "s1"}))
        .await
        .unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("AccessDenied", 403));
    assert_eq!(
        e.message,
        format!("User: arn:aws:iam::000000000000:root is not authorized to perform: sts:AssumeRole on resource: {missing}")
    );
    // Wrong path in the ARN is a different role.
    let e = sts
        .call(
            &c,
            json!({"RoleArn": "arn:aws:iam::000000000000:role/x/r", "RoleSessionName": "s1"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "AccessDenied");
    let good = "arn:aws:iam::000000000000:role/r";
    for (session, duration) in [
        ("s", 3600),
        ("bad name!", 3600),
        ("ok-name", 899),
        ("ok-name", 7200),
        ("ok-name", 50000),
    ] {
        let e = sts
            .call(
                &c,
                json!({"RoleArn": good, "RoleSessionName": session, "DurationSeconds": duration}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "ValidationError", "{session} {duration}");
    }
    let e = sts
        .call(&c, json!({"RoleSessionName": "s1"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "ValidationError");
    let e = sts
        .call(
            &c,
            json!({"RoleArn": "arn:aws:s3:::bucket/whatever", "RoleSessionName": "s1"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "ValidationError");
    let e = sts
        .call(
            &c,
            json!({"RoleArn": good, "RoleSessionName": "s1", "Policy": "{not json"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "MalformedPolicyDocument");
    let ok = sts
        .call(&c, json!({"RoleArn": good, "RoleSessionName": "s1",
            "Policy": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#}))
        .await
        .unwrap();
    assert!(ok["PackedPolicySize"].as_i64().unwrap() >= 1);
    let e = sts
        .call(&ctx(ACCT, "sts", "AssumeRoleWithWebIdentity"), json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "NotImplemented");
}

#[tokio::test]
async fn max_session_duration_is_honoured() {
    let (iam, sts, _) = setup();
    create_role(&iam, ACCT, "long", json!({"MaxSessionDuration": 43200})).await;
    let out = sts
        .call(
            &ctx(ACCT, "sts", "AssumeRole"),
            json!({"RoleArn": "arn:aws:iam::000000000000:role/long", "RoleSessionName": "s1", "DurationSeconds": 43200}),
        )
        .await
        .unwrap();
    let exp = out["Credentials"]["Expiration"].as_f64().unwrap();
    assert!(exp > fc_protocol::value::now_secs() + 43000.0);
}

#[tokio::test]
async fn cross_account_assume_role() {
    let (iam, sts, store) = setup();
    create_role(&iam, OTHER, "cross", json!({})).await;
    let role_arn = format!("arn:aws:iam::{OTHER}:role/cross");
    let out = sts
        .call(
            &ctx(ACCT, "sts", "AssumeRole"),
            json!({"RoleArn": role_arn, "RoleSessionName": "visitor"}),
        )
        .await
        .unwrap();
    assert_eq!(
        out["AssumedRoleUser"]["Arn"],
        format!("arn:aws:sts::{OTHER}:assumed-role/cross/visitor")
    );
    let key = out["Credentials"]["AccessKeyId"].as_str().unwrap();
    let cred = identity::lookup(store.as_ref(), key).unwrap().unwrap();
    assert_eq!(cred.account, OTHER);
    // The role does not exist in the caller's own account.
    let e = sts
        .call(
            &ctx(ACCT, "sts", "AssumeRole"),
            json!({"RoleArn": "arn:aws:iam::000000000000:role/cross", "RoleSessionName": "visitor"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "AccessDenied");
    let info = sts
        .call(
            &ctx(ACCT, "sts", "GetAccessKeyInfo"),
            json!({"AccessKeyId": key}),
        )
        .await
        .unwrap();
    assert_eq!(info["Account"], OTHER);
}

#[tokio::test]
async fn session_tokens() {
    let (iam, sts, store) = setup();
    // Root: capped at an hour.
    let out = sts
        .call(
            &ctx(ACCT, "sts", "GetSessionToken"),
            json!({"DurationSeconds": 7200}),
        )
        .await
        .unwrap();
    let exp = out["Credentials"]["Expiration"].as_f64().unwrap();
    assert!(exp <= fc_protocol::value::now_secs() + 3601.0);
    let key = out["Credentials"]["AccessKeyId"].as_str().unwrap();
    let cred = identity::lookup(store.as_ref(), key).unwrap().unwrap();
    assert_eq!(cred.arn, "arn:aws:iam::000000000000:root");
    assert!(cred.session_token.is_some());

    // An IAM user's session token resolves to that user.
    let u = iam
        .call(&ctx(ACCT, "iam", "CreateUser"), json!({"UserName": "dev"}))
        .await
        .unwrap();
    let mut c = ctx(ACCT, "sts", "GetSessionToken");
    c.principal = Principal {
        arn: u["User"]["Arn"].as_str().unwrap().into(),
        user_id: u["User"]["UserId"].as_str().unwrap().into(),
    };
    let out = sts.call(&c, json!({})).await.unwrap();
    let exp = out["Credentials"]["Expiration"].as_f64().unwrap();
    assert!(exp > fc_protocol::value::now_secs() + 43000.0);
    let key = out["Credentials"]["AccessKeyId"].as_str().unwrap();
    let cred = identity::lookup(store.as_ref(), key).unwrap().unwrap();
    assert_eq!(cred.arn, "arn:aws:iam::000000000000:user/dev");
    assert_eq!(cred.user_id, c.principal.user_id);
    let e = sts
        .call(&c, json!({"DurationSeconds": 10}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "ValidationError");

    // Key info for unknown keys.
    let info = sts
        .call(
            &ctx(ACCT, "sts", "GetAccessKeyInfo"),
            json!({"AccessKeyId": "AKIAIOSFODNN7EXAMPLE"}),
        )
        .await
        .unwrap();
    assert_eq!(info["Account"], ACCT);
    let info = sts
        .call(
            &ctx(ACCT, "sts", "GetAccessKeyInfo"),
            json!({"AccessKeyId": "123456789012"}),
        )
        .await
        .unwrap();
    assert_eq!(info["Account"], "123456789012");
}

/// Serialize an output as the server would (awsQuery XML) and read it back like botocore.
fn wire(op: &str, out: &Value) -> Value {
    let model = fc_protocol::service_model("sts").expect("model");
    let operation = model.operation(op).expect("operation");
    let ctx = fc_protocol::ResponseContext {
        request_id: "r".into(),
    };
    let resp =
        fc_protocol::serialize_response(model, fc_protocol::Protocol::Query, operation, out, &ctx);
    fc_protocol::output::parse_response(model, fc_protocol::Protocol::Query, operation, &resp)
        .expect("parses")
}

#[tokio::test]
async fn outputs_survive_the_wire() {
    let (iam, sts, _) = setup();
    create_role(&iam, ACCT, "r", json!({})).await;
    let assumed = sts
        .call(
            &ctx(ACCT, "sts", "AssumeRole"),
            json!({"RoleArn": "arn:aws:iam::000000000000:role/r", "RoleSessionName": "s1", "SourceIdentity": "me"}),
        )
        .await
        .unwrap();
    assert_eq!(wire("AssumeRole", &assumed), assumed);
    let who = sts
        .call(&ctx(ACCT, "sts", "GetCallerIdentity"), json!({}))
        .await
        .unwrap();
    assert_eq!(wire("GetCallerIdentity", &who), who);
    let token = sts
        .call(&ctx(ACCT, "sts", "GetSessionToken"), json!({}))
        .await
        .unwrap();
    assert_eq!(wire("GetSessionToken", &token), token);
    let info = sts
        .call(
            &ctx(ACCT, "sts", "GetAccessKeyInfo"),
            json!({"AccessKeyId": "AKIAIOSFODNN7EXAMPLE"}),
        )
        .await
        .unwrap();
    assert_eq!(wire("GetAccessKeyInfo", &info), info);
}
