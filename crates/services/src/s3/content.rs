//! Object content on disk, addressed by the SHA-256 of the bytes: bodies stream into a temp file
//! while MD5, SHA-256 and the requested checksums are computed, get fsynced and are renamed into
//! place only when complete, so a crash mid-upload never leaves a half object visible. Also the
//! decoder of the `aws-chunked` framing current SDKs send.

use base64::Engine;
use fc_protocol::{ApiError, BodyIn};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Why a body could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io_err(path: &Path, e: std::io::Error) -> ApiError {
    let e = ContentError::Io {
        path: path.display().to_string(),
        source: e,
    };
    ApiError::internal(e.to_string())
}

/// Checksum algorithms S3 validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
}

impl Algo {
    pub fn parse(s: &str) -> Option<Algo> {
        Some(match s.to_ascii_uppercase().as_str() {
            "CRC32" => Algo::Crc32,
            "CRC32C" => Algo::Crc32c,
            "SHA1" => Algo::Sha1,
            "SHA256" => Algo::Sha256,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Algo::Crc32 => "CRC32",
            Algo::Crc32c => "CRC32C",
            Algo::Sha1 => "SHA1",
            Algo::Sha256 => "SHA256",
        }
    }
    /// The operation member carrying this checksum (`ChecksumCRC32`).
    pub fn member(self) -> &'static str {
        match self {
            Algo::Crc32 => "ChecksumCRC32",
            Algo::Crc32c => "ChecksumCRC32C",
            Algo::Sha1 => "ChecksumSHA1",
            Algo::Sha256 => "ChecksumSHA256",
        }
    }
    /// The header / trailer name (`x-amz-checksum-crc32`).
    pub fn header(self) -> String {
        format!("x-amz-checksum-{}", self.name().to_ascii_lowercase())
    }
    pub const ALL: [Algo; 4] = [Algo::Crc32, Algo::Crc32c, Algo::Sha1, Algo::Sha256];
}

/// Running digests over a body.
pub struct Hashes {
    md5: Md5,
    sha256: Sha256,
    crc32: crc32fast::Hasher,
    crc32c: u32,
    sha1: Option<Sha1>,
    pub size: u64,
}

/// Final digests of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: [u8; 16],
    pub sha256_hex: String,
    pub sha256: Vec<u8>,
    pub crc32: u32,
    pub crc32c: u32,
    pub sha1: Option<Vec<u8>>,
    pub size: u64,
}

impl Digests {
    /// The base64 checksum of `algo`, if computed.
    pub fn checksum(&self, algo: Algo) -> Option<String> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Some(match algo {
            Algo::Crc32 => b64(&self.crc32.to_be_bytes()),
            Algo::Crc32c => b64(&self.crc32c.to_be_bytes()),
            Algo::Sha1 => b64(self.sha1.as_ref()?),
            Algo::Sha256 => b64(&self.sha256),
        })
    }

    /// `"<md5 hex>"` as S3 quotes single-part ETags.
    pub fn etag(&self) -> String {
        format!("\"{}\"", hex::encode(self.md5))
    }
}

impl Hashes {
    pub fn new(with_sha1: bool) -> Self {
        Hashes {
            md5: Md5::new(),
            sha256: Sha256::new(),
            crc32: crc32fast::Hasher::new(),
            crc32c: 0,
            sha1: with_sha1.then(Sha1::new),
            size: 0,
        }
    }
    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.sha256.update(data);
        self.crc32.update(data);
        self.crc32c = crc32c::crc32c_append(self.crc32c, data);
        if let Some(s) = self.sha1.as_mut() {
            s.update(data);
        }
        self.size += data.len() as u64;
    }
    pub fn finish(self) -> Digests {
        let sha256 = self.sha256.finalize().to_vec();
        Digests {
            md5: self.md5.finalize().into(),
            sha256_hex: hex::encode(&sha256),
            sha256,
            crc32: self.crc32.finalize(),
            crc32c: self.crc32c,
            sha1: self.sha1.map(|s| s.finalize().to_vec()),
            size: self.size,
        }
    }
}

/// The multipart ETag: MD5 of the concatenated binary part MD5s, then `-N`.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for m in part_md5s {
        h.update(m);
    }
    format!("\"{}-{}\"", hex::encode(h.finalize()), part_md5s.len())
}

