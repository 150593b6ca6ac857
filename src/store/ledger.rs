//! The delivery ledger, which is also the outbox.
//!
//! One row per (ritual, customer, occurrence, channel), protected by a unique index and
//! inserted with `ON CONFLICT DO NOTHING` *before* anything is sent: re-running a tick,
//! restarting or running a second tick concurrently can never mint a second message for the
//! same occurrence. Rows move `pending → claimed (leased) → sending → sent | retry_wait |
//! failed | in_doubt` (`sending` is committed right before the provider can hold the message;
//! a `sending` row whose lease expired becomes `in_doubt` or, under a resend policy,
//! `retry_wait` — never `pending`);
//! decisions not to send are recorded as `suppressed` with their reason. An operator may put
//! `failed` rows back to `pending` or move unsent rows to `cancelled` (`ritualist outbox`). Workers claim due
//! rows with one `UPDATE … RETURNING` that sets a lease (PostgreSQL adds `FOR UPDATE SKIP
//! LOCKED`); results are written only while the lease token still matches.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{ConnectionTrait, QueryResult, Value};

use super::codes::sql::{
    CANCELLED, CLAIMED, FAILED, IN_DOUBT, LEASED, PENDING, RETRY_WAIT, SENDING, SENT, SUPPRESSED,
};
use super::codes::{channel_at, status_at};
use super::{Store, StoreError, placeholders, random_token};
use crate::domain::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Pending,
    Claimed,
    /// Being handed over to the provider (committed right before the body / the request).
    Sending,
    /// Handed over, then the answer was lost (a crash, a cut connection): the provider may
    /// hold it. Terminal unless the channel's policy resends (then it goes to `retry_wait`).
    InDoubt,
    RetryWait,
    Sent,
    Failed,
    Suppressed,
    /// Cancelled by an operator: never sent, never claimed again.
    Cancelled,
}

impl Status {
    /// Whether a row in this status is (or will be) a message to the customer: what the
    /// engine remembers as sent for the frequency caps and collisions.
    pub fn is_message(self) -> bool {
        matches!(
            self,
            Status::Pending
                | Status::Claimed
                | Status::Sending
                | Status::RetryWait
                | Status::Sent
                | Status::InDoubt
        )
    }
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub ritual: String,
    pub category: String,
    pub customer_id: i64,
    pub occurrence: String,
    pub channel: String,
    pub status: Status,
    pub reason: Option<String>,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    /// What is sent, byte for byte on every attempt: the whole RFC 5322 message for email,
    /// the text for SMS.
    pub payload: Option<String>,
    pub message_id: Option<String>,
    pub due_at: i64,
    /// The occasion (JSON), for rendering when the message is sent.
    pub occasion: Option<String>,
    /// `<zone> <HH:MM-HH:MM>`: the local hours the message may be sent in.
    pub send_window: Option<String>,
}

/// A message composed for a claimed row's attempt, stored with the row's handover
/// ([`Store::mark_sending`]): from then on every attempt sends these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub payload: String,
}

/// A row claimed for sending, with the lease token that fences its result.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub ritual: String,
    pub category: String,
    pub customer_id: i64,
    pub occurrence: String,
    pub channel: Channel,
    pub recipient: String,
    pub subject: Option<String>,
    /// `None` until the first attempt renders the message.
    pub payload: Option<String>,
    pub occasion: Option<String>,
    pub send_window: Option<String>,
    pub message_id: Option<String>,
    pub attempts: i32,
    pub due_at: i64,
    pub lease_token: String,
    /// Whether `payload` (with `subject` and `message_id`) is the one in the ledger; `false`
    /// for a message composed for this attempt, which is stored with the handover.
    pub stored: bool,
}

