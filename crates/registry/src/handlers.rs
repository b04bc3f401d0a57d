//! Request routing and the `/v2/` operations.

use crate::auth::Caller;
use crate::uploads::AppendError;
use crate::{error, Registry};
use bytes::Bytes;
use fc_images::manifest::OCI_INDEX;
use fc_images::repos::{self, RepoError, Repository};
use fc_images::{Digest, ImageError};
use fc_protocol::{BodyIn, BodyOut, HttpRequest};
use fc_services::RawReply;
use serde_json::json;

const MANIFEST_LIMIT: u64 = 4 << 20;
const PAGE_MAX: usize = 1000;

type Reply = RawReply;

/// What the path names.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Base,
    Catalog,
    Tags(String),
    Manifest(String, String),
    UploadStart(String),
    Upload(String, String),
    Blob(String, String),
    Referrers(String, String),
}

fn parse_route(path: &str) -> Option<Route> {
    let p = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let p = p.strip_prefix("/v2").unwrap_or(&p);
    let p = p.trim_start_matches('/');
    if p.is_empty() {
        return Some(Route::Base);
    }
    if p == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = p.strip_suffix("/tags/list") {
        return Some(Route::Tags(name.to_string()));
    }
    if let Some(name) = p
        .strip_suffix("/blobs/uploads/")
        .or_else(|| p.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::UploadStart(name.to_string()));
    }
    if let Some(i) = p.rfind("/blobs/uploads/") {
        return Some(Route::Upload(
            p[..i].to_string(),
            p[i + "/blobs/uploads/".len()..].to_string(),
        ));
    }
    for (marker, f) in [
        (
            "/manifests/",
            Route::Manifest as fn(String, String) -> Route,
        ),
        ("/blobs/", Route::Blob),
        ("/referrers/", Route::Referrers),
    ] {
        if let Some(i) = p.rfind(marker) {
            let rest = &p[i + marker.len()..];
            if !rest.is_empty() && !rest.contains('/') {
                return Some(f(p[..i].to_string(), rest.to_string()));
            }
        }
    }
    None
}

/// Repository names as the distribution spec allows them.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        })
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag.as_bytes()[0] != b'.'
        && tag.as_bytes()[0] != b'-'
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn empty(status: u16, headers: Vec<(String, String)>) -> Reply {
    RawReply {
        status,
        headers,
        body: BodyOut::Bytes(Bytes::new()),
    }
}

fn json_reply(status: u16, v: serde_json::Value, headers: Vec<(String, String)>) -> Reply {
    let mut headers = headers;
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    RawReply {
        status,
        headers,
        body: BodyOut::Bytes(Bytes::from(v.to_string())),
    }
}

fn internal(e: impl std::fmt::Display) -> Reply {
    tracing::error!(error = %e, "registry failure");
    error(500, "UNKNOWN", format!("internal error: {e}"))
}

fn repo_err(e: RepoError) -> Reply {
    match e {
        RepoError::RepositoryNotFound { .. } => error(404, "NAME_UNKNOWN", e.to_string()),
        RepoError::TagImmutable { .. } => error(400, "TAG_INVALID", e.to_string()),
        RepoError::ImageNotFound { .. } => error(404, "MANIFEST_UNKNOWN", e.to_string()),
        RepoError::Store(e) => internal(e),
    }
}

fn query(req: &HttpRequest, key: &str) -> Option<String> {
    req.query_pairs()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn parse_digest(s: &str) -> Result<Digest, Reply> {
    Digest::parse(s).map_err(|e| error(400, "DIGEST_INVALID", e.to_string()))
}

/// The first byte range of a `Range: bytes=a-b` header within `len`.
fn parse_range(h: &str, len: u64) -> Option<(u64, u64)> {
    let spec = h.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (a, b) = first.split_once('-')?;
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return None;
        }
        return Some((len.saturating_sub(n), len - 1));
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        len.checked_sub(1)?
    } else {
        b.parse::<u64>().ok()?.min(len.checked_sub(1)?)
    };
    (start <= end && start < len).then_some((start, end))
}

