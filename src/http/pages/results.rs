//! `/results`: what the rituals did. The report per ritual and month (`ritualist report --by
//! month`) as charts of sent, suppressed and opt-outs caused; the holdout lift over the whole
//! period (`ritualist report`) with its interval and plain verdict; NPS per month; the survey
//! comments (`ritualist surveys`, `?q=` searches them). Each table is also a CSV
//! (`?format=csv&table=months|lift|comments`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::svg::{COLORS, Series, bars, lines};
use super::{Format, Pages, csv, csv_field, format_of, local_time, problem, shell, story_link};
use crate::app::{App, ReportRequest, ReportRow, SurveysRequest, SurveysView};
use crate::http::respond::esc;

const ACTIVE: &str = "/results";
/// Days after an occurrence in which an order counts, as `report`'s default.
const WINDOW_DAYS: u32 = 30;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ResultsQuery {
    q: Option<String>,
    format: Option<String>,
    table: Option<String>,
    window: Option<String>,
}

/// What the page shows, fetched.
struct Results {
    months: Vec<ReportRow>,
    whole: Vec<ReportRow>,
    surveys: SurveysView,
    window: u32,
    search: Option<String>,
}

async fn fetch(
    app: &App,
    window: u32,
    search: Option<String>,
) -> Result<Results, crate::app::AppError> {
    let now = app.clock.now().as_second();
    let req = |by_month| ReportRequest {
        since: None,
        until: None,
        ritual: None,
        window_days: window,
        by_month,
    };
    let months = crate::app::report(&app.store, &app.cfg, &req(true), now).await?;
    let whole = crate::app::report(&app.store, &app.cfg, &req(false), now).await?;
    let sreq = SurveysRequest {
        ritual: None,
        search: search.clone(),
        since: None,
    };
    let surveys = crate::app::surveys(&app.store, &app.cfg, &sreq).await?;
    Ok(Results {
        months,
        whole,
        surveys,
        window,
        search,
    })
}

/// `/results`.
pub(super) async fn page(State(p): State<Pages>, Query(q): Query<ResultsQuery>) -> Response {
    let app = match p.app(ACTIVE) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let parsed = (|| {
        let format = format_of(q.format.as_deref())?;
        let window = match q.window.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => WINDOW_DAYS,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|d| *d <= 3660)
                .ok_or_else(|| format!("`{s}` is not a number of days (0 to 3660)"))?,
        };
        let table = q.table.as_deref().unwrap_or("months").to_string();
        if format == Format::Csv && !["months", "lift", "comments"].contains(&table.as_str()) {
            return Err(format!(
                "unknown table `{table}` (months, lift or comments)"
            ));
        }
        Ok::<_, String>((format, window, table))
    })();
    let (format, window, table) = match parsed {
        Ok(v) => v,
        Err(why) => return problem(StatusCode::BAD_REQUEST, ACTIVE, &why),
    };
    let search =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    let r = match fetch(app, window, search).await {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, ACTIVE, &e.to_string()),
    };
    let zone = super::shop_zone(app);
    match format {
        Format::Csv => match table.as_str() {
            "lift" => csv("lift.csv", lift_csv(&r.whole)),
            "comments" => csv("comments.csv", comments_csv(&r.surveys, &zone)),
            _ => csv("results-by-month.csv", months_csv(&r.months)),
        },
        Format::Html => super::page(shell("results", ACTIVE, &form(&r), &body(&r, &zone))),
    }
}

fn form(r: &Results) -> String {
    format!(
        "<form method=\"get\" action=\"/results\">\
         <label>Search comments <input name=\"q\" value=\"{}\" placeholder=\"any words\"></label> \
         <label>Outcome window (days) <input type=\"number\" name=\"window\" min=\"0\" max=\"3660\" value=\"{}\"></label> \
         <button type=\"submit\">Show</button></form>",
        esc(r.search.as_deref().unwrap_or("")),
        r.window
    )
}

/// `&q=…&window=…` for the CSV links, so they export what is shown.
fn keep(r: &Results) -> String {
    let mut s = format!("&amp;window={}", r.window);
    if let Some(q) = &r.search {
        let _ = write!(s, "&amp;q={}", super::enc(q));
    }
    s
}

