//! `ritualist outbox`: what the queue holds (rows per status and channel, the failed and the
//! in-doubt messages with their last reply) and the operator's two levers — retry failed or
//! in-doubt messages, cancel messages that must never go out. Needs only the store: no rituals, templates or transports.

use std::collections::BTreeMap;

use crate::store::{
    ChannelPause, FailedDelivery, QueueCount, RowSelection, Status, Store, StoreError,
};

/// How many failed messages `ritualist outbox` lists.
pub const FAILED_LISTED: u32 = 50;

/// The queue: counts per status and channel, and the newest failed messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxView {
    pub queue: Vec<QueueCount>,
    pub total: i64,
    pub failed: Vec<FailedDelivery>,
    /// The newest in-doubt messages (handed over, the answer lost), at most [`FAILED_LISTED`].
    pub in_doubt: Vec<FailedDelivery>,
    /// Channels paused because a provider refused ritualist itself.
    pub paused: Vec<ChannelPause>,
}

impl OutboxView {
    /// The channels present, sorted.
    pub fn channels(&self) -> Vec<String> {
        let mut c: Vec<String> = self.queue.iter().map(|q| q.channel.clone()).collect();
        c.sort();
        c.dedup();
        c
    }

    /// Statuses in lifecycle order, each with its count per channel.
    pub fn by_status(&self) -> Vec<(Status, BTreeMap<String, i64>)> {
        let mut map: BTreeMap<usize, (Status, BTreeMap<String, i64>)> = BTreeMap::new();
        for q in &self.queue {
            let place = Status::ALL.iter().position(|s| *s == q.status);
            *map.entry(place.unwrap_or(Status::ALL.len()))
                .or_insert_with(|| (q.status, BTreeMap::new()))
                .1
                .entry(q.channel.clone())
                .or_default() += q.count;
        }
        map.into_values().collect()
    }
}

/// What a retry or cancel did: the ids changed, and each requested id left alone with why.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxChange {
    pub changed: Vec<i64>,
    pub skipped: Vec<(i64, String)>,
}

pub async fn outbox_view(store: &Store) -> Result<OutboxView, StoreError> {
    let queue = store.queue_depth().await?;
    let total = queue.iter().map(|q| q.count).sum();
    let failed = store.failed_deliveries(FAILED_LISTED).await?;
    let in_doubt = store.in_doubt_deliveries(FAILED_LISTED).await?;
    let paused = store.channel_pauses().await?;
    Ok(OutboxView {
        queue,
        total,
        failed,
        in_doubt,
        paused,
    })
}

/// Lifts the pause of `channel` (the operator fixed the configuration): the messages that
/// waited for it are due at `now`. `false` when it was not paused.
pub async fn outbox_resume(store: &Store, channel: &str, now: i64) -> Result<bool, StoreError> {
    // A name no channel has was never paused.
    match crate::store::channel_of(channel) {
        Ok(channel) => store.resume_channel(channel, now).await,
        Err(_) => Ok(false),
    }
}

/// Why each requested id that did not change was left alone.
async fn skipped(
    store: &Store,
    which: &RowSelection,
    changed: &[i64],
    wanted: &str,
) -> Result<Vec<(i64, String)>, StoreError> {
    let RowSelection::Ids(ids) = which else {
        return Ok(Vec::new());
    };
    let rest: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|i| !changed.contains(i))
        .collect();
    let statuses = store.statuses_of(&rest).await?;
    let mut out: Vec<(i64, String)> = rest
        .into_iter()
        .map(|id| {
            let why = match statuses.get(&id) {
                None => "no such message".to_string(),
                Some(s) => format!("it is {s}, not {wanted}"),
            };
            (id, why)
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Failed (or in-doubt) messages back to the queue (`pending`, attempts reset, due `now`).
pub async fn outbox_retry(
    store: &Store,
    which: &RowSelection,
    now: i64,
) -> Result<OutboxChange, StoreError> {
    let changed = store.retry_failed(which, now).await?;
    let skipped = skipped(store, which, &changed, "failed or in doubt").await?;
    tracing::info!(
        count = changed.len(),
        "outbox: failed or in-doubt messages put back in the queue"
    );
    Ok(OutboxChange { changed, skipped })
}

/// Unsent messages to `cancelled`: never sent.
pub async fn outbox_cancel(
    store: &Store,
    which: &RowSelection,
    now: i64,
) -> Result<OutboxChange, StoreError> {
    let changed = store.cancel_deliveries(which, now).await?;
    let skipped = skipped(
        store,
        which,
        &changed,
        "pending, waiting for a retry, failed or in doubt",
    )
    .await?;
    tracing::info!(count = changed.len(), "outbox: messages cancelled");
    Ok(OutboxChange { changed, skipped })
}

/// `--all-pending`: rows waiting for their first attempt or for a retry.
pub fn all_pending() -> RowSelection {
    RowSelection::AllIn(vec![Status::Pending, Status::RetryWait])
}

/// `--all-failed`.
pub fn all_failed() -> RowSelection {
    RowSelection::AllIn(vec![Status::Failed])
}

/// `--all-in-doubt`: messages handed over whose answer was lost.
pub fn all_in_doubt() -> RowSelection {
    RowSelection::AllIn(vec![Status::InDoubt])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_listed_in_lifecycle_order_with_their_channels() {
        let q = |status, channel: &str, count| QueueCount {
            status,
            channel: channel.into(),
            count,
        };
        let view = OutboxView {
            queue: vec![
                q(Status::Sent, "email", 5),
                q(Status::Suppressed, "none", 1),
                q(Status::Sending, "sms", 2),
                q(Status::Pending, "email", 3),
                q(Status::Pending, "sms", 4),
                q(Status::RetryWait, "email", 1),
            ],
            total: 16,
            failed: Vec::new(),
            in_doubt: Vec::new(),
            paused: Vec::new(),
        };
        let rows = view.by_status();
        let order: Vec<Status> = rows.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            order,
            [
                Status::Pending,
                Status::RetryWait,
                Status::Sending,
                Status::Sent,
                Status::Suppressed
            ]
        );
        assert_eq!(rows[0].1["email"], 3);
        assert_eq!(rows[0].1["sms"], 4);
        assert_eq!(view.channels(), ["email", "none", "sms"]);
    }
}