impl Registry {
    pub(crate) async fn route(&self, req: &HttpRequest, body: BodyIn) -> Reply {
        let Some(route) = parse_route(&req.path) else {
            return error(
                404,
                "NOT_FOUND",
                format!("no registry endpoint {}", req.path),
            );
        };
        let caller = match self.authenticate(req).await {
            Ok(c) => c,
            Err(r) => return r,
        };
        let m = req.method.as_str();
        let name = match &route {
            Route::Base | Route::Catalog => None,
            Route::Tags(n)
            | Route::Manifest(n, _)
            | Route::UploadStart(n)
            | Route::Upload(n, _)
            | Route::Blob(n, _)
            | Route::Referrers(n, _) => Some(n.clone()),
        };
        if let Some(n) = &name {
            if !valid_name(n) {
                return error(
                    400,
                    "NAME_INVALID",
                    format!("invalid repository name {n:?}"),
                );
            }
            if let Some(r) = self.builtin(&route, m) {
                return r;
            }
        }
        let res = match (route, m) {
            (Route::Base, "GET" | "HEAD") => Ok(json_reply(200, json!({}), vec![])),
            (Route::Catalog, "GET") => self.catalog(req, &caller),
            (Route::Tags(n), "GET") => self.tags(req, &caller, &n),
            (Route::Manifest(n, r), "GET" | "HEAD") => {
                self.get_manifest(&caller, &n, &r, m == "HEAD")
            }
            (Route::Manifest(n, r), "PUT") => self.put_manifest(req, &caller, &n, &r, body).await,
            (Route::Manifest(n, r), "DELETE") => self.delete_manifest(&caller, &n, &r),
            (Route::Blob(n, d), "GET" | "HEAD") => self.get_blob(req, &caller, &n, &d, m == "HEAD"),
            (Route::Blob(n, d), "DELETE") => self.delete_blob(&caller, &n, &d),
            (Route::UploadStart(n), "POST") => self.start_upload(req, &caller, &n, body).await,
            (Route::Upload(n, id), "PATCH") => self.patch_upload(req, &caller, &n, &id, body).await,
            (Route::Upload(n, id), "PUT") => self.finish_upload(req, &caller, &n, &id, body).await,
            (Route::Upload(n, id), "GET") => self.upload_status(&caller, &n, &id).await,
            (Route::Upload(n, id), "DELETE") => self.cancel_upload(&caller, &n, &id),
            (Route::Referrers(n, d), "GET") => self.referrers(req, &caller, &n, &d),
            _ => Err(error(
                405,
                "UNSUPPORTED",
                format!("method {m} is not supported here"),
            )),
        };
        res.unwrap_or_else(|r| r)
    }

    /// The read-only built-in images (`ferrocloud/host-userland`).
    fn builtin(&self, route: &Route, method: &str) -> Option<Reply> {
        let (name, what) = match route {
            Route::Manifest(n, r) => (n, Some(r)),
            Route::Blob(n, _) | Route::Tags(n) => (n, None),
            _ => return None,
        };
        if name != fc_images::userland::REPO {
            return None;
        }
        if !matches!(method, "GET" | "HEAD") {
            return Some(error(403, "DENIED", "built-in images are read-only"));
        }
        let head = method == "HEAD";
        match route {
            Route::Tags(_) => Some(json_reply(
                200,
                json!({"name": name, "tags": ["latest"]}),
                vec![],
            )),
            Route::Manifest(_, _) => {
                let r = what?;
                let Some(d) = self.images.builtin(name, r) else {
                    return Some(error(
                        404,
                        "MANIFEST_UNKNOWN",
                        format!("manifest {r} is unknown"),
                    ));
                };
                Some(self.serve_file(&d, fc_images::manifest::OCI_MANIFEST, head, None))
            }
            Route::Blob(_, d) => {
                let Ok(d) = Digest::parse(d) else {
                    return Some(error(400, "DIGEST_INVALID", "invalid digest"));
                };
                let userland = self.images.userland_digest();
                let known = &d == userland
                    || self
                        .images
                        .manifest(userland)
                        .map(|m| m.blobs().iter().any(|b| b.digest == d))
                        .unwrap_or(false);
                if !known {
                    return Some(error(404, "BLOB_UNKNOWN", format!("blob {d} is unknown")));
                }
                Some(self.serve_file(&d, "application/octet-stream", head, None))
            }
            _ => None,
        }
    }

