//! Applying the schema migrations (`migrations/`), so that an upgrade survives a crash:
//!
//! - **All or nothing per migration**, on SQLite as on PostgreSQL: each pending migration runs
//!   in one transaction on one connection, and its row in `seaql_migrations` is the first
//!   statement of that transaction (it takes SQLite's write lock at once, and a migration another
//!   process applied meanwhile is skipped instead of run twice). A process killed anywhere
//!   before the commit leaves the database as it was before that migration. Connection-local
//!   pragmas (`foreign_keys`, `synchronous`, WAL) are set on every connection when the pool
//!   opens it (`Store::open`), never inside a migration.
//! - **A safety copy before an upgrade**: when an existing SQLite database (one with applied
//!   migrations) has pending ones, a consistent copy is written beside it first
//!   (`VACUUM INTO <db>.before-<first pending migration>`, written under a `.partial` name and
//!   renamed once synced) and named in the log; it is removed once every migration is
//!   applied, and kept (and named in the error) when one fails. A copy left by an interrupted
//!   attempt is the older state: the next attempt keeps it as its own instead of writing one.
//! - **Progress**: each migration is logged as it starts and ends, with its time; one that runs
//!   longer than [`PROGRESS_EVERY`] says so periodically.
//! - **Repair of what older versions left behind**: before this runner, migrations on SQLite
//!   committed statement by statement; [`Store::finish_interrupted_message_move`] detects the
//!   one half-state that made a database unopenable (migration 000009 interrupted) and
//!   finishes it.
//!
//! The failpoint `migration_commit` (debug builds) aborts the process just before a
//! migration's commit: every statement of it ran, none is committed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use migration::{MigrationTrait, MigratorTrait, SchemaManager};
use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};

use super::{Store, StoreError};

/// How often a long migration says it is still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The migration that moved `deliveries.payload` into `delivery_messages`.
const MESSAGE_MOVE: &str = "m20261201_000009_delivery_messages";

/// How many times a pass is retried when another process holds the database (a concurrent
/// migrator, an import on a new file).
const ATTEMPTS: u32 = 5;

