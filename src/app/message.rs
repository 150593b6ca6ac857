//! From a decision to the exact bytes that will be sent: the template context, the
//! deterministic Message-ID, the unsubscribe link and the rendered email or SMS.
//!
//! Composing one message is a boundary: whatever goes wrong in it (a template that fails for
//! this customer, an address or header the email cannot carry, even a panic in a library) is
//! that message's [`ComposeError`], never the caller's crash.

use std::collections::BTreeSet;

use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::tokens::{LinkKeys, LinkMode, SurveyToken, UnsubscribeToken};
use crate::channel::{DkimSigner, EmailParts, build_email};
use crate::config::Config;
use crate::domain::{Channel, Email, OccurrenceKey, Phone, YearlyDate};
use crate::plan::{CustomerFacts, HolidayRef, Occasion, OrderFact};
use crate::render::{RenderError, Templates, flatten_paths};
use crate::ritual::Ritual;

fn hmac_hex(key: &[u8], data: &str, chars: usize) -> String {
    let mut h = super::tokens::hmac_sha256_hex(key, data);
    h.truncate(chars);
    h
}

/// The domain part of an SMS's Message-ID (an SMS has no sender domain; the id only names the
/// message in the ledger and the outbox).
const SMS_MESSAGE_ID_DOMAIN: &str = "sms";

/// `<time><hmac>@<sender domain>`, 32 hex digits: the moment `now` the message is composed
/// (8 digits of Unix seconds, what its Date header says), then 24 of an HMAC of the occurrence
/// and channel. Unguessable, and free of personal data (Message-IDs are visible to every
/// server). It is stored with the message, so every retry carries the same id.
///
/// Time first, the ids of one batch sit side by side in the ledger's Message-ID index, so
/// storing a batch touches a few of the index's pages instead of one page per message, however
/// big the ledger (issue #26: a mass day at a million customers took 23 % less time than with
/// random ids, 10 % less at 100,000; docs/performance.md).
pub fn message_id(
    key: &[u8],
    occ: &OccurrenceKey,
    channel: Channel,
    domain: &str,
    now: i64,
) -> String {
    let h = hmac_hex(key, &format!("msgid/v1/{occ}/{channel}"), 24);
    let secs = now.clamp(0, u32::MAX as i64) as u32;
    format!("{secs:08x}{h}@{domain}")
}

/// The unsubscribe link for a customer, channel and ritual category. With an `http:` section
/// it is `<public_url>/u/<token>` (the daemon's own page, which also takes RFC 8058 one-click
/// POSTs); otherwise an http(s) `links.unsubscribe` base gets `?t=<token>` and a `mailto:` base
/// is used as it is.
pub fn unsubscribe_link(
    cfg: &Config,
    key: &[u8],
    customer_id: i64,
    channel: Channel,
    category: &str,
) -> String {
    unsubscribe_link_as(cfg, key, LinkMode::Live, "", customer_id, channel, category)
}

/// [`unsubscribe_link`] with a live or a test token (`locale`: the test page's language).
pub fn unsubscribe_link_as(
    cfg: &Config,
    key: &[u8],
    mode: LinkMode,
    locale: &str,
    customer_id: i64,
    channel: Channel,
    category: &str,
) -> String {
    let token = || {
        LinkKeys::new(key, None).unsubscribe_token_as(
            mode,
            locale,
            &UnsubscribeToken {
                customer_id,
                channel,
                category: category.to_string(),
            },
        )
    };
    if let Some(http) = &cfg.http {
        return format!("{}/u/{}", http.public_url, token());
    }
    let base = &cfg.links.unsubscribe;
    if base.starts_with("http://") || base.starts_with("https://") {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}t={}", token())
    } else {
        base.clone()
    }
}

/// The customer's preference page: `<public_url>/p/<token>` with an `http:` section, else
/// `links.preferences` as configured (if any).
pub fn preferences_link(cfg: &Config, key: &[u8], customer_id: i64) -> Option<String> {
    preferences_link_as(cfg, key, LinkMode::Live, "", customer_id)
}

/// [`preferences_link`] with a live or a test token (`locale`: the test page's language).
pub fn preferences_link_as(
    cfg: &Config,
    key: &[u8],
    mode: LinkMode,
    locale: &str,
    customer_id: i64,
) -> Option<String> {
    match &cfg.http {
        Some(http) => Some(format!(
            "{}/p/{}",
            http.public_url,
            LinkKeys::new(key, None).preferences_token_as(mode, locale, customer_id)
        )),
        None => cfg.links.preferences.clone(),
    }
}