    fn serve_file(&self, d: &Digest, content_type: &str, head: bool, range: Option<&str>) -> Reply {
        let Some(len) = self.images.blob_size(d) else {
            return error(404, "BLOB_UNKNOWN", format!("blob {d} is unknown"));
        };
        let mut headers = vec![
            ("Content-Type".to_string(), content_type.to_string()),
            ("Docker-Content-Digest".to_string(), d.to_string()),
            ("ETag".to_string(), format!("\"{d}\"")),
            ("Accept-Ranges".to_string(), "bytes".to_string()),
        ];
        let (status, offset, n) = match range.map(|r| parse_range(r, len)) {
            None => (200, 0, len),
            Some(Some((a, b))) => {
                headers.push(("Content-Range".into(), format!("bytes {a}-{b}/{len}")));
                (206, a, b - a + 1)
            }
            Some(None) => {
                let mut r = error(
                    416,
                    "RANGE_INVALID",
                    "the requested range is not satisfiable",
                );
                r.headers
                    .push(("Content-Range".into(), format!("bytes */{len}")));
                return r;
            }
        };
        let _ = head;
        RawReply {
            status,
            headers,
            body: BodyOut::File {
                path: self.images.blob_path(d),
                offset,
                len: n,
            },
        }
    }

    fn repo(&self, caller: &Caller, name: &str) -> Result<Repository, Reply> {
        repos::require_repo(self.store.as_ref(), &caller.scope(), name).map_err(repo_err)
    }

    fn repo_for(&self, caller: &Caller, name: &str, action: &str) -> Result<Repository, Reply> {
        let repo = self.repo(caller, name)?;
        self.authorize(caller, action, &repo)?;
        Ok(repo)
    }

    fn catalog(&self, req: &HttpRequest, caller: &Caller) -> Result<Reply, Reply> {
        let n = query(req, "n")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(PAGE_MAX)
            .min(PAGE_MAX);
        let last = query(req, "last");
        if n == 0 {
            return Ok(json_reply(200, json!({"repositories": []}), vec![]));
        }
        let (repos, more) =
            repos::list_repos(self.store.as_ref(), &caller.scope(), last.as_deref(), n)
                .map_err(repo_err)?;
        let names: Vec<String> = repos
            .into_iter()
            .filter(|r| {
                crate::auth::allowed(
                    self.store.as_ref(),
                    &caller.account,
                    &caller.principal,
                    "ecr:DescribeRepositories",
                    r,
                )
                .is_ok()
            })
            .map(|r| r.name)
            .collect();
        let mut headers = vec![];
        if more {
            if let Some(l) = names.last() {
                headers.push((
                    "Link".into(),
                    format!("</v2/_catalog?n={n}&last={l}>; rel=\"next\""),
                ));
            }
        }
        Ok(json_reply(200, json!({"repositories": names}), headers))
    }

    fn tags(&self, req: &HttpRequest, caller: &Caller, name: &str) -> Result<Reply, Reply> {
        self.repo_for(caller, name, "ecr:ListImages")?;
        let n = query(req, "n")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(PAGE_MAX)
            .min(PAGE_MAX);
        let last = query(req, "last");
        let (tags, more) = if n == 0 {
            (Vec::new(), false)
        } else {
            repos::list_tags(
                self.store.as_ref(),
                &caller.scope(),
                name,
                last.as_deref(),
                n,
            )
            .map_err(repo_err)?
        };
        let tags: Vec<String> = tags.into_iter().map(|(t, _)| t).collect();
        let mut headers = vec![];
        if more {
            if let Some(l) = tags.last() {
                headers.push((
                    "Link".into(),
                    format!("</v2/{name}/tags/list?n={n}&last={l}>; rel=\"next\""),
                ));
            }
        }
        Ok(json_reply(
            200,
            json!({"name": name, "tags": tags}),
            headers,
        ))
    }

