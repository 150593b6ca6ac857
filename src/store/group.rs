//! Group commit of the dispatcher's two per-message ledger writes — `claimed → sending` (the
//! handover, storing the message composed for the attempt) and `→ sent` — which would
//! otherwise cost one durable commit each (an fsync on SQLite with `synchronous=FULL`, a WAL
//! flush on PostgreSQL).
//!
//! Each caller still waits until *its* update is committed, so the guarantee is unchanged:
//! nothing is handed over before its `sending` is durable. Concurrent callers (one per SMTP
//! connection) simply share a commit: one writer task takes whatever has queued up while the
//! previous commit was running, applies it as one `UPDATE … FROM (VALUES …)` statement (its own
//! transaction: one round trip to the database, however many rows, tokens and kinds it
//! carries) and answers each caller with whether its row matched (the lease token fences every
//! update as before). A group whose handovers carry messages stores them in the same
//! transaction: on SQLite one statement list (`BEGIN IMMEDIATE`, the payloads, the update,
//! `COMMIT`), still one round trip to SQLite's worker thread; on PostgreSQL a transaction.
//!
//! A caller that is not holding a connection while it waits — the `sent` of a row committed
//! ahead (`delivery.handover_batch` > 1), whose connection has already moved on — may let its
//! update *linger*: a group made only of such updates waits up to [`LINGER`] for company before
//! it commits, so results arriving a few per millisecond (an SMS gateway answering in about a
//! millisecond over 8 connections) share one commit instead of paying one each. Any update that
//! does not linger ends the wait at once, so nothing on a connection's path is ever delayed.
//!
//! The writer keeps a connection of its own between groups ([`Writer`]) and pads each statement
//! to a power-of-two number of rows, so a commit is one round trip to the database and a
//! statement prepared once: a connection taken from the pool and given back for each group
//! costs sqlx a spawned task and a ping of the connection on every return, and a statement per
//! group size falls out of the statement cache (issue #26).

use std::collections::HashSet;
use std::sync::Arc;

use sea_orm::DbBackend;
use sea_orm::sqlx::{self, Postgres, Row, Sqlite, pool::PoolConnection};
use tokio::sync::{mpsc, oneshot};

use super::bulk::values_list;
use super::{NewMessage, Store, StoreError, distinct_chunks};

/// One fenced update of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op {
    /// `claimed → sending`, lease until `lease_until`; with the message composed for this
    /// attempt, stored in the same commit.
    Sending {
        id: i64,
        token: String,
        lease_until: i64,
        now: i64,
        message: Option<Box<NewMessage>>,
    },
    /// `claimed | sending → sent`.
    Sent { id: i64, token: String, now: i64 },
}

impl Op {
    /// The row it updates.
    fn id(&self) -> i64 {
        match self {
            Op::Sending { id, .. } | Op::Sent { id, .. } => *id,
        }
    }

    /// The message it stores, if any.
    fn message(&self) -> Option<&NewMessage> {
        match self {
            Op::Sending { message, .. } => message.as_deref(),
            Op::Sent { .. } => None,
        }
    }
}

type Reply = oneshot::Sender<Result<bool, String>>;

/// Whether an update may wait for company before it commits (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Someone holds a connection until it is committed: commit with whatever has queued.
    Now,
    /// Nobody waits on it with a connection (its connection took the next message already,
    /// and others of its channel are on the wire): a group of only these lingers up to 5 ms.
    Linger,
}

/// The queue of the writer task (spawned on first use).
#[derive(Debug)]
pub(super) struct GroupCommit {
    tx: mpsc::UnboundedSender<(Op, Reply, Urgency)>,
}

/// At most this many updates share one transaction.
const MAX_GROUP: usize = 256;

/// How long a group of lingering updates waits for more before it commits.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

impl GroupCommit {
    pub(super) fn spawn(store: Store) -> GroupCommit {
        Self::spawn_lingering(store, LINGER)
    }

