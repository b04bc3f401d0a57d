//! Tests of the image store: verified writes, GC, manifests, and hostile layers.

use super::*;
use std::os::unix::fs::FileTypeExt;

fn tmpdir(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("fc-images-{name}-{}", uuid::Uuid::new_v4()));
    fs::create_dir_all(&p).unwrap();
    p
}

enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Char(&'a str),
    /// A file whose header claims this size (content of zeros).
    Big(&'a str, u64),
}

/// A tar with raw names (no validation by the tar builder).
fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, kind, size, link): (&str, tar::EntryType, u64, Option<&str>) = match e {
            E::File(n, c) => (n, tar::EntryType::Regular, c.len() as u64, None),
            E::Dir(n) => (n, tar::EntryType::Directory, 0, None),
            E::Sym(n, t) => (n, tar::EntryType::Symlink, 0, Some(t)),
            E::Hard(n, t) => (n, tar::EntryType::Link, 0, Some(t)),
            E::Char(n) => (n, tar::EntryType::Char, 0, None),
            E::Big(n, s) => (n, tar::EntryType::Regular, *s, None),
        };
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if matches!(e, E::Dir(_)) { 0o755 } else { 0o644 });
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        let content: Vec<u8> = match e {
            E::File(_, c) => c.to_vec(),
            E::Big(_, s) => vec![0u8; *s as usize],
            _ => Vec::new(),
        };
        out.extend_from_slice(&content);
        let pad = (512 - content.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    g.write_all(data).unwrap();
    g.finish().unwrap()
}

fn store() -> (ImageStore, PathBuf) {
    let dir = tmpdir("store");
    (ImageStore::open(&dir).unwrap(), dir)
}

fn unpack_err(entries: &[E]) -> (ImageError, ImageStore) {
    let (s, _) = store();
    let d = s.put_blob(&gz(&tar_of(entries))).unwrap();
    let err = s.unpack(&d).expect_err("hostile layer must be refused");
    // Nothing left behind: no layer dir, no temp dir.
    let left: Vec<_> = fs::read_dir(s.root().join("layers")).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    (err, s)
}

fn assert_unsafe(entries: &[E], needle: &str) {
    let (err, _) = unpack_err(entries);
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            ImageError::Unpack {
                source: UnpackError::Unsafe { .. },
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains(needle), "{msg} should mention {needle}");
}

#[test]
fn blobs_are_verified_and_addressed() {
    let (s, dir) = store();
    let d = s.put_blob(b"hello").unwrap();
    assert_eq!(d, Digest::of(b"hello"));
    assert_eq!(s.read_blob(&d, 100).unwrap(), b"hello");
    assert!(matches!(
        s.read_blob(&d, 2),
        Err(ImageError::TooLarge { .. })
    ));
    let tmp = s.upload_path("u1");
    fs::write(&tmp, b"world").unwrap();
    let wrong = Digest::of(b"other");
    assert!(matches!(
        s.commit_file(&tmp, &wrong, None),
        Err(ImageError::DigestMismatch { .. })
    ));
    assert!(!tmp.exists() && !s.has_blob(&wrong));
    fs::write(&tmp, b"world").unwrap();
    assert_eq!(s.commit_file(&tmp, &Digest::of(b"world"), None).unwrap(), 5);
    assert!(s.has_blob(&Digest::of(b"world")));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn gc_keeps_referenced_and_builtin() {
    let (s, dir) = store();
    let a = s.put_blob(b"a").unwrap();
    let b = s.put_blob(b"b").unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
        "config": {"mediaType": manifest::OCI_CONFIG, "digest": a.as_str(), "size": 1},
        "layers": []
    });
    let m = s.put_blob(&serde_json::to_vec(&manifest).unwrap()).unwrap();
    let junk = s.put_blob(b"junk").unwrap();
    let keep: HashSet<Digest> = [m.clone()].into_iter().collect();
    let r = s.gc(&keep, Duration::from_secs(3600)).unwrap();
    assert_eq!(r.blobs, 0, "young blobs stay");
    let r = s.gc(&keep, Duration::ZERO).unwrap();
    assert_eq!(r.blobs, 2);
    assert!(s.has_blob(&m) && s.has_blob(&a));
    assert!(!s.has_blob(&b) && !s.has_blob(&junk));
    assert!(s.has_blob(s.userland_digest()));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn manifests_parse() {
    let idx = serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_INDEX,
        "manifests": [
            {"mediaType": manifest::OCI_MANIFEST, "digest": Digest::of(b"1").as_str(), "size": 1,
             "platform": {"os": "linux", "architecture": "arm64"}},
            {"mediaType": manifest::OCI_MANIFEST, "digest": Digest::of(b"2").as_str(), "size": 1,
             "platform": {"os": "linux", "architecture": "amd64"}}
        ]
    });
    let m = Manifest::parse(&serde_json::to_vec(&idx).unwrap(), None).unwrap();
    assert!(m.is_index());
    assert_eq!(
        m.pick_platform("linux", "amd64").unwrap().digest,
        Digest::of(b"2")
    );
    assert!(Manifest::parse(b"{}", None).is_err());
    assert!(Manifest::parse(b"not json", None).is_err());
    let bad = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST});
    assert!(Manifest::parse(&serde_json::to_vec(&bad).unwrap(), None).is_err());
    let mismatch = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
        "config": {"mediaType": "x", "digest": Digest::of(b"").as_str(), "size": 0}, "layers": []});
    assert!(Manifest::parse(
        &serde_json::to_vec(&mismatch).unwrap(),
        Some(manifest::DOCKER_MANIFEST)
    )
    .is_err());
}

