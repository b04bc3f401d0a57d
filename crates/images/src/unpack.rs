//! Safe unpacking of one layer tarball (plain or gzip) into its own directory, with OCI
//! whiteouts converted to the overlayfs format (`.wh.name` -> a 0:0 character device `name`,
//! `.wh..wh..opq` -> xattr `trusted.overlay.opaque=y` on the directory).
//!
//! Refused, with [`UnpackError::Unsafe`]: paths that are absolute or contain `..`, writes
//! through a symlink (any parent component that is a symlink), relative symlinks whose target
//! leaves the layer root, hardlinks outside the layer or to entries not in it, device nodes,
//! fifos and sparse files; archives beyond [`UnpackLimits`] answer `TooLarge`/`TooManyEntries`.
//! Absolute symlink targets are allowed: inside a container they resolve within its root.
//! The caller unpacks into a fresh directory and removes it on any error.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Bounds on what one layer may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Total bytes of file content.
    pub max_bytes: u64,
    /// Number of archive entries.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 32 << 30,
            max_entries: 2_000_000,
        }
    }
}

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("unsafe layer entry {entry:?}: {reason}")]
    Unsafe { entry: String, reason: String },
    #[error("layer expands beyond the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("layer has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("layer is not a valid tar archive: {0}")]
    Format(String),
    #[error("i/o error unpacking into {path}: {source}")]
    Io { path: String, source: io::Error },
}

/// What an unpack produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn unsafe_entry(entry: &Path, reason: impl Into<String>) -> UnpackError {
    UnpackError::Unsafe {
        entry: entry.display().to_string(),
        reason: reason.into(),
    }
}

/// The archive path as a clean relative path; `None` for the root itself.
fn clean(path: &Path) -> Result<Option<PathBuf>, UnpackError> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_entry(path, "path contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(path, "absolute path"))
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Make sure every parent of `rel` under `root` is a real directory (creating missing ones);
/// a symlink or a file on the way is refused.
fn ensure_parents(root: &Path, rel: &Path, entry: &Path, create: bool) -> Result<(), UnpackError> {
    let mut cur = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for c in parent.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(unsafe_entry(entry, "path passes through a symlink"))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(unsafe_entry(entry, "a parent component is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&cur).map_err(io_err(&cur))?;
                fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))
                    .map_err(io_err(&cur))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(unsafe_entry(entry, "hardlink target is not in this layer"))
            }
            Err(e) => return Err(io_err(&cur)(e)),
        }
    }
    Ok(())
}

/// Remove whatever is at `path` (not following symlinks).
fn remove_existing(path: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err(path)),
        Ok(_) => fs::remove_file(path).map_err(io_err(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Does a relative symlink at `rel` pointing to `target` stay inside the root?
fn symlink_stays_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut depth: i64 = rel.parent().map_or(0, |p| p.components().count() as i64);
    for c in target.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    true
}

fn chown_quiet(path: &Path, uid: u64, gid: u64) {
    // Without CAP_CHOWN ownership cannot be kept; content still unpacks.
    let _ = lchown(path, u32::try_from(uid).ok(), u32::try_from(gid).ok());
}

/// Unpack a layer (plain or gzip-compressed tar) into `dest`, an existing empty directory.
pub fn unpack(
    reader: impl Read,
    dest: &Path,
    limits: UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    let mut buf = BufReader::with_capacity(256 << 10, reader);
    let head = buf.fill_buf().map_err(io_err(dest))?;
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(UnpackError::Format(
            "zstd-compressed layers are not supported".into(),
        ));
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        unpack_tar(flate2::bufread::MultiGzDecoder::new(buf), dest, limits)
    } else {
        unpack_tar(buf, dest, limits)
    }
}