    /// Tag or digest -> the image record.
    fn lookup(
        &self,
        caller: &Caller,
        name: &str,
        reference: &str,
    ) -> Result<repos::ImageRecord, Reply> {
        let scope = caller.scope();
        let store = self.store.as_ref();
        let digest = if reference.contains(':') {
            parse_digest(reference)?
        } else {
            if !valid_tag(reference) {
                return Err(error(
                    400,
                    "TAG_INVALID",
                    format!("invalid tag {reference:?}"),
                ));
            }
            repos::get_tag(store, &scope, name, reference)
                .map_err(repo_err)?
                .ok_or_else(|| {
                    error(
                        404,
                        "MANIFEST_UNKNOWN",
                        format!("manifest tagged {reference} is not in repository {name}"),
                    )
                })?
        };
        repos::get_image(store, &scope, name, &digest)
            .map_err(repo_err)?
            .ok_or_else(|| {
                error(
                    404,
                    "MANIFEST_UNKNOWN",
                    format!("manifest {digest} is not in repository {name}"),
                )
            })
    }

    fn get_manifest(
        &self,
        caller: &Caller,
        name: &str,
        reference: &str,
        head: bool,
    ) -> Result<Reply, Reply> {
        self.repo_for(caller, name, "ecr:BatchGetImage")?;
        let rec = self.lookup(caller, name, reference)?;
        if !head {
            let _ = repos::touch_pulled(
                self.store.as_ref(),
                &caller.scope(),
                name,
                &rec.digest,
                fc_protocol::value::now_secs(),
            );
        }
        Ok(self.serve_file(&rec.digest, &rec.media_type, head, None))
    }

    async fn put_manifest(
        &self,
        req: &HttpRequest,
        caller: &Caller,
        name: &str,
        reference: &str,
        body: BodyIn,
    ) -> Result<Reply, Reply> {
        let repo = self.repo_for(caller, name, "ecr:PutImage")?;
        let bytes = body.collect(MANIFEST_LIMIT).await.map_err(|e| {
            error(
                413,
                "SIZE_INVALID",
                format!("manifest too large or unreadable: {e}"),
            )
        })?;
        let digest = Digest::of(&bytes);
        let tag = if reference.contains(':') {
            let want = parse_digest(reference)?;
            if want != digest {
                return Err(error(
                    400,
                    "DIGEST_INVALID",
                    format!("manifest digest {digest} does not match {want}"),
                ));
            }
            None
        } else {
            if !valid_tag(reference) {
                return Err(error(
                    400,
                    "TAG_INVALID",
                    format!("invalid tag {reference:?}"),
                ));
            }
            Some(reference)
        };
        let subject = store_manifest(
            &self.images,
            self.store.as_ref(),
            &caller.scope(),
            &repo,
            &bytes,
            req.header("content-type"),
            tag,
        )?;
        let mut headers = vec![
            (
                "Location".to_string(),
                format!("/v2/{name}/manifests/{digest}"),
            ),
            ("Docker-Content-Digest".to_string(), digest.to_string()),
        ];
        if let Some(s) = subject {
            headers.push(("OCI-Subject".into(), s.to_string()));
        }
        Ok(empty(201, headers))
    }

    fn delete_manifest(
        &self,
        caller: &Caller,
        name: &str,
        reference: &str,
    ) -> Result<Reply, Reply> {
        self.repo_for(caller, name, "ecr:BatchDeleteImage")?;
        let scope = caller.scope();
        if !reference.contains(':') {
            return match repos::untag(self.store.as_ref(), &scope, name, reference)
                .map_err(repo_err)?
            {
                Some(_) => Ok(empty(202, vec![])),
                None => Err(error(
                    404,
                    "MANIFEST_UNKNOWN",
                    format!("tag {reference} is not in repository {name}"),
                )),
            };
        }
        let d = parse_digest(reference)?;
        match repos::delete_image(self.store.as_ref(), &scope, name, &d).map_err(repo_err)? {
            Some(_) => Ok(empty(202, vec![])),
            None => Err(error(
                404,
                "MANIFEST_UNKNOWN",
                format!("manifest {d} is not in repository {name}"),
            )),
        }
    }

