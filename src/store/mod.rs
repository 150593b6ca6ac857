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
mod busy;
mod codes;
mod consent;
mod deliverability;
mod engine;
mod feedback;
mod group;
mod history;
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

pub use bulk::SeenIds;
pub use codes::{NO_CHANNEL, channel_of};
pub use consent::ConsentEvent;
pub use deliverability::{DeliverabilityCount, FeedbackCount};
pub use engine::{HistoryRow, MonthDayColumn, OrderRow, Probe};
pub use feedback::{ConsentAction, FeedbackRecord, FeedbackTarget, Recorded};
pub use group::Urgency;
pub use history::{StoryMessage, StoryOrder};
pub use ledger::{
    ChannelPause, ClaimedDelivery, DeliveryRow, FailedDelivery, NewDelivery, NewMessage,
    QueueCount, RowSelection, Status,
};
pub use limits::RateSlot;
pub use metrics::LedgerCount;
pub use people::{CustomerRow, UpsertStats};
pub use privacy::Erasure;
pub use report::{LedgerFact, OptOutFact, OrderFact, SentFact};
pub use surveys::{SurveyAnswer, SurveyResponse};

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
    /// The TLS handshake with PostgreSQL failed: says what failed and which URL parameter fixes it.
    #[error("TLS to PostgreSQL at {host} failed: {what}. {fix}")]
    Tls {
        host: String,
        what: String,
        fix: &'static str,
    },
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

/// `rows` cut into runs of at most `max` in which no id repeats: a row given twice is written
/// by a later statement, in order, as one statement per row would have.
pub(super) fn distinct_chunks<T>(rows: &[T], max: usize, id: impl Fn(&T) -> i64) -> Vec<&[T]> {
    // A chunk holds at least one row, whatever `max` says.
    let max = max.max(1);
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut seen = std::collections::HashSet::new();
    for (i, r) in rows.iter().enumerate() {
        if i - start == max || !seen.insert(id(r)) {
            chunks.push(&rows[start..i]);
            start = i;
            seen.clear();
            seen.insert(id(r));
        }
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
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

/// The host part of a `postgres://` URL (`""` for a Unix socket), without brackets or port.
fn pg_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // A `host=` parameter (a socket directory or a name) overrides the authority, as in libpq.
    let query_host = url
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|p| p.strip_prefix("host=")));
    if let Some(h) = query_host {
        return h.to_string();
    }
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_string();
    }
    hostport.split(':').next().unwrap_or("").to_string()
}

/// Whether `host` is this machine (or a Unix socket): plain TCP there exposes nothing.
fn is_local_host(host: &str) -> bool {
    host.is_empty()
        || host.starts_with('/')
        || host.starts_with("%2F")
        || host.starts_with("%2f")
        || host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A PostgreSQL URL with `sslmode=require` added when it names no `sslmode`, `PGSSLMODE` is
/// unset and the host is another machine: sqlx's own default (`prefer`) would silently fall
/// back to plain text. Every other URL is returned unchanged.
fn with_default_sslmode(url: &str, env_mode: Option<&str>) -> String {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return url.to_string();
    }
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let named = query
        .split('&')
        .any(|p| p.starts_with("sslmode=") || p.starts_with("ssl-mode="));
    if named || env_mode.is_some_and(|m| !m.is_empty()) || is_local_host(&pg_host(url)) {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=require")
}

/// A failed connection explained when TLS is the cause: the host, what failed, and the URL
/// parameter that fixes it. Any other error is passed through.
fn explain_connect_error(url: &str, err: sea_orm::DbErr) -> StoreError {
    let text = err.to_string();
    if !text.contains("TLS") && !text.contains("certificate") && !text.contains("SSL") {
        return StoreError::Db(err);
    }
    let host = pg_host(url);
    let (what, fix) = if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
        (
            "the server certificate is signed by an unknown issuer (a private CA?)",
            "Give the CA's PEM file with `sslrootcert=/path/ca.pem` in the database URL.",
        )
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        (
            "the server certificate does not name this host",
            "Connect with the host name the certificate names, or use `sslmode=verify-ca` (checks the CA, not the name).",
        )
    } else if text.contains("Expired") || text.contains("expired") {
        (
            "the server certificate has expired",
            "The database's certificate must be renewed (check the clocks too).",
        )
    } else if text.contains("NotValidYet") {
        (
            "the server certificate is not valid yet",
            "Check this machine's clock.",
        )
    } else if text.contains("CaUsedAsEndEntity") {
        (
            "the server presents a CA certificate as its own",
            "The server must use a certificate issued by that CA; give the CA with `sslrootcert=`.",
        )
    } else if text.contains("server does not support TLS") || text.contains("not support SSL") {
        (
            "the server does not offer TLS",
            "Turn `ssl = on` on the server, or (same machine or private network only) `sslmode=disable`.",
        )
    } else {
        (
            "the TLS handshake failed",
            "Check `sslmode`, `sslrootcert`, `sslcert` and `sslkey` in the database URL.",
        )
    };
    StoreError::Tls {
        host,
        what: format!("{what} ({})", text.trim()),
        fix,
    }
}