fn body(r: &Results, zone: &jiff::tz::TimeZone) -> String {
    let mut out = String::new();
    if r.whole.is_empty() {
        out.push_str("<p class=\"notice\">Nothing in the ledger yet: the results appear once the daemon has decided something.</p>");
    }
    charts(&mut out, r);
    lift_table(&mut out, r);
    months_table(&mut out, r);
    comments(&mut out, r, zone);
    out
}

fn suppressed(row: &ReportRow) -> u64 {
    row.suppressed.values().sum()
}

/// Per ritual: sent, suppressed and opt-outs per month; then NPS per month, a line per ritual.
fn charts(out: &mut String, r: &Results) {
    let labels: Vec<String> = r
        .months
        .iter()
        .map(|m| m.period.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rituals: BTreeSet<&str> = r.months.iter().map(|m| m.ritual.as_str()).collect();
    out.push_str("<h2 id=\"over-time\">Per ritual over time</h2><div class=\"charts\">");
    let value = |ritual: &str, f: &dyn Fn(&ReportRow) -> u64| -> Vec<Option<f64>> {
        labels
            .iter()
            .map(|l| {
                r.months
                    .iter()
                    .find(|m| m.ritual == ritual && &m.period == l)
                    .map(|m| f(m) as f64)
            })
            .collect()
    };
    for ritual in &rituals {
        let series = vec![
            Series {
                name: "sent".into(),
                color: COLORS[0],
                values: value(ritual, &|m| m.sent),
            },
            Series {
                name: "suppressed".into(),
                color: COLORS[1],
                values: value(ritual, &suppressed),
            },
            Series {
                name: "opt-outs".into(),
                color: COLORS[2],
                values: value(ritual, &|m| m.opt_outs),
            },
        ];
        out.push_str(&bars(ritual, &labels, &series));
    }
    let nps: Vec<Series> = rituals
        .iter()
        .filter(|rt| {
            r.months
                .iter()
                .any(|m| &m.ritual == *rt && m.survey.nps.is_some())
        })
        .enumerate()
        .map(|(i, rt)| Series {
            name: rt.to_string(),
            color: COLORS[i % COLORS.len()],
            values: labels
                .iter()
                .map(|l| {
                    r.months
                        .iter()
                        .find(|m| &m.ritual == rt && &m.period == l)
                        .and_then(|m| m.survey.nps)
                })
                .collect(),
        })
        .collect();
    if !nps.is_empty() {
        out.push_str(&lines("NPS per month", &labels, &nps, -100.0, 100.0));
    }
    out.push_str("</div>");
}

fn pts(v: f64) -> String {
    format!("{:+.1}", v * 100.0)
}

fn lift_table(out: &mut String, r: &Results) {
    let _ = write!(
        out,
        "<h2 id=\"lift\">Holdout lift (orders within {} days)</h2>\
         <a class=\"csv\" href=\"/results?format=csv&amp;table=lift{}\">CSV</a>\
         <table id=\"lift-table\"><thead><tr><th>ritual</th><th>recipients</th><th>holdout</th>\
         <th>repeat purchase (recipients / holdout)</th><th>difference, 95% interval</th><th>verdict</th>\
         <th>revenue per customer, difference and 95% interval</th></tr></thead><tbody>",
        r.window,
        keep(r)
    );
    for row in &r.whole {
        let o = &row.outcome;
        let pct = |v: Option<f64>| v.map_or("-".into(), |p| format!("{p:.1}%"));
        let (diff, verdict) = match &o.repeat_lift {
            Some(l) => (
                format!(
                    "{} pts ({} to {})",
                    pts(l.difference),
                    pts(l.low),
                    pts(l.high)
                ),
                esc(&l.verdict),
            ),
            None if o.holdout.n == 0 => ("-".into(), "no holdout measured yet".into()),
            None => ("-".into(), "no recipients measured yet".into()),
        };
        let revenue: Vec<String> = o
            .revenue_lift
            .iter()
            .map(|(c, m)| {
                let f = |v: f64| crate::domain::money::format_major(c, v, true);
                format!("{} ({} to {})", f(m.difference), f(m.low), f(m.high))
            })
            .collect();
        let _ = write!(
            out,
            "<tr data-ritual=\"{rt}\"><td>{rt}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td>{} / {}</td><td>{diff}</td><td class=\"verdict\">{verdict}</td><td>{}</td></tr>",
            o.recipients.n,
            o.holdout.n,
            pct(o.recipients.repeat_rate_pct),
            pct(o.holdout.repeat_rate_pct),
            if revenue.is_empty() {
                "-".into()
            } else {
                esc(&revenue.join("; "))
            },
            rt = esc(&row.ritual),
        );
    }
    out.push_str("</tbody></table>");
}

fn months_table(out: &mut String, r: &Results) {
    let _ = write!(
        out,
        "<h2 id=\"by-month\">By month</h2><a class=\"csv\" href=\"/results?format=csv&amp;table=months{}\">CSV</a>\
         <table id=\"months\"><thead><tr><th>ritual</th><th>month</th><th>due</th><th>sent</th><th>failed</th>\
         <th>suppressed</th><th>opt-outs caused</th><th>answers</th><th>NPS</th></tr></thead><tbody>",
        keep(r)
    );
    for m in &r.months {
        let sup: Vec<String> = m
            .suppressed
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = write!(
            out,
            "<tr data-ritual=\"{rt}\" data-period=\"{p}\"><td>{rt}</td><td>{p}</td><td class=\"num\">{}</td>\
             <td class=\"num sent\">{}</td><td class=\"num\">{}</td><td class=\"num suppressed\" title=\"{}\">{}</td>\
             <td class=\"num opt-outs\">{}</td><td class=\"num\">{}</td><td class=\"num nps\">{}</td></tr>",
            m.due,
            m.sent,
            m.failed,
            esc(&sup.join(", ")),
            suppressed(m),
            m.opt_outs,
            m.survey.responses,
            m.survey.nps.map_or("-".into(), |n| format!("{n:.1}")),
            rt = esc(&m.ritual),
            p = esc(&m.period),
        );
    }
    out.push_str("</tbody></table>");
}

fn comments(out: &mut String, r: &Results, zone: &jiff::tz::TimeZone) {
    let _ = write!(
        out,
        "<h2 id=\"comments\">Survey comments{}</h2><a class=\"csv\" href=\"/results?format=csv&amp;table=comments{}\">CSV</a>\
         <table id=\"comment-list\"><thead><tr><th>answered</th><th>ritual</th><th>customer</th><th>score</th>\
         <th>comment</th></tr></thead><tbody>",
        r.search
            .as_deref()
            .map(|q| format!(" holding “{}”", esc(q)))
            .unwrap_or_default(),
        keep(r)
    );
    for a in &r.surveys.answers {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            local_time(Some(a.first_at), zone),
            esc(&a.ritual),
            story_link(&a.customer),
            a.score,
            esc(a.comment.as_deref().unwrap_or("")),
        );
    }
    if r.surveys.answers.is_empty() {
        out.push_str("<tr><td colspan=\"5\" class=\"muted\">no answer</td></tr>");
    }
    out.push_str("</tbody></table>");
}

