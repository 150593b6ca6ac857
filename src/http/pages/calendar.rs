//! `/calendar`: the days ahead, each what `plan --date DAY --days 1` decides, counted
//! ([`App::calendar`]); `/calendar/<date>`: that day's decisions ([`App::calendar_day`]), each
//! customer linked to their story.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::svg::{COLORS, Series, bars};
use super::{
    Format, Pages, csv, csv_field, format_of, page, parse_date, problem, shell, story_link,
};
use crate::app::{
    CalendarDay, CalendarRequest, DayTally, PlannedDecision, SendCalendar, reason_kind,
    tally_calendar_day,
};
use crate::http::respond::esc;

/// The calendar's days by default.
const DEFAULT_DAYS: u32 = 30;
/// Rows a day's page lists; the CSV has them all.
const DAY_ROWS: usize = 2000;

#[derive(Debug, Default, Deserialize)]
pub(super) struct CalendarQuery {
    from: Option<String>,
    days: Option<String>,
    format: Option<String>,
}

/// `/calendar`.
pub(super) async fn month(State(p): State<Pages>, Query(q): Query<CalendarQuery>) -> Response {
    let active = "/calendar";
    let app = match p.app(active) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let parsed = (|| {
        let format = format_of(q.format.as_deref())?;
        let from = match q.from.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => parse_date(s)?,
            None => app.clock.now().to_zoned(super::shop_zone(app)).date(),
        };
        let days = match q.days.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => s
                .parse::<u32>()
                .map_err(|_| format!("`{s}` is not a number of days"))?,
            None => DEFAULT_DAYS,
        };
        let req = CalendarRequest { from, days };
        crate::app::calendar_dates(&req)?;
        Ok::<_, String>((format, req))
    })();
    let (format, req) = match parsed {
        Ok(v) => v,
        Err(why) => return problem(StatusCode::BAD_REQUEST, active, &why),
    };
    let cal = match app.calendar(&req).await {
        Ok(c) => c,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, active, &e.to_string()),
    };
    let columns = Columns::of(&cal.days);
    match format {
        Format::Csv => csv(
            &format!("calendar-{}.csv", cal.from),
            month_csv(&cal, &columns),
        ),
        Format::Html => page(shell(
            &format!("calendar from {}", cal.from),
            active,
            &month_form(&req),
            &month_body(&cal, &columns, &req),
        )),
    }
}

/// The ritual × channel pairs and the reasons any day has: the table's columns.
struct Columns {
    sends: Vec<(String, String)>,
    reasons: Vec<String>,
}

impl Columns {
    fn of(days: &[CalendarDay]) -> Columns {
        let sends: BTreeSet<(String, String)> = days
            .iter()
            .flat_map(|d| {
                d.by_ritual
                    .iter()
                    .map(|s| (s.ritual.clone(), s.channel.clone()))
            })
            .collect();
        let reasons: BTreeSet<String> = days
            .iter()
            .flat_map(|d| d.skipped.keys().cloned())
            .collect();
        Columns {
            sends: sends.into_iter().collect(),
            reasons: reasons.into_iter().collect(),
        }
    }
}

fn count_of(d: &CalendarDay, ritual: &str, channel: &str) -> u64 {
    d.by_ritual
        .iter()
        .find(|s| s.ritual == ritual && s.channel == channel)
        .map_or(0, |s| s.count)
}

fn month_form(req: &CalendarRequest) -> String {
    format!(
        "<form method=\"get\" action=\"/calendar\">\
         <label>From <input type=\"date\" name=\"from\" value=\"{}\"></label> \
         <label>Days <input type=\"number\" name=\"days\" min=\"1\" max=\"{}\" value=\"{}\"></label> \
         <button type=\"submit\">Show</button></form>",
        req.from,
        crate::app::CALENDAR_MAX_DAYS,
        req.days
    )
}

