//! Helpers shared by the unit tests: a scratch folder that is removed when dropped (a failing
//! test included) and a SQLite store inside one.

use std::path::{Path, PathBuf};

use crate::store::Store;

/// A folder under the system's temp folder, removed with everything in it when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "ritualist-{prefix}-{}-{}",
            std::process::id(),
            crate::store::random_token()
        ));
        std::fs::create_dir_all(&path).expect("a scratch folder");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new, migrated SQLite store in its own scratch folder (keep the folder while the store is
/// used).
pub(crate) async fn temp_store(prefix: &str) -> (Store, TempDir) {
    let dir = TempDir::new(prefix);
    let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let store = Store::open(&url).await.expect("a scratch store");
    (store, dir)
}
