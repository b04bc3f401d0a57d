//! Sized, disk-backed scratch filesystems ([`crate::MountSource::Scratch`]): a sparse file in
//! the workload's directory, formatted ext4 (no journal, lazy inode tables), attached to a loop
//! device and mounted on the host under `<workload dir>/scratch/<n>`; the init then bind-mounts
//! it into the workload's root like any other bind. Formatting happens once per size into a
//! template (`<state>/scratch-templates/<MB>.img`) whose few written extents are copied into
//! each new sparse file; the loop device is configured with `LOOP_CONFIGURE` (auto-clear,
//! direct I/O), `losetup` being the fallback. Writing past the size fails with ENOSPC and
//! the data lives on disk, not in memory. Without loop devices or `mkfs.ext4` the scratch is a
//! plain, unsized directory instead (see [`note`]).
//!
//! [`release_all`] unmounts, detaches the loop devices and deletes the files; the engine calls it
//! before removing a workload directory (destroy, failed start, orphan clean-up), so nothing
//! leaks even after a crash. Must not live here: mounting inside the workload (that is
//! `init.rs`), any notion of what the scratch is for.
//!
//! The same machinery is public for persistent sized filesystems kept in image files by their
//! owners (EC2 keeps an EBS volume in one): [`create_image`] (a sparse ext4 image with a
//! journal, from a per-size template), [`mount_image`] / [`unmount_image`] (loop device,
//! reusing the one that already backs the file, if any), [`grow_image`] (offline or online
//! resize), [`copy_sparse`] (data extents only) and [`freeze`] (a consistent copy of a mounted
//! image). They know nothing about what the image holds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{Result, RuntimeError};

/// The largest scratch filesystem accepted (1 TiB, in MiB).
pub(crate) const MAX_MB: u64 = 1 << 20;

/// Where scratch filesystems of a workload live.
fn scratch_dir(workload_dir: &Path) -> PathBuf {
    workload_dir.join("scratch")
}

/// Finds a system tool on PATH or in the usual sbin directories (servers may run with a PATH
/// that lacks them).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Why sized scratch filesystems cannot be made here, if they cannot (checked once).
pub(crate) fn support() -> std::result::Result<(), String> {
    static SUPPORT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    SUPPORT
        .get_or_init(|| {
            if tool("mkfs.ext4").is_none() {
                return Err("mkfs.ext4 is not installed".into());
            }
            if tool("losetup").is_none() {
                return Err("losetup is not installed".into());
            }
            if !Path::new("/dev/loop-control").exists() {
                return Err("no loop devices (/dev/loop-control is missing)".into());
            }
            let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
            if !fs.lines().any(|l| l.trim() == "ext4") {
                return Err("the kernel has no ext4".into());
            }
            Ok(())
        })
        .clone()
}

/// The capability note of the linux driver about scratch filesystems.
pub(crate) fn note() -> String {
    match support() {
        Ok(()) => "scratch mounts: sized ext4 filesystems on loop devices (disk-backed, ENOSPC \
                   at the size)"
            .into(),
        Err(why) => format!("scratch mounts are plain directories without a size limit: {why}"),
    }
}

/// Checks a requested size.
pub(crate) fn validate(size_mb: u64) -> Result<()> {
    if size_mb == 0 || size_mb > MAX_MB {
        return Err(RuntimeError::InvalidSpec(format!(
            "scratch size {size_mb} MB must be 1-{MAX_MB}"
        )));
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> std::result::Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn chmod_1777(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| RuntimeError::io(format!("chmod {}", p.display()), e))
}

/// Creates scratch filesystem number `index` of the workload in `workload_dir` and returns the
/// host directory to bind into the workload (mode 1777). Falls back to a plain directory when
/// loop devices or mkfs are unavailable or fail (logged).
pub(crate) fn create(
    workload_dir: &Path,
    templates: &Path,
    index: usize,
    size_mb: u64,
) -> Result<PathBuf> {
    validate(size_mb)?;
    let base = scratch_dir(workload_dir);
    let mnt = base.join(index.to_string());
    std::fs::create_dir_all(&mnt)
        .map_err(|e| RuntimeError::io(format!("create {}", mnt.display()), e))?;
    if let Err(why) = support() {
        tracing::debug!(reason = %why, "scratch mount is a plain directory");
        chmod_1777(&mnt)?;
        return Ok(mnt);
    }
    let img = base.join(format!("{index}.img"));
    match make_fs(templates, &img, &mnt, size_mb) {
        Ok(()) => {}
        Err(why) => {
            tracing::warn!(reason = %why, "sized scratch filesystem failed; using a plain directory");
            release_one(&mnt, &img);
            std::fs::create_dir_all(&mnt)
                .map_err(|e| RuntimeError::io(format!("create {}", mnt.display()), e))?;
        }
    }
    chmod_1777(&mnt)?;
    Ok(mnt)
}

/// What an image is formatted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Scratch space: no journal (its data need not survive a crash).
    Scratch,
    /// Data that must survive: a journal (written lazily). (`sparse_super2` would cut the
    /// metadata of a 16 TiB image from ~230 MB to ~57 MB, but the kernel cannot resize such a
    /// filesystem online.)
    Persistent,
}

