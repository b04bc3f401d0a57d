//! EBS volumes and snapshots, control plane and data. Each volume's data lives in a directory
//! under the service's data directory ([`volume_path`]: `volumes/<vol-id>/`), each snapshot's
//! in one of its own ([`snapshot_path`]: `snapshots/<snap-id>/`), in one of three formats:
//!
//! - **image** (what an unencrypted volume becomes when first attached to an instance of the
//!   linux driver): the directory holds only [`IMAGE`], a sparse ext4 image file of exactly
//!   the volume's size, so writes past it fail with ENOSPC and `df` shows the size. While
//!   attached it is loop-mounted on the host at [`mount_path`] (`mnt/<vol-id>`) and that mount
//!   is attached into the instances (`storage`); it is unmounted and its loop device released
//!   when the last attachment goes (detach, stop, terminate, delete). A snapshot is a sparse
//!   copy of the image (data extents only; the mounted filesystem frozen meanwhile, so the copy
//!   is consistent), a volume from a snapshot a sparse copy grown (`resize2fs`) to its size;
//!   `ModifyVolume` growing the size grows the image and its filesystem (online while
//!   mounted), as if the user had run `resize2fs`. Only metadata is written up front: under
//!   1 MB for 1 GiB, ~230 MB for 16 TiB. The machinery is `fc_runtime::scratch`'s.
//! - **directory** (blank volumes never attached, volumes and snapshots of earlier versions,
//!   kept root volumes, root snapshots, and hosts without loop devices or `mkfs.ext4`): the
//!   files themselves, unsized. The first attach turns a volume into the image format, its
//!   files copied in ([`open_image`]); if they do not fit, or images cannot be made here, the
//!   directory is served as it is.
//! - **sealed** (`Encrypted`): only an encrypted archive (`crypt`); while attached its
//!   plaintext lives in a tmpfs limited to the volume's size. Sealing an image-format copy
//!   archives the files of its filesystem, not the image.
//!
//! Encrypted volumes and snapshots record their KMS key id (the account's `alias/aws/ebs` key
//! unless one is given); copies of their data stay encrypted. Attachments (`storage`) are kept
//! in [`VolumeRecord`]; a snapshot of an attached volume captures its current data.

use super::{
    bool_s, check_dry_run_v, check_id, default_kms_key, filters, images, invalid_value, matches,
    now, one, opt_bool, opt_i64, opt_str, page_output, paginate, req_str, scan_all, spec_tags,
    str_list, tags, vpcs, with_tags, Ctx, SNAPSHOTS, VOLUMES, VOLUME_MODS,
};
use crate::common::{idempotent_record, idempotent_replay};
use fc_protocol::value::epoch_value;
use fc_protocol::ApiError;
use fc_store::Scope;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// An attachment of a volume to an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    pub instance_id: String,
    pub device: String,
    /// `attaching`, `attached`, `detaching`.
    pub state: String,
    pub attach_time: f64,
    pub delete_on_termination: bool,
}

/// A volume as stored (`ec2_volumes`, key: volume id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub volume_id: String,
    /// GiB.
    pub size: i64,
    pub volume_type: String,
    #[serde(default)]
    pub iops: Option<i64>,
    #[serde(default)]
    pub throughput: Option<i64>,
    pub availability_zone: String,
    pub availability_zone_id: String,
    #[serde(default)]
    pub snapshot_id: Option<String>,
    pub encrypted: bool,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub multi_attach_enabled: bool,
    pub create_time: f64,
    #[serde(default)]
    pub attachments: Vec<VolumeAttachment>,
    pub owner_id: String,
}

/// A snapshot as stored (`ec2_snapshots`, key: snapshot id, in the owner's account and region).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub snapshot_id: String,
    pub volume_id: String,
    /// GiB.
    pub volume_size: i64,
    pub description: String,
    pub encrypted: bool,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    pub start_time: f64,
    pub owner_id: String,
    /// Accounts that may create volumes from it.
    #[serde(default)]
    pub create_volume_users: Vec<String>,
    #[serde(default)]
    pub public: bool,
    /// Bytes of data it holds.
    #[serde(default)]
    pub data_bytes: u64,
}

/// The directory holding a volume's data.
pub fn volume_path(data_dir: &Path, volume_id: &str) -> PathBuf {
    data_dir.join("volumes").join(volume_id)
}

/// The directory holding a snapshot's data.
pub fn snapshot_path(data_dir: &Path, snapshot_id: &str) -> PathBuf {
    data_dir.join("snapshots").join(snapshot_id)
}

/// The file holding an image-format volume's (or snapshot's) filesystem, in its directory.
pub(crate) const IMAGE: &str = "ebs-volume.ext4";

/// The image of an image-format data directory.
pub(crate) fn image_in(dir: &Path) -> Option<PathBuf> {
    let p = dir.join(IMAGE);
    p.is_file().then_some(p)
}

/// Where an image-format volume is mounted on the host while attached.
pub(crate) fn mount_path(data_dir: &Path, volume_id: &str) -> PathBuf {
    data_dir.join("mnt").join(volume_id)
}

/// Formatted images per size, copied into new volumes.
fn templates(data_dir: &Path) -> PathBuf {
    data_dir.join("volume-templates")
}

/// The image size of a volume of `gib` GiB, in MiB.
fn image_mb(gib: i64) -> u64 {
    (gib.max(1) as u64) << 10
}

/// Run `f` with the image size in MiB, retried one MiB smaller when the full size fails: a
/// 16 TiB file is one block too large for an ext4 host (its limit is 16 TiB - 4 KiB).
fn with_fitting_size(gib: i64, mut f: impl FnMut(u64) -> Result<(), String>) -> Result<(), String> {
    let mb = image_mb(gib);
    match f(mb) {
        Ok(()) => Ok(()),
        Err(why) if mb >= 16 << 20 => f(mb - 1).map_err(|e| format!("{why}; {e}")),
        Err(why) => Err(why),
    }
}

fn make_image(data_dir: &Path, img: &Path, gib: i64) -> Result<(), String> {
    with_fitting_size(gib, |mb| {
        fc_runtime::scratch::create_image(&templates(data_dir), img, mb)
    })
}

/// Grow an image to a volume's size (its filesystem too, see `grow_image`).
pub(crate) fn grow_image(img: &Path, gib: i64) -> Result<(), String> {
    with_fitting_size(gib, |mb| fc_runtime::scratch::grow_image(img, mb))
}

/// The directory inside an encrypted volume's image that holds its files (ext4 encryption
/// cannot cover a filesystem's root directory).
pub(crate) const ENCRYPTED_ROOT: &str = "volume";

/// The wrapped key of an image-format encrypted volume or snapshot, if it has one.
fn key_in(dir: &Path) -> Option<PathBuf> {
    let p = dir.join(super::crypt::IMAGE_KEY);
    p.is_file().then_some(p)
}

/// Whether a data directory holds encrypted data (sealed, or an image with its key).
pub(crate) fn is_encrypted_data(dir: &Path) -> bool {
    super::crypt::is_sealed(dir) || (image_in(dir).is_some() && key_in(dir).is_some())
}

