//! The content-addressable image store: blobs by sha256 digest (verified on write), OCI and
//! Docker v2 schema 2 manifests and indexes, image configs, garbage collection of
//! unreferenced blobs, and safe unpacking of layers into overlayfs lower directories.
//!
//! On disk under the store's root:
//! - `blobs/sha256/<hex>`: content (manifests, configs, layers), written to `uploads/` first
//!   and renamed into place only after the digest matched;
//! - `uploads/<id>`: in-progress uploads;
//! - `layers/<hex>/`: a layer unpacked once (whiteouts in overlayfs format), used read-only as
//!   an overlayfs lower directory.
//!
//! Also here: [`repos`], the ECR records (repositories, images, tags, tokens) shared through
//! fc-store by the ECR API and the registry, and the built-in image
//! `ferrocloud/host-userland:latest` ([`userland`]).
//!
//! Must not live here: HTTP (fc-registry), the ECR API (fc-services), running containers.

pub mod digest;
pub mod manifest;
pub mod repos;
pub mod unpack;
pub mod userland;

pub use digest::{Digest, DigestError};
pub use manifest::{ConfigDocument, Descriptor, ImageConfig, Manifest, ManifestError, Platform};
pub use unpack::{UnpackError, UnpackLimits, UnpackStats};

use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Image store failures.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("i/o error on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("digest mismatch: content is {actual}, expected {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {0} is not in the image store")]
    BlobUnknown(Digest),
    #[error("blob {digest} is larger than {limit} bytes")]
    TooLarge { digest: Digest, limit: u64 },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("image config {digest} is invalid: {reason}")]
    Config { digest: Digest, reason: String },
    #[error("index {0} has no linux/amd64 image")]
    NoPlatform(Digest),
    #[error("cannot unpack layer {digest}: {source}")]
    Unpack { digest: Digest, source: UnpackError },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A host directory bind-mounted into a container: (host path, container path, read-only).
pub type HostBind = (PathBuf, PathBuf, bool);

/// Config label naming host directories an image needs bound in:
/// `host:container:ro|rw[,…]`.
pub const HOST_BINDS_LABEL: &str = "dev.ferrocloud.host-binds";

/// What garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: u64,
    pub bytes: u64,
    pub layers: u64,
    pub uploads: u64,
}

/// The image store.
pub struct ImageStore {
    root: PathBuf,
    limits: UnpackLimits,
    unpack_lock: Mutex<()>,
    userland: Digest,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .finish()
    }
}

impl ImageStore {
    /// Open (creating) a store under `root`, with the built-in images in it.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore, ImageError> {
        let root = root.into();
        for d in ["blobs/sha256", "uploads", "layers"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let mut store = ImageStore {
            root,
            limits: UnpackLimits::default(),
            unpack_lock: Mutex::new(()),
            userland: Digest::of(b""),
        };
        store.userland = userland::install(&store)?;
        Ok(store)
    }

    /// Replace the unpack limits.
    pub fn with_limits(mut self, limits: UnpackLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Manifest digest of `ferrocloud/host-userland:latest`.
    pub fn userland_digest(&self) -> &Digest {
        &self.userland
    }

    /// The built-in image a reference names, if any (`ferrocloud/host-userland[:latest]`).
    pub fn builtin(&self, repo: &str, reference: &str) -> Option<Digest> {
        if repo != userland::REPO {
            return None;
        }
        if reference == "latest" || reference == self.userland.as_str() {
            return Some(self.userland.clone());
        }
        None
    }

    /// The manifest digest an image reference names for workloads of `scope`: the built-in
    /// images, or a repository image by tag or digest (`repo:tag`, `host:port/repo@sha256:…`,
    /// `123456789012.dkr.ecr.region.amazonaws.com/repo:tag`). Feed it to [`ImageStore::rootfs`].
    pub fn resolve_image(
        &self,
        store: &dyn fc_store::Store,
        scope: &fc_store::Scope,
        reference: &str,
    ) -> Result<Option<Digest>, repos::RepoError> {
        let (repo, r) = repos::parse_reference(reference);
        let want = match &r {
            repos::Reference::Tag(t) | repos::Reference::Digest(t) => t.as_str(),
        };
        if let Some(d) = self.builtin(&repo, want) {
            return Ok(Some(d));
        }
        Ok(repos::resolve(store, scope, reference)?.map(|(_, d)| d))
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Size of a stored blob.
    pub fn blob_size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(d)).ok().map(|m| m.len())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_size(d).is_some()
    }

