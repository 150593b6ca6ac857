//! The daemon's public server (`http:` in the config, run inside `ritualist run`): routes,
//! limits. The pages and webhooks live in [`super::consent`], [`super::survey`],
//! [`super::inbound`], [`super::kannel`] and [`super::receipts`], the ingest API, `/healthz` and
//! `/metrics` in [`super::api`], the email providers' webhooks (`/webhooks/…`) in
//! [`super::webhooks`].
//!
//! Every request has a body limit (`http.body_limit_bytes`, 413 beyond it) and a deadline
//! (`http.timeout_secs`, 408 after it). Every response says `Cache-Control: no-store` and
//! `Referrer-Policy: no-referrer` (link tokens are in URLs and must not leak to other sites),
//! refuses framing, and sets no cookie. Nothing here redirects. Logs carry customer ids only.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::App;

/// Serves the public routes on `listener` until `shutdown` completes; requests in flight are
/// answered first.
pub async fn serve_public(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(app: Arc<App>) -> Router {
    let (limit, secs) = app
        .cfg
        .http
        .as_ref()
        .map_or((16 * 1024, 10), |h| (h.body_limit_bytes, h.timeout_secs));
    Router::new()
        .route(
            "/u/{token}",
            get(super::consent::unsubscribe_page).post(super::consent::unsubscribe_post),
        )
        .route(
            "/p/{token}",
            get(super::consent::preferences_page).post(super::consent::preferences_post),
        )
        .route(
            "/s/{token}/{score}",
            get(super::survey::score_page).post(super::survey::comment_post),
        )
        .route("/sms/twilio", post(super::inbound::twilio))
        .route("/sms/inbound", post(super::inbound::generic))
        .route(
            "/sms/kannel",
            get(super::kannel::kannel).post(super::kannel::kannel),
        )
        .route(
            "/sms/kannel/dlr/{token}",
            get(super::receipts::kannel_dlr).post(super::receipts::kannel_dlr),
        )
        .route(
            "/sms/twilio/status/{token}",
            post(super::receipts::twilio_status),
        )
        .route("/sms/receipt/{token}", post(super::receipts::generic))
        .route("/healthz", get(super::api::healthz))
        .route("/api/customers", post(super::api::customers))
        .route("/api/orders", post(super::api::orders))
        .route("/metrics", get(super::api::metrics))
        .merge(super::webhooks::routes())
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            Duration::from_secs(secs as u64),
            deadline,
        ))
        .layer(middleware::map_response(safe_headers))
        .with_state(app)
}

async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response(),
    }
}

async fn safe_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    r
}
