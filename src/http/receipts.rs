//! SMS delivery receipts: what the gateways report after they took a message, each mapped to
//! one [`Feedback`] and recorded with [`App::record_feedback`] (docs/operator.md, "SMS
//! delivery receipts"). Every URL names its delivery by the signed token the provider was
//! given when the message was sent; a token that does not verify is a 404 and records
//! nothing.
//!
//! - `GET`/`POST /sms/kannel/dlr/<token>?status=%d&answer=%A`: Kannel's `dlr-url`. Status 1
//!   (delivered to the phone) is `delivered`; 2 (not delivered) and 16 (refused by the SMSC)
//!   are `undelivered`, with the SMSC's answer; 4 and 8 (queued, taken by the SMSC) are
//!   acknowledged and not recorded. Kannel cannot sign: the token is the proof.
//! - `POST /sms/twilio/status/<token>`: Twilio's `StatusCallback`, its `X-Twilio-Signature`
//!   checked exactly as the inbound webhook's (403 otherwise). `delivered` (and `read`) are
//!   `delivered`; `undelivered` and `failed` are `undelivered`, or `dead_number` for error
//!   30003 (unreachable handset), 30005 (unknown handset) and 30006 (landline or unreachable
//!   carrier); the other statuses (`queued`, `sent`, `sending`, …) answer 204 and record
//!   nothing. One report per `MessageSid` and `MessageStatus`.
//! - `POST /sms/receipt/<token>`: the generic gateway's callback (the `{receipt_url}`
//!   placeholder), JSON `{"status": "delivered|undelivered|failed", "error": "…", "dead":
//!   false, "id": "…"}`, with `Authorization: Bearer <key>` when `bounces.sms_receipts`'s key
//!   is set (401 otherwise).
//!
//! A report is answered 2xx only once it is committed; a database error is a 503, so the
//! gateway tries again, and the same report again changes nothing. A payload that cannot be
//! read is a 400.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::respond::{check_bearer, json};
use crate::app::App;
use crate::config::{SmsProvider, SmsTransport};
use crate::domain::{Channel, DeliveryRef, Feedback, FeedbackKind, FeedbackSource};
use crate::store::Recorded;

/// Twilio error codes that mean the number cannot take messages: unreachable (30003) or
/// unknown (30005) handset, landline or unreachable carrier (30006).
pub const TWILIO_DEAD_CODES: [&str; 3] = ["30003", "30005", "30006"];

/// Characters of a gateway's words kept in a report's detail.
const DETAIL_CHARS: usize = 300;

/// One report as a receipt route read it.
struct Receipt {
    delivery_id: i64,
    kind: FeedbackKind,
    source: FeedbackSource,
    detail: String,
    dedupe_key: String,
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "unknown receipt token\n").into_response()
}

fn bad_request(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
}

fn cut(s: &str) -> String {
    let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
    folded.chars().take(DETAIL_CHARS).collect()
}

