//! What became of the messages sent: per ritual and channel, how many were sent in a window
//! and how many of those a later report says were delivered, bounced (hard or soft), marked as
//! spam or not delivered (an SMS), and the reports counted per kind for `/metrics`.
//!
//! A message counts once per kind however many reports of that kind it got (a gateway that
//! sends "delivered" twice under two ids does not make 2 deliveries), and only reports that
//! were matched and applied count (`feedback_events.state = 'applied'`).

use sea_orm::QueryResult;

use super::codes::channel_at;
use super::{Status, Store, StoreError};
use crate::domain::{Channel, FeedbackKind};

/// The messages of one ritual and channel sent in a window, and what the reports said.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliverabilityCount {
    pub ritual: String,
    pub channel: Option<Channel>,
    pub sent: i64,
    pub delivered: i64,
    pub hard_bounced: i64,
    pub soft_bounced: i64,
    pub complained: i64,
    /// SMS the carrier did not deliver, for a reason that may pass.
    pub undelivered: i64,
    /// SMS to a number that cannot take messages.
    pub dead_number: i64,
}

/// Applied reports of one ritual, channel and kind (all time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackCount {
    pub ritual: String,
    pub channel: String,
    pub kind: String,
    pub n: i64,
}

/// The kinds counted per message, with their column names.
const KINDS: [(FeedbackKind, &str); 6] = [
    (FeedbackKind::Delivered, "delivered"),
    (FeedbackKind::HardBounce, "hard_bounced"),
    (FeedbackKind::SoftBounce, "soft_bounced"),
    (FeedbackKind::Complaint, "complained"),
    (FeedbackKind::Undelivered, "undelivered"),
    (FeedbackKind::DeadNumber, "dead_number"),
];

fn count_at(r: &QueryResult) -> Result<DeliverabilityCount, StoreError> {
    let n = |c: &str| -> Result<i64, StoreError> {
        // SUM over no rows, or a decimal on PostgreSQL: read as i64 either way.
        Ok(r.try_get::<Option<i64>>("", c)?.unwrap_or(0))
    };
    Ok(DeliverabilityCount {
        ritual: r.try_get("", "ritual")?,
        channel: Some(channel_at(r, "channel")?),
        sent: n("sent")?,
        delivered: n("delivered")?,
        hard_bounced: n("hard_bounced")?,
        soft_bounced: n("soft_bounced")?,
        complained: n("complained")?,
        undelivered: n("undelivered")?,
        dead_number: n("dead_number")?,
    })
}

impl Store {
    /// Per ritual and channel, the messages sent in `[since, until)` (their `sent_at`), and
    /// of those how many each kind of report names; one ritual with `ritual`. Sorted by
    /// ritual, then channel. Only reports received since `since` are read: a report comes
    /// after its message was sent (`idx_feedback_state` serves that range, so the cost follows
    /// the window, not every report ever received).
    pub async fn deliverability(
        &self,
        since: i64,
        until: i64,
        ritual: Option<&str>,
    ) -> Result<Vec<DeliverabilityCount>, StoreError> {
        let per_message: Vec<String> = KINDS
            .iter()
            .map(|(k, col)| {
                format!(
                    "MAX(CASE WHEN kind = '{}' THEN 1 ELSE 0 END) AS {col}",
                    k.as_str()
                )
            })
            .collect();
        let sums: Vec<String> = KINDS
            .iter()
            .map(|(_, col)| format!("CAST(SUM(COALESCE(f.{col}, 0)) AS BIGINT) AS {col}"))
            .collect();
        let (filter, mut values) = match ritual {
            Some(r) => (" AND d.ritual = $3", vec![r.to_string().into()]),
            None => ("", vec![]),
        };
        values.splice(0..0, [since.into(), until.into()]);
        let sql = format!(
            "SELECT d.ritual, d.channel, CAST(COUNT(*) AS BIGINT) AS sent, {sums} \
             FROM deliveries d LEFT JOIN (\
               SELECT delivery_id, {per_message} FROM feedback_events \
               WHERE state = 'applied' AND delivery_id IS NOT NULL AND received_at >= $1 GROUP BY delivery_id\
             ) f ON f.delivery_id = d.id \
             WHERE d.status = {sent} AND d.sent_at >= $1 AND d.sent_at < $2{filter} \
             GROUP BY d.ritual, d.channel ORDER BY d.ritual, d.channel",
            sums = sums.join(", "),
            per_message = per_message.join(", "),
            sent = Status::Sent.sql(),
        );
        let rows = self.all(&sql, values).await?;
        rows.iter().map(count_at).collect()
    }

