//! Deliverability: of the messages sent, how many were delivered, bounced, marked as spam or
//! not delivered, per ritual and channel (`ritualist report`), and the alert `/healthz` and
//! the log raise when the complaint or hard-bounce rate of the last 7 days passes its
//! threshold (`bounces.alert`, docs/operator.md "Deliverability rates and alerts").
//!
//! Rates are counts over messages sent in the window (a message bounced twice counts once);
//! what a report said about a message sent before the window is not in it. A hard bounce is
//! an email's permanent refusal or an SMS to a dead number. A channel is judged only once it
//! sent `bounces.alert.min_sent` messages in the window, so 1 complaint among 3 messages
//! alerts nobody.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::sync::Mutex;

use jiff::tz::TimeZone;

use super::{App, AppError, ReportRequest};
use crate::config::{Config, DeliverabilityAlert};
use crate::domain::Channel;
use crate::store::{DeliverabilityCount, FeedbackCount, Store};

/// One ritual and channel's deliverability over a window: the counts and their rates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliverabilityRow {
    #[serde(flatten)]
    pub counts: DeliverabilityCount,
    /// Percent of `sent`; `None` when nothing was sent.
    pub delivered_pct: Option<f64>,
    pub hard_bounce_pct: Option<f64>,
    pub soft_bounce_pct: Option<f64>,
    pub complaint_pct: Option<f64>,
    /// SMS not delivered, dead numbers included.
    pub undelivered_pct: Option<f64>,
}

/// `n` of `sent` in percent.
fn pct(n: i64, sent: i64) -> Option<f64> {
    (sent > 0).then(|| n as f64 * 100.0 / sent as f64)
}

impl DeliverabilityRow {
    pub fn new(counts: DeliverabilityCount) -> DeliverabilityRow {
        let s = counts.sent;
        DeliverabilityRow {
            delivered_pct: pct(counts.delivered, s),
            hard_bounce_pct: pct(counts.hard_bounced + counts.dead_number, s),
            soft_bounce_pct: pct(counts.soft_bounced, s),
            complaint_pct: pct(counts.complained, s),
            undelivered_pct: pct(counts.undelivered + counts.dead_number, s),
            counts,
        }
    }
}

/// The report's window (`since`/`until` as days in the shop's zone, `until` included) and
/// ritual, per ritual and channel.
pub async fn deliverability(
    store: &Store,
    cfg: &Config,
    req: &ReportRequest,
) -> Result<Vec<DeliverabilityRow>, AppError> {
    let tz = TimeZone::get(&cfg.defaults.time_zone).unwrap_or(TimeZone::UTC);
    let start = |d: jiff::civil::Date| -> Result<i64, AppError> {
        d.to_zoned(tz.clone())
            .map(|z| z.timestamp().as_second())
            .map_err(|e| AppError::Other(format!("date {d}: {e}")))
    };
    let since = req.since.map(start).transpose()?.unwrap_or(i64::MIN / 2);
    let until = match req.until {
        Some(d) => start(d.tomorrow().map_err(|e| AppError::Other(e.to_string()))?)?,
        None => i64::MAX / 2,
    };
    let rows = store
        .deliverability(since, until, req.ritual.as_deref())
        .await?;
    Ok(rows.into_iter().map(DeliverabilityRow::new).collect())
}

/// Which rate an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertRate {
    Complaint,
    HardBounce,
}

/// A channel whose rate over the window passed its threshold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    pub channel: Channel,
    pub rate: AlertRate,
    /// Complaints, or hard bounces and dead numbers.
    pub count: i64,
    pub sent: i64,
    /// The threshold, in basis points (30 = 0.3 %).
    pub threshold_bp: u32,
}

impl Alert {
    /// What the alert is about, for remembering it between checks.
    fn key(&self) -> (Channel, AlertRate) {
        (self.channel, self.rate)
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.rate {
            AlertRate::Complaint => "spam complaint rate",
            AlertRate::HardBounce => "hard bounce rate",
        };
        write!(
            f,
            "{} {what} {:.2} % over the last {} days ({} of {} sent) is above {} %",
            self.channel,
            self.count as f64 * 100.0 / self.sent.max(1) as f64,
            DeliverabilityAlert::DAYS,
            self.count,
            self.sent,
            f64::from(self.threshold_bp) / 100.0
        )
    }
}

