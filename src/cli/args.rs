//! The command line's grammar: the clap `Parser`/`Subcommand`/`Args` types, the value parsers
//! for dates and instants, and the limits they enforce. Parsing only: what each command does
//! lives in [`super::cmd`].

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::app;
use crate::domain::Channel;

#[derive(Debug, Parser)]
#[command(
    name = "ritualist",
    version,
    about = "Customer-loyalty rituals by email and SMS, once per occurrence"
)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        default_value = "config/ritualist.yaml",
        env = "RITUALIST_CONFIG"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: a tick and dispatch every minute until SIGINT/SIGTERM.
    Run {
        /// One tick and dispatch, then exit.
        #[arg(long)]
        once: bool,
        /// Pretend the current time is this instant (RFC 3339), with --once: for trials and backfills.
        #[arg(long, requires = "once", value_parser = arg_instant)]
        now: Option<jiff::Timestamp>,
    },
    /// Validate the config, rituals and templates; render every template against samples.
    Check {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Import customers or orders from CSV (`,` or `;`; UTF-8, Windows-1251 or -1250).
    Import(ImportArgs),
    /// Open each configured connection once (database, SMTP relay, SMS gateways) and report
    /// reachable, TLS verified, authenticated; sends nothing. Exit 1 when one fails.
    Doctor,
    /// Create or update the database schema (also done automatically on first use). On SQLite
    /// it takes the daemon lock first: refused (exit 3) while `run` holds the database.
    Migrate,
    /// Show the exact message a customer would get for a ritual on a date; or, with --serve,
    /// a local web page with every ritual × locale rendered for a sample customer.
    Preview(PreviewArgs),
    /// Record an opt-out (or with --undo an opt-in) for a customer.
    Optout(OptoutArgs),
    /// Erase a customer's personal data (contact, names, dates, attributes, message bodies),
    /// keeping the anonymous ledger; they stay opted out of everything, remembered only as
    /// hashes of their email, phone and external id, so a re-import never messages them.
    /// Exit code 1 when no customer matches.
    Forget {
        /// External id, email or phone.
        customer: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Every decision the daemon will take, written nowhere: who gets what and when, and who
    /// is skipped and why.
    Plan(PlanArgs),
    /// Per ritual: due, sent, failed, suppressed by reason, opt-outs caused, survey answers and
    /// NPS; repeat purchases and revenue within N days, recipients versus the holdout group.
    Report(ReportArgs),
    /// One customer's story: profile, consent and its history, every message, orders, survey
    /// answers, and what is planned for them next and why. Exit code 1 when no customer matches.
    History(super::cmd::history::HistoryArgs),
    /// Survey answers with their comments, newest first (`--search` a comment), and NPS per
    /// ritual.
    Surveys(super::cmd::surveys::SurveysArgs),
    /// Ledger rows per status.
    Status,
    /// The outbox: messages per status and channel, the failed and the in-doubt ones with
    /// their last reply (no subcommand); `retry` failed or in-doubt messages or `cancel`
    /// messages that must never go out.
    Outbox(OutboxArgs),
    /// List a country calendar's holidays for a year (check floating dates before a campaign).
    Calendar(CalendarArgs),
    /// Read one bounce mail (DSN, ARF complaint, auto-reply) on stdin and record it: for a
    /// Postfix `pipe` transport. Exit 0 once recorded (duplicates and unmatched ones too),
    /// 75 (EX_TEMPFAIL: the MTA retries) when the database cannot be reached or written,
    /// 65 for an empty or oversized (> 10 MB) message.
    Bounce(super::cmd::bounce::BounceArgs),
    /// The bounce mails and reports kept for review (those that matched no message or could
    /// not be classified), newest first; --all lists every report.
    Bounces(super::cmd::bounces::BouncesArgs),
}

// The argument structs below carry no doc comment on purpose: the variant's doc comment above
// is the subcommand's help, and a struct's would replace it.

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(value_enum)]
    pub kind: ImportWhat,
    pub file: PathBuf,
    /// utf-8, windows-1251 or windows-1250 (default: detect).
    #[arg(long)]
    pub encoding: Option<String>,
    /// The field separator (default: detect).
    #[arg(long)]
    pub delimiter: Option<char>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The ritual (required without --serve).
    #[arg(required_unless_present = "serve")]
    pub ritual: Option<String>,
    /// External id, email or phone (required without --serve).
    #[arg(long, required_unless_present = "serve")]
    pub customer: Option<String>,
    /// The local date (YYYY-MM-DD); default: the ritual's next occasion for this customer.
    #[arg(long, value_parser = arg_date)]
    pub date: Option<jiff::civil::Date>,
    #[arg(long)]
    pub channel: Option<Channel>,
    /// Print only the email, exactly as it goes on the wire (RFC 5322 bytes: MIME, CRLF).
    #[arg(long)]
    pub raw: bool,
    /// Render in this locale instead of the customer's (e.g. ro, ru, en).
    #[arg(long)]
    pub locale: Option<String>,
    /// Also write the email's HTML to this file (open it in a browser).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Send it as a test to this email address or phone number through the configured
    /// transport: subject marked [TEST], never recorded, never counted for the customer.
    #[arg(long, value_name = "ADDRESS_OR_PHONE")]
    pub send_to: Option<String>,
    /// Serve the preview page on http://127.0.0.1:PORT/ until Ctrl-C; it re-renders when
    /// a ritual or template file changes.
    #[arg(long, conflicts_with_all = ["ritual", "customer", "date", "channel", "raw", "locale", "html", "send_to"])]
    pub serve: bool,
    /// The port for --serve [default: 8025].
    #[arg(long)]
    pub port: Option<u16>,
    /// The address for --serve [default: 127.0.0.1]. Any other than loopback needs
    /// RITUALIST_PREVIEW_KEY, or RITUALIST_PREVIEW_USER and RITUALIST_PREVIEW_PASSWORD.
    #[arg(long, value_name = "IP")]
    pub bind: Option<String>,
}