    /// Applied reports per ritual, channel and kind, for `/metrics`.
    pub async fn feedback_counts(&self) -> Result<Vec<FeedbackCount>, StoreError> {
        let rows = self
            .all(
                "SELECT d.ritual, f.channel, f.kind, CAST(COUNT(*) AS BIGINT) AS n \
                 FROM feedback_events f JOIN deliveries d ON d.id = f.delivery_id \
                 WHERE f.state = 'applied' \
                 GROUP BY d.ritual, f.channel, f.kind ORDER BY d.ritual, f.channel, f.kind",
                vec![],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(FeedbackCount {
                    ritual: r.try_get("", "ritual")?,
                    channel: r
                        .try_get::<Option<String>>("", "channel")?
                        .unwrap_or_default(),
                    kind: r.try_get("", "kind")?,
                    n: r.try_get("", "n")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeliveryRef, Feedback, FeedbackSource};
    use crate::store::ConsentAction;
    use crate::test_support::temp_store;
    use sea_orm::ConnectionTrait;

    /// Ten birthday emails sent at 100..110, two SMS at 105, one email sent long before, one
    /// pending email.
    async fn seed(store: &Store) {
        let mut sql = String::from(
            "INSERT INTO customers (id, external_id, email, phone, locale, time_zone, created_at, updated_at) VALUES \
             (1, 'c1', 'maria@example.com', '+37360000001', 'en', 'UTC', 0, 0); \
             INSERT INTO deliveries (id, ritual, category, customer_id, occurrence, channel, status, recipient, sent_at, due_at, next_attempt_at, created_at, updated_at) VALUES ",
        );
        let mut rows = Vec::new();
        for i in 0..10 {
            rows.push(format!(
                "({}, 'birthday', 'birthday', 1, '2027-{i}', 'email', 'sent', 'maria@example.com', {}, 0, 0, 0, 0)",
                10 + i,
                100 + i
            ));
        }
        rows.push("(30, 'birthday', 'birthday', 1, '2027-s1', 'sms', 'sent', '+37360000001', 105, 0, 0, 0, 0)".into());
        rows.push("(31, 'birthday', 'birthday', 1, '2027-s2', 'sms', 'sent', '+37360000001', 105, 0, 0, 0, 0)".into());
        rows.push("(40, 'winback', 'winback', 1, '2026', 'email', 'sent', 'maria@example.com', 5, 0, 0, 0, 0)".into());
        rows.push("(41, 'winback', 'winback', 1, '2028', 'email', 'pending', 'maria@example.com', NULL, 0, 0, 0, 0)".into());
        sql.push_str(&rows.join(", "));
        store.db.execute_unprepared(&sql).await.unwrap();
    }

    async fn report(store: &Store, delivery: i64, kind: FeedbackKind, key: &str) {
        let target = store.feedback_target(delivery).await.unwrap();
        let fb = Feedback {
            kind,
            source: FeedbackSource::Http,
            delivery: DeliveryRef::Delivery(delivery),
            channel: target.as_ref().map_or(Channel::Email, |t| t.channel),
            recipient: None,
            detail: String::new(),
            dedupe_key: key.into(),
            raw: None,
        };
        store
            .record_feedback(&fb, target.as_ref(), ConsentAction::Nothing, 200)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn counts_per_ritual_and_channel_over_the_window() {
        let (store, _dir) = temp_store("deliverability").await;
        seed(&store).await;
        for id in 10..16 {
            report(&store, id, FeedbackKind::Delivered, &format!("d{id}")).await;
        }
        // A second "delivered" for the same message counts once.
        report(&store, 10, FeedbackKind::Delivered, "d10-again").await;
        report(&store, 16, FeedbackKind::HardBounce, "h16").await;
        report(&store, 17, FeedbackKind::SoftBounce, "s17").await;
        report(&store, 15, FeedbackKind::Complaint, "c15").await;
        report(&store, 30, FeedbackKind::Delivered, "d30").await;
        report(&store, 31, FeedbackKind::DeadNumber, "x31").await;
        // Outside the window: counted neither as sent nor as bounced.
        report(&store, 40, FeedbackKind::HardBounce, "h40").await;
        // An ignored report counts nothing.
        report(&store, 18, FeedbackKind::Ignored, "i18").await;

        let v = store.deliverability(100, 200, None).await.unwrap();
        assert_eq!(
            v,
            vec![
                DeliverabilityCount {
                    ritual: "birthday".into(),
                    channel: Some(Channel::Email),
                    sent: 10,
                    delivered: 6,
                    hard_bounced: 1,
                    soft_bounced: 1,
                    complained: 1,
                    ..Default::default()
                },
                DeliverabilityCount {
                    ritual: "birthday".into(),
                    channel: Some(Channel::Sms),
                    sent: 2,
                    delivered: 1,
                    dead_number: 1,
                    ..Default::default()
                },
            ]
        );
        let all = store.deliverability(0, 200, Some("winback")).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].sent, all[0].hard_bounced), (1, 1));
        assert!(
            store
                .deliverability(0, 100, Some("birthday"))
                .await
                .unwrap()
                .is_empty()
        );

        let counts = store.feedback_counts().await.unwrap();
        let n = |ritual: &str, channel: &str, kind: &str| {
            counts
                .iter()
                .find(|c| c.ritual == ritual && c.channel == channel && c.kind == kind)
                .map_or(0, |c| c.n)
        };
        assert_eq!(n("birthday", "email", "delivered"), 7);
        assert_eq!(n("birthday", "sms", "dead_number"), 1);
        assert_eq!(n("winback", "email", "hard_bounce"), 1);
        assert_eq!(n("birthday", "email", "ignored"), 0);
    }
}
