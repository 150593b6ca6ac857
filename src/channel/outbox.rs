//! The local outbox transport: emails as `.eml` files under `<dir>/email/`, SMS as JSON lines
//! in `<dir>/sms.jsonl`. The embedded default, so ritualist runs with no server at all.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{Outgoing, SendFailure};
use crate::render::SmsLength;

#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    sms_lock: Mutex<()>,
}

impl Outbox {
    pub fn new(dir: &Path) -> Self {
        Outbox {
            dir: dir.to_path_buf(),
            sms_lock: Mutex::new(()),
        }
    }

    /// Writes the message atomically (temp file + rename), named after its Message-ID, so a
    /// resend of the same occurrence replaces the file instead of adding a second one.
    pub async fn write_email(&self, msg: &Outgoing<'_>) -> Result<String, SendFailure> {
        let dir = self.dir.join("email");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| SendFailure::transient(format!("cannot create {}: {e}", dir.display())))?;
        let stem: String = msg
            .message_id
            .unwrap_or(msg.recipient)
            .trim_matches(['<', '>'])
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{stem}.eml"));
        let tmp = dir.join(format!(".{stem}.eml.tmp"));
        tokio::fs::write(&tmp, msg.payload.as_bytes())
            .await
            .map_err(|e| SendFailure::transient(format!("cannot write {}: {e}", tmp.display())))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| SendFailure::transient(format!("cannot write {}: {e}", path.display())))?;
        Ok(format!("written to {}", path.display()))
    }

    /// Appends one JSON line: to, text, encoding, segments, message id.
    pub async fn write_sms(
        &self,
        msg: &Outgoing<'_>,
        len: &SmsLength,
    ) -> Result<String, SendFailure> {
        let _guard = self.sms_lock.lock().await;
        tokio::fs::create_dir_all(&self.dir).await.map_err(|e| {
            SendFailure::transient(format!("cannot create {}: {e}", self.dir.display()))
        })?;
        let path = self.dir.join("sms.jsonl");
        let line = serde_json::json!({
            "to": msg.recipient,
            "text": msg.payload,
            "encoding": len.encoding.as_str(),
            "segments": len.segments,
            "message_id": msg.message_id,
        });
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|e| SendFailure::transient(format!("cannot open {}: {e}", path.display())))?;
        f.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| SendFailure::transient(format!("cannot write {}: {e}", path.display())))?;
        f.flush()
            .await
            .map_err(|e| SendFailure::transient(e.to_string()))?;
        Ok(format!("appended to {}", path.display()))
    }
}
