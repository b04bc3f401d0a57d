//! A minimal, defensive ZIP reader for deployment packages and layers: the central directory,
//! stored and deflated entries, unix modes and symbolic links. It never panics on arbitrary
//! bytes, and unpacking refuses anything that would land outside the target directory
//! (`..`, absolute paths, links that escape, entries written through links).
//!
//! Not here: zip64 (refused as corrupt), encryption (refused), any other compression method.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Why an archive cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZipError {
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    #[error("entry {0:?} would be written outside the code directory")]
    Unsafe(String),
    #[error("unzipped size exceeds {0} bytes")]
    TooLarge(u64),
    #[error("i/o error on {path}: {reason}")]
    Io { path: String, reason: String },
}

/// What one central-directory entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    method: u16,
    flags: u16,
    crc: u32,
    compressed: u64,
    pub size: u64,
    /// Unix mode (type and permission bits) when the archive was made on unix.
    pub mode: Option<u32>,
    local_offset: u64,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/') || self.mode.is_some_and(|m| m & 0o170000 == 0o040000)
    }
    pub fn is_symlink(&self) -> bool {
        self.mode.is_some_and(|m| m & 0o170000 == 0o120000)
    }
}

fn corrupt(what: &str) -> ZipError {
    ZipError::Corrupt(what.to_string())
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ZipError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| corrupt("truncated record"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ZipError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| corrupt("truncated record"))
}

const EOCD_SIG: u32 = 0x0605_4b50;
const CDIR_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;

/// A parsed archive over its bytes.
pub struct Archive<'a> {
    data: &'a [u8],
    pub entries: Vec<Entry>,
}