/// The score links of a survey: `<public_url>/s/<token>/<score>` for 0–10, one token per
/// survey (ritual, customer, occurrence). `None` without an `http:` section (no page to land
/// on; `Definitions::load` refuses survey rituals then).
pub fn survey_links(
    cfg: &Config,
    key: &[u8],
    ritual: &str,
    customer_id: i64,
    occurrence: &str,
) -> Option<Vec<(u8, String)>> {
    survey_links_as(
        cfg,
        key,
        LinkMode::Live,
        "",
        ritual,
        customer_id,
        occurrence,
    )
}

/// [`survey_links`] with a live or a test token (`locale`: the test page's language).
pub fn survey_links_as(
    cfg: &Config,
    key: &[u8],
    mode: LinkMode,
    locale: &str,
    ritual: &str,
    customer_id: i64,
    occurrence: &str,
) -> Option<Vec<(u8, String)>> {
    let http = cfg.http.as_ref()?;
    let token = LinkKeys::new(key, None).survey_token_as(
        mode,
        locale,
        &SurveyToken {
            customer_id,
            ritual: ritual.to_string(),
            occurrence: occurrence.to_string(),
        },
    );
    Some(
        (0..=10)
            .map(|score| (score, format!("{}/s/{token}/{score}", http.public_url)))
            .collect(),
    )
}

/// The `survey` template variable: `{links: [{score, url}, …], scale: "nps"}`; every variable
/// path of it is in the lint vocabulary.
fn survey_value(links: &[(u8, String)]) -> Value {
    json!({
        "kind": "nps",
        "links": links
            .iter()
            .map(|(score, url)| json!({
                "score": score,
                "url": url,
                // NPS bands, for colouring the buttons: 0–6, 7–8, 9–10.
                "band": match score { 0..=6 => "detractor", 7..=8 => "passive", _ => "promoter" },
            }))
            .collect::<Vec<_>>(),
    })
}

/// The variables every template sees.
pub fn message_context(
    cfg: &Config,
    ritual: &str,
    c: &CustomerFacts,
    occasion: &Occasion,
    unsubscribe: &str,
    preferences: Option<&str>,
) -> Value {
    let full_name = match (&c.first_name, &c.last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f.clone()),
        (None, Some(l)) => Some(l.clone()),
        (None, None) => None,
    };
    json!({
        "customer": {
            "external_id": c.external_id,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "full_name": full_name,
            "email": c.email.as_ref().map(|e| e.to_string()),
            "phone": c.phone.as_ref().map(|p| p.to_string()),
            "locale": c.locale.to_string(),
            "attributes": c.attributes,
            "orders": c.order_count,
            "total_spent_minor": c.total_spent_minor,
        },
        "occasion": {
            "ritual": ritual,
            "date": occasion.date.to_string(),
            "day": occasion.date.day(),
            "month": occasion.date.month(),
            "year": occasion.year,
            "age": occasion.years,
            "years": occasion.years,
            "holiday": occasion.holiday.as_ref().map(|h| h.name.clone()),
            "holiday_id": occasion.holiday.as_ref().map(|h| h.id.clone()),
            "inactive_days": occasion.inactive_days,
            "step": occasion.step,
            "order": occasion.order.as_ref().map(|o| json!({
                "id": o.external_id,
                "number": o.number,
                "amount_minor": o.amount_minor,
                "currency": o.currency,
                "date": c.zone.to_datetime(o.at).date().to_string(),
            })),
        },
        "shop": {
            "name": cfg.shop.name,
            "url": cfg.shop.url,
            "email": cfg.shop.from_email,
        },
        "links": {
            "unsubscribe": unsubscribe,
            "preferences": preferences,
        },
    })
}

