//! Email providers' webhooks (docs/integrator.md#provider-webhooks): `POST /webhooks/ses`
//! (Amazon SES through SNS), `/webhooks/postmark`, `/webhooks/sendgrid`, `/webhooks/mailgun`.
//! Each answers 404 unless `bounces.webhooks.<provider>` is configured.
//!
//! Every request is checked for authenticity first (401/403 when it fails: nothing is
//! read further), then read (400 when it cannot be), then every event in it goes to
//! [`App::record_feedback`]; the answer is 200 only after all of them are committed, 500 on a
//! database error so that the provider retries. Retries and replays change nothing twice: each
//! event is recorded under the provider's event id.
//!
//! The checks and the payloads are pure functions in [`crate::feedback_hooks`]; this file
//! holds what has state: the SNS signing certificates fetched (cached by URL) and Mailgun's
//! recent tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::respond::json;
use crate::app::App;
use crate::domain::{Channel, DeliveryRef, Feedback, FeedbackSource};
use crate::feedback_hooks::{
    Event, HookError, looks_like_ours, mailgun, postmark, sendgrid, ses, sns,
};
use crate::store::Recorded;

/// Providers send batches (SendGrid) and whole headers (SES): the webhooks take up to 1 MiB
/// whatever `http.body_limit_bytes` says.
const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// At most this many SNS signing certificates are cached (SNS uses one per region at a time).
const CERTS_CACHED: usize = 32;

/// What the webhooks remember between requests.
#[derive(Default)]
pub(super) struct Hooks {
    certs: Mutex<HashMap<String, sns::SigningKey>>,
    /// Mailgun tokens already taken, with their signed timestamp.
    mailgun_tokens: Mutex<HashMap<String, i64>>,
}

/// The four routes, with their own body limit and memory.
pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/webhooks/ses", post(ses_hook))
        .route("/webhooks/postmark", post(postmark_hook))
        .route("/webhooks/sendgrid", post(sendgrid_hook))
        .route("/webhooks/mailgun", post(mailgun_hook))
        .layer(Extension(Arc::new(Hooks::default())))
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
}

fn not_configured(provider: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("the {provider} webhook is not configured\n"),
    )
        .into_response()
}

/// 403 (401 with `basic`) for a request that is not authentic, 400 for one that cannot be read.
fn refused(source: FeedbackSource, e: HookError) -> Response {
    match e {
        HookError::NotAuthentic(why) => {
            tracing::warn!(source = %source, "webhook refused: {why}");
            json(
                StatusCode::FORBIDDEN,
                serde_json::json!({"error": "not authentic"}),
            )
        }
        HookError::BadPayload(why) => {
            tracing::info!(source = %source, "webhook with a bad payload: {why}");
            json(StatusCode::BAD_REQUEST, serde_json::json!({"error": why}))
        }
    }
}

/// Records `events` (from `source`, `raw` kept for the ones nothing matches); 200 with the
/// counts once all are committed, 500 at the first database error. An event with no key that
/// could name a message of ritualist's (the provider reports all of the account's mail) is
/// skipped: neither counted nor kept for review.
async fn record(app: &App, source: FeedbackSource, events: Vec<Event>, raw: &[u8]) -> Response {
    let raw = String::from_utf8_lossy(raw);
    let mut counts = [0u32; 5];
    for ev in events {
        let Some(delivery) = delivery_ref(app, &ev) else {
            tracing::debug!(source = %source, kind = %ev.kind, "webhook event about a message ritualist did not send: skipped");
            counts[4] += 1;
            continue;
        };
        let fb = Feedback {
            kind: ev.kind,
            source,
            delivery,
            channel: Channel::Email,
            recipient: ev.recipient,
            detail: ev.detail,
            dedupe_key: ev.dedupe_key,
            raw: None,
        }
        .with_raw(ev.raw.as_deref().unwrap_or(&raw));
        match app.record_feedback(fb).await {
            Ok(r) => {
                counts[match r.recorded {
                    Recorded::Applied { .. } => 0,
                    Recorded::Duplicate => 1,
                    Recorded::Unmatched => 2,
                    Recorded::Ignored => 3,
                }] += 1
            }
            Err(e) => {
                tracing::error!(source = %source, "webhook: cannot record a report: {e}");
                return json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"error": "try again"}),
                );
            }
        }
    }
    json(
        StatusCode::OK,
        serde_json::json!({
            "applied": counts[0],
            "duplicate": counts[1],
            "unmatched": counts[2],
            "ignored": counts[3],
            "skipped": counts[4],
        }),
    )
}