    /// A whole blob (manifests, configs), refusing more than `limit` bytes.
    pub fn read_blob(&self, d: &Digest, limit: u64) -> Result<Vec<u8>, ImageError> {
        let p = self.blob_path(d);
        let f = match fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::BlobUnknown(d.clone()))
            }
            Err(e) => return Err(io_err(&p)(e)),
        };
        let mut out = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(io_err(&p))?;
        if out.len() as u64 > limit {
            return Err(ImageError::TooLarge {
                digest: d.clone(),
                limit,
            });
        }
        Ok(out)
    }

    /// Store bytes; returns their digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, ImageError> {
        let d = Digest::of(bytes);
        if self.has_blob(&d) {
            return Ok(d);
        }
        let tmp = self.upload_path(&uuid::Uuid::new_v4().to_string());
        fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
        self.commit_file(&tmp, &d, Some(&d))?;
        Ok(d)
    }

    /// Path of an upload's temporary file (`id` is a uuid the caller made).
    pub fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    /// Move a finished upload into place after checking its digest (`computed` when the caller
    /// hashed while writing; otherwise the file is hashed). Returns the blob size. The
    /// temporary file is gone afterwards either way.
    pub fn commit_file(
        &self,
        tmp: &Path,
        expected: &Digest,
        computed: Option<&Digest>,
    ) -> Result<u64, ImageError> {
        let actual = match computed {
            Some(d) => d.clone(),
            None => match hash_file(tmp) {
                Ok(d) => d,
                Err(e) => {
                    let _ = fs::remove_file(tmp);
                    return Err(e);
                }
            },
        };
        if &actual != expected {
            let _ = fs::remove_file(tmp);
            return Err(ImageError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let dst = self.blob_path(expected);
        let size = fs::metadata(tmp).map_err(io_err(tmp))?.len();
        if dst.exists() {
            let _ = fs::remove_file(tmp);
            return Ok(size);
        }
        if let Ok(f) = fs::File::open(tmp) {
            let _ = f.sync_all();
        }
        fs::rename(tmp, &dst).map_err(io_err(&dst))?;
        Ok(size)
    }

    /// Remove a blob (and its unpacked layer). Returns whether it existed.
    pub fn delete_blob(&self, d: &Digest) -> Result<bool, ImageError> {
        let layer = self.layer_dir(d);
        if layer.exists() {
            fs::remove_dir_all(&layer).map_err(io_err(&layer))?;
        }
        let p = self.blob_path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Every blob in the store.
    pub fn list_blobs(&self) -> Result<Vec<Digest>, ImageError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            if let Ok(d) = Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove blobs (and unpacked layers) that nothing references and uploads left unfinished,
    /// each only when older than `min_age` (so pushes in flight keep their blobs). The
    /// built-in images are always kept, with everything they reference.
    pub fn gc(
        &self,
        referenced: &HashSet<Digest>,
        min_age: Duration,
    ) -> Result<GcReport, ImageError> {
        let mut keep = referenced.clone();
        let mut stack: Vec<Digest> = keep.iter().cloned().collect();
        stack.push(self.userland.clone());
        keep.insert(self.userland.clone());
        // Whatever a kept manifest references is kept too.
        while let Some(d) = stack.pop() {
            let Ok(bytes) = self.read_blob(&d, 4 << 20) else {
                continue;
            };
            let Ok(m) = Manifest::parse(&bytes, None) else {
                continue;
            };
            for c in m.blobs().into_iter().chain(m.manifests.iter()) {
                if keep.insert(c.digest.clone()) {
                    stack.push(c.digest.clone());
                }
            }
        }
        let now = SystemTime::now();
        let old = |p: &Path| {
            fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() >= min_age)
                .unwrap_or(false)
        };
        let mut r = GcReport::default();
        for d in self.list_blobs()? {
            let p = self.blob_path(&d);
            if !keep.contains(&d) && old(&p) {
                r.bytes += self.blob_size(&d).unwrap_or(0);
                if self.delete_blob(&d)? {
                    r.blobs += 1;
                }
            }
        }
        let layers = self.root.join("layers");
        for e in fs::read_dir(&layers).map_err(io_err(&layers))? {
            let e = e.map_err(io_err(&layers))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let stale_tmp = name.starts_with(".tmp-") && old(&e.path());
            let orphan = Digest::parse(&format!("sha256:{name}")).is_ok_and(|d| !self.has_blob(&d));
            if stale_tmp || orphan {
                fs::remove_dir_all(e.path()).map_err(io_err(&e.path()))?;
                r.layers += 1;
            }
        }
        let uploads = self.root.join("uploads");
        for e in fs::read_dir(&uploads).map_err(io_err(&uploads))? {
            let e = e.map_err(io_err(&uploads))?;
            if old(&e.path()) && !e.file_name().to_string_lossy().ends_with(".keep") {
                let _ = fs::remove_file(e.path());
                r.uploads += 1;
            }
        }
        Ok(r)
    }

    /// A stored manifest, parsed.
    pub fn manifest(&self, d: &Digest) -> Result<Manifest, ImageError> {
        let bytes = self.read_blob(d, 4 << 20)?;
        Ok(Manifest::parse(&bytes, None)?)
    }

    /// Directory an unpacked layer lives in.
    pub fn layer_dir(&self, d: &Digest) -> PathBuf {
        self.root.join("layers").join(d.hex())
    }

    /// Unpack a layer blob once into its own directory (see [`unpack`]); later calls return
    /// the same directory. On any error nothing is left behind.
    pub fn unpack(&self, d: &Digest) -> Result<PathBuf, ImageError> {
        let _g = self.unpack_lock.lock().unwrap_or_else(|e| e.into_inner());
        let dst = self.layer_dir(d);
        if dst.is_dir() {
            return Ok(dst);
        }
        let src = self.blob_path(d);
        let f = fs::File::open(&src).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::BlobUnknown(d.clone())
            } else {
                io_err(&src)(e)
            }
        })?;
        let tmp = self
            .root
            .join("layers")
            .join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        match unpack::unpack(f, &tmp, self.limits) {
            Ok(stats) => {
                tracing::debug!(layer = %d, entries = stats.entries, bytes = stats.bytes, "layer unpacked");
                fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
                Ok(dst)
            }
            Err(source) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(ImageError::Unpack {
                    digest: d.clone(),
                    source,
                })
            }
        }
    }

    /// The image manifest for linux/amd64 that `d` (a manifest or an index) stands for.
    pub fn platform_manifest(&self, d: &Digest) -> Result<(Digest, Manifest), ImageError> {
        let m = self.manifest(d)?;
        if !m.is_index() {
            return Ok((d.clone(), m));
        }
        let pick = m
            .pick_platform("linux", "amd64")
            .ok_or_else(|| ImageError::NoPlatform(d.clone()))?;
        let child = self.manifest(&pick.digest)?;
        if child.is_index() {
            return Err(ImageError::NoPlatform(d.clone()));
        }
        Ok((pick.digest.clone(), child))
    }

    /// Everything the execution layer needs to run an image: the unpacked layer directories
    /// top-most first (overlayfs `lowerdir` order), host directories to bind in, and the
    /// image's runtime config.
    pub fn rootfs(
        &self,
        image: &Digest,
    ) -> Result<(Vec<PathBuf>, Vec<HostBind>, ImageConfig), ImageError> {
        let (_, m) = self.platform_manifest(image)?;
        let cfg_desc = m
            .config
            .as_ref()
            .ok_or_else(|| ManifestError("image manifest without config".into()))?;
        let cfg_bytes = self.read_blob(&cfg_desc.digest, 8 << 20)?;
        let doc: ConfigDocument =
            serde_json::from_slice(&cfg_bytes).map_err(|e| ImageError::Config {
                digest: cfg_desc.digest.clone(),
                reason: e.to_string(),
            })?;
        let config = doc.config.unwrap_or_default();
        let mut lowers = Vec::with_capacity(m.layers.len());
        for l in m.layers.iter().rev() {
            lowers.push(self.unpack(&l.digest)?);
        }
        let binds = config
            .labels
            .as_ref()
            .and_then(|l| l.get(HOST_BINDS_LABEL))
            .map(|s| parse_binds(s))
            .unwrap_or_default();
        Ok((lowers, binds, config))
    }
}

