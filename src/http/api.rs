//! The ingest API and `/metrics` on the public server.
//!
//! `POST /api/customers` and `POST /api/orders` take one JSON object or an array of them and
//! answer `{"accepted":N,"rejected":M,"inserted":I,"updated":U,"errors":[...],"warnings":[...]}`:
//! 200 when every item was stored whole, 422 when some were rejected or stored without a
//! refused contact value (the valid ones are stored all the same, as a CSV import does), each
//! error naming its item `index`, `field`, `message`, `hint` and `outcome` (`rejected`: the
//! item was not stored; `left_out`: it was stored without this value); `warnings` lists
//! normalised values (`normalised`); 400 when the body is not JSON. They need `Authorization: Bearer <http.api_key_env>`: 401
//! without it or with a wrong one, 404 when no key is configured (the API is off).
//!
//! `GET /metrics` is the Prometheus exposition (the ledger's gauges, then
//! `ritualist_feedback_total{ritual,channel,kind}`, the later reports applied); with
//! `http.metrics_key_env` set it needs that bearer key too (401 otherwise). Either way it must
//! not be proxied to the internet.
//!
//! `GET /healthz`: 200 `{"status":"ok","database":"reachable","queue_depth":N,
//! "paused_channels":[],"deliverability_alerts":[],"reasons":[]}`; status `degraded` (still
//! 200), with one line per cause in `reasons`, while a channel is paused or a deliverability
//! alert is raised (the complaint or hard-bounce rate of the last 7 days above `bounces.alert`;
//! `deliverability_alerts` is `null` when that check failed or took over 5 s); 503 when the
//! database does not answer within 5 s.
//!
//! Keys are compared in constant time. Nothing here logs customer data: counts only.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::respond::{check_bearer, json};
use crate::app::{App, AppError, IngestReport};

#[derive(Clone, Copy)]
enum What {
    Customers,
    Orders,
}

async fn ingest(app: Arc<App>, headers: HeaderMap, body: Bytes, what: What) -> Response {
    let Some(key) = app.cfg.http.as_ref().and_then(|h| h.api_key.as_ref()) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    if let Some(denied) = check_bearer(&headers, key) {
        return denied;
    }
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("the body is not JSON: {e}"),
                    "hint": "send one JSON object or an array of objects, Content-Type: application/json"}),
            );
        }
    };
    let result: Result<IngestReport, AppError> = match what {
        What::Customers => app.ingest_customers(&value).await,
        What::Orders => app.ingest_orders(&value).await,
    };
    let kind = match what {
        What::Customers => "customers",
        What::Orders => "orders",
    };
    match result {
        Ok(r) => {
            tracing::info!(
                accepted = r.accepted,
                rejected = r.rejected,
                inserted = r.inserted,
                updated = r.updated,
                "ingest API: {kind}"
            );
            // A value left out of a stored item is a 422 too: the client sent something we
            // did not keep.
            let status = if r.errors.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            json(
                status,
                serde_json::to_value(&r).unwrap_or_else(|_| serde_json::json!({})),
            )
        }
        Err(e) => {
            tracing::error!("ingest API: {kind}: {e}");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "the request could not be stored; retry later"}),
            )
        }
    }
}

pub(super) async fn customers(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ingest(app, headers, body, What::Customers).await
}

pub(super) async fn orders(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ingest(app, headers, body, What::Orders).await
}

pub(super) async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(key) = app.cfg.http.as_ref().and_then(|h| h.metrics_key.as_ref())
        && let Some(denied) = check_bearer(&headers, key)
    {
        return denied;
    }
    let text = async {
        let mut text = app.metrics_text().await?;
        text.push_str(&app.feedback_metrics_text().await?);
        Ok::<_, AppError>(text)
    };
    match text.await {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!("metrics: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// What `/healthz` reads from the ledger: open messages and paused channels.
async fn health(app: &App) -> Result<(i64, Vec<String>), AppError> {
    let n = app.store.open_messages().await?;
    let now = app.clock.now().as_second();
    let paused = app
        .store
        .channel_pauses()
        .await?
        .into_iter()
        .filter(|p| p.until > now)
        .map(|p| p.channel.as_str().to_string())
        .collect();
    Ok((n, paused))
}

/// The deliverability alerts, or `None` when they could not be computed in time (the
/// database answered the health queries: it is reachable, so that is not a 503).
async fn alerts(app: &App) -> Option<Vec<crate::app::Alert>> {
    match tokio::time::timeout(Duration::from_secs(5), app.deliverability_alerts()).await {
        Ok(Ok(a)) => Some(a),
        Ok(Err(e)) => {
            tracing::warn!("healthz: the deliverability check failed: {e}");
            None
        }
        Err(_) => {
            tracing::warn!("healthz: the deliverability check took over 5 s; skipped");
            None
        }
    }
}

/// `/healthz` (see the module's doc).
pub(super) async fn healthz(State(app): State<Arc<App>>) -> Response {
    let unavailable = || {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unavailable", "database": "unreachable"}),
        )
    };
    match tokio::time::timeout(Duration::from_secs(5), health(&app)).await {
        // A paused channel or a bad sender reputation needs the operator, not a restart:
        // still 200, status `degraded`.
        Ok(Ok((n, paused))) => {
            let alerts = alerts(&app).await;
            let mut reasons: Vec<String> = paused
                .iter()
                .map(|c| format!("the {c} channel is paused"))
                .collect();
            reasons.extend(alerts.iter().flatten().map(|a| a.to_string()));
            json(
                StatusCode::OK,
                serde_json::json!({
                    "status": if reasons.is_empty() { "ok" } else { "degraded" },
                    "database": "reachable",
                    "queue_depth": n,
                    "paused_channels": paused,
                    "deliverability_alerts": alerts,
                    "reasons": reasons,
                }),
            )
        }
        Ok(Err(e)) => {
            tracing::warn!("healthz: database error: {e}");
            unavailable()
        }
        Err(_) => {
            tracing::warn!("healthz: the database did not answer within 5 s");
            unavailable()
        }
    }
}