    /// [`GroupCommit::spawn`] with another linger (the tests make it long).
    fn spawn_lingering(store: Store, linger: std::time::Duration) -> GroupCommit {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Op, Reply, Urgency)>();
        tokio::spawn(async move {
            let mut writer = Writer::default();
            while let Some((op, reply, urgency)) = rx.recv().await {
                let mut urgent = urgency == Urgency::Now;
                let mut group = vec![(op, reply)];
                let deadline = tokio::time::Instant::now() + linger;
                while group.len() < MAX_GROUP {
                    let next = if urgent {
                        rx.try_recv().ok()
                    } else {
                        // Past the deadline: commit what has come.
                        tokio::time::timeout_at(deadline, rx.recv())
                            .await
                            .unwrap_or_default()
                    };
                    let Some((op, reply, urgency)) = next else {
                        break;
                    };
                    urgent |= urgency == Urgency::Now;
                    group.push((op, reply));
                }
                let result = apply(&store, &mut writer, &group).await;
                for (i, (_, reply)) in group.into_iter().enumerate() {
                    let _ = reply.send(match &result {
                        Ok(matched) => Ok(matched[i]),
                        Err(e) => Err(e.clone()),
                    });
                }
            }
        });
        GroupCommit { tx }
    }

    /// Queues `op` at once (not when the answer is first polled) and returns the wait for its
    /// commit: `true` when it changed its row. Ops commit in the order they were queued, so an
    /// op queued after another never commits before it.
    pub(super) fn queue(
        &self,
        op: Op,
        urgency: Urgency,
    ) -> impl Future<Output = Result<bool, StoreError>> + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = self.tx.send((op, reply, urgency));
        async move {
            queued.map_err(|_| StoreError::Corrupt("the ledger writer stopped".into()))?;
            answer
                .await
                .map_err(|_| StoreError::Corrupt("the ledger writer stopped".into()))?
                .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e)))
        }
    }
}

/// Applies a group as one `UPDATE … FROM (VALUES …) … RETURNING id`: a single statement is its
/// own transaction, so the whole group costs one round trip to the database and one durable
/// commit. Each row is fenced by its own lease token and the status it may move from. A row
/// that appears twice (never, as the dispatcher issues `sent` only after `sending` answered,
/// but cheap to guard) starts a new statement, so the updates of one row apply in order.
async fn apply(
    store: &Store,
    writer: &mut Writer,
    group: &[(Op, Reply)],
) -> Result<Vec<bool>, String> {
    let mut changed = Vec::with_capacity(group.len());
    for run in distinct_chunks(group, group.len(), |(op, _)| op.id()) {
        let ops: Vec<&Op> = run.iter().map(|(op, _)| op).collect();
        let matched: HashSet<i64> = run_round(store, writer, &ops).await?.into_iter().collect();
        changed.extend(run.iter().map(|(op, _)| matched.contains(&op.id())));
    }
    Ok(changed)
}

/// One row of the statement's `VALUES`: id, lease token, kind (0 sending, 1 sent), lease until
/// (sending), now, and the subject and Message-ID of a message stored with the handover.
type ValuesRow<'a> = (
    i64,
    &'a str,
    i64,
    i64,
    i64,
    Option<&'a str>,
    Option<&'a str>,
);

/// The `VALUES` row of one op.
fn columns(op: &Op) -> ValuesRow<'_> {
    match op {
        Op::Sending {
            id,
            token,
            lease_until,
            now,
            message,
        } => {
            let m = message.as_deref();
            (
                *id,
                token,
                0,
                *lease_until,
                *now,
                m.and_then(|m| m.subject.as_deref()),
                m.and_then(|m| m.message_id.as_deref()),
            )
        }
        Op::Sent { id, token, now } => (*id, token, 1, 0, *now, None, None),
    }
}

/// A `VALUES` row that matches no delivery (ids start at 1): pads a group to its statement's
/// size.
const PADDING: ValuesRow<'static> = (-1, "", 1, 0, 0, None, None);

