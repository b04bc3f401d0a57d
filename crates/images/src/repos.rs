//! The ECR records that the ECR API (fc-services) and the OCI registry (fc-registry) share:
//! repositories, images, tags, per-repository layer links and registry auth tokens, kept in
//! fc-store tables. Both sides go through these helpers, so a push over `/v2/` is what
//! `DescribeImages` shows and a `PutImage` is what a pull gets.
//!
//! Tables (in the repository's account/region scope; `\0` separates key parts):
//! - `ecr.repos`: `<name>` -> [`Repository`]
//! - `ecr.images`: `<repo>\0<digest>` -> [`ImageRecord`] (one per manifest, tagged or not)
//! - `ecr.tags`: `<repo>\0<tag>` -> [`TagRecord`]
//! - `ecr.layers`: `<repo>\0<digest>` -> [`LayerRecord`] (blobs pushed to or used by a repo)
//! - `ecr.tokens` in scope `system/global`: `<password>` -> [`TokenRecord`]
//!
//! Mutations are serialized by one process-wide lock and written with one atomic batch.

use crate::digest::Digest;
use crate::manifest::Manifest;
use fc_store::{to_json_bytes, Scope, Store, StoreError, StoreExt, Write};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};

pub const REPOS: &str = "ecr.repos";
pub const IMAGES: &str = "ecr.images";
pub const TAGS: &str = "ecr.tags";
pub const LAYERS: &str = "ecr.layers";
pub const TOKENS: &str = "ecr.tokens";
const SEP: char = '\u{0}';
const CHUNK: usize = 1000;

static LOCK: Mutex<()> = Mutex::new(());

/// The lock every mutation of these tables holds.
pub fn write_lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Failures of the shared records.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the repository with name '{repo}' does not exist in the registry with id '{account}'"
    )]
    RepositoryNotFound { repo: String, account: String },
    #[error("the image tag '{tag}' already exists in the '{repo}' repository and cannot be overwritten because the repository is immutable")]
    TagImmutable { repo: String, tag: String },
    #[error("image with digest '{digest}' does not exist in repository '{repo}'")]
    ImageNotFound { repo: String, digest: String },
}

/// A repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Repository {
    pub v: u32,
    pub name: String,
    pub registry_id: String,
    pub region: String,
    pub created_at: f64,
    /// `MUTABLE` or `IMMUTABLE` (or the `*_WITH_EXCLUSION` variants).
    pub image_tag_mutability: String,
    #[serde(default)]
    pub tag_mutability_exclusions: Vec<serde_json::Value>,
    pub scan_on_push: bool,
    pub encryption_type: String,
    #[serde(default)]
    pub kms_key: Option<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub lifecycle_policy: Option<String>,
    #[serde(default)]
    pub lifecycle_updated: Option<f64>,
}

impl Repository {
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:ecr:{}:{}:repository/{}",
            self.region, self.registry_id, self.name
        )
    }
    pub fn immutable(&self) -> bool {
        self.image_tag_mutability.starts_with("IMMUTABLE")
    }
}

/// One manifest stored in a repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    pub v: u32,
    pub digest: Digest,
    pub media_type: String,
    /// Manifest size in bytes.
    pub manifest_size: u64,
    /// Sum of the sizes of config and layers (of the children for an index).
    pub size: u64,
    pub pushed_at: f64,
    /// Sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub subject: Option<Digest>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub last_pulled: Option<f64>,
}

/// Where a tag points.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TagRecord {
    pub digest: Digest,
}

/// A blob available in a repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerRecord {
    pub size: u64,
}

/// A registry password from `GetAuthorizationToken`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    pub account: String,
    pub region: String,
    pub principal_arn: String,
    pub expires_at: f64,
}

fn key(repo: &str, part: &str) -> String {
    format!("{repo}{SEP}{part}")
}

fn prefix(repo: &str) -> String {
    format!("{repo}{SEP}")
}