/// Give the filesystem mounted at `mnt` the key stored in `dir`; returns the files' directory.
fn unlock(data_dir: &Path, dir: &Path, mnt: &Path) -> Result<PathBuf, String> {
    let path = key_in(dir).ok_or_else(|| format!("{} has no volume key", dir.display()))?;
    let key = super::crypt::volume_key(data_dir, &path).map_err(|e| e.to_string())?;
    fc_runtime::scratch::add_encryption_key(mnt, &key)?;
    Ok(mnt.join(ENCRYPTED_ROOT))
}

/// Serializes mounting and unmounting of volume images (two attachments of a multi-attach
/// volume may open it at the same time; the first mounts, the second finds it mounted).
static IMAGE_MOUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn image_mounts() -> std::sync::MutexGuard<'static, ()> {
    IMAGE_MOUNTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Open a volume for attaching: its image mounted at [`mount_path`] (already mounted: nothing
/// to do; directory-format or sealed data is turned into an image first). An encrypted
/// volume's key is given to the mounted filesystem. Returns the directory to attach. On
/// failure the volume's data is left as it was.
pub(crate) fn open_image(
    data_dir: &Path,
    volume_id: &str,
    gib: i64,
    encrypted: bool,
) -> Result<PathBuf, String> {
    let _g = image_mounts();
    let dir = volume_path(data_dir, volume_id);
    let mnt = mount_path(data_dir, volume_id);
    let root = |m: &Path| {
        if encrypted {
            m.join(ENCRYPTED_ROOT)
        } else {
            m.to_path_buf()
        }
    };
    if fc_runtime::scratch::is_mounted(&mnt) {
        if encrypted {
            // The key goes with the filesystem; after a restart it is still there, but
            // giving it again costs nothing.
            unlock(data_dir, &dir, &mnt)?;
        }
        return Ok(root(&mnt));
    }
    fc_runtime::scratch::image_support()?;
    if encrypted {
        fc_runtime::scratch::encryption_support()?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    match image_in(&dir) {
        Some(img) => {
            // Grown while it was in use elsewhere: its filesystem follows now.
            if let Err(why) = grow_image(&img, gib) {
                tracing::warn!(volume = %volume_id, reason = %why, "cannot grow volume image");
            }
            fc_runtime::scratch::mount_image(&img, &mnt, false)?;
            if encrypted {
                if let Err(why) = unlock(data_dir, &dir, &mnt) {
                    fc_runtime::scratch::unmount_image(&mnt, &img);
                    return Err(why);
                }
            }
        }
        None => migrate(data_dir, volume_id, gib, encrypted, &dir, &mnt)?,
    }
    Ok(root(&mnt))
}

/// Turn directory-format (or sealed) volume data into an image of `gib` GiB holding the same
/// files, left mounted at `mnt`. Crash-safe: the image enters the directory (which makes it
/// image-format) only once complete and synced, after its key; the old files are removed
/// after that.
fn migrate(
    data_dir: &Path,
    volume_id: &str,
    gib: i64,
    encrypted: bool,
    dir: &Path,
    mnt: &Path,
) -> Result<(), String> {
    let staging = dir.with_extension("new-image");
    let staging_key = dir.with_extension("new-key");
    let _ = std::fs::remove_file(&staging);
    make_image(data_dir, &staging, gib)?;
    let fail = |why: String| {
        fc_runtime::scratch::unmount_image(mnt, &staging);
        let _ = std::fs::remove_file(&staging);
        let _ = std::fs::remove_file(&staging_key);
        why
    };
    fc_runtime::scratch::mount_image(&staging, mnt, false).map_err(fail)?;
    let old: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))
        .map_err(fail)?
        .flatten()
        .map(|e| e.path())
        .collect();
    let files = if encrypted {
        let key = super::crypt::new_volume_key(data_dir, &staging_key)
            .map_err(|e| format!("make the key of {volume_id}: {e}"))
            .map_err(fail)?;
        let id = fc_runtime::scratch::add_encryption_key(mnt, &key).map_err(fail)?;
        let files = mnt.join(ENCRYPTED_ROOT);
        std::fs::create_dir(&files)
            .map_err(|e| format!("create {}: {e}", files.display()))
            .map_err(fail)?;
        fc_runtime::scratch::encrypt_dir(&files, &id).map_err(fail)?;
        files
    } else {
        mnt.to_path_buf()
    };
    let sealed = dir.join(super::crypt::SEALED);
    if encrypted && sealed.is_file() {
        super::crypt::open_tree(data_dir, &sealed, &files)
            .map_err(|e| format!("unpack the sealed data of {volume_id}: {e}"))
            .map_err(fail)?;
    } else if !old.is_empty() {
        copy_tree(dir, &files)
            .map_err(|e| format!("copy the files of {volume_id} into its image: {e}"))
            .map_err(fail)?;
    }
    let synced = std::process::Command::new("sync")
        .arg("-f")
        .arg(mnt)
        .status()
        .map_err(|e| e.to_string())
        .and_then(|s| s.success().then_some(()).ok_or("sync failed".to_string()))
        .and_then(|()| {
            std::fs::File::open(&staging)
                .and_then(|f| f.sync_all())
                .map_err(|e| e.to_string())
        });
    synced.map_err(fail)?;
    if encrypted {
        std::fs::rename(&staging_key, dir.join(super::crypt::IMAGE_KEY))
            .map_err(|e| format!("install the key of {volume_id}: {e}"))
            .map_err(fail)?;
    }
    std::fs::rename(&staging, dir.join(IMAGE))
        .map_err(|e| format!("install the image of {volume_id}: {e}"))
        .map_err(fail)?;
    let keep = [
        std::ffi::OsStr::new(IMAGE),
        std::ffi::OsStr::new(super::crypt::IMAGE_KEY),
    ];
    for p in old
        .iter()
        .filter(|p| !p.file_name().is_some_and(|n| keep.contains(&n)))
    {
        let _ = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        };
    }
    tracing::debug!(volume = %volume_id, "volume data turned into a sized image");
    Ok(())
}

/// Unmount an image-format volume from the host (its loop device goes with its last user).
pub(crate) fn close_image(data_dir: &Path, volume_id: &str) {
    let _g = image_mounts();
    let dir = volume_path(data_dir, volume_id);
    let mnt = mount_path(data_dir, volume_id);
    match image_in(&dir) {
        Some(img) => fc_runtime::scratch::unmount_image(&mnt, &img),
        None => {
            let _ = std::fs::remove_dir(&mnt);
        }
    }
}

/// Delete a volume's data (unmounted first).
pub(crate) fn remove_volume_data(data_dir: &Path, volume_id: &str) {
    close_image(data_dir, volume_id);
    remove_data(&volume_path(data_dir, volume_id));
}

/// Run `f` on the files of a data directory: the directory itself, or (image format) its
/// image mounted read-only for the call.
pub(crate) fn with_files<T>(
    data_dir: &Path,
    dir: &Path,
    f: impl FnOnce(&Path) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let Some(img) = image_in(dir) else {
        return f(dir);
    };
    let mnt = data_dir
        .join("mnt")
        .join(format!("ro-{}", uuid::Uuid::new_v4()));
    let fail = |e: String| ApiError::internal(format!("cannot read {}: {e}", dir.display()));
    fc_runtime::scratch::mount_image(&img, &mnt, true).map_err(fail)?;
    let files = match key_in(dir) {
        Some(_) => unlock(data_dir, dir, &mnt),
        None => Ok(mnt.clone()),
    };
    let r = files.map_err(fail).and_then(|files| f(&files));
    fc_runtime::scratch::unmount_image(&mnt, &img);
    r
}