impl Store {
    /// Applies every pending migration (idempotent). Two processes opening a new database at
    /// once race to migrate it: each migration is claimed by its `seaql_migrations` row, so the
    /// loser waits for the winner's commit, finds the migration applied, and carries on.
    /// Each migration applied is recorded as applied at `now` (Unix seconds).
    pub async fn migrate(&self, now: i64) -> Result<(), StoreError> {
        let mut copy: Option<PathBuf> = None;
        let mut attempt = 0;
        loop {
            match self.migrate_pass(&mut copy, now).await {
                Ok(()) => break,
                Err(e) if attempt < ATTEMPTS && is_contention(&e) => {
                    attempt += 1;
                    tracing::debug!("migration attempt {attempt} failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(e) => return Err(StoreError::Migration(explain(&e, copy.as_deref()))),
            }
        }
        if let Some(copy) = copy {
            // Copies of earlier interrupted attempts too: this upgrade is done.
            for earlier in safety_copies(&copy_database(&copy)) {
                if earlier != copy {
                    let _ = std::fs::remove_file(&earlier);
                }
            }
            match std::fs::remove_file(&copy) {
                Ok(()) => tracing::info!(
                    "upgrade complete; removed the safety copy {}",
                    copy.display()
                ),
                Err(e) => tracing::warn!(
                    "upgrade complete; could not remove the safety copy {}: {e}",
                    copy.display()
                ),
            }
        }
        Ok(())
    }

    /// One pass: find what is pending, copy the database when it is an upgrade, repair what an
    /// older version left half-done, apply the rest one transaction each.
    async fn migrate_pass(
        &self,
        copy: &mut Option<PathBuf>,
        now: i64,
    ) -> Result<(), sea_orm::DbErr> {
        migration::Migrator::install(&self.db).await?;
        let applied = self.applied_migrations().await?;
        let pending = pending_migrations(&applied);
        if pending.is_empty() {
            return Ok(());
        }
        if copy.is_none() && !applied.is_empty() && self.backend == DbBackend::Sqlite {
            *copy = self.safety_copy(pending[0].name()).await?;
        }
        tracing::info!(
            "database schema: {} migration(s) applied, {} to apply",
            applied.len(),
            pending.len()
        );
        self.finish_interrupted_message_move(&applied, now).await?;
        let applied = self.applied_migrations().await?;
        let pending = pending_migrations(&applied);
        let total = pending.len();
        for (i, m) in pending.into_iter().enumerate() {
            self.apply(m.as_ref(), i + 1, total, now).await?;
        }
        Ok(())
    }

    /// Applies one migration and records it, in one transaction.
    async fn apply(
        &self,
        m: &dyn MigrationTrait,
        nth: usize,
        total: usize,
        now: i64,
    ) -> Result<(), sea_orm::DbErr> {
        let name = m.name().to_string();
        let started = Instant::now();
        tracing::info!("applying migration {name} ({nth}/{total})");
        let txn = self.db.begin().await?;
        // The record first: on SQLite it takes the write lock (a concurrent migrator waits
        // here, not halfway through); a row already there means another process applied it.
        let claimed = txn
            .execute_raw(self.stmt(
                "INSERT INTO seaql_migrations (version, applied_at) VALUES ($1, $2) \
                 ON CONFLICT (version) DO NOTHING",
                vec![name.clone().into(), now.into()],
            ))
            .await?
            .rows_affected();
        if claimed == 0 {
            txn.rollback().await?;
            tracing::info!("migration {name} was applied by another process meanwhile");
            return Ok(());
        }
        // Progress from a thread of its own, whatever the runtime's workers are doing; it ends
        // (at once) when `done` is dropped.
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let reporter = {
            let name = name.clone();
            std::thread::spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    wait.recv_timeout(PROGRESS_EVERY)
                {
                    tracing::info!(
                        "migration {name}: still running after {} s (it commits at the end; interrupted, it leaves nothing behind)",
                        started.elapsed().as_secs()
                    );
                }
            })
        };
        let result = m.up(&SchemaManager::new(&txn)).await;
        drop(done);
        let _ = reporter.join();
        if let Err(e) = result {
            let _ = txn.rollback().await;
            return Err(sea_orm::DbErr::Migration(format!("{name}: {e}")));
        }
        crate::failpoint::hit("migration_commit");
        txn.commit().await?;
        tracing::info!(
            "migration {name} applied in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The versions recorded in `seaql_migrations`.
    async fn applied_migrations(&self) -> Result<Vec<String>, sea_orm::DbErr> {
        let rows = self
            .db
            .query_all_raw(self.stmt("SELECT version FROM seaql_migrations", vec![]))
            .await?;
        rows.iter().map(|r| r.try_get("", "version")).collect()
    }

    /// `VACUUM INTO <db>.before-<migration>` (a consistent copy, synced to disk), or the copy
    /// an earlier failed attempt left there. `None` for an in-memory database.
    async fn safety_copy(&self, first_pending: &str) -> Result<Option<PathBuf>, sea_orm::DbErr> {
        let row = self
            .db
            .query_one_raw(self.stmt(
                "SELECT file FROM pragma_database_list WHERE name = 'main'",
                vec![],
            ))
            .await?;
        let file: String = match row {
            Some(r) => r.try_get("", "file")?,
            None => return Ok(None),
        };
        if file.is_empty() {
            return Ok(None);
        }
        if let Some(earlier) = safety_copies(Path::new(&file)).into_iter().next() {
            tracing::warn!(
                "a safety copy from an earlier, interrupted upgrade is at {}: keeping it as the copy of this upgrade (it is the older state)",
                earlier.display()
            );
            return Ok(Some(earlier));
        }
        let copy = PathBuf::from(format!("{file}.before-{first_pending}"));
        // Written under a temporary name and renamed once synced: a copy cut short by a crash
        // is never taken for a whole one.
        let partial = PathBuf::from(format!("{}.partial", copy.display()));
        let _ = std::fs::remove_file(&partial);
        let started = Instant::now();
        tracing::info!(
            "upgrading an existing database: writing a safety copy to {} first",
            copy.display()
        );
        let target = partial.display().to_string().replace('\'', "''");
        self.db
            .execute_unprepared(&format!("VACUUM INTO '{target}'"))
            .await?;
        sync_file(&partial)
            .and_then(|()| std::fs::rename(&partial, &copy))
            .and_then(|()| sync_file(&copy))
            .map_err(|e| {
                sea_orm::DbErr::Custom(format!(
                    "cannot write the safety copy {}: {e}",
                    copy.display()
                ))
            })?;
        tracing::info!(
            "safety copy written to {} in {:.1} s; it is removed once the upgrade succeeds",
            copy.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(Some(copy))
    }

    /// Migration 000009 (create `delivery_messages`, copy the payloads, drop
    /// `deliveries.payload`) ran statement by statement on SQLite before this version: killed
    /// in between, it left the table (and perhaps the copy, or the column already dropped)
    /// without its record, and every later start failed on the copy. Either state is finished
    /// here, in one transaction:
    /// - the column is gone: the copy had committed before the drop, every statement ran, only
    ///   the record is missing: it is written;
    /// - the column is still there: whatever was copied is a copy of it: the partial table is
    ///   emptied and the migration runs again in full.
    async fn finish_interrupted_message_move(
        &self,
        applied: &[String],
        now: i64,
    ) -> Result<(), sea_orm::DbErr> {
        if applied.iter().any(|v| v == MESSAGE_MOVE)
            || !SchemaManager::new(&self.db)
                .has_table("delivery_messages")
                .await?
        {
            return Ok(());
        }
        let txn = self.db.begin().await?;
        if SchemaManager::new(&txn)
            .has_column("deliveries", "payload")
            .await?
        {
            let dropped = txn
                .execute_unprepared("DELETE FROM delivery_messages")
                .await?
                .rows_affected();
            tracing::warn!(
                "migration {MESSAGE_MOVE} was interrupted by an earlier version before it dropped deliveries.payload: discarding its partial copy ({dropped} row(s)) and running it again"
            );
        } else {
            txn.execute_raw(self.stmt(
                "INSERT INTO seaql_migrations (version, applied_at) VALUES ($1, $2) \
                 ON CONFLICT (version) DO NOTHING",
                vec![MESSAGE_MOVE.into(), now.into()],
            ))
            .await?;
            tracing::warn!(
                "migration {MESSAGE_MOVE} was interrupted by an earlier version after its last statement (the messages are in delivery_messages, deliveries.payload is gone): recording it as applied"
            );
        }
        txn.commit().await
    }
}

/// `<db>.before-<migration>`: the name of a safety copy.
const COPY_INFIX: &str = ".before-m";

/// The whole safety copies beside `db` (oldest upgrade first: the names sort by migration).
fn safety_copies(db: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}{COPY_INFIX}", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut copies: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && !n.ends_with(".partial")
        })
        .map(|e| e.path())
        .collect();
    copies.sort();
    copies
}