    /// Is the blob available in the repository (pushed, mounted, or a manifest of it)?
    fn blob_in_repo(&self, caller: &Caller, name: &str, d: &Digest) -> Result<bool, Reply> {
        let scope = caller.scope();
        let store = self.store.as_ref();
        let linked = repos::get_layer(store, &scope, name, d)
            .map_err(repo_err)?
            .is_some()
            || repos::get_image(store, &scope, name, d)
                .map_err(repo_err)?
                .is_some();
        Ok(linked && self.images.has_blob(d))
    }

    fn get_blob(
        &self,
        req: &HttpRequest,
        caller: &Caller,
        name: &str,
        digest: &str,
        head: bool,
    ) -> Result<Reply, Reply> {
        let action = if head {
            "ecr:BatchCheckLayerAvailability"
        } else {
            "ecr:GetDownloadUrlForLayer"
        };
        self.repo_for(caller, name, action)?;
        let d = parse_digest(digest)?;
        if !self.blob_in_repo(caller, name, &d)? {
            return Err(error(
                404,
                "BLOB_UNKNOWN",
                format!("blob {d} is not in repository {name}"),
            ));
        }
        Ok(self.serve_file(&d, "application/octet-stream", head, req.header("range")))
    }

    fn delete_blob(&self, caller: &Caller, name: &str, digest: &str) -> Result<Reply, Reply> {
        self.repo_for(caller, name, "ecr:BatchDeleteImage")?;
        let d = parse_digest(digest)?;
        if repos::unlink_layer(self.store.as_ref(), &caller.scope(), name, &d).map_err(repo_err)? {
            Ok(empty(202, vec![]))
        } else {
            Err(error(
                404,
                "BLOB_UNKNOWN",
                format!("blob {d} is not in repository {name}"),
            ))
        }
    }

    fn upload_headers(&self, name: &str, id: &str, offset: u64) -> Vec<(String, String)> {
        vec![
            ("Location".into(), format!("/v2/{name}/blobs/uploads/{id}")),
            ("Docker-Upload-UUID".into(), id.to_string()),
            ("Range".into(), format!("0-{}", offset.saturating_sub(1))),
            ("Content-Length".into(), "0".into()),
        ]
    }

    async fn start_upload(
        &self,
        req: &HttpRequest,
        caller: &Caller,
        name: &str,
        body: BodyIn,
    ) -> Result<Reply, Reply> {
        self.repo_for(caller, name, "ecr:InitiateLayerUpload")?;
        let scope = caller.scope();
        if let (Some(mount), from) = (query(req, "mount"), query(req, "from")) {
            let d = parse_digest(&mount)?;
            let source_ok = match &from {
                Some(from) if valid_name(from) => {
                    match repos::get_repo(self.store.as_ref(), &scope, from).map_err(repo_err)? {
                        Some(src) => {
                            self.authorize(caller, "ecr:BatchGetImage", &src).is_ok()
                                && self.blob_in_repo(caller, from, &d)?
                        }
                        None => false,
                    }
                }
                // Without `from`, any blob the store holds for this account may be mounted.
                _ => false,
            };
            if source_ok {
                let size = self.images.blob_size(&d).unwrap_or(0);
                repos::link_layer(self.store.as_ref(), &scope, name, &d, size).map_err(repo_err)?;
                return Ok(empty(
                    201,
                    vec![
                        ("Location".into(), format!("/v2/{name}/blobs/{d}")),
                        ("Docker-Content-Digest".into(), d.to_string()),
                    ],
                ));
            }
        }
        let id = self
            .uploads
            .start(&self.images, name, &caller.account, &caller.region)
            .map_err(internal)?;
        if let Some(digest) = query(req, "digest") {
            // Monolithic upload in one POST.
            return self.complete(caller, name, &id, &digest, Some(body)).await;
        }
        Ok(empty(202, self.upload_headers(name, &id, 0)))
    }

