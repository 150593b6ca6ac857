//! Rendering the rows the dispatcher claimed for their first attempt: the only place where
//! the outbox meets rituals and templates. A row's message is composed from its ritual, its
//! customer's facts today and the occasion stored with the decision, then stored with the row
//! (one transaction per batch) so that every retry sends the same bytes.

use std::collections::HashMap;

use jiff::Timestamp;

use super::dispatch::DispatchReport;
use super::message::{ComposeError, ComposeRequest, Composed, compose_with};
use super::tokens::LinkMode;
use super::{App, AppError, Definitions};
use crate::domain::{Channel, DomainError, Email, Phone};
use crate::plan::{CustomerFacts, Occasion};
use crate::store::{ClaimedDelivery, RenderedMessage};

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

/// Batches with at least this many messages to compose are composed on two threads.
const PARALLEL_FROM: usize = 64;

/// Why a row's message could not be composed, and how that is logged.
type Uncomposed = (String, Logged);

impl App {
    /// Renders the rows claimed for their first attempt (those without a payload). A row
    /// whose message cannot be composed (its ritual was removed, a template fails for this
    /// customer, the email cannot carry its address or name, or composing it panicked:
    /// [`compose_with`] catches that) is `failed` with the reason, alone: the rest of the
    /// batch goes on.
    pub(super) async fn render_claimed(
        &self,
        batch: &mut [ClaimedDelivery],
        now: Timestamp,
        report: &mut DispatchReport,
    ) -> Result<(), AppError> {
        let ids: Vec<i64> = batch
            .iter()
            .filter(|r| r.payload.is_none())
            .map(|r| r.customer_id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let rows = self.store.customers_by_ids(&ids).await?;
        let mut builder = self.facts_builder();
        let facts: HashMap<i64, CustomerFacts> = rows
            .iter()
            .map(|r| (r.id, builder.facts(r, Vec::new())))
            .collect();
        let defs = self.defs();
        let todo: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].payload.is_none())
            .collect();
        let composed = self.compose_all(batch, &todo, &facts, &defs, now);
        let mut rendered = Vec::with_capacity(composed.len());
        for (i, m) in todo.into_iter().zip(composed) {
            match m {
                Ok(m) => rendered.push((i, m)),
                Err((e, logged)) => {
                    self.fail_uncomposed(&batch[i], &e, logged, now, report)
                        .await?
                }
            }
        }
        self.store_rendered(batch, rendered, report).await
    }

    /// The messages of the rows `todo` (indexes into `batch`), in that order. Composing is
    /// the drain's biggest cost on a mass day (templates, MIME, DKIM), and pure: a batch big
    /// enough has its second half composed on a thread of its own beside the first, so both
    /// cores work (issue #26).
    fn compose_all(
        &self,
        batch: &[ClaimedDelivery],
        todo: &[usize],
        facts: &HashMap<i64, CustomerFacts>,
        defs: &Definitions,
        now: Timestamp,
    ) -> Vec<Result<Composed, Uncomposed>> {
        let compose = |part: &[usize]| -> Vec<Result<Composed, Uncomposed>> {
            part.iter()
                .map(|&i| self.compose_claimed(&batch[i], facts, defs, now))
                .collect()
        };
        if todo.len() < PARALLEL_FROM {
            return compose(todo);
        }
        let (first, second) = todo.split_at(todo.len() / 2);
        std::thread::scope(|s| {
            let beside = std::thread::Builder::new()
                .name("ritualist-compose".into())
                .spawn_scoped(s, || compose(second));
            let mut out = compose(first);
            match beside {
                Ok(h) => match h.join() {
                    Ok(rest) => out.extend(rest),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                // No thread to be had (a process limit): compose it here.
                Err(_) => out.extend(compose(second)),
            }
            out
        })
    }

    /// The message of one claimed row, written to the address decided at planning time.
    fn compose_claimed(
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
            dkim: self.dkim.as_ref(),
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

    /// Every rendered message of the batch stored in one transaction, and kept on its row
    /// for the send.
    async fn store_rendered(
        &self,
        batch: &mut [ClaimedDelivery],
        rendered: Vec<(usize, Composed)>,
        report: &mut DispatchReport,
    ) -> Result<(), AppError> {
        let stored = self
            .store
            .set_messages(
                &rendered
                    .iter()
                    .map(|(i, m)| RenderedMessage {
                        id: batch[*i].id,
                        token: &batch[*i].lease_token,
                        subject: m.subject.as_deref(),
                        payload: &m.payload,
                        message_id: m.message_id.as_deref(),
                    })
                    .collect::<Vec<_>>(),
            )
            .await?;
        for ((i, m), ok) in rendered.into_iter().zip(stored) {
            if ok {
                let row = &mut batch[i];
                row.message_id = m.message_id;
                row.subject = m.subject;
                row.payload = Some(m.payload);
            } else {
                report.lease_lost += 1;
            }
        }
        Ok(())
    }
}

/// The customer's facts with the address decided at planning time, the one written to. One
/// queued by an older version may be refused by today's rules: say so (the reason quotes the
/// address, so it stays on the row and out of the log).
fn with_queued_address(
    c: &CustomerFacts,
    row: &ClaimedDelivery,
    channel: Channel,
) -> Result<CustomerFacts, Uncomposed> {
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
    Ok(c)
}