/// Bytes of the regular files under `p` (of an image: the space it takes on disk).
pub(crate) fn tree_bytes(p: &Path) -> u64 {
    if let Some(img) = image_in(p) {
        use std::os::unix::fs::MetadataExt;
        return std::fs::metadata(img)
            .map(|m| m.blocks() * 512)
            .unwrap_or(0);
    }
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Copy a directory tree over `dst` with `cp -a` (owners, modes, links, xattrs and overlayfs
/// whiteouts kept).
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Make `dst` a copy of `src` (or empty when `src` does not exist), in the same format (an
/// image is copied sparsely); returns its bytes.
pub(crate) fn clone_data(src: Option<&Path>, dst: &Path) -> Result<u64, ApiError> {
    if let Some(img) = src.and_then(image_in) {
        let fail = |e: std::io::Error| {
            ApiError::internal(format!("cannot copy data to {}: {e}", dst.display()))
        };
        if dst.exists() {
            std::fs::remove_dir_all(dst).map_err(fail)?;
        }
        std::fs::create_dir_all(dst).map_err(fail)?;
        let copied =
            fc_runtime::scratch::copy_sparse(&img, &dst.join(IMAGE)).and_then(|_| {
                match src.and_then(key_in) {
                    Some(k) => std::fs::copy(k, dst.join(super::crypt::IMAGE_KEY)).map(|_| ()),
                    None => Ok(()),
                }
            });
        if let Err(e) = copied {
            let _ = std::fs::remove_dir_all(dst);
            return Err(fail(e));
        }
        return Ok(tree_bytes(dst));
    }
    clone_layers(src.into_iter().collect::<Vec<_>>().as_slice(), dst)
}

/// Make `dst` the data of a new volume of `gib` GiB from snapshot data `src` (or blank): a
/// copy, an image grown to the volume's size.
pub(crate) fn new_volume_data(src: Option<&Path>, dst: &Path, gib: i64) -> Result<u64, ApiError> {
    let n = clone_data(src, dst)?;
    if let Some(img) = image_in(dst) {
        if let Err(e) = grow_image(&img, gib) {
            remove_data(dst);
            return Err(ApiError::internal(format!(
                "cannot grow {} to {gib} GiB: {e}",
                dst.display()
            )));
        }
    }
    Ok(n)
}

/// Copy the data of volume `volume_id` (not a root volume) to `dst`: an image is copied with
/// its filesystem frozen while mounted, so the copy is consistent.
fn copy_volume_data(data_dir: &Path, volume_id: &str, dst: &Path) -> Result<u64, ApiError> {
    let src = volume_path(data_dir, volume_id);
    let mnt = mount_path(data_dir, volume_id);
    let _frozen = if image_in(&src).is_some() && fc_runtime::scratch::is_mounted(&mnt) {
        match fc_runtime::scratch::freeze(&mnt) {
            Ok(f) => Some(f),
            Err(why) => {
                tracing::warn!(volume = %volume_id, reason = %why, "snapshot without freezing");
                None
            }
        }
    } else {
        None
    };
    clone_data(Some(&src), dst)
}

/// Make `dst` the union of `srcs` copied in order (later ones win); returns its bytes.
pub(crate) fn clone_layers(srcs: &[&Path], dst: &Path) -> Result<u64, ApiError> {
    let fail = |e: std::io::Error| {
        ApiError::internal(format!("cannot prepare data at {}: {e}", dst.display()))
    };
    if dst.exists() {
        std::fs::remove_dir_all(dst).map_err(fail)?;
    }
    std::fs::create_dir_all(dst).map_err(fail)?;
    for s in srcs.iter().filter(|s| s.is_dir()) {
        copy_tree(s, dst).map_err(fail)?;
    }
    Ok(tree_bytes(dst))
}

pub(crate) fn remove_data(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove ebs data");
        }
    }
}

// ---- volume type rules ----

struct TypeRules {
    min_size: i64,
    max_size: i64,
    /// (min, max, max per GiB) when IOPS may be given.
    iops: Option<(i64, i64, i64)>,
    iops_required: bool,
}

fn rules(volume_type: &str) -> Option<TypeRules> {
    let r = |min_size, max_size, iops, iops_required| TypeRules {
        min_size,
        max_size,
        iops,
        iops_required,
    };
    Some(match volume_type {
        "gp2" => r(1, 16384, None, false),
        "gp3" => r(1, 16384, Some((3000, 16000, 500)), false),
        "io1" => r(4, 16384, Some((100, 64000, 50)), true),
        "io2" => r(4, 65536, Some((100, 256000, 1000)), true),
        "st1" | "sc1" => r(125, 16384, None, false),
        "standard" => r(1, 1024, None, false),
        _ => return None,
    })
}

/// Check size, IOPS and throughput for a volume type; returns (iops, throughput) to store.
pub(crate) fn check_volume(
    volume_type: &str,
    size: i64,
    iops: Option<i64>,
    throughput: Option<i64>,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let r = rules(volume_type).ok_or_else(|| {
        invalid_value(format!(
            "Value ({volume_type}) for parameter volumeType is invalid. Valid types: standard, io1, io2, gp2, sc1, st1, gp3."
        ))
    })?;
    if size < r.min_size {
        return Err(invalid_value(format!(
            "Volume of {size}GiB is too small for volume type {volume_type}; minimum is {}GiB",
            r.min_size
        )));
    }
    if size > r.max_size {
        return Err(invalid_value(format!(
            "Volume of {size}GiB is too large for volume type {volume_type}; maximum is {}GiB",
            r.max_size
        )));
    }
    if throughput.is_some() && volume_type != "gp3" {
        return Err(ApiError::client(
            "InvalidParameterCombination",
            format!("The parameter throughput is not supported for {volume_type} volumes."),
        ));
    }
    let iops = match (r.iops, iops) {
        (None, Some(_)) => {
            return Err(ApiError::client(
                "InvalidParameterCombination",
                format!("The parameter iops is not supported for {volume_type} volumes."),
            ))
        }
        (None, None) if volume_type == "gp2" => Some((size * 3).clamp(100, 16000)),
        (None, None) => None,
        (Some(_), None) if r.iops_required => {
            return Err(ApiError::missing("MissingParameter", "iops"))
        }
        (Some((min, _, _)), None) => Some(min),
        (Some((min, max, per_gib)), Some(i)) => {
            if i < min || i > max {
                return Err(invalid_value(format!(
                    "Value ({i}) for parameter iops is invalid. Expected between {min} and {max}."
                )));
            }
            // gp3's 3000 IOPS baseline comes with any size; the ratio limits what is above it.
            if i > size * per_gib && !(volume_type == "gp3" && i <= min) {
                return Err(invalid_value(format!(
                    "Iops to volume size ratio of {:.3} is too high; maximum is {per_gib}.000000",
                    i as f64 / size as f64
                )));
            }
            Some(i)
        }
    };
    let throughput = if volume_type == "gp3" {
        let t = throughput.unwrap_or(125);
        if !(125..=1000).contains(&t) {
            return Err(invalid_value(format!(
                "Value ({t}) for parameter throughput is invalid. Expected between 125 and 1000."
            )));
        }
        let max_by_iops = iops.unwrap_or(3000) / 4;
        if t > max_by_iops {
            return Err(invalid_value(format!(
                "Throughput ({t} MiB/s) is too high for the provisioned IOPS ({}); maximum is 0.25 MiB/s per IOPS.",
                iops.unwrap_or(3000)
            )));
        }
        Some(t)
    } else {
        None
    };
    Ok((iops, throughput))
}

// ---- lookups ----

fn volume_not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidVolume.NotFound",
        format!("The volume '{id}' does not exist."),
    )
}