/// Why a manifest could not be recorded in a repository.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Invalid(#[from] ManifestError),
    #[error("blob {0} referenced by the manifest is not in the registry")]
    BlobUnknown(Digest),
    #[error("manifest {0} referenced by the index is not in repository {1}")]
    ChildUnknown(Digest, String),
    #[error(transparent)]
    Repo(#[from] repos::RepoError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// A manifest recorded by [`ImageStore::record_manifest`].
#[derive(Debug, Clone)]
pub struct Recorded {
    pub digest: Digest,
    pub manifest: Manifest,
    pub outcome: repos::PutOutcome,
}

impl ImageStore {
    /// Validate a manifest (its blobs must be stored, an index's children must be in the
    /// repository), store it and record it in `repo` with its tag. The one path by which
    /// both the registry (`PUT /v2/…/manifests/…`) and ECR's `PutImage` add images.
    #[allow(clippy::too_many_arguments)]
    pub fn record_manifest(
        &self,
        store: &dyn fc_store::Store,
        scope: &fc_store::Scope,
        repo: &repos::Repository,
        bytes: &[u8],
        content_type: Option<&str>,
        tag: Option<&str>,
        now: f64,
    ) -> Result<Recorded, RecordError> {
        let m = Manifest::parse(bytes, content_type)?;
        let mut size = 0u64;
        for b in m.blobs() {
            if !self.has_blob(&b.digest) {
                return Err(RecordError::BlobUnknown(b.digest.clone()));
            }
            size += u64::try_from(b.size).unwrap_or(0);
        }
        for c in &m.manifests {
            match repos::get_image(store, scope, &repo.name, &c.digest)? {
                Some(child) => size += child.size,
                None => {
                    return Err(RecordError::ChildUnknown(
                        c.digest.clone(),
                        repo.name.clone(),
                    ))
                }
            }
        }
        let digest = self.put_blob(bytes)?;
        let outcome = repos::put_image(
            store,
            scope,
            repo,
            &repos::NewImage {
                digest: &digest,
                manifest: &m,
                manifest_size: bytes.len() as u64,
                size,
                tag,
                now,
            },
        )?;
        Ok(Recorded {
            digest,
            manifest: m,
            outcome,
        })
    }
}

/// `host:container:ro,host2:container2:rw` -> binds (malformed parts are skipped).
pub fn parse_binds(s: &str) -> Vec<HostBind> {
    s.split(',')
        .filter_map(|part| {
            let mut it = part.trim().split(':');
            let host = it.next().filter(|h| h.starts_with('/'))?;
            let ctr = it.next().filter(|c| c.starts_with('/'))?;
            let ro = it.next() != Some("rw");
            Some((PathBuf::from(host), PathBuf::from(ctr), ro))
        })
        .collect()
}

/// The sha256 digest of a file's content.
pub fn hash_file(path: &Path) -> Result<Digest, ImageError> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest::from_hasher(h))
}

#[cfg(test)]
mod tests;