impl ClaimedDelivery {
    /// The message composed for this attempt and not yet in the ledger, to store with the
    /// handover.
    pub fn unstored(&self) -> Option<NewMessage> {
        match (&self.payload, self.stored) {
            (Some(payload), false) => Some(NewMessage {
                subject: self.subject.clone(),
                message_id: self.message_id.clone(),
                payload: payload.clone(),
            }),
            _ => None,
        }
    }
}

/// A ledger row, for reports and tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub ritual: String,
    pub customer_id: i64,
    pub occurrence: String,
    pub channel: String,
    pub status: Status,
    pub reason: Option<String>,
    pub recipient: Option<String>,
    pub message_id: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
    pub due_at: i64,
    pub occasion: Option<String>,
}

/// Rows per (status, channel): the queue depth `ritualist outbox` shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueCount {
    pub status: Status,
    /// The channel's name, `none` for decisions that have none.
    pub channel: String,
    pub count: i64,
}

/// A failed row, for the operator deciding what to retry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedDelivery {
    pub id: i64,
    pub ritual: String,
    /// The customer's external id (`None` if the customer is gone).
    pub customer: Option<String>,
    pub channel: Channel,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// A channel paused because its provider refused ritualist itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelPause {
    pub channel: Channel,
    /// The provider's refusal, as logged.
    pub reason: String,
    pub paused_at: i64,
    /// Claiming resumes (with one probing message) at this time.
    pub until: i64,
    /// Refusals in a row; each doubles the pause.
    pub strikes: i64,
}

/// Which rows an operator's retry or cancel applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowSelection {
    /// These ids (each only if its status allows the change).
    Ids(Vec<i64>),
    /// Every row in one of these statuses.
    AllIn(Vec<Status>),
}

const BLOCKED_BY_CONSENT: &str = "EXISTS (SELECT 1 FROM consents c WHERE c.customer_id = deliveries.customer_id AND c.opted_out = TRUE \
     AND (c.scope IN ('all', 'channel:' || deliveries.channel, 'ritual:' || deliveries.ritual, 'category:' || deliveries.category) \
     OR (c.scope LIKE 'category:%' AND substr('category:' || deliveries.category, 1, length(c.scope) + 1) = c.scope || '.')))";

/// A row the claim returned, leased under `token`, with its stored message if any.
fn claimed_row(
    r: &QueryResult,
    payload: Option<String>,
    token: &str,
) -> Result<ClaimedDelivery, StoreError> {
    Ok(ClaimedDelivery {
        stored: payload.is_some(),
        id: r.try_get("", "id")?,
        ritual: r.try_get("", "ritual")?,
        category: r.try_get("", "category")?,
        customer_id: r.try_get("", "customer_id")?,
        occurrence: r.try_get("", "occurrence")?,
        channel: channel_at(r, "channel")?,
        recipient: r
            .try_get::<Option<String>>("", "recipient")?
            .unwrap_or_default(),
        subject: r.try_get("", "subject")?,
        payload,
        occasion: r.try_get("", "occasion")?,
        send_window: r.try_get("", "send_window")?,
        message_id: r.try_get("", "message_id")?,
        attempts: r.try_get("", "attempts")?,
        due_at: r.try_get("", "due_at")?,
        lease_token: token.to_string(),
    })
}

