//! The marketer's pages beside the preview, on the same `preview --serve` server:
//! - `/calendar` (`?from=YYYY-MM-DD&days=N`): per day the messages per ritual and channel,
//!   the skipped ones by reason and the customers two rituals would both reach; a day opens
//!   its decisions (`/calendar/<date>`), each linked to the customer's story;
//! - `/customers` (search by external id, email or phone) and `/customers/<key>`: one
//!   customer's story, the data of `ritualist history --format json`;
//! - `/results`: the report per ritual and month as SVG charts, the holdout lift with its
//!   interval and verdict, NPS over time and the survey comments (`?q=` searches them).
//!
//! Every number comes from the app function the CLI prints (`App::calendar` and `App::plan`,
//! `App::history`, `app::report`, `app::surveys`); the pages only lay them out. Server-side
//! HTML and SVG, no script, nothing fetched from elsewhere. Every table has a CSV export
//! (`?format=csv`). Bad input is a 400 page, an unknown customer a 404 page, never a panic.
//! [`access`] is who may ask: anyone on loopback, a key or a password elsewhere.

pub(super) mod access;
mod calendar;
mod customers;
mod results;
mod svg;

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::civil::Date;

use super::respond::esc;
use crate::app::App;

/// What the pages read: the app over the configured database, or why there is none.
#[derive(Clone)]
pub(super) struct Pages {
    app: Result<Arc<App>, String>,
}

/// The pages' routes; `app` is why there is no app (no database yet, a ritual that does not
/// load) when it could not be opened: each page says so.
pub(super) fn router(app: Result<Arc<App>, String>) -> Router {
    Router::new()
        .route("/calendar", get(calendar::month))
        .route("/calendar/{date}", get(calendar::day))
        .route("/customers", get(customers::search))
        .route("/customers/{key}", get(customers::story))
        .route("/results", get(results::page))
        .with_state(Pages { app })
}

impl Pages {
    /// The app, or the 503 page saying why there is none.
    #[allow(clippy::result_large_err)] // a page, built once per request
    fn app(&self, active: &str) -> Result<&Arc<App>, Response> {
        self.app
            .as_ref()
            .map_err(|why| problem(StatusCode::SERVICE_UNAVAILABLE, active, why))
    }
}

/// The pages in the navigation bar: (path, label).
const NAV: [(&str, &str); 4] = [
    ("/", "Preview"),
    ("/calendar", "Calendar"),
    ("/customers", "Customers"),
    ("/results", "Results"),
];

/// The navigation bar, `active` (a path of [`NAV`]) marked.
pub(super) fn nav(active: &str) -> String {
    let mut out = String::from("<nav>");
    for (path, label) in NAV {
        let _ = write!(
            out,
            "<a href=\"{path}\"{}>{label}</a>",
            if path == active {
                " class=\"active\" aria-current=\"page\""
            } else {
                ""
            }
        );
    }
    out.push_str("</nav>");
    out
}

/// The navigation bar's style, shared with the preview page.
pub(super) const NAV_STYLE: &str = "\
nav{display:flex;gap:4px;margin:0 0 8px}nav a{color:#ddd;text-decoration:none;padding:4px 10px;border-radius:4px}\
nav a.active{background:#fff;color:#2d2a32;font-weight:600}nav a:hover{background:#4a4552;color:#fff}";

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f4f6;color:#222}\
header{background:#2d2a32;color:#fff;padding:10px 20px}header h1{font-size:18px;margin:0 0 8px}\
header form{display:flex;gap:12px;align-items:center;flex-wrap:wrap}\
main{padding:8px 20px 40px}h2{margin:20px 0 8px;font-size:18px}\
table{border-collapse:collapse;background:#fff;margin:8px 0;font-size:13px}\
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eee}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
tr.overlap td{background:#fff3e0}.flag{color:#b35c00;font-weight:600}\
.muted{color:#888}.notice{background:#fff8e0;border:1px solid #f0d98a;padding:6px 10px;border-radius:4px}\
.error{color:#a00}.csv{font-size:12px;margin-left:8px}.verdict{font-weight:600}\
.yes{color:#1a7f37}.no{color:#a00}svg{background:#fff;border:1px solid #ddd;margin:4px 8px 4px 0}\
pre.payload{white-space:pre-wrap;max-height:300px;overflow:auto;background:#fafafa;border:1px solid #eee;padding:6px}\
.charts{display:flex;flex-wrap:wrap}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#666}";

/// A whole page: title, navigation, an optional header form, the body.
fn shell(title: &str, active: &str, form: &str, main: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <title>ritualist · {}</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}{NAV_STYLE}</style></head>\
         <body><header><h1>ritualist</h1>{}{form}</header><main>{main}</main></body></html>",
        esc(title),
        nav(active),
    )
}

/// A page that says what is wrong, with its status (400 bad input, 404 unknown, …).
fn problem(status: StatusCode, active: &str, message: &str) -> Response {
    let body = format!("<p class=\"error\">{}</p>", esc(message));
    let title = status.canonical_reason().unwrap_or("error");
    (
        status,
        NO_STORE,
        axum::response::Html(shell(title, active, "", &body)),
    )
        .into_response()
}

const NO_STORE: [(header::HeaderName, &str); 1] = [(header::CACHE_CONTROL, "no-store")];

/// An HTML page, never cached (the data changes under it).
fn page(html: String) -> Response {
    (NO_STORE, axum::response::Html(html)).into_response()
}

/// A CSV download named `name`.
fn csv(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

/// A CSV field, quoted when it holds a separator, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A path or query component, percent-encoded (everything but unreserved characters).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The link to a customer's story.
fn story_link(external_id: &str) -> String {
    format!(
        "<a href=\"/customers/{}\">{}</a>",
        enc(external_id),
        esc(external_id)
    )
}

/// A query's date (`YYYY-MM-DD`, within the supported years), or why not.
fn parse_date(s: &str) -> Result<Date, String> {
    let d: Date = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))?;
    crate::app::supported_date(d)
}

/// `?format=`: the page, or its CSV; anything else is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Csv,
}

fn format_of(f: Option<&str>) -> Result<Format, String> {
    match f.map(str::trim) {
        None | Some("") | Some("html") => Ok(Format::Html),
        Some("csv") => Ok(Format::Csv),
        Some(other) => Err(format!("unknown format `{other}` (html or csv)")),
    }
}

/// Unix seconds in `zone`, to the minute; `-` when absent.
fn local_time(ts: Option<i64>, zone: &jiff::tz::TimeZone) -> String {
    ts.and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

/// The shop's zone (`defaults.time_zone`).
fn shop_zone(app: &App) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(&app.cfg.defaults.time_zone).unwrap_or(jiff::tz::TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_percent_encoded_and_dates_checked() {
        assert_eq!(enc("a b/é?&"), "a%20b%2F%C3%A9%3F%26");
        assert_eq!(enc("C00042"), "C00042");
        assert!(parse_date("2027-02-30").is_err());
        assert!(parse_date("9999-01-01").is_err());
        assert_eq!(
            parse_date(" 2027-03-01 ").unwrap().to_string(),
            "2027-03-01"
        );
        assert_eq!(format_of(Some("csv")), Ok(Format::Csv));
        assert!(format_of(Some("xml")).is_err());
    }

    #[test]
    fn the_navigation_marks_the_page_it_is_on() {
        let n = nav("/results");
        assert!(n.contains("<a href=\"/results\" class=\"active\""));
        assert!(n.contains("<a href=\"/calendar\">Calendar</a>"));
    }
}
