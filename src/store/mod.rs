//! The store: the only module that imports `sea_orm`. Customers, orders, consent, the
//! delivery ledger (which doubles as the outbox), survey answers and instance settings, on SQLite (the
//! embedded default: created and migrated on first use) or PostgreSQL, with the same
//! migrations (`migrations/`).
//!
//! SQL is written once with `$n` placeholders; for SQLite they become anonymous `?` with the
//! values reordered to match, so one statement text serves both engines. Times are Unix seconds.
//! The engine's bulk reads come packed, a batch of rows as one JSON value (`packed.rs`), and
//! its index probes one row per zone (`engine.rs`): the SQLite driver's per-row hand-over
//! between threads costs more than SQLite's own work at a million customers.

mod bulk;
mod consent;
mod engine;
mod group;
mod ledger;
mod limits;
mod metrics;
mod migrate;
mod packed;
mod people;
mod privacy;
mod report;
mod surveys;

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value,
};

pub use consent::ConsentEvent;
pub use engine::{HistoryRow, MonthDayColumn, OrderRow, Probe};
pub use group::Urgency;
pub use ledger::{
    ChannelPause, ClaimedDelivery, DeliveryRow, FailedDelivery, NewDelivery, QueueCount,
    RenderedMessage, RowSelection, Status,
};
pub use limits::RateSlot;
pub use metrics::LedgerCount;
pub use people::{CustomerRow, UpsertStats};
pub use privacy::Erasure;
pub use report::{LedgerFact, OptOutFact, OrderFact, SentFact};
pub use surveys::SurveyResponse;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("cannot prepare the database file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("{0} needs PostgreSQL")]
    NeedsPostgres(&'static str),
}

/// A connection pool plus the backend it talks to.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    backend: DbBackend,
    /// The dispatcher's group-committed ledger writes (started on first use).
    group: std::sync::Arc<std::sync::OnceLock<group::GroupCommit>>,
}

/// `$first, …, $(first + n - 1)`: the numbered parameters of an `IN (…)` list or a `VALUES` row.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `url` without the query parameter `param` (`key=value`), and whether it was there.
fn strip_param(url: &str, param: &str) -> (String, bool) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), false);
    };
    let kept: Vec<&str> = query.split('&').filter(|p| *p != param).collect();
    let found = kept.len() != query.split('&').count();
    if kept.is_empty() {
        (base.to_string(), found)
    } else {
        (format!("{base}?{}", kept.join("&")), found)
    }
}

