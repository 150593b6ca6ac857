//! `ritualist history CUSTOMER`: one customer's story — profile, consent and its history,
//! every message, orders, survey answers and the plan for the next days — as readable
//! sections (times in the customer's zone) or JSON (Unix seconds). Exit 1 when no customer
//! matches.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::app::{App, AppError, CustomerHistory, HISTORY_PLAN_DAYS, HistoryRequest};
use crate::cli::Format;
use crate::cli::output::{money_map, out_json};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// External id, email or phone.
    pub customer: String,
    /// Also print each message as it was stored (the email's RFC 5322 text, the SMS).
    #[arg(long)]
    pub messages: bool,
    /// Days ahead to plan, from the customer's today.
    #[arg(long, default_value_t = HISTORY_PLAN_DAYS, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn run(config: &Path, args: HistoryArgs) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let app = App::open(cfg).await?;
    let req = HistoryRequest {
        customer: args.customer.clone(),
        messages: args.messages,
        plan_days: args.days,
    };
    let Some(h) = app.history(&req, crate::clock::now()).await? else {
        eprintln!(
            "no customer `{}` (external id, email or phone)",
            args.customer
        );
        return Ok(ExitCode::from(1));
    };
    match args.format {
        Format::Json => out_json(&h)?,
        Format::Table => print_table(&mut std::io::stdout().lock(), &h),
    }
    Ok(ExitCode::SUCCESS)
}

/// `ts` in `zone`, to the minute; `-` when absent.
fn local(ts: Option<i64>, zone: &jiff::tz::TimeZone) -> String {
    ts.and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn or_dash(s: Option<&str>) -> &str {
    s.filter(|s| !s.is_empty()).unwrap_or("-")
}

fn print_table(o: &mut impl Write, h: &CustomerHistory) {
    let zone = jiff::tz::TimeZone::get(&h.profile.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    print_profile(o, h);
    print_consent(o, h, &zone);
    print_messages(o, h, &zone);
    print_orders_and_surveys(o, h, &zone);
    print_plan(o, h);
}

fn print_profile(o: &mut impl Write, h: &CustomerHistory) {
    let p = &h.profile;
    let name = [p.first_name.as_deref(), p.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let _ = writeln!(o, "customer {} (#{}) {}", p.external_id, p.id, name);
    let _ = writeln!(
        o,
        "  email {}  phone {}  locale {}  time zone {}",
        or_dash(p.email.as_deref()),
        or_dash(p.phone.as_deref()),
        p.locale,
        p.time_zone
    );
    let _ = writeln!(
        o,
        "  birthday {}  signed up {}  prefers {}",
        or_dash(p.birthday.as_deref()),
        or_dash(p.signup_date.as_deref()),
        or_dash(p.preferred_channel.as_deref())
    );
    let _ = writeln!(
        o,
        "  custom dates {}  attributes {}",
        p.custom_dates, p.attributes
    );
}

fn print_consent(o: &mut impl Write, h: &CustomerHistory, zone: &jiff::tz::TimeZone) {
    let _ = writeln!(o, "\nconsent");
    for c in &h.channels {
        let state = match &c.by {
            Some(scope) => format!("opted out ({scope})"),
            None if c.contact.is_none() => "no contact".into(),
            None => "may receive".into(),
        };
        let _ = writeln!(
            o,
            "  {:<6} {:<32} {state}",
            c.channel,
            or_dash(c.contact.as_deref())
        );
    }
    let narrower: Vec<&str> = h
        .consents
        .iter()
        .filter(|(s, out)| **out && !s.starts_with("channel:") && *s != "all")
        .map(|(s, _)| s.as_str())
        .collect();
    if !narrower.is_empty() {
        let _ = writeln!(o, "  also opted out of: {}", narrower.join(", "));
    }
    for e in &h.consent_events {
        let _ = writeln!(
            o,
            "  {}  opt-{:<3} {:<28} via {}",
            local(Some(e.at), zone),
            e.change,
            e.scope,
            e.source
        );
    }
}

fn print_messages(o: &mut impl Write, h: &CustomerHistory, zone: &jiff::tz::TimeZone) {
    let _ = writeln!(o, "\nmessages ({})", h.messages.len());
    for m in &h.messages {
        let why = m.reason.as_deref().or(m.last_error.as_deref());
        let _ = writeln!(
            o,
            "  #{} {} {} {} {}  attempts {}  due {}  sent {}{}",
            m.id,
            m.ritual,
            m.occurrence,
            m.channel,
            m.status,
            m.attempts,
            local(Some(m.due_at), zone),
            local(m.sent_at, zone),
            why.map(|w| format!("  ({w})")).unwrap_or_default()
        );
        if let Some(s) = &m.subject {
            let _ = writeln!(o, "      subject: {s}");
        }
        if let Some(p) = &m.payload {
            let _ = writeln!(o, "      --- stored message ---");
            for line in p.lines() {
                let _ = writeln!(o, "      {line}");
            }
        }
    }
}

fn print_orders_and_surveys(o: &mut impl Write, h: &CustomerHistory, zone: &jiff::tz::TimeZone) {
    let totals = h
        .orders
        .total_minor
        .iter()
        .map(|(c, v)| (c.clone(), *v as f64))
        .collect();
    let last = h
        .orders
        .last
        .as_ref()
        .map(|l| format!("{} on {}", l.external_id, local(Some(l.ordered_at), zone)));
    let _ = writeln!(
        o,
        "\norders {}  total {}  last {}",
        h.orders.count,
        money_map(&totals, false),
        or_dash(last.as_deref())
    );
    let _ = writeln!(o, "\nsurvey answers ({})", h.surveys.len());
    for s in &h.surveys {
        let _ = writeln!(
            o,
            "  {}  {} {}  score {}  {}",
            local(Some(s.first_at), zone),
            s.ritual,
            s.occurrence,
            s.score,
            or_dash(s.comment.as_deref())
        );
    }
}

fn print_plan(o: &mut impl Write, h: &CustomerHistory) {
    let _ = writeln!(
        o,
        "\nplanned from {} for {} day(s): {}",
        h.plan.from,
        h.plan.days,
        h.plan.decisions.len()
    );
    for d in &h.plan.decisions {
        let what = match d.decision {
            "send" => format!(
                "send by {} at {}",
                or_dash(d.channel.as_deref()),
                or_dash(d.send_at.as_deref())
            ),
            _ => format!("skip: {}", or_dash(d.reason.as_deref())),
        };
        let _ = writeln!(o, "  {} {}  {what}", d.ritual, d.occurrence);
    }
}
