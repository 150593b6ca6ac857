//! `ritualist report`: per ritual (and month) the ledger's counts, survey answers and NPS, and
//! repeat purchases and revenue of recipients versus the holdout, as a table, JSON or CSV.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::app::{self, AppError, DeliverabilityRow, ReportRequest, ReportRow};
use crate::cli::output::{csv_field, money_map, opt, to_json};
use crate::cli::{ReportArgs, ReportBy, ReportFormat};
use crate::config::Config;
use crate::store::Store;

pub async fn run(config: &Path, args: ReportArgs) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let store = Store::open(&cfg.database_url).await?;
    if let Some(r) = &args.ritual {
        super::known_ritual(&cfg, &store, r).await?;
    }
    let req = ReportRequest {
        since: args.since,
        until: args.until,
        ritual: args.ritual,
        window_days: args.window_days,
        by_month: args.by == ReportBy::Month,
    };
    let rows = app::report(&store, &cfg, &req, crate::clock::now().as_second()).await?;
    let deliverability = app::deliverability(&store, &cfg, &req).await?;
    let mut o = std::io::stdout().lock();
    match args.format {
        ReportFormat::Json => print_json(&mut o, &req, &rows, &deliverability)?,
        ReportFormat::Csv => print_csv(&mut o, &rows),
        ReportFormat::Table => {
            print_table(&mut o, &rows);
            print_deliverability(&mut o, &deliverability);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json(
    o: &mut impl Write,
    req: &ReportRequest,
    rows: &[ReportRow],
    deliverability: &[DeliverabilityRow],
) -> Result<(), AppError> {
    let v = serde_json::json!({
        "since": req.since.map(|d| d.to_string()),
        "until": req.until.map(|d| d.to_string()),
        "ritual": req.ritual,
        "window_days": req.window_days,
        "money": "`*_minor` fields: minor units of each order's currency, as stored; the others: major units (RON 43.06 is 43.06)",
        "rows": rows,
        "deliverability": deliverability,
    });
    let _ = writeln!(o, "{}", to_json(&v)?);
    Ok(())
}

const CSV_HEADER: &str = "ritual,period,due,sent,failed,in_flight,cancelled,suppressed,opt_outs,\
     survey_responses,promoters,passives,detractors,nps,window_days,\
     recipients_n,recipients_repeat_customers,recipients_repeat_rate_pct,recipients_revenue_per_customer,\
     holdout_n,holdout_repeat_customers,holdout_repeat_rate_pct,holdout_revenue_per_customer,\
     repeat_rate_diff_pts,revenue_per_customer_diff,window_open";

fn print_csv(o: &mut impl Write, rows: &[ReportRow]) {
    let _ = writeln!(o, "{CSV_HEADER}");
    for r in rows {
        let _ = writeln!(o, "{}", csv_row(r).join(","));
    }
}

/// A number with one decimal, empty when absent.
fn csv_num(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x:.1}"))
}

/// `RON:43.06 EUR:10.00`: major units, from the minor amounts.
fn csv_money(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .map(|(c, v)| crate::domain::money::format_major(c, *v, false).replacen(' ', ":", 1))
        .collect::<Vec<_>>()
        .join(" ")
}

fn csv_row(r: &ReportRow) -> [String; 26] {
    let sup = r
        .suppressed
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";");
    let (rec, hold) = (&r.outcome.recipients, &r.outcome.holdout);
    [
        csv_field(&r.ritual),
        r.period.clone(),
        r.due.to_string(),
        r.sent.to_string(),
        r.failed.to_string(),
        r.in_flight.to_string(),
        r.cancelled.to_string(),
        csv_field(&sup),
        r.opt_outs.to_string(),
        r.survey.responses.to_string(),
        r.survey.promoters.to_string(),
        r.survey.passives.to_string(),
        r.survey.detractors.to_string(),
        csv_num(r.survey.nps),
        r.outcome.window_days.to_string(),
        rec.n.to_string(),
        rec.repeat_customers.to_string(),
        csv_num(rec.repeat_rate_pct),
        csv_money(&rec.revenue_per_customer_minor),
        hold.n.to_string(),
        hold.repeat_customers.to_string(),
        csv_num(hold.repeat_rate_pct),
        csv_money(&hold.revenue_per_customer_minor),
        csv_num(r.outcome.repeat_rate_diff_pts),
        csv_money(&r.outcome.revenue_per_customer_diff_minor),
        r.outcome.window_open.to_string(),
    ]
}