impl Store {
    /// Connects and applies pending migrations. For SQLite the file (and its folder) is created
    /// on first use, WAL is enabled and writers wait up to 10 s for each other; every commit is
    /// synced to disk (`synchronous=FULL`) unless the URL carries ritualist's own
    /// `synchronous=normal` parameter (config `sqlite_synchronous: normal`).
    /// Whether the database behind `url` exists already: a SQLite file on disk, or any
    /// PostgreSQL URL. For readers that must never create one (the preview page).
    pub fn exists(url: &str) -> bool {
        match url.strip_prefix("sqlite://") {
            Some(rest) => {
                let path = rest.split('?').next().unwrap_or(rest);
                path != ":memory:" && std::path::Path::new(path).is_file()
            }
            None => true,
        }
    }

    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let (url, normal) = strip_param(url, "synchronous=normal");
        let url = url.as_str();
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let path = rest.split('?').next().unwrap_or(rest);
            if path != ":memory:"
                && let Some(parent) = std::path::Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::File {
                    path: path.to_string(),
                    source,
                })?;
            }
        }
        let mut opts = ConnectOptions::new(url.to_string());
        opts.sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(30))
            // sqlx pings a pooled connection on every acquire by default: one more round trip
            // per statement (the dispatcher's ledger writes are one statement each). Only a
            // connection idle for a while is checked.
            .test_before_acquire_if_idle_for(Duration::from_secs(30));
        if url.starts_with("sqlite:") {
            opts.max_connections(4)
                .min_connections(1)
                .map_sqlx_sqlite_opts(move |o| {
                    o.busy_timeout(Duration::from_secs(10))
                        .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(if normal {
                            sea_orm::sqlx::sqlite::SqliteSynchronous::Normal
                        } else {
                            sea_orm::sqlx::sqlite::SqliteSynchronous::Full
                        })
                        .foreign_keys(true)
                });
        } else {
            opts.max_connections(8);
        }
        let db = Database::connect(opts).await?;
        let backend = db.get_database_backend();
        let store = Store {
            db,
            backend,
            group: Default::default(),
        };
        store.migrate().await?;
        store.backfill_order_facts().await?;
        Ok(store)
    }

    /// The group-commit writer, started on first use (inside the caller's runtime).
    fn group(&self) -> &group::GroupCommit {
        self.group.get_or_init(|| {
            group::GroupCommit::spawn(Store {
                db: self.db.clone(),
                backend: self.backend,
                group: Default::default(),
            })
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.backend == DbBackend::Postgres
    }

    /// A statement for this backend. On SQLite every `$n` becomes an anonymous `?`, with the
    /// values laid out in the order the placeholders occur (see [`Store::stmt_positional`]):
    /// numbered `?NNN` parameters bind in O(N²), which dominated multi-row inserts and long
    /// `IN` lists.
    pub(crate) fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        if self.backend == DbBackend::Sqlite {
            return self.stmt_positional(sql, values);
        }
        Statement::from_sql_and_values(self.backend, sql.to_string(), values)
    }

    async fn exec(&self, sql: &str, values: Vec<Value>) -> Result<u64, StoreError> {
        Ok(self
            .db
            .execute_raw(self.stmt(sql, values))
            .await?
            .rows_affected())
    }

    async fn all(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<sea_orm::QueryResult>, StoreError> {
        Ok(self.db.query_all_raw(self.stmt(sql, values)).await?)
    }

    async fn one(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Option<sea_orm::QueryResult>, StoreError> {
        Ok(self.db.query_one_raw(self.stmt(sql, values)).await?)
    }

    /// The instance key (32 random bytes, hex) used to derive Message-IDs when no secret is
    /// configured; generated and stored on first use so it survives restarts.
    pub async fn instance_key(&self) -> Result<String, StoreError> {
        if let Some(row) = self
            .one(
                "SELECT value FROM settings WHERE key = $1",
                vec!["instance_key".into()],
            )
            .await?
        {
            return Ok(row.try_get("", "value")?);
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| StoreError::Corrupt(format!("no randomness: {e}")))?;
        let key = hex::encode(bytes);
        self.exec(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            vec!["instance_key".into(), key.into()],
        )
        .await?;
        let row = self
            .one(
                "SELECT value FROM settings WHERE key = $1",
                vec!["instance_key".into()],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("instance key vanished".into()))?;
        Ok(row.try_get("", "value")?)
    }
}

/// A fresh random token (lease tokens).
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    // Falling back to a time-and-counter token would weaken fencing; randomness is required.
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::{Store, strip_param};
    use sea_orm::ConnectionTrait;

    /// Migration 000009 moves stored messages out of `deliveries`: a row rendered before the
    /// upgrade (a retry waiting) still resends its own bytes after it.
    #[tokio::test]
    async fn an_upgrade_keeps_every_stored_message() {
        use migration::MigratorTrait;
        let dir = std::env::temp_dir().join(format!("ritualist-upgrade-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.display());
        let db = sea_orm::Database::connect(&url).await.unwrap();
        // Every migration before 000009.
        migration::Migrator::up(&db, Some(7)).await.unwrap();
        db.execute_unprepared(
            "INSERT INTO deliveries (ritual, category, customer_id, occurrence, channel, status, recipient, payload, message_id, due_at, next_attempt_at, created_at, updated_at) VALUES \
             ('birthday', 'birthday', 1, '2027', 'email', 'retry_wait', 'a@example.com', 'Subject: hi\r\n\r\nbody', '<m1@x>', 0, 0, 0, 0), \
             ('birthday', 'birthday', 2, '2027', 'email', 'pending', 'b@example.com', NULL, NULL, 0, 0, 0, 0)",
        )
        .await
        .unwrap();
        db.close().await.unwrap();
        let store = Store::open(&url).await.unwrap();
        let claimed = store.claim_due(10, 10, 60).await.unwrap();
        let payloads: Vec<(i64, Option<String>)> = claimed
            .iter()
            .map(|c| (c.customer_id, c.payload.clone()))
            .collect();
        assert_eq!(
            payloads,
            [(1, Some("Subject: hi\r\n\r\nbody".to_string())), (2, None)]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_synchronous_parameter_is_ritualists_own_and_never_reaches_sqlx() {
        assert_eq!(
            strip_param(
                "sqlite:///d/r.db?mode=rwc&synchronous=normal",
                "synchronous=normal"
            ),
            ("sqlite:///d/r.db?mode=rwc".to_string(), true)
        );
        assert_eq!(
            strip_param("sqlite:///d/r.db?synchronous=normal", "synchronous=normal"),
            ("sqlite:///d/r.db".to_string(), true)
        );
        assert_eq!(
            strip_param("sqlite:///d/r.db?mode=rwc", "synchronous=normal"),
            ("sqlite:///d/r.db?mode=rwc".to_string(), false)
        );
        assert_eq!(
            strip_param("postgres://u@h/db", "synchronous=normal"),
            ("postgres://u@h/db".to_string(), false)
        );
    }
}