/// The alerts `counts` (one window, every ritual) raise under `limits`: per channel, the
/// complaint rate and the hard-bounce rate (dead numbers included) strictly above their
/// thresholds, once the channel sent at least `min_sent` messages.
pub fn alerts(counts: &[DeliverabilityCount], limits: &DeliverabilityAlert) -> Vec<Alert> {
    let mut per: BTreeMap<Channel, (i64, i64, i64)> = BTreeMap::new();
    for c in counts {
        let Some(ch) = c.channel else { continue };
        let e = per.entry(ch).or_default();
        e.0 += c.sent;
        e.1 += c.complained;
        e.2 += c.hard_bounced + c.dead_number;
    }
    let mut out = Vec::new();
    for (channel, (sent, complained, hard)) in per {
        if sent < i64::from(limits.min_sent) {
            continue;
        }
        // count / sent > bp / 10 000, in integers.
        let above = |n: i64, bp: u32| n * 10_000 > sent * i64::from(bp);
        for (rate, n, bp) in [
            (AlertRate::Complaint, complained, limits.complaint_bp),
            (AlertRate::HardBounce, hard, limits.hard_bounce_bp),
        ] {
            if above(n, bp) {
                out.push(Alert {
                    channel,
                    rate,
                    count: n,
                    sent,
                    threshold_bp: bp,
                });
            }
        }
    }
    out
}

/// The alerts raised at the last check, so each crossing is logged once, and the last
/// result with its time, so a health probe every few seconds costs one query a minute.
#[derive(Debug, Default)]
pub struct AlertLog {
    raised: Mutex<BTreeSet<(Channel, AlertRate)>>,
    last: Mutex<Option<(i64, Vec<Alert>)>>,
}

/// How long (seconds) a check's result is reused.
const RECHECK_SECS: i64 = 60;

impl AlertLog {
    /// The result of a check made less than [`RECHECK_SECS`] before `now` (not after it).
    fn recent(&self, now: i64) -> Option<Vec<Alert>> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match &*last {
            Some((at, alerts)) if (0..RECHECK_SECS).contains(&(now - at)) => Some(alerts.clone()),
            _ => None,
        }
    }

    fn remember(&self, now: i64, alerts: &[Alert]) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, alerts.to_vec()));
    }

    /// Remembers `now` as the raised alerts; returns those newly raised and the keys of those
    /// that cleared since the last call.
    fn update(&self, now: &[Alert]) -> (Vec<Alert>, Vec<(Channel, AlertRate)>) {
        let mut raised = self.raised.lock().unwrap_or_else(|p| p.into_inner());
        let keys: BTreeSet<_> = now.iter().map(Alert::key).collect();
        let new = now
            .iter()
            .filter(|a| !raised.contains(&a.key()))
            .cloned()
            .collect();
        let cleared = raised.difference(&keys).copied().collect();
        *raised = keys;
        (new, cleared)
    }
}

/// The `/metrics` series of later reports: `ritualist_feedback_total{ritual,channel,kind}`,
/// the reports matched to a message and applied, since the database began.
pub fn feedback_exposition(counts: &[FeedbackCount]) -> String {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut out = String::from(
        "# HELP ritualist_feedback_total Later reports applied to messages sent (delivered, bounces, complaints, SMS receipts), per ritual, channel and kind.\n\
         # TYPE ritualist_feedback_total counter\n",
    );
    for c in counts {
        let _ = writeln!(
            out,
            "ritualist_feedback_total{{ritual=\"{}\",channel=\"{}\",kind=\"{}\"}} {}",
            esc(&c.ritual),
            esc(&c.channel),
            esc(&c.kind),
            c.n
        );
    }
    out
}

impl App {
    /// [`feedback_exposition`] of this database.
    pub async fn feedback_metrics_text(&self) -> Result<String, AppError> {
        Ok(feedback_exposition(&self.store.feedback_counts().await?))
    }

