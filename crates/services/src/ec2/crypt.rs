//! Encryption at rest of EBS data (`Encrypted=true` volumes and their snapshots), in two
//! formats.
//!
//! **Sized images** (what an encrypted volume becomes when first attached where the kernel has
//! ext4 encryption, see `volumes`): the volume's image holds one directory, `volume/`,
//! encrypted by the kernel (ext4 encryption, v2 policy: AES-256-XTS contents, AES-256-CTS
//! names) under a 64-byte key of the volume's own, stored next to the image wrapped
//! (AES-256-GCM) by the EBS master key ([`IMAGE_KEY`]). The key is given to the filesystem when
//! it is mounted on the host and goes with its last mount, so file contents and names reach
//! the disk only encrypted, and the instance writes to a disk-backed filesystem of the
//! volume's size. Snapshots and copies copy the image (ciphertext) and the wrapped key.
//!
//! **Sealed archives** (earlier versions, snapshots encrypted by `CopySnapshot`, encrypted
//! volumes made from unencrypted snapshots, and hosts without ext4 encryption): the data
//! directory holds exactly one file, [`SEALED`]: a tar archive of the filesystem (made and read
//! by the host's `tar`, owners and modes kept) encrypted with AES-256-GCM under a data key of
//! its own, stored in the file's header wrapped (AES-256-GCM) with the EBS master key. On the
//! first attach such a volume becomes a sized image (its archive unpacked into `volume/`);
//! without ext4 encryption it is opened into a tmpfs of its size (memory) mounted on the host
//! at `<data_dir>/open/<vol-id>` ([`open_volume`]) and sealed back when detached, stopped or
//! terminated ([`close_volume`]).
//!
//! The master key is `<data_dir>/keys/ebs-master.key` (32 random bytes, mode 0600, created on
//! first use; there is no KMS service yet, so the volume's `KmsKeyId` is recorded but not
//! used).
//!
//! Sealed file layout: `FCSEAL1\n`, the wrapped key (12-byte nonce + 48 bytes), a 7-byte nonce
//! prefix, then chunks of at most 1 MiB of plaintext, each `len: u32 BE`, `last: u8`,
//! ciphertext+tag; chunk `i` is sealed with nonce `prefix ‖ i (u32 BE) ‖ last` and
//! associated data `i ‖ last`, so reordering, dropping or truncating chunks fails to open.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The encrypted archive inside an encrypted volume's or snapshot's data directory.
pub(crate) const SEALED: &str = "data.sealed";
const MAGIC: &[u8; 8] = b"FCSEAL1\n";
const CHUNK: usize = 1 << 20;
const WRAP_AAD: &[u8] = b"ferrocloud ebs data key";

/// Failures of sealing and opening.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CryptError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the sealed data is corrupt or was encrypted under another key")]
    Corrupt,
    #[error("tar failed: {0}")]
    Tar(String),
}

fn io(ctx: impl Into<String>) -> impl FnOnce(std::io::Error) -> CryptError {
    let ctx = ctx.into();
    move |e| CryptError::Io(ctx, e)
}