/// The strongest key of `ev` that names a delivery: a valid token, this instance's VERP
/// return path, else a Message-ID shaped like ritualist's; `None` when there is none.
fn delivery_ref(app: &App, ev: &Event) -> Option<DeliveryRef> {
    if let Some(id) = ev
        .refs
        .token
        .as_deref()
        .and_then(|t| app.delivery_of_token(t))
    {
        return Some(DeliveryRef::Delivery(id));
    }
    if let Some(id) = ev
        .refs
        .return_path
        .as_deref()
        .and_then(|a| app.delivery_of_return_path(a))
    {
        return Some(DeliveryRef::Delivery(id));
    }
    ev.refs
        .message_id
        .as_deref()
        .filter(|m| looks_like_ours(m))
        .map(|m| DeliveryRef::MessageId(m.to_string()))
}

async fn ses_hook(
    State(app): State<Arc<App>>,
    Extension(hooks): Extension<Arc<Hooks>>,
    body: Bytes,
) -> Response {
    let Some(cfg) = app.cfg.bounces.webhooks.ses.as_ref() else {
        return not_configured("ses");
    };
    let src = FeedbackSource::Ses;
    let m = match sns::parse(&body) {
        Ok(m) => m,
        Err(e) => return refused(src, e),
    };
    if !cfg.topic_arns.contains(&m.topic_arn) {
        return refused(
            src,
            HookError::NotAuthentic(format!("topic `{}` is not configured", m.topic_arn)),
        );
    }
    let key = match signing_key(&hooks, cfg.certificate_pem.as_deref(), &m.signing_cert_url).await {
        Ok(k) => k,
        Err(Ok(e)) => return refused(src, e),
        Err(Err(why)) => {
            tracing::warn!("SNS signing certificate unavailable: {why}");
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "try again"}),
            );
        }
    };
    if let Err(e) = sns::verify(&m, &key, app.clock.now().as_second()) {
        return refused(src, e);
    }
    match m.kind {
        sns::SnsType::Notification => match ses::events(&m.message_id, &m.message) {
            Ok(events) => record(&app, src, events, m.message.as_bytes()).await,
            Err(e) => refused(src, e),
        },
        sns::SnsType::SubscriptionConfirmation | sns::SnsType::UnsubscribeConfirmation => {
            confirmation(&m)
        }
    }
}

/// A (un)subscription confirmation is not followed automatically: the operator confirms by
/// opening the URL logged here (or in the SNS console); nothing is recorded.
fn confirmation(m: &sns::SnsMessage) -> Response {
    let url = m.subscribe_url.as_deref().unwrap_or("");
    if m.kind == sns::SnsType::SubscriptionConfirmation && sns::subscribe_url_ok(url) {
        tracing::warn!(
            topic = %m.topic_arn,
            "SNS asks to confirm the subscription of /webhooks/ses: open {url} (or confirm it in the SNS console)"
        );
    } else {
        tracing::warn!(topic = %m.topic_arn, kind = ?m.kind, "SNS confirmation message; not followed");
    }
    json(
        StatusCode::OK,
        serde_json::json!({"confirmation": "logged"}),
    )
}

