//! `ritualist preview <ritual> --customer <id|email|phone> [--date D] [--channel C]`: the exact
//! message a customer would get on a date, or why they would not get it; and `--send-to`, the
//! same message sent as a test. Writes nothing to the ledger.

use std::sync::Arc;

use jiff::civil::Date;

use super::message::{ComposeRequest, Composed, compose_with};
use super::tokens::LinkMode;
use super::{App, AppError, Definitions};
use crate::channel::Outgoing;
use crate::config::Config;
use crate::domain::{Channel, Email, Locale, Phone};
use jiff::SignedDuration;

use crate::plan::{Consent, CustomerFacts, Occurrence, Outcome, Window, day_start};
use crate::ritual::Ritual;

/// The years a date or an instant given on the command line or in a query may fall in: every
/// computation around one (a time zone's offset, a send window, years ahead) stays inside the
/// calendar library's range, so an odd date is a clear error, never a panic.
pub const SUPPORTED_YEARS: std::ops::RangeInclusive<i16> = 1..=9000;

/// `date`, or why it is out of range.
pub fn supported_date(date: jiff::civil::Date) -> Result<jiff::civil::Date, String> {
    if SUPPORTED_YEARS.contains(&date.year()) {
        Ok(date)
    } else {
        Err(format!(
            "{date} is out of range: dates from {:04}-01-01 to {}-12-31",
            SUPPORTED_YEARS.start(),
            SUPPORTED_YEARS.end()
        ))
    }
}

#[derive(Debug, Clone)]
pub struct PreviewRequest {
    pub ritual: String,
    pub customer: String,
    pub date: Option<Date>,
    pub channel: Option<Channel>,
    /// Render in this locale instead of the customer's.
    pub locale: Option<Locale>,
}

/// The result of a test send: where it went and what the transport answered.
#[derive(Debug, Clone)]
pub struct TestSend {
    pub channel: Channel,
    pub recipient: String,
    pub reply: Result<String, String>,
}

/// The outcome of a preview.
#[derive(Debug, Clone)]
pub enum Preview {
    /// What would be sent (one entry per channel), with the decision's local and UTC times.
    Messages {
        date: Date,
        send_at: jiff::Zoned,
        messages: Vec<(Channel, String, Composed)>,
    },
    /// Why nothing would be sent.
    NotSent { reason: String },
}

/// What a preview is about, looked up once: the ritual, the customer, and the occurrence on
/// the requested date (or the next one).
struct Target {
    defs: Arc<Definitions>,
    ritual: Ritual,
    customer: CustomerFacts,
    occurrence: Occurrence,
    send_at: jiff::Zoned,
    /// `--locale`: render in this locale. Only the rendering: who gets what is decided in
    /// the customer's own locale (audiences, calendars), as the daemon decides it.
    locale: Option<Locale>,
}

/// A real customer's facts (by external id, email or phone) for the preview page, which runs
/// without an [`App`]: the configured database is opened only when it exists already (the
/// page never creates one). `Ok(None)`: no such customer.
pub async fn find_customer_facts(
    cfg: &Config,
    key: &str,
) -> Result<Option<CustomerFacts>, AppError> {
    if !crate::store::Store::exists(&cfg.database_url) {
        return Err(AppError::Other(
            "there is no database yet: import customers first (`ritualist import customers FILE`)"
                .into(),
        ));
    }
    let store = crate::store::Store::open(&cfg.database_url).await?;
    let Some(row) = store.find_customer(key).await? else {
        return Ok(None);
    };
    let mut orders = store.orders_between(&[row.id], i64::MIN, i64::MAX).await?;
    Ok(Some(
        super::FactsBuilder::new(cfg).facts(&row, orders.remove(&row.id).unwrap_or_default()),
    ))
}

impl App {
    /// The customer's facts as the engine sees them, with every order they placed.
    async fn customer_facts(&self, key: &str) -> Result<Option<CustomerFacts>, AppError> {
        let Some(row) = self.store.find_customer(key).await? else {
            return Ok(None);
        };
        let mut orders = self
            .store
            .orders_between(&[row.id], i64::MIN, i64::MAX)
            .await?;
        Ok(Some(
            self.facts_builder()
                .facts(&row, orders.remove(&row.id).unwrap_or_default()),
        ))
    }