/// The statement for `rows` rows of `VALUES`: `$n` on PostgreSQL, anonymous `?` on SQLite, for
/// the reason [`Store::stmt_positional`] gives (numbered ones bind in O(N²) there).
fn update_sql(backend: DbBackend, rows: usize) -> String {
    let values = if backend == DbBackend::Sqlite {
        vec!["(?, ?, ?, ?, ?, ?, ?)"; rows].join(", ")
    } else {
        values_list(1, rows, 7, false)
    };
    // o.column1 id, column2 lease token, column3 kind (0 sending, 1 sent), column4 lease
    // until (sending), column5 now, column6 and column7 the subject and Message-ID of a
    // message stored with its handover (NULL otherwise: the row keeps its own).
    format!(
        "UPDATE deliveries SET \
           status = CASE WHEN o.column3 = 0 THEN 'sending' ELSE 'sent' END, \
           subject = COALESCE(o.column6, deliveries.subject), \
           message_id = COALESCE(o.column7, deliveries.message_id), \
           lease_until = CASE WHEN o.column3 = 0 THEN o.column4 ELSE NULL END, \
           lease_token = CASE WHEN o.column3 = 0 THEN deliveries.lease_token ELSE NULL END, \
           sent_at = CASE WHEN o.column3 = 0 THEN deliveries.sent_at ELSE o.column5 END, \
           last_error = CASE WHEN o.column3 = 0 THEN deliveries.last_error ELSE NULL END, \
           updated_at = o.column5 \
         FROM (VALUES {values}) AS o \
         WHERE deliveries.id = o.column1 AND deliveries.lease_token = o.column2 \
           AND (deliveries.status = 'claimed' OR (deliveries.status = 'sending' AND o.column3 = 1)) \
         RETURNING deliveries.id"
    )
}

/// One statement over ops with distinct ids, padded to the next power of two rows (at most
/// nine statements, each built and prepared once on the writer's connection); the ids it
/// changed. The messages some handovers carry are stored, for the rows the statement changed,
/// in the same transaction. An error gives the connection up: the next group takes a fresh one
/// from the pool.
async fn run_round(store: &Store, writer: &mut Writer, ops: &[&Op]) -> Result<Vec<i64>, String> {
    let rows: Vec<ValuesRow<'_>> = ops
        .iter()
        .map(|op| columns(op))
        .chain(std::iter::repeat(PADDING))
        .take(ops.len().next_power_of_two())
        .collect();
    let sql = writer.sql[rows.len().trailing_zeros() as usize]
        .get_or_insert_with(|| update_sql(store.backend, rows.len()).into())
        .clone();
    let messages: Vec<(i64, &str)> = ops
        .iter()
        .filter_map(|op| op.message().map(|m| (op.id(), m.payload.as_str())))
        .collect();
    let conn = match &mut writer.conn {
        Some(conn) => conn,
        none => none.insert(Own::acquire(store).await.map_err(|e| e.to_string())?),
    };
    let ids = match conn {
        _ if messages.is_empty() => conn.fetch_ids(sql, &rows).await,
        // One round trip to SQLite's worker thread: the transaction, the payloads and the
        // update in one statement list.
        Own::Sqlite(c) => {
            let payloads: Vec<(i64, &str, &str)> = ops
                .iter()
                .map(|op| match op.message() {
                    Some(m) => (op.id(), m.payload.as_str(), columns(op).1),
                    None => NO_PAYLOAD,
                })
                .chain(std::iter::repeat(NO_PAYLOAD))
                .take(rows.len())
                .collect();
            let sql = writer.storing_sql[rows.len().trailing_zeros() as usize]
                .get_or_insert_with(|| storing_sql_sqlite(rows.len()).into())
                .clone();
            let r = Own::fetch_ids_storing_sqlite(c, sql, &payloads, &rows).await;
            if r.is_err() {
                // Whatever the list left open is undone before the connection goes back.
                let _ = sqlx::query("ROLLBACK").execute(&mut **c).await;
            }
            r
        }
        Own::Postgres(c) => {
            let statements = &mut writer.storing_sql;
            Own::fetch_ids_storing_postgres(c, sql, &rows, &messages, |n| {
                statements[n.trailing_zeros() as usize]
                    .get_or_insert_with(|| payload_sql_postgres(n).into())
                    .clone()
            })
            .await
        }
    };
    if ids.is_err() {
        writer.conn = None;
    }
    ids.map_err(|e| e.to_string())
}

/// PostgreSQL's statement storing `rows` payloads (`VALUES` of id and payload; padding rows
/// have the id -1 and are skipped), replacing one stored before; run in the update's
/// transaction, for the rows the update changed.
fn payload_sql_postgres(rows: usize) -> String {
    format!(
        "INSERT INTO delivery_messages (delivery_id, payload) \
         SELECT o.column1, o.column2 FROM (VALUES {}) AS o WHERE o.column1 > 0 \
         ON CONFLICT (delivery_id) DO UPDATE SET payload = excluded.payload",
        values_list(1, rows, 2, false)
    )
}

