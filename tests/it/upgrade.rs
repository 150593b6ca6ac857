//! Upgrades survive a crash (issue #30): `ritualist migrate` killed inside every migration —
//! the failpoint `migration_commit` aborts the process after every statement of the N-th
//! pending migration ran and before it commits, for every N — during a fresh install and
//! during an upgrade from each earlier schema with data in it, on SQLite and PostgreSQL. The
//! next start always completes, ends with the same schema as a fresh install, and no row is
//! lost: per table, the count and a hash of the rows are the same before and after.
//!
//! Each migration is one transaction (its statements and its `seaql_migrations` row), so a
//! kill between any two of its statements leaves what a kill just before its commit leaves:
//! the failpoint covers every point between statements. The state an older, non-atomic
//! version left behind (000009 half done) is built statement by statement in
//! `store::migrate`'s unit tests.
//!
//! Named regression: SeaQL/sea-orm#3136 (SQLite migrations not in a transaction), which made
//! `daemon_lock::a_second_run_on_the_same_sqlite_file_is_refused_until_the_first_is_gone`
//! flaky: "no such column: payload" on every start after a kill inside 000009.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

use crate::harness::{Db, newcomer_checkout, ritualist_cmd};
use crate::parallel::in_parallel;
use crate::peers::PgDatabase;

/// How many cells of the crash matrix run at once.
const PARALLEL_CELLS: usize = 4;

/// How many migrations there are (a fresh install applies them all).
fn migrations() -> usize {
    migration::Migrator::migrations().len()
}

/// A new, empty database for one cell: its URL for ritualist, its URL for sea_orm, and the
/// PostgreSQL database to drop at the end.
fn new_database(db: Db, dir: &Path, cell: &str) -> Option<(String, String, Option<PgDatabase>)> {
    match db {
        Db::Sqlite => {
            let file = dir.join(format!("data/{cell}.db"));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            let url = format!("sqlite://{}?mode=rwc", file.display());
            Some((file.display().to_string(), url, None))
        }
        Db::Postgres => {
            let pg = PgDatabase::create()?;
            Some((pg.url.clone(), pg.url.clone(), Some(pg)))
        }
    }
}

/// The database at the schema of its first `k` migrations, with data written at the first
/// schema (so it went through every migration up to `k`).
async fn at_schema(url: &str, k: usize) -> DatabaseConnection {
    let conn = Database::connect(url).await.unwrap();
    if k == 0 {
        return conn;
    }
    migration::Migrator::up(&conn, Some(1)).await.unwrap();
    for i in 1..=12 {
        conn.execute_unprepared(&format!(
            "INSERT INTO customers (external_id, first_name, email, phone, locale, time_zone, birth_md, created_at, updated_at) \
             VALUES ('c{i}', 'Ana{i}', 'c{i}@example.com', '+4072100{i:04}', 'ro', 'Europe/Bucharest', {md}, 0, 0)",
            md = 500 + i
        ))
        .await
        .unwrap();
        conn.execute_unprepared(&format!(
            "INSERT INTO orders (external_id, customer_id, ordered_at, amount_minor, currency, created_at) \
             VALUES ('o{i}', {i}, {t}, {a}, 'RON', 0)",
            t = 1_700_000_000 + i,
            a = 1000 * i
        ))
        .await
        .unwrap();
        conn.execute_unprepared(&format!(
            "INSERT INTO consents (customer_id, scope, opted_out, source, changed_at) \
             VALUES ({i}, 'email', {o}, 'import', 0)",
            o = if i % 3 == 0 { "TRUE" } else { "FALSE" }
        ))
        .await
        .unwrap();
        // Half rendered (a stored message waiting for a retry), half not yet.
        let payload = if i % 2 == 0 {
            format!("'Subject: hello {i}\r\n\r\nbody {i}'")
        } else {
            "NULL".to_string()
        };
        conn.execute_unprepared(&format!(
            "INSERT INTO deliveries (ritual, category, customer_id, occurrence, channel, status, recipient, payload, due_at, next_attempt_at, created_at, updated_at) \
             VALUES ('birthday', 'birthday', {i}, '2027', 'email', '{s}', 'c{i}@example.com', {payload}, 0, 0, 0, 0)",
            s = if i % 2 == 0 { "retry_wait" } else { "pending" }
        ))
        .await
        .unwrap();
    }
    conn.execute_unprepared("INSERT INTO settings (key, value) VALUES ('instance_key', 'k0')")
        .await
        .unwrap();
    if k > 1 {
        migration::Migrator::up(&conn, Some(k as u32 - 1))
            .await
            .unwrap();
    }
    conn
}