/// The EBS master key, created (0600) on first use.
fn master_key(data_dir: &Path) -> Result<[u8; 32], CryptError> {
    let dir = data_dir.join("keys");
    let path = dir.join("ebs-master.key");
    if let Ok(b) = std::fs::read(&path) {
        return b.try_into().map_err(|_| CryptError::Corrupt);
    }
    std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    let key = Aes256Gcm::generate_key(OsRng);
    let tmp = dir.join(format!(".ebs-master.{}", uuid::Uuid::new_v4()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(format!("create {}", tmp.display())))?;
    f.write_all(&key)
        .and_then(|_| f.sync_all())
        .map_err(io("write the master key"))?;
    // Another thread may have won the race: keep the first key.
    if std::fs::hard_link(&tmp, &path).is_err() && !path.exists() {
        return Err(CryptError::Io(
            format!("install {}", path.display()),
            std::io::Error::other("link failed"),
        ));
    }
    let _ = std::fs::remove_file(&tmp);
    std::fs::read(&path)
        .map_err(io(format!("read {}", path.display())))?
        .try_into()
        .map_err(|_| CryptError::Corrupt)
}

fn chunk_nonce(prefix: &[u8; 7], i: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&i.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn chunk_aad(i: u32, last: bool) -> [u8; 5] {
    let mut a = [0u8; 5];
    a[..4].copy_from_slice(&i.to_be_bytes());
    a[4] = u8::from(last);
    a
}

/// Read until `buf` is full or EOF; returns the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Encrypt everything `plain` yields into `out` (see the module docs for the format).
fn encrypt_stream(
    data_dir: &Path,
    plain: &mut impl Read,
    out: &mut impl Write,
) -> Result<u64, CryptError> {
    let master = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&master_key(data_dir)?));
    let dek = Aes256Gcm::generate_key(OsRng);
    let wrap_nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let wrapped = master
        .encrypt(
            &wrap_nonce,
            Payload {
                msg: dek.as_slice(),
                aad: WRAP_AAD,
            },
        )
        .map_err(|_| CryptError::Corrupt)?;
    let prefix_full = Aes256Gcm::generate_nonce(&mut OsRng);
    let mut prefix = [0u8; 7];
    prefix.copy_from_slice(&prefix_full[..7]);
    let w = io("write sealed data");
    out.write_all(MAGIC).map_err(io("write sealed data"))?;
    out.write_all(&wrap_nonce)
        .map_err(io("write sealed data"))?;
    out.write_all(&wrapped).map_err(io("write sealed data"))?;
    out.write_all(&prefix).map_err(w)?;
    let cipher = Aes256Gcm::new(&dek);
    let mut buf = vec![0u8; CHUNK];
    // One chunk of look-ahead tells which chunk is the last.
    let mut cur = fill(plain, &mut buf).map_err(io("read plaintext"))?;
    let mut next_buf = vec![0u8; CHUNK];
    let mut i: u32 = 0;
    let mut total = 0u64;
    loop {
        let next = if cur == CHUNK {
            fill(plain, &mut next_buf).map_err(io("read plaintext"))?
        } else {
            0
        };
        let last = next == 0;
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&chunk_nonce(&prefix, i, last)),
                Payload {
                    msg: &buf[..cur],
                    aad: &chunk_aad(i, last),
                },
            )
            .map_err(|_| CryptError::Corrupt)?;
        let len = u32::try_from(ct.len()).map_err(|_| CryptError::Corrupt)?;
        out.write_all(&len.to_be_bytes())
            .and_then(|_| out.write_all(&[u8::from(last)]))
            .and_then(|_| out.write_all(&ct))
            .map_err(io("write sealed data"))?;
        total += cur as u64;
        if last {
            break;
        }
        std::mem::swap(&mut buf, &mut next_buf);
        cur = next;
        i = i.checked_add(1).ok_or(CryptError::Corrupt)?;
    }
    Ok(total)
}