/// SQLite's group with messages as one statement list: `BEGIN IMMEDIATE`, the payloads of the
/// rows the update will change (`VALUES` of id, payload and lease token: the same fence as the
/// `claimed → sending` update; padding rows have the id -1), the update of `rows` rows, and
/// `COMMIT`.
fn storing_sql_sqlite(rows: usize) -> String {
    let values = vec!["(?, ?, ?)"; rows].join(", ");
    format!(
        "BEGIN IMMEDIATE; \
         INSERT INTO delivery_messages (delivery_id, payload) \
         SELECT o.column1, o.column2 FROM (VALUES {values}) AS o \
         JOIN deliveries d ON d.id = o.column1 AND d.lease_token = o.column3 AND d.status = 'claimed' \
         WHERE o.column1 > 0 \
         ON CONFLICT (delivery_id) DO UPDATE SET payload = excluded.payload; \
         {}; \
         COMMIT",
        update_sql(DbBackend::Sqlite, rows)
    )
}

/// A payload row that stores nothing: pads a payload statement to its size.
const NO_PAYLOAD: (i64, &str, &str) = (-1, "", "");

/// What the writer keeps from one group to the next: its connection (taken on the first group
/// and again after an error) and its statements, by their rows' power of two.
#[derive(Default)]
struct Writer {
    conn: Option<Own>,
    sql: [Option<Arc<str>>; MAX_GROUP.next_power_of_two().trailing_zeros() as usize + 1],
    /// For groups with messages: SQLite's statement lists, PostgreSQL's payload statements.
    storing_sql: [Option<Arc<str>>; MAX_GROUP.next_power_of_two().trailing_zeros() as usize + 1],
}

/// The writer's own connection from the store's pool, held from one group to the next.
enum Own {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// The statement `$sql` with the `VALUES` rows of the update bound, in order.
macro_rules! bind_rows {
    ($sql:expr, $rows:expr, $db:ty) => {
        bind_rows!(sqlx::query::<$db>(sqlx::AssertSqlSafe($sql)), $rows)
    };
    // Bound after what `$q` has bound already.
    ($q:expr, $rows:expr) => {{
        let mut q = $q;
        for &(id, token, kind, lease_until, now, subject, message_id) in $rows {
            q = q
                .bind(id)
                .bind(token)
                .bind(kind)
                .bind(lease_until)
                .bind(now)
                .bind(subject)
                .bind(message_id);
        }
        q
    }};
}

/// The `id` column of each row returned.
fn ids_of<R: Row>(rows: Vec<R>) -> Result<Vec<i64>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter().map(|r| r.try_get::<i64, _>(0)).collect()
}

impl Own {
    async fn acquire(store: &Store) -> Result<Own, sqlx::Error> {
        match store.backend {
            DbBackend::Sqlite => Ok(Own::Sqlite(
                store.db.get_sqlite_connection_pool().acquire().await?,
            )),
            DbBackend::Postgres => Ok(Own::Postgres(
                store.db.get_postgres_connection_pool().acquire().await?,
            )),
            other => Err(sqlx::Error::Configuration(
                format!("no ledger writer for {other:?}").into(),
            )),
        }
    }