impl Store {
    /// Claims up to `limit` due rows for `lease_secs`, oldest due first. In the same
    /// statement, rows whose customer opted out since planning are marked `suppressed`
    /// (`opted_out_before_send`, the attempt not counted) instead, and not returned.
    ///
    /// The due rows are read through `idx_deliveries_due` (status, next_attempt_at) once per
    /// status, each already in order and cut at `limit`, so a claim costs O(limit) however long
    /// the queue is (a single `status IN (…) ORDER BY` sorts every due row on each claim).
    ///
    /// One statement, so the claim holds SQLite's write lock only while it runs: a claim made
    /// of a transaction of three statements held it across four round trips to the
    /// connection's thread, while the ledger writer's commits waited (issue #26). The messages
    /// already stored for some of the rows are read after it, outside the lock: a claimed
    /// row's message is only ever written by the worker holding its lease.
    pub async fn claim_due(
        &self,
        now: i64,
        limit: u32,
        lease_secs: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let token = random_token();
        let rows = self
            .db
            .query_all_raw(self.stmt(
                &self.claim_sql(),
                vec![
                    token.clone().into(),
                    (now + lease_secs as i64).into(),
                    now.into(),
                    (limit as i64).into(),
                ],
            ))
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            if status_at(r, "status")? != Status::Suppressed {
                claimed.push(r);
            }
        }
        let ids: Vec<i64> = claimed
            .iter()
            .map(|r| r.try_get::<i64>("", "id"))
            .collect::<Result<_, _>>()?;
        let mut payloads = if ids.is_empty() {
            HashMap::new()
        } else {
            self.stored_payloads(&ids).await?
        };
        let mut out = Vec::with_capacity(claimed.len());
        for (r, id) in claimed.into_iter().zip(ids) {
            out.push(claimed_row(r, payloads.remove(&id), &token)?);
        }
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// The claim of [`Store::claim_due`]: `$1` the lease token, `$2` its end, `$3` now, `$4`
    /// the limit; returns the rows it changed with their new status (`claimed`, or
    /// `suppressed` for those the customer's consent now blocks).
    fn claim_sql(&self) -> String {
        let lock = if self.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let due = |status: Status| {
            let status = status.sql();
            format!(
                "SELECT id, next_attempt_at FROM deliveries WHERE status = {status} AND next_attempt_at <= $3 \
                 AND NOT EXISTS (SELECT 1 FROM channel_pauses p WHERE p.channel = deliveries.channel AND p.until > $3) \
                 ORDER BY next_attempt_at, id LIMIT $4{lock}"
            )
        };
        format!(
            "WITH fresh AS ({}), again AS ({}), \
             picked AS (SELECT id FROM (SELECT id, next_attempt_at FROM fresh UNION ALL SELECT id, next_attempt_at FROM again) AS due \
               ORDER BY next_attempt_at, id LIMIT $4), \
             judged AS (SELECT deliveries.id AS picked_id, CASE WHEN {BLOCKED_BY_CONSENT} THEN 1 ELSE 0 END AS blocked \
               FROM deliveries JOIN picked ON picked.id = deliveries.id) \
             UPDATE deliveries SET \
               status = CASE WHEN judged.blocked = 1 THEN {SUPPRESSED} ELSE {CLAIMED} END, \
               reason = CASE WHEN judged.blocked = 1 THEN 'opted_out_before_send' ELSE deliveries.reason END, \
               lease_token = CASE WHEN judged.blocked = 1 THEN NULL ELSE $1 END, \
               lease_until = CASE WHEN judged.blocked = 1 THEN NULL ELSE $2 END, \
               attempts = deliveries.attempts + 1 - judged.blocked, \
               updated_at = $3 \
             FROM judged WHERE deliveries.id = judged.picked_id \
             RETURNING deliveries.id, deliveries.status, deliveries.ritual, deliveries.category, deliveries.customer_id, \
               deliveries.occurrence, deliveries.channel, deliveries.recipient, deliveries.subject, deliveries.message_id, \
               deliveries.attempts, deliveries.due_at, deliveries.occasion, deliveries.send_window",
            due(Status::Pending),
            due(Status::RetryWait)
        )
    }

    /// The stored messages of rows already rendered (retries, pre-rendered rows) among `ids`.
    async fn stored_payloads(&self, ids: &[i64]) -> Result<HashMap<i64, String>, StoreError> {
        let mut payloads = HashMap::new();
        for r in self
            .db
            .query_all_raw(self.stmt(
                &format!(
                    "SELECT delivery_id, payload FROM delivery_messages WHERE delivery_id IN ({})",
                    placeholders(1, ids.len())
                ),
                ids.iter().map(|i| Value::from(*i)).collect(),
            ))
            .await?
        {
            payloads.insert(r.try_get("", "delivery_id")?, r.try_get("", "payload")?);
        }
        Ok(payloads)
    }