/// Records `r` once; 200 with what became of it, 503 on a database error.
async fn record(app: &App, r: Receipt, raw: &str) -> Response {
    let fb = Feedback {
        kind: r.kind,
        source: r.source,
        delivery: DeliveryRef::Delivery(r.delivery_id),
        channel: Channel::Sms,
        recipient: None,
        detail: r.detail,
        dedupe_key: r.dedupe_key,
        raw: None,
    }
    .with_raw(raw);
    match app.record_feedback(fb).await {
        Ok(res) => {
            let recorded = match res.recorded {
                Recorded::Applied { opted_out: true } => "opted_out",
                Recorded::Applied { opted_out: false } => "recorded",
                Recorded::Duplicate => "duplicate",
                Recorded::Unmatched => "unmatched",
                Recorded::Ignored => "ignored",
            };
            json(
                StatusCode::OK,
                serde_json::json!({"recorded": recorded, "kind": r.kind}),
            )
        }
        Err(e) => {
            tracing::error!(source = %r.source, "SMS receipt not recorded: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "try again\n").into_response()
        }
    }
}

/// What a Kannel report type means: `None` for one that is acknowledged and not recorded.
fn kannel_kind(status: u32) -> Result<Option<FeedbackKind>, String> {
    match status {
        1 => Ok(Some(FeedbackKind::Delivered)),
        2 | 16 => Ok(Some(FeedbackKind::Undelivered)),
        4 | 8 => Ok(None),
        other => Err(format!("unknown Kannel report type {other}")),
    }
}

/// Kannel's `dlr-url`: `?status=<%d>&answer=<%A>` (GET, or POST with the same query).
pub(super) async fn kannel_dlr(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    uri: Uri,
) -> Response {
    let Some(delivery_id) = app.delivery_of_token(&token) else {
        tracing::warn!("Kannel receipt with an unknown token: refused");
        return not_found();
    };
    let query = uri.query().unwrap_or("");
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    let Some(status) = get("status").and_then(|s| s.trim().parse::<u32>().ok()) else {
        return bad_request("expected ?status=<Kannel report type>&answer=<SMSC answer>");
    };
    let kind = match kannel_kind(status) {
        Ok(Some(k)) => k,
        Ok(None) => return (StatusCode::OK, "acknowledged\n").into_response(),
        Err(e) => return bad_request(&e),
    };
    let answer = get("answer").unwrap_or("");
    let r = Receipt {
        delivery_id,
        kind,
        source: FeedbackSource::Kannel,
        detail: cut(&format!("kannel dlr {status}: {answer}")),
        dedupe_key: format!("kannel:d{delivery_id}:{status}"),
    };
    record(&app, r, query).await
}

/// The auth tokens of the configured Twilio providers.
fn twilio_tokens(app: &App) -> Vec<&str> {
    match &app.cfg.delivery.sms {
        SmsTransport::Providers(ps) => ps
            .iter()
            .filter_map(|p| match p {
                SmsProvider::Twilio(t) => Some(t.auth_token.expose()),
                _ => None,
            })
            .collect(),
        SmsTransport::Outbox | SmsTransport::Discard => Vec::new(),
    }
}

/// What a Twilio status callback reports: `None` for a status that is not an outcome yet.
fn twilio_kind(status: &str, error_code: &str) -> Option<FeedbackKind> {
    match status {
        "delivered" | "read" => Some(FeedbackKind::Delivered),
        "failed" | "undelivered" if TWILIO_DEAD_CODES.contains(&error_code) => {
            Some(FeedbackKind::DeadNumber)
        }
        "failed" | "undelivered" => Some(FeedbackKind::Undelivered),
        _ => None,
    }
}

/// Twilio's `StatusCallback` (form-encoded, signed).
pub(super) async fn twilio_status(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let tokens = twilio_tokens(&app);
    let Some(http) = app.cfg.http.as_ref().filter(|_| !tokens.is_empty()) else {
        return (StatusCode::NOT_FOUND, "no Twilio provider is configured\n").into_response();
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let url = format!(
        "{}{}",
        http.public_url,
        uri.path_and_query().map_or(uri.path(), |p| p.as_str())
    );
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !tokens
        .iter()
        .any(|t| super::twilio_signature_ok(t, &url, &params, signature))
    {
        tracing::warn!("Twilio status callback with a missing or bad signature: rejected");
        return (StatusCode::FORBIDDEN, "bad signature\n").into_response();
    }
    let Some(delivery_id) = app.delivery_of_token(&token) else {
        tracing::warn!("Twilio status callback with an unknown token: refused");
        return not_found();
    };
    let get = |k: &str| {
        params
            .iter()
            .find(|(a, _)| a == k)
            .map_or("", |(_, v)| v.trim())
    };
    let (sid, status, code) = (get("MessageSid"), get("MessageStatus"), get("ErrorCode"));
    if sid.is_empty() || status.is_empty() {
        return bad_request("expected MessageSid and MessageStatus");
    }
    let Some(kind) = twilio_kind(status, code) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let detail = match (code, get("ErrorMessage")) {
        ("", _) => format!("twilio {status}"),
        (c, "") => format!("twilio {status}: error {c}"),
        (c, m) => format!("twilio {status}: error {c} {m}"),
    };
    let r = Receipt {
        delivery_id,
        kind,
        source: FeedbackSource::Twilio,
        detail: cut(&detail),
        dedupe_key: format!("twilio:{}:{status}", cut(sid)),
    };
    record(&app, r, &String::from_utf8_lossy(&body)).await
}

/// The generic gateway's receipt.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericReceipt {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    dead: bool,
    #[serde(default)]
    id: Option<String>,
}

/// What a generic receipt reports.
fn generic_kind(r: &GenericReceipt) -> Result<FeedbackKind, String> {
    match r.status.trim().to_ascii_lowercase().as_str() {
        "delivered" => Ok(FeedbackKind::Delivered),
        "failed" | "undelivered" if r.dead => Ok(FeedbackKind::DeadNumber),
        "failed" | "undelivered" => Ok(FeedbackKind::Undelivered),
        other => Err(format!(
            "unknown status `{}`: expected delivered, undelivered or failed",
            cut(other)
        )),
    }
}

/// `POST /sms/receipt/<token>` (JSON).
pub(super) async fn generic(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(key) = app.cfg.bounces.sms_receipts.key.as_ref()
        && let Some(denied) = check_bearer(&headers, key)
    {
        return denied;
    }
    let Some(delivery_id) = app.delivery_of_token(&token) else {
        tracing::warn!("SMS receipt with an unknown token: refused");
        return not_found();
    };
    let receipt: GenericReceipt = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("expected {{\"status\": \"delivered|undelivered|failed\", \"error\": \"…\", \"dead\": false, \"id\": \"…\"}}: {e}")}),
            );
        }
    };
    let kind = match generic_kind(&receipt) {
        Ok(k) => k,
        Err(e) => return json(StatusCode::BAD_REQUEST, serde_json::json!({"error": e})),
    };
    let status = receipt.status.trim().to_ascii_lowercase();
    let detail = match receipt.error.as_deref().map(str::trim) {
        Some(e) if !e.is_empty() => format!("http {status}: {e}"),
        _ => format!("http {status}"),
    };
    let dedupe_key = match receipt.id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => format!("http:d{delivery_id}:{}:{status}", cut(id)),
        _ => format!("http:d{delivery_id}:{status}"),
    };
    let r = Receipt {
        delivery_id,
        kind,
        source: FeedbackSource::Http,
        detail: cut(&detail),
        dedupe_key,
    };
    record(&app, r, &String::from_utf8_lossy(&body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kannel_report_types() {
        assert_eq!(kannel_kind(1), Ok(Some(FeedbackKind::Delivered)));
        assert_eq!(kannel_kind(2), Ok(Some(FeedbackKind::Undelivered)));
        assert_eq!(kannel_kind(16), Ok(Some(FeedbackKind::Undelivered)));
        assert_eq!(kannel_kind(8), Ok(None));
        assert_eq!(kannel_kind(4), Ok(None));
        assert!(kannel_kind(3).is_err());
    }

    #[test]
    fn twilio_statuses_and_dead_numbers() {
        assert_eq!(twilio_kind("delivered", ""), Some(FeedbackKind::Delivered));
        assert_eq!(
            twilio_kind("undelivered", "30007"),
            Some(FeedbackKind::Undelivered)
        );
        for code in TWILIO_DEAD_CODES {
            assert_eq!(twilio_kind("failed", code), Some(FeedbackKind::DeadNumber));
            assert_eq!(
                twilio_kind("undelivered", code),
                Some(FeedbackKind::DeadNumber)
            );
        }
        for s in ["queued", "sent", "sending", "accepted", "whatever"] {
            assert_eq!(twilio_kind(s, ""), None, "{s}");
        }
    }

    #[test]
    fn generic_statuses() {
        let r = |status: &str, dead| GenericReceipt {
            status: status.into(),
            error: None,
            dead,
            id: None,
        };
        assert_eq!(
            generic_kind(&r("Delivered", false)),
            Ok(FeedbackKind::Delivered)
        );
        assert_eq!(
            generic_kind(&r("failed", false)),
            Ok(FeedbackKind::Undelivered)
        );
        assert_eq!(
            generic_kind(&r("undelivered", true)),
            Ok(FeedbackKind::DeadNumber)
        );
        assert!(generic_kind(&r("sent", false)).is_err());
    }

    #[test]
    fn details_are_folded_and_cut() {
        let long = "a b\n".repeat(500);
        let c = cut(&long);
        assert_eq!(c.chars().count(), DETAIL_CHARS);
        assert!(!c.contains('\n'));
    }
}
