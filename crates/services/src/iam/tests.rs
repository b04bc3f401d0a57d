//! Service-level tests of IAM through `Service::call`.

use super::*;
use crate::identity;
use crate::Principal;
use fc_store::SqliteStore;
use serde_json::json;

const ACCT: &str = "000000000000";

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const DOC2: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:*","Resource":"*"}]}"#;

fn setup() -> (Iam, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("in-memory store"));
    (Iam::new(store.clone()), store)
}

fn ctx(op: &str) -> RequestContext {
    RequestContext::for_account(ACCT, "us-east-1", "iam", op)
}

async fn call(iam: &Iam, op: &str, input: Value) -> Result<Value, ApiError> {
    iam.call(&ctx(op), input).await
}

async fn ok(iam: &Iam, op: &str, input: Value) -> Value {
    call(iam, op, input)
        .await
        .unwrap_or_else(|e| panic!("{op} failed: {e}"))
}

async fn err(iam: &Iam, op: &str, input: Value) -> ApiError {
    match call(iam, op, input).await {
        Ok(v) => panic!("{op} unexpectedly succeeded: {v}"),
        Err(e) => e,
    }
}

fn decode(s: &Value) -> Value {
    let text = percent_encoding::percent_decode_str(s.as_str().expect("string"))
        .decode_utf8()
        .expect("utf8")
        .to_string();
    serde_json::from_str(&text).expect("json document")
}

async fn role(iam: &Iam, name: &str) -> Value {
    ok(
        iam,
        "CreateRole",
        json!({"RoleName": name, "AssumeRolePolicyDocument": TRUST}),
    )
    .await
}

#[tokio::test]
async fn role_lifecycle() {
    let (iam, _) = setup();
    let out = ok(
        &iam,
        "CreateRole",
        json!({"RoleName": "lambda-exec", "Path": "/service/", "AssumeRolePolicyDocument": TRUST,
               "Description": "d", "Tags": [{"Key": "team", "Value": "a"}]}),
    )
    .await;
    let r = &out["Role"];
    assert_eq!(
        r["Arn"],
        "arn:aws:iam::000000000000:role/service/lambda-exec"
    );
    assert_eq!(r["Path"], "/service/");
    assert!(r["RoleId"].as_str().unwrap().starts_with("AROA"));
    assert!(r["CreateDate"].is_number());
    assert_eq!(r["MaxSessionDuration"], 3600);
    // Documents come back percent-encoded, as IAM sends them.
    assert!(r["AssumeRolePolicyDocument"]
        .as_str()
        .unwrap()
        .starts_with("%7B"));
    assert_eq!(
        decode(&r["AssumeRolePolicyDocument"])["Statement"][0]["Action"],
        "sts:AssumeRole"
    );

    let e = err(
        &iam,
        "CreateRole",
        json!({"RoleName": "LAMBDA-EXEC", "AssumeRolePolicyDocument": TRUST}),
    )
    .await;
    assert_eq!((e.code.as_str(), e.status), ("EntityAlreadyExists", 409));
    assert_eq!(e.message, "Role with name LAMBDA-EXEC already exists.");

    let got = ok(&iam, "GetRole", json!({"RoleName": "lambda-exec"})).await;
    assert_eq!(got["Role"]["Description"], "d");
    assert_eq!(got["Role"]["Tags"][0]["Key"], "team");
    assert!(got["Role"]["RoleLastUsed"].is_object());

    ok(
        &iam,
        "UpdateRole",
        json!({"RoleName": "lambda-exec", "Description": "new", "MaxSessionDuration": 7200}),
    )
    .await;
    let e = err(
        &iam,
        "UpdateRole",
        json!({"RoleName": "lambda-exec", "MaxSessionDuration": 60}),
    )
    .await;
    assert_eq!(e.code, "ValidationError");
    let trust2 = TRUST.replace("lambda", "ec2");
    ok(
        &iam,
        "UpdateAssumeRolePolicy",
        json!({"RoleName": "lambda-exec", "PolicyDocument": trust2}),
    )
    .await;
    let got = ok(&iam, "GetRole", json!({"RoleName": "lambda-exec"})).await;
    assert_eq!(got["Role"]["MaxSessionDuration"], 7200);
    assert_eq!(got["Role"]["Description"], "new");
    assert_eq!(
        decode(&got["Role"]["AssumeRolePolicyDocument"])["Statement"][0]["Principal"]["Service"],
        "ec2.amazonaws.com"
    );

    ok(&iam, "TagRole", json!({"RoleName": "lambda-exec", "Tags": [{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "b"}]})).await;
    ok(
        &iam,
        "UntagRole",
        json!({"RoleName": "lambda-exec", "TagKeys": ["env"]}),
    )
    .await;
    let tags = ok(&iam, "ListRoleTags", json!({"RoleName": "lambda-exec"})).await;
    assert_eq!(tags["Tags"], json!([{"Key": "team", "Value": "b"}]));
    assert_eq!(tags["IsTruncated"], false);

    ok(&iam, "DeleteRole", json!({"RoleName": "lambda-exec"})).await;
    let e = err(&iam, "GetRole", json!({"RoleName": "lambda-exec"})).await;
    assert_eq!((e.code.as_str(), e.status), ("NoSuchEntity", 404));
    assert_eq!(e.message, "The role with name lambda-exec cannot be found.");
}

#[tokio::test]
async fn role_validation() {
    let (iam, _) = setup();
    let e = err(&iam, "CreateRole", json!({"RoleName": "r"})).await;
    assert_eq!(e.code, "ValidationError");
    for bad in [
        "not json",
        DOC,
        r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#,
    ] {
        let e = err(
            &iam,
            "CreateRole",
            json!({"RoleName": "r", "AssumeRolePolicyDocument": bad}),
        )
        .await;
        assert_eq!(e.code, "MalformedPolicyDocument", "{bad}");
    }
    let e = err(
        &iam,
        "CreateRole",
        json!({"RoleName": "bad name!", "AssumeRolePolicyDocument": TRUST}),
    )
    .await;
    assert_eq!(e.code, "ValidationError");
    let e = err(
        &iam,
        "CreateRole",
        json!({"RoleName": "r", "Path": "noslash", "AssumeRolePolicyDocument": TRUST}),
    )
    .await;
    assert_eq!(e.code, "ValidationError");
    let e = err(
        &iam,
        "CreateRole",
        json!({"RoleName": "r", "AssumeRolePolicyDocument": TRUST,
        "Tags": [{"Key": "aws:x", "Value": "v"}]}),
    )
    .await;
    assert_eq!(e.code, "InvalidInput");
    let e = err(&iam, "DeleteRole", json!({"RoleName": "nope"})).await;
    assert_eq!(e.code, "NoSuchEntity");
}

