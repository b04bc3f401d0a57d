//! Key pairs: `CreateKeyPair` (real RSA or ed25519 keys, PEM or PuTTY PPK), `ImportKeyPair`,
//! `DescribeKeyPairs`, `DeleteKeyPair`. Records live in `ec2_key_pairs` keyed by name; the
//! public key is kept for instances ([`public_key`]).

use super::keys::{self, KeyKind};
use super::{
    check_dry_run_v, filters, invalid_value, matches, now, one, opt_bool, opt_str, req_str,
    spec_tags, str_list, tags, with_tags, Ctx, KEY_PAIRS,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fc_protocol::ApiError;
use fc_store::{Scope, Store, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A key pair as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyPairRecord {
    pub key_pair_id: String,
    pub key_name: String,
    /// `rsa` or `ed25519`.
    pub key_type: String,
    pub fingerprint: String,
    /// The OpenSSH public key line.
    pub public_key: String,
    pub create_time: f64,
}

/// The OpenSSH public key line of key pair `name` (for instances' `authorized_keys`).
pub fn public_key(store: &dyn Store, account: &str, region: &str, name: &str) -> Option<String> {
    let scope = Scope::new(account, region);
    store
        .get_json::<KeyPairRecord>(&scope, KEY_PAIRS, name)
        .ok()
        .flatten()
        .map(|k| k.public_key)
}

pub(crate) fn find_by_id(c: &Ctx<'_>, id: &str) -> Result<Option<KeyPairRecord>, ApiError> {
    Ok(c.all::<KeyPairRecord>(KEY_PAIRS)?
        .into_iter()
        .map(|(_, k)| k)
        .find(|k| k.key_pair_id == id))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.len() > 255 || !name.is_ascii() {
        return Err(invalid_value(format!(
            "Value ({name}) for parameter keyName is invalid. Key names must be at most 255 ASCII characters."
        )));
    }
    Ok(())
}

fn duplicate(name: &str) -> ApiError {
    ApiError::client(
        "InvalidKeyPair.Duplicate",
        format!("The keypair '{name}' already exists."),
    )
}

fn key_error(e: keys::KeyError) -> ApiError {
    match e {
        keys::KeyError::Malformed(_) => ApiError::client(
            "InvalidKey.Format",
            "Key is not in valid OpenSSH public key format",
        ),
        other => ApiError::internal(format!("cannot generate key pair: {other}")),
    }
}

pub(crate) fn create_key_pair(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "KeyName")?;
    check_name(name)?;
    let kind = match opt_str(input, "KeyType").unwrap_or("rsa") {
        "rsa" => KeyKind::Rsa,
        "ed25519" => KeyKind::Ed25519,
        other => {
            return Err(invalid_value(format!(
                "Value ({other}) for parameter keyType is invalid."
            )))
        }
    };
    let format = opt_str(input, "KeyFormat").unwrap_or("pem");
    if !matches!(format, "pem" | "ppk") {
        return Err(invalid_value(format!(
            "Value ({format}) for parameter keyFormat is invalid."
        )));
    }
    let t = spec_tags(input, "key-pair")?;
    if c.get::<KeyPairRecord>(KEY_PAIRS, name)?.is_some() {
        return Err(duplicate(name));
    }
    check_dry_run_v(input)?;
    let g = keys::generate(kind).map_err(key_error)?;
    let fingerprint = keys::fingerprint_created(kind, &g).map_err(key_error)?;
    let material = match format {
        "ppk" => keys::to_ppk(kind, &g, name).map_err(key_error)?,
        _ => g.private_pem.trim_end().to_string(),
    };
    let rec = KeyPairRecord {
        key_pair_id: fc_types::ids::ec2_id("key"),
        key_name: name.to_string(),
        key_type: kind.api_name().to_string(),
        fingerprint: fingerprint.clone(),
        public_key: keys::openssh_line(&g.public_blob, name).map_err(key_error)?,
        create_time: now(),
    };
    c.put(KEY_PAIRS, name, &rec)?;
    tags::add(c, &rec.key_pair_id, &t)?;
    Ok(with_tags(
        json!({
            "KeyName": name,
            "KeyPairId": rec.key_pair_id,
            "KeyFingerprint": fingerprint,
            "KeyMaterial": material,
        }),
        &t,
    ))
}

pub(crate) fn import_key_pair(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "KeyName")?;
    check_name(name)?;
    let material_b64 = req_str(input, "PublicKeyMaterial")?;
    let material = STANDARD.decode(material_b64.as_bytes()).map_err(|_| {
        ApiError::client(
            "InvalidKey.Format",
            "Key is not in valid OpenSSH public key format",
        )
    })?;
    let (kind, blob) = keys::parse_public_key(&material).map_err(key_error)?;
    let t = spec_tags(input, "key-pair")?;
    if c.get::<KeyPairRecord>(KEY_PAIRS, name)?.is_some() {
        return Err(duplicate(name));
    }
    check_dry_run_v(input)?;
    let fingerprint = keys::fingerprint_imported(kind, &blob).map_err(key_error)?;
    let rec = KeyPairRecord {
        key_pair_id: fc_types::ids::ec2_id("key"),
        key_name: name.to_string(),
        key_type: kind.api_name().to_string(),
        fingerprint: fingerprint.clone(),
        public_key: keys::openssh_line(&blob, "").map_err(key_error)?,
        create_time: now(),
    };
    c.put(KEY_PAIRS, name, &rec)?;
    tags::add(c, &rec.key_pair_id, &t)?;
    Ok(with_tags(
        json!({"KeyName": name, "KeyPairId": rec.key_pair_id, "KeyFingerprint": fingerprint}),
        &t,
    ))
}