#[derive(Debug, Args)]
pub struct OptoutArgs {
    /// External id, email or phone.
    pub customer: String,
    /// all, channel:email, channel:sms, ritual:<name> or category:<name>.
    #[arg(long, default_value = "all")]
    pub scope: String,
    #[arg(long)]
    pub undo: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The first local date (default: today in UTC).
    #[arg(long, value_parser = arg_date)]
    pub date: Option<jiff::civil::Date>,
    /// How many local days from --date.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=MAX_DAYS))]
    pub days: u32,
    /// Only this ritual.
    #[arg(long)]
    pub ritual: Option<String>,
    /// Only this customer (external id, email or phone).
    #[arg(long)]
    pub customer: Option<String>,
    /// table, json (one object per line) or csv; each is written as decisions are made.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The first local date (in defaults.time_zone) of occurrences counted (default: all).
    #[arg(long, value_parser = arg_date)]
    pub since: Option<jiff::civil::Date>,
    /// The last local date, inclusive (default: up to now).
    #[arg(long, value_parser = arg_date)]
    pub until: Option<jiff::civil::Date>,
    /// Only this ritual.
    #[arg(long)]
    pub ritual: Option<String>,
    /// Days after the occurrence in which an order counts as a repeat purchase.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=MAX_DAYS))]
    pub window_days: u32,
    /// `ritual`: one row per ritual for the period; `month`: one per ritual and month.
    #[arg(long, value_enum, default_value = "ritual")]
    pub by: ReportBy,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub action: Option<OutboxAction>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct CalendarArgs {
    /// Calendar id: ro, ru, en-US, en-GB (a file in config/calendars/).
    pub id: String,
    /// The year (default: this year).
    #[arg(long, value_parser = clap::value_parser!(i16).range(*app::SUPPORTED_YEARS.start() as i64..=*app::SUPPORTED_YEARS.end() as i64))]
    pub year: Option<i16>,
    /// Holiday names in this language (default: en).
    #[arg(long, default_value = "en")]
    pub locale: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Put failed or in-doubt messages back in the queue: pending, attempts reset, due now.
    /// The stored message is sent as it was (same Message-ID); consent is checked again.
    #[command(group(ArgGroup::new("which").required(true).args(["ids", "all_failed", "all_in_doubt"])))]
    Retry {
        /// Message ids (the `id` column of `ritualist outbox`).
        ids: Vec<i64>,
        /// Every failed message.
        #[arg(long)]
        all_failed: bool,
        /// Every in-doubt message (check first that they did not arrive: a retry may duplicate).
        #[arg(long)]
        all_in_doubt: bool,
    },
    /// Cancel messages that have not gone out (pending, waiting for a retry, failed, or in
    /// doubt): they become `cancelled` and are never sent.
    #[command(group(ArgGroup::new("which").required(true).args(["ids", "all_failed", "all_pending", "all_in_doubt"])))]
    Cancel {
        /// Message ids.
        ids: Vec<i64>,
        /// Every failed message.
        #[arg(long)]
        all_failed: bool,
        /// Every message waiting to be sent (pending or waiting for a retry).
        #[arg(long)]
        all_pending: bool,
        /// Every in-doubt message (never resent).
        #[arg(long)]
        all_in_doubt: bool,
    },
    /// Lift a channel's pause (after a provider refused ritualist itself and the configuration
    /// was fixed): its waiting messages go out on the next dispatch.
    Resume {
        /// email or sms.
        channel: Channel,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportBy {
    Ritual,
    Month,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportWhat {
    Customers,
    Orders,
}

/// The exit code of a `run` or `migrate` refused because another one holds the SQLite database.
pub const ALREADY_RUNNING: u8 = 3;

/// Where `preview --serve` listens without `--port`.
pub const DEFAULT_PREVIEW_PORT: u16 = 8025;

/// The most days `plan --days` and `report --window-days` take (ten years).
const MAX_DAYS: i64 = 3_660;

/// A date argument (`--date`, `--since`, `--until`): YYYY-MM-DD within
/// [`app::SUPPORTED_YEARS`], so no computation around it can leave the calendar's range.
pub(crate) fn arg_date(s: &str) -> Result<jiff::civil::Date, String> {
    let date: jiff::civil::Date = s
        .trim()
        .parse()
        .map_err(|e| format!("`{s}` is not a date (YYYY-MM-DD): {e}"))?;
    app::supported_date(date)
}

/// An instant argument (`--now`): RFC 3339, its UTC year within [`app::SUPPORTED_YEARS`].
fn arg_instant(s: &str) -> Result<jiff::Timestamp, String> {
    let at: jiff::Timestamp = s.trim().parse().map_err(|e| {
        format!("`{s}` is not an instant (RFC 3339, e.g. 2027-03-01T09:00:00Z): {e}")
    })?;
    app::supported_date(at.to_zoned(jiff::tz::TimeZone::UTC).date()).map(|_| at)
}