    /// Resolves a request, or says why there is nothing to show.
    async fn target(&self, req: &PreviewRequest) -> Result<Result<Target, String>, AppError> {
        let defs = self.defs();
        let engine = defs.engine(&self.cfg);
        super::Known::from_parts(&defs.rituals, &[]).ritual(&req.ritual)?;
        let idx = engine
            .ritual_index(&req.ritual)
            .ok_or_else(|| AppError::Other(format!("unknown ritual `{}`", req.ritual)))?;
        let ritual = defs.rituals[idx].clone();
        let c = self.customer_facts(&req.customer).await?.ok_or_else(|| {
            AppError::Other(format!(
                "no customer with external id, email or phone `{}`",
                req.customer
            ))
        })?;
        let day = |d: jiff::civil::Date| day_start(d, &c.zone);
        let occurrence = match req.date {
            Some(date) => {
                let next = date.tomorrow().unwrap_or(date);
                let date = supported_date(date).map_err(AppError::Other)?;
                engine
                    .occurrences_of(idx, &c, day(date) - SignedDuration::from_secs(1), day(next))
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        format!(
                            "`{}` ({}) does not fire for customer `{}` on {date}",
                            ritual.name,
                            ritual.trigger.kind(),
                            c.external_id
                        )
                    })
            }
            // Without --date: the next occurrence (today included); for event rituals whose
            // last occurrence has passed, the latest one within a year.
            None => {
                let now = self.clock.now();
                let today = day(now.to_zoned(c.zone.clone()).date()) - SignedDuration::from_secs(1);
                let ahead = engine
                    .occurrences_of(
                        idx,
                        &c,
                        today,
                        now + SignedDuration::from_hours(24 * 366 * 4),
                    )
                    .into_iter()
                    .min_by_key(|o| o.due);
                ahead
                    .or_else(|| {
                        engine
                            .occurrences_of(
                                idx,
                                &c,
                                now - SignedDuration::from_hours(24 * 366),
                                now,
                            )
                            .into_iter()
                            .max_by_key(|o| o.due)
                    })
                    .ok_or_else(|| {
                        format!(
                            "customer `{}` has no occurrence of `{}` ({})",
                            c.external_id,
                            ritual.name,
                            ritual.trigger.kind()
                        )
                    })
            }
        };
        let occurrence = match occurrence {
            Ok(o) => o,
            Err(reason) => return Ok(Err(reason)),
        };
        let send_at = occurrence.due.to_zoned(c.zone.clone());
        Ok(Ok(Target {
            defs,
            ritual,
            customer: c,
            occurrence,
            send_at,
            locale: req.locale.clone(),
        }))
    }

    fn compose_for(
        &self,
        t: &Target,
        c: &CustomerFacts,
        occurrence: &str,
        channel: Channel,
        prefix: Option<&str>,
    ) -> Result<Composed, AppError> {
        let relocated;
        let c = match &t.locale {
            Some(l) => {
                let mut other = c.clone();
                other.locale = l.clone();
                relocated = other;
                &relocated
            }
            None => c,
        };
        compose_with(&ComposeRequest {
            cfg: &self.cfg,
            templates: &t.defs.templates,
            key: &self.key,
            ritual: &t.ritual,
            customer: c,
            occasion: &t.occurrence.occasion,
            occurrence,
            channel,
            now: t.send_at.timestamp().as_second(),
            prefix,
            dkim: self.dkim.as_deref(),
            // Previews and test sends carry test links: clicking them records nothing.
            links: LinkMode::Test,
            delivery_token: None,
        })
        .map_err(|e| AppError::Other(e.to_string()))
    }

    pub async fn preview(&self, req: &PreviewRequest) -> Result<Preview, AppError> {
        let t = match self.target(req).await? {
            Ok(t) => t,
            Err(reason) => return Ok(Preview::NotSent { reason }),
        };
        let c = &t.customer;
        let consent = Consent {
            opted_out: self
                .store
                .opt_outs(&[c.id])
                .await?
                .remove(&c.id)
                .unwrap_or_default(),
        };
        // The decision the daemon would take at the due time: the same engine, the same
        // inputs (the ledger's recent rows, without this occurrence's own).
        let engine = t.defs.engine(&self.cfg);
        let due = t.occurrence.due;
        let since = due - SignedDuration::from_hours(24 * (super::scan::history_days(&engine) + 2));
        let history: Vec<_> = self
            .store
            .history(&[c.id], since.as_second())
            .await?
            .remove(&c.id)
            .unwrap_or_default()
            .iter()
            .map(super::scan::recorded_from)
            .filter(|h| !(h.ritual == t.ritual.name && h.occurrence == t.occurrence.key))
            .collect();
        let window = Window::new(due - SignedDuration::from_secs(1), due, false);
        let mut channels = Vec::new();
        let mut send_at = t.send_at.clone();
        let decisions: Vec<_> = engine
            .decide(c, &consent, &history, window)
            .into_iter()
            .filter(|d| d.ritual == t.ritual.name && d.occurrence == t.occurrence.key)
            .collect();
        if decisions.is_empty() {
            return Ok(Preview::NotSent {
                reason: format!(
                    "customer `{}` is not in the audience of `{}`",
                    c.external_id, t.ritual.name
                ),
            });
        }
        for d in decisions {
            match d.outcome {
                Outcome::Suppress { reason, .. } => return Ok(Preview::NotSent { reason }),
                Outcome::Send {
                    channel,
                    recipient,
                    due_at,
                } => {
                    send_at = send_at.max(due_at.to_zoned(c.zone.clone()));
                    channels.push((channel, recipient))
                }
            }
        }
        if let Some(want) = req.channel {
            // Only the requested channel; shown even when the customer's own choice differs.
            channels = match c.contact(want) {
                Some(recipient) => vec![(want, recipient)],
                None => {
                    return Ok(Preview::NotSent {
                        reason: format!("customer `{}` has no {want} contact", c.external_id),
                    });
                }
            };
        }
        let occurrence = t.occurrence.key.clone();
        let mut messages = Vec::with_capacity(channels.len());
        for (channel, recipient) in channels {
            messages.push((
                channel,
                recipient,
                self.compose_for(&t, c, &occurrence, channel, None)?,
            ));
        }
        Ok(Preview::Messages {
            date: t.occurrence.local_date,
            send_at,
            messages,
        })
    }

    /// Sends the previewed message to `to` (an email address or a phone number) through the
    /// configured transport, as a test: marked `[TEST] `, with a fresh Message-ID, recorded
    /// nowhere, counted for nobody. The customer's consent does not apply: they receive nothing.
    pub async fn test_send(&self, req: &PreviewRequest, to: &str) -> Result<TestSend, AppError> {
        let t = self
            .target(req)
            .await?
            .map_err(|reason| AppError::Other(format!("nothing to send: {reason}")))?;
        let mut c = t.customer.clone();
        let channel = match Email::parse(to) {
            Ok(e) => {
                c.email = Some(e);
                Channel::Email
            }
            Err(_) => match Phone::parse(to, self.cfg.defaults.country_code.as_deref()) {
                Ok(p) => {
                    c.phone = Some(p);
                    Channel::Sms
                }
                Err(e) => {
                    return Err(AppError::Other(format!(
                        "--send-to `{to}` is neither an email address nor a phone number: {e}"
                    )));
                }
            },
        };
        if let Some(want) = req.channel
            && want != channel
        {
            return Err(AppError::Other(format!(
                "--channel {want} with --send-to `{to}`, which is an {} address: give {}",
                if channel == Channel::Email {
                    "email"
                } else {
                    "SMS"
                },
                if want == Channel::Email {
                    "an email address to test the email"
                } else {
                    "a phone number to test the SMS"
                }
            )));
        }
        let occurrence = format!("test-{}", crate::store::random_token());
        let m = self.compose_for(&t, &c, &occurrence, channel, Some("[TEST] "))?;
        let recipient = c.contact(channel).expect("the address was set above");
        let reply = self
            .channels
            .send(&Outgoing {
                channel: channel.as_str(),
                recipient: &recipient,
                payload: &m.payload,
                message_id: m.message_id.as_deref(),
                from: &self.cfg.shop.from_email,
                handover: None,
                delivery_id: None,
            })
            .await
            .map_err(|e| e.to_string());
        Ok(TestSend {
            channel,
            recipient,
            reply,
        })
    }
}