/// The migrations not recorded in `applied`, in order.
fn pending_migrations(applied: &[String]) -> Vec<Box<dyn MigrationTrait>> {
    migration::Migrator::migrations()
        .into_iter()
        .filter(|m| !applied.iter().any(|a| a == m.name()))
        .collect()
}

/// Another process holds the database (SQLite's lock, PostgreSQL's catalog races between two
/// first installs): worth another pass.
fn is_contention(e: &sea_orm::DbErr) -> bool {
    let s = e.to_string();
    [
        "database is locked",
        "(code: 5)",
        "(code: 517)",
        "duplicate key",
        "could not serialize",
        "deadlock",
    ]
    .iter()
    .any(|m| s.contains(m))
}

/// The error, with what state the database is in and how to go back to the safety copy.
fn explain(e: &sea_orm::DbErr, copy: Option<&Path>) -> String {
    if is_contention(e) {
        return format!(
            "{e}: another process is migrating this database (or holds its write lock) and did not finish in time; \
             nothing was changed by this one: try again once it is done"
        );
    }
    let mut s = format!(
        "{e}. The database is as it was before that migration (each migration commits whole or not at all)"
    );
    if let Some(copy) = copy {
        let db = copy_database(copy).display().to_string();
        s.push_str(&format!(
            "; the copy taken before this upgrade is kept at {}: to go back to it, stop every ritualist, \
             remove {db}-wal and {db}-shm, and copy it over {db} (then run the version you upgraded from)",
            copy.display()
        ));
    }
    s
}

/// `<db>.before-<migration>` → `<db>`.
fn copy_database(copy: &Path) -> PathBuf {
    let text = copy.display().to_string();
    match text.rsplit_once(".before-") {
        Some((db, _)) => PathBuf::from(db),
        None => copy.to_path_buf(),
    }
}

fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        // The new directory entry too (best effort: not every platform opens folders).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::Store;
    use migration::MigratorTrait;
    use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

    /// A fresh folder under the temp dir, removed on drop: also when the test panics.
    pub(in crate::store) struct TestDir(std::path::PathBuf);

    impl TestDir {
        pub(in crate::store) fn new(name: &str) -> TestDir {
            let dir = std::env::temp_dir().join(format!("ritualist-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TestDir(dir)
        }
    }

    impl std::ops::Deref for TestDir {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A SQLite file at the schema before 000009 (7 migrations: there is no 000003), with two
    /// deliveries: one rendered (a retry waiting), one not.
    async fn before_the_message_move(tag: &str) -> (TestDir, String, DatabaseConnection) {
        let dir = TestDir::new(tag);
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.display());
        let db = Database::connect(&url).await.unwrap();
        migration::Migrator::up(&db, Some(7)).await.unwrap();
        db.execute_unprepared(
            "INSERT INTO deliveries (ritual, category, customer_id, occurrence, channel, status, recipient, payload, message_id, due_at, next_attempt_at, created_at, updated_at) VALUES \
             ('birthday', 'birthday', 1, '2027', 'email', 'retry_wait', 'a@example.com', 'Subject: hi\r\n\r\nbody', '<m1@x>', 0, 0, 0, 0), \
             ('birthday', 'birthday', 2, '2027', 'email', 'pending', 'b@example.com', NULL, NULL, 0, 0, 0, 0)",
        )
        .await
        .unwrap();
        (dir, url, db)
    }

    /// What ritualist before this runner did when killed inside 000009: the first `steps`
    /// statements of it, each committed on its own, and no record.
    async fn interrupted_message_move(db: &DatabaseConnection, steps: usize) {
        let statements = [
            "CREATE TABLE IF NOT EXISTS delivery_messages (delivery_id bigint NOT NULL PRIMARY KEY, payload text NOT NULL, FOREIGN KEY (delivery_id) REFERENCES deliveries (id) ON DELETE CASCADE)",
            "INSERT INTO delivery_messages (delivery_id, payload) SELECT id, payload FROM deliveries WHERE payload IS NOT NULL",
            "ALTER TABLE deliveries DROP COLUMN payload",
        ];
        for s in &statements[..steps] {
            db.execute_unprepared(s).await.unwrap();
        }
    }

    async fn payloads(store: &Store) -> Vec<(i64, Option<String>)> {
        let claimed = store.claim_due(10, 10, 60).await.unwrap();
        claimed
            .iter()
            .map(|c| (c.customer_id, c.payload.clone()))
            .collect()
    }

    /// The bug of issue #30: killed after 000009 dropped `deliveries.payload` but before its
    /// record, a database failed every later start with "no such column: payload". It is
    /// finished now, and every message is still there. Killed after the copy but before the
    /// drop, the rerun failed on the copy's primary key: the partial copy is redone.
    #[tokio::test]
    async fn a_message_move_left_half_done_by_an_older_version_is_finished() {
        for steps in 1..=3 {
            let (dir, url, db) = before_the_message_move(&format!("half-{steps}")).await;
            interrupted_message_move(&db, steps).await;
            db.close().await.unwrap();
            let store = Store::open(&url)
                .await
                .unwrap_or_else(|e| panic!("after {steps} statement(s): {e}"));
            assert_eq!(
                payloads(&store).await,
                [(1, Some("Subject: hi\r\n\r\nbody".to_string())), (2, None)],
                "after {steps} statement(s)"
            );
            assert_eq!(
                store.applied_migrations().await.unwrap().len(),
                migration::Migrator::migrations().len()
            );
            assert!(
                !dir.join("t.db.before-m20261201_000009_delivery_messages")
                    .exists(),
                "the safety copy is removed after a successful upgrade"
            );
        }
    }

    /// A migration that fails leaves the database as it was before it (nothing of it
    /// committed), keeps the copy taken before the upgrade, and says where it is.
    #[tokio::test]
    async fn a_failed_upgrade_keeps_the_safety_copy_and_names_it() {
        let (dir, url, db) = before_the_message_move("failed").await;
        // Something 000009 cannot get past: a view where its table goes.
        db.execute_unprepared(
            "CREATE VIEW delivery_messages AS SELECT id AS delivery_id, payload FROM deliveries",
        )
        .await
        .unwrap();
        db.close().await.unwrap();
        let err = Store::open(&url).await.unwrap_err().to_string();
        let copy = dir.join("t.db.before-m20261201_000009_delivery_messages");
        assert!(err.contains("m20261201_000009_delivery_messages"), "{err}");
        assert!(err.contains(&copy.display().to_string()), "{err}");
        assert!(err.contains("to go back to it"), "{err}");
        // The copy is a whole database at the schema before the upgrade.
        let backup = Database::connect(format!("sqlite://{}?mode=ro", copy.display()))
            .await
            .unwrap();
        let row = backup
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT COUNT(*) AS n, SUM(payload IS NOT NULL) AS p FROM deliveries",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 2);
        assert_eq!(row.try_get::<i64>("", "p").unwrap(), 1);
        backup.close().await.unwrap();
        // And the database itself is untouched by the failed migration.
        let db = Database::connect(&url).await.unwrap();
        let applied = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM seaql_migrations",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(applied.try_get::<i64>("", "n").unwrap(), 7);
        db.close().await.unwrap();
    }
}
