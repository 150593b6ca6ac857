//! Reports that arrive after a message left — delivery status notifications, spam
//! complaints, provider webhooks, SMS receipts — matched to their delivery and acted on
//! (docs/delivery-guarantee.md §6). Every way in (`ritualist bounce`, the inbound mail
//! listener, the webhooks of `http/`) builds a [`Feedback`] and calls
//! [`App::record_feedback`]; the policy is [`policy`], a pure function.
//!
//! The return path: with `bounces.return_path: bounces@shop.example`, each email's envelope
//! sender is `bounces+<delivery token>@shop.example` ([`App::return_path`]), so a bounce
//! names its delivery even when it quotes nothing of the message.

use crate::config::BouncesConfig;
use crate::domain::{Channel, DeliveryRef, Feedback, FeedbackKind};
use crate::store::{ConsentAction, FeedbackTarget, Recorded};

use super::{App, AppError};

/// What recording a report did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FeedbackResult {
    pub recorded: Recorded,
    pub delivery_id: Option<i64>,
    pub customer_id: Option<i64>,
}

/// What a report of `kind` about a message on `channel` does to consent, at `now` (Unix
/// seconds):
/// - an email hard bounce opts the address out of email (source `bounce`), as a refusal
///   during the SMTP conversation does;
/// - the `limit`-th soft bounce of an address within `days` opts it out (`soft_bounces`);
/// - a spam complaint opts the customer out of email (`complaint`);
/// - an SMS to a dead number opts the number out of SMS (`dead_number`);
/// - deliveries, undelivered SMS and ignored reports change nothing.
///
/// Every opt-out applies only while the address is still the customer's.
pub fn policy(
    kind: FeedbackKind,
    channel: Channel,
    cfg: &BouncesConfig,
    now: i64,
) -> ConsentAction {
    match (kind, channel) {
        (FeedbackKind::HardBounce, Channel::Email) => ConsentAction::OptOut { source: "bounce" },
        (FeedbackKind::SoftBounce, _) => ConsentAction::OptOutAfter {
            source: "soft_bounces",
            limit: cfg.soft_bounces.limit,
            since: now - i64::from(cfg.soft_bounces.days) * 86_400,
        },
        (FeedbackKind::Complaint, Channel::Email) => ConsentAction::OptOut {
            source: "complaint",
        },
        (FeedbackKind::DeadNumber | FeedbackKind::HardBounce, Channel::Sms) => {
            ConsentAction::OptOut {
                source: "dead_number",
            }
        }
        _ => ConsentAction::Nothing,
    }
}

impl App {
    /// The envelope sender of delivery `delivery_id`'s email: `bounces+<token>@domain` with
    /// `bounces.return_path`, else `shop.from_email`.
    pub fn return_path(&self, delivery_id: i64) -> String {
        match &self.cfg.bounces.return_path {
            Some((local, domain)) => format!(
                "{local}+{}@{domain}",
                self.link_keys.delivery_token(delivery_id)
            ),
            None => self.cfg.shop.from_email.clone(),
        }
    }

    /// The delivery a bounce address names: `bounces+<token>@domain` of this instance's
    /// return path (any case), with a valid signature.
    pub fn delivery_of_return_path(&self, address: &str) -> Option<i64> {
        let (local, domain) = self.cfg.bounces.return_path.as_ref()?;
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let (l, d) = address.rsplit_once('@')?;
        let (base, token) = l.split_once('+')?;
        if !base.eq_ignore_ascii_case(local) || !d.eq_ignore_ascii_case(domain) {
            return None;
        }
        self.link_keys.parse_delivery_token(token)
    }

    /// The delivery a receipt callback's token names (SMS gateways' callback URLs carry
    /// [`LinkKeys::delivery_token`](super::LinkKeys::delivery_token)).
    pub fn delivery_of_token(&self, token: &str) -> Option<i64> {
        self.link_keys.parse_delivery_token(token)
    }

    /// Records `fb` once and applies the policy: matched to its delivery (by signed id, else
    /// Message-ID), the delivery's later outcome set, and the consent change made, in one
    /// transaction. A report that matches nothing is kept for review, never counted; the same
    /// report twice changes nothing the second time.
    pub async fn record_feedback(&self, fb: Feedback) -> Result<FeedbackResult, AppError> {
        let now = self.clock.now().as_second();
        let target = self.feedback_target(&fb).await?;
        let action = match &target {
            Some(t) => policy(fb.kind, t.channel, &self.cfg.bounces, now),
            None => ConsentAction::Nothing,
        };
        let recorded = self
            .store
            .record_feedback(&fb, target.as_ref(), action, now)
            .await?;
        let (delivery_id, customer_id) = match &target {
            Some(t) => (Some(t.delivery_id), Some(t.customer_id)),
            None => (None, None),
        };
        match recorded {
            Recorded::Applied { opted_out: true } => tracing::warn!(
                delivery = delivery_id,
                customer = customer_id,
                kind = %fb.kind,
                source = %fb.source,
                "the customer is opted out of {}: {}",
                fb.channel,
                fb.detail
            ),
            Recorded::Unmatched => tracing::warn!(
                kind = %fb.kind,
                source = %fb.source,
                "a report matched no delivery; kept for review (`ritualist bounces`): {}",
                fb.detail
            ),
            _ => {
                tracing::debug!(delivery = delivery_id, kind = %fb.kind, source = %fb.source, ?recorded, "report recorded")
            }
        }
        Ok(FeedbackResult {
            recorded,
            delivery_id,
            customer_id,
        })
    }

    /// The delivery `fb` is about, when it names one that exists on the same channel.
    async fn feedback_target(&self, fb: &Feedback) -> Result<Option<FeedbackTarget>, AppError> {
        let target = match &fb.delivery {
            DeliveryRef::Delivery(id) => self.store.feedback_target(*id).await?,
            DeliveryRef::MessageId(mid) => self.store.feedback_target_by_message_id(mid).await?,
            DeliveryRef::Unknown => None,
        };
        Ok(target.filter(|t| t.channel == fb.channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SoftBouncePolicy;

    #[test]
    fn policy_per_kind_and_channel() {
        let cfg = BouncesConfig {
            return_path: None,
            soft_bounces: SoftBouncePolicy { limit: 3, days: 30 },
            ..Default::default()
        };
        let now = 100 * 86_400;
        assert_eq!(
            policy(FeedbackKind::HardBounce, Channel::Email, &cfg, now),
            ConsentAction::OptOut { source: "bounce" }
        );
        assert_eq!(
            policy(FeedbackKind::SoftBounce, Channel::Email, &cfg, now),
            ConsentAction::OptOutAfter {
                source: "soft_bounces",
                limit: 3,
                since: 70 * 86_400
            }
        );
        assert_eq!(
            policy(FeedbackKind::Complaint, Channel::Email, &cfg, now),
            ConsentAction::OptOut {
                source: "complaint"
            }
        );
        assert_eq!(
            policy(FeedbackKind::DeadNumber, Channel::Sms, &cfg, now),
            ConsentAction::OptOut {
                source: "dead_number"
            }
        );
        for k in [
            FeedbackKind::Delivered,
            FeedbackKind::Undelivered,
            FeedbackKind::Ignored,
        ] {
            for c in Channel::ALL {
                assert_eq!(policy(k, c, &cfg, now), ConsentAction::Nothing, "{k} {c}");
            }
        }
    }
}