fn token_scope() -> Scope {
    Scope::new("system", fc_store::GLOBAL)
}

pub fn get_repo(
    store: &dyn Store,
    scope: &Scope,
    name: &str,
) -> Result<Option<Repository>, RepoError> {
    Ok(store.get_json(scope, REPOS, name)?)
}

/// The repository or `RepositoryNotFound`.
pub fn require_repo(store: &dyn Store, scope: &Scope, name: &str) -> Result<Repository, RepoError> {
    get_repo(store, scope, name)?.ok_or_else(|| RepoError::RepositoryNotFound {
        repo: name.to_string(),
        account: scope.account.clone(),
    })
}

pub fn put_repo(store: &dyn Store, scope: &Scope, repo: &Repository) -> Result<(), RepoError> {
    Ok(store.put_json(scope, REPOS, &repo.name, repo)?)
}

/// Repositories in name order, after `after`, at most `limit`; and whether more follow.
pub fn list_repos(
    store: &dyn Store,
    scope: &Scope,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<Repository>, bool), RepoError> {
    let (items, more) = store.scan_json::<Repository>(scope, REPOS, "", after, limit)?;
    Ok((items.into_iter().map(|(_, r)| r).collect(), more))
}

/// Delete a repository with all its images, tags and layer links.
pub fn delete_repo(store: &dyn Store, scope: &Scope, name: &str) -> Result<(), RepoError> {
    let p = prefix(name);
    store.delete_prefix(scope, IMAGES, &p)?;
    store.delete_prefix(scope, TAGS, &p)?;
    store.delete_prefix(scope, LAYERS, &p)?;
    store.delete(scope, REPOS, name)?;
    Ok(())
}

pub fn get_image(
    store: &dyn Store,
    scope: &Scope,
    repo: &str,
    digest: &Digest,
) -> Result<Option<ImageRecord>, RepoError> {
    Ok(store.get_json(scope, IMAGES, &key(repo, digest.as_str()))?)
}

/// Every image of a repository, in digest order.
pub fn list_images(
    store: &dyn Store,
    scope: &Scope,
    repo: &str,
) -> Result<Vec<ImageRecord>, RepoError> {
    let p = prefix(repo);
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (items, more) =
            store.scan_json::<ImageRecord>(scope, IMAGES, &p, after.as_deref(), CHUNK)?;
        after = items.last().map(|(k, _)| k.clone());
        out.extend(items.into_iter().map(|(_, v)| v));
        if !more {
            return Ok(out);
        }
    }
}

/// Tags of a repository in order, after `after`, at most `limit`.
pub fn list_tags(
    store: &dyn Store,
    scope: &Scope,
    repo: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<(String, Digest)>, bool), RepoError> {
    let p = prefix(repo);
    let after_key = after.map(|a| key(repo, a));
    let (items, more) =
        store.scan_json::<TagRecord>(scope, TAGS, &p, after_key.as_deref(), limit)?;
    Ok((
        items
            .into_iter()
            .map(|(k, t)| (k[p.len()..].to_string(), t.digest))
            .collect(),
        more,
    ))
}

pub fn get_tag(
    store: &dyn Store,
    scope: &Scope,
    repo: &str,
    tag: &str,
) -> Result<Option<Digest>, RepoError> {
    Ok(store
        .get_json::<TagRecord>(scope, TAGS, &key(repo, tag))?
        .map(|t| t.digest))
}

/// A manifest to record.
#[derive(Debug, Clone)]
pub struct NewImage<'a> {
    pub digest: &'a Digest,
    pub manifest: &'a Manifest,
    pub manifest_size: u64,
    /// Total size of what it references.
    pub size: u64,
    pub tag: Option<&'a str>,
    pub now: f64,
}

/// What [`put_image`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct PutOutcome {
    pub record: ImageRecord,
    /// The image was new in the repository.
    pub created: bool,
    /// The tag already pointed at this digest (nothing changed).
    pub unchanged: bool,
}