impl<'a> Archive<'a> {
    /// Reads the central directory.
    pub fn parse(data: &'a [u8]) -> Result<Archive<'a>, ZipError> {
        if data.len() < 22 {
            return Err(corrupt("too short for an end of central directory record"));
        }
        // The end record sits in the last 22 + 65535 (comment) bytes.
        let lowest = data.len().saturating_sub(22 + 65535);
        let mut eocd = None;
        let mut i = data.len() - 22;
        loop {
            if u32_at(data, i)? == EOCD_SIG {
                let comment = u16_at(data, i + 20)? as usize;
                if i + 22 + comment == data.len() {
                    eocd = Some(i);
                    break;
                }
            }
            if i == lowest {
                break;
            }
            i -= 1;
        }
        let eocd = eocd.ok_or_else(|| corrupt("no end of central directory record"))?;
        let count = u16_at(data, eocd + 10)? as usize;
        let cd_size = u32_at(data, eocd + 12)? as usize;
        let cd_offset = u32_at(data, eocd + 16)? as usize;
        if count == 0xFFFF || cd_offset == 0xFFFF_FFFF || cd_size == 0xFFFF_FFFF {
            return Err(corrupt("zip64 archives are not supported"));
        }
        let cd_end = cd_offset
            .checked_add(cd_size)
            .filter(|e| *e <= eocd)
            .ok_or_else(|| corrupt("central directory outside the archive"))?;
        let mut entries = Vec::with_capacity(count.min(4096));
        let mut p = cd_offset;
        for _ in 0..count {
            if p + 46 > cd_end || u32_at(data, p)? != CDIR_SIG {
                return Err(corrupt("bad central directory entry"));
            }
            let made_by = u16_at(data, p + 4)?;
            let flags = u16_at(data, p + 8)?;
            let method = u16_at(data, p + 10)?;
            let crc = u32_at(data, p + 16)?;
            let compressed = u32_at(data, p + 20)?;
            let size = u32_at(data, p + 24)?;
            let name_len = u16_at(data, p + 28)? as usize;
            let extra_len = u16_at(data, p + 30)? as usize;
            let comment_len = u16_at(data, p + 32)? as usize;
            let external = u32_at(data, p + 38)?;
            let local = u32_at(data, p + 42)?;
            if compressed == 0xFFFF_FFFF || size == 0xFFFF_FFFF || local == 0xFFFF_FFFF {
                return Err(corrupt("zip64 entries are not supported"));
            }
            let name_bytes = data
                .get(p + 46..p + 46 + name_len)
                .ok_or_else(|| corrupt("truncated entry name"))?;
            let name = String::from_utf8_lossy(name_bytes).replace('\\', "/");
            let mode = (made_by >> 8 == 3 && external >> 16 != 0).then_some(external >> 16);
            entries.push(Entry {
                name,
                method,
                flags,
                crc,
                compressed: u64::from(compressed),
                size: u64::from(size),
                mode,
                local_offset: u64::from(local),
            });
            p += 46 + name_len + extra_len + comment_len;
        }
        Ok(Archive { data, entries })
    }

    /// Sum of the declared uncompressed sizes.
    pub fn declared_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// The content of one entry, checked against its size and CRC; at most `limit` bytes.
    pub fn read(&self, e: &Entry, limit: u64) -> Result<Vec<u8>, ZipError> {
        if e.flags & 1 != 0 {
            return Err(corrupt("encrypted entries are not supported"));
        }
        let lo = usize::try_from(e.local_offset).map_err(|_| corrupt("bad offset"))?;
        if u32_at(self.data, lo)? != LOCAL_SIG {
            return Err(corrupt("bad local header"));
        }
        let name_len = u16_at(self.data, lo + 26)? as usize;
        let extra_len = u16_at(self.data, lo + 28)? as usize;
        let start = lo + 30 + name_len + extra_len;
        let clen = usize::try_from(e.compressed).map_err(|_| corrupt("bad size"))?;
        let raw = start
            .checked_add(clen)
            .and_then(|end| self.data.get(start..end))
            .ok_or_else(|| corrupt("entry data outside the archive"))?;
        if e.size > limit {
            return Err(ZipError::TooLarge(limit));
        }
        let out = match e.method {
            0 => raw.to_vec(),
            8 => {
                let mut out = Vec::with_capacity(usize::try_from(e.size.min(1 << 20)).unwrap_or(0));
                flate2::read::DeflateDecoder::new(raw)
                    .take(e.size + 1)
                    .read_to_end(&mut out)
                    .map_err(|err| ZipError::Corrupt(format!("{}: {err}", e.name)))?;
                out
            }
            m => return Err(ZipError::Corrupt(format!("compression method {m}"))),
        };
        if out.len() as u64 != e.size {
            return Err(ZipError::Corrupt(format!("{}: size mismatch", e.name)));
        }
        if crc32fast::hash(&out) != e.crc {
            return Err(ZipError::Corrupt(format!("{}: CRC mismatch", e.name)));
        }
        Ok(out)
    }
}

/// The relative path of an entry inside the target, refused when it is absolute or climbs out.
fn safe_relative(name: &str) -> Result<PathBuf, ZipError> {
    let trimmed = name.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(PathBuf::new());
    }
    if name.starts_with('/') || name.contains('\0') || name.as_bytes().get(1) == Some(&b':') {
        return Err(ZipError::Unsafe(name.to_string()));
    }
    let mut out = PathBuf::new();
    for c in Path::new(trimmed).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return Err(ZipError::Unsafe(name.to_string())),
        }
    }
    Ok(out)
}

