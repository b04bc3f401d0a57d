//! The built-in image `ferrocloud/host-userland:latest`: a Debian userland (shell, coreutils,
//! python3 — whatever the host has) without any download. Debian 12 is merged-/usr, so the
//! image is one tiny layer — symlinks `bin`, `lib`, `lib64`, `sbin` into `usr/`, the usual
//! empty top-level directories and a minimal `/etc` — plus the host's `/usr` bound read-only
//! (the [`crate::HOST_BINDS_LABEL`] label of its config).

use crate::manifest::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use crate::{Digest, ImageError, ImageStore};
use serde_json::json;
use std::io::Write;

/// Repository name of the built-in image.
pub const REPO: &str = "ferrocloud/host-userland";

const ETC: [(&str, &str); 7] = [
    ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
    ("etc/group", "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"),
    ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    ("etc/resolv.conf", "nameserver 127.0.0.53\n"),
    ("etc/os-release", "PRETTY_NAME=\"ferrocloud host userland (Debian GNU/Linux 12)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n"),
    ("etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"),
    ("etc/shells", "/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash\n"),
];

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// The layer tarball (gzip, deterministic).
pub fn layer() -> Result<Vec<u8>, std::io::Error> {
    let mut b = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("run", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("var", 0o755),
        ("var/tmp", 0o1777),
        ("var/cache", 0o755),
        ("var/log", 0o755),
    ] {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        b.append_data(&mut h, format!("{dir}/"), std::io::empty())?;
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ] {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, link, target)?;
    }
    for (path, content) in ETC {
        let mut h = header(tar::EntryType::Regular, 0o644, content.len() as u64);
        b.append_data(&mut h, path, content.as_bytes())?;
    }
    let tar = b.into_inner()?;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)?;
    gz.finish()
}

/// Write the image into the store; returns its manifest digest.
pub(crate) fn install(store: &ImageStore) -> Result<Digest, ImageError> {
    let io = |e: std::io::Error| ImageError::Io {
        path: "built-in host-userland layer".into(),
        source: e,
    };
    let layer = layer().map_err(io)?;
    let layer_d = store.put_blob(&layer)?;
    let mut tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(layer.as_slice()),
        &mut tar,
    )
    .map_err(io)?;
    let diff_id = Digest::of(&tar);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
            "Labels": {crate::HOST_BINDS_LABEL: "/usr:/usr:ro"}
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id.as_str()]},
        "history": [{"created_by": "ferrocloud built-in host userland"}]
    });
    let config = serde_json::to_vec(&config).map_err(|e| ImageError::Config {
        digest: Digest::of(b""),
        reason: e.to_string(),
    })?;
    let config_d = store.put_blob(&config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_d.as_str(), "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_d.as_str(), "size": layer.len()}],
        "annotations": {"org.opencontainers.image.ref.name": "latest"}
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| ImageError::Config {
        digest: config_d.clone(),
        reason: e.to_string(),
    })?;
    store.put_blob(&manifest)
}