    /// Runs `sql` with `rows` bound in order; the `id` column of each row returned.
    async fn fetch_ids(
        &mut self,
        sql: Arc<str>,
        rows: &[ValuesRow<'_>],
    ) -> Result<Vec<i64>, sqlx::Error> {
        match self {
            Own::Sqlite(conn) => {
                ids_of(bind_rows!(sql, rows, Sqlite).fetch_all(&mut **conn).await?)
            }
            Own::Postgres(conn) => ids_of(
                bind_rows!(sql, rows, Postgres)
                    .fetch_all(&mut **conn)
                    .await?,
            ),
        }
    }

    /// Runs SQLite's statement list of [`storing_sql_sqlite`]: `payloads` bound first, then
    /// `rows`; the ids the update changed.
    async fn fetch_ids_storing_sqlite(
        conn: &mut PoolConnection<Sqlite>,
        sql: Arc<str>,
        payloads: &[(i64, &str, &str)],
        rows: &[ValuesRow<'_>],
    ) -> Result<Vec<i64>, sqlx::Error> {
        let mut q = sqlx::query::<Sqlite>(sqlx::AssertSqlSafe(sql));
        for &(id, payload, token) in payloads {
            q = q.bind(id).bind(payload).bind(token);
        }
        ids_of(bind_rows!(q, rows).fetch_all(&mut **conn).await?)
    }

    /// PostgreSQL's group with messages: in one transaction the update of `rows`, then the
    /// `messages` (row id, payload) of the rows it changed, by statements from `payload_sql`
    /// (given a power of two rows); the ids it changed.
    async fn fetch_ids_storing_postgres(
        conn: &mut PoolConnection<Postgres>,
        sql: Arc<str>,
        rows: &[ValuesRow<'_>],
        messages: &[(i64, &str)],
        mut payload_sql: impl FnMut(usize) -> Arc<str>,
    ) -> Result<Vec<i64>, sqlx::Error> {
        let mut tx = sqlx::Connection::begin(&mut **conn).await?;
        let ids = ids_of(bind_rows!(sql, rows, Postgres).fetch_all(&mut *tx).await?)?;
        let changed: HashSet<i64> = ids.iter().copied().collect();
        let stored: Vec<(i64, &str)> = messages
            .iter()
            .copied()
            .filter(|(id, _)| changed.contains(id))
            .collect();
        if !stored.is_empty() {
            let n = stored.len().next_power_of_two();
            let mut q = sqlx::query::<Postgres>(sqlx::AssertSqlSafe(payload_sql(n)));
            for (id, payload) in stored
                .into_iter()
                .chain(std::iter::repeat((-1, "")))
                .take(n)
            {
                q = q.bind(id).bind(payload);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::migrate::tests::TestDir;
    use crate::store::{ClaimedDelivery, NewDelivery, Status};

    /// A store in a fresh SQLite file holding `n` claimed rows (dropped with the directory).
    async fn claimed(name: &str, n: i64) -> (Store, Vec<ClaimedDelivery>, TestDir) {
        let dir = TestDir::new(name);
        let store = Store::open(&format!("sqlite://{}/t.db?mode=rwc", dir.display()))
            .await
            .unwrap();
        let rows: Vec<NewDelivery> = (1..=n).map(row).collect();
        store.insert_deliveries(&rows, 0).await.unwrap();
        let claimed = store.claim_due(10, 10, 60).await.unwrap();
        (store, claimed, dir)
    }

    fn row(customer_id: i64) -> NewDelivery {
        NewDelivery {
            ritual: "birthday".into(),
            category: "birthday".into(),
            customer_id,
            occurrence: "2027".into(),
            channel: "email".into(),
            status: Status::Pending,
            reason: None,
            recipient: Some("a@example.com".into()),
            subject: None,
            payload: Some("x".into()),
            message_id: None,
            due_at: 0,
            occasion: None,
            send_window: None,
        }
    }

    /// Every row's status, in id order.
    async fn statuses(store: &Store) -> Vec<String> {
        store
            .deliveries()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.status.to_string())
            .collect()
    }

    fn sent(row: &ClaimedDelivery) -> Op {
        Op::Sent {
            id: row.id,
            token: row.lease_token.clone(),
            now: 11,
        }
    }

    /// The same row twice in one group: `sending` then `sent`, applied in that order.
    #[tokio::test]
    async fn a_row_twice_in_a_group_is_updated_in_order() {
        let (store, claimed, _dir) = claimed("group", 2).await;
        let (a, b) = (&claimed[0], &claimed[1]);
        let op = |o: Op| (o, oneshot::channel().0);
        let group = [
            op(Op::Sending {
                id: a.id,
                token: a.lease_token.clone(),
                lease_until: 100,
                now: 10,
                message: None,
            }),
            op(Op::Sending {
                id: b.id,
                token: b.lease_token.clone(),
                lease_until: 100,
                now: 10,
                message: None,
            }),
            op(Op::Sent {
                id: a.id,
                token: a.lease_token.clone(),
                now: 11,
            }),
            // A stale token matches nothing.
            op(Op::Sent {
                id: b.id,
                token: "someone else".into(),
                now: 11,
            }),
        ];
        assert_eq!(
            apply(&store, &mut Writer::default(), &group).await.unwrap(),
            [true, true, true, false]
        );
        assert_eq!(statuses(&store).await, ["sent", "sending"]);
    }

    fn sending(row: &ClaimedDelivery) -> Op {
        Op::Sending {
            id: row.id,
            token: row.lease_token.clone(),
            lease_until: 100,
            now: 10,
            message: None,
        }
    }

    /// The message of each row, as the ledger holds it: (subject, Message-ID, payload), in id
    /// order.
    async fn messages(store: &Store) -> Vec<(Option<String>, Option<String>, Option<String>)> {
        store
            .all(
                "SELECT d.subject, d.message_id, m.payload FROM deliveries d \
                 LEFT JOIN delivery_messages m ON m.delivery_id = d.id ORDER BY d.id",
                vec![],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get("", "subject").unwrap(),
                    r.try_get("", "message_id").unwrap(),
                    r.try_get("", "payload").unwrap(),
                )
            })
            .collect()
    }

    fn with_message(row: &ClaimedDelivery, token: &str, n: usize) -> Op {
        Op::Sending {
            id: row.id,
            token: token.into(),
            lease_until: 100,
            now: 10,
            message: Some(Box::new(NewMessage {
                subject: Some(format!("subject {n}")),
                message_id: Some(format!("<{n}@example.com>")),
                payload: format!("message {n}"),
            })),
        }
    }

    /// A handover carrying the message composed for its attempt stores it with the row in the
    /// same commit (replacing a stored one); a handover whose lease was lost stores nothing; a
    /// handover without a message leaves the stored one as it was. In groups of 1, 3 (padded)
    /// and with a `sent` beside them.
    #[tokio::test]
    async fn a_handover_stores_its_message_in_the_same_commit() {
        let (store, claimed, _dir) = claimed("group-message", 5).await;
        let op = |o: Op| (o, oneshot::channel().0);
        let mut writer = Writer::default();
        let group = [
            op(with_message(&claimed[0], &claimed[0].lease_token, 0)),
            op(with_message(&claimed[1], "someone else", 1)),
            op(sending(&claimed[2])),
        ];
        assert_eq!(
            apply(&store, &mut writer, &group).await.unwrap(),
            [true, false, true]
        );
        let one = [op(with_message(&claimed[3], &claimed[3].lease_token, 3))];
        assert_eq!(apply(&store, &mut writer, &one).await.unwrap(), [true]);
        let mixed = [
            op(sent(&claimed[0])),
            op(with_message(&claimed[4], &claimed[4].lease_token, 4)),
        ];
        assert_eq!(
            apply(&store, &mut writer, &mixed).await.unwrap(),
            [true, true]
        );
        assert_eq!(
            statuses(&store).await,
            ["sent", "claimed", "sending", "sending", "sending"]
        );
        let stored = |n: usize| {
            (
                Some(format!("subject {n}")),
                Some(format!("<{n}@example.com>")),
                Some(format!("message {n}")),
            )
        };
        let untouched = (None, None, Some("x".to_string()));
        assert_eq!(
            messages(&store).await,
            [
                stored(0),
                untouched.clone(),
                untouched,
                stored(3),
                stored(4)
            ]
        );
    }

    /// Groups of sizes that are not powers of two are padded with rows that match nothing:
    /// each group changes exactly its own rows, on one connection kept from group to group.
    #[tokio::test]
    async fn a_padded_group_changes_exactly_its_rows() {
        let (store, claimed, _dir) = claimed("group-padded", 9).await;
        let op = |o: Op| (o, oneshot::channel().0);
        let mut writer = Writer::default();
        let three: Vec<_> = claimed[..3].iter().map(|r| op(sending(r))).collect();
        assert_eq!(apply(&store, &mut writer, &three).await.unwrap(), [true; 3]);
        assert!(writer.conn.is_some(), "the writer gave its connection back");
        let mut five: Vec<_> = claimed[3..8].iter().map(|r| op(sending(r))).collect();
        // A stale token among them matches nothing, padded or not.
        five[4] = op(Op::Sending {
            id: claimed[7].id,
            token: "someone else".into(),
            lease_until: 100,
            now: 10,
            message: None,
        });
        assert_eq!(
            apply(&store, &mut writer, &five).await.unwrap(),
            [true, true, true, true, false]
        );
        let one = [op(sent(&claimed[0]))];
        assert_eq!(apply(&store, &mut writer, &one).await.unwrap(), [true]);
        // Three sizes (4, 8 and 1 rows once padded): three statements kept, one of each.
        assert_eq!(writer.sql.iter().flatten().count(), 3);
        assert_eq!(
            statuses(&store).await,
            [
                "sent", "sending", "sending", "sending", "sending", "sending", "sending",
                "claimed", "claimed"
            ]
        );
    }

    /// A statement that fails gives the writer's connection up, and the next group commits on
    /// a fresh one from the pool.
    #[tokio::test]
    async fn the_writer_takes_a_fresh_connection_after_an_error() {
        let (store, claimed, _dir) = claimed("group-error", 2).await;
        let op = |o: Op| (o, oneshot::channel().0);
        let mut writer = Writer::default();
        let first = [op(sending(&claimed[0]))];
        assert_eq!(apply(&store, &mut writer, &first).await.unwrap(), [true]);
        store
            .exec("ALTER TABLE deliveries RENAME TO deliveries_away", vec![])
            .await
            .unwrap();
        let second = [op(sending(&claimed[1]))];
        let err = apply(&store, &mut writer, &second).await.unwrap_err();
        assert!(err.contains("deliveries"), "{err}");
        assert!(writer.conn.is_none(), "the failed connection was kept");
        store
            .exec("ALTER TABLE deliveries_away RENAME TO deliveries", vec![])
            .await
            .unwrap();
        assert_eq!(apply(&store, &mut writer, &second).await.unwrap(), [true]);
        assert!(writer.conn.is_some());
        assert_eq!(statuses(&store).await, ["sending", "sending"]);
    }

    /// A lingering update waits for company; an update that does not linger ends the wait at
    /// once, and both commit together.
    #[tokio::test]
    async fn an_urgent_update_ends_the_linger_of_the_group() {
        let (store, claimed, _dir) = claimed("group-linger", 2).await;
        // Far longer than the test: only the urgent update can end the wait.
        let group = GroupCommit::spawn_lingering(store.clone(), Duration::from_secs(600));
        let lingering = group.queue(sent(&claimed[0]), Urgency::Linger);
        tokio::pin!(lingering);
        // Queued, and still waiting for company after a while.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut lingering)
                .await
                .is_err(),
            "a lingering update alone committed before its linger was over"
        );
        let urgent = group.queue(sent(&claimed[1]), Urgency::Now);
        let (a, b) = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(lingering, urgent)
        })
        .await
        .expect("the urgent update did not end the linger");
        assert_eq!((a.unwrap(), b.unwrap()), (true, true));
        assert_eq!(statuses(&store).await, ["sent", "sent"]);
    }