/// Creates the folder of a SQLite file URL (first use); other URLs are left alone.
fn prepare_sqlite_dir(url: &str) -> Result<(), StoreError> {
    if let Some(path) = sqlite_file(url)
        && let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::File {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// The SQLite file a `sqlite://…` URL names (`None` for PostgreSQL and in-memory databases).
pub fn sqlite_file(database_url: &str) -> Option<std::path::PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Prepared statements kept per SQLite connection (sqlx's default is 100). The ledger's bulk
/// statements differ by their row count (a group commit of 1 to 256 rows, a tick's inserts,
/// a batch's claims), each prepared for several hundred placeholders: a hundred of them held
/// on each of four connections cost a mass day of 100,000 customers 48 MB of its 143 MB peak
/// (issue #26: 95 MB with 16, and no slower; docs/performance.md). The statements that run
/// once per message are few and stay cached.
const SQLITE_STATEMENT_CACHE: usize = 16;

impl Store {
    /// Whether the database behind `url` exists already: a SQLite file on disk, or any
    /// PostgreSQL URL. For readers that must never create one (the preview page).
    pub fn exists(url: &str) -> bool {
        match sqlite_file(url) {
            Some(path) => path.is_file(),
            None => !url.starts_with("sqlite:"),
        }
    }

    /// Connects and applies pending migrations. For SQLite the file (and its folder) is created
    /// on first use, WAL is enabled and writers wait up to 10 s for each other; every commit is
    /// synced to disk (`synchronous=FULL`) unless the URL carries ritualist's own
    /// `synchronous=normal` parameter (config `sqlite_synchronous: normal`).
    ///
    /// PostgreSQL URLs take libpq's TLS parameters (`sslmode`, `sslrootcert`, `sslcert`,
    /// `sslkey`); a remote host with no `sslmode` gets `require` ([`with_default_sslmode`]).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with_clock(url, &crate::clock::SystemClock).await
    }

    /// [`Store::open`], stamping applied migrations with `clock`'s time.
    pub async fn open_with_clock(
        url: &str,
        clock: &dyn crate::clock::Clock,
    ) -> Result<Store, StoreError> {
        let (url, normal) = strip_param(url, "synchronous=normal");
        let env_mode = std::env::var("PGSSLMODE").ok();
        let url = with_default_sslmode(&url, env_mode.as_deref());
        let url = url.as_str();
        prepare_sqlite_dir(url)?;
        let mut opts = ConnectOptions::new(url.to_string());
        opts.sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(30))
            // sqlx pings a pooled connection on every acquire by default: one more round trip
            // per statement (the dispatcher's ledger writes are one statement each). Only a
            // connection idle for a while is checked.
            .test_before_acquire_if_idle_for(Duration::from_secs(30));
        // Once the dispatcher has recorded a handover, one connection of the pool stays with
        // the ledger writer (`group.rs`) for the store's life: the rest of the process shares
        // the others (three on SQLite, seven on PostgreSQL).
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
                        .statement_cache_capacity(SQLITE_STATEMENT_CACHE)
                })
                .map_sqlx_sqlite_pool_opts(|o| {
                    o.after_connect(|conn, _| Box::pin(async move { busy::wait_soon(conn).await }))
                });
        } else {
            opts.max_connections(8);
        }
        let db = Database::connect(opts)
            .await
            .map_err(|e| explain_connect_error(url, e))?;
        let backend = db.get_database_backend();
        let store = Store {
            db,
            backend,
            group: Default::default(),
        };
        store.migrate(clock.now().as_second()).await?;
        store.backfill_order_facts().await?;
        Ok(store)
    }

    /// Opens one connection to `url` (TLS as in [`Store::open`]) and pings it, changing
    /// nothing but a new SQLite file and its folder: `ritualist doctor`.
    pub async fn try_connect(url: &str) -> Result<(), StoreError> {
        let (url, _) = strip_param(url, "synchronous=normal");
        let env_mode = std::env::var("PGSSLMODE").ok();
        let url = with_default_sslmode(&url, env_mode.as_deref());
        // A SQLite file is created on first use, as the daemon would.
        prepare_sqlite_dir(&url)?;
        let mut opts = ConnectOptions::new(url.clone());
        opts.sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10))
            .max_connections(1);
        let db = Database::connect(opts)
            .await
            .map_err(|e| explain_connect_error(&url, e))?;
        db.ping().await?;
        let _ = db.close().await;
        Ok(())
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
    use super::{Store, distinct_chunks, strip_param, with_default_sslmode};
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
    fn a_remote_postgres_host_without_sslmode_gets_require() {
        let f = |u: &str| with_default_sslmode(u, None);
        assert_eq!(
            f("postgres://u:p@db.example.com:5432/r"),
            "postgres://u:p@db.example.com:5432/r?sslmode=require"
        );
        assert_eq!(
            f("postgresql://u@10.0.0.5/r?application_name=x"),
            "postgresql://u@10.0.0.5/r?application_name=x&sslmode=require"
        );
        assert_eq!(
            f("postgres://u@[2001:db8::1]:5432/r"),
            "postgres://u@[2001:db8::1]:5432/r?sslmode=require"
        );
        // The operator's choice, PGSSLMODE, this machine and Unix sockets are left alone.
        for kept in [
            "postgres://u@db.example.com/r?sslmode=disable",
            "postgres://u@db.example.com/r?sslmode=verify-full&sslrootcert=/ca.pem",
            "postgres://u@localhost:5432/r",
            "postgres://u@127.0.0.1/r",
            "postgres://u@[::1]/r",
            "postgres://u@/r?host=/var/run/postgresql",
            "sqlite:///d/r.db",
        ] {
            assert_eq!(f(kept), kept);
        }
        assert_eq!(
            with_default_sslmode("postgres://u@db.example.com/r", Some("verify-full")),
            "postgres://u@db.example.com/r"
        );
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

    #[test]
    fn chunks_hold_at_most_max_rows_and_no_id_twice() {
        let rows = [1i64, 2, 3, 2, 4, 5, 6, 7, 7];
        let got: Vec<Vec<i64>> = distinct_chunks(&rows, 3, |r| *r)
            .into_iter()
            .map(<[i64]>::to_vec)
            .collect();
        assert_eq!(got, vec![vec![1, 2, 3], vec![2, 4, 5], vec![6, 7], vec![7]]);
        assert_eq!(distinct_chunks(&[9i64], 3, |r| *r), vec![&[9i64][..]]);
        assert!(distinct_chunks(&[] as &[i64], 3, |r| *r).is_empty());
        assert_eq!(distinct_chunks(&[1i64, 2], 0, |r| *r).len(), 2);
    }
}
