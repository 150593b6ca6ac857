//! One scheduler tick: every occurrence due since the last tick is decided by the engine and
//! recorded in the ledger (messages as `pending`, suppressions with their reason) before
//! anything is sent. Messages are rendered when they are sent (`dispatch`).

use std::collections::{BTreeMap, HashMap};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::App;
use super::scan::CandidateScan;
use crate::config::Config;
use crate::domain::{Channel, Email, Locale, Phone, YearlyDate};
use crate::plan::{CustomerFacts, Decision, OrderFact, Outcome, Window};
use crate::store::{CustomerRow, NewDelivery, OrderRow, Status, StoreError};

/// The settings key of the last tick's `now`.
const WATERMARK: &str = "tick_watermark";
/// The settings key of the real clock when the last tick started: customers and orders
/// stored after it are new to the engine.
const WALL: &str = "tick_wall";

/// What a tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    /// Customers looked at.
    pub candidates: u64,
    /// Decisions taken at this tick (sends and suppressions).
    pub decisions: usize,
    /// New messages queued in the ledger.
    pub queued: usize,
    /// New suppressions recorded (opt-outs, no contact, holdout, caps, missed).
    pub suppressed: usize,
    /// Decisions whose occurrence was already in the ledger (another tick or daemon won).
    pub already_recorded: usize,
}

/// Turns stored rows into planner facts, caching time zones. Invalid stored values (which
/// import never writes) degrade to "absent" rather than stopping the tick.
pub struct FactsBuilder {
    zones: HashMap<String, TimeZone>,
    default_zone: String,
    default_locale: Locale,
    default_calendar: String,
}

impl FactsBuilder {
    pub fn new(cfg: &Config) -> Self {
        FactsBuilder {
            zones: HashMap::new(),
            default_zone: cfg.defaults.time_zone.clone(),
            default_locale: cfg.defaults.locale.clone(),
            default_calendar: cfg.engine.default_calendar.clone(),
        }
    }

    fn zone(&mut self, name: &str) -> TimeZone {
        if let Some(z) = self.zones.get(name) {
            return z.clone();
        }
        let z = TimeZone::get(name)
            .or_else(|_| TimeZone::get(&self.default_zone))
            .unwrap_or(TimeZone::UTC);
        self.zones.insert(name.to_string(), z.clone());
        z
    }

    pub fn facts(&mut self, row: &CustomerRow, orders: Vec<OrderRow>) -> CustomerFacts {
        let zone = self.zone(&row.time_zone);
        let yearly = |year: Option<i16>, md: i32| {
            YearlyDate::new(year, (md / 100) as i8, (md % 100) as i8).ok()
        };
        let attributes: BTreeMap<String, String> = if row.attributes.len() > 2 {
            serde_json::from_str(&row.attributes).unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        let locale = Locale::parse(&row.locale).unwrap_or_else(|_| self.default_locale.clone());
        let country = crate::calendar::country_of(
            attributes.get("country").map(String::as_str),
            locale.as_str(),
            &self.default_calendar,
        );
        let calendar = crate::calendar::calendar_for(
            country.as_deref(),
            locale.as_str(),
            &self.default_calendar,
        );
        let ts = |s: Option<i64>| s.and_then(|s| Timestamp::from_second(s).ok());
        CustomerFacts {
            id: row.id,
            external_id: row.external_id.clone(),
            first_name: row.first_name.clone(),
            last_name: row.last_name.clone(),
            email: row.email.as_deref().and_then(|e| Email::parse(e).ok()),
            phone: row
                .phone
                .as_deref()
                .and_then(|p| Phone::parse(p, None).ok()),
            locale,
            zone,
            birthday: row.birth_md.and_then(|md| yearly(row.birth_year, md)),
            signup: row
                .signup_date
                .as_deref()
                .and_then(|s| YearlyDate::parse(s).ok()),
            custom_dates: if row.custom_dates.len() > 2 {
                serde_json::from_str::<BTreeMap<String, String>>(&row.custom_dates)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, YearlyDate::parse(&v).ok()?)))
                    .collect()
            } else {
                BTreeMap::new()
            },
            order_count: row.order_count,
            total_spent_minor: row.total_spent_minor,
            first_order_at: ts(row.first_order_at),
            last_order_at: ts(row.last_order_at),
            orders: orders
                .into_iter()
                .filter_map(|o| {
                    Some(OrderFact {
                        external_id: o.external_id,
                        at: Timestamp::from_second(o.ordered_at).ok()?,
                        number: o.number,
                        amount_minor: o.amount_minor,
                        currency: o.currency,
                    })
                })
                .collect(),
            country,
            calendar,
            preferred_channel: row
                .preferred_channel
                .as_deref()
                .and_then(|c| c.parse::<Channel>().ok()),
            attributes,
        }
    }
}

/// A ledger write in flight: (rows, queued, suppressed).
type Write = tokio::task::JoinHandle<Result<(usize, usize, usize), StoreError>>;

/// The result of a spawned ledger write.
async fn join<T>(h: tokio::task::JoinHandle<Result<T, StoreError>>) -> Result<T, super::AppError> {
    match h.await {
        Ok(r) => Ok(r?),
        Err(e) => Err(super::AppError::Other(format!("ledger write task: {e}"))),
    }
}