fn snapshot_not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidSnapshot.NotFound",
        format!("The snapshot '{id}' does not exist."),
    )
}

pub(crate) fn require_volume(c: &Ctx<'_>, id: &str) -> Result<VolumeRecord, ApiError> {
    check_id(id, "vol", "InvalidVolumeID.Malformed")?;
    c.get::<VolumeRecord>(VOLUMES, id)?
        .ok_or_else(|| volume_not_found(id))
}

fn snapshot_usable(s: &SnapshotRecord, account: &str) -> bool {
    s.owner_id == account || s.public || s.create_volume_users.iter().any(|u| u == account)
}

/// Snapshots the caller can see in its region: its own and those shared with it.
fn visible_snapshots(c: &Ctx<'_>) -> Result<Vec<SnapshotRecord>, ApiError> {
    let mut out: Vec<SnapshotRecord> = c
        .all::<SnapshotRecord>(SNAPSHOTS)?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let scopes = c
        .store
        .scopes(SNAPSHOTS)
        .map_err(crate::common::store_error)?;
    for scope in scopes
        .iter()
        .filter(|s| s.region == c.region() && s.account != c.account())
    {
        for (_, s) in scan_all::<SnapshotRecord>(c.store, scope, SNAPSHOTS)? {
            if snapshot_usable(&s, c.account()) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// A snapshot the caller owns or that is shared with it, in its region.
pub(crate) fn require_snapshot(c: &Ctx<'_>, id: &str) -> Result<SnapshotRecord, ApiError> {
    check_id(id, "snap", "InvalidSnapshotID.Malformed")?;
    if let Some(s) = c.get::<SnapshotRecord>(SNAPSHOTS, id)? {
        return Ok(s);
    }
    visible_snapshots(c)?
        .into_iter()
        .find(|s| s.snapshot_id == id)
        .ok_or_else(|| snapshot_not_found(id))
}

/// A snapshot stored in `scope`.
pub(crate) fn snapshot_in(
    c: &Ctx<'_>,
    scope: &Scope,
    id: &str,
) -> Result<Option<SnapshotRecord>, ApiError> {
    c.get_in(scope, SNAPSHOTS, id)
}

/// Record a copy of snapshot `src_id` (whose record may be unknown, as for catalog AMIs) in
/// the caller's account and region, with its data.
pub(crate) fn copy_snapshot_record(
    c: &Ctx<'_>,
    src: Option<&SnapshotRecord>,
    src_id: &str,
    size: i64,
    description: &str,
    kms: Option<String>,
) -> Result<SnapshotRecord, ApiError> {
    let id = fc_types::ids::ec2_id("snap");
    let bytes = clone_data(
        Some(&snapshot_path(c.data_dir, src_id)),
        &snapshot_path(c.data_dir, &id),
    )?;
    let encrypted = kms.is_some() || src.is_some_and(|s| s.encrypted);
    if encrypted {
        seal(c, &snapshot_path(c.data_dir, &id))?;
    }
    let kms_key_id = kms.or_else(|| src.and_then(|s| s.kms_key_id.clone()));
    let rec = SnapshotRecord {
        snapshot_id: id.clone(),
        volume_id: "vol-ffffffff".into(),
        volume_size: src.map_or(size, |s| s.volume_size),
        description: description.to_string(),
        encrypted,
        kms_key_id: if encrypted { kms_key_id } else { None },
        start_time: now(),
        owner_id: c.account().to_string(),
        create_volume_users: Vec::new(),
        public: false,
        data_bytes: bytes,
    };
    c.put(SNAPSHOTS, &id, &rec)?;
    Ok(rec)
}

/// Make a data directory encrypted at rest (no-op when it already is). An image-format
/// directory is sealed with the files of its filesystem, and its image removed.
pub(crate) fn seal(c: &Ctx<'_>, dir: &Path) -> Result<(), ApiError> {
    let fail = |e: super::crypt::CryptError| {
        ApiError::internal(format!("cannot encrypt {}: {e}", dir.display()))
    };
    if image_in(dir).is_some() && key_in(dir).is_some() {
        return Ok(()); // an encrypted image already
    }
    if let Some(img) = image_in(dir) {
        with_files(c.data_dir, dir, |files| {
            super::crypt::seal_tree(c.data_dir, files, &dir.join(super::crypt::SEALED))
                .map_err(fail)
        })?;
        return std::fs::remove_file(&img)
            .map_err(|e| ApiError::internal(format!("cannot remove {}: {e}", img.display())));
    }
    super::crypt::seal_in_place(c.data_dir, dir).map_err(fail)
}

/// Delete one of the caller's snapshots with its data; `false` when it does not exist.
pub(crate) fn remove_snapshot(c: &Ctx<'_>, id: &str) -> Result<bool, ApiError> {
    if !c.delete(SNAPSHOTS, id)? {
        return Ok(false);
    }
    tags::drop_all(c, id)?;
    remove_data(&snapshot_path(c.data_dir, id));
    Ok(true)
}

// ---- volumes ----

fn volume_value(c: &Ctx<'_>, v: &VolumeRecord) -> Result<Value, ApiError> {
    let t = tags::get(c, &v.volume_id)?;
    let state = if v.attachments.is_empty() {
        "available"
    } else {
        "in-use"
    };
    let mut out = json!({
        "VolumeId": v.volume_id,
        "Size": v.size,
        "AvailabilityZone": v.availability_zone,
        "AvailabilityZoneId": v.availability_zone_id,
        "State": state,
        "CreateTime": epoch_value(v.create_time),
        "Attachments": v.attachments.iter().map(|a| json!({
            "VolumeId": v.volume_id,
            "InstanceId": a.instance_id,
            "Device": a.device,
            "State": a.state,
            "AttachTime": epoch_value(a.attach_time),
            "DeleteOnTermination": a.delete_on_termination,
        })).collect::<Vec<_>>(),
        "Encrypted": v.encrypted,
        "VolumeType": v.volume_type,
        "MultiAttachEnabled": v.multi_attach_enabled,
        "SnapshotId": v.snapshot_id.clone().unwrap_or_default(),
        "VolumeArn": format!("arn:aws:ec2:{}:{}:volume/{}", c.region(), v.owner_id, v.volume_id),
        "OwnerId": v.owner_id,
    });
    if let Some(i) = v.iops {
        out["Iops"] = json!(i);
    }
    if let Some(t) = v.throughput {
        out["Throughput"] = json!(t);
    }
    if let Some(k) = &v.kms_key_id {
        out["KmsKeyId"] = json!(k);
    }
    Ok(with_tags(out, &t))
}

pub(crate) fn create_volume(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let az_in = opt_str(input, "AvailabilityZone").or_else(|| opt_str(input, "AvailabilityZoneId"));
    let Some(az_in) = az_in else {
        return Err(ApiError::missing("MissingParameter", "AvailabilityZone"));
    };
    let zone = vpcs::zone(c.region(), az_in)
        .ok_or_else(|| invalid_value(format!("Invalid availability zone: [{az_in}]")))?;
    let token = opt_str(input, "ClientToken");
    if let Some(out) = idempotent_replay(c.store, c.req, token, input)? {
        return Ok(out);
    }
    let volume_type = opt_str(input, "VolumeType").unwrap_or("gp2");
    let snap = match opt_str(input, "SnapshotId").filter(|s| !s.is_empty()) {
        Some(s) => Some(require_snapshot(c, s)?),
        None => None,
    };
    let size = match (opt_i64(input, "Size"), &snap) {
        (Some(s), Some(snap)) if s < snap.volume_size => {
            return Err(invalid_value(format!(
                "Volume of {s}GiB is smaller than snapshot '{}', expect size >= {}GiB",
                snap.snapshot_id, snap.volume_size
            )))
        }
        (Some(s), _) => s,
        (None, Some(snap)) => snap.volume_size,
        (None, None) => {
            return Err(ApiError::client(
                "MissingParameter",
                "The request must contain the parameter size/snapshot",
            ))
        }
    };
    let (iops, throughput) = check_volume(
        volume_type,
        size,
        opt_i64(input, "Iops"),
        opt_i64(input, "Throughput"),
    )?;
    let multi = opt_bool(input, "MultiAttachEnabled").unwrap_or(false);
    if multi && !matches!(volume_type, "io1" | "io2") {
        return Err(ApiError::client(
            "InvalidParameterCombination",
            "Multi-Attach is supported only for io1 and io2 volumes.",
        ));
    }
    let kms_in = opt_str(input, "KmsKeyId");
    let encrypted_in = opt_bool(input, "Encrypted");
    if kms_in.is_some() && encrypted_in != Some(true) {
        return Err(ApiError::client(
            "InvalidParameterDependency",
            "The parameter KmsKeyId requires the parameter Encrypted to be set.",
        ));
    }
    let snap_encrypted = snap.as_ref().is_some_and(|s| s.encrypted);
    if snap_encrypted && encrypted_in == Some(false) {
        return Err(invalid_value(
            "Volumes created from encrypted snapshots are always encrypted.",
        ));
    }
    let encrypted = encrypted_in.unwrap_or(false) || snap_encrypted;
    let kms_key_id = encrypted.then(|| {
        kms_in
            .map(str::to_string)
            .or_else(|| snap.as_ref().and_then(|s| s.kms_key_id.clone()))
            .unwrap_or_else(|| default_kms_key(c.account(), c.region()))
    });
    let t = spec_tags(input, "volume")?;
    check_dry_run_v(input)?;
    let id = fc_types::ids::ec2_id("vol");
    new_volume_data(
        snap.as_ref()
            .map(|s| snapshot_path(c.data_dir, &s.snapshot_id))
            .as_deref(),
        &volume_path(c.data_dir, &id),
        size,
    )?;
    if encrypted {
        if let Err(e) = seal(c, &volume_path(c.data_dir, &id)) {
            remove_data(&volume_path(c.data_dir, &id));
            return Err(e);
        }
    }
    let v = VolumeRecord {
        volume_id: id.clone(),
        size,
        volume_type: volume_type.to_string(),
        iops,
        throughput,
        availability_zone: zone.name,
        availability_zone_id: zone.id,
        snapshot_id: snap.map(|s| s.snapshot_id),
        encrypted,
        kms_key_id,
        multi_attach_enabled: multi,
        create_time: now(),
        attachments: Vec::new(),
        owner_id: c.account().to_string(),
    };
    c.put(VOLUMES, &id, &v)?;
    tags::add(c, &id, &t)?;
    let mut out = volume_value(c, &v)?;
    out["State"] = json!("creating");
    idempotent_record(c.store, c.req, token, input, &out)?;
    Ok(out)
}

pub(crate) fn describe_volumes(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "attachment.attach-time",
            "attachment.delete-on-termination",
            "attachment.device",
            "attachment.instance-id",
            "attachment.status",
            "availability-zone",
            "availability-zone-id",
            "create-time",
            "encrypted",
            "fast-restored",
            "multi-attach-enabled",
            "size",
            "snapshot-id",
            "status",
            "volume-id",
            "volume-type",
            "iops",
            "throughput",
        ],
        true,
    )?;
    let ids = str_list(input, "VolumeIds");
    for id in &ids {
        check_id(id, "vol", "InvalidVolumeID.Malformed")?;
    }
    check_dry_run_v(input)?;
    for id in &ids {
        require_volume(c, id)?;
    }
    let mut items = Vec::new();
    for (id, v) in c.all::<VolumeRecord>(VOLUMES)? {
        if !ids.is_empty() && !ids.contains(&id) {
            continue;
        }
        let t = tags::get(c, &id)?;
        let att = |f: &dyn Fn(&VolumeAttachment) -> String| -> Option<Vec<String>> {
            Some(v.attachments.iter().map(f).collect())
        };
        let ok = matches(&fs, &t, |n| match n {
            "attachment.attach-time" => att(&|a| fc_protocol::value::format_iso8601(a.attach_time)),
            "attachment.delete-on-termination" => att(&|a| a.delete_on_termination.to_string()),
            "attachment.device" => att(&|a| a.device.clone()),
            "attachment.instance-id" => att(&|a| a.instance_id.clone()),
            "attachment.status" => att(&|a| a.state.clone()),
            "availability-zone" => one(&v.availability_zone),
            "availability-zone-id" => one(&v.availability_zone_id),
            "create-time" => one(fc_protocol::value::format_iso8601(v.create_time)),
            "encrypted" => bool_s(v.encrypted),
            "fast-restored" => bool_s(false),
            "multi-attach-enabled" => bool_s(v.multi_attach_enabled),
            "size" => one(v.size.to_string()),
            "snapshot-id" => Some(v.snapshot_id.clone().into_iter().collect()),
            "status" => one(if v.attachments.is_empty() {
                "available"
            } else {
                "in-use"
            }),
            "volume-id" => one(&v.volume_id),
            "volume-type" => one(&v.volume_type),
            "iops" => Some(v.iops.map(|i| i.to_string()).into_iter().collect()),
            "throughput" => Some(v.throughput.map(|i| i.to_string()).into_iter().collect()),
            _ => None,
        });
        if ok {
            items.push((id.clone(), volume_value(c, &v)?));
        }
    }
    let (page, next) = paginate(c, input, items, (5, 500), None)?;
    Ok(page_output("Volumes", page, next))
}

/// A volume modification as stored (the latest per volume).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModificationRecord {
    volume_id: String,
    target: (i64, String, Option<i64>, Option<i64>, bool),
    original: (i64, String, Option<i64>, Option<i64>, bool),
    start_time: f64,
}

