//! Object content: small bodies (at most [`INLINE_MAX`] bytes) are kept in memory and end up
//! inline in the object's record (one durable store write); larger ones stream into a temp file
//! while MD5 and the requested checksums are computed on another thread, get fsynced and are
//! renamed into place only when complete, so a crash mid-upload never leaves a half object
//! visible. Content files are named by a random id (reference-counted in the store, so copies
//! share one file); files of older versions are named by their SHA-256, which works the same.
//! Also the decoder of the `aws-chunked` framing current SDKs send.

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

/// Bodies up to this size are stored inline in their object record.
pub const INLINE_MAX: usize = 64 * 1024;

/// Running digests over a body.
pub struct Hashes {
    md5: Md5,
    sha256: Option<Sha256>,
    /// CRC32 and CRC32C, when computed.
    crcs: Option<(crc32fast::Hasher, u32)>,
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
    /// Whether `crc32` and `crc32c` were computed.
    pub crcs: bool,
    pub sha1: Option<Vec<u8>>,
    pub size: u64,
}

impl Digests {
    /// The base64 checksum of `algo`, if computed.
    pub fn checksum(&self, algo: Algo) -> Option<String> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Some(match algo {
            Algo::Crc32 | Algo::Crc32c if !self.crcs => return None,
            Algo::Crc32 => b64(&self.crc32.to_be_bytes()),
            Algo::Crc32c => b64(&self.crc32c.to_be_bytes()),
            Algo::Sha1 => b64(self.sha1.as_ref()?),
            Algo::Sha256 if self.sha256.is_empty() => return None,
            Algo::Sha256 => b64(&self.sha256),
        })
    }

    /// `"<md5 hex>"` as S3 quotes single-part ETags.
    pub fn etag(&self) -> String {
        format!("\"{}\"", hex::encode(self.md5))
    }
}