    /// An update is queued when it is issued, before anyone awaits it, lingers until an
    /// urgent one comes, and commits no later than an update queued after it: the dispatcher
    /// relies on this to hand the next email or SMS over in the same commit as the previous
    /// one's result (one commit per message on its connection's path).
    #[tokio::test]
    async fn an_update_issued_first_commits_no_later_than_one_issued_after_it() {
        let (store, claimed, _dir) = claimed("group-order", 2).await;
        let group = GroupCommit::spawn_lingering(store.clone(), Duration::from_secs(600));
        // Issued, never polled before the next one is committed.
        let first = group.queue(sent(&claimed[0]), Urgency::Linger);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Lingering: not yet written.
        assert_eq!(statuses(&store).await, ["claimed", "claimed"]);
        let handover = Op::Sending {
            id: claimed[1].id,
            token: claimed[1].lease_token.clone(),
            lease_until: 100,
            now: 11,
            message: None,
        };
        let second =
            tokio::time::timeout(Duration::from_secs(30), group.queue(handover, Urgency::Now))
                .await
                .expect("the urgent update did not commit");
        assert!(second.unwrap());
        assert_eq!(statuses(&store).await, ["sent", "sending"]);
        assert!(first.await.unwrap());
    }

    /// A lingering update with no company commits once its linger is over, and one that does
    /// not linger never waits for one.
    #[tokio::test]
    async fn a_lone_lingering_update_commits_after_its_linger() {
        let (store, claimed, _dir) = claimed("group-lone", 2).await;
        let group = GroupCommit::spawn_lingering(store.clone(), Duration::from_millis(200));
        let t = std::time::Instant::now();
        let done = tokio::time::timeout(
            Duration::from_secs(30),
            group.queue(sent(&claimed[0]), Urgency::Linger),
        )
        .await
        .expect("a lingering update never committed");
        assert!(done.unwrap());
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "committed before its linger was over: {:?}",
            t.elapsed()
        );
        // The default linger, and an update that does not linger: both commit.
        let group = GroupCommit::spawn(store.clone());
        assert!(
            tokio::time::timeout(
                Duration::from_secs(30),
                group.queue(sent(&claimed[1]), Urgency::Now)
            )
            .await
            .unwrap()
            .unwrap()
        );
        assert_eq!(store.status_counts().await.unwrap()["sent"], 2);
    }
}
