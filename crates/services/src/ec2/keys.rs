//! Key material for EC2 key pairs: generation (by running OpenSSH's `ssh-keygen` in a private
//! temporary directory), OpenSSH and RFC 4716 public keys, the minimal DER needed for AWS
//! fingerprints (PKCS#8 private keys, SubjectPublicKeyInfo), and PuTTY's PPK v3 format.
//!
//! Fingerprints as AWS computes them: RSA keys AWS created: SHA-1 of the PKCS#8 DER private
//! key; imported RSA keys: MD5 of the SubjectPublicKeyInfo DER; ed25519: base64 SHA-256 of the
//! OpenSSH public key blob. All colon-separated lowercase hex except ed25519.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::Digest as _;
use std::path::PathBuf;
use std::process::Command;

/// Why key material could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot run ssh-keygen: {0}")]
    Spawn(std::io::Error),
    #[error("ssh-keygen failed: {0}")]
    Keygen(String),
    #[error("cannot use temporary directory {path}: {source}")]
    Temp {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed key: {0}")]
    Malformed(&'static str),
}

/// Key algorithms EC2 supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ed25519,
}

impl KeyKind {
    pub fn api_name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "rsa",
            KeyKind::Ed25519 => "ed25519",
        }
    }

    fn ssh_name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "ssh-rsa",
            KeyKind::Ed25519 => "ssh-ed25519",
        }
    }
}

/// A freshly generated key pair.
#[derive(Debug, Clone)]
pub struct Generated {
    /// PEM text: `BEGIN RSA PRIVATE KEY` (PKCS#1) or `BEGIN OPENSSH PRIVATE KEY`.
    pub private_pem: String,
    /// The OpenSSH public key blob.
    pub public_blob: Vec<u8>,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Generate a key pair with `ssh-keygen` (RSA 2048 in PEM, or ed25519).
pub fn generate(kind: KeyKind) -> Result<Generated, KeyError> {
    let dir = std::env::temp_dir().join(format!("fc-ec2-key-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).map_err(|source| KeyError::Temp {
        path: dir.clone(),
        source,
    })?;
    let tmp = TempDir(dir);
    let path = tmp.0.join("key");
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-q").arg("-N").arg("").arg("-C").arg("");
    match kind {
        KeyKind::Rsa => cmd.args(["-t", "rsa", "-b", "2048", "-m", "PEM"]),
        KeyKind::Ed25519 => cmd.args(["-t", "ed25519"]),
    };
    let out = cmd.arg("-f").arg(&path).output().map_err(KeyError::Spawn)?;
    if !out.status.success() {
        return Err(KeyError::Keygen(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).map_err(|source| KeyError::Temp { path: p, source })
    };
    let private_pem = read(path.clone())?;
    let public = read(tmp.0.join("key.pub"))?;
    let (_, public_blob) = parse_public_key(public.as_bytes())?;
    Ok(Generated {
        private_pem,
        public_blob,
    })
}

// ---- SSH wire encoding ----

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// The length-prefixed strings of an SSH blob, in order.
fn ssh_strings(mut b: &[u8]) -> Result<Vec<&[u8]>, KeyError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(KeyError::Malformed("truncated ssh string"));
        }
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if b.len() < 4 + n {
            return Err(KeyError::Malformed("truncated ssh string"));
        }
        out.push(&b[4..4 + n]);
        b = &b[4 + n..];
    }
    Ok(out)
}