/// Whether a link at `link` (relative to the root) pointing to `target` stays inside the root.
fn link_stays_inside(link: &Path, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> = Vec::new();
    if let Some(parent) = link.parent() {
        for c in parent.components() {
            if let Component::Normal(p) = c {
                depth.push(p);
            }
        }
    }
    for c in Path::new(target).components() {
        match c {
            Component::Normal(p) => depth.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// What unpacking produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
}

/// Checks the whole archive without writing anything: paths, links, sizes and content (so a
/// corrupt entry is found before anything is created). Returns the unzipped size.
pub fn check(data: &[u8], limit: u64) -> Result<u64, ZipError> {
    let a = Archive::parse(data)?;
    if a.declared_size() > limit {
        return Err(ZipError::TooLarge(limit));
    }
    let links = plan(&a)?;
    let mut total = 0u64;
    for e in &a.entries {
        if e.is_dir() {
            continue;
        }
        let content = a.read(e, limit.saturating_sub(total))?;
        total += content.len() as u64;
        if e.is_symlink() {
            let target = String::from_utf8_lossy(&content);
            let rel = safe_relative(&e.name)?;
            if !link_stays_inside(&rel, &target) {
                return Err(ZipError::Unsafe(e.name.clone()));
            }
        }
    }
    drop(links);
    Ok(total)
}

/// Path checks over every entry: no escaping names, nothing written through a link.
fn plan(a: &Archive<'_>) -> Result<HashSet<PathBuf>, ZipError> {
    let mut links = HashSet::new();
    for e in &a.entries {
        let rel = safe_relative(&e.name)?;
        if e.is_symlink() {
            links.insert(rel);
        }
    }
    for e in &a.entries {
        let rel = safe_relative(&e.name)?;
        let mut prefix = PathBuf::new();
        let comps: Vec<_> = rel.components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            prefix.push(c);
            if links.contains(&prefix) {
                return Err(ZipError::Unsafe(e.name.clone()));
            }
        }
    }
    Ok(links)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ZipError + '_ {
    move |e| ZipError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Unpacks into `dir` (which must exist and be empty), keeping unix modes; refuses the whole
/// archive (callers remove `dir`) when an entry is unsafe, corrupt or the total exceeds `limit`.
pub fn unpack(data: &[u8], dir: &Path, limit: u64) -> Result<Unpacked, ZipError> {
    use std::os::unix::fs::PermissionsExt;
    let a = Archive::parse(data)?;
    if a.declared_size() > limit {
        return Err(ZipError::TooLarge(limit));
    }
    plan(&a)?;
    let mut done = Unpacked { files: 0, bytes: 0 };
    let mut dirs = Vec::new();
    for e in &a.entries {
        let rel = safe_relative(&e.name)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let path = dir.join(&rel);
        if e.is_dir() {
            std::fs::create_dir_all(&path).map_err(io(&path))?;
            dirs.push((path, e.mode.map_or(0o755, |m| (m & 0o777) | 0o500)));
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let content = a.read(e, limit.saturating_sub(done.bytes))?;
        done.bytes += content.len() as u64;
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if meta.is_dir() {
                return Err(ZipError::Corrupt(format!("{}: duplicate entry", e.name)));
            }
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        if e.is_symlink() {
            let target = String::from_utf8_lossy(&content).into_owned();
            if !link_stays_inside(&rel, &target) {
                return Err(ZipError::Unsafe(e.name.clone()));
            }
            std::os::unix::fs::symlink(&target, &path).map_err(io(&path))?;
        } else {
            std::fs::write(&path, &content).map_err(io(&path))?;
            let mode = e.mode.map_or(0o644, |m| (m & 0o777) | 0o400);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(io(&path))?;
        }
        done.files += 1;
    }
    // Directory modes last, so a read-only directory does not stop its own entries.
    for (path, mode) in dirs.into_iter().rev() {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io(&path))?;
    }
    Ok(done)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny zip writer for tests: (name, content, unix mode, deflate?).
    pub(crate) fn build(entries: &[(&str, &[u8], u32, bool)]) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, content, mode, deflate) in entries {
            let data = if *deflate {
                let mut enc =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(content).unwrap();
                enc.finish().unwrap()
            } else {
                content.to_vec()
            };
            let method: u16 = if *deflate { 8 } else { 0 };
            let crc = crc32fast::hash(content);
            let offset = out.len() as u32;
            out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(content.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&data);
            central.extend_from_slice(&CDIR_SIG.to_le_bytes());
            central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes());
            central.extend_from_slice(&20u16.to_le_bytes());
            central.extend_from_slice(&0u16.to_le_bytes());
            central.extend_from_slice(&method.to_le_bytes());
            central.extend_from_slice(&[0; 4]);
            central.extend_from_slice(&crc.to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(content.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 8]);
            central.extend_from_slice(&(mode << 16).to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("fc-zip-{}", fc_types::ids::random_hex(12)));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn unpacks_stored_deflated_modes_and_links() {
        use std::os::unix::fs::PermissionsExt;
        let z = build(&[
            ("lib/", b"", 0o040755, false),
            ("bootstrap", b"#!/bin/sh\necho hi\n", 0o100755, true),
            ("lib/data.txt", &[b'x'; 5000], 0o100644, true),
            ("plain.txt", b"stored", 0o100600, false),
            ("lib/link", b"data.txt", 0o120777, false),
        ]);
        assert_eq!(check(&z, 1 << 20).unwrap(), 18 + 5000 + 6 + 8);
        let d = tmp();
        let u = unpack(&z, &d, 1 << 20).unwrap();
        assert_eq!(u.files, 4);
        let m = std::fs::metadata(d.join("bootstrap"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o755);
        assert_eq!(std::fs::read(d.join("lib/link")).unwrap(), vec![b'x'; 5000]);
        assert_eq!(std::fs::read(d.join("plain.txt")).unwrap(), b"stored");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_hostile_entries() {
        let cases: Vec<Vec<u8>> = vec![
            build(&[("../evil", b"x", 0o100644, false)]),
            build(&[("a/../../evil", b"x", 0o100644, false)]),
            build(&[("/etc/evil", b"x", 0o100644, false)]),
            build(&[("up", b"../..", 0o120777, false)]),
            build(&[("abs", b"/etc/passwd", 0o120777, false)]),
            build(&[("d/x", b"../../y", 0o120777, false)]),
            // Writing through a link (even one that points inside).
            build(&[
                ("d", b".", 0o120777, false),
                ("d/e", b"..", 0o120777, false),
            ]),
        ];
        for z in cases {
            assert!(
                matches!(check(&z, 1 << 20), Err(ZipError::Unsafe(_))),
                "{z:?}"
            );
            let d = tmp();
            assert!(matches!(unpack(&z, &d, 1 << 20), Err(ZipError::Unsafe(_))));
            assert!(!d.parent().unwrap().join("evil").exists());
            std::fs::remove_dir_all(&d).unwrap();
        }
    }

    #[test]
    fn size_limits_and_corruption() {
        let z = build(&[("big", &[0u8; 100_000], 0o100644, true)]);
        assert_eq!(check(&z, 99_999), Err(ZipError::TooLarge(99_999)));
        assert!(check(&z, 100_000).is_ok());
        // A lying size header: declared small, inflates larger.
        let mut lie = z.clone();
        let cd = lie.len() - 22 - (46 + 3);
        lie[cd + 24..cd + 28].copy_from_slice(&10u32.to_le_bytes());
        assert!(matches!(check(&lie, 1 << 20), Err(ZipError::Corrupt(_))));
        // A flipped data byte fails the CRC (or inflation).
        let mut bad = build(&[("f", b"hello world", 0o100644, false)]);
        bad[30 + 1] ^= 0xff;
        assert!(matches!(check(&bad, 1 << 20), Err(ZipError::Corrupt(_))));
        assert!(matches!(
            check(b"not a zip", 1 << 20),
            Err(ZipError::Corrupt(_))
        ));
        assert!(matches!(check(&[], 1 << 20), Err(ZipError::Corrupt(_))));
    }

    #[test]
    fn never_panics_on_random_or_truncated_input() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let good = build(&[
            ("a/b.py", b"def h(e, c):\n    return 1\n", 0o100644, true),
            ("c", b"x", 0o100755, false),
        ]);
        let d = tmp();
        for cut in 0..good.len() {
            let _ = check(&good[..cut], 1 << 20);
        }
        for _ in 0..3000 {
            let mut z = good.clone();
            for _ in 0..rng.gen_range(1..6) {
                let i = rng.gen_range(0..z.len());
                z[i] = rng.gen();
            }
            let _ = check(&z, 1 << 20);
            if check(&z, 1 << 20).is_ok() {
                let sub = d.join(fc_types::ids::random_hex(8));
                std::fs::create_dir_all(&sub).unwrap();
                let _ = unpack(&z, &sub, 1 << 20);
            }
            let len = rng.gen_range(0..200);
            let noise: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let _ = check(&noise, 1 << 20);
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