/// Record a manifest (and its tag) in a repository: the tag moves from its previous image
/// unless the repository is immutable; config and layers are linked to the repository.
pub fn put_image(
    store: &dyn Store,
    scope: &Scope,
    repo: &Repository,
    new: &NewImage<'_>,
) -> Result<PutOutcome, RepoError> {
    let _g = write_lock();
    let name = &repo.name;
    let existing = get_image(store, scope, name, new.digest)?;
    let mut writes = Vec::new();
    let mut record = existing.clone().unwrap_or_else(|| ImageRecord {
        v: 1,
        digest: new.digest.clone(),
        media_type: new.manifest.media_type.clone(),
        manifest_size: new.manifest_size,
        size: new.size,
        pushed_at: new.now,
        tags: Vec::new(),
        subject: new.manifest.subject.as_ref().map(|s| s.digest.clone()),
        artifact_type: new.manifest.artifact_type.clone(),
        annotations: new.manifest.annotations.clone(),
        last_pulled: None,
    });
    let mut unchanged = existing.is_some();
    if let Some(tag) = new.tag {
        match get_tag(store, scope, name, tag)? {
            Some(d) if &d == new.digest => {}
            Some(old) => {
                if repo.immutable() {
                    return Err(RepoError::TagImmutable {
                        repo: name.clone(),
                        tag: tag.to_string(),
                    });
                }
                unchanged = false;
                if let Some(mut prev) = get_image(store, scope, name, &old)? {
                    prev.tags.retain(|t| t != tag);
                    writes.push(put_write(scope, IMAGES, key(name, old.as_str()), &prev)?);
                }
            }
            None => unchanged = false,
        }
        if !record.tags.iter().any(|t| t == tag) {
            record.tags.push(tag.to_string());
            record.tags.sort();
        }
        writes.push(put_write(
            scope,
            TAGS,
            key(name, tag),
            &TagRecord {
                digest: new.digest.clone(),
            },
        )?);
    }
    writes.push(put_write(
        scope,
        IMAGES,
        key(name, new.digest.as_str()),
        &record,
    )?);
    for d in new.manifest.blobs() {
        writes.push(put_write(
            scope,
            LAYERS,
            key(name, d.digest.as_str()),
            &LayerRecord {
                size: u64::try_from(d.size).unwrap_or(0),
            },
        )?);
    }
    store.batch(writes)?;
    Ok(PutOutcome {
        record,
        created: existing.is_none(),
        unchanged,
    })
}

fn put_write<T: Serialize>(
    scope: &Scope,
    table: &str,
    key: String,
    v: &T,
) -> Result<Write, RepoError> {
    Ok(Write::Put {
        scope: scope.clone(),
        table: table.to_string(),
        key,
        value: to_json_bytes(v)?,
    })
}

/// Delete an image (manifest) and every tag pointing at it. Returns the deleted record.
pub fn delete_image(
    store: &dyn Store,
    scope: &Scope,
    repo: &str,
    digest: &Digest,
) -> Result<Option<ImageRecord>, RepoError> {
    let _g = write_lock();
    let Some(rec) = get_image(store, scope, repo, digest)? else {
        return Ok(None);
    };
    let mut writes = vec![Write::Delete {
        scope: scope.clone(),
        table: IMAGES.to_string(),
        key: key(repo, digest.as_str()),
    }];
    for t in &rec.tags {
        writes.push(Write::Delete {
            scope: scope.clone(),
            table: TAGS.to_string(),
            key: key(repo, t),
        });
    }
    store.batch(writes)?;
    Ok(Some(rec))
}

