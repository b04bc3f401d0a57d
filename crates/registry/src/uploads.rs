//! Blob upload sessions: a temporary file in the image store plus a running sha256, so a
//! finished upload is verified without reading it again. A session the process forgot (after
//! a restart) is resumed from its file and hashed at the end.

use fc_images::{Digest, ImageStore};
use fc_protocol::BodyIn;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// One upload in progress.
#[derive(Debug)]
pub(crate) struct Session {
    pub repo: String,
    pub account: String,
    pub region: String,
    pub offset: u64,
    /// `None` once the running hash is unknown (resumed after a restart).
    hasher: Option<Sha256>,
}

/// Every session, by id.
#[derive(Default)]
pub(crate) struct Uploads {
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
}

/// Why appending failed.
#[derive(Debug)]
pub(crate) enum AppendError {
    Io(String),
    Body(String),
}

impl Uploads {
    pub fn start(
        &self,
        images: &ImageStore,
        repo: &str,
        account: &str,
        region: &str,
    ) -> std::io::Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        std::fs::File::create(images.upload_path(&id))?;
        let s = Session {
            repo: repo.to_string(),
            account: account.to_string(),
            region: region.to_string(),
            offset: 0,
            hasher: Some(Sha256::new()),
        };
        self.map()
            .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(s)));
        Ok(id)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Session>>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session `id` of `repo`, if it exists (re-adopting a file left by a restart).
    pub fn get(
        &self,
        images: &ImageStore,
        id: &str,
        repo: &str,
        account: &str,
        region: &str,
    ) -> Option<Arc<tokio::sync::Mutex<Session>>> {
        if uuid::Uuid::parse_str(id).is_err() {
            return None;
        }
        let mut map = self.map();
        if let Some(s) = map.get(id) {
            return Some(s.clone());
        }
        let len = std::fs::metadata(images.upload_path(id)).ok()?.len();
        let s = Arc::new(tokio::sync::Mutex::new(Session {
            repo: repo.to_string(),
            account: account.to_string(),
            region: region.to_string(),
            offset: len,
            hasher: None,
        }));
        map.insert(id.to_string(), s.clone());
        Some(s)
    }

    pub fn forget(&self, images: &ImageStore, id: &str) {
        self.map().remove(id);
        let _ = std::fs::remove_file(images.upload_path(id));
    }
}

impl Session {
    /// Append a body to the session's file.
    pub async fn append(
        &mut self,
        images: &ImageStore,
        id: &str,
        mut body: BodyIn,
    ) -> Result<u64, AppendError> {
        let path = images.upload_path(id);
        let mut f = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await
            .map_err(|e| AppendError::Io(format!("{}: {e}", path.display())))?;
        let mut n = 0u64;
        while let Some(chunk) = body.next_chunk().await {
            let chunk = chunk.map_err(|e| AppendError::Body(e.to_string()))?;
            if let Some(h) = self.hasher.as_mut() {
                h.update(&chunk);
            }
            f.write_all(&chunk)
                .await
                .map_err(|e| AppendError::Io(format!("{}: {e}", path.display())))?;
            n += chunk.len() as u64;
            self.offset += chunk.len() as u64;
        }
        f.flush()
            .await
            .map_err(|e| AppendError::Io(format!("{}: {e}", path.display())))?;
        Ok(n)
    }

    /// The digest of everything written, when it was hashed on the way.
    pub fn computed(&self) -> Option<Digest> {
        self.hasher.clone().map(Digest::from_hasher)
    }

    /// Forget the running hash (the file changed under it).
    pub fn invalidate(&mut self) {
        self.hasher = None;
    }
}
