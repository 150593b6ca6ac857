//! Group commit of the dispatcher's two per-message ledger writes — `claimed → sending` (the
//! handover) and `→ sent` — which would otherwise cost one durable commit each (an fsync on
//! SQLite with `synchronous=FULL`, a WAL flush on PostgreSQL).
//!
//! Each caller still waits until *its* update is committed, so the guarantee is unchanged:
//! nothing is handed over before its `sending` is durable. Concurrent callers (one per SMTP
//! connection) simply share a transaction: one writer task takes whatever has queued up while
//! the previous commit was running, applies it in one transaction and answers each
//! caller with whether its row matched (the lease token fences every update as before).
//! A group is one `UPDATE … FROM (VALUES …)` statement, its own transaction: one round trip to
//! the database per commit, however many rows, tokens and kinds it carries.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, TransactionTrait, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError};

/// One fenced update of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op {
    /// `claimed → sending`, lease until `lease_until`.
    Sending {
        id: i64,
        token: String,
        lease_until: i64,
        now: i64,
    },
    /// `claimed | sending → sent`.
    Sent { id: i64, token: String, now: i64 },
}

impl Op {
    fn id(&self) -> i64 {
        match self {
            Op::Sending { id, .. } | Op::Sent { id, .. } => *id,
        }
    }
}

type Reply = oneshot::Sender<Result<bool, String>>;

/// The queue of the writer task (spawned on first use).
#[derive(Debug)]
pub(super) struct GroupCommit {
    tx: mpsc::UnboundedSender<(Op, Reply)>,
}

/// At most this many updates share one transaction.
const MAX_GROUP: usize = 256;

impl GroupCommit {
    pub(super) fn spawn(store: Store) -> GroupCommit {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Op, Reply)>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(op) => group.push(op),
                        Err(_) => break,
                    }
                }
                let result = apply(&store, &group).await;
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

    /// Queues `op` and waits until it is committed; `true` when it changed its row.
    pub(super) async fn run(&self, op: Op) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((op, reply))
            .map_err(|_| StoreError::Corrupt("the ledger writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Corrupt("the ledger writer stopped".into()))?
            .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e)))
    }
}

/// Applies a group as one `UPDATE … FROM (VALUES …) … RETURNING id`: a single statement is its
/// own transaction, so the whole group costs one round trip to the database and one durable
/// commit. Each row is fenced by its own lease token and the status it may move from. Rows that
/// appear twice in a group (never, as the dispatcher issues `sent` only after `sending`
/// answered, but cheap to guard) are applied in order, in one transaction.
async fn apply(store: &Store, group: &[(Op, Reply)]) -> Result<Vec<bool>, String> {
    let mut rounds: Vec<Vec<&Op>> = Vec::new();
    let mut seen: Vec<HashSet<i64>> = Vec::new();
    for (op, _) in group {
        match seen.iter().position(|s| !s.contains(&op.id())) {
            Some(i) => {
                seen[i].insert(op.id());
                rounds[i].push(op);
            }
            None => {
                seen.push(HashSet::from([op.id()]));
                rounds.push(vec![op]);
            }
        }
    }
    let mut matched: HashSet<(usize, i64)> = HashSet::new();
    if rounds.len() == 1 {
        for id in run_round(store, &store.db, &rounds[0]).await? {
            matched.insert((0, id));
        }
    } else {
        let txn = store.db.begin().await.map_err(|e| e.to_string())?;
        for (i, round) in rounds.iter().enumerate() {
            for id in run_round(store, &txn, round).await? {
                matched.insert((i, id));
            }
        }
        txn.commit().await.map_err(|e| e.to_string())?;
    }
    // The n-th occurrence of an id in the group went into round n.
    let mut occurrence: std::collections::HashMap<i64, usize> = Default::default();
    Ok(group
        .iter()
        .map(|(op, _)| {
            let n = occurrence.entry(op.id()).or_default();
            let hit = matched.contains(&(*n, op.id()));
            *n += 1;
            hit
        })
        .collect())
}

/// One statement over ops with distinct ids; the ids it changed.
async fn run_round(
    store: &Store,
    conn: &impl ConnectionTrait,
    ops: &[&Op],
) -> Result<Vec<i64>, String> {
    let mut rows = Vec::with_capacity(ops.len());
    let mut values: Vec<Value> = Vec::with_capacity(ops.len() * 5);
    for (i, op) in ops.iter().enumerate() {
        let b = i * 5;
        rows.push(format!(
            "(${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5
        ));
        let (id, token, kind, lease_until, now) = match op {
            Op::Sending {
                id,
                token,
                lease_until,
                now,
            } => (*id, token, 0i64, *lease_until, *now),
            Op::Sent { id, token, now } => (*id, token, 1i64, 0, *now),
        };
        values.extend([
            id.into(),
            token.clone().into(),
            kind.into(),
            lease_until.into(),
            now.into(),
        ]);
    }
    // o.column1 id, column2 lease token, column3 kind (0 sending, 1 sent), column4 lease
    // until (sending), column5 now.
    let sql = format!(
        "UPDATE deliveries SET \
           status = CASE WHEN o.column3 = 0 THEN 'sending' ELSE 'sent' END, \
           lease_until = CASE WHEN o.column3 = 0 THEN o.column4 ELSE NULL END, \
           lease_token = CASE WHEN o.column3 = 0 THEN deliveries.lease_token ELSE NULL END, \
           sent_at = CASE WHEN o.column3 = 0 THEN deliveries.sent_at ELSE o.column5 END, \
           last_error = CASE WHEN o.column3 = 0 THEN deliveries.last_error ELSE NULL END, \
           updated_at = o.column5 \
         FROM (VALUES {}) AS o \
         WHERE deliveries.id = o.column1 AND deliveries.lease_token = o.column2 \
           AND (deliveries.status = 'claimed' OR (deliveries.status = 'sending' AND o.column3 = 1)) \
         RETURNING deliveries.id",
        rows.join(", ")
    );
    let rows = conn
        .query_all_raw(store.stmt(&sql, values))
        .await
        .map_err(|e| e.to_string())?;
    rows.iter()
        .map(|r| r.try_get::<i64>("", "id").map_err(|e| e.to_string()))
        .collect()
}