#[test]
fn unpack_regular_layer_with_whiteouts() {
    let (s, dir) = store();
    let layer = tar_of(&[
        E::Dir("./etc/"),
        E::File("./etc/hello", b"hi"),
        E::Sym("etc/abs", "/etc/passwd"),
        E::Sym("etc/rel", "../etc/hello"),
        E::Hard("etc/hard", "etc/hello"),
        E::File("etc/.wh.gone", b""),
        E::Dir("opaque/"),
        E::File("opaque/.wh..wh..opq", b""),
        E::File("deep/er/file", b"x"),
    ]);
    let d = s.put_blob(&gz(&layer)).unwrap();
    let out = s.unpack(&d).unwrap();
    assert_eq!(fs::read(out.join("etc/hello")).unwrap(), b"hi");
    assert_eq!(
        fs::read_link(out.join("etc/abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(fs::read(out.join("etc/hard")).unwrap(), b"hi");
    assert_eq!(fs::read(out.join("deep/er/file")).unwrap(), b"x");
    let wh = fs::symlink_metadata(out.join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    let opq = rustix::fs::getxattr(out.join("opaque"), "trusted.overlay.opaque", &mut [0u8; 4]);
    assert_eq!(opq.ok(), Some(1));
    // Second unpack reuses the directory; plain (uncompressed) tar works too.
    assert_eq!(s.unpack(&d).unwrap(), out);
    let plain = s.put_blob(&tar_of(&[E::File("a", b"1")])).unwrap();
    assert_eq!(fs::read(s.unpack(&plain).unwrap().join("a")).unwrap(), b"1");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn hostile_layers_are_refused() {
    assert_unsafe(&[E::File("../escape", b"x")], "`..`");
    assert_unsafe(&[E::File("a/../../escape", b"x")], "`..`");
    assert_unsafe(&[E::File("/etc/evil", b"x")], "absolute");
    assert_unsafe(
        &[E::Sym("link", "/tmp"), E::File("link/evil", b"x")],
        "symlink",
    );
    assert_unsafe(&[E::Sym("up", "../../../../tmp")], "leaves the root");
    assert_unsafe(&[E::Dir("d/"), E::Sym("d/up", "../..")], "leaves the root");
    assert_unsafe(&[E::Hard("h", "/etc/passwd")], "hardlink");
    assert_unsafe(&[E::Hard("h", "../../etc/passwd")], "hardlink");
    assert_unsafe(&[E::Hard("h", "not/here")], "not in this layer");
    assert_unsafe(&[E::Sym("l", "/"), E::Hard("h", "l/etc/passwd")], "symlink");
    assert_unsafe(&[E::Char("dev/null")], "device");
}

#[test]
fn bombs_are_refused() {
    let dir = tmpdir("bomb");
    let s = ImageStore::open(&dir).unwrap().with_limits(UnpackLimits {
        max_bytes: 1 << 20,
        max_entries: 50,
    });
    let big = s
        .put_blob(&gz(&tar_of(&[E::Big("zeros", 4 << 20)])))
        .unwrap();
    let e = s.unpack(&big).unwrap_err();
    assert!(
        matches!(
            e,
            ImageError::Unpack {
                source: UnpackError::TooLarge { .. },
                ..
            }
        ),
        "{e}"
    );
    let many: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
    let entries: Vec<E> = many.iter().map(|n| E::File(n, b"")).collect();
    let lots = s.put_blob(&gz(&tar_of(&entries))).unwrap();
    let e = s.unpack(&lots).unwrap_err();
    assert!(
        matches!(
            e,
            ImageError::Unpack {
                source: UnpackError::TooManyEntries { .. },
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(fs::read_dir(dir.join("layers")).unwrap().count(), 0);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn userland_rootfs() {
    let (s, dir) = store();
    let (lowers, binds, cfg) = s.rootfs(&s.userland_digest().clone()).unwrap();
    assert_eq!(lowers.len(), 1);
    assert_eq!(
        fs::read_link(lowers[0].join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert!(fs::read_to_string(lowers[0].join("etc/passwd"))
        .unwrap()
        .starts_with("root:"));
    assert_eq!(
        binds,
        vec![(PathBuf::from("/usr"), PathBuf::from("/usr"), true)]
    );
    assert_eq!(cfg.cmd, Some(vec!["/bin/sh".to_string()]));
    assert_eq!(
        s.builtin("ferrocloud/host-userland", "latest"),
        Some(s.userland_digest().clone())
    );
    let store = fc_store::SqliteStore::in_memory().unwrap();
    let scope = fc_store::Scope::new("000000000000", "us-east-1");
    assert_eq!(
        s.resolve_image(&store, &scope, "ferrocloud/host-userland:latest")
            .unwrap()
            .as_ref(),
        Some(s.userland_digest())
    );
    assert_eq!(
        s.resolve_image(&store, &scope, "localhost:4566/nope:v1")
            .unwrap(),
        None
    );
    // Deterministic across opens.
    let again = ImageStore::open(&dir).unwrap();
    assert_eq!(again.userland_digest(), s.userland_digest());
    fs::remove_dir_all(dir).unwrap();
}