/// The kind of a public key blob, checked: RSA of 1024, 2048 or 4096 bits (as AWS accepts),
/// or a 32-byte ed25519 key.
pub fn blob_kind(blob: &[u8]) -> Result<KeyKind, KeyError> {
    let parts = ssh_strings(blob)?;
    match parts.as_slice() {
        [alg, e, n] if *alg == b"ssh-rsa" => {
            let n = strip_zeros(n);
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if e.is_empty() || !matches!(bits, 1024 | 2048 | 4096) {
                return Err(KeyError::Malformed("unsupported RSA key length"));
            }
            Ok(KeyKind::Rsa)
        }
        [alg, k] if *alg == b"ssh-ed25519" && k.len() == 32 => Ok(KeyKind::Ed25519),
        _ => Err(KeyError::Malformed(
            "not an ssh-rsa or ssh-ed25519 public key",
        )),
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[i..]
}

/// Read an OpenSSH (`ssh-rsa AAAA... comment`) or RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY ----`)
/// public key, or a bare base64 blob.
pub fn parse_public_key(material: &[u8]) -> Result<(KeyKind, Vec<u8>), KeyError> {
    let text = std::str::from_utf8(material).map_err(|_| KeyError::Malformed("not text"))?;
    let text = text.trim();
    let b64: String = if text.starts_with("---- BEGIN SSH2 PUBLIC KEY ----") {
        let mut body = String::new();
        let mut continued = false;
        for line in text.lines().skip(1) {
            let line = line.trim();
            if line.starts_with("---- END SSH2 PUBLIC KEY ----") {
                break;
            }
            if continued || line.contains(':') {
                continued = line.ends_with('\\');
                continue;
            }
            body.push_str(line);
        }
        body
    } else {
        let mut fields = text.split_whitespace();
        let first = fields.next().ok_or(KeyError::Malformed("empty key"))?;
        if first.starts_with("ssh-") {
            fields
                .next()
                .ok_or(KeyError::Malformed("missing key data"))?
                .to_string()
        } else {
            first.to_string()
        }
    };
    let blob = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| KeyError::Malformed("key data is not base64"))?;
    let kind = blob_kind(&blob)?;
    if let Some(alg) = text
        .split_whitespace()
        .next()
        .filter(|f| f.starts_with("ssh-"))
    {
        if alg != kind.ssh_name() {
            return Err(KeyError::Malformed("key type does not match key data"));
        }
    }
    Ok((kind, blob))
}

/// `ssh-rsa AAAA...` with an optional comment.
pub fn openssh_line(blob: &[u8], comment: &str) -> Result<String, KeyError> {
    let kind = blob_kind(blob)?;
    let mut s = format!("{} {}", kind.ssh_name(), STANDARD.encode(blob));
    if !comment.is_empty() {
        s.push(' ');
        s.push_str(comment);
    }
    Ok(s)
}

// ---- DER ----

fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// One DER element at the start of `b`: (tag, content, rest).
fn der_read(b: &[u8]) -> Result<(u8, &[u8], &[u8]), KeyError> {
    let bad = KeyError::Malformed("bad DER");
    if b.len() < 2 {
        return Err(bad);
    }
    let tag = b[0];
    let (len, hdr) = if b[1] < 0x80 {
        (b[1] as usize, 2)
    } else {
        let k = (b[1] & 0x7f) as usize;
        if k == 0 || k > 4 || b.len() < 2 + k {
            return Err(bad);
        }
        let len = b[2..2 + k]
            .iter()
            .fold(0usize, |a, x| (a << 8) | *x as usize);
        (len, 2 + k)
    };
    if b.len() < hdr + len {
        return Err(bad);
    }
    Ok((tag, &b[hdr..hdr + len], &b[hdr + len..]))
}

const RSA_ALGORITHM: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// The base64 body of a PEM block.
pub fn pem_body(pem: &str) -> Result<Vec<u8>, KeyError> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':'))
        .map(str::trim)
        .collect();
    STANDARD
        .decode(body.as_bytes())
        .map_err(|_| KeyError::Malformed("PEM body is not base64"))
}

/// PKCS#1 `RSAPrivateKey` DER wrapped as PKCS#8 `PrivateKeyInfo`.
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    let mut content = vec![0x02, 0x01, 0x00];
    content.extend_from_slice(RSA_ALGORITHM);
    content.extend(der(0x04, pkcs1));
    der(0x30, &content)
}