/// Two sample customers for `check` and the lint vocabulary: one with every field, one with
/// every optional field missing.
pub fn sample_customers(cfg: &Config) -> Vec<CustomerFacts> {
    let zone = TimeZone::get(&cfg.defaults.time_zone).unwrap_or(TimeZone::UTC);
    let mut full = CustomerFacts::bare(1, "sample-full", cfg.defaults.locale.clone(), zone.clone());
    full.first_name = Some("Ana".into());
    full.last_name = Some("Popescu".into());
    full.email = Email::parse("ana@example.com").ok();
    full.phone = Phone::parse("+40721234567", None).ok();
    full.birthday = YearlyDate::parse("1990-03-01").ok();
    full.signup = YearlyDate::parse("2020-03-01").ok();
    full.order_count = 5;
    full.total_spent_minor = 125_000;
    full.attributes = [("tier".to_string(), "gold".to_string())]
        .into_iter()
        .collect();
    full.calendar = cfg.engine.default_calendar.clone();
    let mut minimal = CustomerFacts::bare(2, "sample-minimal", cfg.defaults.locale.clone(), zone);
    minimal.email = Email::parse("someone@example.com").ok();
    minimal.phone = Phone::parse("+40721234568", None).ok();
    minimal.birthday = YearlyDate::parse("--03-01").ok();
    minimal.calendar = cfg.engine.default_calendar.clone();
    vec![full, minimal]
}

/// An occasion for sample renders of `ritual` (`check`): what its trigger kind provides, with
/// the optional parts (age, …) only for the `full` sample.
pub fn sample_occasion(ritual: Option<&Ritual>, full: bool) -> Occasion {
    use crate::ritual::Trigger;
    let date = jiff::civil::date(2027, 3, 1);
    let mut o = Occasion::on(date);
    let kind = ritual.map(|r| &r.trigger);
    let all = kind.is_none();
    if all || matches!(kind, Some(Trigger::Yearly { .. })) {
        // With milestones the year is always known (only known years can be milestones).
        let milestone = matches!(
            kind,
            Some(Trigger::Yearly {
                milestones: Some(_),
                ..
            })
        );
        o.years = (full || milestone).then_some(5);
    }
    if all || matches!(kind, Some(Trigger::Holiday { .. })) {
        let id = match kind {
            Some(Trigger::Holiday { ids, .. }) => ids[0].clone(),
            _ => "womens_day".into(),
        };
        o.holiday = Some(HolidayRef {
            name: id.replace('_', " "),
            id,
        });
    }
    if all || matches!(kind, Some(Trigger::Inactivity { .. })) {
        o.inactive_days = Some(45);
        o.step = Some(1);
    }
    if all || matches!(kind, Some(Trigger::Order { .. })) {
        o.order = Some(OrderFact {
            external_id: "A-1001".into(),
            at: jiff::Timestamp::from_second(1_803_000_000).expect("a valid instant"),
            number: 5,
            amount_minor: 24_950,
            currency: "RON".into(),
        });
    }
    o
}

/// Every variable path templates may use (from a sample context).
pub fn vocabulary(cfg: &Config) -> BTreeSet<String> {
    let c = &sample_customers(cfg)[0];
    let occasion = sample_occasion(None, true);
    // `links.preferences` only when the config can fill it (else `check` reports its use).
    let preferences = preferences_link(cfg, b"vocabulary", c.id);
    let mut v = flatten_paths(&message_context(
        cfg,
        "sample",
        c,
        &occasion,
        "https://x",
        preferences.as_deref(),
    ));
    if preferences.is_none() {
        v.remove("links.preferences");
    }
    // Set by the renderer: the language of the templates rendered (`<html lang="{{lang}}">`).
    v.insert("lang".to_string());
    // Free attributes are open-ended: allow any `customer.attributes.*` by listing the parent.
    v.retain(|p| !p.starts_with("customer.attributes."));
    // Survey rituals also see `survey` (rendering tells the others apart: for them it is
    // null, so `check` reports a template that uses survey links in an ordinary ritual).
    v.extend(flatten_paths(&json!({
        "survey": survey_value(&[(0, "https://x".to_string())])
    })));
    v
}

/// Why one message could not be composed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A template failed for this customer (or is missing for the locale).
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The rendered parts cannot make an email (an address or a header the wire cannot carry).
    #[error("the email cannot be built: {0}")]
    Build(String),
    /// Composing panicked: a bug of ritualist (or of a library), caught at this message.
    #[error(
        "ritualist hit a bug composing this message (panic: {0}); it was not sent; please report it"
    )]
    Panicked(String),
}

/// The text of a caught panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}