fn modification_value(m: &ModificationRecord, done: bool) -> Value {
    let mut v = json!({
        "VolumeId": m.volume_id,
        "ModificationState": if done { "completed" } else { "modifying" },
        "TargetSize": m.target.0,
        "TargetVolumeType": m.target.1,
        "TargetMultiAttachEnabled": m.target.4,
        "OriginalSize": m.original.0,
        "OriginalVolumeType": m.original.1,
        "OriginalMultiAttachEnabled": m.original.4,
        "Progress": if done { 100 } else { 0 },
        "StartTime": epoch_value(m.start_time),
    });
    if let Some(i) = m.target.2 {
        v["TargetIops"] = json!(i);
    }
    if let Some(t) = m.target.3 {
        v["TargetThroughput"] = json!(t);
    }
    if let Some(i) = m.original.2 {
        v["OriginalIops"] = json!(i);
    }
    if let Some(t) = m.original.3 {
        v["OriginalThroughput"] = json!(t);
    }
    if done {
        v["EndTime"] = epoch_value(m.start_time);
    }
    v
}

pub(crate) fn modify_volume(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "VolumeId")?;
    let mut v = require_volume(c, id)?;
    let size = opt_i64(input, "Size");
    let new_type = opt_str(input, "VolumeType");
    let iops_in = opt_i64(input, "Iops");
    let throughput_in = opt_i64(input, "Throughput");
    let multi = opt_bool(input, "MultiAttachEnabled");
    if size.is_none()
        && new_type.is_none()
        && iops_in.is_none()
        && throughput_in.is_none()
        && multi.is_none()
    {
        return Err(ApiError::client(
            "MissingParameter",
            "The request must contain at least one of the parameters size, volumeType, iops, throughput or multiAttachEnabled",
        ));
    }
    if let Some(s) = size {
        if s < v.size {
            return Err(invalid_value(format!(
                "New size cannot be smaller than existing size ({}GiB)",
                v.size
            )));
        }
    }
    let target_type = new_type.unwrap_or(&v.volume_type).to_string();
    let target_size = size.unwrap_or(v.size);
    // Provisioned figures carry over when the type keeps them.
    let keep_iops = iops_in.or(if target_type == v.volume_type && target_type != "gp2" {
        v.iops
    } else {
        None
    });
    let keep_throughput = throughput_in.or(if target_type == "gp3" && v.volume_type == "gp3" {
        v.throughput
    } else {
        None
    });
    let (iops, throughput) = check_volume(&target_type, target_size, keep_iops, keep_throughput)?;
    let target_multi = multi.unwrap_or(v.multi_attach_enabled);
    check_dry_run_v(input)?;
    let m = ModificationRecord {
        volume_id: id.to_string(),
        original: (
            v.size,
            v.volume_type.clone(),
            v.iops,
            v.throughput,
            v.multi_attach_enabled,
        ),
        target: (
            target_size,
            target_type.clone(),
            iops,
            throughput,
            target_multi,
        ),
        start_time: now(),
    };
    if target_size > v.size {
        grow_data(c.data_dir, &v, target_size);
    }
    v.size = target_size;
    v.volume_type = target_type;
    v.iops = iops;
    v.throughput = throughput;
    v.multi_attach_enabled = target_multi;
    c.put(VOLUMES, id, &v)?;
    c.put(VOLUME_MODS, id, &m)?;
    Ok(json!({"VolumeModification": modification_value(&m, false)}))
}