    fn session(
        &self,
        caller: &Caller,
        name: &str,
        id: &str,
    ) -> Result<std::sync::Arc<tokio::sync::Mutex<crate::uploads::Session>>, Reply> {
        self.uploads
            .get(&self.images, id, name, &caller.account, &caller.region)
            .ok_or_else(|| {
                error(
                    404,
                    "BLOB_UPLOAD_UNKNOWN",
                    format!("upload {id} is unknown"),
                )
            })
    }

    async fn patch_upload(
        &self,
        req: &HttpRequest,
        caller: &Caller,
        name: &str,
        id: &str,
        body: BodyIn,
    ) -> Result<Reply, Reply> {
        self.repo_for(caller, name, "ecr:UploadLayerPart")?;
        let s = self.session(caller, name, id)?;
        let mut s = s.lock().await;
        if s.repo != name || s.account != caller.account || s.region != caller.region {
            return Err(error(
                404,
                "BLOB_UPLOAD_UNKNOWN",
                format!("upload {id} is unknown"),
            ));
        }
        if let Some(cr) = req.header("content-range") {
            let start = cr
                .trim()
                .trim_start_matches("bytes ")
                .split(['-', '/'])
                .next()
                .and_then(|a| a.trim().parse::<u64>().ok());
            if start != Some(s.offset) {
                let mut r = error(
                    416,
                    "BLOB_UPLOAD_INVALID",
                    format!("chunk must start at offset {}", s.offset),
                );
                r.headers = self.upload_headers(name, id, s.offset);
                r.headers
                    .push(("Content-Type".into(), "application/json".into()));
                return Err(r);
            }
        }
        append(&mut s, &self.images, id, body).await?;
        Ok(empty(202, self.upload_headers(name, id, s.offset)))
    }

    async fn finish_upload(
        &self,
        req: &HttpRequest,
        caller: &Caller,
        name: &str,
        id: &str,
        body: BodyIn,
    ) -> Result<Reply, Reply> {
        self.repo_for(caller, name, "ecr:CompleteLayerUpload")?;
        let Some(digest) = query(req, "digest") else {
            return Err(error(
                400,
                "DIGEST_INVALID",
                "the digest query parameter is required",
            ));
        };
        self.complete(caller, name, id, &digest, Some(body)).await
    }

    async fn complete(
        &self,
        caller: &Caller,
        name: &str,
        id: &str,
        digest: &str,
        body: Option<BodyIn>,
    ) -> Result<Reply, Reply> {
        let d = match parse_digest(digest) {
            Ok(d) => d,
            Err(r) => {
                self.uploads.forget(&self.images, id);
                return Err(r);
            }
        };
        let s = self.session(caller, name, id)?;
        let mut s = s.lock().await;
        if let Some(body) = body {
            append(&mut s, &self.images, id, body).await?;
        }
        let computed = s.computed();
        let images = self.images.clone();
        let tmp = images.upload_path(id);
        let want = d.clone();
        let res =
            tokio::task::spawn_blocking(move || images.commit_file(&tmp, &want, computed.as_ref()))
                .await
                .map_err(internal)?;
        drop(s);
        self.uploads.forget(&self.images, id);
        let size = match res {
            Ok(n) => n,
            Err(ImageError::DigestMismatch { expected, actual }) => {
                return Err(error(
                    400,
                    "DIGEST_INVALID",
                    format!("uploaded content has digest {actual}, not {expected}"),
                ))
            }
            Err(e) => return Err(internal(e)),
        };
        repos::link_layer(self.store.as_ref(), &caller.scope(), name, &d, size)
            .map_err(repo_err)?;
        Ok(empty(
            201,
            vec![
                ("Location".into(), format!("/v2/{name}/blobs/{d}")),
                ("Docker-Content-Digest".into(), d.to_string()),
                ("Content-Length".into(), "0".into()),
            ],
        ))
    }

    async fn upload_status(&self, caller: &Caller, name: &str, id: &str) -> Result<Reply, Reply> {
        self.repo_for(caller, name, "ecr:InitiateLayerUpload")?;
        let s = self.session(caller, name, id)?;
        let s = s.lock().await;
        Ok(empty(204, self.upload_headers(name, id, s.offset)))
    }