/// Formats a sparse ext4 image of `size_mb` MiB at `img`. No reserved blocks, inode tables,
/// journal and discards left alone: the format writes little whatever the size.
fn format(img: &Path, size_mb: u64, kind: Kind) -> std::result::Result<(), String> {
    let f = std::fs::File::create(img).map_err(|e| format!("create {}: {e}", img.display()))?;
    f.set_len(size_mb << 20)
        .map_err(|e| format!("size {}: {e}", img.display()))?;
    drop(f);
    let mkfs = tool("mkfs.ext4").ok_or("mkfs.ext4 is not installed")?;
    let features = match kind {
        Kind::Scratch => "^has_journal",
        Kind::Persistent if encryption_support().is_ok() => "has_journal,encrypt",
        Kind::Persistent => "has_journal",
    };
    run(
        Command::new(mkfs)
            .args(["-q", "-F", "-m", "0", "-O", features])
            .args(["-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"])
            .arg(img),
        "mkfs.ext4",
    )
    .map(|_| ())
}

/// The formatted template of `size_mb` MiB, made once (atomically: concurrent starts may race).
fn template(templates: &Path, size_mb: u64, kind: Kind) -> std::result::Result<PathBuf, String> {
    let name = match kind {
        Kind::Scratch => format!("{size_mb}.img"),
        Kind::Persistent if encryption_support().is_ok() => format!("{size_mb}-encryptable.img"),
        Kind::Persistent => format!("{size_mb}-journal.img"),
    };
    let path = templates.join(name);
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(templates)
        .map_err(|e| format!("create {}: {e}", templates.display()))?;
    let tmp = templates.join(format!(
        ".{size_mb}.img.{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let made = format(&tmp, size_mb, kind)
        .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| format!("rename template: {e}")));
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    made.map(|()| path)
}

/// Copies the data extents of sparse file `from` into a new sparse file `to` of the same size
/// (holes stay holes); returns the bytes of data copied.
pub fn copy_sparse(from: &Path, to: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    let src = std::fs::File::open(from)?;
    let len = src.metadata()?.len();
    let dst = std::fs::File::create(to)?;
    dst.set_len(len)?;
    let fd = src.as_raw_fd();
    let seek = |pos: u64, whence: libc::c_int| -> std::io::Result<Option<u64>> {
        // SAFETY: lseek on a descriptor `src` owns for the whole closure; no memory is passed.
        let r = unsafe { libc::lseek(fd, pos as libc::off_t, whence) };
        if r >= 0 {
            return Ok(Some(r as u64));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        Err(e)
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    let mut copied = 0;
    while pos < len {
        let Some(data) = seek(pos, libc::SEEK_DATA)? else {
            break;
        };
        let end = seek(data, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        let mut at = data;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            src.read_exact_at(&mut buf[..n], at)?;
            dst.write_all_at(&buf[..n], at)?;
            at += n as u64;
            copied += n as u64;
        }
        pos = end;
    }
    Ok(copied)
}

// <linux/loop.h>
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

// The kernel's struct loop_config is 304 bytes (loop_info64: 232).
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);
const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);

/// Attaches `img` to a free loop device with `LOOP_CONFIGURE` (auto-clear: the device frees
/// itself when its last user — the mount — is gone; direct I/O: no second page cache).
/// Returns the device path and an open descriptor that keeps it until mounted.
fn attach_loop(img: &Path, read_only: bool) -> std::io::Result<(String, std::fs::File)> {
    use std::os::unix::io::AsRawFd;
    let rw = |p: &Path| std::fs::OpenOptions::new().read(true).write(true).open(p);
    let ctl = rw(Path::new("/dev/loop-control"))?;
    let backing = std::fs::OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(img)?;
    let mut last = std::io::Error::other("no free loop device");
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let dev = format!("/dev/loop{n}");
        let f = rw(Path::new(&dev))?;
        let mut name = [0u8; 64];
        let path = img.as_os_str().as_encoded_bytes();
        let keep = path.len().min(63);
        name[..keep].copy_from_slice(&path[..keep]);
        let cfg = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_AUTOCLEAR
                    | LO_FLAGS_DIRECT_IO
                    | if read_only { LO_FLAGS_READ_ONLY } else { 0 },
                lo_file_name: name,
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads one `struct loop_config` (LoopConfig mirrors its C
        // layout) from a pointer valid for the call; the kernel takes its own reference to the
        // backing file, so `backing` may close afterwards.
        let rc = unsafe {
            libc::ioctl(
                f.as_raw_fd(),
                LOOP_CONFIGURE as _,
                &cfg as *const LoopConfig,
            )
        };
        if rc == 0 {
            return Ok((dev, f));
        }
        last = std::io::Error::last_os_error();
        // Another process took this device between GET_FREE and CONFIGURE: try the next.
        if last.raw_os_error() != Some(libc::EBUSY) {
            return Err(last);
        }
    }
    Err(last)
}

/// Template copy (or fresh format) → loop device → mounted at `mnt`.
fn make_fs(
    templates: &Path,
    img: &Path,
    mnt: &Path,
    size_mb: u64,
) -> std::result::Result<(), String> {
    from_template(templates, img, size_mb, Kind::Scratch)?;
    loop_mount(img, mnt, false, None, SCRATCH_OPTIONS)?;
    // An empty /tmp, as the workload expects.
    let _ = std::fs::remove_dir(mnt.join("lost+found"));
    Ok(())
}

