//! One dispatcher per SQLite file: `run` (daemon or `--once`) and `migrate` hold an exclusive
//! lock on `<database>.daemon.lock` for as long as they run, taken before the database is
//! opened: a refused process has not touched the database (not even to create or migrate it),
//! and of two processes racing to migrate a new file one does it, the other is told who holds
//! it. The operating system releases it when the process ends, however it ends (`kill -9`
//! included), so a stale file never blocks a restart. The holder writes its pid into the file
//! so the refused process can name it. PostgreSQL is never locked: several daemons share one
//! database by design (`FOR UPDATE SKIP LOCKED`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Another process is dispatching from the same SQLite file.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another ritualist ({holder}) is already running on {database}: it holds {lock}; \
         stop it first, or use PostgreSQL to run several daemons on one database"
    )]
    Held {
        database: PathBuf,
        lock: PathBuf,
        /// "pid 1234", or "pid unknown" when the file does not say.
        holder: String,
    },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while the daemon runs; dropping it (or the process ending) releases the lock.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    pub path: PathBuf,
}

/// The SQLite file a `sqlite://…` URL names (the store owns database URLs).
pub use crate::store::sqlite_file;

/// `data/ritualist.db` → `data/ritualist.db.daemon.lock`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".daemon.lock");
    PathBuf::from(name)
}

/// Takes the lock for the database of `database_url`; `Ok(None)` when it is not SQLite.
pub fn lock_database(database_url: &str) -> Result<Option<DaemonLock>, LockError> {
    match sqlite_file(database_url) {
        // Absolute, so the message names the file wherever the operator stands.
        Some(db) => lock_file(&std::path::absolute(&db).unwrap_or(db)).map(Some),
        None => Ok(None),
    }
}

/// Takes `<database>.daemon.lock` without waiting, and writes our pid into it.
pub fn lock_file(database: &Path) -> Result<DaemonLock, LockError> {
    let path = lock_path(database);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    // Never truncated before the lock is ours: the holder's pid must stay readable.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "pid unknown".to_string(),
            };
            return Err(LockError::Held {
                database: database.to_path_buf(),
                lock: path,
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(DaemonLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqlite_files_are_locked() {
        assert_eq!(
            sqlite_file("sqlite://data/r.db?mode=rwc"),
            Some(PathBuf::from("data/r.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
        assert_eq!(
            lock_path(Path::new("/var/lib/r/ritualist.db")),
            PathBuf::from("/var/lib/r/ritualist.db.daemon.lock")
        );
    }

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_dropped() {
        /// Removed on drop: also when the test panics.
        struct Dir(PathBuf);
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = Dir(std::env::temp_dir().join(format!("ritualist-lock-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let db = dir.0.join("r.db");
        let first = lock_file(&db).unwrap();
        // flock locks belong to the open file description: a second open in this process
        // conflicts just as another process would.
        let err = lock_file(&db).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("r.db.daemon.lock"), "{err}");
        drop(first);
        let again = lock_file(&db).unwrap();
        drop(again);
        drop(dir);
    }
}