/// Remove one tag; the image stays (untagged if it was its last tag). Returns its digest.
pub fn untag(
    store: &dyn Store,
    scope: &Scope,
    repo: &str,
    tag: &str,
) -> Result<Option<Digest>, RepoError> {
    let _g = write_lock();
    let Some(d) = get_tag(store, scope, repo, tag)? else {
        return Ok(None);
    };
    let mut writes = vec![Write::Delete {
        scope: scope.clone(),
        table: TAGS.to_string(),
        key: key(repo, tag),
    }];
    if let Some(mut rec) = get_image(store, scope, repo, &d)? {
        rec.tags.retain(|t| t != tag);
        writes.push(put_write(scope, IMAGES, key(repo, d.as_str()), &rec)?);
    }
    store.batch(writes)?;
    Ok(Some(d))
}

/// Record the time an image was last pulled.
pub fn touch_pulled(
    store: &dyn Store,
    scope: &Scope,
    repo: &str,
    digest: &Digest,
    now: f64,
) -> Result<(), RepoError> {
    let _g = write_lock();
    if let Some(mut rec) = get_image(store, scope, repo, digest)? {
        rec.last_pulled = Some(now);
        store.put_json(scope, IMAGES, &key(repo, digest.as_str()), &rec)?;
    }
    Ok(())
}

pub fn link_layer(
    store: &dyn Store,
    scope: &Scope,
    repo: &str,
    digest: &Digest,
    size: u64,
) -> Result<(), RepoError> {
    Ok(store.put_json(
        scope,
        LAYERS,
        &key(repo, digest.as_str()),
        &LayerRecord { size },
    )?)
}

pub fn get_layer(
    store: &dyn Store,
    scope: &Scope,
    repo: &str,
    digest: &Digest,
) -> Result<Option<LayerRecord>, RepoError> {
    Ok(store.get_json(scope, LAYERS, &key(repo, digest.as_str()))?)
}

pub fn unlink_layer(
    store: &dyn Store,
    scope: &Scope,
    repo: &str,
    digest: &Digest,
) -> Result<bool, RepoError> {
    Ok(store.delete(scope, LAYERS, &key(repo, digest.as_str()))?)
}

pub fn put_token(store: &dyn Store, password: &str, rec: &TokenRecord) -> Result<(), RepoError> {
    Ok(store.put_json(&token_scope(), TOKENS, password, rec)?)
}

/// A token that has not expired at `now`.
pub fn valid_token(
    store: &dyn Store,
    password: &str,
    now: f64,
) -> Result<Option<TokenRecord>, RepoError> {
    let rec: Option<TokenRecord> = store.get_json(&token_scope(), TOKENS, password)?;
    Ok(rec.filter(|r| r.expires_at > now))
}

/// Forget tokens expired before `now`; returns how many.
pub fn expire_tokens(store: &dyn Store, now: f64) -> Result<u64, RepoError> {
    let scope = token_scope();
    let mut n = 0;
    let mut after: Option<String> = None;
    loop {
        let (items, more) =
            store.scan_json::<TokenRecord>(&scope, TOKENS, "", after.as_deref(), CHUNK)?;
        after = items.last().map(|(k, _)| k.clone());
        for (k, t) in items {
            if t.expires_at <= now {
                store.delete(&scope, TOKENS, &k)?;
                n += 1;
            }
        }
        if !more {
            return Ok(n);
        }
    }
}