/// A formatted image at `img`: a copy of the size's template, or formatted in place.
fn from_template(
    templates: &Path,
    img: &Path,
    size_mb: u64,
    kind: Kind,
) -> std::result::Result<(), String> {
    match template(templates, size_mb, kind) {
        Ok(t) => copy_sparse(&t, img)
            .map(|_| ())
            .map_err(|e| format!("copy {}: {e}", t.display())),
        Err(why) => {
            tracing::debug!(reason = %why, "no image template; formatting in place");
            format(img, size_mb, kind)
        }
    }
}

/// ext4 options of scratch mounts. noinit_itable: the kernel does not zero inode tables in
/// the background (that would fill the sparse file).
const SCRATCH_OPTIONS: &str = "noinit_itable";
/// ext4 options of persistent images: also `discard`, so deleted files punch holes into the
/// image file (through the loop device) and it stays as small as its data.
const IMAGE_OPTIONS: &str = "noinit_itable,discard";

/// Attaches `img` to a loop device (`dev`: one that already backs it) and mounts it at `mnt`.
fn loop_mount(
    img: &Path,
    mnt: &Path,
    read_only: bool,
    dev: Option<String>,
    options: &str,
) -> std::result::Result<(), String> {
    let (dev, keep) = match dev {
        Some(d) => (d, None),
        None => new_loop(img, read_only)?,
    };
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    if read_only {
        flags |= libc::MS_RDONLY;
    }
    let mounted = crate::sys::mount(
        Some(Path::new(&dev)),
        mnt,
        Some("ext4"),
        flags,
        Some(options),
    );
    // Closing the last descriptor of an auto-clear device that is not mounted frees it.
    drop(keep);
    if let Err(e) = mounted {
        if let Some(losetup) = tool("losetup") {
            let _ = Command::new(&losetup).arg("-d").arg(&dev).output();
        }
        return Err(format!("mount {dev} at {}: {e}", mnt.display()));
    }
    Ok(())
}

/// A new loop device for `img` (and a descriptor keeping it until mounted).
fn new_loop(
    img: &Path,
    read_only: bool,
) -> std::result::Result<(String, Option<std::fs::File>), String> {
    Ok(match attach_loop(img, read_only) {
        Ok((dev, f)) => (dev, Some(f)),
        Err(e) => {
            tracing::debug!(error = %e, "LOOP_CONFIGURE failed; using losetup");
            let losetup = tool("losetup").ok_or("losetup is not installed")?;
            let mut cmd = Command::new(&losetup);
            cmd.args(["--find", "--show", "--direct-io=on"]);
            if read_only {
                cmd.arg("--read-only");
            }
            let dev = run(cmd.arg(img), "losetup")?;
            if !dev.starts_with("/dev/") {
                return Err(format!("losetup printed {dev:?}"));
            }
            (dev, None)
        }
    })
}

/// The loop devices backed by `img`.
fn loops_backing(img: &Path) -> Vec<String> {
    let Some(losetup) = tool("losetup") else {
        return Vec::new();
    };
    let Ok(out) = Command::new(&losetup).arg("-j").arg(img).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|d| d.starts_with("/dev/"))
        .map(str::to_string)
        .collect()
}

/// Detaches every loop device backed by `img` (one still in use — a mount not gone yet — is
/// auto-cleared by the kernel on its last close).
fn detach_loops(img: &Path) {
    let Some(losetup) = tool("losetup") else {
        return;
    };
    for dev in loops_backing(img) {
        let _ = Command::new(&losetup).arg("-d").arg(&dev).output();
    }
}

/// Unmounts `mnt` (lazily), detaches every loop device backed by `img` and deletes both.
fn release_one(mnt: &Path, img: &Path) {
    if mnt.exists() {
        // EINVAL = not a mount point (plain directory or never mounted).
        let _ = crate::sys::umount_detach(mnt);
    }
    if img.exists() {
        detach_loops(img);
        let _ = std::fs::remove_file(img);
    }
    let _ = std::fs::remove_dir_all(mnt);
}

/// Releases every scratch filesystem of the workload in `workload_dir` (idempotent; nothing to
/// do when it has none).
pub(crate) fn release_all(workload_dir: &Path) {
    let base = scratch_dir(workload_dir);
    let Ok(rd) = std::fs::read_dir(&base) else {
        return;
    };
    let mut indices: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_suffix(".img").unwrap_or(&name).to_string();
            n.parse::<usize>().ok().map(|_| n)
        })
        .collect();
    indices.sort();
    indices.dedup();
    for n in indices {
        release_one(&base.join(&n), &base.join(format!("{n}.img")));
    }
    let _ = std::fs::remove_dir(&base);
}

// ---- persistent images (public: any owner of a sized filesystem kept in a file) ----

/// Why sized image filesystems cannot be made or mounted here, if they cannot (needs
/// `mkfs.ext4`, `losetup`, loop devices and ext4; mounting needs root).
pub fn image_support() -> std::result::Result<(), String> {
    support()
}

/// Why directories of images cannot be encrypted here ([`encrypt_dir`]), if they cannot (the
/// kernel's ext4 lacks encryption).
pub fn encryption_support() -> std::result::Result<(), String> {
    if !Path::new("/sys/fs/ext4/features/encryption").exists() {
        return Err("the kernel's ext4 has no encryption".into());
    }
    Ok(())
}

