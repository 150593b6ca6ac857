//! Group commit of the dispatcher's two per-message ledger writes — `claimed → sending` (the
//! handover) and `→ sent` — which would otherwise cost one durable commit each (an fsync on
//! SQLite with `synchronous=FULL`, a WAL flush on PostgreSQL).
//!
//! Each caller still waits until *its* update is committed, so the guarantee is unchanged:
//! nothing is handed over before its `sending` is durable. Concurrent callers (one per SMTP
//! connection) simply share a transaction: one writer task takes whatever has queued up while
//! the previous commit was running, applies it in one transaction — rows of the same claim
//! (one lease token) and kind in one `UPDATE … WHERE id IN (…) RETURNING id` — and answers each
//! caller with whether its row matched (the lease token fences every update as before).

use std::collections::{BTreeMap, HashSet};

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

    /// Updates that can share one statement have the same key.
    fn key(&self) -> (u8, String, i64, i64) {
        match self {
            Op::Sending {
                token,
                lease_until,
                now,
                ..
            } => (0, token.clone(), *lease_until, *now),
            Op::Sent { token, now, .. } => (1, token.clone(), 0, *now),
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

async fn apply(store: &Store, group: &[(Op, Reply)]) -> Result<Vec<bool>, String> {
    let mut statements: BTreeMap<(u8, String, i64, i64), Vec<i64>> = BTreeMap::new();
    for (op, _) in group {
        statements.entry(op.key()).or_default().push(op.id());
    }
    let txn = store.db.begin().await.map_err(|e| e.to_string())?;
    let mut matched: HashSet<i64> = HashSet::new();
    for ((kind, token, lease_until, now), ids) in statements {
        let first = if kind == 0 { 4 } else { 3 };
        let list: Vec<String> = (0..ids.len()).map(|i| format!("${}", first + i)).collect();
        let (sql, mut values): (String, Vec<Value>) = if kind == 0 {
            (
                format!(
                    "UPDATE deliveries SET status = 'sending', lease_until = $1, updated_at = $2 \
                     WHERE lease_token = $3 AND status = 'claimed' AND id IN ({}) RETURNING id",
                    list.join(", ")
                ),
                vec![lease_until.into(), now.into(), token.into()],
            )
        } else {
            (
                format!(
                    "UPDATE deliveries SET status = 'sent', sent_at = $1, updated_at = $1, lease_token = NULL, lease_until = NULL, last_error = NULL \
                     WHERE lease_token = $2 AND status IN ('claimed', 'sending') AND id IN ({}) RETURNING id",
                    list.join(", ")
                ),
                vec![now.into(), token.into()],
            )
        };
        values.extend(ids.iter().map(|i| Value::from(*i)));
        let rows = txn
            .query_all_raw(store.stmt(&sql, values))
            .await
            .map_err(|e| e.to_string())?;
        for r in rows {
            matched.insert(r.try_get::<i64>("", "id").map_err(|e| e.to_string())?);
        }
    }
    txn.commit().await.map_err(|e| e.to_string())?;
    Ok(group
        .iter()
        .map(|(op, _)| matched.contains(&op.id()))
        .collect())
}
