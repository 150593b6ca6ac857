//! Rendering the rows the dispatcher claimed with no stored message: the only place where the
//! outbox meets rituals and templates. A row's message is composed from its ritual, its
//! customer's facts today and the occasion stored with the decision, and kept with the claimed
//! row; the handover's commit stores it (`Store::mark_sending`), so every attempt after one
//! that may have reached the provider sends the same bytes. An attempt that never hands its
//! message over stores nothing, and the next one composes it afresh (issue #26: storing each
//! batch's messages in a write of their own was the biggest of a mass day's ledger writes).
//!
//! Composing is pure and needs nothing of the [`App`] but its [`ComposeKit`], so a big batch
//! is composed a part at a time on the blocking threads while the part before it is sent
//! (`dispatch.rs`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::dispatch::DispatchReport;
use super::message::{ComposeError, ComposeRequest, Composed, compose_with};
use super::tokens::{LinkKeys, LinkMode};
use super::{App, AppError, Definitions};
use crate::channel::DkimSigner;
use crate::config::Config;
use crate::domain::{Channel, DomainError, Email, Phone};
use crate::plan::{CustomerFacts, Occasion};
use crate::store::ClaimedDelivery;

/// How a message that could not be composed is logged (its reason always goes on the row).
#[derive(Debug, Clone, Copy)]
enum Logged {
    /// With the reason.
    Text,
    /// Without it (it may quote the address).
    Hidden,
    /// Already logged where it happened (a caught panic).
    Already,
}

/// Why a row's message could not be composed, and how that is logged.
type Uncomposed = (String, Logged);

/// What composing a claimed row's message needs of the app, shared with the threads that
/// compose: the configuration, the keys and the DKIM signer, fixed for the process's life.
pub(super) struct ComposeKit {
    cfg: Config,
    key: Vec<u8>,
    dkim: Option<Arc<DkimSigner>>,
    link_keys: LinkKeys,
}

impl ComposeKit {
    pub(super) fn new(
        cfg: &Config,
        key: &[u8],
        dkim: Option<Arc<DkimSigner>>,
        link_keys: &LinkKeys,
    ) -> ComposeKit {
        ComposeKit {
            cfg: cfg.clone(),
            key: key.to_vec(),
            dkim,
            link_keys: link_keys.clone(),
        }
    }
}

/// A part of a batch once composed: its rows with their messages, in order, and the rows
/// whose message could not be composed, with why.
pub(super) struct ComposedPart {
    ready: Vec<ClaimedDelivery>,
    failed: Vec<(ClaimedDelivery, Uncomposed)>,
}

impl ComposedPart {
    /// This part followed by `next`, the rows of the batch after it.
    pub(super) fn then(mut self, next: ComposedPart) -> ComposedPart {
        self.ready.extend(next.ready);
        self.failed.extend(next.failed);
        self
    }
}

/// `part` with a message composed for each of its rows without a stored one; a row whose
/// message cannot be composed comes back apart, with why. Pure and synchronous: the
/// dispatcher runs it on the blocking threads, a big part in two halves at once
/// (`dispatch.rs`).
pub(super) fn compose_part(
    kit: &ComposeKit,
    defs: &Definitions,
    facts: &HashMap<i64, CustomerFacts>,
    part: Vec<ClaimedDelivery>,
    now: Timestamp,
) -> ComposedPart {
    let todo: Vec<usize> = (0..part.len())
        .filter(|&i| part[i].payload.is_none())
        .collect();
    let composed: Vec<Result<Composed, Uncomposed>> = todo
        .iter()
        .map(|&i| kit.compose(&part[i], facts, defs, now))
        .collect();
    let mut messages: Vec<Option<Result<Composed, Uncomposed>>> =
        (0..part.len()).map(|_| None).collect();
    for (i, m) in todo.into_iter().zip(composed) {
        messages[i] = Some(m);
    }
    let mut out = ComposedPart {
        ready: Vec::with_capacity(part.len()),
        failed: Vec::new(),
    };
    for (mut row, m) in part.into_iter().zip(messages) {
        match m {
            // Stored already: sent as it is.
            None => out.ready.push(row),
            Some(Ok(m)) => {
                row.message_id = m.message_id;
                row.subject = m.subject;
                row.payload = Some(m.payload);
                row.stored = false;
                out.ready.push(row);
            }
            Some(Err(e)) => out.failed.push((row, e)),
        }
    }
    out
}

