//! `/customers`: find a customer by external id, email or phone; `/customers/<key>`: their
//! story, [`App::history`] laid out (`?format=json` is `ritualist history KEY --messages
//! --format json`): profile, consent and its history, every message with the rendered
//! message itself, orders, survey answers and what is planned next and why.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Pages, enc, local_time, page, problem, shell};
use crate::app::{CustomerHistory, HISTORY_PLAN_DAYS, HistoryRequest};
use crate::http::respond::esc;

const ACTIVE: &str = "/customers";

#[derive(Debug, Default, Deserialize)]
pub(super) struct SearchQuery {
    q: Option<String>,
}

fn search_form(q: &str) -> String {
    format!(
        "<form method=\"get\" action=\"/customers\">\
         <label>Customer <input name=\"q\" value=\"{}\" placeholder=\"external id, email or phone\" autofocus></label> \
         <button type=\"submit\">Open the story</button></form>",
        esc(q)
    )
}

/// `/customers?q=KEY`: to the story of that key; without one, the form.
pub(super) async fn search(Query(q): Query<SearchQuery>) -> Response {
    match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(key) => Redirect::to(&format!("/customers/{}", enc(key))).into_response(),
        None => page(shell(
            "customers",
            ACTIVE,
            &search_form(""),
            "<p>Find a customer by external id, email or phone (as people write it: \
             <code>+40 722 000 111</code>, any case of an email) to see their story.</p>",
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct StoryQuery {
    format: Option<String>,
}

/// `/customers/<key>`.
pub(super) async fn story(
    State(p): State<Pages>,
    Path(key): Path<String>,
    Query(q): Query<StoryQuery>,
) -> Response {
    let app = match p.app(ACTIVE) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let json = match q.format.as_deref().map(str::trim) {
        None | Some("") | Some("html") => false,
        Some("json") => true,
        Some(other) => {
            return problem(
                StatusCode::BAD_REQUEST,
                ACTIVE,
                &format!("unknown format `{other}` (html or json)"),
            );
        }
    };
    let req = HistoryRequest {
        customer: key.clone(),
        messages: true,
        plan_days: HISTORY_PLAN_DAYS,
    };
    let h = match app.history(&req, app.clock.now()).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                ACTIVE,
                &format!("no customer with external id, email or phone `{key}`"),
            );
        }
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, ACTIVE, &e.to_string()),
    };
    if json {
        let body = serde_json::to_string_pretty(&h).unwrap_or_default();
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let zone = jiff::tz::TimeZone::get(&h.profile.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let mut body = String::new();
    profile(&mut body, &h);
    consent(&mut body, &h, &zone);
    messages(&mut body, &h, &zone);
    orders(&mut body, &h, &zone);
    surveys(&mut body, &h, &zone);
    plan(&mut body, &h);
    page(shell(
        &format!("customer {}", h.profile.external_id),
        ACTIVE,
        &search_form(&h.profile.external_id),
        &body,
    ))
}

fn opt(v: &Option<String>) -> String {
    esc(v.as_deref().unwrap_or("-"))
}

fn profile(out: &mut String, h: &CustomerHistory) {
    let p = &h.profile;
    let name = [p.first_name.as_deref(), p.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let _ = write!(
        out,
        "<h2 id=\"profile\">{} <span class=\"muted\">{}</span></h2><dl>\
         <dt>email</dt><dd>{}</dd><dt>phone</dt><dd>{}</dd><dt>locale</dt><dd>{}</dd>\
         <dt>time zone</dt><dd>{}</dd><dt>birthday</dt><dd>{}</dd><dt>signed up</dt><dd>{}</dd>\
         <dt>preferred channel</dt><dd>{}</dd><dt>custom dates</dt><dd><code>{}</code></dd>\
         <dt>attributes</dt><dd><code>{}</code></dd><dt>segments today</dt><dd id=\"segments\">{}</dd></dl>",
        esc(&p.external_id),
        esc(if name.is_empty() { "(no name)" } else { &name }),
        opt(&p.email),
        opt(&p.phone),
        esc(&p.locale),
        esc(&p.time_zone),
        opt(&p.birthday),
        opt(&p.signup_date),
        opt(&p.preferred_channel),
        esc(&p.custom_dates.to_string()),
        esc(&p.attributes.to_string()),
        if h.segments.is_empty() {
            "(none)".to_string()
        } else {
            esc(&h.segments.join(", "))
        },
    );
}

fn consent(out: &mut String, h: &CustomerHistory, zone: &jiff::tz::TimeZone) {
    out.push_str("<h2 id=\"consent\">Consent</h2><table id=\"channels\"><thead><tr><th>channel</th><th>contact</th><th>state</th></tr></thead><tbody>");
    for c in &h.channels {
        let state = match &c.by {
            Some(by) => format!("<span class=\"no\">opted out</span> ({})", esc(by)),
            None if c.contact.is_none() => "<span class=\"muted\">no contact</span>".into(),
            None => "<span class=\"yes\">reachable</span>".into(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{state}</td></tr>",
            esc(&c.channel),
            opt(&c.contact)
        );
    }
    out.push_str("</tbody></table>");
    let narrower: Vec<String> = h
        .consents
        .iter()
        .map(|(scope, out)| format!("{} {}", esc(scope), if *out { "out" } else { "in" }))
        .collect();
    if !narrower.is_empty() {
        let _ = write!(out, "<p>Scopes recorded: {}</p>", narrower.join(", "));
    }
    out.push_str("<table id=\"consent-events\"><thead><tr><th>when</th><th>scope</th><th>change</th><th>source</th></tr></thead><tbody>");
    for e in &h.consent_events {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            local_time(Some(e.at), zone),
            esc(&e.scope),
            e.change,
            esc(&e.source)
        );
    }
    if h.consent_events.is_empty() {
        out.push_str("<tr><td colspan=\"4\" class=\"muted\">no consent change recorded</td></tr>");
    }
    out.push_str("</tbody></table>");
}

fn messages(out: &mut String, h: &CustomerHistory, zone: &jiff::tz::TimeZone) {
    let _ = write!(
        out,
        "<h2 id=\"messages\">Messages ({})</h2><table id=\"ledger\"><thead><tr><th>due</th><th>ritual</th>\
         <th>occurrence</th><th>channel</th><th>status</th><th>reason</th><th>attempts</th><th>sent</th>\
         <th>message</th></tr></thead><tbody>",
        h.messages.len()
    );
    for m in &h.messages {
        let reason = match (&m.reason, &m.last_error) {
            (Some(r), _) => esc(r),
            (None, Some(e)) => esc(e),
            _ => String::new(),
        };
        let message = match &m.payload {
            Some(p) => format!(
                "<details><summary>{}</summary><pre class=\"payload\">{}</pre></details>",
                esc(m.subject.as_deref().unwrap_or("the message")),
                esc(p)
            ),
            None => opt(&m.subject),
        };
        let _ = write!(
            out,
            "<tr data-id=\"{}\" data-status=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{reason}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{message}</td></tr>",
            m.id,
            esc(&m.status),
            local_time(Some(m.due_at), zone),
            esc(&m.ritual),
            esc(&m.occurrence),
            esc(&m.channel),
            esc(&m.status),
            m.attempts,
            local_time(m.sent_at, zone),
        );
    }
    out.push_str("</tbody></table>");
}

fn orders(out: &mut String, h: &CustomerHistory, zone: &jiff::tz::TimeZone) {
    let totals: Vec<String> = h
        .orders
        .total_minor
        .iter()
        .map(|(c, v)| crate::domain::money::format_major(c, *v as f64, false))
        .collect();
    let _ = write!(
        out,
        "<h2 id=\"orders\">Orders ({}; {})</h2><table id=\"order-list\"><thead><tr><th>ordered</th><th>order</th><th>amount</th></tr></thead><tbody>",
        h.orders.count,
        if totals.is_empty() {
            "none".into()
        } else {
            totals.join(", ")
        }
    );
    for o in &h.orders.all {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            local_time(Some(o.ordered_at), zone),
            esc(&o.external_id),
            esc(&crate::domain::money::format_major(
                &o.currency,
                o.amount_minor as f64,
                false
            ))
        );
    }
    out.push_str("</tbody></table>");
}

fn surveys(out: &mut String, h: &CustomerHistory, zone: &jiff::tz::TimeZone) {
    out.push_str("<h2 id=\"surveys\">Survey answers</h2><table id=\"survey-answers\"><thead><tr><th>answered</th><th>ritual</th><th>score</th><th>comment</th></tr></thead><tbody>");
    for s in &h.surveys {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            local_time(Some(s.first_at), zone),
            esc(&s.ritual),
            s.score,
            opt(&s.comment)
        );
    }
    if h.surveys.is_empty() {
        out.push_str("<tr><td colspan=\"4\" class=\"muted\">no answer</td></tr>");
    }
    out.push_str("</tbody></table>");
}

fn plan(out: &mut String, h: &CustomerHistory) {
    let _ = write!(
        out,
        "<h2 id=\"plan\">Planned next ({} days from {})</h2>\
         <table id=\"planned\"><thead><tr><th>ritual</th><th>decision</th><th>channel</th><th>send at (local)</th>\
         <th>occurrence</th><th>why</th></tr></thead><tbody>",
        h.plan.days,
        esc(&h.plan.from)
    );
    for d in &h.plan.decisions {
        let why = match &d.reason {
            Some(r) => esc(r),
            None => format!("{} is due", esc(&d.occurrence)),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{why}</td></tr>",
            esc(&d.ritual),
            d.decision,
            esc(d.channel.as_deref().unwrap_or("-")),
            esc(d.send_at.as_deref().unwrap_or("-")),
            esc(&d.occurrence),
        );
    }
    if h.plan.decisions.is_empty() {
        out.push_str(
            "<tr><td colspan=\"6\" class=\"muted\">nothing planned in these days</td></tr>",
        );
    }
    out.push_str("</tbody></table>");
}