/// A volume grew: so do its image and filesystem (online while attached; an image in use
/// only by instances grows its filesystem at the next mount), or its open tmpfs. Directory
/// volumes get their size when they become images.
fn grow_data(data_dir: &Path, v: &VolumeRecord, gib: i64) {
    let r = match image_in(&volume_path(data_dir, &v.volume_id)) {
        Some(img) => grow_image(&img, gib),
        None if v.encrypted => {
            super::crypt::resize_open(data_dir, &v.volume_id, gib).map_err(|e| e.to_string())
        }
        None => Ok(()),
    };
    if let Err(why) = r {
        tracing::warn!(volume = %v.volume_id, reason = %why, "volume data not grown yet");
    }
}

pub(crate) fn describe_volumes_modifications(
    c: &Ctx<'_>,
    input: &Value,
) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "modification-state",
            "volume-id",
            "target-size",
            "target-iops",
            "target-volume-type",
            "target-throughput",
            "original-size",
            "original-iops",
            "original-volume-type",
            "original-throughput",
            "start-time",
            "target-multi-attach-enabled",
            "original-multi-attach-enabled",
        ],
        false,
    )?;
    let ids = str_list(input, "VolumeIds");
    check_dry_run_v(input)?;
    let all = c.all::<ModificationRecord>(VOLUME_MODS)?;
    for id in &ids {
        check_id(id, "vol", "InvalidVolumeID.Malformed")?;
        if !all.iter().any(|(k, _)| k == id) {
            return Err(ApiError::client(
                "InvalidVolumeModification.NotFound",
                format!("Modification for volume '{id}' does not exist."),
            ));
        }
    }
    let mut items = Vec::new();
    for (id, m) in all {
        if !ids.is_empty() && !ids.contains(&id) {
            continue;
        }
        let opt = |x: Option<i64>| Some(x.map(|i| i.to_string()).into_iter().collect());
        let ok = fc_types::filter::matches(&fs, |n| match n {
            "modification-state" => one("completed"),
            "volume-id" => one(&m.volume_id),
            "target-size" => one(m.target.0.to_string()),
            "target-volume-type" => one(&m.target.1),
            "target-iops" => opt(m.target.2),
            "target-throughput" => opt(m.target.3),
            "target-multi-attach-enabled" => bool_s(m.target.4),
            "original-size" => one(m.original.0.to_string()),
            "original-volume-type" => one(&m.original.1),
            "original-iops" => opt(m.original.2),
            "original-throughput" => opt(m.original.3),
            "original-multi-attach-enabled" => bool_s(m.original.4),
            "start-time" => one(fc_protocol::value::format_iso8601(m.start_time)),
            _ => None,
        });
        if ok {
            items.push((id.clone(), modification_value(&m, true)));
        }
    }
    let (page, next) = paginate(c, input, items, (5, 500), None)?;
    Ok(page_output("VolumesModifications", page, next))
}

pub(crate) fn delete_volume(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "VolumeId")?;
    let v = require_volume(c, id)?;
    if let Some(a) = v.attachments.first() {
        return Err(ApiError::client(
            "VolumeInUse",
            format!("Volume {id} is currently attached to {}", a.instance_id),
        ));
    }
    check_dry_run_v(input)?;
    c.delete(VOLUMES, id)?;
    c.delete(VOLUME_MODS, id)?;
    tags::drop_all(c, id)?;
    remove_volume_data(c.data_dir, id);
    Ok(json!({}))
}

// ---- snapshots ----

fn snapshot_value(c: &Ctx<'_>, s: &SnapshotRecord) -> Result<Value, ApiError> {
    let t = tags::get(c, &s.snapshot_id)?;
    let mut v = json!({
        "SnapshotId": s.snapshot_id,
        "VolumeId": s.volume_id,
        "VolumeSize": s.volume_size,
        "State": "completed",
        "Progress": "100%",
        "StartTime": epoch_value(s.start_time),
        "CompletionTime": epoch_value(s.start_time),
        "OwnerId": s.owner_id,
        "Description": s.description,
        "Encrypted": s.encrypted,
        "StorageTier": "standard",
        "FullSnapshotSizeInBytes": s.data_bytes,
    });
    if let Some(k) = &s.kms_key_id {
        v["KmsKeyId"] = json!(k);
    }
    Ok(with_tags(v, &t))
}

