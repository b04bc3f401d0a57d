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

/// Formats a sparse ext4 image of `size_mb` MiB at `img`. No journal (scratch data need not
/// survive a crash), no reserved blocks, inode tables and discards left alone: the format
/// writes only a few hundred KB whatever the size.
fn format(img: &Path, size_mb: u64) -> std::result::Result<(), String> {
    let f = std::fs::File::create(img).map_err(|e| format!("create {}: {e}", img.display()))?;
    f.set_len(size_mb << 20)
        .map_err(|e| format!("size {}: {e}", img.display()))?;
    drop(f);
    let mkfs = tool("mkfs.ext4").ok_or("mkfs.ext4 is not installed")?;
    run(
        Command::new(mkfs)
            .args(["-q", "-F", "-m", "0", "-O", "^has_journal"])
            .args(["-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"])
            .arg(img),
        "mkfs.ext4",
    )
    .map(|_| ())
}

/// The formatted template of `size_mb` MiB, made once (atomically: concurrent starts may race).
fn template(templates: &Path, size_mb: u64) -> std::result::Result<PathBuf, String> {
    let path = templates.join(format!("{size_mb}.img"));
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
    let made = format(&tmp, size_mb)
        .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| format!("rename template: {e}")));
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    made.map(|()| path)
}

/// Copies the data extents of sparse file `from` into a new sparse file `to` of the same size.
fn copy_sparse(from: &Path, to: &Path) -> std::io::Result<()> {
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
        }
        pos = end;
    }
    Ok(())
}

// <linux/loop.h>
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
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
fn attach_loop(img: &Path) -> std::io::Result<(String, std::fs::File)> {
    use std::os::unix::io::AsRawFd;
    let rw = |p: &Path| std::fs::OpenOptions::new().read(true).write(true).open(p);
    let ctl = rw(Path::new("/dev/loop-control"))?;
    let backing = rw(img)?;
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
                lo_flags: LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO,
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
    match template(templates, size_mb) {
        Ok(t) => copy_sparse(&t, img).map_err(|e| format!("copy {}: {e}", t.display()))?,
        Err(why) => {
            tracing::debug!(reason = %why, "no scratch template; formatting in place");
            format(img, size_mb)?;
        }
    }
    let (dev, keep) = match attach_loop(img) {
        Ok((dev, f)) => (dev, Some(f)),
        Err(e) => {
            tracing::debug!(error = %e, "LOOP_CONFIGURE failed; using losetup");
            let losetup = tool("losetup").ok_or("losetup is not installed")?;
            let dev = run(
                Command::new(&losetup)
                    .args(["--find", "--show", "--direct-io=on"])
                    .arg(img),
                "losetup",
            )?;
            if !dev.starts_with("/dev/") {
                return Err(format!("losetup printed {dev:?}"));
            }
            (dev, None)
        }
    };
    // noinit_itable: the kernel does not zero inode tables in the background (that would fill
    // the sparse file).
    let mounted = crate::sys::mount(
        Some(Path::new(&dev)),
        mnt,
        Some("ext4"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("noinit_itable"),
    );
    // Closing the last descriptor of an auto-clear device that is not mounted frees it.
    drop(keep);
    if let Err(e) = mounted {
        if let Some(losetup) = tool("losetup") {
            let _ = Command::new(&losetup).arg("-d").arg(&dev).output();
        }
        return Err(format!("mount {dev} at {}: {e}", mnt.display()));
    }
    // An empty /tmp, as the workload expects.
    let _ = std::fs::remove_dir(mnt.join("lost+found"));
    Ok(())
}

/// Unmounts `mnt` (lazily), detaches every loop device backed by `img` and deletes both.
fn release_one(mnt: &Path, img: &Path) {
    if mnt.exists() {
        // EINVAL = not a mount point (plain directory or never mounted).
        let _ = crate::sys::umount_detach(mnt);
    }
    if img.exists() {
        if let Some(losetup) = tool("losetup") {
            let listed = Command::new(&losetup).arg("-j").arg(img).output();
            if let Ok(out) = listed {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if let Some(dev) = line.split(':').next().filter(|d| d.starts_with("/dev/")) {
                        // A device still in use (a mount not gone yet) is auto-cleared by the
                        // kernel on its last close.
                        let _ = Command::new(&losetup).arg("-d").arg(dev).output();
                    }
                }
            }
        }
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