/// A message ready for the ledger.
#[derive(Debug, Clone)]
pub struct Composed {
    pub subject: Option<String>,
    pub payload: String,
    pub message_id: Option<String>,
    pub locale: String,
    /// For SMS: encoding and segment count.
    pub sms: Option<crate::render::SmsLength>,
    /// For email: the rendered parts (preview shows them decoded).
    pub html: Option<String>,
    pub text: Option<String>,
}

/// Everything one message is composed from: the decision (ritual, customer, occasion,
/// occurrence, channel), the moment (the email's Date) and how it is dressed.
#[derive(Clone, Copy)]
pub struct ComposeRequest<'a> {
    pub cfg: &'a Config,
    pub templates: &'a Templates,
    /// The links' and Message-ID's HMAC key.
    pub key: &'a [u8],
    pub ritual: &'a Ritual,
    pub customer: &'a CustomerFacts,
    pub occasion: &'a Occasion,
    pub occurrence: &'a str,
    pub channel: Channel,
    /// Unix seconds.
    pub now: i64,
    /// Put before the email subject or the SMS text (test sends are marked `[TEST] `).
    pub prefix: Option<&'a str>,
    /// Signs emails that will be sent.
    pub dkim: Option<&'a DkimSigner>,
    pub links: LinkMode,
    /// The delivery's signed token (`LinkKeys::delivery_token`), for the email services whose
    /// webhooks name a message by metadata the message carries; `None` for previews and test
    /// sends.
    pub delivery_token: Option<&'a str>,
}

/// Renders and assembles the message for one decision, unsigned, with live links (samples,
/// snapshots). `now` becomes the email's Date.
#[allow(clippy::too_many_arguments)]
pub fn compose(
    cfg: &Config,
    templates: &Templates,
    key: &[u8],
    ritual: &Ritual,
    c: &CustomerFacts,
    occasion: &Occasion,
    occurrence: &str,
    channel: Channel,
    now: i64,
) -> Result<Composed, ComposeError> {
    compose_with(&ComposeRequest {
        cfg,
        templates,
        key,
        ritual,
        customer: c,
        occasion,
        occurrence,
        channel,
        now,
        prefix: None,
        dkim: None,
        links: LinkMode::Live,
        delivery_token: None,
    })
}

/// [`compose`], with a prefix for the email subject or the SMS text (test sends are marked
/// `[TEST] `), the DKIM signer for emails that will be sent, and which links the message
/// carries: [`LinkMode::Live`] for the daemon's sends, [`LinkMode::Test`] for previews and
/// test sends (their unsubscribe, preference and survey links open the pages and record
/// nothing; see `tokens`).
///
/// A panic while rendering or building this one message is caught here and becomes
/// [`ComposeError::Panicked`], logged at ERROR as a bug with the customer id and the ritual
/// (never the address or the text): one customer's data never stops the daemon, the HTTP
/// server, a batch or a preview.
pub fn compose_with(req: &ComposeRequest<'_>) -> Result<Composed, ComposeError> {
    // Everything the closure touches is read-only or built inside it: after a panic nothing
    // half-changed is left behind for the caller to see.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compose_unguarded(req)));
    caught.unwrap_or_else(|payload| {
        let what = panic_text(payload.as_ref());
        tracing::error!(
            customer = req.customer.id,
            ritual = %req.ritual.name,
            channel = %req.channel,
            "BUG: composing a message panicked; that message fails alone, everything else goes on; please report it"
        );
        Err(ComposeError::Panicked(what))
    })
}

fn compose_unguarded(req: &ComposeRequest<'_>) -> Result<Composed, ComposeError> {
    crate::failpoint::panic_point("compose");
    let ComposeRequest {
        cfg,
        key,
        ritual,
        customer: c,
        occasion,
        occurrence,
        channel,
        links,
        ..
    } = *req;
    let category = ritual.category_for(occasion.holiday.as_ref().map(|h| h.id.as_str()));
    let lang = c.locale.as_str();
    let unsubscribe = unsubscribe_link_as(cfg, key, links, lang, c.id, channel, &category);
    let preferences = preferences_link_as(cfg, key, links, lang, c.id);
    let mut ctx = message_context(
        cfg,
        &ritual.name,
        c,
        occasion,
        &unsubscribe,
        preferences.as_deref(),
    );
    ctx["survey"] = match ritual.survey {
        Some(_) => survey_links_as(cfg, key, links, lang, &ritual.name, c.id, occurrence)
            .map_or(Value::Null, |links| survey_value(&links)),
        None => Value::Null,
    };
    let occ = OccurrenceKey {
        ritual: ritual.name.clone(),
        customer_id: c.id,
        occurrence: occurrence.to_string(),
    };
    match channel {
        Channel::Email => compose_email(req, ctx, &occ, &unsubscribe),
        Channel::Sms => compose_sms(req, &ctx, &occ),
    }
}