    /// The deliverability alerts of the last [`DeliverabilityAlert::DAYS`] days (see
    /// [`alerts`]). A newly raised one is logged as an `ALERT` (once per crossing), one that
    /// cleared as information.
    /// The result is reused for a minute (a health probe every few seconds costs one query
    /// a minute).
    pub async fn deliverability_alerts(&self) -> Result<Vec<Alert>, AppError> {
        let now = self.clock.now().as_second();
        if let Some(alerts) = self.deliverability_log.recent(now) {
            return Ok(alerts);
        }
        let since = now - i64::from(DeliverabilityAlert::DAYS) * 86_400;
        let counts = self.store.deliverability(since, now + 1, None).await?;
        let raised = alerts(&counts, &self.cfg.bounces.alert);
        let (new, cleared) = self.deliverability_log.update(&raised);
        self.deliverability_log.remember(now, &raised);
        for a in &new {
            tracing::error!(channel = %a.channel, rate = ?a.rate, "ALERT: {a}");
        }
        for (channel, rate) in cleared {
            tracing::info!(%channel, ?rate, "deliverability alert cleared: back under the threshold");
        }
        Ok(raised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(channel: Channel, sent: i64, complained: i64, hard: i64) -> DeliverabilityCount {
        DeliverabilityCount {
            ritual: "birthday".into(),
            channel: Some(channel),
            sent,
            complained,
            hard_bounced: hard,
            ..Default::default()
        }
    }

    #[test]
    fn rates_are_counts_over_sent() {
        let r = DeliverabilityRow::new(DeliverabilityCount {
            sent: 200,
            delivered: 190,
            hard_bounced: 4,
            soft_bounced: 2,
            complained: 1,
            undelivered: 3,
            dead_number: 1,
            ..Default::default()
        });
        assert_eq!(r.delivered_pct, Some(95.0));
        assert_eq!(r.hard_bounce_pct, Some(2.5));
        assert_eq!(r.soft_bounce_pct, Some(1.0));
        assert_eq!(r.complaint_pct, Some(0.5));
        assert_eq!(r.undelivered_pct, Some(2.0));
        let none = DeliverabilityRow::new(DeliverabilityCount::default());
        assert_eq!(none.delivered_pct, None);
    }

    #[test]
    fn alerts_need_volume_and_a_rate_strictly_above_the_threshold() {
        let limits = DeliverabilityAlert::default();
        // 1 of 3: too few sent to judge.
        assert!(alerts(&[count(Channel::Email, 3, 1, 1)], &limits).is_empty());
        // 3 of 1000 = 0.3 %: not above.
        assert!(alerts(&[count(Channel::Email, 1000, 3, 20)], &limits).is_empty());
        // 4 of 1000 complaints, 21 of 1000 hard bounces: both, summed over rituals.
        let v = alerts(
            &[
                count(Channel::Email, 600, 2, 11),
                count(Channel::Email, 400, 2, 10),
                count(Channel::Sms, 50, 0, 50),
            ],
            &limits,
        );
        assert_eq!(
            v.iter()
                .map(|a| (a.channel, a.rate, a.count, a.sent))
                .collect::<Vec<_>>(),
            [
                (Channel::Email, AlertRate::Complaint, 4, 1000),
                (Channel::Email, AlertRate::HardBounce, 21, 1000)
            ]
        );
        assert_eq!(
            v[0].to_string(),
            "email spam complaint rate 0.40 % over the last 7 days (4 of 1000 sent) is above 0.3 %"
        );
        // Dead numbers are an SMS's hard bounces.
        let mut sms = count(Channel::Sms, 100, 0, 0);
        sms.dead_number = 3;
        let v = alerts(&[sms], &limits);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].rate, v[0].count), (AlertRate::HardBounce, 3));
    }

    #[test]
    fn feedback_series_are_labelled_and_escaped() {
        let text = feedback_exposition(&[
            FeedbackCount {
                ritual: "birthday".into(),
                channel: "sms".into(),
                kind: "dead_number".into(),
                n: 2,
            },
            FeedbackCount {
                ritual: "we\"ird".into(),
                channel: "email".into(),
                kind: "complaint".into(),
                n: 1,
            },
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "# TYPE ritualist_feedback_total counter");
        assert_eq!(
            lines[2],
            "ritualist_feedback_total{ritual=\"birthday\",channel=\"sms\",kind=\"dead_number\"} 2"
        );
        assert_eq!(
            lines[3],
            "ritualist_feedback_total{ritual=\"we\\\"ird\",channel=\"email\",kind=\"complaint\"} 1"
        );
    }

    #[test]
    fn each_crossing_is_new_once() {
        let log = AlertLog::default();
        let limits = DeliverabilityAlert::default();
        let high = alerts(&[count(Channel::Email, 1000, 10, 0)], &limits);
        let (new, cleared) = log.update(&high);
        assert_eq!((new.len(), cleared.len()), (1, 0));
        let (new, cleared) = log.update(&high);
        assert_eq!((new.len(), cleared.len()), (0, 0));
        let (new, cleared) = log.update(&[]);
        assert_eq!(
            (new.len(), cleared),
            (0, vec![(Channel::Email, AlertRate::Complaint)])
        );
        let (new, _) = log.update(&high);
        assert_eq!(new.len(), 1, "a second crossing is logged again");
    }

    #[test]
    fn a_result_is_reused_for_a_minute_and_never_from_the_future() {
        let log = AlertLog::default();
        assert_eq!(log.recent(1000), None);
        let high = alerts(
            &[count(Channel::Email, 1000, 10, 0)],
            &DeliverabilityAlert::default(),
        );
        log.remember(1000, &high);
        assert_eq!(log.recent(1000), Some(high.clone()));
        assert_eq!(log.recent(1059), Some(high));
        assert_eq!(log.recent(1060), None);
        assert_eq!(log.recent(999), None, "the clock went back");
    }
}
