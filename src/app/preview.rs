//! `ritualist preview <ritual> --customer <id|email|phone> [--date D] [--channel C]`: the exact
//! message a customer would get on a date, or why they would not get it. Writes nothing.

use jiff::civil::Date;

use super::App;
use super::message::{Composed, compose, compose_with};
use super::tick::facts_from_row;
use crate::channel::Outgoing;
use crate::domain::{Channel, Email, Locale, Phone};
use crate::plan::{Consent, Outcome, decide, occasion_on};

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

impl App {
    /// Sends what [`App::preview`] shows to `to` (an email address or a phone number) through
    /// the configured transport, as a test: the subject starts with `[TEST] `, the Message-ID
    /// is a fresh one, nothing is recorded in the ledger and nothing counts for the customer.
    pub async fn test_send(
        &self,
        req: &PreviewRequest,
        to: &str,
    ) -> Result<Vec<TestSend>, super::AppError> {
        let (channel, email, phone) = match Email::parse(to) {
            Ok(e) => (Channel::Email, Some(e), None),
            Err(_) => match Phone::parse(to, self.cfg.defaults.country_code.as_deref()) {
                Ok(p) => (Channel::Sms, None, Some(p)),
                Err(e) => {
                    return Err(super::AppError::Other(format!(
                        "--send-to `{to}` is neither an email address nor a phone number: {e}"
                    )));
                }
            },
        };
        let req = PreviewRequest {
            channel: Some(channel),
            ..req.clone()
        };
        let Preview::Messages { date, send_at, .. } = self.preview(&req).await? else {
            return Err(super::AppError::Other(
                "nothing to send: see `ritualist preview` without --send-to".into(),
            ));
        };
        let defs = self.defs();
        let ritual = defs
            .rituals
            .iter()
            .find(|r| r.name == req.ritual)
            .expect("preview found it");
        let row = self
            .store
            .find_customer(&req.customer)
            .await?
            .expect("preview found the customer");
        let mut c = facts_from_row(
            &row,
            &self.cfg.defaults.time_zone,
            &self.cfg.defaults.locale,
        );
        if let Some(l) = &req.locale {
            c.locale = l.clone();
        }
        c.email = email;
        c.phone = phone;
        let occasion = occasion_on(ritual, &c, date).expect("preview found the occasion");
        let occurrence = format!("test-{}", crate::store::random_token());
        let m = compose_with(
            &self.cfg,
            &defs.templates,
            &self.key,
            ritual,
            &c,
            &occasion,
            &occurrence,
            channel,
            send_at.timestamp().as_second(),
            Some("[TEST] "),
        )
        .map_err(|e| super::AppError::Other(e.to_string()))?;
        let payload = if channel == Channel::Sms {
            format!("[TEST] {}", m.payload)
        } else {
            m.payload
        };
        let recipient = c.contact(channel).expect("set above");
        let reply = self
            .channels
            .send(&Outgoing {
                channel: channel.as_str(),
                recipient: &recipient,
                payload: &payload,
                message_id: m.message_id.as_deref(),
                from: &self.cfg.shop.from_email,
            })
            .await
            .map_err(|e| e.message);
        Ok(vec![TestSend {
            channel,
            recipient,
            reply,
        }])
    }

    pub async fn preview(&self, req: &PreviewRequest) -> Result<Preview, super::AppError> {
        let defs = self.defs();
        let ritual = defs
            .rituals
            .iter()
            .find(|r| r.name == req.ritual)
            .ok_or_else(|| {
                let names: Vec<&str> = defs.rituals.iter().map(|r| r.name.as_str()).collect();
                super::AppError::Other(format!(
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
                super::AppError::Other(format!(
                    "no customer with external id, email or phone `{}`",
                    req.customer
                ))
            })?;
        let c = facts_from_row(
            &row,
            &self.cfg.defaults.time_zone,
            &self.cfg.defaults.locale,
        );
        // Without --date: the next day (today included, in the customer's zone) the ritual fires.
        let today = crate::clock::now().to_zoned(c.zone.clone()).date();
        let date = match req.date {
            Some(d) => d,
            None => {
                let mut d = today;
                let mut found = None;
                for _ in 0..(366 * 4) {
                    if occasion_on(ritual, &c, d).is_some() {
                        found = Some(d);
                        break;
                    }
                    d = d
                        .tomorrow()
                        .map_err(|e| super::AppError::Other(e.to_string()))?;
                }
                match found {
                    Some(d) => d,
                    None => {
                        return Ok(Preview::NotSent {
                            reason: format!(
                                "customer `{}` has no occasion for `{}` (no birthday on file)",
                                c.external_id, ritual.name
                            ),
                        });
                    }
                }
            }
        };
        let Some(occasion) = occasion_on(ritual, &c, date) else {
            let when = c
                .birthday
                .map(|b| b.to_string())
                .unwrap_or_else(|| "none on file".into());
            return Ok(Preview::NotSent {
                reason: format!(
                    "`{}` does not fire for customer `{}` on {date} (birthday: {when})",
                    ritual.name, c.external_id
                ),
            });
        };
        let send_at = date
            .to_datetime(ritual.send_time)
            .to_zoned(c.zone.clone())
            .map_err(|e| super::AppError::Other(e.to_string()))?;
        let ids = [c.id];
        let consent = Consent {
            opted_out: self
                .store
                .opt_outs(&ids)
                .await?
                .remove(&c.id)
                .unwrap_or_default(),
        };
        let decisions = decide(ritual, &c, &consent, send_at.timestamp());
        let mut messages = Vec::new();
        for d in decisions {
            match d.outcome {
                Outcome::Suppress { reason, .. } => return Ok(Preview::NotSent { reason }),
                Outcome::Send {
                    channel, recipient, ..
                } => {
                    if req.channel.is_some_and(|want| want != channel) {
                        continue;
                    }
                    let m = compose(
                        &self.cfg,
                        &defs.templates,
                        &self.key,
                        ritual,
                        &c,
                        &occasion,
                        &d.occurrence,
                        channel,
                        send_at.timestamp().as_second(),
                    )
                    .map_err(|e| super::AppError::Other(e.to_string()))?;
                    messages.push((channel, recipient, m));
                }
            }
        }
        if messages.is_empty()
            && let Some(ch) = req.channel
        {
            // The customer's own channel choice differs: show the requested one anyway if reachable.
            if let Some(recipient) = c.contact(ch) {
                let m = compose(
                    &self.cfg,
                    &defs.templates,
                    &self.key,
                    ritual,
                    &c,
                    &occasion,
                    &occasion.year.to_string(),
                    ch,
                    send_at.timestamp().as_second(),
                )
                .map_err(|e| super::AppError::Other(e.to_string()))?;
                messages.push((ch, recipient, m));
            } else {
                return Ok(Preview::NotSent {
                    reason: format!("customer `{}` has no {ch} contact", c.external_id),
                });
            }
        }
        Ok(Preview::Messages {
            date,
            send_at,
            messages,
        })
    }
}
