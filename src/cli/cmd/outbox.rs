//! `ritualist outbox [retry|cancel|resume]`: the outbox's counts and its failed, in-doubt and
//! paused parts (as a table or JSON); or a change to it, exit 1 when a message was left alone
//! (or a resumed channel was not paused).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::app::{self, AppError, OutboxChange, OutboxView};
use crate::cli::output::{out, out_json, to_json};
use crate::cli::{Format, OutboxAction, OutboxArgs};
use crate::config::Config;
use crate::store::{RowSelection, Store};

pub async fn run(config: &Path, args: OutboxArgs) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let store = Store::open(&cfg.database_url).await?;
    let now = crate::clock::now().as_second();
    let (verb, change) = match args.action {
        None => {
            print_view(&app::outbox_view(&store).await?, args.format)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(OutboxAction::Resume { channel }) => {
            let channel = channel.as_str();
            return Ok(if app::outbox_resume(&store, channel, now).await? {
                out(&format!(
                    "{channel}: pause lifted; waiting messages go out on the next dispatch"
                ));
                ExitCode::SUCCESS
            } else {
                eprintln!("{channel} was not paused");
                ExitCode::from(1)
            });
        }
        Some(OutboxAction::Retry {
            ids,
            all_failed,
            all_in_doubt,
        }) => {
            let which = selection(ids, all_failed, false, all_in_doubt);
            ("retried", app::outbox_retry(&store, &which, now).await?)
        }
        Some(OutboxAction::Cancel {
            ids,
            all_failed,
            all_pending,
            all_in_doubt,
        }) => {
            let which = selection(ids, all_failed, all_pending, all_in_doubt);
            ("cancelled", app::outbox_cancel(&store, &which, now).await?)
        }
    };
    match args.format {
        Format::Json => out_json(&change)?,
        Format::Table => print_change(verb, &change),
    }
    Ok(super::findings(!change.skipped.is_empty()))
}

/// The messages a `retry` or `cancel` names: the first `--all-…` flag given, else the ids.
fn selection(ids: Vec<i64>, failed: bool, pending: bool, in_doubt: bool) -> RowSelection {
    if failed {
        app::all_failed()
    } else if pending {
        app::all_pending()
    } else if in_doubt {
        app::all_in_doubt()
    } else {
        RowSelection::Ids(ids)
    }
}

fn print_change(verb: &str, change: &OutboxChange) {
    for (id, why) in &change.skipped {
        eprintln!("message {id} left alone: {why}");
    }
    let ids: Vec<String> = change.changed.iter().map(i64::to_string).collect();
    out(&format!(
        "{verb} {} message(s){}{}",
        ids.len(),
        if ids.is_empty() { "" } else { ": " },
        ids.join(" ")
    ));
}

fn print_view(v: &OutboxView, format: Format) -> Result<(), AppError> {
    let mut stdout = std::io::stdout().lock();
    if let Format::Json = format {
        let _ = writeln!(stdout, "{}", to_json(v)?);
        return Ok(());
    }
    print_counts(&mut stdout, v);
    for p in &v.paused {
        let until = jiff::Timestamp::from_second(p.until)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            stdout,
            "\nPAUSED {} until {until} (strike {}): {}\n  fix the configuration, then `ritualist outbox resume {}`",
            p.channel, p.strikes, p.reason, p.channel
        );
    }
    print_failed(&mut stdout, v);
    print_in_doubt(&mut stdout, v);
    Ok(())
}

/// Messages per status (rows) and channel (columns), with totals.
fn print_counts(stdout: &mut impl Write, v: &OutboxView) {
    let channels = v.channels();
    let mut head = format!("{:<12}", "status");
    for c in &channels {
        head.push_str(&format!(" {c:>8}"));
    }
    let _ = writeln!(stdout, "{head} {:>8}", "total");
    for (status, counts) in v.by_status() {
        let mut line = format!("{status:<12}");
        for c in &channels {
            line.push_str(&format!(" {:>8}", counts.get(c).copied().unwrap_or(0)));
        }
        let _ = writeln!(stdout, "{line} {:>8}", counts.values().sum::<i64>());
    }
    let _ = writeln!(stdout, "{:<12} {:>8}", "total", v.total);
}

fn print_failed(stdout: &mut impl Write, v: &OutboxView) {
    if v.failed.is_empty() {
        return;
    }
    let _ = writeln!(
        stdout,
        "\nfailed (newest first, at most {}; `ritualist outbox retry ID…` or `cancel ID…`):",
        app::FAILED_LISTED
    );
    let _ = writeln!(
        stdout,
        "{:>8}  {:<18} {:<16} {:<6} {:>8}  last error",
        "id", "ritual", "customer", "chan", "attempts"
    );
    for f in &v.failed {
        let _ = writeln!(
            stdout,
            "{:>8}  {:<18} {:<16} {:<6} {:>8}  {}",
            f.id,
            f.ritual,
            f.customer.as_deref().unwrap_or("-"),
            f.channel,
            f.attempts,
            f.last_error.as_deref().unwrap_or("")
        );
    }
}

fn print_in_doubt(stdout: &mut impl Write, v: &OutboxView) {
    if v.in_doubt.is_empty() {
        return;
    }
    let _ = writeln!(
        stdout,
        "\nin doubt (handed over, the answer lost; newest first, at most {}): check whether they arrived, then\n`ritualist outbox retry ID…|--all-in-doubt` (resend, same Message-ID) or `cancel ID…|--all-in-doubt` (keep unsent):",
        app::FAILED_LISTED
    );
    let _ = writeln!(
        stdout,
        "{:>8}  {:<18} {:<16} {:<6} {:<20}  last reply",
        "id", "ritual", "customer", "chan", "since"
    );
    for f in &v.in_doubt {
        let since = jiff::Timestamp::from_second(f.updated_at)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            stdout,
            "{:>8}  {:<18} {:<16} {:<6} {:<20}  {}",
            f.id,
            f.ritual,
            f.customer.as_deref().unwrap_or("-"),
            f.channel,
            since,
            f.last_error.as_deref().unwrap_or("")
        );
    }
}