/// The ledger row for a decision.
pub fn new_delivery(cfg: &Config, c: &CustomerFacts, d: &Decision) -> NewDelivery {
    let occasion = serde_json::to_string(&d.occasion).ok();
    let base = NewDelivery {
        ritual: d.ritual.clone(),
        category: d.category.clone(),
        customer_id: c.id,
        occurrence: d.occurrence.clone(),
        channel: d.channel_key().to_string(),
        status: Status::Suppressed,
        reason: None,
        recipient: None,
        subject: None,
        payload: None,
        message_id: None,
        due_at: d.due.as_second(),
        occasion,
        send_window: None,
    };
    match &d.outcome {
        Outcome::Suppress { reason, .. } => NewDelivery {
            reason: Some(reason.clone()),
            ..base
        },
        Outcome::Send {
            channel,
            recipient,
            due_at,
        } => NewDelivery {
            status: Status::Pending,
            recipient: Some(recipient.clone()),
            due_at: due_at.as_second(),
            send_window: cfg
                .engine
                .allowed_hours(*channel)
                .map(|h| format!("{} {h}", c.zone.iana_name().unwrap_or("UTC"))),
            ..base
        },
    }
}

impl TickReport {
    /// At INFO only when the tick recorded something: an idle daemon logs its one
    /// `tick done` line per tick, not two.
    fn log(&self) {
        if self.queued + self.suppressed > 0 {
            tracing::info!(
                candidates = self.candidates,
                queued = self.queued,
                suppressed = self.suppressed,
                already_recorded = self.already_recorded,
                "tick decided"
            );
        } else {
            tracing::debug!(
                candidates = self.candidates,
                already_recorded = self.already_recorded,
                "tick decided nothing new"
            );
        }
    }
}

impl App {
    /// The window a tick at `now` decides: from the last tick (at most `catch_up_days` back,
    /// recording what was missed), or on a first run (or a clock set back) the last 26 hours
    /// without recording anything as missed.
    pub async fn tick_window(&self, now: Timestamp) -> Result<Window, super::AppError> {
        let watermark = self
            .store
            .setting(WATERMARK)
            .await?
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| Timestamp::from_second(s).ok());
        let catch_up = SignedDuration::from_hours(24 * self.cfg.engine.catch_up_days as i64);
        Ok(match watermark {
            Some(w) if w < now => Window::new(w.max(now - catch_up), now, true),
            _ => Window::new(now - SignedDuration::from_hours(26), now, false),
        })
    }

    /// One tick: decide every occurrence due since the last tick, and record the decisions.
    /// Safe to repeat and to run concurrently: the ledger's unique occurrence key turns a
    /// second recording of the same occurrence into a no-op.
    pub async fn tick(&self, now: Timestamp) -> Result<TickReport, super::AppError> {
        let wall = self.clock.now().as_second();
        let window = self.tick_window(now).await?;
        let defs = self.defs();
        let engine = defs.engine(&self.cfg);
        // Customers and orders stored since the last tick: their occurrences due before they
        // arrived were never decided, so they get the whole grace window (nothing of theirs
        // is "missed": it did not exist).
        let fresh_from = window.now
            - self
                .longest_grace(&defs.rituals)
                .min(SignedDuration::from_hours(
                    24 * self.cfg.engine.catch_up_days as i64,
                ));
        let fresh = match (window.catching_up, self.store.setting(WALL).await?) {
            (true, Some(w)) => match w.parse::<i64>() {
                Ok(w) => self.store.ids_changed_since(w - 2).await?,
                Err(_) => Vec::new(),
            },
            _ => Vec::new(),
        };
        let mut scan = CandidateScan::new(
            self,
            engine,
            window.from,
            window.now,
            None,
            (fresh, fresh_from),
            None,
        )
        .await?;
        let mut report = TickReport::default();
        let now_s = now.as_second();
        // Each chunk's decisions are written while the next chunk is read and decided (on
        // another connection: chunks are disjoint sets of customers, so no chunk's reads
        // depend on another's writes). At most one write is in flight.
        let mut writing: Option<Write> = None;
        let record = |report: &mut TickReport, (rows, queued, suppressed)| {
            report.queued += queued;
            report.suppressed += suppressed;
            report.already_recorded += rows - queued - suppressed;
        };
        while let Some(chunk) = scan.next().await? {
            report.candidates += chunk.len() as u64;
            let mut rows = Vec::new();
            for cand in &chunk {
                let w = if cand.fresh {
                    Window {
                        earlier: Some(fresh_from),
                        ..window
                    }
                } else {
                    window
                };
                for d in engine.decide(&cand.facts, &cand.consent, &cand.history, w) {
                    rows.push(new_delivery(&self.cfg, &cand.facts, &d));
                }
            }
            report.decisions += rows.len();
            if let Some(w) = writing.take() {
                record(&mut report, join(w).await?);
            }
            let store = self.store.clone();
            writing = Some(tokio::spawn(async move {
                let (queued, suppressed) = store.insert_deliveries(&rows, now_s).await?;
                Ok((rows.len(), queued, suppressed))
            }));
        }
        if let Some(w) = writing.take() {
            record(&mut report, join(w).await?);
        }
        let current = self
            .store
            .setting(WATERMARK)
            .await?
            .and_then(|s| s.parse::<i64>().ok());
        if current.is_none_or(|c| c < now_s) {
            self.store
                .set_setting(WATERMARK, &now_s.to_string())
                .await?;
        }
        self.store.set_setting(WALL, &wall.to_string()).await?;
        report.log();
        Ok(report)
    }

    /// How far back a late occurrence can still be sent, over all rituals.
    fn longest_grace(&self, rituals: &[crate::ritual::Ritual]) -> SignedDuration {
        rituals
            .iter()
            .map(|r| match r.grace {
                // A local day, wherever on Earth.
                crate::ritual::Grace::SameDay => SignedDuration::from_hours(26),
                crate::ritual::Grace::For(d) => d,
            })
            .max()
            .unwrap_or(SignedDuration::ZERO)
    }
}