pub(crate) fn describe_key_pairs(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &["key-pair-id", "fingerprint", "key-name", "key-type"],
        true,
    )?;
    let names = str_list(input, "KeyNames");
    let ids = str_list(input, "KeyPairIds");
    let include_public = opt_bool(input, "IncludePublicKey").unwrap_or(false);
    check_dry_run_v(input)?;
    let all: Vec<KeyPairRecord> = c
        .all::<KeyPairRecord>(KEY_PAIRS)?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    if let Some(n) = names
        .iter()
        .find(|n| !all.iter().any(|k| &k.key_name == *n))
    {
        return Err(ApiError::client(
            "InvalidKeyPair.NotFound",
            format!("The key pair '{n}' does not exist"),
        ));
    }
    if let Some(n) = ids
        .iter()
        .find(|n| !all.iter().any(|k| &k.key_pair_id == *n))
    {
        return Err(ApiError::client(
            "InvalidKeyPair.NotFound",
            format!("The key pair ID '{n}' does not exist"),
        ));
    }
    let mut out = Vec::new();
    for k in all {
        if !names.is_empty() && !names.contains(&k.key_name) {
            continue;
        }
        if !ids.is_empty() && !ids.contains(&k.key_pair_id) {
            continue;
        }
        let t = tags::get(c, &k.key_pair_id)?;
        let ok = matches(&fs, &t, |n| match n {
            "key-pair-id" => one(&k.key_pair_id),
            "fingerprint" => one(&k.fingerprint),
            "key-name" => one(&k.key_name),
            "key-type" => one(&k.key_type),
            _ => None,
        });
        if !ok {
            continue;
        }
        let mut v = json!({
            "KeyPairId": k.key_pair_id,
            "KeyName": k.key_name,
            "KeyFingerprint": k.fingerprint,
            "KeyType": k.key_type,
            "CreateTime": fc_protocol::value::epoch_value(k.create_time),
            "Tags": [],
        });
        if include_public {
            v["PublicKey"] = json!(k.public_key);
        }
        out.push(with_tags(v, &t));
    }
    Ok(json!({ "KeyPairs": out }))
}

pub(crate) fn delete_key_pair(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let name = opt_str(input, "KeyName").filter(|s| !s.is_empty());
    let id = opt_str(input, "KeyPairId").filter(|s| !s.is_empty());
    if name.is_none() && id.is_none() {
        return Err(ApiError::missing("MissingParameter", "KeyName"));
    }
    check_dry_run_v(input)?;
    let rec = match (name, id) {
        (Some(n), _) => c.get::<KeyPairRecord>(KEY_PAIRS, n)?,
        (None, Some(i)) => find_by_id(c, i)?,
        (None, None) => None,
    };
    // Deleting a key pair that does not exist succeeds, as on AWS.
    let Some(rec) = rec else {
        return Ok(json!({"Return": true}));
    };
    c.delete(KEY_PAIRS, &rec.key_name)?;
    tags::drop_all(c, &rec.key_pair_id)?;
    Ok(json!({"Return": true, "KeyPairId": rec.key_pair_id}))
}