/// Decrypt a sealed stream into `out`, failing on any tampering or truncation.
fn decrypt_stream(
    data_dir: &Path,
    sealed: &mut impl Read,
    out: &mut impl Write,
) -> Result<u64, CryptError> {
    let mut head = [0u8; 8 + 12 + 48 + 7];
    if fill(sealed, &mut head).map_err(io("read sealed data"))? != head.len() || &head[..8] != MAGIC
    {
        return Err(CryptError::Corrupt);
    }
    let master = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&master_key(data_dir)?));
    let dek = master
        .decrypt(
            Nonce::from_slice(&head[8..20]),
            Payload {
                msg: &head[20..68],
                aad: WRAP_AAD,
            },
        )
        .map_err(|_| CryptError::Corrupt)?;
    let mut prefix = [0u8; 7];
    prefix.copy_from_slice(&head[68..75]);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&dek));
    let mut i: u32 = 0;
    let mut total = 0u64;
    loop {
        let mut h = [0u8; 5];
        if fill(sealed, &mut h).map_err(io("read sealed data"))? != 5 {
            return Err(CryptError::Corrupt);
        }
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let last = h[4] == 1;
        if len > CHUNK + 16 {
            return Err(CryptError::Corrupt);
        }
        let mut ct = vec![0u8; len];
        if fill(sealed, &mut ct).map_err(io("read sealed data"))? != len {
            return Err(CryptError::Corrupt);
        }
        let pt = cipher
            .decrypt(
                Nonce::from_slice(&chunk_nonce(&prefix, i, last)),
                Payload {
                    msg: &ct,
                    aad: &chunk_aad(i, last),
                },
            )
            .map_err(|_| CryptError::Corrupt)?;
        out.write_all(&pt).map_err(io("write plaintext"))?;
        total += pt.len() as u64;
        if last {
            return Ok(total);
        }
        i = i.checked_add(1).ok_or(CryptError::Corrupt)?;
    }
}

/// Seal the tree under `src` into `dst_file` (written to a temporary file, fsynced, renamed).
pub(crate) fn seal_tree(data_dir: &Path, src: &Path, dst_file: &Path) -> Result<u64, CryptError> {
    let mut child = Command::new("tar")
        .arg("-C")
        .arg(src)
        .args(["--numeric-owner", "-cf", "-", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("run tar"))?;
    let tmp = dst_file.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(format!("create {}", tmp.display())))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| CryptError::Tar("no output".into()))?;
        let mut w = std::io::BufWriter::new(&mut f);
        let n = encrypt_stream(data_dir, &mut stdout, &mut w)?;
        w.flush().map_err(io("write sealed data"))?;
        drop(w);
        f.sync_all().map_err(io("sync sealed data"))?;
        Ok(n)
    })();
    let out = child.wait_with_output().map_err(io("wait for tar"))?;
    let n = match result {
        Ok(n) if out.status.success() => n,
        Ok(_) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(CryptError::Tar(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, dst_file).map_err(io(format!("install {}", dst_file.display())))?;
    Ok(n)
}

/// Unpack the sealed archive `file` into the directory `dst`.
pub(crate) fn open_tree(data_dir: &Path, file: &Path, dst: &Path) -> Result<u64, CryptError> {
    let mut f = std::fs::File::open(file).map_err(io(format!("open {}", file.display())))?;
    let mut child = Command::new("tar")
        .arg("-C")
        .arg(dst)
        .args(["--numeric-owner", "-xpf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("run tar"))?;
    let result = match child.stdin.take() {
        Some(stdin) => {
            let mut w = std::io::BufWriter::new(stdin);
            let r = decrypt_stream(data_dir, &mut std::io::BufReader::new(&mut f), &mut w);
            let flushed = w.flush().map_err(io("feed tar"));
            r.and_then(|n| flushed.map(|_| n))
        }
        None => Err(CryptError::Tar("no input".into())),
    };
    let out = child.wait_with_output().map_err(io("wait for tar"))?;
    let n = result?;
    if !out.status.success() {
        return Err(CryptError::Tar(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(n)
}

/// Turn a plaintext data directory into an encrypted one in place: its content is sealed into
/// [`SEALED`] and the plaintext removed. A directory already sealed is left alone.
pub(crate) fn seal_in_place(data_dir: &Path, dir: &Path) -> Result<(), CryptError> {
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    if is_sealed(dir) {
        return Ok(());
    }
    let staging = dir.with_extension(format!("plain-{}", uuid::Uuid::new_v4()));
    std::fs::rename(dir, &staging).map_err(io(format!("move {}", dir.display())))?;
    let r = std::fs::create_dir_all(dir)
        .map_err(io(format!("create {}", dir.display())))
        .and_then(|_| seal_tree(data_dir, &staging, &dir.join(SEALED)));
    let _ = std::fs::remove_dir_all(&staging);
    r.map(|_| ())
}

/// Whether a data directory holds sealed (encrypted) data.
pub(crate) fn is_sealed(dir: &Path) -> bool {
    dir.join(SEALED).is_file()
}

/// The wrapped ext4-encryption key of an encrypted image-format volume (or snapshot), next to
/// its image: `FCKEY01\n`, a 12-byte nonce, then the 64-byte key sealed (AES-256-GCM) under
/// the master key.
pub(crate) const IMAGE_KEY: &str = "ebs-volume.key";
const KEY_MAGIC: &[u8; 8] = b"FCKEY01\n";
const KEY_AAD: &[u8] = b"ferrocloud ebs volume key";

/// Make a new random 64-byte volume key and store it wrapped at `path` (0600, fsynced,
/// renamed into place).
pub(crate) fn new_volume_key(data_dir: &Path, path: &Path) -> Result<[u8; 64], CryptError> {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(&Aes256Gcm::generate_key(OsRng));
    key[32..].copy_from_slice(&Aes256Gcm::generate_key(OsRng));
    let master = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&master_key(data_dir)?));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let wrapped = master
        .encrypt(
            &nonce,
            Payload {
                msg: &key,
                aad: KEY_AAD,
            },
        )
        .map_err(|_| CryptError::Corrupt)?;
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(KEY_MAGIC)?;
        f.write_all(&nonce)?;
        f.write_all(&wrapped)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(CryptError::Io(format!("write {}", path.display()), e));
    }
    Ok(key)
}

/// The volume key stored wrapped at `path`.
pub(crate) fn volume_key(data_dir: &Path, path: &Path) -> Result<[u8; 64], CryptError> {
    let raw = std::fs::read(path).map_err(io(format!("read {}", path.display())))?;
    if raw.len() != 8 + 12 + 64 + 16 || &raw[..8] != KEY_MAGIC {
        return Err(CryptError::Corrupt);
    }
    let master = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&master_key(data_dir)?));
    let key = master
        .decrypt(
            Nonce::from_slice(&raw[8..20]),
            Payload {
                msg: &raw[20..],
                aad: KEY_AAD,
            },
        )
        .map_err(|_| CryptError::Corrupt)?;
    key.try_into().map_err(|_| CryptError::Corrupt)
}

/// Whether an encrypted volume is open in a tmpfs (the format before sized images, or a host
/// without ext4 encryption).
pub(crate) fn is_open(data_dir: &Path, volume_id: &str) -> bool {
    is_mount_point(&open_path(data_dir, volume_id))
}

/// Where an encrypted volume's plaintext is while it is open.
pub(crate) fn open_path(data_dir: &Path, volume_id: &str) -> PathBuf {
    data_dir.join("open").join(volume_id)
}

fn is_mount_point(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(m), Some(Ok(parent))) => m.dev() != parent.dev(),
        _ => false,
    }
}