async fn texts(conn: &DatabaseConnection, sql: &str) -> Vec<String> {
    conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// Per table, the row count and a hash of the rows (the columns every schema has).
async fn data(conn: &DatabaseConnection) -> Vec<(&'static str, usize, u64)> {
    let moved = texts(conn, "SELECT version FROM seaql_migrations")
        .await
        .iter()
        .any(|v| v == "m20261201_000009_delivery_messages");
    let queries = [
        (
            "customers",
            "SELECT CAST(id AS TEXT) || '|' || external_id || '|' || first_name || '|' || email || '|' || phone || '|' || CAST(birth_md AS TEXT) FROM customers ORDER BY id",
        ),
        (
            "orders",
            "SELECT CAST(id AS TEXT) || '|' || external_id || '|' || CAST(customer_id AS TEXT) || '|' || CAST(ordered_at AS TEXT) || '|' || CAST(amount_minor AS TEXT) FROM orders ORDER BY id",
        ),
        (
            "consents",
            "SELECT CAST(customer_id AS TEXT) || '|' || scope || '|' || CAST(opted_out AS TEXT) FROM consents ORDER BY customer_id, scope",
        ),
        (
            "deliveries",
            "SELECT CAST(id AS TEXT) || '|' || ritual || '|' || CAST(customer_id AS TEXT) || '|' || status || '|' || recipient FROM deliveries ORDER BY id",
        ),
        (
            "messages",
            if moved {
                "SELECT CAST(delivery_id AS TEXT) || '|' || payload FROM delivery_messages ORDER BY delivery_id"
            } else {
                "SELECT CAST(id AS TEXT) || '|' || payload FROM deliveries WHERE payload IS NOT NULL ORDER BY id"
            },
        ),
        (
            "settings",
            "SELECT key || '|' || value FROM settings WHERE key = 'instance_key'",
        ),
    ];
    let mut out = Vec::new();
    for (table, sql) in queries {
        let rows = texts(conn, sql).await;
        let mut h = DefaultHasher::new();
        rows.hash(&mut h);
        out.push((table, rows.len(), h.finish()));
    }
    out
}

/// The schema as text: every table, column, index (what a fresh install makes).
async fn schema(conn: &DatabaseConnection) -> Vec<String> {
    match conn.get_database_backend() {
        DbBackend::Sqlite => {
            texts(
                conn,
                "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
            )
            .await
        }
        _ => {
            let mut s = texts(
                conn,
                "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
                 FROM information_schema.columns WHERE table_schema = 'public' \
                 ORDER BY table_name, column_name",
            )
            .await;
            s.extend(
                texts(
                    conn,
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname",
                )
                .await,
            );
            s
        }
    }
}

/// `ritualist migrate` on `database`, with the failpoint `migration_commit@n` armed or not.
fn migrate(dir: &Path, database: &str, failpoint: Option<usize>) -> std::process::Output {
    let mut c = ritualist_cmd(dir);
    c.arg("migrate").env("RITUALIST_DATABASE_URL", database);
    if let Some(n) = failpoint {
        c.env("RITUALIST_FAILPOINT", format!("migration_commit@{n}"));
    }
    c.output().unwrap()
}

async fn every_crash_during_a_migration_is_recovered(db: Db) {
    let checkout = newcomer_checkout();
    let dir = checkout.path();
    let total = migrations();
    // The reference: a fresh install, uninterrupted.
    let Some((database, url, _pg)) = new_database(db, dir, "reference") else {
        return;
    };
    let out = migrate(dir, &database, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = schema(&Database::connect(&url).await.unwrap()).await;

    // The cells are independent (each its own database) and mostly wait on child processes:
    // they run a few at a time.
    let cells: Vec<(usize, usize)> = (0..total)
        .flat_map(|k| (1..=total - k).map(move |n| (k, n)))
        .collect();
    let ran = in_parallel(&cells, PARALLEL_CELLS, |&(k, n)| {
        one_cell(db, dir, total, k, n, &reference)
    });
    assert_eq!(ran.len(), total * (total + 1) / 2);
}

/// One cell: the database at the schema of its first `k` migrations, `migrate` killed before
/// the commit of the `n`-th pending one, then the next start.
async fn one_cell(db: Db, dir: &Path, total: usize, k: usize, n: usize, reference: &[String]) {
    let cell = format!("from{k}-crash{n}");
    let (database, url, _pg) = new_database(db, dir, &cell).unwrap();
    let conn = at_schema(&url, k).await;
    // A fresh install has no data (nor a `seaql_migrations` yet).
    let before = if k == 0 {
        None
    } else {
        Some(data(&conn).await)
    };
    conn.close().await.unwrap();

    let crashed = migrate(dir, &database, Some(n));
    let stderr = String::from_utf8_lossy(&crashed.stderr);
    assert_eq!(
        crashed.status.code(),
        None,
        "{db:?} {cell}: killed by the failpoint: {stderr}"
    );
    assert!(
        stderr.contains(&format!("failpoint migration_commit@{n}")),
        "{db:?} {cell}: {stderr}"
    );

    let next = migrate(dir, &database, None);
    assert!(
        next.status.success(),
        "{db:?} {cell}: the next start completes: {}",
        String::from_utf8_lossy(&next.stderr)
    );
    let conn = Database::connect(&url).await.unwrap();
    assert_eq!(
        texts(&conn, "SELECT version FROM seaql_migrations")
            .await
            .len(),
        total,
        "{db:?} {cell}"
    );
    assert_eq!(schema(&conn).await, reference, "{db:?} {cell}: the schema");
    let after = data(&conn).await;
    match before {
        Some(before) => {
            assert_eq!(after, before, "{db:?} {cell}: no row lost or changed");
            assert!(
                after.iter().all(|(_, rows, _)| *rows > 0),
                "{db:?} {cell}: the data set is not empty: {after:?}"
            );
        }
        None => assert!(
            after.iter().all(|(_, rows, _)| *rows == 0),
            "{db:?} {cell}: {after:?}"
        ),
    }
    conn.close().await.unwrap();
    if db == Db::Sqlite {
        let left: Vec<_> = std::fs::read_dir(dir.join("data"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&format!("{cell}.db.before-")))
            .collect();
        assert!(
            left.is_empty(),
            "{cell}: the safety copy is removed after the upgrade: {left:?}"
        );
    }
}

#[tokio::test]
async fn every_crash_during_a_migration_is_recovered_on_sqlite() {
    every_crash_during_a_migration_is_recovered(Db::Sqlite).await;
}

#[tokio::test]
async fn every_crash_during_a_migration_is_recovered_on_postgres() {
    every_crash_during_a_migration_is_recovered(Db::Postgres).await;
}

/// An upgrade of an existing SQLite database writes its safety copy before the first
/// migration and says where in the log: killed during the upgrade, the copy is still there
/// (with the data as it was), and the next start completes and removes it.
#[tokio::test]
async fn an_upgrade_killed_midway_leaves_its_safety_copy_until_the_next_start_completes() {
    let checkout = newcomer_checkout();
    let dir = checkout.path();
    let (database, url, _) = new_database(Db::Sqlite, dir, "copy").unwrap();
    let conn = at_schema(&url, 7).await;
    let before = data(&conn).await;
    conn.close().await.unwrap();
    let copy = format!("{database}.before-m20261201_000009_delivery_messages");

    let crashed = migrate(dir, &database, Some(1));
    let stderr = String::from_utf8_lossy(&crashed.stderr);
    assert_eq!(crashed.status.code(), None, "{stderr}");
    assert!(
        stderr.contains(&format!("safety copy to {copy}")),
        "{stderr}"
    );
    let saved = Database::connect(format!("sqlite://{copy}?mode=ro"))
        .await
        .unwrap();
    assert_eq!(
        data(&saved).await,
        before,
        "the copy holds the data as it was"
    );
    assert_eq!(
        texts(&saved, "SELECT version FROM seaql_migrations")
            .await
            .len(),
        7
    );
    saved.close().await.unwrap();

    let next = migrate(dir, &database, None);
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert!(next.status.success(), "{stderr}");
    assert!(stderr.contains("removed the safety copy"), "{stderr}");
    assert!(!Path::new(&copy).exists());
}
