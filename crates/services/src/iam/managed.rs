//! The AWS-managed policies every account sees under `arn:aws:iam::aws:policy/...`, loaded from
//! `aws_managed_policies.json` (documents as AWS publishes them; `ReadOnlyAccess` abbreviated to a
//! representative action list). Their attachments are per account, their content is shared.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// One AWS-managed policy.
#[derive(Debug, Clone)]
pub struct AwsPolicy {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub id: String,
    pub default_version: String,
    pub created: f64,
    pub updated: f64,
    pub description: String,
    /// The default version's document (JSON text).
    pub document: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    policy_name: String,
    path: String,
    default_version_id: String,
    create_date: f64,
    update_date: f64,
    description: String,
    document: Value,
}

const DATA: &str = include_str!("aws_managed_policies.json");

/// A stable IAM unique id (`ANPA…`) derived from the ARN.
fn stable_id(arn: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(arn.as_bytes());
    let tail: String = digest
        .iter()
        .take(17)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    format!("ANPA{tail}")
}

/// All AWS-managed policies, sorted by name.
pub fn all() -> &'static [AwsPolicy] {
    static ALL: OnceLock<Vec<AwsPolicy>> = OnceLock::new();
    ALL.get_or_init(|| {
        let raw: Vec<Raw> =
            serde_json::from_str(DATA).expect("the bundled AWS-managed policy file is valid JSON");
        let mut out: Vec<AwsPolicy> = raw
            .into_iter()
            .map(|r| {
                let arn = format!("arn:aws:iam::aws:policy{}{}", r.path, r.policy_name);
                AwsPolicy {
                    id: stable_id(&arn),
                    document: serde_json::to_string_pretty(&r.document)
                        .expect("a JSON value always serializes"),
                    name: r.policy_name,
                    path: r.path,
                    arn,
                    default_version: r.default_version_id,
                    created: r.create_date,
                    updated: r.update_date,
                    description: r.description,
                }
            })
            .collect();
        out.sort_by_key(|p| p.name.to_lowercase());
        out
    })
}

/// The AWS-managed policy with this ARN.
pub fn by_arn(arn: &str) -> Option<&'static AwsPolicy> {
    all().iter().find(|p| p.arn == arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_policies_are_valid() {
        let all = all();
        assert!(all.len() >= 26);
        for p in all {
            super::super::policy_doc::validate(
                &p.document,
                super::super::policy_doc::DocKind::Identity,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(p.id.len(), 21);
        }
        let lambda = by_arn("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
            .expect("present");
        assert!(lambda.document.contains("logs:PutLogEvents"));
        assert!(by_arn("arn:aws:iam::aws:policy/AdministratorAccess").is_some());
    }
}