    /// Puts a claimed row back, untried and the attempt not counted, until `next_at` (quiet
    /// hours; the relay's circuit breaker is open; the provider's daily limit is spent). A row
    /// committed `sending` ahead of its send (`delivery.handover_batch` > 1) may be deferred
    /// too: only for a message the transport says it never handed over. `reason`, if any, is
    /// kept as the row's last error.
    pub async fn defer(
        &self,
        id: i64,
        token: &str,
        next_at: i64,
        now: i64,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let n = self
            .exec(
                &format!("UPDATE deliveries SET status = {PENDING}, next_attempt_at = $1, attempts = attempts - 1, updated_at = $2, lease_token = NULL, lease_until = NULL, \
                 last_error = COALESCE($3, last_error) \
                 WHERE id = $4 AND lease_token = $5 AND status IN ({LEASED})"),
                vec![
                    next_at.into(),
                    now.into(),
                    reason.map(str::to_string).into(),
                    id.into(),
                    token.to_string().into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Rows whose lease expired (their worker died or stalled): `claimed` ones go back to
    /// `pending` (nothing was handed over); `sending` ones may be at the provider, so they
    /// become `in_doubt`, or `retry_wait` (due now, same bytes and Message-ID) on the channels in
    /// `resend` (the in-doubt policy). Returns (released, in doubt).
    pub async fn release_expired_leases(
        &self,
        now: i64,
        resend: &[Channel],
    ) -> Result<(u64, u64), StoreError> {
        let released = self
            .exec(
                &format!("UPDATE deliveries SET status = {PENDING}, lease_token = NULL, lease_until = NULL, updated_at = $1 \
                 WHERE status = {CLAIMED} AND lease_until < $1"),
                vec![now.into()],
            )
            .await?;
        // The channels whose in-doubt rows are resent, as bound values ($3, $4, …).
        let resent = if resend.is_empty() {
            "FALSE".to_string()
        } else {
            format!("channel IN ({})", placeholders(3, resend.len()))
        };
        let mut values: Vec<Value> = vec![
            now.into(),
            "in doubt: the worker stopped while handing the message over; the provider may have it"
                .into(),
        ];
        values.extend(resend.iter().map(|c| Value::from(*c)));
        let doubt = self
            .exec(
                &format!(
                    "UPDATE deliveries SET status = CASE WHEN {resent} THEN {RETRY_WAIT} ELSE {IN_DOUBT} END, \
                     next_attempt_at = $1, last_error = $2, lease_token = NULL, lease_until = NULL, updated_at = $1 \
                     WHERE status = {SENDING} AND lease_until < $1"
                ),
                values,
            )
            .await?;
        Ok((released, doubt))
    }

    /// Commits the handover: `claimed → sending`, the lease renewed for `lease_secs` from
    /// `now`, and `message` (one composed for this attempt) stored with the row in the same
    /// commit. `false` when the lease was lost (then nothing may be handed over, and nothing
    /// is stored). Concurrent calls share a commit (group commit); each returns once its own
    /// update is durable.
    pub async fn mark_sending(
        &self,
        id: i64,
        token: &str,
        now: i64,
        lease_secs: u32,
        message: Option<NewMessage>,
    ) -> Result<bool, StoreError> {
        self.group()
            .queue(
                super::group::Op::Sending {
                    id,
                    token: token.to_string(),
                    lease_until: now + lease_secs as i64,
                    now,
                    message: message.map(Box::new),
                },
                super::Urgency::Now,
            )
            .await
    }

    /// Renews, until `until`, the lease of those of `ids` still `claimed` or `sending` under
    /// `token`: rows waiting their turn in a big batch or committed `sending` ahead
    /// (`delivery.handover_batch` > 1), and rows on a relay slow to answer, would otherwise
    /// outlive their lease, and an expired lease lets a reaper take back a row this worker is
    /// about to send or is sending. A row already settled or taken back no longer carries the
    /// token and is left alone. Returns how many were renewed.
    pub async fn renew_leases(
        &self,
        ids: &[i64],
        token: &str,
        until: i64,
    ) -> Result<u64, StoreError> {
        let mut renewed = 0;
        // A few hundred ids per statement: far below either database's limit on parameters,
        // whatever `delivery.batch_size` is.
        for ids in ids.chunks(500) {
            let mut values: Vec<Value> = vec![until.into(), token.to_string().into()];
            values.extend(ids.iter().map(|i| Value::from(*i)));
            renewed += self
                .exec(
                    &format!(
                        "UPDATE deliveries SET lease_until = $1 \
                         WHERE lease_token = $2 AND status IN ({LEASED}) AND id IN ({})",
                        placeholders(3, ids.len())
                    ),
                    values,
                )
                .await?;
        }
        Ok(renewed)
    }

    /// A handed-over message without a definite answer: `in_doubt` (kept, never sent again by
    /// itself) or, when the channel's policy resends, `retry_wait` at `resend_at`.
    pub async fn mark_in_doubt(
        &self,
        id: i64,
        token: &str,
        error: &str,
        resend_at: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (status, next) = match resend_at {
            Some(at) => (Status::RetryWait, at),
            None => (Status::InDoubt, now),
        };
        let n = self
            .exec(
                &format!("UPDATE deliveries SET status = $1, next_attempt_at = $2, last_error = $3, updated_at = $4, lease_token = NULL, lease_until = NULL \
                 WHERE id = $5 AND lease_token = $6 AND status IN ({LEASED})"),
                vec![
                    status.into(),
                    next.into(),
                    format!("in doubt: {error}").into(),
                    now.into(),
                    id.into(),
                    token.to_string().into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Gives a claimed row back untried (a stopping daemon): `claimed → pending`, the attempt
    /// not counted. `false` when it is no longer `claimed` under `token` (handed over or
    /// settled already).
    pub async fn release_claimed(
        &self,
        id: i64,
        token: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.release(id, token, now, &[Status::Claimed]).await
    }

    /// Gives a row back whose send never started (a stopping daemon): `claimed` or `sending`
    /// (committed ahead of its send, `delivery.handover_batch` > 1) `→ pending`, the attempt not
    /// counted. Only for a message the dispatcher knows it never gave to a transport.
    pub async fn release_untried(
        &self,
        id: i64,
        token: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.release(id, token, now, &[Status::Claimed, Status::Sending])
            .await
    }

    /// `→ pending` under `token` where `from` (a condition on the status) holds, the attempt
    /// not counted.
    async fn release(
        &self,
        id: i64,
        token: &str,
        now: i64,
        from: &[Status],
    ) -> Result<bool, StoreError> {
        let from = Status::sql_list(from);
        let n = self
            .exec(
                &format!(
                    "UPDATE deliveries SET status = {PENDING}, attempts = attempts - 1, lease_token = NULL, lease_until = NULL, updated_at = $1 \
                     WHERE id = $2 AND lease_token = $3 AND status IN ({from})"
                ),
                vec![now.into(), id.into(), token.to_string().into()],
            )
            .await?;
        Ok(n == 1)
    }

    /// Pauses `channel` (a provider refused us): one more strike, and the pause lasts until
    /// `until(strikes)`. A channel still paused at `now` keeps its pause (the other messages of
    /// the batch that was in flight add no strike). Returns (strikes, until).
    pub async fn pause_channel(
        &self,
        channel: Channel,
        reason: &str,
        now: i64,
        until: impl Fn(i64) -> i64,
    ) -> Result<(i64, i64), StoreError> {
        let strikes = match self
            .one(
                "SELECT strikes, until FROM channel_pauses WHERE channel = $1",
                vec![channel.into()],
            )
            .await?
        {
            Some(r) => {
                let (strikes, until): (i32, i64) =
                    (r.try_get("", "strikes")?, r.try_get("", "until")?);
                if until > now {
                    return Ok((strikes as i64, until));
                }
                strikes as i64 + 1
            }
            None => 1,
        };
        let until = until(strikes);
        self.exec(
            "INSERT INTO channel_pauses (channel, reason, paused_at, until, strikes) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (channel) DO UPDATE SET reason = excluded.reason, until = excluded.until, strikes = excluded.strikes",
            vec![
                channel.into(),
                reason.into(),
                now.into(),
                until.into(),
                (strikes as i32).into(),
            ],
        )
        .await?;
        Ok((strikes, until))
    }

    /// Messages sent on `channel` since `since` (daily rate limits after a restart).
    pub async fn sent_since(&self, channel: Channel, since: i64) -> Result<i64, StoreError> {
        let row = self
            .one(
                &format!("SELECT COUNT(*) AS n FROM deliveries WHERE channel = $1 AND status = {SENT} AND sent_at >= $2"),
                vec![channel.into(), since.into()],
            )
            .await?;
        Ok(match row {
            Some(r) => r.try_get("", "n")?,
            None => 0,
        })
    }

    /// A message went through on `channel`: a pause (its probe succeeded) is over.
    pub async fn clear_channel_pause(&self, channel: Channel) -> Result<bool, StoreError> {
        Ok(self
            .exec(
                "DELETE FROM channel_pauses WHERE channel = $1",
                vec![channel.into()],
            )
            .await?
            > 0)
    }

    /// An operator lifted the pause of `channel`: the messages that were waiting for the pause
    /// to end are due at `now`. `false` when the channel was not paused.
    pub async fn resume_channel(&self, channel: Channel, now: i64) -> Result<bool, StoreError> {
        let Some(row) = self
            .one(
                "SELECT until FROM channel_pauses WHERE channel = $1",
                vec![channel.into()],
            )
            .await?
        else {
            return Ok(false);
        };
        let until: i64 = row.try_get("", "until")?;
        self.exec(
            &format!("UPDATE deliveries SET next_attempt_at = $1, updated_at = $1 \
             WHERE channel = $2 AND status = {RETRY_WAIT} AND next_attempt_at > $1 AND next_attempt_at <= $3"),
            vec![now.into(), channel.into(), until.into()],
        )
        .await?;
        self.clear_channel_pause(channel).await
    }

    /// Channels paused now or in the past (a pause whose `until` passed is probing).
    pub async fn channel_pauses(&self) -> Result<Vec<ChannelPause>, StoreError> {
        let rows = self
            .all(
                "SELECT channel, reason, paused_at, until, strikes FROM channel_pauses ORDER BY channel",
                vec![],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(ChannelPause {
                channel: channel_at(&r, "channel")?,
                reason: r.try_get("", "reason")?,
                paused_at: r.try_get("", "paused_at")?,
                until: r.try_get("", "until")?,
                strikes: r.try_get::<i32>("", "strikes")? as i64,
            });
        }
        Ok(out)
    }

    /// `true` when the lease still held and the row is now `sent` (group-committed like
    /// [`Store::mark_sending`]). With [`Urgency::Linger`] (a caller holding no connection while
    /// it waits) the commit may wait a few milliseconds for other results to share it; the row
    /// stays `sending` — unsettled, in doubt after a crash — until then.
    ///
    /// The update is queued when this is called, not when the answer is first awaited, and
    /// group-committed updates commit in the order they were queued: a handover queued after
    /// this result never becomes durable before it.
    pub fn mark_sent(
        &self,
        id: i64,
        token: &str,
        now: i64,
        urgency: super::Urgency,
    ) -> impl Future<Output = Result<bool, StoreError>> + 'static {
        self.group().queue(
            super::group::Op::Sent {
                id,
                token: token.to_string(),
                now,
            },
            urgency,
        )
    }

    pub async fn mark_retry(
        &self,
        id: i64,
        token: &str,
        next_at: i64,
        error: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self
            .exec(
                &format!("UPDATE deliveries SET status = {RETRY_WAIT}, next_attempt_at = $1, last_error = $2, updated_at = $3, lease_token = NULL, lease_until = NULL \
                 WHERE id = $4 AND lease_token = $5 AND status IN ({LEASED})"),
                vec![next_at.into(), error.to_string().into(), now.into(), id.into(), token.to_string().into()],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn mark_failed(
        &self,
        id: i64,
        token: &str,
        error: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self
            .exec(
                &format!("UPDATE deliveries SET status = {FAILED}, last_error = $1, updated_at = $2, lease_token = NULL, lease_until = NULL \
                 WHERE id = $3 AND lease_token = $4 AND status IN ({LEASED})"),
                vec![error.to_string().into(), now.into(), id.into(), token.to_string().into()],
            )
            .await?;
        Ok(n == 1)
    }

    /// Rows per status and channel, statuses in lifecycle order.
    pub async fn queue_depth(&self) -> Result<Vec<QueueCount>, StoreError> {
        let rows = self
            .all(
                "SELECT status, channel, COUNT(*) AS n FROM deliveries GROUP BY status, channel ORDER BY status, channel",
                vec![],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueCount {
                    status: status_at(r, "status")?,
                    channel: r.try_get("", "channel")?,
                    count: r.try_get("", "n")?,
                })
            })
            .collect()
    }

    /// The newest `limit` failed rows with their last error.
    pub async fn failed_deliveries(&self, limit: u32) -> Result<Vec<FailedDelivery>, StoreError> {
        self.deliveries_listed(Status::Failed, limit).await
    }

    /// The newest `limit` rows `in_doubt` (handed over, the answer lost), newest first, with
    /// their last reply: the ones an operator checks at the recipient, then retries or cancels.
    pub async fn in_doubt_deliveries(&self, limit: u32) -> Result<Vec<FailedDelivery>, StoreError> {
        self.deliveries_listed(Status::InDoubt, limit).await
    }

    /// The newest `limit` rows in `status`, with their customer's external id.
    async fn deliveries_listed(
        &self,
        status: Status,
        limit: u32,
    ) -> Result<Vec<FailedDelivery>, StoreError> {
        let rows = self
            .all(
                &format!(
                    "SELECT d.id, d.ritual, c.external_id, d.channel, d.attempts, d.last_error, d.updated_at \
                     FROM deliveries d LEFT JOIN customers c ON c.id = d.customer_id \
                     WHERE d.status = {} ORDER BY d.id DESC LIMIT $1",
                    status.sql()
                ),
                vec![(limit as i64).into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(FailedDelivery {
                    id: r.try_get("", "id")?,
                    ritual: r.try_get("", "ritual")?,
                    customer: r.try_get("", "external_id")?,
                    channel: channel_at(r, "channel")?,
                    attempts: r.try_get("", "attempts")?,
                    last_error: r.try_get("", "last_error")?,
                    updated_at: r.try_get("", "updated_at")?,
                })
            })
            .collect()
    }

    /// The status of each of `ids` that exists.
    pub async fn statuses_of(&self, ids: &[i64]) -> Result<BTreeMap<i64, String>, StoreError> {
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, status FROM deliveries WHERE id IN ({})",
                placeholders.join(", ")
            );
            for r in self
                .all(&sql, chunk.iter().map(|i| Value::from(*i)).collect())
                .await?
            {
                out.insert(r.try_get("", "id")?, r.try_get("", "status")?);
            }
        }
        Ok(out)
    }

    /// Moves the selected rows whose status is one of `from` with `set` (SQL assignments whose
    /// only parameter is `$1` = now); returns the ids changed. Claimed rows are never touched:
    /// their worker's result is fenced on `status = 'claimed'`.
    async fn operator_update(
        &self,
        set: &str,
        from: &[Status],
        which: &RowSelection,
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        debug_assert!(!from.contains(&Status::Claimed));
        let base = format!(
            "UPDATE deliveries SET {set}, updated_at = $1, lease_token = NULL, lease_until = NULL \
             WHERE status IN ({})",
            Status::sql_list(from)
        );
        let mut changed = Vec::new();
        let mut run = |rows: Vec<sea_orm::QueryResult>| -> Result<(), StoreError> {
            for r in rows {
                changed.push(r.try_get("", "id")?);
            }
            Ok(())
        };
        match which {
            RowSelection::AllIn(_) => {
                run(self
                    .all(&format!("{base} RETURNING id"), vec![now.into()])
                    .await?)?;
            }
            RowSelection::Ids(ids) => {
                for chunk in ids.chunks(500) {
                    let placeholders: Vec<String> =
                        (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
                    let sql = format!(
                        "{base} AND id IN ({}) RETURNING id",
                        placeholders.join(", ")
                    );
                    let mut values: Vec<Value> = vec![now.into()];
                    values.extend(chunk.iter().map(|i| Value::from(*i)));
                    run(self.all(&sql, values).await?)?;
                }
            }
        }
        changed.sort_unstable();
        Ok(changed)
    }

    /// Failed rows back to the queue: `pending`, attempts reset, due at `now`. A stored
    /// message (one handed over before: same bytes, same Message-ID) is what will be sent, and
    /// a row without one is composed again; consent is checked again when the row is claimed.
    pub async fn retry_failed(
        &self,
        which: &RowSelection,
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let from = match which {
            RowSelection::AllIn(from) => from.clone(),
            RowSelection::Ids(_) => vec![Status::Failed, Status::InDoubt],
        };
        self.operator_update(
            &format!("status = {PENDING}, attempts = 0, next_attempt_at = $1"),
            &from,
            which,
            now,
        )
        .await
    }

    /// Unsent rows (`pending`, `retry_wait`, `failed`; or only the statuses of
    /// [`RowSelection::AllIn`]) to `cancelled`: never sent, never claimed again.
    pub async fn cancel_deliveries(
        &self,
        which: &RowSelection,
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let from = match which {
            RowSelection::AllIn(from) => from.clone(),
            RowSelection::Ids(_) => vec![
                Status::Pending,
                Status::RetryWait,
                Status::Failed,
                Status::InDoubt,
            ],
        };
        self.operator_update(
            &format!("status = {CANCELLED}, reason = 'cancelled_by_operator'"),
            &from,
            which,
            now,
        )
        .await
    }

    /// Rows per status.
    pub async fn status_counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows = self
            .all(
                "SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status",
                vec![],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("", "status")?, r.try_get("", "n")?)))
            .collect()
    }

    /// Every ledger row, oldest first.
    pub async fn deliveries(&self) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = self
            .all(
                "SELECT id, ritual, customer_id, occurrence, channel, status, reason, recipient, message_id, attempts, last_error, sent_at, due_at, occasion FROM deliveries ORDER BY id",
                vec![],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryRow {
                    id: r.try_get("", "id")?,
                    ritual: r.try_get("", "ritual")?,
                    customer_id: r.try_get("", "customer_id")?,
                    occurrence: r.try_get("", "occurrence")?,
                    channel: r.try_get("", "channel")?,
                    status: status_at(r, "status")?,
                    reason: r.try_get("", "reason")?,
                    recipient: r.try_get("", "recipient")?,
                    message_id: r.try_get("", "message_id")?,
                    attempts: r.try_get("", "attempts")?,
                    last_error: r.try_get("", "last_error")?,
                    sent_at: r.try_get("", "sent_at")?,
                    due_at: r.try_get("", "due_at")?,
                    occasion: r.try_get("", "occasion")?,
                })
            })
            .collect()
    }
}