pub(crate) fn create_snapshot(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let vol_id = req_str(input, "VolumeId")?;
    let v = require_volume(c, vol_id)?;
    let description = opt_str(input, "Description").unwrap_or("");
    if description.len() > 255 {
        return Err(invalid_value(
            "The snapshot description must be at most 255 characters.",
        ));
    }
    let t = spec_tags(input, "snapshot")?;
    check_dry_run_v(input)?;
    let s = snapshot_volume(c, &v, description)?;
    tags::add(c, &s.snapshot_id, &t)?;
    let mut out = snapshot_value(c, &s)?;
    out["State"] = json!("pending");
    out["Progress"] = json!("");
    if let Some(o) = out.as_object_mut() {
        o.remove("CompletionTime");
    }
    Ok(out)
}

/// Snapshot a volume's current data (an attached volume's too) and record it.
pub(crate) fn snapshot_volume(
    c: &Ctx<'_>,
    v: &VolumeRecord,
    description: &str,
) -> Result<SnapshotRecord, ApiError> {
    let vol_id = v.volume_id.as_str();
    let id = fc_types::ids::ec2_id("snap");
    // An open (attached) encrypted volume's current data is in memory: seal that.
    let open = if v.encrypted {
        super::crypt::snapshot_open(c.data_dir, vol_id, &snapshot_path(c.data_dir, &id))
            .map_err(|e| ApiError::internal(format!("cannot snapshot {vol_id}: {e}")))?
    } else {
        None
    };
    let bytes = match open {
        Some(n) => n,
        None => match super::storage::root_sources(c, v)? {
            // A root volume's data is its instance's root filesystem changes.
            Some(srcs) => clone_layers(
                &srcs.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
                &snapshot_path(c.data_dir, &id),
            )?,
            None => copy_volume_data(c.data_dir, vol_id, &snapshot_path(c.data_dir, &id))?,
        },
    };
    let s = SnapshotRecord {
        snapshot_id: id.clone(),
        volume_id: vol_id.to_string(),
        volume_size: v.size,
        description: description.to_string(),
        encrypted: v.encrypted,
        kms_key_id: v.kms_key_id.clone(),
        start_time: now(),
        owner_id: c.account().to_string(),
        create_volume_users: Vec::new(),
        public: false,
        data_bytes: bytes,
    };
    c.put(SNAPSHOTS, &id, &s)?;
    Ok(s)
}

pub(crate) fn describe_snapshots(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "description",
            "encrypted",
            "owner-alias",
            "owner-id",
            "progress",
            "snapshot-id",
            "start-time",
            "status",
            "storage-tier",
            "volume-id",
            "volume-size",
        ],
        true,
    )?;
    let ids = str_list(input, "SnapshotIds");
    for id in &ids {
        check_id(id, "snap", "InvalidSnapshotID.Malformed")?;
    }
    let owners = str_list(input, "OwnerIds");
    let restorable = str_list(input, "RestorableByUserIds");
    check_dry_run_v(input)?;
    let me = c.account();
    let all = visible_snapshots(c)?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !all.iter().any(|s| &&s.snapshot_id == id))
    {
        return Err(snapshot_not_found(missing));
    }
    let mut items = Vec::new();
    for s in &all {
        if !ids.is_empty() && !ids.contains(&s.snapshot_id) {
            continue;
        }
        if !owners.is_empty()
            && !owners.iter().any(|o| match o.as_str() {
                "self" => s.owner_id == me,
                "amazon" => false,
                id => s.owner_id == id,
            })
        {
            continue;
        }
        if !restorable.is_empty()
            && !restorable.iter().any(|r| match r.as_str() {
                "all" => s.public,
                "self" => snapshot_usable(s, me),
                id => s.owner_id == id || s.public || s.create_volume_users.iter().any(|u| u == id),
            })
        {
            continue;
        }
        let t = tags::get(c, &s.snapshot_id)?;
        let ok = matches(&fs, &t, |n| match n {
            "description" => one(&s.description),
            "encrypted" => bool_s(s.encrypted),
            "owner-alias" => Some(Vec::new()),
            "owner-id" => one(&s.owner_id),
            "progress" => one("100%"),
            "snapshot-id" => one(&s.snapshot_id),
            "start-time" => one(fc_protocol::value::format_iso8601(s.start_time)),
            "status" => one("completed"),
            "storage-tier" => one("standard"),
            "volume-id" => one(&s.volume_id),
            "volume-size" => one(s.volume_size.to_string()),
            _ => None,
        });
        if ok {
            items.push((s.snapshot_id.clone(), snapshot_value(c, s)?));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 1000), None)?;
    Ok(page_output("Snapshots", page, next))
}

pub(crate) fn delete_snapshot(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "SnapshotId")?;
    check_id(id, "snap", "InvalidSnapshotID.Malformed")?;
    if c.get::<SnapshotRecord>(SNAPSHOTS, id)?.is_none() {
        return Err(snapshot_not_found(id));
    }
    if let Some((_, ami)) = images::snapshots_in_use(c)?
        .into_iter()
        .find(|(s, _)| s == id)
    {
        return Err(ApiError::client(
            "InvalidSnapshot.InUse",
            format!("The snapshot {id} is currently in use by {ami}"),
        ));
    }
    check_dry_run_v(input)?;
    remove_snapshot(c, id)?;
    Ok(json!({}))
}

pub(crate) fn copy_snapshot(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let src_id = req_str(input, "SourceSnapshotId")?;
    let src_region = req_str(input, "SourceRegion")?;
    check_id(src_id, "snap", "InvalidSnapshotID.Malformed")?;
    if let Some(dest) = opt_str(input, "DestinationRegion") {
        if dest != c.region() {
            return Err(invalid_value(format!(
                "DestinationRegion {dest} must be the region the request is sent to ({})",
                c.region()
            )));
        }
    }
    // The source: the caller's own snapshot, or one shared with it, in the source region.
    let mut src = snapshot_in(c, &Scope::new(c.account(), src_region), src_id)?;
    if src.is_none() {
        let scopes = c
            .store
            .scopes(SNAPSHOTS)
            .map_err(crate::common::store_error)?;
        for scope in scopes.iter().filter(|s| s.region == src_region) {
            if let Some(s) = snapshot_in(c, scope, src_id)? {
                if snapshot_usable(&s, c.account()) {
                    src = Some(s);
                    break;
                }
            }
        }
    }
    let src = src.ok_or_else(|| snapshot_not_found(src_id))?;
    let encrypted = opt_bool(input, "Encrypted").unwrap_or(false) || src.encrypted;
    let kms_in = opt_str(input, "KmsKeyId");
    if kms_in.is_some() && !encrypted {
        return Err(ApiError::client(
            "InvalidParameterDependency",
            "The parameter KmsKeyId requires the parameter Encrypted to be set.",
        ));
    }
    let kms = encrypted.then(|| {
        kms_in
            .map(str::to_string)
            .or_else(|| src.kms_key_id.clone())
            .unwrap_or_else(|| default_kms_key(c.account(), c.region()))
    });
    let t = spec_tags(input, "snapshot")?;
    check_dry_run_v(input)?;
    let description = opt_str(input, "Description")
        .map(str::to_string)
        .unwrap_or_else(|| format!("[Copied {src_id} from {src_region}]"));
    let rec = copy_snapshot_record(c, Some(&src), src_id, src.volume_size, &description, kms)?;
    let mut rec = rec;
    rec.volume_id = src.volume_id.clone();
    c.put(SNAPSHOTS, &rec.snapshot_id, &rec)?;
    tags::add(c, &rec.snapshot_id, &t)?;
    Ok(with_tags(json!({"SnapshotId": rec.snapshot_id}), &t))
}