/// The key that signs `url`'s messages: the pinned certificate, else the cached or freshly
/// fetched one. `Err(Ok)`: refused (a URL that is not SNS's); `Err(Err)`: try again later.
async fn signing_key(
    hooks: &Hooks,
    pinned: Option<&[u8]>,
    url: &str,
) -> Result<sns::SigningKey, Result<HookError, String>> {
    if let Some(pem) = pinned {
        return sns::signing_key(pem).map_err(Err);
    }
    if !sns::cert_url_ok(url) {
        return Err(Ok(HookError::NotAuthentic(format!(
            "SigningCertURL `{url}` is not an SNS certificate"
        ))));
    }
    if let Some(k) = hooks
        .certs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(url)
    {
        return Ok(k.clone());
    }
    let pem = crate::channel::get_small(url, 64 * 1024, 10)
        .await
        .map_err(Err)?;
    let key = sns::signing_key(&pem).map_err(Err)?;
    let mut certs = hooks.certs.lock().unwrap_or_else(|p| p.into_inner());
    if certs.len() >= CERTS_CACHED {
        certs.clear();
    }
    certs.insert(url.to_string(), key.clone());
    Ok(key)
}

async fn postmark_hook(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(cfg) = app.cfg.bounces.webhooks.postmark.as_ref() else {
        return not_configured("postmark");
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !postmark::credentials_ok(auth, &cfg.user, cfg.password.expose()) {
        tracing::warn!(
            source = "postmark",
            "webhook refused: missing or wrong credentials"
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"ritualist\"")],
            "missing or wrong credentials\n",
        )
            .into_response();
    }
    match postmark::event(&body) {
        Ok(ev) => {
            record(
                &app,
                FeedbackSource::Postmark,
                ev.into_iter().collect(),
                &body,
            )
            .await
        }
        Err(e) => refused(FeedbackSource::Postmark, e),
    }
}

async fn sendgrid_hook(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(cfg) = app.cfg.bounces.webhooks.sendgrid.as_ref() else {
        return not_configured("sendgrid");
    };
    let src = FeedbackSource::Sendgrid;
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let checked = sendgrid::verification_key(&cfg.public_key)
        .map_err(HookError::NotAuthentic)
        .and_then(|key| {
            sendgrid::verify(
                &key,
                h("x-twilio-email-event-webhook-timestamp"),
                &body,
                h("x-twilio-email-event-webhook-signature"),
            )
        });
    if let Err(e) = checked {
        return refused(src, e);
    }
    match sendgrid::events(&body) {
        Ok(events) => record(&app, src, events, &body).await,
        Err(e) => refused(src, e),
    }
}

async fn mailgun_hook(
    State(app): State<Arc<App>>,
    Extension(hooks): Extension<Arc<Hooks>>,
    body: Bytes,
) -> Response {
    let Some(cfg) = app.cfg.bounces.webhooks.mailgun.as_ref() else {
        return not_configured("mailgun");
    };
    let src = FeedbackSource::Mailgun;
    let (sig, data) = match mailgun::parse(&body) {
        Ok(x) => x,
        Err(e) => return refused(src, e),
    };
    let now = app.clock.now().as_second();
    if let Err(e) = mailgun::verify(cfg.signing_key.expose(), &sig, now) {
        return refused(src, e);
    }
    if hooks
        .mailgun_tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(&sig.token)
    {
        tracing::info!("Mailgun webhook: a token seen before; nothing to do");
        return json(StatusCode::OK, serde_json::json!({"duplicate": 1}));
    }
    let events = match mailgun::event(&data) {
        Ok(ev) => ev.into_iter().collect(),
        Err(e) => return refused(src, e),
    };
    let resp = record(&app, src, events, &body).await;
    if resp.status() == StatusCode::OK {
        let mut tokens = hooks
            .mailgun_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, ts| now.abs_diff(*ts) <= 2 * mailgun::MAX_AGE_SECS as u64);
        tokens.insert(sig.token, sig.timestamp.parse().unwrap_or(now));
    }
    resp
}