impl Hashes {
    /// Every digest (SHA-1 only when asked).
    pub fn new(with_sha1: bool) -> Self {
        Hashes::select(with_sha1, true)
    }
    /// MD5 always; SHA-1 when asked; SHA-256 and the CRCs only when `full` (otherwise
    /// `Digests::sha256` is empty and [`Digests::checksum`] has none of them).
    pub fn select(with_sha1: bool, full: bool) -> Self {
        Hashes {
            md5: Md5::new(),
            sha256: full.then(Sha256::new),
            crcs: full.then(|| (crc32fast::Hasher::new(), 0)),
            sha1: with_sha1.then(Sha1::new),
            size: 0,
        }
    }
    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(s) = self.sha256.as_mut() {
            s.update(data);
        }
        if let Some((crc32, crc32c)) = self.crcs.as_mut() {
            crc32.update(data);
            *crc32c = crc32c::crc32c_append(*crc32c, data);
        }
        if let Some(s) = self.sha1.as_mut() {
            s.update(data);
        }
        self.size += data.len() as u64;
    }
    pub fn finish(self) -> Digests {
        let sha256 = self
            .sha256
            .map(|s| s.finalize().to_vec())
            .unwrap_or_default();
        Digests {
            md5: self.md5.finalize().into(),
            sha256_hex: hex::encode(&sha256),
            sha256,
            crcs: self.crcs.is_some(),
            crc32: self
                .crcs
                .as_ref()
                .map(|(c, _)| c.clone().finalize())
                .unwrap_or(0),
            crc32c: self.crcs.map(|(_, c)| c).unwrap_or(0),
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

/// A body received and hashed, not yet visible: in memory (small bodies, when allowed) or in a
/// temp file.
#[derive(Debug)]
pub struct Staged {
    /// The temp file; `None` when the body is in `data`.
    pub tmp: Option<PathBuf>,
    /// The whole body, when it is small enough to be stored inline.
    pub data: Option<Vec<u8>>,
    pub digests: Digests,
    /// Trailers of an aws-chunked body.
    pub trailers: Vec<(String, String)>,
}

/// Content files under `<data_dir>/s3/`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

fn body_err(e: fc_protocol::body::BodyError) -> ApiError {
    match e {
        fc_protocol::body::BodyError::TooLarge(_) => ApiError::client(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
        ),
        other => ApiError::client("IncompleteBody", other.to_string()),
    }
}

/// Bytes written between two early writebacks of a large body.
const EARLY_SYNC: usize = 8 << 20;

/// Chunks in flight between the receiving task and the hashing and writing threads.
const PIPE_DEPTH: usize = 32;

/// A temp file being written by one blocking thread while another hashes the same chunks, so
/// MD5 (the bound of large uploads) runs alongside the copy into the file.
struct FilePipe {
    to_hasher: tokio::sync::mpsc::Sender<bytes::Bytes>,
    to_writer: tokio::sync::mpsc::Sender<bytes::Bytes>,
    hasher: tokio::task::JoinHandle<Hashes>,
    writer: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl FilePipe {
    fn start(tmp: &Path, hashes: Hashes) -> Result<FilePipe, ApiError> {
        let file = std::fs::File::create(tmp).map_err(|e| io_err(tmp, e))?;
        let (to_hasher, mut hrx) = tokio::sync::mpsc::channel::<bytes::Bytes>(PIPE_DEPTH);
        let (to_writer, mut wrx) = tokio::sync::mpsc::channel::<bytes::Bytes>(PIPE_DEPTH);
        let hasher = tokio::task::spawn_blocking(move || {
            let mut hashes = hashes;
            while let Some(b) = hrx.blocking_recv() {
                hashes.update(&b);
            }
            hashes
        });
        let writer = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut file = file;
            std::thread::scope(|sc| -> std::io::Result<()> {
                // Writeback starts while the body still arrives: past every EARLY_SYNC bytes a
                // helper thread (started at the first) fdatasyncs what is written so far, so
                // the final fsync waits only for the tail. Its errors surface in that fsync.
                let mut syncer: Option<std::sync::mpsc::SyncSender<()>> = None;
                let mut unsynced = 0usize;
                while let Some(b) = wrx.blocking_recv() {
                    file.write_all(&b)?;
                    unsynced += b.len();
                    if unsynced >= EARLY_SYNC {
                        unsynced = 0;
                        if syncer.is_none() {
                            if let Ok(f) = file.try_clone() {
                                let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
                                sc.spawn(move || {
                                    while rx.recv().is_ok() {
                                        let _ = f.sync_data();
                                    }
                                });
                                syncer = Some(tx);
                            }
                        }
                        if let Some(tx) = &syncer {
                            // Full: a sync is still running and will cover this data too.
                            let _ = tx.try_send(());
                        }
                    }
                }
                Ok(())
            })?;
            file.sync_all()
        });
        Ok(FilePipe {
            to_hasher,
            to_writer,
            hasher,
            writer,
        })
    }

    async fn send(&self, b: bytes::Bytes, tmp: &Path) -> Result<(), ApiError> {
        let gone = || ApiError::internal(format!("writing {} stopped", tmp.display()));
        self.to_hasher.send(b.clone()).await.map_err(|_| gone())?;
        self.to_writer.send(b).await.map_err(|_| gone())
    }

    /// Wait for the file to be written and fsynced; the digests.
    async fn finish(self, tmp: &Path) -> Result<Hashes, ApiError> {
        let FilePipe {
            to_hasher,
            to_writer,
            hasher,
            writer,
        } = self;
        drop((to_hasher, to_writer));
        let joined = |e: tokio::task::JoinError| ApiError::internal(e.to_string());
        writer.await.map_err(joined)?.map_err(|e| io_err(tmp, e))?;
        hasher.await.map_err(joined)
    }
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

    /// Where the content with this id lives.
    pub fn path(&self, hash: &str) -> PathBuf {
        let shard = hash.get(..2).unwrap_or("00");
        self.root.join("objects").join(shard).join(hash)
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Every content id on disk (for the start-up sweep of unreferenced files).
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

    /// Receive `body`, decoding aws-chunked framing when `chunked` (`None`: sniff it). A body
    /// of at most `inline_max` bytes stays in memory ([`Staged::data`]); a larger one streams
    /// into a temp file. SHA-256 and the CRCs are computed only when `full`.
    pub async fn stage(
        &self,
        mut body: BodyIn,
        chunked: Option<bool>,
        with_sha1: bool,
        full: bool,
        inline_max: usize,
    ) -> Result<Staged, ApiError> {
        let mut decoder: Option<ChunkDecoder> = match chunked {
            Some(true) => Some(ChunkDecoder::new()),
            _ => None,
        };
        let mut hashes = Some(Hashes::select(with_sha1, full));
        // Small bodies: kept here until they outgrow `inline_max`.
        let mut held: Vec<bytes::Bytes> = Vec::new();
        let mut held_len = 0usize;
        let mut pipe: Option<(PathBuf, FilePipe)> = None;
        let mut first = true;
        let result: Result<(), ApiError> = async {
            while let Some(chunk) = body.next_chunk().await {
                let chunk = chunk.map_err(body_err)?;
                if first {
                    first = false;
                    if chunked.is_none() && looks_chunked(&chunk) {
                        decoder = Some(ChunkDecoder::new());
                    }
                }
                let data = match decoder.as_mut() {
                    Some(d) => {
                        let mut buf: Vec<u8> = Vec::with_capacity(chunk.len());
                        d.feed(&chunk, &mut |b| buf.extend_from_slice(b))?;
                        bytes::Bytes::from(buf)
                    }
                    None => chunk,
                };
                if data.is_empty() {
                    continue;
                }
                if pipe.is_none() && held_len + data.len() <= inline_max {
                    held_len += data.len();
                    held.push(data);
                    continue;
                }
                if pipe.is_none() {
                    let tmp = self.tmp_path();
                    let h = hashes.take().expect("hashes move to the pipe once");
                    let p = FilePipe::start(&tmp, h)?;
                    for b in held.drain(..) {
                        p.send(b, &tmp).await?;
                    }
                    pipe = Some((tmp, p));
                }
                if let Some((tmp, p)) = pipe.as_ref() {
                    p.send(data, tmp).await?;
                }
            }
            if let Some(d) = decoder.as_mut() {
                d.finish()?;
            }
            Ok(())
        }
        .await;
        let trailers = decoder.map(|d| d.trailers).unwrap_or_default();
        match (result, pipe) {
            (Err(e), Some((tmp, p))) => {
                drop(p.finish(&tmp).await);
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
            (Err(e), None) => Err(e),
            (Ok(()), Some((tmp, p))) => match p.finish(&tmp).await {
                Ok(h) => Ok(Staged {
                    tmp: Some(tmp),
                    data: None,
                    digests: h.finish(),
                    trailers,
                }),
                Err(e) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    Err(e)
                }
            },
            (Ok(()), None) => {
                let mut h = hashes.take().expect("no pipe took the hashes");
                let mut data = Vec::with_capacity(held_len);
                for b in &held {
                    h.update(b);
                    data.extend_from_slice(b);
                }
                if inline_max == 0 {
                    // The caller wants a file even for an empty body.
                    let mut staged = self.stage_bytes(&data, with_sha1).await?;
                    staged.trailers = trailers;
                    return Ok(staged);
                }
                Ok(Staged {
                    tmp: None,
                    data: Some(data),
                    digests: h.finish(),
                    trailers,
                })
            }
        }
    }

    /// Write `data` (part of an inline object) into a new staged file.
    pub async fn stage_bytes(&self, data: &[u8], with_sha1: bool) -> Result<Staged, ApiError> {
        let tmp = self.tmp_path();
        let mut h = Hashes::new(with_sha1);
        h.update(data);
        let written = async {
            let mut f = tokio::fs::File::create(&tmp).await?;
            f.write_all(data).await?;
            f.flush().await?;
            f.sync_all().await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_err(&tmp, e));
        }
        Ok(Staged {
            tmp: Some(tmp),
            data: None,
            digests: h.finish(),
            trailers: Vec::new(),
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
            tmp: Some(tmp),
            data: None,
            digests: hashes.finish(),
            trailers: Vec::new(),
        })
    }

    /// Move a staged file into place under a new content id (the id).
    pub fn commit(&self, staged: &Staged) -> Result<String, ApiError> {
        let Some(tmp) = staged.tmp.as_deref() else {
            return Err(ApiError::internal("no staged file to commit"));
        };
        let hash = uuid::Uuid::new_v4().simple().to_string();
        let dest = self.path(&hash);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        std::fs::rename(tmp, &dest).map_err(|e| io_err(&dest, e))?;
        if let Some(parent) = dest.parent() {
            if let Ok(dir) = std::fs::File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok(hash)
    }

    /// Throw a staged file away.
    pub fn discard(&self, staged: &Staged) {
        if let Some(tmp) = &staged.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }

    /// Delete a content file no version references any more.
    pub fn remove(&self, hash: &str) {
        let _ = std::fs::remove_file(self.path(hash));
    }
}