/// The email of [`compose_unguarded`]: rendered from `ctx`, built and (maybe) signed.
fn compose_email(
    req: &ComposeRequest<'_>,
    ctx: Value,
    occ: &OccurrenceKey,
    unsubscribe: &str,
) -> Result<Composed, ComposeError> {
    let (cfg, c) = (req.cfg, req.customer);
    let to_name = ctx["customer"]["full_name"].as_str().map(String::from);
    let mut r = req
        .templates
        .render_email_owned(&req.ritual.template, &c.locale, ctx)?;
    if let Some(prefix) = req.prefix {
        r.subject = format!("{prefix}{}", r.subject);
    }
    let from_domain = cfg
        .shop
        .from_email
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("localhost");
    let mid = message_id(req.key, occ, req.channel, from_domain, req.now);
    let to = c.email.as_ref().map(|e| e.to_string()).unwrap_or_default();
    // A name from before the import refused control characters (or written around it)
    // cannot go into a header: this message fails with the reason, nobody else's.
    if to_name
        .as_deref()
        .is_some_and(|n| n.chars().any(char::is_control))
    {
        return Err(ComposeError::Build(
            "the customer's name contains a line break or another control character, which an email header cannot carry; correct the name (re-import the customer), then `ritualist outbox retry`".into(),
        ));
    }
    let payload = build_email(&EmailParts {
        from_email: &cfg.shop.from_email,
        from_name: Some(cfg.shop.from_name.as_deref().unwrap_or(&cfg.shop.name)),
        to_email: &to,
        to_name: to_name.as_deref(),
        subject: &r.subject,
        html: &r.html,
        text: &r.text,
        message_id: &mid,
        date: req.now,
        list_unsubscribe: Some(unsubscribe),
        dkim: req.dkim,
        extra_headers: &relay_headers(cfg, req.delivery_token),
    })
    .map_err(|e| ComposeError::Build(e.to_string()))?;
    Ok(Composed {
        subject: Some(r.subject),
        payload,
        message_id: Some(mid),
        locale: r.locale,
        sms: None,
        html: Some(r.html),
        text: Some(r.text),
    })
}

/// The headers that let an email service's webhook name the delivery (its metadata, which
/// the service strips before the message goes on): Postmark's `X-PM-Metadata-*`, SendGrid's
/// `X-SMTPAPI` unique args and Mailgun's `X-Mailgun-Variables`, each only when that service's
/// webhook is configured (`bounces.webhooks`), under the key `ritualist_delivery`.
fn relay_headers(cfg: &Config, token: Option<&str>) -> Vec<(&'static str, String)> {
    let Some(token) = token else {
        return Vec::new();
    };
    let hooks = &cfg.bounces.webhooks;
    let key = crate::feedback_hooks::TOKEN_KEY;
    let args = serde_json::json!({ key: token });
    let mut headers = Vec::new();
    if hooks.postmark.is_some() {
        headers.push(("X-PM-Metadata-ritualist_delivery", token.to_string()));
    }
    if hooks.sendgrid.is_some() {
        headers.push((
            "X-SMTPAPI",
            serde_json::json!({ "unique_args": args }).to_string(),
        ));
    }
    if hooks.mailgun.is_some() {
        headers.push(("X-Mailgun-Variables", args.to_string()));
    }
    headers
}