#[tokio::test]
async fn list_roles_paginates_250() {
    let (iam, _) = setup();
    for i in 0..250 {
        let path = if i % 2 == 0 { "/even/" } else { "/" };
        ok(&iam, "CreateRole", json!({"RoleName": format!("role-{i:03}"), "Path": path, "AssumeRolePolicyDocument": TRUST})).await;
    }
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut input = json!({"MaxItems": 100});
        if let Some(m) = &marker {
            input["Marker"] = json!(m);
        }
        let out = ok(&iam, "ListRoles", input).await;
        pages += 1;
        for r in out["Roles"].as_array().unwrap() {
            names.push(r["RoleName"].as_str().unwrap().to_string());
        }
        if out["IsTruncated"] == true {
            marker = Some(out["Marker"].as_str().unwrap().to_string());
        } else {
            assert!(out.get("Marker").is_none());
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 250);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 250);
    assert_eq!(names[0], "role-000");
    // Default page size is 100.
    let out = ok(&iam, "ListRoles", json!({})).await;
    assert_eq!(out["Roles"].as_array().unwrap().len(), 100);
    assert_eq!(out["IsTruncated"], true);
    // PathPrefix.
    let out = ok(
        &iam,
        "ListRoles",
        json!({"PathPrefix": "/even/", "MaxItems": 1000}),
    )
    .await;
    assert_eq!(out["Roles"].as_array().unwrap().len(), 125);
    // A forged marker is refused.
    let e = err(&iam, "ListRoles", json!({"Marker": "bogus"})).await;
    assert_eq!(e.code, "ValidationError");
    let e = err(&iam, "ListRoles", json!({"MaxItems": 0})).await;
    assert_eq!(e.code, "ValidationError");
}