/// Every digest some repository in any account/region references (manifests and blobs): what
/// garbage collection must keep.
pub fn referenced_digests(store: &dyn Store) -> Result<HashSet<Digest>, RepoError> {
    let mut out = HashSet::new();
    for table in [IMAGES, LAYERS] {
        for scope in store.scopes(table)? {
            let mut after: Option<String> = None;
            loop {
                let page = store.scan(&scope, table, "", after.as_deref(), CHUNK)?;
                after = page.items.last().map(|(k, _)| k.clone());
                for (k, _) in &page.items {
                    if let Some((_, d)) = k.split_once(SEP) {
                        if let Ok(d) = Digest::parse(d) {
                            out.insert(d);
                        }
                    }
                }
                if !page.more {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// An image reference split into repository and tag or digest: `repo:tag`, `repo@sha256:…`,
/// `host:port/repo:tag` (a first component with `.` or `:` or `localhost` is a host and
/// dropped), `123456789012.dkr.ecr.us-east-1.amazonaws.com/repo`. The tag defaults to `latest`.
pub fn parse_reference(reference: &str) -> (String, Reference) {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            parts.remove(0);
        }
    }
    let path = parts.join("/");
    if let Some(d) = digest {
        let repo = path
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map_or(path.as_str(), |(r, _)| r);
        return (repo.to_string(), Reference::Digest(d.to_string()));
    }
    match path.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), Reference::Tag(t.to_string())),
        _ => (path, Reference::Tag("latest".to_string())),
    }
}

/// A tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(String),
}

/// Resolve a reference within a scope to its manifest digest.
pub fn resolve(
    store: &dyn Store,
    scope: &Scope,
    reference: &str,
) -> Result<Option<(String, Digest)>, RepoError> {
    let (repo, r) = parse_reference(reference);
    let d = match r {
        Reference::Tag(t) => get_tag(store, scope, &repo, &t)?,
        Reference::Digest(d) => match Digest::parse(&d) {
            Ok(d) => get_image(store, scope, &repo, &d)?.map(|_| d),
            Err(_) => None,
        },
    };
    Ok(d.map(|d| (repo, d)))
}