/// The SMS of [`compose_unguarded`]: its text rendered from `ctx`.
fn compose_sms(
    req: &ComposeRequest<'_>,
    ctx: &Value,
    occ: &OccurrenceKey,
) -> Result<Composed, ComposeError> {
    let mut r = req
        .templates
        .render_sms(&req.ritual.template, &req.customer.locale, ctx)?;
    if let Some(prefix) = req.prefix {
        r.text = format!("{prefix}{}", r.text);
        r.length = crate::render::sms_length(&r.text);
    }
    let mid = message_id(req.key, occ, req.channel, SMS_MESSAGE_ID_DOMAIN, req.now);
    Ok(Composed {
        subject: None,
        payload: r.text,
        message_id: Some(mid),
        locale: r.locale,
        sms: Some(r.length),
        html: None,
        text: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue #23): a name with a line break (stored before the import refused
    /// it) panicked inside lettre while the email was built; an address the wire cannot
    /// carry failed as a misleading "render: …". Both are `Build` errors of that message now.
    #[test]
    fn a_message_that_cannot_be_built_is_an_error_not_a_panic() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ritualist.yaml");
        let cfg = Config::load(&path).unwrap_or_else(|d| panic!("{d}"));
        let defs = crate::app::Definitions::load(&cfg).unwrap_or_else(|d| panic!("{d}"));
        let ritual = defs.rituals.iter().find(|r| r.name == "birthday").unwrap();
        let occasion = sample_occasion(Some(ritual), true);
        let compose_for = |c: &CustomerFacts| {
            compose(
                &cfg,
                &defs.templates,
                b"k",
                ritual,
                c,
                &occasion,
                "2027",
                Channel::Email,
                1_800_000_000,
            )
        };
        let good = sample_customers(&cfg).remove(0);
        assert!(compose_for(&good).is_ok());
        for name in [
            "Ana\nMaria",
            "Ana\r\nBcc: x@evil.example",
            "Ana\u{0}",
            "Ana\u{85}",
        ] {
            let mut c = good.clone();
            c.first_name = Some(name.into());
            match compose_for(&c) {
                Err(ComposeError::Build(why)) => {
                    assert!(why.contains("control character"), "{name:?}: {why}")
                }
                other => panic!("{name:?}: {other:?}"),
            }
        }
        // An address the email builder refuses (here: none at all).
        let mut c = good.clone();
        c.email = None;
        match compose_for(&c) {
            Err(e @ ComposeError::Build(_)) => {
                assert!(
                    e.to_string().starts_with("the email cannot be built: "),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn message_ids_are_stable_distinct_and_opaque() {
        const NOW: i64 = 1_798_750_800; // 2027-01-01T09:00:00Z
        let occ = OccurrenceKey::yearly("birthday", 42, 2027);
        let a = message_id(b"k", &occ, Channel::Email, "shop.example", NOW);
        assert_eq!(
            a,
            message_id(b"k", &occ, Channel::Email, "shop.example", NOW)
        );
        assert_ne!(a, message_id(b"k", &occ, Channel::Sms, "shop.example", NOW));
        assert_ne!(
            a,
            message_id(
                b"k",
                &OccurrenceKey::yearly("birthday", 42, 2028),
                Channel::Email,
                "shop.example",
                NOW
            )
        );
        assert_ne!(
            a,
            message_id(b"other", &occ, Channel::Email, "shop.example", NOW)
        );
        assert!(a.ends_with("@shop.example"), "{a}");
        assert_eq!(a.len(), 32 + 1 + "shop.example".len());
        assert!(a[..32].bytes().all(|b| b.is_ascii_hexdigit()), "{a}");
        assert!(crate::feedback_hooks::looks_like_ours(&a), "{a}");
    }

    /// Ids composed later sort after earlier ones (the index is appended to), and the part
    /// after the time is the same for one occurrence at any moment.
    #[test]
    fn message_ids_begin_with_the_moment_they_are_composed() {
        let occ = OccurrenceKey::yearly("birthday", 42, 2027);
        let id = |now| message_id(b"k", &occ, Channel::Email, "shop.example", now);
        let (early, late) = (id(1_798_750_800), id(1_798_750_801));
        assert_eq!(&early[..8], "6b36c250");
        assert!(early < late, "{early} {late}");
        assert_eq!(early[8..], late[8..]);
        let other = message_id(
            b"k",
            &OccurrenceKey::yearly("birthday", 43, 2027),
            Channel::Email,
            "shop.example",
            1_798_750_800,
        );
        assert!(other < late, "{other} {late}");
        // Before 1970 or after 2106 the time part saturates instead of growing a digit.
        assert_eq!(&id(-5)[..8], "00000000");
        assert_eq!(&id(i64::MAX)[..8], "ffffffff");
    }
}
