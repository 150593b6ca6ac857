//! How a SQLite connection waits for the write lock another connection holds: the only
//! `unsafe` of ritualist, one call into SQLite's C API.
//!
//! SQLite's own wait (`busy_timeout`) sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then
//! 100 ms between tries, and nothing wakes it when the lock is given back. On a mass day the
//! tick's inserts, the claims and the ledger writer's group commits take the lock in turn, each
//! for a few milliseconds, so a writer that found it taken slept on long after it was free:
//! about 600 such sleeps in a mass day of 100,000 customers, one connection asleep for seconds
//! in all (issue #26). [`retry_soon`] tries again every 100 µs for the first 10 ms of a wait,
//! then every millisecond, and gives up after the same 10 s as before (`SQLITE_BUSY`, the
//! caller's error, as with `busy_timeout`).

use std::ffi::{c_int, c_void};
use std::time::Duration;

use sea_orm::sqlx::{self, SqliteConnection};

/// Tries in the first, fine-grained part of a wait (100 µs each: 10 ms).
const FINE_TRIES: c_int = 100;
/// Tries in all: 10 ms, then 1 ms each up to 10 s.
const ALL_TRIES: c_int = FINE_TRIES + 9_990;

/// SQLite's busy handler: called with the number of times it was already called for this
/// wait; non-zero to try again.
extern "C" fn retry_soon(_: *mut c_void, tries: c_int) -> c_int {
    if tries >= ALL_TRIES {
        return 0;
    }
    let pause = if tries < FINE_TRIES {
        Duration::from_micros(100)
    } else {
        Duration::from_millis(1)
    };
    // On the connection's own worker thread (sqlx runs each SQLite connection on one): only
    // this connection waits.
    std::thread::sleep(pause);
    1
}

/// Makes `conn` wait for a lock with [`retry_soon`] (replacing `busy_timeout`).
pub(super) async fn wait_soon(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is the live connection handle, locked for this call by `lock_handle`; the
    // handler is a plain function with no state (its argument is null and unused).
    let rc =
        unsafe { libsqlite3_sys::sqlite3_busy_handler(db, Some(retry_soon), std::ptr::null_mut()) };
    if rc == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "cannot set SQLite's busy handler (code {rc})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::migrate::tests::TestDir;

    /// A write that finds another connection's transaction holding the lock waits for it and
    /// then succeeds: the handler is on every connection of the pool, and it tries again.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_write_waits_for_the_lock_another_connection_holds() {
        let dir = TestDir::new("busy-wait");
        let store = Store::open(&format!("sqlite://{}/t.db?mode=rwc", dir.display()))
            .await
            .unwrap();
        let pool = store.db.get_sqlite_connection_pool();
        let mut holder = pool.acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *holder)
            .await
            .unwrap();
        sqlx::query("INSERT INTO settings (key, value) VALUES ('busy-test', 'first')")
            .execute(&mut *holder)
            .await
            .unwrap();
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .exec(
                        "INSERT INTO settings (key, value) VALUES ('busy-test-2', 'second')",
                        vec![],
                    )
                    .await
            })
        };
        // The second write cannot have its lock while the first transaction is open.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !waiting.is_finished(),
            "the write did not wait for the lock"
        );
        sqlx::query("COMMIT").execute(&mut *holder).await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), 1);
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM settings WHERE key LIKE 'busy-test%'")
                .fetch_one(&mut *holder)
                .await
                .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn a_wait_tries_again_until_its_ten_seconds_are_spent() {
        for tries in [0, 1, FINE_TRIES - 1, FINE_TRIES, ALL_TRIES - 1] {
            assert_eq!(retry_soon(std::ptr::null_mut(), tries), 1, "try {tries}");
        }
        for tries in [ALL_TRIES, ALL_TRIES + 1, c_int::MAX] {
            assert_eq!(retry_soon(std::ptr::null_mut(), tries), 0, "try {tries}");
        }
    }
}
