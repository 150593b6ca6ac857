//! Reports that arrive after a message was sent (`feedback_events`, `deliveries.outcome`):
//! which delivery a report is about, and recording it once, with its consent consequence, in
//! one transaction — so a report received twice, or one received while the process is killed
//! halfway, is applied exactly once (docs/delivery-guarantee.md §6).

use sea_orm::{ConnectionTrait, QueryResult, TransactionTrait};

use super::codes::{channel_at, status_at};
use super::{Status, Store, StoreError};
use crate::domain::{Channel, Feedback, FeedbackKind, Outcome};

/// The delivery a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackTarget {
    pub delivery_id: i64,
    pub customer_id: i64,
    pub ritual: String,
    pub channel: Channel,
    /// The address the message was sent to (`None` once the customer was forgotten).
    pub recipient: Option<String>,
    pub status: Status,
}

/// What recording a report does to consent, decided by the App's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAction {
    Nothing,
    /// Opt the customer out of the delivery's channel (`channel:email` / `channel:sms`) with
    /// this source, while the address is still theirs and unless already opted out.
    OptOut {
        source: &'static str,
    },
    /// The same, once `limit` reports of this kind for this customer and channel (this one
    /// included) were received since `since`.
    OptOutAfter {
        source: &'static str,
        limit: u32,
        since: i64,
    },
}

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recorded {
    /// Matched and recorded; `opted_out` when it opted the customer out now.
    Applied { opted_out: bool },
    /// The same report (same dedupe key) was recorded before: nothing changed.
    Duplicate,
    /// Kept for review: no delivery matched.
    Unmatched,
    /// Recognised and not counted (an auto-reply, a "delayed" notice).
    Ignored,
}

impl Recorded {
    /// The `feedback_events.state` of a newly recorded report.
    fn state(self) -> &'static str {
        match self {
            Recorded::Applied { .. } | Recorded::Duplicate => "applied",
            Recorded::Unmatched => "unmatched",
            Recorded::Ignored => "ignored",
        }
    }
}

/// One stored report, for `ritualist bounces` and tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FeedbackRecord {
    pub id: i64,
    pub source: String,
    pub kind: String,
    pub state: String,
    pub delivery_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub channel: Option<String>,
    pub recipient: Option<String>,
    pub detail: String,
    pub received_at: i64,
    /// The report as received: kept only for unmatched ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

const TARGET_COLUMNS: &str = "id, customer_id, ritual, channel, recipient, status";

fn target_at(r: &QueryResult) -> Result<FeedbackTarget, StoreError> {
    Ok(FeedbackTarget {
        delivery_id: r.try_get("", "id")?,
        customer_id: r.try_get("", "customer_id")?,
        ritual: r.try_get("", "ritual")?,
        channel: channel_at(r, "channel")?,
        recipient: r.try_get("", "recipient")?,
        status: status_at(r, "status")?,
    })
}

fn record_at(r: &QueryResult) -> Result<FeedbackRecord, StoreError> {
    Ok(FeedbackRecord {
        id: r.try_get("", "id")?,
        source: r.try_get("", "source")?,
        kind: r.try_get("", "kind")?,
        state: r.try_get("", "state")?,
        delivery_id: r.try_get("", "delivery_id")?,
        customer_id: r.try_get("", "customer_id")?,
        channel: r.try_get("", "channel")?,
        recipient: r.try_get("", "recipient")?,
        detail: r.try_get("", "detail")?,
        received_at: r.try_get("", "received_at")?,
        raw: r.try_get("", "raw")?,
    })
}

impl Store {
    /// The delivery with this id, if it was ever handed to a channel (a suppressed decision
    /// has nothing to report on).
    pub async fn feedback_target(&self, id: i64) -> Result<Option<FeedbackTarget>, StoreError> {
        let sql = format!(
            "SELECT {TARGET_COLUMNS} FROM deliveries WHERE id = $1 AND status IN ({})",
            Status::sql_list(&[
                Status::Sent,
                Status::InDoubt,
                Status::Failed,
                Status::Sending
            ])
        );
        self.one(&sql, vec![id.into()])
            .await?
            .map(|r| target_at(&r))
            .transpose()
    }