#[tokio::test]
async fn users_and_access_keys() {
    let (iam, store) = setup();
    let u = ok(
        &iam,
        "CreateUser",
        json!({"UserName": "alice", "Path": "/devs/", "Tags": [{"Key": "k", "Value": "v"}]}),
    )
    .await;
    assert_eq!(
        u["User"]["Arn"],
        "arn:aws:iam::000000000000:user/devs/alice"
    );
    let uid = u["User"]["UserId"].as_str().unwrap().to_string();
    assert!(uid.starts_with("AIDA"));
    let e = err(&iam, "CreateUser", json!({"UserName": "alice"})).await;
    assert_eq!(e.code, "EntityAlreadyExists");
    ok(&iam, "CreateUser", json!({"UserName": "bob"})).await;
    let list = ok(&iam, "ListUsers", json!({})).await;
    assert_eq!(list["Users"].as_array().unwrap().len(), 2);
    let list = ok(&iam, "ListUsers", json!({"PathPrefix": "/devs"})).await;
    assert_eq!(list["Users"][0]["UserName"], "alice");
    assert_eq!(list["Users"].as_array().unwrap().len(), 1);

    // Access keys land in the credentials index.
    let k = ok(&iam, "CreateAccessKey", json!({"UserName": "alice"})).await;
    let key = k["AccessKey"]["AccessKeyId"].as_str().unwrap().to_string();
    let secret = k["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(key.starts_with("AKIA") && key.len() == 20);
    assert_eq!(secret.len(), 40);
    assert_eq!(k["AccessKey"]["Status"], "Active");
    let cred = identity::lookup(store.as_ref(), &key)
        .unwrap()
        .expect("recorded");
    assert_eq!(cred.account, ACCT);
    assert_eq!(cred.arn, "arn:aws:iam::000000000000:user/devs/alice");
    assert_eq!(cred.user_id, uid);
    assert_eq!(cred.secret_access_key, secret);
    ok(&iam, "CreateAccessKey", json!({"UserName": "alice"})).await;
    let e = err(&iam, "CreateAccessKey", json!({"UserName": "alice"})).await;
    assert_eq!(e.code, "LimitExceeded");
    let keys = ok(&iam, "ListAccessKeys", json!({"UserName": "alice"})).await;
    assert_eq!(keys["AccessKeyMetadata"].as_array().unwrap().len(), 2);

    ok(
        &iam,
        "UpdateAccessKey",
        json!({"UserName": "alice", "AccessKeyId": key, "Status": "Inactive"}),
    )
    .await;
    assert_eq!(
        identity::lookup(store.as_ref(), &key)
            .unwrap()
            .unwrap()
            .status,
        "Inactive"
    );
    let e = err(
        &iam,
        "UpdateAccessKey",
        json!({"UserName": "alice", "AccessKeyId": key, "Status": "Maybe"}),
    )
    .await;
    assert_eq!(e.code, "ValidationError");
    let last = ok(&iam, "GetAccessKeyLastUsed", json!({"AccessKeyId": key})).await;
    assert_eq!(last["UserName"], "alice");
    assert_eq!(last["AccessKeyLastUsed"]["ServiceName"], "N/A");

    // GetUser with no name = the caller.
    let mut c = ctx("GetUser");
    c.principal = Principal {
        arn: cred.arn.clone(),
        user_id: cred.user_id.clone(),
    };
    let me = iam.call(&c, json!({})).await.unwrap();
    assert_eq!(me["User"]["UserName"], "alice");
    assert_eq!(me["User"]["Tags"][0]["Key"], "k");
    let root = ok(&iam, "GetUser", json!({})).await;
    assert_eq!(root["User"]["Arn"], "arn:aws:iam::000000000000:root");
    assert_eq!(root["User"]["UserId"], ACCT);
    // The caller's own keys.
    let mut c = ctx("ListAccessKeys");
    c.principal = Principal {
        arn: cred.arn.clone(),
        user_id: cred.user_id.clone(),
    };
    let mine = iam.call(&c, json!({})).await.unwrap();
    assert_eq!(mine["AccessKeyMetadata"].as_array().unwrap().len(), 2);

    let e = err(&iam, "DeleteUser", json!({"UserName": "alice"})).await;
    assert_eq!((e.code.as_str(), e.status), ("DeleteConflict", 409));
    for k in keys["AccessKeyMetadata"].as_array().unwrap() {
        ok(
            &iam,
            "DeleteAccessKey",
            json!({"UserName": "alice", "AccessKeyId": k["AccessKeyId"]}),
        )
        .await;
    }
    assert!(identity::lookup(store.as_ref(), &key).unwrap().is_none());
    let e = err(
        &iam,
        "DeleteAccessKey",
        json!({"UserName": "alice", "AccessKeyId": key}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");

    // Rename and move.
    ok(
        &iam,
        "UpdateUser",
        json!({"UserName": "alice", "NewUserName": "alice2", "NewPath": "/"}),
    )
    .await;
    let e = err(&iam, "GetUser", json!({"UserName": "alice"})).await;
    assert_eq!(e.code, "NoSuchEntity");
    let got = ok(&iam, "GetUser", json!({"UserName": "alice2"})).await;
    assert_eq!(got["User"]["Arn"], "arn:aws:iam::000000000000:user/alice2");
    assert_eq!(got["User"]["UserId"], uid.as_str());
    ok(
        &iam,
        "TagUser",
        json!({"UserName": "alice2", "Tags": [{"Key": "a", "Value": "1"}]}),
    )
    .await;
    ok(
        &iam,
        "UntagUser",
        json!({"UserName": "alice2", "TagKeys": ["k"]}),
    )
    .await;
    let tags = ok(&iam, "ListUserTags", json!({"UserName": "alice2"})).await;
    assert_eq!(tags["Tags"], json!([{"Key": "a", "Value": "1"}]));
    ok(&iam, "DeleteUser", json!({"UserName": "alice2"})).await;
    let e = err(&iam, "DeleteUser", json!({"UserName": "alice2"})).await;
    assert_eq!(e.code, "NoSuchEntity");
}

#[tokio::test]
async fn groups() {
    let (iam, _) = setup();
    let g = ok(&iam, "CreateGroup", json!({"GroupName": "admins"})).await;
    assert_eq!(g["Group"]["Arn"], "arn:aws:iam::000000000000:group/admins");
    assert!(g["Group"]["GroupId"].as_str().unwrap().starts_with("AGPA"));
    let e = err(&iam, "CreateGroup", json!({"GroupName": "admins"})).await;
    assert_eq!(e.code, "EntityAlreadyExists");
    ok(
        &iam,
        "CreateGroup",
        json!({"GroupName": "ops", "Path": "/x/"}),
    )
    .await;
    ok(&iam, "CreateUser", json!({"UserName": "u1"})).await;
    ok(&iam, "CreateUser", json!({"UserName": "u2"})).await;
    ok(
        &iam,
        "AddUserToGroup",
        json!({"GroupName": "admins", "UserName": "u1"}),
    )
    .await;
    ok(
        &iam,
        "AddUserToGroup",
        json!({"GroupName": "admins", "UserName": "u2"}),
    )
    .await;
    ok(
        &iam,
        "AddUserToGroup",
        json!({"GroupName": "ops", "UserName": "u1"}),
    )
    .await;
    let e = err(
        &iam,
        "AddUserToGroup",
        json!({"GroupName": "nope", "UserName": "u1"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");

    let got = ok(&iam, "GetGroup", json!({"GroupName": "admins"})).await;
    assert_eq!(got["Group"]["GroupName"], "admins");
    let users: Vec<_> = got["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["UserName"].clone())
        .collect();
    assert_eq!(users, vec![json!("u1"), json!("u2")]);
    let page = ok(
        &iam,
        "GetGroup",
        json!({"GroupName": "admins", "MaxItems": 1}),
    )
    .await;
    assert_eq!(page["IsTruncated"], true);
    let page2 = ok(
        &iam,
        "GetGroup",
        json!({"GroupName": "admins", "Marker": page["Marker"]}),
    )
    .await;
    assert_eq!(page2["Users"][0]["UserName"], "u2");

    let for_user = ok(&iam, "ListGroupsForUser", json!({"UserName": "u1"})).await;
    assert_eq!(for_user["Groups"].as_array().unwrap().len(), 2);
    let listed = ok(&iam, "ListGroups", json!({"PathPrefix": "/x/"})).await;
    assert_eq!(listed["Groups"][0]["GroupName"], "ops");

    let e = err(&iam, "DeleteGroup", json!({"GroupName": "admins"})).await;
    assert_eq!(e.code, "DeleteConflict");
    let e = err(&iam, "DeleteUser", json!({"UserName": "u1"})).await;
    assert_eq!(e.code, "DeleteConflict");
    ok(
        &iam,
        "UpdateGroup",
        json!({"GroupName": "ops", "NewGroupName": "operators"}),
    )
    .await;
    let for_user = ok(&iam, "ListGroupsForUser", json!({"UserName": "u1"})).await;
    let names: Vec<_> = for_user["Groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["GroupName"].clone())
        .collect();
    assert_eq!(names, vec![json!("admins"), json!("operators")]);

    ok(
        &iam,
        "RemoveUserFromGroup",
        json!({"GroupName": "admins", "UserName": "u1"}),
    )
    .await;
    ok(
        &iam,
        "RemoveUserFromGroup",
        json!({"GroupName": "admins", "UserName": "u2"}),
    )
    .await;
    let e = err(
        &iam,
        "RemoveUserFromGroup",
        json!({"GroupName": "admins", "UserName": "u2"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    ok(&iam, "DeleteGroup", json!({"GroupName": "admins"})).await;
    let e = err(&iam, "GetGroup", json!({"GroupName": "admins"})).await;
    assert_eq!(e.code, "NoSuchEntity");
}

#[tokio::test]
async fn managed_policies_and_versions() {
    let (iam, _) = setup();
    let p = ok(&iam, "CreatePolicy", json!({"PolicyName": "read", "Path": "/app/", "PolicyDocument": DOC, "Description": "reads"})).await;
    let arn = p["Policy"]["Arn"].as_str().unwrap().to_string();
    assert_eq!(arn, "arn:aws:iam::000000000000:policy/app/read");
    assert_eq!(p["Policy"]["DefaultVersionId"], "v1");
    assert_eq!(p["Policy"]["AttachmentCount"], 0);
    assert!(p["Policy"]["PolicyId"]
        .as_str()
        .unwrap()
        .starts_with("ANPA"));
    let e = err(
        &iam,
        "CreatePolicy",
        json!({"PolicyName": "read", "PolicyDocument": DOC}),
    )
    .await;
    assert_eq!(e.code, "EntityAlreadyExists");
    let e = err(
        &iam,
        "CreatePolicy",
        json!({"PolicyName": "bad", "PolicyDocument": "{"}),
    )
    .await;
    assert_eq!(e.code, "MalformedPolicyDocument");
    let e = err(
        &iam,
        "CreatePolicy",
        json!({"PolicyName": "bad", "PolicyDocument": TRUST}),
    )
    .await;
    assert_eq!(e.code, "MalformedPolicyDocument");

    let got = ok(&iam, "GetPolicy", json!({"PolicyArn": arn})).await;
    assert_eq!(got["Policy"]["Description"], "reads");
    let e = err(
        &iam,
        "GetPolicy",
        json!({"PolicyArn": "arn:aws:iam::000000000000:policy/none"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    let e = err(&iam, "GetPolicy", json!({"PolicyArn": "garbage"})).await;
    assert_eq!(e.code, "InvalidInput");

    // Versions: up to 5.
    for i in 2..=5 {
        let v = ok(
            &iam,
            "CreatePolicyVersion",
            json!({"PolicyArn": arn, "PolicyDocument": DOC2, "SetAsDefault": i == 3}),
        )
        .await;
        assert_eq!(v["PolicyVersion"]["VersionId"], format!("v{i}"));
    }
    let e = err(
        &iam,
        "CreatePolicyVersion",
        json!({"PolicyArn": arn, "PolicyDocument": DOC2}),
    )
    .await;
    assert_eq!((e.code.as_str(), e.status), ("LimitExceeded", 409));
    let got = ok(&iam, "GetPolicy", json!({"PolicyArn": arn})).await;
    assert_eq!(got["Policy"]["DefaultVersionId"], "v3");
    let versions = ok(&iam, "ListPolicyVersions", json!({"PolicyArn": arn})).await;
    let ids: Vec<_> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["VersionId"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![
            json!("v5"),
            json!("v4"),
            json!("v3"),
            json!("v2"),
            json!("v1")
        ]
    );
    assert_eq!(versions["Versions"][2]["IsDefaultVersion"], true);
    let v1 = ok(
        &iam,
        "GetPolicyVersion",
        json!({"PolicyArn": arn, "VersionId": "v1"}),
    )
    .await;
    assert_eq!(
        decode(&v1["PolicyVersion"]["Document"])["Statement"][0]["Action"],
        "s3:GetObject"
    );
    assert_eq!(v1["PolicyVersion"]["IsDefaultVersion"], false);
    let e = err(
        &iam,
        "DeletePolicyVersion",
        json!({"PolicyArn": arn, "VersionId": "v3"}),
    )
    .await;
    assert_eq!(e.code, "DeleteConflict");
    let e = err(
        &iam,
        "GetPolicyVersion",
        json!({"PolicyArn": arn, "VersionId": "v9"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    ok(
        &iam,
        "SetDefaultPolicyVersion",
        json!({"PolicyArn": arn, "VersionId": "v1"}),
    )
    .await;
    let e = err(&iam, "DeletePolicy", json!({"PolicyArn": arn})).await;
    assert_eq!(e.code, "DeleteConflict");
    for v in ["v2", "v3", "v4", "v5"] {
        ok(
            &iam,
            "DeletePolicyVersion",
            json!({"PolicyArn": arn, "VersionId": v}),
        )
        .await;
    }
    // Versions numbers keep increasing after deletes.
    let v = ok(
        &iam,
        "CreatePolicyVersion",
        json!({"PolicyArn": arn, "PolicyDocument": DOC2}),
    )
    .await;
    assert_eq!(v["PolicyVersion"]["VersionId"], "v6");
    ok(
        &iam,
        "DeletePolicyVersion",
        json!({"PolicyArn": arn, "VersionId": "v6"}),
    )
    .await;

    // Attached policies cannot be deleted.
    role(&iam, "r").await;
    ok(
        &iam,
        "AttachRolePolicy",
        json!({"RoleName": "r", "PolicyArn": arn}),
    )
    .await;
    let got = ok(&iam, "GetPolicy", json!({"PolicyArn": arn})).await;
    assert_eq!(got["Policy"]["AttachmentCount"], 1);
    let e = err(&iam, "DeletePolicy", json!({"PolicyArn": arn})).await;
    assert_eq!(e.code, "DeleteConflict");
    let local = ok(&iam, "ListPolicies", json!({"Scope": "Local"})).await;
    assert_eq!(local["Policies"].as_array().unwrap().len(), 1);
    let attached = ok(&iam, "ListPolicies", json!({"OnlyAttached": true})).await;
    assert_eq!(attached["Policies"].as_array().unwrap().len(), 1);
    ok(
        &iam,
        "DetachRolePolicy",
        json!({"RoleName": "r", "PolicyArn": arn}),
    )
    .await;
    let e = err(
        &iam,
        "DetachRolePolicy",
        json!({"RoleName": "r", "PolicyArn": arn}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    ok(
        &iam,
        "TagPolicy",
        json!({"PolicyArn": arn, "Tags": [{"Key": "a", "Value": "b"}]}),
    )
    .await;
    let tags = ok(&iam, "ListPolicyTags", json!({"PolicyArn": arn})).await;
    assert_eq!(tags["Tags"][0]["Key"], "a");
    ok(&iam, "DeletePolicy", json!({"PolicyArn": arn})).await;
    let e = err(&iam, "GetPolicy", json!({"PolicyArn": arn})).await;
    assert_eq!(e.code, "NoSuchEntity");
}

#[tokio::test]
async fn aws_managed_policies() {
    let (iam, _) = setup();
    let admin = "arn:aws:iam::aws:policy/AdministratorAccess";
    let lambda = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";
    let got = ok(&iam, "GetPolicy", json!({"PolicyArn": lambda})).await;
    assert_eq!(got["Policy"]["Path"], "/service-role/");
    assert_eq!(got["Policy"]["PolicyName"], "AWSLambdaBasicExecutionRole");
    let v = ok(
        &iam,
        "GetPolicyVersion",
        json!({"PolicyArn": admin, "VersionId": "v1"}),
    )
    .await;
    let doc = decode(&v["PolicyVersion"]["Document"]);
    assert_eq!(doc["Statement"][0]["Action"], "*");
    assert_eq!(v["PolicyVersion"]["IsDefaultVersion"], true);

    let all_aws = ok(
        &iam,
        "ListPolicies",
        json!({"Scope": "AWS", "MaxItems": 1000}),
    )
    .await;
    let names: Vec<String> = all_aws["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["PolicyName"].as_str().unwrap().to_string())
        .collect();
    for n in [
        "AdministratorAccess",
        "ReadOnlyAccess",
        "PowerUserAccess",
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEKSClusterPolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonECSTaskExecutionRolePolicy",
        "AmazonS3FullAccess",
        "AWSElasticBeanstalkWebTier",
        "ElasticLoadBalancingFullAccess",
        "AutoScalingFullAccess",
        "AWSBatchServiceRole",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing");
    }
    let sr = ok(
        &iam,
        "ListPolicies",
        json!({"Scope": "AWS", "PathPrefix": "/service-role/"}),
    )
    .await;
    assert!(sr["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["Path"] == "/service-role/"));
    let e = err(&iam, "ListPolicies", json!({"Scope": "Mine"})).await;
    assert_eq!(e.code, "ValidationError");

    role(&iam, "fn").await;
    ok(
        &iam,
        "AttachRolePolicy",
        json!({"RoleName": "fn", "PolicyArn": lambda}),
    )
    .await;
    ok(
        &iam,
        "AttachRolePolicy",
        json!({"RoleName": "fn", "PolicyArn": admin}),
    )
    .await;
    // Idempotent.
    ok(
        &iam,
        "AttachRolePolicy",
        json!({"RoleName": "fn", "PolicyArn": admin}),
    )
    .await;
    let e = err(
        &iam,
        "AttachRolePolicy",
        json!({"RoleName": "fn", "PolicyArn": "arn:aws:iam::aws:policy/NoSuchThing"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    let e = err(
        &iam,
        "AttachRolePolicy",
        json!({"RoleName": "missing", "PolicyArn": admin}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    let att = ok(&iam, "ListAttachedRolePolicies", json!({"RoleName": "fn"})).await;
    assert_eq!(
        att["AttachedPolicies"],
        json!([
            {"PolicyName": "AWSLambdaBasicExecutionRole", "PolicyArn": lambda},
            {"PolicyName": "AdministratorAccess", "PolicyArn": admin},
        ])
    );
    let att = ok(
        &iam,
        "ListAttachedRolePolicies",
        json!({"RoleName": "fn", "PathPrefix": "/service-role/"}),
    )
    .await;
    assert_eq!(att["AttachedPolicies"].as_array().unwrap().len(), 1);
    let only = ok(&iam, "ListPolicies", json!({"OnlyAttached": true})).await;
    assert_eq!(only["Policies"].as_array().unwrap().len(), 2);
    let got = ok(&iam, "GetPolicy", json!({"PolicyArn": admin})).await;
    assert_eq!(got["Policy"]["AttachmentCount"], 1);

    ok(&iam, "CreateUser", json!({"UserName": "u"})).await;
    ok(&iam, "CreateGroup", json!({"GroupName": "g"})).await;
    ok(
        &iam,
        "AttachUserPolicy",
        json!({"UserName": "u", "PolicyArn": admin}),
    )
    .await;
    ok(
        &iam,
        "AttachGroupPolicy",
        json!({"GroupName": "g", "PolicyArn": admin}),
    )
    .await;
    let ents = ok(&iam, "ListEntitiesForPolicy", json!({"PolicyArn": admin})).await;
    assert_eq!(ents["PolicyRoles"][0]["RoleName"], "fn");
    assert_eq!(ents["PolicyUsers"][0]["UserName"], "u");
    assert_eq!(ents["PolicyGroups"][0]["GroupName"], "g");
    let ents = ok(
        &iam,
        "ListEntitiesForPolicy",
        json!({"PolicyArn": admin, "EntityFilter": "User"}),
    )
    .await;
    assert_eq!(ents["PolicyRoles"].as_array().unwrap().len(), 0);
    assert_eq!(ents["PolicyUsers"].as_array().unwrap().len(), 1);
    let att = ok(&iam, "ListAttachedGroupPolicies", json!({"GroupName": "g"})).await;
    assert_eq!(att["AttachedPolicies"][0]["PolicyArn"], admin);
    let att = ok(&iam, "ListAttachedUserPolicies", json!({"UserName": "u"})).await;
    assert_eq!(att["AttachedPolicies"][0]["PolicyArn"], admin);

    // AWS-managed policies are read-only.
    let e = err(&iam, "DeletePolicy", json!({"PolicyArn": admin})).await;
    assert_eq!(e.code, "AccessDenied");
    let e = err(
        &iam,
        "CreatePolicyVersion",
        json!({"PolicyArn": admin, "PolicyDocument": DOC}),
    )
    .await;
    assert_eq!(e.code, "AccessDenied");

    // Role with attached policies cannot be deleted; detach then delete.
    let e = err(&iam, "DeleteRole", json!({"RoleName": "fn"})).await;
    assert_eq!(e.code, "DeleteConflict");
    ok(
        &iam,
        "DetachRolePolicy",
        json!({"RoleName": "fn", "PolicyArn": admin}),
    )
    .await;
    ok(
        &iam,
        "DetachRolePolicy",
        json!({"RoleName": "fn", "PolicyArn": lambda}),
    )
    .await;
    ok(&iam, "DeleteRole", json!({"RoleName": "fn"})).await;
}

#[tokio::test]
async fn attach_quota() {
    let (iam, _) = setup();
    role(&iam, "r").await;
    let names: Vec<String> = managed::all()
        .iter()
        .take(11)
        .map(|p| p.arn.clone())
        .collect();
    for arn in &names[..10] {
        ok(
            &iam,
            "AttachRolePolicy",
            json!({"RoleName": "r", "PolicyArn": arn}),
        )
        .await;
    }
    let e = err(
        &iam,
        "AttachRolePolicy",
        json!({"RoleName": "r", "PolicyArn": names[10]}),
    )
    .await;
    assert_eq!(e.code, "LimitExceeded");
}

#[tokio::test]
async fn inline_policies() {
    let (iam, _) = setup();
    role(&iam, "r").await;
    ok(&iam, "CreateUser", json!({"UserName": "u"})).await;
    ok(&iam, "CreateGroup", json!({"GroupName": "g"})).await;
    for (op, member, name) in [
        ("PutRolePolicy", "RoleName", "r"),
        ("PutUserPolicy", "UserName", "u"),
        ("PutGroupPolicy", "GroupName", "g"),
    ] {
        ok(
            &iam,
            op,
            json!({member: name, "PolicyName": "b", "PolicyDocument": DOC}),
        )
        .await;
        ok(
            &iam,
            op,
            json!({member: name, "PolicyName": "a", "PolicyDocument": DOC2}),
        )
        .await;
        let e = err(
            &iam,
            op,
            json!({member: name, "PolicyName": "c", "PolicyDocument": "x"}),
        )
        .await;
        assert_eq!(e.code, "MalformedPolicyDocument");
    }
    let got = ok(
        &iam,
        "GetRolePolicy",
        json!({"RoleName": "r", "PolicyName": "b"}),
    )
    .await;
    assert_eq!(got["RoleName"], "r");
    assert_eq!(got["PolicyName"], "b");
    assert_eq!(
        decode(&got["PolicyDocument"])["Statement"][0]["Action"],
        "s3:GetObject"
    );
    let got = ok(
        &iam,
        "GetUserPolicy",
        json!({"UserName": "u", "PolicyName": "a"}),
    )
    .await;
    assert_eq!(got["UserName"], "u");
    let got = ok(
        &iam,
        "GetGroupPolicy",
        json!({"GroupName": "g", "PolicyName": "a"}),
    )
    .await;
    assert_eq!(got["GroupName"], "g");
    let list = ok(&iam, "ListRolePolicies", json!({"RoleName": "r"})).await;
    assert_eq!(list["PolicyNames"], json!(["a", "b"]));
    let list = ok(
        &iam,
        "ListUserPolicies",
        json!({"UserName": "u", "MaxItems": 1}),
    )
    .await;
    assert_eq!(list["PolicyNames"], json!(["a"]));
    assert_eq!(list["IsTruncated"], true);
    let list = ok(&iam, "ListGroupPolicies", json!({"GroupName": "g"})).await;
    assert_eq!(list["PolicyNames"].as_array().unwrap().len(), 2);
    let e = err(
        &iam,
        "GetRolePolicy",
        json!({"RoleName": "r", "PolicyName": "zzz"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    assert_eq!(e.message, "The role policy with name zzz cannot be found.");
    let e = err(&iam, "DeleteRole", json!({"RoleName": "r"})).await;
    assert_eq!(e.code, "DeleteConflict");
    let e = err(&iam, "DeleteUser", json!({"UserName": "u"})).await;
    assert_eq!(e.code, "DeleteConflict");
    ok(
        &iam,
        "DeleteRolePolicy",
        json!({"RoleName": "r", "PolicyName": "a"}),
    )
    .await;
    ok(
        &iam,
        "DeleteRolePolicy",
        json!({"RoleName": "r", "PolicyName": "b"}),
    )
    .await;
    let e = err(
        &iam,
        "DeleteRolePolicy",
        json!({"RoleName": "r", "PolicyName": "b"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    ok(&iam, "DeleteRole", json!({"RoleName": "r"})).await;
    ok(
        &iam,
        "DeleteUserPolicy",
        json!({"UserName": "u", "PolicyName": "a"}),
    )
    .await;
    ok(
        &iam,
        "DeleteGroupPolicy",
        json!({"GroupName": "g", "PolicyName": "a"}),
    )
    .await;
    // A user's inline policies are limited to 2048 characters in total.
    let big = format!(
        r#"{{"Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":[{}]}}]}}"#,
        (0..100)
            .map(|i| format!("\"arn:aws:s3:::bucket-{i:04}/*\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let e = err(
        &iam,
        "PutUserPolicy",
        json!({"UserName": "u", "PolicyName": "big", "PolicyDocument": big}),
    )
    .await;
    assert_eq!(e.code, "LimitExceeded");
}

#[tokio::test]
async fn instance_profiles() {
    let (iam, _) = setup();
    role(&iam, "r1").await;
    role(&iam, "r2").await;
    let p = ok(
        &iam,
        "CreateInstanceProfile",
        json!({"InstanceProfileName": "web", "Path": "/p/"}),
    )
    .await;
    assert_eq!(
        p["InstanceProfile"]["Arn"],
        "arn:aws:iam::000000000000:instance-profile/p/web"
    );
    assert!(p["InstanceProfile"]["InstanceProfileId"]
        .as_str()
        .unwrap()
        .starts_with("AIPA"));
    assert_eq!(p["InstanceProfile"]["Roles"], json!([]));
    let e = err(
        &iam,
        "CreateInstanceProfile",
        json!({"InstanceProfileName": "web"}),
    )
    .await;
    assert_eq!(e.code, "EntityAlreadyExists");
    ok(
        &iam,
        "AddRoleToInstanceProfile",
        json!({"InstanceProfileName": "web", "RoleName": "r1"}),
    )
    .await;
    let e = err(
        &iam,
        "AddRoleToInstanceProfile",
        json!({"InstanceProfileName": "web", "RoleName": "r2"}),
    )
    .await;
    assert_eq!((e.code.as_str(), e.status), ("LimitExceeded", 409));
    let e = err(
        &iam,
        "AddRoleToInstanceProfile",
        json!({"InstanceProfileName": "web", "RoleName": "ghost"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    let got = ok(
        &iam,
        "GetInstanceProfile",
        json!({"InstanceProfileName": "web"}),
    )
    .await;
    assert_eq!(got["InstanceProfile"]["Roles"][0]["RoleName"], "r1");
    assert!(got["InstanceProfile"]["Roles"][0]["AssumeRolePolicyDocument"].is_string());
    let for_role = ok(
        &iam,
        "ListInstanceProfilesForRole",
        json!({"RoleName": "r1"}),
    )
    .await;
    assert_eq!(
        for_role["InstanceProfiles"][0]["InstanceProfileName"],
        "web"
    );
    let for_role = ok(
        &iam,
        "ListInstanceProfilesForRole",
        json!({"RoleName": "r2"}),
    )
    .await;
    assert_eq!(for_role["InstanceProfiles"], json!([]));
    let list = ok(&iam, "ListInstanceProfiles", json!({})).await;
    assert_eq!(list["InstanceProfiles"].as_array().unwrap().len(), 1);
    let e = err(&iam, "DeleteRole", json!({"RoleName": "r1"})).await;
    assert_eq!(e.code, "DeleteConflict");
    let e = err(
        &iam,
        "DeleteInstanceProfile",
        json!({"InstanceProfileName": "web"}),
    )
    .await;
    assert_eq!(e.code, "DeleteConflict");
    ok(
        &iam,
        "RemoveRoleFromInstanceProfile",
        json!({"InstanceProfileName": "web", "RoleName": "r1"}),
    )
    .await;
    let e = err(
        &iam,
        "RemoveRoleFromInstanceProfile",
        json!({"InstanceProfileName": "web", "RoleName": "r1"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    ok(&iam, "DeleteRole", json!({"RoleName": "r1"})).await;
    ok(
        &iam,
        "DeleteInstanceProfile",
        json!({"InstanceProfileName": "web"}),
    )
    .await;
    let e = err(
        &iam,
        "GetInstanceProfile",
        json!({"InstanceProfileName": "web"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    assert_eq!(e.message, "Instance Profile web cannot be found.");
}

#[tokio::test]
async fn permissions_boundaries() {
    let (iam, _) = setup();
    let admin = "arn:aws:iam::aws:policy/AdministratorAccess";
    let r = ok(
        &iam,
        "CreateRole",
        json!({"RoleName": "b", "AssumeRolePolicyDocument": TRUST, "PermissionsBoundary": admin}),
    )
    .await;
    assert_eq!(
        r["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"],
        admin
    );
    let e = err(
        &iam,
        "CreateUser",
        json!({"UserName": "x", "PermissionsBoundary": "arn:aws:iam::000000000000:policy/none"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    let got = ok(&iam, "GetPolicy", json!({"PolicyArn": admin})).await;
    assert_eq!(got["Policy"]["PermissionsBoundaryUsageCount"], 1);
    ok(
        &iam,
        "DeleteRolePermissionsBoundary",
        json!({"RoleName": "b"}),
    )
    .await;
    let got = ok(&iam, "GetRole", json!({"RoleName": "b"})).await;
    assert!(got["Role"].get("PermissionsBoundary").is_none());
}

#[tokio::test]
async fn policies_for_principals() {
    let (iam, store) = setup();
    let admin = "arn:aws:iam::aws:policy/AdministratorAccess";
    role(&iam, "r").await;
    ok(
        &iam,
        "PutRolePolicy",
        json!({"RoleName": "r", "PolicyName": "p", "PolicyDocument": DOC}),
    )
    .await;
    ok(
        &iam,
        "AttachRolePolicy",
        json!({"RoleName": "r", "PolicyArn": admin}),
    )
    .await;
    let docs =
        policies_for_principal(store.as_ref(), ACCT, "arn:aws:iam::000000000000:role/r").unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0], DOC);
    assert!(docs[1].contains("\"*\""));
    let assumed = policies_for_principal(
        store.as_ref(),
        ACCT,
        "arn:aws:sts::000000000000:assumed-role/r/sess",
    )
    .unwrap();
    assert_eq!(assumed, docs);

    ok(&iam, "CreateUser", json!({"UserName": "u", "Path": "/a/"})).await;
    ok(&iam, "CreateGroup", json!({"GroupName": "g"})).await;
    ok(
        &iam,
        "AddUserToGroup",
        json!({"GroupName": "g", "UserName": "u"}),
    )
    .await;
    ok(
        &iam,
        "PutUserPolicy",
        json!({"UserName": "u", "PolicyName": "p", "PolicyDocument": DOC}),
    )
    .await;
    ok(
        &iam,
        "PutGroupPolicy",
        json!({"GroupName": "g", "PolicyName": "p", "PolicyDocument": DOC2}),
    )
    .await;
    ok(
        &iam,
        "AttachGroupPolicy",
        json!({"GroupName": "g", "PolicyArn": admin}),
    )
    .await;
    let p = ok(
        &iam,
        "CreatePolicy",
        json!({"PolicyName": "mine", "PolicyDocument": DOC}),
    )
    .await;
    ok(
        &iam,
        "CreatePolicyVersion",
        json!({"PolicyArn": p["Policy"]["Arn"], "PolicyDocument": DOC2, "SetAsDefault": true}),
    )
    .await;
    ok(
        &iam,
        "AttachUserPolicy",
        json!({"UserName": "u", "PolicyArn": p["Policy"]["Arn"]}),
    )
    .await;
    let docs =
        policies_for_principal(store.as_ref(), ACCT, "arn:aws:iam::000000000000:user/a/u").unwrap();
    assert_eq!(docs.len(), 4);
    assert!(docs.contains(&DOC.to_string()));
    assert_eq!(docs.iter().filter(|d| d.as_str() == DOC2).count(), 2);
    assert!(
        policies_for_principal(store.as_ref(), ACCT, "arn:aws:iam::000000000000:root")
            .unwrap()
            .is_empty()
    );
    assert!(
        policies_for_principal(store.as_ref(), ACCT, "arn:aws:iam::000000000000:user/ghost")
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn accounts_are_separate_and_unimplemented_ops() {
    let (iam, _) = setup();
    role(&iam, "r").await;
    let other = RequestContext::for_account("111111111111", "us-east-1", "iam", "GetRole");
    let e = iam
        .call(&other, json!({"RoleName": "r"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "NoSuchEntity");
    let e = err(&iam, "CreateSAMLProvider", json!({})).await;
    assert_eq!(e.code, "NotImplemented");
    let s = ok(&iam, "GetAccountSummary", json!({})).await;
    assert_eq!(s["SummaryMap"]["Roles"], 1);
    assert_eq!(iam.name(), "iam");
}

/// Serialize an output as the server would (awsQuery XML) and read it back like botocore.
fn wire(service: &str, op: &str, out: &Value) -> Value {
    let model = fc_protocol::service_model(service).expect("model");
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
    let (iam, _) = setup();
    let mut checks = Vec::new();
    let out = ok(&iam, "CreateRole", json!({"RoleName": "r", "AssumeRolePolicyDocument": TRUST,
        "Tags": [{"Key": "a", "Value": "b"}], "PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"})).await;
    checks.push(("CreateRole", out));
    checks.push((
        "GetRole",
        ok(&iam, "GetRole", json!({"RoleName": "r"})).await,
    ));
    checks.push(("ListRoles", ok(&iam, "ListRoles", json!({})).await));
    checks.push((
        "CreateUser",
        ok(&iam, "CreateUser", json!({"UserName": "u"})).await,
    ));
    checks.push((
        "CreateAccessKey",
        ok(&iam, "CreateAccessKey", json!({"UserName": "u"})).await,
    ));
    checks.push((
        "ListAccessKeys",
        ok(&iam, "ListAccessKeys", json!({"UserName": "u"})).await,
    ));
    checks.push((
        "CreateGroup",
        ok(&iam, "CreateGroup", json!({"GroupName": "g"})).await,
    ));
    ok(
        &iam,
        "AddUserToGroup",
        json!({"GroupName": "g", "UserName": "u"}),
    )
    .await;
    checks.push((
        "GetGroup",
        ok(&iam, "GetGroup", json!({"GroupName": "g"})).await,
    ));
    let p = ok(
        &iam,
        "CreatePolicy",
        json!({"PolicyName": "p", "PolicyDocument": DOC}),
    )
    .await;
    let arn = p["Policy"]["Arn"].clone();
    checks.push(("CreatePolicy", p));
    checks.push((
        "GetPolicyVersion",
        ok(
            &iam,
            "GetPolicyVersion",
            json!({"PolicyArn": arn, "VersionId": "v1"}),
        )
        .await,
    ));
    checks.push((
        "ListPolicies",
        ok(&iam, "ListPolicies", json!({"MaxItems": 3})).await,
    ));
    ok(
        &iam,
        "AttachRolePolicy",
        json!({"RoleName": "r", "PolicyArn": arn}),
    )
    .await;
    checks.push((
        "ListAttachedRolePolicies",
        ok(&iam, "ListAttachedRolePolicies", json!({"RoleName": "r"})).await,
    ));
    checks.push((
        "ListEntitiesForPolicy",
        ok(&iam, "ListEntitiesForPolicy", json!({"PolicyArn": arn})).await,
    ));
    ok(
        &iam,
        "PutRolePolicy",
        json!({"RoleName": "r", "PolicyName": "i", "PolicyDocument": DOC}),
    )
    .await;
    checks.push((
        "GetRolePolicy",
        ok(
            &iam,
            "GetRolePolicy",
            json!({"RoleName": "r", "PolicyName": "i"}),
        )
        .await,
    ));
    checks.push((
        "ListRolePolicies",
        ok(&iam, "ListRolePolicies", json!({"RoleName": "r"})).await,
    ));
    ok(
        &iam,
        "CreateInstanceProfile",
        json!({"InstanceProfileName": "ip"}),
    )
    .await;
    ok(
        &iam,
        "AddRoleToInstanceProfile",
        json!({"InstanceProfileName": "ip", "RoleName": "r"}),
    )
    .await;
    checks.push((
        "GetInstanceProfile",
        ok(
            &iam,
            "GetInstanceProfile",
            json!({"InstanceProfileName": "ip"}),
        )
        .await,
    ));
    checks.push(("GetUser", ok(&iam, "GetUser", json!({})).await));
    checks.push((
        "GetAccountSummary",
        ok(&iam, "GetAccountSummary", json!({})).await,
    ));
    for (op, out) in checks {
        assert_eq!(wire("iam", op, &out), out, "{op}");
    }
}

#[tokio::test]
async fn errors_survive_the_wire() {
    let (iam, _) = setup();
    let model = fc_protocol::service_model("iam").expect("model");
    let op = model.operation("GetRole").expect("operation");
    let e = err(&iam, "GetRole", json!({"RoleName": "ghost"})).await;
    let ctx = fc_protocol::ResponseContext {
        request_id: "r".into(),
    };
    let resp =
        fc_protocol::serialize_error(model, fc_protocol::Protocol::Query, Some(op), &e, &ctx);
    let back = fc_protocol::output::parse_response(model, fc_protocol::Protocol::Query, op, &resp)
        .expect_err("an error");
    assert_eq!(back.status, 404);
    assert_eq!(back.code, "NoSuchEntity");
    assert_eq!(back.message, "The role with name ghost cannot be found.");
}

#[tokio::test]
async fn service_linked_roles() {
    let (iam, _) = setup();
    let r = ok(
        &iam,
        "CreateServiceLinkedRole",
        json!({"AWSServiceName": "autoscaling.amazonaws.com"}),
    )
    .await;
    assert_eq!(r["Role"]["RoleName"], "AWSServiceRoleForAutoScaling");
    assert_eq!(
        r["Role"]["Path"],
        "/aws-service-role/autoscaling.amazonaws.com/"
    );
    assert_eq!(
        r["Role"]["Arn"],
        "arn:aws:iam::000000000000:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    );
    assert_eq!(
        decode(&r["Role"]["AssumeRolePolicyDocument"])["Statement"][0]["Principal"]["Service"][0],
        "autoscaling.amazonaws.com"
    );
    let e = err(
        &iam,
        "CreateServiceLinkedRole",
        json!({"AWSServiceName": "autoscaling.amazonaws.com"}),
    )
    .await;
    assert_eq!(e.code, "InvalidInput");
    let r = ok(
        &iam,
        "CreateServiceLinkedRole",
        json!({"AWSServiceName": "autoscaling.amazonaws.com", "CustomSuffix": "x"}),
    )
    .await;
    assert_eq!(r["Role"]["RoleName"], "AWSServiceRoleForAutoScaling_x");
    let e = err(
        &iam,
        "DeleteRole",
        json!({"RoleName": "AWSServiceRoleForAutoScaling"}),
    )
    .await;
    assert_eq!(e.code, "UnmodifiableEntity");
    let d = ok(
        &iam,
        "DeleteServiceLinkedRole",
        json!({"RoleName": "AWSServiceRoleForAutoScaling"}),
    )
    .await;
    let task = d["DeletionTaskId"].as_str().unwrap().to_string();
    assert!(task.starts_with(
        "task/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling/"
    ));
    let s = ok(
        &iam,
        "GetServiceLinkedRoleDeletionStatus",
        json!({"DeletionTaskId": task}),
    )
    .await;
    assert_eq!(s["Status"], "SUCCEEDED");
    let e = err(
        &iam,
        "GetRole",
        json!({"RoleName": "AWSServiceRoleForAutoScaling"}),
    )
    .await;
    assert_eq!(e.code, "NoSuchEntity");
    role(&iam, "plain").await;
    let e = err(
        &iam,
        "DeleteServiceLinkedRole",
        json!({"RoleName": "plain"}),
    )
    .await;
    assert_eq!(e.code, "InvalidInput");
}