/// Whether `principal` of `account` may perform `action` (e.g. `ecr:PutImage`) on `repo`,
/// with IAM semantics over its identity policies (`identity_docs`; `None` for the account root,
/// which has every permission) and the repository policy. The error is the message to answer.
pub fn check_access(
    identity_docs: Option<&[String]>,
    principal: &str,
    account: &str,
    action: &str,
    repo: &Repository,
) -> Result<(), String> {
    use fc_auth::policy::{evaluate, AuthzRequest, Policy};
    let mut identity: Vec<Policy> = Vec::new();
    match identity_docs {
        None => {
            let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
            identity.push(Policy::parse_identity(all).map_err(|e| e.to_string())?);
        }
        Some(docs) => identity.extend(docs.iter().filter_map(|d| Policy::parse_identity(d).ok())),
    }
    let resource = repo
        .policy
        .as_deref()
        .and_then(|t| Policy::parse_resource(t).ok());
    let req = AuthzRequest::new(principal, account, action, repo.arn())
        .with_resource_account(repo.registry_id.clone());
    let decision = evaluate(&req, &identity, resource.as_ref());
    if decision.is_allowed() {
        return Ok(());
    }
    let why = if decision == fc_auth::policy::Decision::ExplicitDeny {
        "with an explicit deny"
    } else {
        "because no identity-based policy allows the action"
    };
    Err(format!(
        "User: {principal} is not authorized to perform: {action} on resource: {} {why}",
        repo.arn()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            parse_reference("nginx"),
            ("nginx".into(), Reference::Tag("latest".into()))
        );
        assert_eq!(
            parse_reference("localhost:4566/a/b:v1"),
            ("a/b".into(), Reference::Tag("v1".into()))
        );
        assert_eq!(
            parse_reference("1.dkr.ecr.us-east-1.amazonaws.com/app@sha256:ab"),
            ("app".into(), Reference::Digest("sha256:ab".into()))
        );
        assert_eq!(
            parse_reference("ferrocloud/host-userland:latest"),
            (
                "ferrocloud/host-userland".into(),
                Reference::Tag("latest".into())
            )
        );
    }

    fn repo(policy: Option<&str>) -> Repository {
        Repository {
            v: 1,
            name: "app".into(),
            registry_id: "000000000000".into(),
            region: "us-east-1".into(),
            created_at: 0.0,
            image_tag_mutability: "MUTABLE".into(),
            tag_mutability_exclusions: Vec::new(),
            scan_on_push: false,
            encryption_type: "AES256".into(),
            kms_key: None,
            tags: Vec::new(),
            policy: policy.map(str::to_string),
            lifecycle_policy: None,
            lifecycle_updated: None,
        }
    }

    #[test]
    fn tokens_expire() {
        let store = fc_store::SqliteStore::in_memory().unwrap();
        let t = TokenRecord {
            account: "1".into(),
            region: "r".into(),
            principal_arn: "p".into(),
            expires_at: 100.0,
        };
        put_token(&store, "pw", &t).unwrap();
        assert_eq!(valid_token(&store, "pw", 99.0).unwrap(), Some(t));
        assert_eq!(valid_token(&store, "pw", 100.0).unwrap(), None);
        assert_eq!(valid_token(&store, "other", 1.0).unwrap(), None);
        assert_eq!(expire_tokens(&store, 101.0).unwrap(), 1);
    }

    #[test]
    fn access_checks() {
        let root = "arn:aws:iam::000000000000:root";
        let user = "arn:aws:iam::000000000000:user/u";
        assert!(check_access(None, root, "000000000000", "ecr:PutImage", &repo(None)).is_ok());
        let ro = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:BatchGetImage"],"Resource":"*"}]}"#.to_string();
        let docs = [ro];
        assert!(check_access(
            Some(&docs),
            user,
            "000000000000",
            "ecr:BatchGetImage",
            &repo(None)
        )
        .is_ok());
        assert!(check_access(
            Some(&docs),
            user,
            "000000000000",
            "ecr:PutImage",
            &repo(None)
        )
        .is_err());
        let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"ecr:*"}]}"#;
        let e = check_access(
            None,
            root,
            "000000000000",
            "ecr:PutImage",
            &repo(Some(deny)),
        )
        .unwrap_err();
        assert!(e.contains("explicit deny"), "{e}");
    }

    #[test]
    fn images_and_tags() {
        let store = fc_store::SqliteStore::in_memory().unwrap();
        let scope = Scope::new("000000000000", "us-east-1");
        let mut r = repo(None);
        put_repo(&store, &scope, &r).unwrap();
        let m = Manifest::parse(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#, None).unwrap();
        let (d1, d2) = (Digest::of(b"1"), Digest::of(b"2"));
        let new = |d: &'static Digest, tag| NewImage {
            digest: d,
            manifest: &m,
            manifest_size: 1,
            size: 1,
            tag,
            now: 1.0,
        };
        let d1: &'static Digest = Box::leak(Box::new(d1));
        let d2: &'static Digest = Box::leak(Box::new(d2));
        assert!(
            put_image(&store, &scope, &r, &new(d1, Some("v1")))
                .unwrap()
                .created
        );
        put_image(&store, &scope, &r, &new(d2, Some("v1"))).unwrap();
        assert_eq!(
            get_tag(&store, &scope, "app", "v1").unwrap().as_ref(),
            Some(d2)
        );
        assert!(get_image(&store, &scope, "app", d1)
            .unwrap()
            .unwrap()
            .tags
            .is_empty());
        r.image_tag_mutability = "IMMUTABLE".into();
        assert!(matches!(
            put_image(&store, &scope, &r, &new(d1, Some("v1"))),
            Err(RepoError::TagImmutable { .. })
        ));
        assert_eq!(
            untag(&store, &scope, "app", "v1").unwrap().as_ref(),
            Some(d2)
        );
        assert!(delete_image(&store, &scope, "app", d1).unwrap().is_some());
        assert_eq!(list_images(&store, &scope, "app").unwrap().len(), 1);
        let refs = referenced_digests(&store).unwrap();
        assert!(refs.contains(d2) && !refs.contains(d1));
        delete_repo(&store, &scope, "app").unwrap();
        assert!(list_images(&store, &scope, "app").unwrap().is_empty());
    }
}
