//! `ritualist preview <ritual> --customer <id|email|phone> [--date D] [--channel C]`: the exact
//! message a customer would get on a date, or why they would not get it; and `--send-to`, the
//! same message sent as a test. Writes nothing to the ledger.

use std::sync::Arc;

use jiff::civil::Date;

use super::message::{Composed, compose_with};
use super::tick::facts_from_row;
use super::{App, AppError, Definitions};
use crate::channel::Outgoing;
use crate::domain::{Channel, Email, Locale, Phone};
use crate::plan::{Consent, CustomerFacts, Occasion, Outcome, decide, occasion_on};
use crate::ritual::Ritual;

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

/// What a preview is about, looked up once: the ritual, the customer, and the occasion on the
/// requested date (or the next one).
struct Target {
    defs: Arc<Definitions>,
    ritual: Ritual,
    customer: CustomerFacts,
    occasion: Occasion,
    send_at: jiff::Zoned,
}

impl App {
    /// Resolves a request, or says why there is nothing to show.
    async fn target(&self, req: &PreviewRequest) -> Result<Result<Target, String>, AppError> {
        let defs = self.defs();
        let ritual = defs
            .rituals
            .iter()
            .find(|r| r.name == req.ritual)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = defs.rituals.iter().map(|r| r.name.as_str()).collect();
                AppError::Other(format!(
                    "no ritual named `{}` (known: {})",
                    req.ritual,
                    names.join(", ")
                ))
            })?;
        let row = self
            .store
            .find_customer(&req.customer)
            .await?
            .ok_or_else(|| {
                AppError::Other(format!(
                    "no customer with external id, email or phone `{}`",
                    req.customer
                ))
            })?;
        let mut c = facts_from_row(
            &row,
            &self.cfg.defaults.time_zone,
            &self.cfg.defaults.locale,
        );
        if let Some(l) = &req.locale {
            c.locale = l.clone();
        }
        let occasion = match req.date {
            Some(date) => occasion_on(&ritual, &c, date).ok_or_else(|| {
                let when = c
                    .birthday
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "none on file".into());
                format!(
                    "`{}` does not fire for customer `{}` on {date} (birthday: {when})",
                    ritual.name, c.external_id
                )
            }),
            // Without --date: the next day (today included, in the customer's zone) it fires.
            None => {
                let today = crate::clock::now().to_zoned(c.zone.clone()).date();
                today
                    .series(jiff::Span::new().days(1))
                    .take(366 * 4)
                    .find_map(|d| occasion_on(&ritual, &c, d))
                    .ok_or_else(|| {
                        format!(
                            "customer `{}` has no occasion for `{}` (no birthday on file)",
                            c.external_id, ritual.name
                        )
                    })
            }
        };
        let occasion = match occasion {
            Ok(o) => o,
            Err(reason) => return Ok(Err(reason)),
        };
        let send_at = occasion
            .date
            .to_datetime(ritual.send_time)
            .to_zoned(c.zone.clone())
            .map_err(|e| AppError::Other(e.to_string()))?;
        Ok(Ok(Target {
            defs,
            ritual,
            customer: c,
            occasion,
            send_at,
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
        compose_with(
            &self.cfg,
            &t.defs.templates,
            &self.key,
            &t.ritual,
            c,
            &t.occasion,
            occurrence,
            channel,
            t.send_at.timestamp().as_second(),
            prefix,
        )
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
        // The decision the daemon would take at the send time: the same function, the same inputs.
        let mut channels = Vec::new();
        for d in decide(&t.ritual, c, &consent, t.send_at.timestamp()) {
            match d.outcome {
                Outcome::Suppress { reason, .. } => return Ok(Preview::NotSent { reason }),
                Outcome::Send {
                    channel, recipient, ..
                } => channels.push((channel, recipient)),
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
        let occurrence = t.occasion.occurrence();
        let mut messages = Vec::with_capacity(channels.len());
        for (channel, recipient) in channels {
            messages.push((
                channel,
                recipient,
                self.compose_for(&t, c, &occurrence, channel, None)?,
            ));
        }
        Ok(Preview::Messages {
            date: t.occasion.date,
            send_at: t.send_at,
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
            })
            .await
            .map_err(|e| e.message);
        Ok(TestSend {
            channel,
            recipient,
            reply,
        })
    }
}