    fn cancel_upload(&self, caller: &Caller, name: &str, id: &str) -> Result<Reply, Reply> {
        self.repo_for(caller, name, "ecr:InitiateLayerUpload")?;
        self.session(caller, name, id)?;
        self.uploads.forget(&self.images, id);
        Ok(empty(204, vec![]))
    }

    fn referrers(
        &self,
        req: &HttpRequest,
        caller: &Caller,
        name: &str,
        digest: &str,
    ) -> Result<Reply, Reply> {
        self.repo_for(caller, name, "ecr:BatchGetImage")?;
        let d = parse_digest(digest)?;
        let filter = query(req, "artifactType");
        let mut manifests = Vec::new();
        for img in
            repos::list_images(self.store.as_ref(), &caller.scope(), name).map_err(repo_err)?
        {
            if img.subject.as_ref() != Some(&d) {
                continue;
            }
            if let Some(f) = &filter {
                if img.artifact_type.as_deref() != Some(f.as_str()) {
                    continue;
                }
            }
            let mut desc = json!({"mediaType": img.media_type, "digest": img.digest, "size": img.manifest_size});
            if let Some(a) = &img.artifact_type {
                desc["artifactType"] = json!(a);
            }
            if let Some(a) = &img.annotations {
                desc["annotations"] = json!(a);
            }
            manifests.push(desc);
        }
        let mut headers = vec![("Content-Type".to_string(), OCI_INDEX.to_string())];
        if filter.is_some() {
            headers.push(("OCI-Filters-Applied".into(), "artifactType".into()));
        }
        Ok(json_reply(
            200,
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
            headers,
        ))
    }
}

async fn append(
    s: &mut crate::uploads::Session,
    images: &fc_images::ImageStore,
    id: &str,
    body: BodyIn,
) -> Result<(), Reply> {
    match s.append(images, id, body).await {
        Ok(_) => Ok(()),
        Err(AppendError::Body(e)) => {
            s.invalidate();
            Err(error(
                400,
                "BLOB_UPLOAD_INVALID",
                format!("upload body could not be read: {e}"),
            ))
        }
        Err(AppendError::Io(e)) => {
            s.invalidate();
            Err(internal(e))
        }
    }
}

/// A manifest PUT: validated, stored and recorded through the image store.
pub(crate) fn store_manifest(
    images: &fc_images::ImageStore,
    store: &dyn fc_store::Store,
    scope: &fc_store::Scope,
    repo: &Repository,
    bytes: &[u8],
    content_type: Option<&str>,
    tag: Option<&str>,
) -> Result<Option<Digest>, Reply> {
    use fc_images::RecordError as R;
    let now = fc_protocol::value::now_secs();
    match images.record_manifest(store, scope, repo, bytes, content_type, tag, now) {
        Ok(r) => Ok(r.manifest.subject.map(|s| s.digest)),
        Err(R::Invalid(e)) => Err(error(400, "MANIFEST_INVALID", e.to_string())),
        Err(e @ (R::BlobUnknown(_) | R::ChildUnknown(..))) => {
            Err(error(400, "MANIFEST_BLOB_UNKNOWN", e.to_string()))
        }
        Err(R::Repo(e)) => Err(repo_err(e)),
        Err(R::Image(e)) => Err(internal(e)),
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(parse_route("/v2/"), Some(Route::Base));
        assert_eq!(parse_route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse_route("/v2/a/b/tags/list"),
            Some(Route::Tags("a/b".into()))
        );
        assert_eq!(
            parse_route("/v2/a/manifests/v1"),
            Some(Route::Manifest("a".into(), "v1".into()))
        );
        assert_eq!(
            parse_route("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart("a".into()))
        );
        assert_eq!(
            parse_route("/v2/x/blobs/uploads/123"),
            Some(Route::Upload("x".into(), "123".into()))
        );
        assert_eq!(
            parse_route("/v2/x/blobs/sha256%3Aab"),
            Some(Route::Blob("x".into(), "sha256:ab".into()))
        );
        assert!(valid_name("a/b-c/d.e"));
        assert!(!valid_name("A"));
        assert!(!valid_name("a//b"));
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
    }
}