/// Parse a quoted or bare MD5 hex ETag into bytes.
pub fn etag_md5(etag: &str) -> Option<[u8; 16]> {
    let s = etag.trim().trim_matches('"');
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

// ------------------------------------------------------------------------------------------
// aws-chunked framing.

#[derive(Debug, Clone, PartialEq, Eq)]
enum ChunkState {
    Header,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

/// Decodes `aws-chunked` bodies incrementally: `<hex-size>[;chunk-signature=<sig>]\r\n<data>\r\n`
/// repeated, a final zero-size chunk, then optional trailer lines and an empty line.
#[derive(Debug)]
pub struct ChunkDecoder {
    state: ChunkState,
    line: Vec<u8>,
    /// `name: value` trailer lines seen after the last chunk (names lowercased).
    pub trailers: Vec<(String, String)>,
    /// Chunk signatures in order (for verification in strict mode).
    pub signatures: Vec<String>,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn framing(msg: &str) -> ApiError {
    ApiError::client("IncompleteBody", format!("invalid aws-chunked body: {msg}"))
}

impl ChunkDecoder {
    pub fn new() -> Self {
        ChunkDecoder {
            state: ChunkState::Header,
            line: Vec::new(),
            trailers: Vec::new(),
            signatures: Vec::new(),
        }
    }

    /// Feed encoded bytes; decoded data goes to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut dyn FnMut(&[u8])) -> Result<(), ApiError> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Data(left) => {
                    let n = (left as usize).min(input.len());
                    out(&input[..n]);
                    input = &input[n..];
                    self.state = if left as usize == n {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n as u64)
                    };
                }
                ChunkState::Done => {
                    // Tolerate trailing CR/LF noise only.
                    if input.iter().any(|b| *b != b'\r' && *b != b'\n') {
                        return Err(framing("data after the final chunk"));
                    }
                    return Ok(());
                }
                _ => {
                    let Some(pos) = input.iter().position(|b| *b == b'\n') else {
                        self.line.extend_from_slice(input);
                        if self.line.len() > 64 * 1024 {
                            return Err(framing("line too long"));
                        }
                        return Ok(());
                    };
                    self.line.extend_from_slice(&input[..pos]);
                    input = &input[pos + 1..];
                    let mut line = std::mem::take(&mut self.line);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    self.line_done(&line)?;
                }
            }
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8]) -> Result<(), ApiError> {
        let text = std::str::from_utf8(line).map_err(|_| framing("non-UTF-8 framing"))?;
        match self.state {
            ChunkState::Header => {
                let (size, ext) = match text.split_once(';') {
                    Some((s, e)) => (s, Some(e)),
                    None => (text, None),
                };
                let size = u64::from_str_radix(size.trim(), 16)
                    .map_err(|_| framing(&format!("bad chunk size {size:?}")))?;
                if let Some(sig) = ext.and_then(|e| e.trim().strip_prefix("chunk-signature=")) {
                    self.signatures.push(sig.to_string());
                }
                self.state = if size == 0 {
                    ChunkState::Trailer
                } else {
                    ChunkState::Data(size)
                };
            }
            ChunkState::DataEnd => {
                if !text.is_empty() {
                    return Err(framing("chunk data longer than its size"));
                }
                self.state = ChunkState::Header;
            }
            ChunkState::Trailer => {
                if text.is_empty() {
                    self.state = ChunkState::Done;
                } else {
                    let (k, v) = text
                        .split_once(':')
                        .ok_or_else(|| framing("bad trailer line"))?;
                    self.trailers
                        .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            ChunkState::Data(_) | ChunkState::Done => {}
        }
        Ok(())
    }

    /// Check the body ended where it may.
    pub fn finish(&mut self) -> Result<(), ApiError> {
        if !self.line.is_empty() && self.state == ChunkState::Trailer {
            let line = std::mem::take(&mut self.line);
            let line = line.strip_suffix(b"\r").unwrap_or(&line).to_vec();
            self.line_done(&line)?;
        }
        match self.state {
            ChunkState::Trailer | ChunkState::Done => Ok(()),
            _ => Err(framing("the body ended inside a chunk")),
        }
    }

    /// The value of a trailer.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Whether a first body chunk looks like `aws-chunked` framing (used when no header says so).
pub fn looks_chunked(first: &[u8]) -> bool {
    let Some(pos) = first.iter().position(|b| *b == b'\n') else {
        return false;
    };
    let line = &first[..pos];
    let Some(line) = line.strip_suffix(b"\r") else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    let (size, ext) = match text.split_once(';') {
        Some((s, e)) => (s, Some(e)),
        None => (text, None),
    };
    !size.is_empty()
        && size.len() <= 16
        && size.chars().all(|c| c.is_ascii_hexdigit())
        && ext.is_some_and(|e| e.starts_with("chunk-signature="))
}

// ------------------------------------------------------------------------------------------
// The content store.

/// A body written to a temp file, not yet visible.
#[derive(Debug)]
pub struct Staged {
    pub tmp: PathBuf,
    pub digests: Digests,
    /// Trailers of an aws-chunked body.
    pub trailers: Vec<(String, String)>,
}

/// Content files under `<data_dir>/s3/`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Open (and create) the store; removes temp files left by a crash.
    pub fn open(data_dir: &Path) -> Result<ContentStore, ApiError> {
        let root = data_dir.join("s3");
        let tmp = root.join("tmp");
        std::fs::create_dir_all(root.join("objects")).map_err(|e| io_err(&root, e))?;
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        Ok(ContentStore { root })
    }

    /// Where the content with this SHA-256 lives.
    pub fn path(&self, hash: &str) -> PathBuf {
        let shard = hash.get(..2).unwrap_or("00");
        self.root.join("objects").join(shard).join(hash)
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Every content hash on disk (for the start-up sweep of unreferenced files).
    pub fn all_hashes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(shards) = std::fs::read_dir(self.root.join("objects")) else {
            return out;
        };
        for shard in shards.flatten() {
            if let Ok(files) = std::fs::read_dir(shard.path()) {
                for f in files.flatten() {
                    out.push(f.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out
    }

    /// Stream `body` into a temp file, decoding aws-chunked framing when `chunked`.
    pub async fn stage(
        &self,
        mut body: BodyIn,
        chunked: Option<bool>,
        with_sha1: bool,
    ) -> Result<Staged, ApiError> {
        let tmp = self.tmp_path();
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_err(&tmp, e))?;
        let mut hashes = Hashes::new(with_sha1);
        let mut decoder: Option<ChunkDecoder> = match chunked {
            Some(true) => Some(ChunkDecoder::new()),
            _ => None,
        };
        let mut first = true;
        let result: Result<(), ApiError> = async {
            while let Some(chunk) = body.next_chunk().await {
                let chunk = chunk.map_err(|e| match e {
                    fc_protocol::body::BodyError::TooLarge(_) => ApiError::client(
                        "EntityTooLarge",
                        "Your proposed upload exceeds the maximum allowed size",
                    ),
                    other => ApiError::client("IncompleteBody", other.to_string()),
                })?;
                if first {
                    first = false;
                    if chunked.is_none() && looks_chunked(&chunk) {
                        decoder = Some(ChunkDecoder::new());
                    }
                }
                match decoder.as_mut() {
                    Some(d) => {
                        let mut buf: Vec<u8> = Vec::with_capacity(chunk.len());
                        d.feed(&chunk, &mut |b| buf.extend_from_slice(b))?;
                        hashes.update(&buf);
                        file.write_all(&buf).await.map_err(|e| io_err(&tmp, e))?;
                    }
                    None => {
                        hashes.update(&chunk);
                        file.write_all(&chunk).await.map_err(|e| io_err(&tmp, e))?;
                    }
                }
            }
            if let Some(d) = decoder.as_mut() {
                d.finish()?;
            }
            file.flush().await.map_err(|e| io_err(&tmp, e))?;
            file.sync_all().await.map_err(|e| io_err(&tmp, e))?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok(Staged {
            tmp,
            digests: hashes.finish(),
            trailers: decoder.map(|d| d.trailers).unwrap_or_default(),
        })
    }

    /// Copy `len` bytes at `offset` of stored content (or several) into a new staged file.
    pub async fn stage_from(
        &self,
        sources: &[(String, u64, u64)],
        with_sha1: bool,
    ) -> Result<Staged, ApiError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let tmp = self.tmp_path();
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_err(&tmp, e))?;
        let mut hashes = Hashes::new(with_sha1);
        let result: Result<(), ApiError> = async {
            let mut buf = vec![0u8; 1 << 20];
            for (hash, offset, len) in sources {
                let p = self.path(hash);
                let mut f = tokio::fs::File::open(&p).await.map_err(|e| io_err(&p, e))?;
                f.seek(std::io::SeekFrom::Start(*offset))
                    .await
                    .map_err(|e| io_err(&p, e))?;
                let mut left = *len;
                while left > 0 {
                    let want = (left as usize).min(buf.len());
                    let n = f.read(&mut buf[..want]).await.map_err(|e| io_err(&p, e))?;
                    if n == 0 {
                        return Err(ApiError::internal(format!(
                            "content file {} ended early",
                            p.display()
                        )));
                    }
                    hashes.update(&buf[..n]);
                    out.write_all(&buf[..n])
                        .await
                        .map_err(|e| io_err(&tmp, e))?;
                    left -= n as u64;
                }
            }
            out.flush().await.map_err(|e| io_err(&tmp, e))?;
            out.sync_all().await.map_err(|e| io_err(&tmp, e))?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok(Staged {
            tmp,
            digests: hashes.finish(),
            trailers: Vec::new(),
        })
    }

    /// Move a staged file into place under its hash (dropping it when the content exists).
    pub fn commit(&self, staged: &Staged) -> Result<String, ApiError> {
        let hash = staged.digests.sha256_hex.clone();
        let dest = self.path(&hash);
        if dest.exists() {
            let _ = std::fs::remove_file(&staged.tmp);
            return Ok(hash);
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        std::fs::rename(&staged.tmp, &dest).map_err(|e| io_err(&dest, e))?;
        if let Some(parent) = dest.parent() {
            if let Ok(dir) = std::fs::File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok(hash)
    }

    /// Throw a staged file away.
    pub fn discard(&self, staged: &Staged) {
        let _ = std::fs::remove_file(&staged.tmp);
    }

    /// Delete a content file no version references any more.
    pub fn remove(&self, hash: &str) {
        let _ = std::fs::remove_file(self.path(hash));
    }
}