fn run(cmd: &mut Command) -> Result<(), CryptError> {
    let out = cmd.output().map_err(io("run mount"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CryptError::Tar(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Open an encrypted volume: a tmpfs of its size at [`open_path`], holding its plaintext.
/// Already open: nothing to do. Returns the plaintext directory.
pub(crate) fn open_volume(
    data_dir: &Path,
    volume_id: &str,
    size_gib: i64,
    sealed_dir: &Path,
) -> Result<PathBuf, CryptError> {
    let dir = open_path(data_dir, volume_id);
    if is_mount_point(&dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={}g,mode=0755", size_gib.max(1)))
        .arg("ferrocloud-ebs")
        .arg(&dir))?;
    let file = sealed_dir.join(SEALED);
    if file.is_file() {
        if let Err(e) = open_tree(data_dir, &file, &dir) {
            let _ = close_mount(&dir);
            return Err(e);
        }
    }
    Ok(dir)
}

fn close_mount(dir: &Path) -> Result<(), CryptError> {
    run(Command::new("umount").arg("-l").arg(dir))?;
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// Seal an open volume's plaintext back into `sealed_dir` (when `keep`) and release the
/// tmpfs. Not open: nothing to do.
pub(crate) fn close_volume(
    data_dir: &Path,
    volume_id: &str,
    sealed_dir: &Path,
    keep: bool,
) -> Result<(), CryptError> {
    let dir = open_path(data_dir, volume_id);
    if !is_mount_point(&dir) {
        let _ = std::fs::remove_dir(&dir);
        return Ok(());
    }
    if keep {
        std::fs::create_dir_all(sealed_dir)
            .map_err(io(format!("create {}", sealed_dir.display())))?;
        seal_tree(data_dir, &dir, &sealed_dir.join(SEALED))?;
    }
    close_mount(&dir)
}

/// Give an open volume's tmpfs a new size limit (the volume grew). Not open: nothing to do.
pub(crate) fn resize_open(
    data_dir: &Path,
    volume_id: &str,
    size_gib: i64,
) -> Result<(), CryptError> {
    let dir = open_path(data_dir, volume_id);
    if !is_mount_point(&dir) {
        return Ok(());
    }
    run(Command::new("mount")
        .args(["-o"])
        .arg(format!("remount,size={}g", size_gib.max(1)))
        .arg(&dir))
}

/// Seal the current plaintext of an open volume into `dst_dir` (a snapshot of it).
pub(crate) fn snapshot_open(
    data_dir: &Path,
    volume_id: &str,
    dst_dir: &Path,
) -> Result<Option<u64>, CryptError> {
    let dir = open_path(data_dir, volume_id);
    if !is_mount_point(&dir) {
        return Ok(None);
    }
    std::fs::create_dir_all(dst_dir).map_err(io(format!("create {}", dst_dir.display())))?;
    seal_tree(data_dir, &dir, &dst_dir.join(SEALED)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("fc-crypt-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn stream_round_trip_and_tamper() {
        let dir = tmp();
        for size in [0usize, 5, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut sealed = Vec::new();
            encrypt_stream(&dir, &mut plain.as_slice(), &mut sealed).unwrap();
            assert!(size < 64 || !sealed.windows(64).any(|w| w == &plain[..64]));
            let mut back = Vec::new();
            decrypt_stream(&dir, &mut sealed.as_slice(), &mut back).unwrap();
            assert_eq!(back, plain);
            // Flipping a byte or truncating fails.
            let mut bad = sealed.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(decrypt_stream(&dir, &mut bad.as_slice(), &mut Vec::new()).is_err());
            let cut = &sealed[..sealed.len() - 10];
            assert!(decrypt_stream(&dir, &mut &cut[..], &mut Vec::new()).is_err());
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("keys/ebs-master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn volume_keys_are_wrapped() {
        let dir = tmp();
        let path = dir.join(IMAGE_KEY);
        let key = new_volume_key(&dir, &path).unwrap();
        assert_eq!(volume_key(&dir, &path).unwrap(), key);
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(16).any(|w| w == &key[..16]), "stored wrapped");
        let mut bad = raw.clone();
        bad[30] ^= 1;
        std::fs::write(&path, bad).unwrap();
        assert!(volume_key(&dir, &path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tree_seal_in_place() {
        let dir = tmp();
        let vol = dir.join("vol");
        std::fs::create_dir_all(vol.join("sub")).unwrap();
        std::fs::write(vol.join("sub/secret.txt"), b"PLAINTEXT-MARKER").unwrap();
        seal_in_place(&dir, &vol).unwrap();
        assert!(is_sealed(&vol));
        assert!(!vol.join("sub").exists());
        let raw = std::fs::read(vol.join(SEALED)).unwrap();
        assert!(!raw.windows(16).any(|w| w == b"PLAINTEXT-MARKER"));
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        open_tree(&dir, &vol.join(SEALED), &out).unwrap();
        assert_eq!(
            std::fs::read(out.join("sub/secret.txt")).unwrap(),
            b"PLAINTEXT-MARKER"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