fn print_table(o: &mut impl Write, rows: &[ReportRow]) {
    if rows.is_empty() {
        let _ = writeln!(o, "nothing in the ledger for this period");
        return;
    }
    for r in rows {
        print_counts(o, r);
        print_outcome(o, r);
    }
}

/// A row's title, the ledger's counts, opt-outs and the survey.
fn print_counts(o: &mut impl Write, r: &ReportRow) {
    let sup = if r.suppressed.is_empty() {
        "none".to_string()
    } else {
        r.suppressed
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(o, "{} ({})", r.ritual, r.period);
    let _ = writeln!(
        o,
        "  due {}  sent {}  failed {}  in flight {}  cancelled {}  suppressed: {sup}",
        r.due, r.sent, r.failed, r.in_flight, r.cancelled
    );
    let _ = writeln!(
        o,
        "  opt-outs caused {}  survey answers {}  NPS {} ({} promoters, {} passives, {} detractors)",
        r.opt_outs,
        r.survey.responses,
        opt(r.survey.nps, "", false),
        r.survey.promoters,
        r.survey.passives,
        r.survey.detractors
    );
}

/// A row's outcome: recipients versus the holdout within the window.
fn print_outcome(o: &mut impl Write, r: &ReportRow) {
    let (rec, hold) = (&r.outcome.recipients, &r.outcome.holdout);
    let _ = writeln!(
        o,
        "  within {} days        {:>16} {:>16} {:>16}",
        r.outcome.window_days, "recipients", "holdout", "difference"
    );
    let _ = writeln!(o, "  customers (n)         {:>16} {:>16}", rec.n, hold.n);
    let _ = writeln!(
        o,
        "  repeat purchase       {:>16} {:>16} {:>16}",
        opt(rec.repeat_rate_pct, "%", false),
        opt(hold.repeat_rate_pct, "%", false),
        opt(r.outcome.repeat_rate_diff_pts, " pts", true)
    );
    let _ = writeln!(
        o,
        "  revenue per customer  {:>16} {:>16} {:>16}",
        money_map(&rec.revenue_per_customer_minor, false),
        money_map(&hold.revenue_per_customer_minor, false),
        money_map(&r.outcome.revenue_per_customer_diff_minor, true)
    );
    if let Some(l) = &r.outcome.repeat_lift {
        let _ = writeln!(
            o,
            "  repeat purchase lift  {:+.1} pts, 95% interval {:+.1} to {:+.1}: {}",
            l.difference * 100.0,
            l.low * 100.0,
            l.high * 100.0,
            l.verdict
        );
    }
    for (c, m) in &r.outcome.revenue_lift {
        let f = |v: f64| crate::domain::money::format_major(c, v, true);
        let _ = writeln!(
            o,
            "  revenue lift          {}, 95% interval {} to {}",
            f(m.difference),
            f(m.low),
            f(m.high)
        );
    }
    if r.outcome.window_open > 0 {
        let _ = writeln!(
            o,
            "  ({} occurrence(s) still inside their {}-day window: not measured yet)",
            r.outcome.window_open, r.outcome.window_days
        );
    }
}

/// Deliverability per ritual and channel: of the messages sent in the period, the share a
/// later report says were delivered, bounced, marked as spam or not delivered (#27).
fn print_deliverability(o: &mut impl Write, rows: &[DeliverabilityRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\ndeliverability (of the messages sent in the period; later reports)\n  {:<20} {:<7} {:>8} {:>14} {:>14} {:>14} {:>14} {:>14}",
        "ritual",
        "channel",
        "sent",
        "delivered",
        "hard bounces",
        "soft bounces",
        "complaints",
        "undelivered"
    );
    let cell = |n: i64, p: Option<f64>| match p {
        Some(p) if n > 0 => format!("{n} {p:.1}%"),
        _ => n.to_string(),
    };
    for r in rows {
        let c = &r.counts;
        let channel = c.channel.map_or("-", |ch| ch.as_str());
        let _ = writeln!(
            o,
            "  {:<20} {:<7} {:>8} {:>14} {:>14} {:>14} {:>14} {:>14}",
            c.ritual,
            channel,
            c.sent,
            cell(c.delivered, r.delivered_pct),
            cell(c.hard_bounced + c.dead_number, r.hard_bounce_pct),
            cell(c.soft_bounced, r.soft_bounce_pct),
            cell(c.complained, r.complaint_pct),
            cell(c.undelivered + c.dead_number, r.undelivered_pct),
        );
    }
}