fn unpack_tar(r: impl Read, dest: &Path, limits: UnpackLimits) -> Result<UnpackStats, UnpackError> {
    let mut archive = tar::Archive::new(r);
    let mut stats = UnpackStats::default();
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| UnpackError::Format(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| UnpackError::Format(e.to_string()))?;
        stats.entries += 1;
        if stats.entries > limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let raw: PathBuf = entry
            .path()
            .map_err(|e| UnpackError::Format(format!("bad entry name: {e}")))?
            .into_owned();
        let Some(rel) = clean(&raw)? else {
            if kind.is_dir() {
                continue;
            }
            return Err(unsafe_entry(&raw, "entry names the layer root"));
        };
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let uid = entry.header().uid().unwrap_or(0);
        let gid = entry.header().gid().unwrap_or(0);
        let name = rel
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();

        // Whiteouts.
        if let Some(hidden) = name.strip_prefix(".wh.") {
            ensure_parents(dest, &rel, &raw, true)?;
            let parent = dest.join(rel.parent().unwrap_or(Path::new("")));
            if hidden == ".wh..opq" {
                rustix::fs::lsetxattr(
                    &parent,
                    "trusted.overlay.opaque",
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
                .map_err(|e| io_err(&parent)(e.into()))?;
            } else {
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(unsafe_entry(&raw, "invalid whiteout name"));
                }
                let target = parent.join(hidden);
                remove_existing(&target)?;
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &target,
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| io_err(&target)(e.into()))?;
            }
            stats.whiteouts += 1;
            continue;
        }

        let target = dest.join(&rel);
        match kind {
            tar::EntryType::Directory => {
                ensure_parents(dest, &rel, &raw, true)?;
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_existing(&target)?;
                        fs::create_dir(&target).map_err(io_err(&target))?;
                    }
                    Err(_) => fs::create_dir(&target).map_err(io_err(&target))?,
                }
                chown_quiet(&target, uid, gid);
                dirs.push((target, mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().unwrap_or(0);
                if stats.bytes.saturating_add(size) > limits.max_bytes {
                    return Err(UnpackError::TooLarge {
                        limit: limits.max_bytes,
                    });
                }
                ensure_parents(dest, &rel, &raw, true)?;
                remove_existing(&target)?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(io_err(&target))?;
                let allowed = limits.max_bytes - stats.bytes;
                let n = io::copy(&mut (&mut entry).take(allowed + 1), &mut f)
                    .map_err(io_err(&target))?;
                if n > allowed {
                    return Err(UnpackError::TooLarge {
                        limit: limits.max_bytes,
                    });
                }
                stats.bytes += n;
                drop(f);
                chown_quiet(&target, uid, gid);
                // After chown: chown clears set-id bits.
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(io_err(&target))?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| UnpackError::Format(e.to_string()))?
                    .ok_or_else(|| unsafe_entry(&raw, "symlink without a target"))?
                    .into_owned();
                if !symlink_stays_inside(&rel, &link) {
                    return Err(unsafe_entry(
                        &raw,
                        format!("symlink target {} leaves the root", link.display()),
                    ));
                }
                ensure_parents(dest, &rel, &raw, true)?;
                remove_existing(&target)?;
                std::os::unix::fs::symlink(&link, &target).map_err(io_err(&target))?;
                chown_quiet(&target, uid, gid);
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| UnpackError::Format(e.to_string()))?
                    .ok_or_else(|| unsafe_entry(&raw, "hardlink without a target"))?
                    .into_owned();
                let src_rel = match clean(&link) {
                    Ok(Some(p)) => p,
                    _ => {
                        return Err(unsafe_entry(
                            &raw,
                            format!("hardlink target {} leaves the root", link.display()),
                        ))
                    }
                };
                ensure_parents(dest, &src_rel, &raw, false)?;
                let src = dest.join(&src_rel);
                match fs::symlink_metadata(&src) {
                    Ok(m) if m.is_dir() => {
                        return Err(unsafe_entry(&raw, "hardlink to a directory"))
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(unsafe_entry(
                            &raw,
                            format!("hardlink target {} is not in this layer", link.display()),
                        ))
                    }
                }
                ensure_parents(dest, &rel, &raw, true)?;
                remove_existing(&target)?;
                fs::hard_link(&src, &target).map_err(io_err(&target))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(unsafe_entry(&raw, "device nodes are not allowed in layers"))
            }
            tar::EntryType::Fifo => {
                return Err(unsafe_entry(&raw, "fifos are not allowed in layers"))
            }
            other => {
                return Err(unsafe_entry(
                    &raw,
                    format!("unsupported entry type {other:?}"),
                ))
            }
        }
    }
    // Directory modes last, deepest first, so read-only directories could still be filled.
    for (dir, mode) in dirs.into_iter().rev() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).map_err(io_err(&dir))?;
    }
    Ok(stats)
}