fn month_body(cal: &SendCalendar, cols: &Columns, req: &CalendarRequest) -> String {
    let total: u64 = cal.days.iter().map(|d| d.sends).sum();
    let overlaps = cal.days.iter().filter(|d| d.overlap_customers > 0).count();
    let mut out = format!(
        "<p>{total} message(s) planned over {} day(s) from {}; {overlaps} day(s) where two rituals reach the same customer \
         <span class=\"flag\">⚑</span>. Each day is what <code>ritualist plan --date DAY --days 1</code> decides.\
         <a class=\"csv\" href=\"/calendar?from={}&amp;days={}&amp;format=csv\">CSV</a></p>",
        cal.days.len(),
        esc(&cal.from),
        req.from,
        req.days
    );
    out.push_str(&month_chart(cal));
    out.push_str("<table id=\"calendar\"><thead><tr><th>day</th><th>sends</th>");
    for (r, c) in &cols.sends {
        let _ = write!(out, "<th>{} · {}</th>", esc(r), esc(c));
    }
    for r in &cols.reasons {
        let _ = write!(out, "<th>skipped: {}</th>", esc(r));
    }
    out.push_str("<th>overlaps</th></tr></thead><tbody>");
    for d in &cal.days {
        let flagged = d.overlap_customers > 0;
        let _ = write!(
            out,
            "<tr data-date=\"{date}\"{cls}><td><a href=\"/calendar/{date}\">{date}</a></td><td class=\"num sends\">{}</td>",
            d.sends,
            date = esc(&d.date),
            cls = if flagged { " class=\"overlap\"" } else { "" },
        );
        for (r, c) in &cols.sends {
            let _ = write!(
                out,
                "<td class=\"num\" data-ritual=\"{}\" data-channel=\"{}\">{}</td>",
                esc(r),
                esc(c),
                count_of(d, r, c)
            );
        }
        for r in &cols.reasons {
            let _ = write!(
                out,
                "<td class=\"num\" data-reason=\"{}\">{}</td>",
                esc(r),
                d.skipped.get(r).copied().unwrap_or(0)
            );
        }
        let _ = write!(
            out,
            "<td class=\"num overlaps\">{}</td></tr>",
            if flagged {
                format!("<span class=\"flag\">⚑ {}</span>", d.overlap_customers)
            } else {
                "0".into()
            }
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Sends per day, a bar per ritual.
fn month_chart(cal: &SendCalendar) -> String {
    let labels: Vec<String> = cal
        .days
        .iter()
        .map(|d| d.date.get(5..).unwrap_or(&d.date).to_string())
        .collect();
    let rituals: BTreeSet<&str> = cal
        .days
        .iter()
        .flat_map(|d| d.by_ritual.iter().map(|s| s.ritual.as_str()))
        .collect();
    let series: Vec<Series> = rituals
        .iter()
        .enumerate()
        .map(|(i, r)| Series {
            name: r.to_string(),
            color: COLORS[i % COLORS.len()],
            values: cal
                .days
                .iter()
                .map(|d| {
                    let n: u64 = d
                        .by_ritual
                        .iter()
                        .filter(|s| s.ritual == *r)
                        .map(|s| s.count)
                        .sum();
                    (n > 0).then_some(n as f64)
                })
                .collect(),
        })
        .collect();
    format!(
        "<div class=\"charts\">{}</div>",
        bars("messages per day and ritual", &labels, &series)
    )
}

fn month_csv(cal: &SendCalendar, cols: &Columns) -> String {
    let mut out = String::from("date,decisions,sends");
    for (r, c) in &cols.sends {
        let _ = write!(out, ",{}", csv_field(&format!("{r}:{c}")));
    }
    for r in &cols.reasons {
        let _ = write!(out, ",{}", csv_field(&format!("skipped:{r}")));
    }
    out.push_str(",overlap_customers\n");
    for d in &cal.days {
        let _ = write!(out, "{},{},{}", d.date, d.decisions, d.sends);
        for (r, c) in &cols.sends {
            let _ = write!(out, ",{}", count_of(d, r, c));
        }
        for r in &cols.reasons {
            let _ = write!(out, ",{}", d.skipped.get(r).copied().unwrap_or(0));
        }
        let _ = writeln!(out, ",{}", d.overlap_customers);
    }
    out
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DayQuery {
    format: Option<String>,
}

/// `/calendar/<date>`.
pub(super) async fn day(
    State(p): State<Pages>,
    Path(date): Path<String>,
    Query(q): Query<DayQuery>,
) -> Response {
    let active = "/calendar";
    let app = match p.app(active) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (format, date) =
        match format_of(q.format.as_deref()).and_then(|f| Ok((f, parse_date(&date)?))) {
            Ok(v) => v,
            Err(why) => return problem(StatusCode::BAD_REQUEST, active, &why),
        };
    let decisions = match app.calendar_day(date).await {
        Ok(d) => d,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, active, &e.to_string()),
    };
    match format {
        Format::Csv => csv(&format!("decisions-{date}.csv"), day_csv(&decisions)),
        Format::Html => {
            let mut t = DayTally::default();
            tally_calendar_day(&mut t, &decisions);
            let summary = t.finish(date);
            page(shell(
                &format!("decisions on {date}"),
                active,
                "",
                &day_body(&summary, &decisions),
            ))
        }
    }
}

/// Customers two or more rituals would send to.
fn overlapping(decisions: &[PlannedDecision]) -> BTreeSet<i64> {
    let mut per: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    for d in decisions.iter().filter(|d| d.decision == "send") {
        per.entry(d.customer_id).or_default().insert(&d.ritual);
    }
    per.into_iter()
        .filter(|(_, r)| r.len() > 1)
        .map(|(c, _)| c)
        .collect()
}

fn day_body(s: &CalendarDay, decisions: &[PlannedDecision]) -> String {
    let skipped: Vec<String> = s
        .skipped
        .iter()
        .map(|(k, v)| format!("{} {v}", esc(k)))
        .collect();
    let mut out = format!(
        "<p><a href=\"/calendar?from={date}\">← calendar from this day</a></p>\
         <p id=\"summary\" data-decisions=\"{}\" data-sends=\"{}\">{} decision(s): {} send(s); skipped: {}; \
         {} customer(s) reached by two rituals. The same as <code>ritualist plan --date {date} --days 1</code>.\
         <a class=\"csv\" href=\"/calendar/{date}?format=csv\">CSV</a></p>",
        s.decisions,
        s.sends,
        s.decisions,
        s.sends,
        if skipped.is_empty() {
            "none".into()
        } else {
            skipped.join(", ")
        },
        s.overlap_customers,
        date = esc(&s.date),
    );
    let overlap = overlapping(decisions);
    out.push_str(
        "<table id=\"decisions\"><thead><tr><th>ritual</th><th>customer</th><th>decision</th><th>channel</th>\
         <th>send at (local)</th><th>occurrence</th><th>reason</th></tr></thead><tbody>",
    );
    for d in decisions.iter().take(DAY_ROWS) {
        let flagged = overlap.contains(&d.customer_id);
        let _ = write!(
            out,
            "<tr{}><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if flagged { " class=\"overlap\"" } else { "" },
            esc(&d.ritual),
            story_link(&d.customer),
            if flagged {
                " <span class=\"flag\" title=\"two rituals the same day\">⚑</span>"
            } else {
                ""
            },
            d.decision,
            esc(d.channel.as_deref().unwrap_or("-")),
            esc(d.send_at.as_deref().unwrap_or("-")),
            esc(&d.occurrence),
            esc(d
                .reason
                .as_deref()
                .map(reason_text)
                .unwrap_or_default()
                .as_str()),
        );
    }
    out.push_str("</tbody></table>");
    if decisions.len() > DAY_ROWS {
        let _ = write!(
            out,
            "<p class=\"notice\">The first {DAY_ROWS} of {} decisions; the CSV has them all.</p>",
            decisions.len()
        );
    }
    out
}

/// A reason as stored, with its kind first when it has details (`capped_by: birthday`).
fn reason_text(r: &str) -> String {
    let kind = reason_kind(Some(r));
    match r
        .strip_prefix(&kind)
        .and_then(|rest| rest.strip_prefix(':'))
    {
        Some(rest) => format!("{kind}: {rest}"),
        None => r.to_string(),
    }
}

fn day_csv(decisions: &[PlannedDecision]) -> String {
    let mut out = String::from(
        "ritual,customer,decision,channel,send_at,send_at_utc,occurrence,category,reason\n",
    );
    for d in decisions {
        let f = [
            csv_field(&d.ritual),
            csv_field(&d.customer),
            d.decision.to_string(),
            csv_field(d.channel.as_deref().unwrap_or("")),
            csv_field(d.send_at.as_deref().unwrap_or("")),
            csv_field(d.send_at_utc.as_deref().unwrap_or("")),
            csv_field(&d.occurrence),
            csv_field(&d.category),
            csv_field(d.reason.as_deref().unwrap_or("")),
        ];
        let _ = writeln!(out, "{}", f.join(","));
    }
    out
}