impl ComposeKit {
    /// The message of one claimed row, written to the address decided at planning time.
    fn compose(
        &self,
        row: &ClaimedDelivery,
        facts: &HashMap<i64, CustomerFacts>,
        defs: &Definitions,
        now: Timestamp,
    ) -> Result<Composed, Uncomposed> {
        let c = facts
            .get(&row.customer_id)
            .ok_or(("the customer no longer exists".to_string(), Logged::Text))?;
        let ritual = defs
            .rituals
            .iter()
            .find(|r| r.name == row.ritual)
            .ok_or_else(|| {
                (
                    format!("ritual `{}` no longer exists", row.ritual),
                    Logged::Text,
                )
            })?;
        let occasion: Occasion = row
            .occasion
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .ok_or(("the occasion is missing".to_string(), Logged::Text))?;
        let channel = row.channel;
        let c = with_queued_address(c, row, channel)?;
        compose_with(&ComposeRequest {
            cfg: &self.cfg,
            templates: &defs.templates,
            key: &self.key,
            ritual,
            customer: &c,
            occasion: &occasion,
            occurrence: &row.occurrence,
            channel,
            now: now.as_second(),
            prefix: None,
            dkim: self.dkim.as_deref(),
            links: LinkMode::Live,
            delivery_token: Some(&self.link_keys.delivery_token(row.id)),
        })
        .map_err(|e| {
            // A build error's text may quote the address: the ledger keeps it, the log does
            // not; a panic was logged by `compose_with` as a bug.
            let logged = match e {
                ComposeError::Render(_) => Logged::Text,
                ComposeError::Build(_) => Logged::Hidden,
                ComposeError::Panicked(_) => Logged::Already,
            };
            (e.to_string(), logged)
        })
    }
}

impl App {
    /// The facts of the customers of the rows claimed without a stored message, read at once
    /// for the whole batch.
    pub(super) async fn facts_for(
        &self,
        batch: &[ClaimedDelivery],
    ) -> Result<HashMap<i64, CustomerFacts>, AppError> {
        let ids: Vec<i64> = batch
            .iter()
            .filter(|r| r.payload.is_none())
            .map(|r| r.customer_id)
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self.store.customers_by_ids(&ids).await?;
        let mut builder = self.facts_builder();
        Ok(rows
            .iter()
            .map(|r| (r.id, builder.facts(r, Vec::new())))
            .collect())
    }

    /// The rows of a composed part ready to send. A row whose message could not be composed
    /// (its ritual was removed, a template fails for this customer, the email cannot carry its
    /// address or name, or composing it panicked: [`compose_with`] catches that) is `failed`
    /// with the reason, alone: the rest of the batch goes on.
    pub(super) async fn settle_composed(
        &self,
        part: ComposedPart,
        now: Timestamp,
        report: &mut DispatchReport,
    ) -> Result<Vec<ClaimedDelivery>, AppError> {
        for (row, (e, logged)) in &part.failed {
            self.fail_uncomposed(row, e, *logged, now, report).await?;
        }
        Ok(part.ready)
    }

    /// A row whose message could not be composed: `failed` with the reason `e`.
    async fn fail_uncomposed(
        &self,
        row: &ClaimedDelivery,
        e: &str,
        logged: Logged,
        now: Timestamp,
        report: &mut DispatchReport,
    ) -> Result<(), AppError> {
        match logged {
            Logged::Text => {
                tracing::error!(delivery = row.id, customer = row.customer_id, ritual = %row.ritual, "cannot compose the message: {e}")
            }
            Logged::Hidden => {
                tracing::error!(delivery = row.id, customer = row.customer_id, ritual = %row.ritual, "the message cannot be built (the reason is on the row: `ritualist outbox`)")
            }
            Logged::Already => {}
        }
        report.failed += 1;
        if !self
            .store
            .mark_failed(row.id, &row.lease_token, e, now.as_second())
            .await?
        {
            report.lease_lost += 1;
        }
        Ok(())
    }
}

/// The customer's facts with the address decided at planning time, the one written to. One
/// queued by an older version may be refused by today's rules: say so (the reason quotes the
/// address, so it stays on the row and out of the log).
fn with_queued_address<'c>(
    c: &'c CustomerFacts,
    row: &ClaimedDelivery,
    channel: Channel,
) -> Result<Cow<'c, CustomerFacts>, Uncomposed> {
    // Mostly the address is still the customer's: nothing to change, nothing to copy.
    let current = match channel {
        Channel::Email => c.email.as_ref().map(Email::as_str),
        Channel::Sms => c.phone.as_ref().map(Phone::as_str),
    };
    if current == Some(row.recipient.as_str()) {
        return Ok(Cow::Borrowed(c));
    }
    let refused = |e: DomainError| {
        (
            format!(
                "the queued {channel} address is not accepted any more ({e}); correct the customer's contact, then `ritualist outbox retry`"
            ),
            Logged::Hidden,
        )
    };
    let mut c = c.clone();
    match channel {
        Channel::Email => c.email = Some(Email::parse(&row.recipient).map_err(refused)?),
        Channel::Sms => c.phone = Some(Phone::parse(&row.recipient, None).map_err(refused)?),
    }
    Ok(Cow::Owned(c))
}
