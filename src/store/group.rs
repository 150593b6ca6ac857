//! Group commit of the dispatcher's two per-message ledger writes — `claimed → sending` (the
//! handover) and `→ sent` — which would otherwise cost one durable commit each (an fsync on
//! SQLite with `synchronous=FULL`, a WAL flush on PostgreSQL).
//!
//! Each caller still waits until *its* update is committed, so the guarantee is unchanged:
//! nothing is handed over before its `sending` is durable. Concurrent callers (one per SMTP
//! connection) simply share a transaction: one writer task takes whatever has queued up while
//! the previous commit was running, applies it in one transaction, and answers each caller
//! with whether its row matched (the lease token fences every update as before).

use sea_orm::{ConnectionTrait, TransactionTrait, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError};

/// One fenced update.
#[derive(Debug)]
pub(super) struct Op {
    pub sql: &'static str,
    pub values: Vec<Value>,
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
    let txn = store.db.begin().await.map_err(|e| e.to_string())?;
    let mut matched = Vec::with_capacity(group.len());
    for (op, _) in group {
        let n = txn
            .execute_raw(store.stmt(op.sql, op.values.clone()))
            .await
            .map_err(|e| e.to_string())?
            .rows_affected();
        matched.push(n == 1);
    }
    txn.commit().await.map_err(|e| e.to_string())?;
    Ok(matched)
}