fn months_csv(rows: &[ReportRow]) -> String {
    let mut out =
        String::from("ritual,month,due,sent,failed,suppressed,opt_outs,survey_responses,nps\n");
    for m in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            csv_field(&m.ritual),
            m.period,
            m.due,
            m.sent,
            m.failed,
            suppressed(m),
            m.opt_outs,
            m.survey.responses,
            m.survey.nps.map_or(String::new(), |n| format!("{n:.1}"))
        );
    }
    out
}

fn lift_csv(rows: &[ReportRow]) -> String {
    let mut out = String::from(
        "ritual,recipients_n,recipients_repeat,holdout_n,holdout_repeat,difference_pts,low_pts,high_pts,verdict\n",
    );
    for row in rows {
        let o = &row.outcome;
        let (d, l, h, v) = match &o.repeat_lift {
            Some(x) => (
                pts(x.difference),
                pts(x.low),
                pts(x.high),
                x.verdict.clone(),
            ),
            None => Default::default(),
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{d},{l},{h},{}",
            csv_field(&row.ritual),
            o.recipients.n,
            o.recipients.repeat_customers,
            o.holdout.n,
            o.holdout.repeat_customers,
            csv_field(&v)
        );
    }
    out
}

fn comments_csv(v: &SurveysView, zone: &jiff::tz::TimeZone) -> String {
    let mut out = String::from("answered,ritual,customer,score,comment\n");
    for a in &v.answers {
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            local_time(Some(a.first_at), zone),
            csv_field(&a.ritual),
            csv_field(&a.customer),
            a.score,
            csv_field(a.comment.as_deref().unwrap_or(""))
        );
    }
    out
}