/// Creates a sparse ext4 image of `size_mb` MiB at `img` (with a journal, no reserved blocks,
/// the `encrypt` feature where the kernel has it),
/// copied from the size's template in `templates` (formatted once). Only metadata is written:
/// under 1 MB for 1 GiB, about 230 MB for 16 TiB (0.0014 %). Fails (leaving nothing) when the host
/// filesystem cannot hold a file that large.
pub fn create_image(templates: &Path, img: &Path, size_mb: u64) -> std::result::Result<(), String> {
    support()?;
    if size_mb == 0 {
        return Err("image size must be at least 1 MiB".into());
    }
    if let Some(parent) = img.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    let made = from_template(templates, img, size_mb, Kind::Persistent);
    if made.is_err() {
        let _ = std::fs::remove_file(img);
    }
    made
}

/// `p` as `/proc/self/mountinfo` spells it (space, tab, newline and backslash escaped).
fn mountinfo_path(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Whether `dir` is a mount point in this process's mount namespace.
pub fn is_mounted(dir: &Path) -> bool {
    let want = mountinfo_path(dir);
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| {
            t.lines()
                .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

/// Whether block device `dev` is mounted somewhere in this process's mount namespace.
fn device_mounted_here(dev: &str) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|t| t.lines().any(|l| l.split(' ').next() == Some(dev)))
        .unwrap_or(false)
}

/// Mounts image `img` at `dir` (created if needed; `MS_NOSUID | MS_NODEV`; with `discard`:
/// deleting files frees the image's disk space). When a loop device
/// already backs `img` (the image is mounted elsewhere, or a lazily detached mount of it is
/// still busy) that device is mounted, so one filesystem is never mounted through two
/// devices at once; otherwise a new auto-clear loop device is configured. Already mounted at
/// `dir`: nothing to do.
pub fn mount_image(img: &Path, dir: &Path, read_only: bool) -> std::result::Result<(), String> {
    support()?;
    if is_mounted(dir) {
        return Ok(());
    }
    if !img.is_file() {
        return Err(format!("no image at {}", img.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    for dev in loops_backing(img) {
        match loop_mount(img, dir, read_only, Some(dev.clone()), IMAGE_OPTIONS) {
            Ok(()) => return Ok(()),
            Err(why) => tracing::debug!(%dev, reason = %why, "existing loop device not mountable"),
        }
    }
    loop_mount(img, dir, read_only, None, IMAGE_OPTIONS)
}

/// Unmounts `dir` (lazily: open files keep the filesystem until closed), lets go of the loop
/// devices backing `img` (each freed when its last user is gone) and removes the empty `dir`.
/// The image stays. Idempotent.
pub fn unmount_image(dir: &Path, img: &Path) {
    if is_mounted(dir) {
        let _ = crate::sys::umount_detach(dir);
    }
    if img.exists() {
        detach_loops(img);
    }
    let _ = std::fs::remove_dir(dir);
}

/// The size in bytes of the ext4 filesystem in image `img`, from its superblock.
fn fs_bytes(img: &Path) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(img).ok()?;
    let mut sb = [0u8; 1024];
    f.read_exact_at(&mut sb, 1024).ok()?;
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return None;
    }
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    let lo = u64::from(u32_at(0x4));
    let bit64 = u32_at(0x60) & 0x80 != 0;
    let hi = if bit64 { u64::from(u32_at(0x150)) } else { 0 };
    let log = u32_at(0x18);
    Some(((hi << 32) | lo) << (10 + log.min(6)))
}

/// Grows image `img` to `size_mb` MiB (never shrinks) and its filesystem to the file: online
/// through its loop device when it is mounted here (`losetup -c`, `resize2fs`), offline
/// (`e2fsck -f`, `resize2fs`) when no loop device backs it. While a loop device backs it but
/// no mount here uses it (mounted only in another namespace) only the file grows and an error
/// says so; calling again once it is unmounted grows the filesystem.
pub fn grow_image(img: &Path, size_mb: u64) -> std::result::Result<(), String> {
    let want = size_mb << 20;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(img)
        .map_err(|e| format!("open {}: {e}", img.display()))?;
    let mut len = f
        .metadata()
        .map_err(|e| format!("stat {}: {e}", img.display()))?
        .len();
    if want > len {
        f.set_len(want)
            .map_err(|e| format!("grow {}: {e}", img.display()))?;
        len = want;
    }
    drop(f);
    let fs = fs_bytes(img).ok_or_else(|| format!("{} holds no ext4 filesystem", img.display()))?;
    if fs + (1 << 20) > len {
        return Ok(());
    }
    let resize = tool("resize2fs").ok_or("resize2fs is not installed")?;
    let devs = loops_backing(img);
    if let Some(dev) = devs.iter().find(|d| device_mounted_here(d)) {
        let losetup = tool("losetup").ok_or("losetup is not installed")?;
        run(Command::new(losetup).arg("-c").arg(dev), "losetup -c")?;
        run(Command::new(resize).arg(dev), "resize2fs")?;
        return Ok(());
    }
    if !devs.is_empty() {
        return Err(format!(
            "{} is in use through {} but not mounted here; its filesystem grows once unmounted",
            img.display(),
            devs.join(", ")
        ));
    }
    let fsck = tool("e2fsck").ok_or("e2fsck is not installed")?;
    // 0: clean, 1: errors corrected.
    let out = Command::new(fsck)
        .args(["-f", "-y"])
        .arg(img)
        .output()
        .map_err(|e| format!("e2fsck: {e}"))?;
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Err(format!(
            "e2fsck {}: {}",
            img.display(),
            String::from_utf8_lossy(&out.stdout).trim()
        ));
    }
    run(Command::new(resize).arg(img), "resize2fs").map(|_| ())
}

// <linux/fscrypt.h>
const FS_IOC_ADD_ENCRYPTION_KEY: libc::c_ulong = 0xC050_6617; // _IOWR('f', 23, 80 bytes)
const FS_IOC_SET_ENCRYPTION_POLICY: libc::c_ulong = 0x800C_6613; // _IOR('f', 19, 12 bytes)
const FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER: u32 = 2;
const FSCRYPT_MODE_AES_256_XTS: u8 = 1;
const FSCRYPT_MODE_AES_256_CTS: u8 = 4;
const FSCRYPT_POLICY_FLAGS_PAD_32: u8 = 3;

/// `struct fscrypt_add_key_arg` followed by a 64-byte raw key.
#[repr(C)]
struct AddKeyArg {
    spec_type: u32,
    spec_reserved: u32,
    identifier: [u8; 32],
    raw_size: u32,
    key_id: u32,
    reserved: [u32; 8],
    raw: [u8; 64],
}
const _: () = assert!(std::mem::size_of::<AddKeyArg>() == 80 + 64);

/// `struct fscrypt_policy_v2`.
#[repr(C)]
struct PolicyV2 {
    version: u8,
    contents_mode: u8,
    filenames_mode: u8,
    flags: u8,
    reserved: [u8; 4],
    identifier: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<PolicyV2>() == 24);

/// Adds a 64-byte master key to the filesystem mounted at `mounted` (ext4 encryption, v2: the
/// key belongs to the filesystem and goes with it when it is unmounted for good); returns the
/// key's identifier for [`encrypt_dir`]. Adding a key already there is not an error.
pub fn add_encryption_key(mounted: &Path, raw: &[u8; 64]) -> std::result::Result<[u8; 16], String> {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::File::open(mounted).map_err(|e| format!("open {}: {e}", mounted.display()))?;
    let mut arg = AddKeyArg {
        spec_type: FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER,
        spec_reserved: 0,
        identifier: [0; 32],
        raw_size: 64,
        key_id: 0,
        reserved: [0; 8],
        raw: *raw,
    };
    // SAFETY: FS_IOC_ADD_ENCRYPTION_KEY reads a `struct fscrypt_add_key_arg` with `raw_size`
    // key bytes right after it (AddKeyArg mirrors that layout, raw included) and writes the
    // identifier back into it; the pointer is valid and exclusive for the call.
    let rc = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            FS_IOC_ADD_ENCRYPTION_KEY as _,
            &mut arg as *mut AddKeyArg,
        )
    };
    let err = std::io::Error::last_os_error();
    arg.raw = [0; 64];
    if rc < 0 {
        return Err(format!(
            "add an encryption key to {}: {err}",
            mounted.display()
        ));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&arg.identifier[..16]);
    Ok(id)
}