    /// The delivery whose email carried `message_id` (angle brackets optional).
    pub async fn feedback_target_by_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<FeedbackTarget>, StoreError> {
        let bare = message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        if bare.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {TARGET_COLUMNS} FROM deliveries WHERE message_id IN ($1, $2) AND status IN ({}) ORDER BY id LIMIT 1",
            Status::sql_list(&[
                Status::Sent,
                Status::InDoubt,
                Status::Failed,
                Status::Sending
            ])
        );
        self.one(
            &sql,
            vec![bare.to_string().into(), format!("<{bare}>").into()],
        )
        .await?
        .map(|r| target_at(&r))
        .transpose()
    }

    /// Records `fb` once: the event row (unique on its dedupe key), the delivery's later
    /// outcome (only when it ranks above the one it has) and `action`, in one transaction.
    /// `target` is the delivery it matched (`None`: kept for review).
    pub async fn record_feedback(
        &self,
        fb: &Feedback,
        target: Option<&FeedbackTarget>,
        action: ConsentAction,
        now: i64,
    ) -> Result<Recorded, StoreError> {
        let verdict = match target {
            _ if fb.kind == FeedbackKind::Ignored => Recorded::Ignored,
            _ if fb.kind == FeedbackKind::Unclassified => Recorded::Unmatched,
            None => Recorded::Unmatched,
            Some(_) => Recorded::Applied { opted_out: false },
        };
        let txn = self.db.begin().await?;
        let raw = match verdict {
            Recorded::Unmatched => fb.raw.clone(),
            _ => None,
        };
        let inserted = txn
            .execute_raw(self.stmt(
                "INSERT INTO feedback_events (dedupe_key, source, kind, state, delivery_id, customer_id, channel, recipient, detail, raw, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (dedupe_key) DO NOTHING",
                vec![
                    fb.dedupe_key.clone().into(),
                    fb.source.as_str().into(),
                    fb.kind.as_str().into(),
                    verdict.state().into(),
                    target.map(|t| t.delivery_id).into(),
                    target.map(|t| t.customer_id).into(),
                    fb.channel.as_str().into(),
                    fb.recipient.clone().into(),
                    fb.detail.clone().into(),
                    raw.into(),
                    now.into(),
                ],
            ))
            .await?
            .rows_affected();
        if inserted == 0 {
            txn.rollback().await?;
            return Ok(Recorded::Duplicate);
        }
        let (Some(t), Recorded::Applied { .. }) = (target, verdict) else {
            txn.commit().await?;
            return Ok(verdict);
        };
        if let Some(outcome) = fb.kind.outcome() {
            self.set_outcome(&txn, t.delivery_id, outcome, &fb.detail, now)
                .await?;
        }
        let opted_out = self.apply_action(&txn, fb, t, action, now).await?;
        txn.commit().await?;
        Ok(Recorded::Applied { opted_out })
    }

    /// `deliveries.outcome` becomes `outcome` unless it already holds one that ranks as high.
    async fn set_outcome<C: ConnectionTrait>(
        &self,
        txn: &C,
        delivery_id: i64,
        outcome: Outcome,
        detail: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let ranks: Vec<String> = Outcome::ALL
            .iter()
            .map(|o| format!("WHEN '{}' THEN {}", o.as_str(), o.rank()))
            .collect();
        let sql = format!(
            "UPDATE deliveries SET outcome = $2, outcome_at = $3, outcome_detail = $4 \
             WHERE id = $1 AND (CASE outcome {} ELSE 0 END) < $5",
            ranks.join(" ")
        );
        txn.execute_raw(self.stmt(
            &sql,
            vec![
                delivery_id.into(),
                outcome.as_str().into(),
                now.into(),
                detail.to_string().into(),
                outcome.rank().into(),
            ],
        ))
        .await?;
        Ok(())
    }

    /// Applies `action` inside the report's transaction; `true` when the customer was opted
    /// out now.
    async fn apply_action<C: ConnectionTrait>(
        &self,
        txn: &C,
        fb: &Feedback,
        t: &FeedbackTarget,
        action: ConsentAction,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Some(address) = t.recipient.as_deref() else {
            return Ok(false);
        };
        let source = match action {
            ConsentAction::Nothing => return Ok(false),
            ConsentAction::OptOut { source } => source,
            ConsentAction::OptOutAfter {
                source,
                limit,
                since,
            } => {
                let row = txn
                    .query_one_raw(self.stmt(
                        "SELECT COUNT(*) AS n FROM feedback_events \
                         WHERE customer_id = $1 AND kind = $2 AND channel = $3 AND received_at >= $4 AND state = 'applied'",
                        vec![
                            t.customer_id.into(),
                            fb.kind.as_str().into(),
                            t.channel.into(),
                            since.into(),
                        ],
                    ))
                    .await?;
                let n: i64 = match row {
                    Some(r) => r.try_get("", "n")?,
                    None => 0,
                };
                if n < limit as i64 {
                    return Ok(false);
                }
                source
            }
        };
        self.opt_out_address_in(txn, t.customer_id, t.channel, address, source, now)
            .await
    }

    /// Reports received in `[since, ∞)` in `state` (`unmatched`, `ignored`, `applied`; every
    /// state with `None`), newest first, at most `limit`.
    pub async fn feedback_events(
        &self,
        state: Option<&str>,
        since: i64,
        limit: u64,
    ) -> Result<Vec<FeedbackRecord>, StoreError> {
        let (filter, mut values) = match state {
            Some(s) => ("state = $3 AND", vec![s.to_string().into()]),
            None => ("", vec![]),
        };
        values.splice(0..0, [since.into(), (limit as i64).into()]);
        let sql = format!(
            "SELECT id, source, kind, state, delivery_id, customer_id, channel, recipient, detail, raw, received_at \
             FROM feedback_events WHERE {filter} received_at >= $1 ORDER BY received_at DESC, id DESC LIMIT $2"
        );
        let rows = self.all(&sql, values).await?;
        rows.iter().map(record_at).collect()
    }

    /// A delivery's later outcome: (outcome, when, what the report said).
    pub async fn delivery_outcome(
        &self,
        delivery_id: i64,
    ) -> Result<Option<(Outcome, i64, String)>, StoreError> {
        let Some(r) = self
            .one(
                "SELECT outcome, outcome_at, outcome_detail FROM deliveries WHERE id = $1 AND outcome IS NOT NULL",
                vec![delivery_id.into()],
            )
            .await?
        else {
            return Ok(None);
        };
        let code: String = r.try_get("", "outcome")?;
        let outcome = Outcome::from_code(&code)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery outcome `{code}`")))?;
        Ok(Some((
            outcome,
            r.try_get("", "outcome_at")?,
            r.try_get::<Option<String>>("", "outcome_detail")?
                .unwrap_or_default(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeliveryRef, FeedbackSource};
    use crate::test_support::temp_store;

    async fn seed(store: &Store) {
        store
            .db
            .execute_unprepared(
                "INSERT INTO customers (id, external_id, email, phone, locale, time_zone, created_at, updated_at) VALUES \
                 (1, 'c1', 'maria@example.com', '+37360000001', 'en', 'UTC', 0, 0), (2, 'c2', 'ion@example.com', NULL, 'en', 'UTC', 0, 0); \
                 INSERT INTO deliveries (id, ritual, category, customer_id, occurrence, channel, status, recipient, message_id, due_at, next_attempt_at, created_at, updated_at) VALUES \
                 (10, 'birthday', 'birthday', 1, '2027', 'email', 'sent', 'maria@example.com', '<m10@shop>', 0, 0, 0, 0), \
                 (11, 'winback', 'winback', 1, '2027-01', 'email', 'sent', 'maria@example.com', '<m11@shop>', 0, 0, 0, 0), \
                 (12, 'birthday', 'birthday', 2, '2027', 'email', 'sent', 'old@example.com', '<m12@shop>', 0, 0, 0, 0), \
                 (13, 'birthday', 'birthday', 1, '2027', 'sms', 'sent', '+37360000001', NULL, 0, 0, 0, 0), \
                 (14, 'birthday', 'birthday', 2, '2028', 'email', 'pending', 'ion@example.com', NULL, 0, 0, 0, 0)",
            )
            .await
            .unwrap();
    }

    fn report(kind: FeedbackKind, key: &str, channel: Channel) -> Feedback {
        Feedback {
            kind,
            source: FeedbackSource::Mail,
            delivery: DeliveryRef::Unknown,
            channel,
            recipient: None,
            detail: format!("{kind} {key}"),
            dedupe_key: key.into(),
            raw: Some("the report".into()),
        }
    }

    async fn opted_out(store: &Store, customer: i64) -> Vec<(String, bool, String)> {
        store.consents_of(customer).await.unwrap()
    }

    #[tokio::test]
    async fn a_report_is_matched_recorded_once_and_opts_out() {
        let (store, _dir) = temp_store("feedback").await;
        seed(&store).await;
        let by_mid = store
            .feedback_target_by_message_id("m10@shop")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((by_mid.delivery_id, by_mid.customer_id), (10, 1));
        assert_eq!(
            store.feedback_target(10).await.unwrap(),
            Some(by_mid.clone())
        );
        // A pending row has nothing to report on.
        assert_eq!(store.feedback_target(14).await.unwrap(), None);
        let fb = report(FeedbackKind::HardBounce, "k1", Channel::Email);
        let action = ConsentAction::OptOut { source: "bounce" };
        let r = store
            .record_feedback(&fb, Some(&by_mid), action, 1000)
            .await
            .unwrap();
        assert_eq!(r, Recorded::Applied { opted_out: true });
        assert_eq!(
            opted_out(&store, 1).await,
            [("channel:email".to_string(), true, "bounce".to_string())]
        );
        let (outcome, at, _) = store.delivery_outcome(10).await.unwrap().unwrap();
        assert_eq!((outcome, at), (Outcome::Bounced, 1000));
        // The same report again changes nothing.
        let again = store
            .record_feedback(&fb, Some(&by_mid), action, 2000)
            .await
            .unwrap();
        assert_eq!(again, Recorded::Duplicate);
        assert_eq!(store.delivery_outcome(10).await.unwrap().unwrap().1, 1000);
        let events = store.feedback_events(None, 0, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].raw, None, "a matched report keeps no raw copy");
    }

    #[tokio::test]
    async fn outcomes_rank_and_a_changed_address_is_not_blamed() {
        let (store, _dir) = temp_store("feedback-rank").await;
        seed(&store).await;
        let t10 = store.feedback_target(10).await.unwrap().unwrap();
        let nothing = ConsentAction::Nothing;
        let complaint = report(FeedbackKind::Complaint, "c", Channel::Email);
        store
            .record_feedback(&complaint, Some(&t10), nothing, 5)
            .await
            .unwrap();
        let late = report(FeedbackKind::Delivered, "d", Channel::Email);
        store
            .record_feedback(&late, Some(&t10), nothing, 6)
            .await
            .unwrap();
        assert_eq!(
            store.delivery_outcome(10).await.unwrap().unwrap().0,
            Outcome::Complained
        );
        // Delivery 12 went to an address customer 2 no longer has.
        let t12 = store.feedback_target(12).await.unwrap().unwrap();
        let hard = report(FeedbackKind::HardBounce, "h12", Channel::Email);
        let r = store
            .record_feedback(
                &hard,
                Some(&t12),
                ConsentAction::OptOut { source: "bounce" },
                7,
            )
            .await
            .unwrap();
        assert_eq!(r, Recorded::Applied { opted_out: false });
        assert!(opted_out(&store, 2).await.is_empty());
        assert_eq!(
            store.delivery_outcome(12).await.unwrap().unwrap().0,
            Outcome::Bounced
        );
    }

    #[tokio::test]
    async fn soft_bounces_suppress_at_the_limit_within_the_window() {
        let (store, _dir) = temp_store("feedback-soft").await;
        seed(&store).await;
        let t10 = store.feedback_target(10).await.unwrap().unwrap();
        let t11 = store.feedback_target(11).await.unwrap().unwrap();
        let action = |now: i64| ConsentAction::OptOutAfter {
            source: "soft_bounces",
            limit: 3,
            since: now - 30 * 86_400,
        };
        let soft = |k: &str| report(FeedbackKind::SoftBounce, k, Channel::Email);
        // One long ago (outside the window), then two recent ones: not yet.
        let day = 86_400;
        store
            .record_feedback(&soft("s1"), Some(&t10), action(0), 0)
            .await
            .unwrap();
        store
            .record_feedback(&soft("s2"), Some(&t11), action(40 * day), 40 * day)
            .await
            .unwrap();
        let r = store
            .record_feedback(&soft("s3"), Some(&t10), action(41 * day), 41 * day)
            .await
            .unwrap();
        assert_eq!(r, Recorded::Applied { opted_out: false });
        assert!(opted_out(&store, 1).await.is_empty());
        let r = store
            .record_feedback(&soft("s4"), Some(&t11), action(42 * day), 42 * day)
            .await
            .unwrap();
        assert_eq!(r, Recorded::Applied { opted_out: true });
        assert_eq!(
            opted_out(&store, 1).await,
            [(
                "channel:email".to_string(),
                true,
                "soft_bounces".to_string()
            )]
        );
    }

    #[tokio::test]
    async fn unmatched_and_ignored_reports_are_kept_apart() {
        let (store, _dir) = temp_store("feedback-review").await;
        seed(&store).await;
        let fb = report(FeedbackKind::HardBounce, "u1", Channel::Email);
        let r = store
            .record_feedback(&fb, None, ConsentAction::Nothing, 9)
            .await
            .unwrap();
        assert_eq!(r, Recorded::Unmatched);
        let t10 = store.feedback_target(10).await.unwrap().unwrap();
        let vacation = report(FeedbackKind::Ignored, "v1", Channel::Email);
        let r = store
            .record_feedback(
                &vacation,
                Some(&t10),
                ConsentAction::OptOut { source: "bounce" },
                10,
            )
            .await
            .unwrap();
        assert_eq!(r, Recorded::Ignored);
        assert!(
            opted_out(&store, 1).await.is_empty(),
            "an auto-reply opts nobody out"
        );
        assert_eq!(store.delivery_outcome(10).await.unwrap(), None);
        let review = store
            .feedback_events(Some("unmatched"), 0, 10)
            .await
            .unwrap();
        assert_eq!(review.len(), 1);
        assert_eq!(review[0].raw.as_deref(), Some("the report"));
        assert_eq!(
            store
                .feedback_events(Some("ignored"), 0, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