/// SubjectPublicKeyInfo DER of an `ssh-rsa` blob.
fn rsa_spki(blob: &[u8]) -> Result<Vec<u8>, KeyError> {
    let parts = ssh_strings(blob)?;
    let [_, e, n] = parts.as_slice() else {
        return Err(KeyError::Malformed("not an RSA key"));
    };
    let mut seq = der(0x02, n);
    seq.extend(der(0x02, e));
    let mut bits = vec![0u8];
    bits.extend(der(0x30, &seq));
    let mut content = RSA_ALGORITHM.to_vec();
    content.extend(der(0x03, &bits));
    Ok(der(0x30, &content))
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint of a key AWS generated.
pub fn fingerprint_created(kind: KeyKind, g: &Generated) -> Result<String, KeyError> {
    match kind {
        KeyKind::Rsa => {
            let pkcs8 = pkcs1_to_pkcs8(&pem_body(&g.private_pem)?);
            Ok(colon_hex(&sha1::Sha1::digest(&pkcs8)))
        }
        KeyKind::Ed25519 => Ok(ed25519_fingerprint(&g.public_blob)),
    }
}

/// The fingerprint of an imported public key.
pub fn fingerprint_imported(kind: KeyKind, blob: &[u8]) -> Result<String, KeyError> {
    match kind {
        KeyKind::Rsa => Ok(colon_hex(&md5::Md5::digest(rsa_spki(blob)?))),
        KeyKind::Ed25519 => Ok(ed25519_fingerprint(blob)),
    }
}

fn ed25519_fingerprint(blob: &[u8]) -> String {
    STANDARD.encode(sha2::Sha256::digest(blob))
}

// ---- PuTTY PPK v3 ----

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha2::Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = sha2::Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The private blob PuTTY stores: RSA `d, p, q, iqmp`; ed25519 the 32-byte seed.
fn ppk_private_blob(kind: KeyKind, private_pem: &str) -> Result<Vec<u8>, KeyError> {
    let der_bytes = pem_body(private_pem)?;
    let mut out = Vec::new();
    match kind {
        KeyKind::Rsa => {
            let (_, seq, _) = der_read(&der_bytes)?;
            let mut ints = Vec::new();
            let mut rest = seq;
            while !rest.is_empty() {
                let (tag, content, next) = der_read(rest)?;
                if tag != 0x02 {
                    return Err(KeyError::Malformed("RSA key holds a non-integer"));
                }
                ints.push(content);
                rest = next;
            }
            // version, n, e, d, p, q, dp, dq, qinv
            let [_, _, _, d, p, q, _, _, qinv] = ints.as_slice() else {
                return Err(KeyError::Malformed(
                    "RSA key has the wrong number of fields",
                ));
            };
            for x in [d, p, q, qinv] {
                put_string(&mut out, x);
            }
        }
        KeyKind::Ed25519 => {
            let magic = b"openssh-key-v1\0";
            let rest = der_bytes
                .strip_prefix(magic.as_slice())
                .ok_or(KeyError::Malformed("not an OpenSSH private key"))?;
            // cipher, kdf, kdf options, key count (u32), public blob, private section
            let take = ssh_string_at;
            let mut pos = 0;
            for _ in 0..3 {
                let (_, used) = take(&rest[pos..])?;
                pos += used;
            }
            pos += 4;
            let (_, used) = take(
                rest.get(pos..)
                    .ok_or(KeyError::Malformed("truncated key"))?,
            )?;
            pos += used;
            let (private, _) = take(
                rest.get(pos..)
                    .ok_or(KeyError::Malformed("truncated key"))?,
            )?;
            // check1, check2, key type, public key, private key (seed || public), comment
            let p = private
                .get(8..)
                .ok_or(KeyError::Malformed("truncated key"))?;
            let (_, u1) = take(p)?;
            let (_, u2) = take(&p[u1..])?;
            let (secret, _) = take(&p[u1 + u2..])?;
            let seed = secret
                .get(..32)
                .ok_or(KeyError::Malformed("short ed25519 secret"))?;
            put_string(&mut out, seed);
        }
    }
    Ok(out)
}

/// One SSH string at the start of `b`: (its bytes, bytes consumed).
fn ssh_string_at(b: &[u8]) -> Result<(Vec<u8>, usize), KeyError> {
    if b.len() < 4 {
        return Err(KeyError::Malformed("truncated ssh string"));
    }
    let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let s = b
        .get(4..4 + n)
        .ok_or(KeyError::Malformed("truncated ssh string"))?;
    Ok((s.to_vec(), 4 + n))
}

fn b64_lines(bytes: &[u8]) -> Vec<String> {
    let s = STANDARD.encode(bytes);
    s.as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

/// The key pair in PuTTY's PPK version 3 format, unencrypted.
pub fn to_ppk(kind: KeyKind, g: &Generated, comment: &str) -> Result<String, KeyError> {
    let private = ppk_private_blob(kind, &g.private_pem)?;
    let alg = kind.ssh_name();
    let mut mac_data = Vec::new();
    put_string(&mut mac_data, alg.as_bytes());
    put_string(&mut mac_data, b"none");
    put_string(&mut mac_data, comment.as_bytes());
    put_string(&mut mac_data, &g.public_blob);
    put_string(&mut mac_data, &private);
    let mac = hex::encode(hmac_sha256(b"", &mac_data));
    let public_lines = b64_lines(&g.public_blob);
    let private_lines = b64_lines(&private);
    let mut s = format!(
        "PuTTY-User-Key-File-3: {alg}\nEncryption: none\nComment: {comment}\nPublic-Lines: {}\n",
        public_lines.len()
    );
    for l in &public_lines {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(&format!("Private-Lines: {}\n", private_lines.len()));
    for l in &private_lines {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(&format!("Private-MAC: {mac}\n"));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rsa_generation_and_fingerprints() {
        let g = generate(KeyKind::Rsa).unwrap();
        assert!(g.private_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let fp = fingerprint_created(KeyKind::Rsa, &g).unwrap();
        assert_eq!(fp.len(), 59);
        let imported = fingerprint_imported(KeyKind::Rsa, &g.public_blob).unwrap();
        assert_eq!(imported.len(), 47);
        let ppk = to_ppk(KeyKind::Rsa, &g, "k").unwrap();
        assert!(ppk.starts_with("PuTTY-User-Key-File-3: ssh-rsa\n"));
        assert!(ppk.contains("Private-MAC: "));
        let line = openssh_line(&g.public_blob, "").unwrap();
        let (kind, blob) = parse_public_key(line.as_bytes()).unwrap();
        assert_eq!(kind, KeyKind::Rsa);
        assert_eq!(blob, g.public_blob);
    }

    #[test]
    fn ed25519_generation() {
        let g = generate(KeyKind::Ed25519).unwrap();
        assert!(g
            .private_pem
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let fp = fingerprint_created(KeyKind::Ed25519, &g).unwrap();
        assert!(fp.ends_with('='));
        let ppk = to_ppk(KeyKind::Ed25519, &g, "k").unwrap();
        assert!(ppk.contains("Private-Lines: 1\n"));
    }

    #[test]
    fn public_key_formats() {
        assert!(parse_public_key(b"ssh-rsa notbase64!").is_err());
        assert!(parse_public_key(b"").is_err());
        let g = generate(KeyKind::Ed25519).unwrap();
        let b64 = STANDARD.encode(&g.public_blob);
        let rfc = format!(
            "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"a long \\\n comment\"\n{b64}\n---- END SSH2 PUBLIC KEY ----\n"
        );
        let (kind, blob) = parse_public_key(rfc.as_bytes()).unwrap();
        assert_eq!(kind, KeyKind::Ed25519);
        assert_eq!(blob, g.public_blob);
        let mismatched = format!("ssh-rsa {b64}");
        assert!(parse_public_key(mismatched.as_bytes()).is_err());
    }
}