fn own_snapshot(c: &Ctx<'_>, id: &str) -> Result<SnapshotRecord, ApiError> {
    check_id(id, "snap", "InvalidSnapshotID.Malformed")?;
    c.get::<SnapshotRecord>(SNAPSHOTS, id)?
        .ok_or_else(|| snapshot_not_found(id))
}

pub(crate) fn modify_snapshot_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "SnapshotId")?;
    let mut s = own_snapshot(c, id)?;
    let (mut add_u, mut add_g, mut rem_u, mut rem_g) = (vec![], vec![], vec![], vec![]);
    let list = |v: Option<&Value>, users: &mut Vec<String>, groups: &mut Vec<String>| {
        for p in v.and_then(Value::as_array).into_iter().flatten() {
            if let Some(u) = p.get("UserId").and_then(Value::as_str) {
                users.push(u.to_string());
            }
            if let Some(g) = p.get("Group").and_then(Value::as_str) {
                groups.push(g.to_string());
            }
        }
    };
    if let Some(p) = input.get("CreateVolumePermission") {
        list(p.get("Add"), &mut add_u, &mut add_g);
        list(p.get("Remove"), &mut rem_u, &mut rem_g);
    }
    match opt_str(input, "OperationType") {
        Some("add") => {
            add_u.extend(str_list(input, "UserIds"));
            add_g.extend(str_list(input, "GroupNames"));
        }
        Some("remove") => {
            rem_u.extend(str_list(input, "UserIds"));
            rem_g.extend(str_list(input, "GroupNames"));
        }
        _ => {}
    }
    for u in add_u.iter().chain(&rem_u) {
        if !fc_types::ids::is_account_id(u) {
            return Err(invalid_value(format!("Invalid user id: \"{u}\"")));
        }
    }
    for g in add_g.iter().chain(&rem_g) {
        if g != "all" {
            return Err(invalid_value(format!("Invalid group: \"{g}\"")));
        }
    }
    if !add_g.is_empty() && s.encrypted {
        return Err(ApiError::client(
            "OperationNotPermitted",
            "Encrypted snapshots with EBS default key cannot be shared",
        ));
    }
    check_dry_run_v(input)?;
    for u in add_u {
        if !s.create_volume_users.contains(&u) {
            s.create_volume_users.push(u);
        }
    }
    s.create_volume_users.retain(|u| !rem_u.contains(u));
    if !add_g.is_empty() {
        s.public = true;
    }
    if !rem_g.is_empty() {
        s.public = false;
    }
    c.put(SNAPSHOTS, id, &s)?;
    Ok(json!({}))
}

pub(crate) fn describe_snapshot_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "SnapshotId")?;
    let attr = req_str(input, "Attribute")?;
    let s = own_snapshot(c, id)?;
    check_dry_run_v(input)?;
    match attr {
        "createVolumePermission" => {
            let mut perms: Vec<Value> = s
                .create_volume_users
                .iter()
                .map(|u| json!({"UserId": u}))
                .collect();
            if s.public {
                perms.push(json!({"Group": "all"}));
            }
            Ok(json!({"SnapshotId": id, "CreateVolumePermissions": perms}))
        }
        "productCodes" => Ok(json!({"SnapshotId": id, "ProductCodes": []})),
        other => Err(invalid_value(format!(
            "Value ({other}) for parameter attribute is invalid."
        ))),
    }
}

pub(crate) fn reset_snapshot_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "SnapshotId")?;
    let mut s = own_snapshot(c, id)?;
    check_dry_run_v(input)?;
    s.create_volume_users.clear();
    s.public = false;
    c.put(SNAPSHOTS, id, &s)?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_limits() {
        assert_eq!(
            check_volume("gp2", 100, None, None).unwrap(),
            (Some(300), None)
        );
        assert_eq!(
            check_volume("gp2", 1, None, None).unwrap(),
            (Some(100), None)
        );
        assert_eq!(
            check_volume("gp3", 10, None, None).unwrap(),
            (Some(3000), Some(125))
        );
        assert!(check_volume("gp3", 10, Some(6000), None).is_err()); // 600 IOPS/GiB
        assert!(check_volume("gp3", 1, Some(3000), None).is_ok()); // the baseline
        assert!(check_volume("gp3", 100, Some(3000), Some(1000)).is_err()); // 0.25 MiB/s per IOPS
        assert!(check_volume("io1", 10, None, None).is_err());
        assert!(check_volume("io1", 10, Some(600), None).is_err());
        assert_eq!(
            check_volume("io1", 10, Some(500), None).unwrap(),
            (Some(500), None)
        );
        assert!(check_volume("st1", 100, None, None).is_err());
        assert!(check_volume("standard", 2000, None, None).is_err());
        assert!(check_volume("gp2", 10, Some(100), None).is_err());
        assert!(check_volume("gp2", 10, None, Some(200)).is_err());
        assert!(check_volume("nvme", 10, None, None).is_err());
    }

    #[test]
    fn image_copies_are_sparse_and_keep_the_key() {
        let dir = std::env::temp_dir().join(format!("fc-ec2-img-{}", uuid::Uuid::new_v4()));
        let src = dir.join("a");
        std::fs::create_dir_all(&src).unwrap();
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::File::create(src.join(IMAGE)).unwrap();
            f.set_len(1 << 30).unwrap();
            f.write_all_at(b"superblock", 1024).unwrap();
            f.write_all_at(b"data", 512 << 20).unwrap();
        }
        assert!(image_in(&src).is_some() && !is_encrypted_data(&src));
        std::fs::write(src.join(super::super::crypt::IMAGE_KEY), b"wrapped").unwrap();
        assert!(is_encrypted_data(&src));
        let n = clone_data(Some(&src), &dir.join("b")).unwrap();
        assert!(n > 0 && n < 1 << 20, "bytes on disk, not the size: {n}");
        let img = dir.join("b").join(IMAGE);
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 1 << 30);
        let raw = std::fs::read(&img).unwrap();
        assert_eq!(&raw[1024..1034], b"superblock");
        assert_eq!(&raw[512 << 20..(512 << 20) + 4], b"data");
        assert!(is_encrypted_data(&dir.join("b")), "the key is copied");
        // 16 TiB is one block too large for an ext4 host: retried a MiB smaller.
        let mut tried = Vec::new();
        let r = with_fitting_size(16384, |mb| {
            tried.push(mb);
            if mb == 16 << 20 {
                Err("File too large".into())
            } else {
                Ok(())
            }
        });
        assert!(r.is_ok());
        assert_eq!(tried, vec![16 << 20, (16 << 20) - 1]);
        assert!(with_fitting_size(1, |_| Err("no".into())).is_err());
        remove_data(&dir.join("b"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tree_copy() {
        let dir = std::env::temp_dir().join(format!("fc-ec2-copy-{}", uuid::Uuid::new_v4()));
        let src = dir.join("a");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), b"hello").unwrap();
        std::os::unix::fs::symlink("sub/f", src.join("link")).unwrap();
        let n = clone_data(Some(&src), &dir.join("b")).unwrap();
        assert_eq!(n, 5);
        assert_eq!(std::fs::read(dir.join("b/link")).unwrap(), b"hello");
        assert_eq!(
            clone_data(Some(&dir.join("missing")), &dir.join("c")).unwrap(),
            0
        );
        assert!(dir.join("c").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
