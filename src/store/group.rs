//! Group commit of the dispatcher's two per-message ledger writes — `claimed → sending` (the
//! handover) and `→ sent` — which would otherwise cost one durable commit each (an fsync on
//! SQLite with `synchronous=FULL`, a WAL flush on PostgreSQL).
//!
//! Each caller still waits until *its* update is committed, so the guarantee is unchanged:
//! nothing is handed over before its `sending` is durable. Concurrent callers (one per SMTP
//! connection) simply share a commit: one writer task takes whatever has queued up while the
//! previous commit was running, applies it as one `UPDATE … FROM (VALUES …)` statement (its own
//! transaction: one round trip to the database, however many rows, tokens and kinds it
//! carries) and answers each caller with whether its row matched (the lease token fences every
//! update as before).

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, placeholders};

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
/// commit. Each row is fenced by its own lease token and the status it may move from. A row
/// that appears twice (never, as the dispatcher issues `sent` only after `sending` answered,
/// but cheap to guard) starts a new statement, so the updates of one row apply in order.
async fn apply(store: &Store, group: &[(Op, Reply)]) -> Result<Vec<bool>, String> {
    let mut out = Vec::with_capacity(group.len());
    let mut rest: Vec<&Op> = group.iter().map(|(op, _)| op).collect();
    while !rest.is_empty() {
        let mut ids = HashSet::new();
        let cut = rest
            .iter()
            .position(|op| !ids.insert(op.id()))
            .unwrap_or(rest.len());
        let matched: HashSet<i64> = run_round(store, &rest[..cut]).await?.into_iter().collect();
        out.extend(rest[..cut].iter().map(|op| matched.contains(&op.id())));
        rest.drain(..cut);
    }
    Ok(out)
}

/// One statement over ops with distinct ids; the ids it changed.
async fn run_round(store: &Store, ops: &[&Op]) -> Result<Vec<i64>, String> {
    let mut rows = Vec::with_capacity(ops.len());
    let mut values: Vec<Value> = Vec::with_capacity(ops.len() * 5);
    for (i, op) in ops.iter().enumerate() {
        rows.push(format!("({})", placeholders(i * 5 + 1, 5)));
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
    let rows = store
        .db
        .query_all_raw(store.stmt(&sql, values))
        .await
        .map_err(|e| e.to_string())?;
    rows.iter()
        .map(|r| r.try_get::<i64>("", "id").map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewDelivery, Status};

    /// The same row twice in one group: `sending` then `sent`, applied in that order.
    #[tokio::test]
    async fn a_row_twice_in_a_group_is_updated_in_order() {
        let dir = std::env::temp_dir().join(format!("ritualist-group-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&format!("sqlite://{}/t.db?mode=rwc", dir.display()))
            .await
            .unwrap();
        let row = |customer_id| NewDelivery {
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
        };
        store.insert_deliveries(&[row(1), row(2)], 0).await.unwrap();
        let claimed = store.claim_due(10, 10, 60).await.unwrap();
        let (a, b) = (&claimed[0], &claimed[1]);
        let op = |o: Op| (o, oneshot::channel().0);
        let group = [
            op(Op::Sending {
                id: a.id,
                token: a.lease_token.clone(),
                lease_until: 100,
                now: 10,
            }),
            op(Op::Sending {
                id: b.id,
                token: b.lease_token.clone(),
                lease_until: 100,
                now: 10,
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
            apply(&store, &group).await.unwrap(),
            [true, true, true, false]
        );
        let statuses: Vec<String> = store
            .deliveries()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.status)
            .collect();
        assert_eq!(statuses, ["sent", "sending"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
