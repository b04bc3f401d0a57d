//! Request and response bodies that travel beside the operation value, for operations whose
//! payload is a stream (S3 objects, registry blobs): they are never held whole in memory.
//!
//! The server pumps the HTTP body into a [`BodyIn`] chunk by chunk; a handler answers with a
//! [`BodyOut`] that the server streams back.

use bytes::Bytes;
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    #[error("request body could not be read: {0}")]
    Read(String),
}

/// A request body arriving in chunks.
#[derive(Debug)]
pub struct BodyIn {
    rx: Option<mpsc::Receiver<Result<Bytes, BodyError>>>,
    first: Option<Bytes>,
    /// `Content-Length` as sent, if any.
    pub content_length: Option<u64>,
}

/// The sending half the server feeds.
pub type BodySender = mpsc::Sender<Result<Bytes, BodyError>>;

impl BodyIn {
    /// A body that is already in memory.
    pub fn from_bytes(bytes: Bytes) -> Self {
        BodyIn {
            rx: None,
            content_length: Some(bytes.len() as u64),
            first: (!bytes.is_empty()).then_some(bytes),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::from_bytes(Bytes::new())
    }

    /// A body fed through a channel of `capacity` chunks.
    pub fn channel(content_length: Option<u64>, capacity: usize) -> (BodySender, BodyIn) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            tx,
            BodyIn {
                rx: Some(rx),
                first: None,
                content_length,
            },
        )
    }

    /// The next chunk; `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        if let Some(b) = self.first.take() {
            return Some(Ok(b));
        }
        self.rx.as_mut()?.recv().await
    }

    /// The whole body, refusing more than `limit` bytes.
    pub async fn collect(mut self, limit: u64) -> Result<Bytes, BodyError> {
        let mut out: Vec<u8> = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            let chunk = chunk?;
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(BodyError::TooLarge(limit));
            }
            if out.is_empty() && self.rx.is_none() {
                return Ok(chunk);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }
}

/// A response body a handler hands back beside its output value.
#[derive(Debug)]
pub enum BodyOut {
    Bytes(Bytes),
    /// `len` bytes of a file starting at `offset`.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
    /// Chunks from a producer, with the total length when known.
    Stream {
        rx: mpsc::Receiver<Result<Bytes, BodyError>>,
        len: Option<u64>,
    },
}

impl BodyOut {
    /// The length when known in advance.
    pub fn len(&self) -> Option<u64> {
        match self {
            BodyOut::Bytes(b) => Some(b.len() as u64),
            BodyOut::File { len, .. } => Some(*len),
            BodyOut::Stream { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn channel_and_limit() {
        let (tx, body) = BodyIn::channel(Some(6), 4);
        tokio::spawn(async move {
            for part in ["ab", "cd", "ef"] {
                let _ = tx.send(Ok(Bytes::from(part))).await;
            }
        });
        assert_eq!(body.collect(10).await, Ok(Bytes::from("abcdef")));
        let (tx, body) = BodyIn::channel(None, 4);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Bytes::from(vec![0u8; 8]))).await;
        });
        assert_eq!(body.collect(4).await, Err(BodyError::TooLarge(4)));
        assert_eq!(
            BodyIn::from_bytes(Bytes::from("x")).collect(1).await,
            Ok(Bytes::from("x"))
        );
    }
}