/// Makes the empty directory `dir` encrypted (AES-256-XTS contents, AES-256-CTS names, v2
/// policy) under the key `identifier` (see [`add_encryption_key`]): what is written under it
/// reaches the disk encrypted, and reads back only while the key is present.
pub fn encrypt_dir(dir: &Path, identifier: &[u8; 16]) -> std::result::Result<(), String> {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::File::open(dir).map_err(|e| format!("open {}: {e}", dir.display()))?;
    let policy = PolicyV2 {
        version: 2,
        contents_mode: FSCRYPT_MODE_AES_256_XTS,
        filenames_mode: FSCRYPT_MODE_AES_256_CTS,
        flags: FSCRYPT_POLICY_FLAGS_PAD_32,
        reserved: [0; 4],
        identifier: *identifier,
    };
    // SAFETY: FS_IOC_SET_ENCRYPTION_POLICY reads a policy whose first byte selects its version
    // (2: `struct fscrypt_policy_v2`, mirrored by PolicyV2) from a pointer valid for the call.
    let rc = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            FS_IOC_SET_ENCRYPTION_POLICY as _,
            &policy as *const PolicyV2,
        )
    };
    if rc < 0 {
        return Err(format!(
            "encrypt {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

// <linux/fs.h>: _IOWR('X', 119, int) and _IOWR('X', 120, int).
const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;

/// A mounted filesystem frozen by [`freeze`]: writes to it wait until this is dropped.
#[derive(Debug)]
pub struct Frozen {
    dir: std::fs::File,
}

/// Freezes the filesystem mounted at `dir` (everything written so far is flushed to its
/// device; new writes block) until the returned guard drops: its image can then be copied
/// consistently.
pub fn freeze(dir: &Path) -> std::result::Result<Frozen, String> {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::File::open(dir).map_err(|e| format!("open {}: {e}", dir.display()))?;
    // SAFETY: FIFREEZE takes an (ignored) int argument; the descriptor is valid for the call.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), FIFREEZE as _, 0) };
    if rc < 0 {
        return Err(format!(
            "freeze {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(Frozen { dir: f })
}

impl Drop for Frozen {
    fn drop(&mut self) {
        use std::os::unix::io::AsRawFd;
        // SAFETY: FITHAW takes an (ignored) int argument; the descriptor is valid for the call.
        let rc = unsafe { libc::ioctl(self.dir.as_raw_fd(), FITHAW as _, 0) };
        if rc < 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot thaw a filesystem");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn root_with_support() -> bool {
        let root = std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false);
        if !root {
            eprintln!("skipped: scratch filesystems need root");
            return false;
        }
        if let Err(why) = support() {
            eprintln!("skipped: {why}");
            return false;
        }
        true
    }

    fn loops_of(img: &Path) -> String {
        let out = Command::new(tool("losetup").unwrap())
            .arg("-a")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&*img.to_string_lossy()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn is_mountpoint(p: &Path) -> bool {
        let want = p.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
    }

    #[test]
    fn sizes_are_validated() {
        assert!(validate(0).is_err());
        assert!(validate(MAX_MB + 1).is_err());
        assert!(validate(512).is_ok() && validate(10240).is_ok());
        assert!(!note().is_empty());
    }

    #[test]
    fn release_without_scratch_is_a_no_op() {
        let dir = std::env::temp_dir().join(format!("fc-scratch-none-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        release_all(&dir);
        assert!(dir.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sized_disk_backed_and_gone_after_release() {
        if !root_with_support() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("fc-scratch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let mnt = create(&dir, &dir.join("templates"), 0, 16).unwrap();
        let img = dir.join("scratch/0.img");
        assert!(is_mountpoint(&mnt), "{} is mounted", mnt.display());
        let line = loops_of(&img);
        let dev = line.split(':').next().unwrap().trim_start_matches("/dev/");
        assert!(
            dev.starts_with("loop"),
            "a loop device backs the file: {line:?}"
        );
        let sys = |f: &str| std::fs::read_to_string(format!("/sys/block/{dev}/loop/{f}")).unwrap();
        assert_eq!(sys("autoclear").trim(), "1", "configured by LOOP_CONFIGURE");
        assert_eq!(sys("dio").trim(), "1", "direct I/O");
        assert!(
            dir.join("templates/16.img").is_file(),
            "the format is kept as a template"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&mnt).unwrap().permissions().mode() & 0o7777,
            0o1777
        );
        assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0, "starts empty");
        // The file is sparse: formatting wrote little.
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&img).unwrap().blocks() * 512 < 8 << 20);
        // 8 MB fits; 20 MB more does not.
        std::fs::write(mnt.join("small"), vec![1u8; 8 << 20]).unwrap();
        let mut f = std::fs::File::create(mnt.join("big")).unwrap();
        let chunk = vec![2u8; 1 << 20];
        let err = (0..20)
            .map(|_| f.write_all(&chunk))
            .find_map(|r| r.err())
            .or_else(|| f.sync_all().err())
            .expect("writing past the size fails");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        drop(f);
        release_all(&dir);
        assert!(!is_mountpoint(&mnt));
        assert!(!dir.join("scratch").exists(), "files and data are gone");
        assert_eq!(loops_of(&img), "", "no loop device left");
        // Idempotent.
        release_all(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn release_after_a_crash_finds_mount_and_loop_device() {
        if !root_with_support() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("fc-scratch-crash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let a = create(&dir, &dir.join("templates"), 0, 8).unwrap();
        let b = create(&dir, &dir.join("templates"), 1, 8).unwrap();
        std::fs::write(a.join("x"), b"data").unwrap();
        std::fs::write(b.join("y"), b"data").unwrap();
        // A "restarted server" knows nothing but the directory.
        release_all(&dir);
        assert!(!is_mountpoint(&a) && !is_mountpoint(&b));
        assert_eq!(loops_of(&dir.join("scratch/0.img")), "");
        assert_eq!(loops_of(&dir.join("scratch/1.img")), "");
        assert!(!dir.join("scratch").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn df_bytes(p: &Path) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=size"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn fill(dir: &Path, name: &str, mb: usize) -> std::io::Result<()> {
        let mut f = std::fs::File::create(dir.join(name))?;
        let chunk = vec![3u8; 1 << 20];
        for _ in 0..mb {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    }

    #[test]
    fn persistent_images_are_sized_copied_grown_and_released() {
        if !root_with_support() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("fc-image-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        /// Unmounts whatever a failing test left mounted.
        struct Cleanup(PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                for m in ["a", "a2", "b"] {
                    let _ = crate::sys::umount_detach(&self.0.join("mnt").join(m));
                }
                for i in ["a.ext4", "b.ext4"] {
                    detach_loops(&self.0.join("vol").join(i));
                }
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let _cleanup = Cleanup(dir.clone());
        let (img, mnt) = (dir.join("vol/a.ext4"), dir.join("mnt/a"));
        assert!(create_image(&dir.join("t"), &img, 0).is_err());
        create_image(&dir.join("t"), &img, 64).unwrap();
        assert!(
            dir.join("t/64-journal.img").is_file() || dir.join("t/64-encryptable.img").is_file()
        );
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 64 << 20);
        assert_eq!(fs_bytes(&img), Some(64 << 20));
        mount_image(&img, &mnt, false).unwrap();
        assert!(is_mounted(&mnt));
        mount_image(&img, &mnt, false).unwrap(); // already mounted: no-op
        let size = df_bytes(&mnt);
        assert!(
            size > 48 << 20 && size <= 64 << 20,
            "df shows the size: {size}"
        );
        let err = fill(&mnt, "big", 80).expect_err("past the size");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        std::fs::remove_file(mnt.join("big")).unwrap();
        Command::new("sync").arg("-f").arg(&mnt).status().unwrap();
        use std::os::unix::fs::MetadataExt;
        // The discards are issued after the commit, asynchronously.
        let used = || std::fs::metadata(&img).unwrap().blocks() * 512;
        for _ in 0..100 {
            if used() < 16 << 20 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            used() < 16 << 20,
            "deleting gave the space back: {}",
            used()
        );
        std::fs::write(mnt.join("keep.txt"), b"kept").unwrap();
        // A consistent copy of the mounted image, frozen meanwhile.
        let copy = dir.join("vol/b.ext4");
        {
            let _f = freeze(&mnt).unwrap();
            copy_sparse(&img, &copy).unwrap();
        }
        std::fs::write(mnt.join("after.txt"), b"thawed").unwrap();
        // Online growth (needs CAP_SYS_RESOURCE); otherwise the file grows now and the
        // filesystem once unmounted.
        match grow_image(&img, 96) {
            Ok(()) => {
                assert!(df_bytes(&mnt) > 80 << 20, "grown online");
                fill(&mnt, "more", 70).unwrap();
            }
            Err(e) if e.contains("Permission denied") => {
                eprintln!("online resize not permitted here: {e}");
                assert_eq!(std::fs::metadata(&img).unwrap().len(), 96 << 20);
            }
            Err(e) => panic!("{e}"),
        }
        // A second mount of the same image reuses its loop device.
        let mnt2 = dir.join("mnt/a2");
        mount_image(&img, &mnt2, false).unwrap();
        assert_eq!(loops_of(&img).lines().count(), 1, "{}", loops_of(&img));
        assert!(mnt2.join("keep.txt").is_file());
        unmount_image(&mnt2, &img);
        unmount_image(&mnt, &img);
        assert!(!is_mounted(&mnt) && !mnt.exists());
        assert_eq!(loops_of(&img), "", "no loop device left");
        // The copy: the data of the moment, offline growth.
        grow_image(&copy, 128).unwrap();
        assert_eq!(fs_bytes(&copy), Some(128 << 20));
        let mnt3 = dir.join("mnt/b");
        mount_image(&copy, &mnt3, true).unwrap();
        assert_eq!(std::fs::read(mnt3.join("keep.txt")).unwrap(), b"kept");
        assert!(!mnt3.join("after.txt").exists());
        assert!(std::fs::write(mnt3.join("x"), b"x").is_err(), "read-only");
        unmount_image(&mnt3, &copy);
        assert_eq!(loops_of(&copy), "");
        // Grown offline (a no-op if it was grown online); remounted: the data is there.
        grow_image(&img, 96).unwrap();
        assert_eq!(fs_bytes(&img), Some(96 << 20));
        mount_image(&img, &mnt, false).unwrap();
        assert_eq!(std::fs::read(mnt.join("after.txt")).unwrap(), b"thawed");
        unmount_image(&mnt, &img);
        assert_eq!(loops_of(&img), "");
        // Big sizes write only metadata.
        let huge = dir.join("vol/huge.ext4");
        create_image(&dir.join("t"), &huge, 1 << 20).unwrap();
        assert!(std::fs::metadata(&huge).unwrap().blocks() * 512 < 32 << 20);
    }

    #[test]
    fn encrypted_directories_in_images() {
        if !root_with_support() || encryption_support().is_err() {
            eprintln!("skipped: needs root, loop devices and ext4 encryption");
            return;
        }
        let dir = std::env::temp_dir().join(format!("fc-image-crypt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let (img, mnt) = (dir.join("c.ext4"), dir.join("mnt"));
        create_image(&dir.join("t"), &img, 32).unwrap();
        mount_image(&img, &mnt, false).unwrap();
        let key = [7u8; 64];
        let r = (|| -> std::result::Result<(), String> {
            let id = add_encryption_key(&mnt, &key)?;
            assert_eq!(add_encryption_key(&mnt, &key)?, id, "adding again is fine");
            let vol = mnt.join("volume");
            std::fs::create_dir(&vol).unwrap();
            encrypt_dir(&vol, &id)?;
            std::fs::write(vol.join("secret-name.txt"), b"PLAINTEXT-MARKER-123").unwrap();
            Ok(())
        })();
        Command::new("sync").arg("-f").arg(&mnt).status().unwrap();
        unmount_image(&mnt, &img);
        r.unwrap();
        let raw = std::fs::read(&img).unwrap();
        let has = |n: &[u8]| raw.windows(n.len()).any(|w| w == n);
        assert!(
            !has(b"PLAINTEXT-MARKER-123"),
            "contents are encrypted on disk"
        );
        assert!(!has(b"secret-name"), "names are encrypted on disk");
        // Mounted again: unreadable without the key, readable with it.
        mount_image(&img, &mnt, false).unwrap();
        let names: Vec<_> = std::fs::read_dir(mnt.join("volume"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!names.iter().any(|n| n == "secret-name.txt"), "{names:?}");
        add_encryption_key(&mnt, &key).unwrap();
        let back = std::fs::read(mnt.join("volume/secret-name.txt"));
        unmount_image(&mnt, &img);
        assert_eq!(back.unwrap(), b"PLAINTEXT-MARKER-123");
        assert_eq!(loops_of(&img), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The init binary built next to the test executable, if built.
    fn init_exe() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let init = exe.parent()?.parent()?.join("fc-runtime-init");
        init.is_file().then_some(init)
    }

    fn scratch_spec(id: &str, argv: &[&str], layer: Option<&Path>) -> crate::WorkloadSpec {
        crate::WorkloadSpec {
            id: id.into(),
            rootfs: crate::Rootfs {
                lowers: layer.map(|l| vec![l.to_path_buf()]).unwrap_or_default(),
                binds: match layer {
                    Some(_) => vec![("/usr".into(), "/usr".into(), true)],
                    None => Vec::new(),
                },
                read_only: false,
            },
            process: crate::ProcessSpec {
                argv: argv.iter().map(|a| a.to_string()).collect(),
                env: vec![("PATH".into(), "/usr/bin:/bin:/usr/sbin:/sbin".into())],
                ..Default::default()
            },
            mounts: vec![crate::MountSpec {
                source: crate::MountSource::Scratch { size_mb: 16 },
                target: "/tmp".into(),
                read_only: false,
            }],
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn linux_workload_gets_a_sized_tmp_that_destroy_removes() {
        use crate::Driver;
        if !root_with_support() || crate::linux_support().is_err() {
            eprintln!("skipped: needs root and the linux driver");
            return;
        }
        let Some(init) = init_exe() else {
            eprintln!("skipped: fc-runtime-init is not built (run `cargo test -p fc-runtime`)");
            return;
        };
        let root = std::env::temp_dir().join(format!("fc-scratch-drv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let layer = root.join("layer");
        std::fs::create_dir_all(layer.join("usr")).unwrap();
        for (l, t) in [
            ("bin", "usr/bin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ] {
            std::os::unix::fs::symlink(t, layer.join(l)).unwrap();
        }
        let mut cfg = crate::DriverConfig::new(root.join("state"));
        cfg.init_exe = Some(init);
        let d = crate::LinuxDriver::new(cfg, std::sync::Arc::new(crate::NullLogSink)).unwrap();
        assert!(d.capabilities().notes.iter().any(|n| n.contains("scratch")));
        let h = d
            .start(scratch_spec("s1", &["sleep", "300"], Some(&layer)))
            .await
            .unwrap();
        let script = "stat -c %a /tmp; ls -A /tmp | wc -l; \
                      dd if=/dev/zero of=/tmp/a bs=1M count=8 2>/dev/null && echo fits; \
                      dd if=/dev/zero of=/tmp/b bs=1M count=20 2>&1 | grep -c 'No space left'";
        let out = d
            .exec(
                "s1",
                crate::ExecSpec {
                    argv: vec!["sh".into(), "-c".into(), script.into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec!["1777", "0", "fits", "1"],
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let img = h.dir.join("scratch/0.img");
        assert!(!loops_of(&img).is_empty());
        d.destroy("s1").await.unwrap();
        assert!(!h.dir.exists(), "the data is gone with the workload");
        assert_eq!(loops_of(&img), "", "no loop device left");
        assert!(!std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&*h.dir.to_string_lossy()));
        d.shutdown().await;
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn process_driver_runs_without_the_scratch_mount() {
        use crate::Driver;
        let Some(init) = init_exe() else {
            eprintln!("skipped: fc-runtime-init is not built (run `cargo test -p fc-runtime`)");
            return;
        };
        let root = std::env::temp_dir().join(format!("fc-scratch-proc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut cfg = crate::DriverConfig::new(root.join("state"));
        cfg.init_exe = Some(init);
        let d = crate::ProcessDriver::new(cfg, std::sync::Arc::new(crate::NullLogSink)).unwrap();
        assert!(d.capabilities().notes.iter().any(|n| n.contains("scratch")));
        let h = d
            .start(scratch_spec("p1", &["sh", "-c", "exit 7"], None))
            .await
            .unwrap();
        assert_eq!(d.wait("p1").await.unwrap().code, Some(7));
        assert!(!h.dir.join("scratch").exists());
        d.destroy("p1").await.unwrap();
        let mut bad = scratch_spec("p2", &["true"], None);
        bad.mounts[0].source = crate::MountSource::Scratch { size_mb: 0 };
        assert!(matches!(
            d.start(bad).await,
            Err(RuntimeError::InvalidSpec(_))
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// What a scratch mount adds to a start: `cargo test -p fc-runtime --lib scratch_cost --
    /// --ignored --nocapture` (prints; asserts nothing about time).
    #[test]
    #[ignore]
    fn scratch_cost() {
        if !root_with_support() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("fc-scratch-cost-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let templates = dir.join("templates");
        for size in [512u64, 10240] {
            let t = std::time::Instant::now();
            create(&dir, &templates, 0, size).unwrap();
            let first = t.elapsed();
            release_all(&dir);
            let (mut made, mut freed) = (Vec::new(), Vec::new());
            for _ in 0..20 {
                let t = std::time::Instant::now();
                create(&dir, &templates, 0, size).unwrap();
                made.push(t.elapsed());
                let t = std::time::Instant::now();
                release_all(&dir);
                freed.push(t.elapsed());
            }
            made.sort();
            freed.sort();
            eprintln!(
                "{size} MB: first (formats the template) {first:?}; then create p50 {:?} max \
                 {:?}, release p50 {:?}",
                made[10], made[19], freed[10]
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
