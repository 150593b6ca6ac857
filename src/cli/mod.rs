//! The command line: argument parsing (clap) and output. Exit codes are a contract:
//! 0 clean, 1 findings (`check` errors, rejected import rows, a preview that would send
//! nothing), 2 could not run, 3 another `run` (or `migrate`) already holds this SQLite database. Data goes
//! to stdout, logs to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};

use crate::app::{self, App, AppError, ImportKind, Preview, PreviewRequest};
use crate::config::{Config, Severity};
use crate::domain::Channel;
use crate::store::{RowSelection, Store};

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
    Import {
        #[arg(value_enum)]
        kind: ImportWhat,
        file: PathBuf,
        /// utf-8, windows-1251 or windows-1250 (default: detect).
        #[arg(long)]
        encoding: Option<String>,
        /// The field separator (default: detect).
        #[arg(long)]
        delimiter: Option<char>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Open each configured connection once (database, SMTP relay, SMS gateways) and report
    /// reachable, TLS verified, authenticated; sends nothing. Exit 1 when one fails.
    Doctor,
    /// Create or update the database schema (also done automatically on first use). On SQLite
    /// it takes the daemon lock first: refused (exit 3) while `run` holds the database.
    Migrate,
    /// Show the exact message a customer would get for a ritual on a date; or, with --serve,
    /// a local web page with every ritual × locale rendered for a sample customer.
    Preview {
        /// The ritual (required without --serve).
        #[arg(required_unless_present = "serve")]
        ritual: Option<String>,
        /// External id, email or phone (required without --serve).
        #[arg(long, required_unless_present = "serve")]
        customer: Option<String>,
        /// The local date (YYYY-MM-DD); default: the ritual's next occasion for this customer.
        #[arg(long, value_parser = arg_date)]
        date: Option<jiff::civil::Date>,
        #[arg(long)]
        channel: Option<Channel>,
        /// Print only the email, exactly as it goes on the wire (RFC 5322 bytes: MIME, CRLF).
        #[arg(long)]
        raw: bool,
        /// Render in this locale instead of the customer's (e.g. ro, ru, en).
        #[arg(long)]
        locale: Option<String>,
        /// Also write the email's HTML to this file (open it in a browser).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Send it as a test to this email address or phone number through the configured
        /// transport: subject marked [TEST], never recorded, never counted for the customer.
        #[arg(long, value_name = "ADDRESS_OR_PHONE")]
        send_to: Option<String>,
        /// Serve the preview page on http://127.0.0.1:PORT/ until Ctrl-C; it re-renders when
        /// a ritual or template file changes.
        #[arg(long, conflicts_with_all = ["ritual", "customer", "date", "channel", "raw", "locale", "html", "send_to"])]
        serve: bool,
        /// The port for --serve, on 127.0.0.1 only [default: 8025].
        #[arg(long)]
        port: Option<u16>,
    },
    /// Record an opt-out (or with --undo an opt-in) for a customer.
    Optout {
        /// External id, email or phone.
        customer: String,
        /// all, channel:email, channel:sms, ritual:<name> or category:<name>.
        #[arg(long, default_value = "all")]
        scope: String,
        #[arg(long)]
        undo: bool,
    },
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
    Plan {
        /// The first local date (default: today in UTC).
        #[arg(long, value_parser = arg_date)]
        date: Option<jiff::civil::Date>,
        /// How many local days from --date.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=MAX_DAYS))]
        days: u32,
        /// Only this ritual.
        #[arg(long)]
        ritual: Option<String>,
        /// Only this customer (external id, email or phone).
        #[arg(long)]
        customer: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Per ritual: due, sent, failed, suppressed by reason, opt-outs caused, survey answers and
    /// NPS; repeat purchases and revenue within N days, recipients versus the holdout group.
    Report {
        /// The first local date (in defaults.time_zone) of occurrences counted (default: all).
        #[arg(long, value_parser = arg_date)]
        since: Option<jiff::civil::Date>,
        /// The last local date, inclusive (default: up to now).
        #[arg(long, value_parser = arg_date)]
        until: Option<jiff::civil::Date>,
        /// Only this ritual.
        #[arg(long)]
        ritual: Option<String>,
        /// Days after the occurrence in which an order counts as a repeat purchase.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=MAX_DAYS))]
        window_days: u32,
        /// `ritual`: one row per ritual for the period; `month`: one per ritual and month.
        #[arg(long, value_enum, default_value = "ritual")]
        by: ReportBy,
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
    },
    /// Ledger rows per status.
    Status,
    /// The outbox: messages per status and channel, the failed and the in-doubt ones with
    /// their last reply (no subcommand); `retry` failed or in-doubt messages or `cancel`
    /// messages that must never go out.
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxAction>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// List a country calendar's holidays for a year (check floating dates before a campaign).
    Calendar {
        /// Calendar id: ro, ru, en-US, en-GB (a file in config/calendars/).
        id: String,
        /// The year (default: this year).
        #[arg(long, value_parser = clap::value_parser!(i16).range(*app::SUPPORTED_YEARS.start() as i64..=*app::SUPPORTED_YEARS.end() as i64))]
        year: Option<i16>,
        /// Holiday names in this language (default: en).
        #[arg(long, default_value = "en")]
        locale: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
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
fn arg_date(s: &str) -> Result<jiff::civil::Date, String> {
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

/// Runs the parsed command; the caller turns the result into the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            match &e {
                AppError::Invalid(d) => {
                    let mut d = d.clone();
                    d.attach_snippets();
                    eprintln!("{d}");
                }
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(2)
        }
    }
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = writeln!(o, "{s}");
}

async fn dispatch(cli: Cli) -> Result<ExitCode, AppError> {
    match cli.command {
        Command::Check { format } => {
            let mut diags = app::check(&cli.config);
            diags.attach_snippets();
            let errors = diags.errors().count();
            let warnings = diags.findings().count() - errors;
            match format {
                Format::Json => out(&serde_json::to_string_pretty(&diags.0).unwrap_or_default()),
                Format::Table => {
                    for d in &diags.0 {
                        if d.severity == Severity::Note {
                            out(&d.to_string());
                        } else {
                            eprintln!("{d}");
                        }
                    }
                    if errors + warnings == 0 {
                        out(&format!("{}: everything checks out", cli.config.display()));
                    } else {
                        eprintln!("{errors} error(s), {warnings} warning(s)");
                    }
                }
            }
            Ok(if errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Doctor => {
            let cfg = Config::load(&cli.config)?;
            let smtp = match &cfg.delivery.email {
                crate::config::EmailTransport::Smtp(s) => Some(s),
                _ => None,
            };
            let sms = match &cfg.delivery.sms {
                crate::config::SmsTransport::Providers(list) => list.as_slice(),
                _ => &[],
            };
            let probes = app::doctor(&cfg.database_url, smtp, sms).await;
            let mut bad = 0;
            for p in &probes {
                match &p.result {
                    Ok(detail) => out(&format!("ok    {}: {detail}", p.what)),
                    Err(e) => {
                        bad += 1;
                        out(&format!("FAIL  {}: {e}", p.what));
                    }
                }
            }
            Ok(if bad > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Migrate => {
            let cfg = Config::load(&cli.config)?;
            // The daemon's lock before the schema: `migrate` never changes the schema under a
            // running daemon, and of two racing on a new file one migrates, the other is told.
            let _lock = match crate::daemon::lock_database(&cfg.database_url) {
                Ok(lock) => lock,
                Err(e @ crate::daemon::LockError::Held { .. }) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(ALREADY_RUNNING));
                }
                Err(e) => return Err(AppError::Other(e.to_string())),
            };
            Store::open(&cfg.database_url).await?;
            out(&format!(
                "database is up to date ({})",
                redact_url(&cfg.database_url)
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            kind,
            file,
            encoding,
            delimiter,
            format,
        } => {
            let cfg = Config::load(&cli.config)?;
            let store = Store::open(&cfg.database_url).await?;
            let kind = match kind {
                ImportWhat::Customers => ImportKind::Customers,
                ImportWhat::Orders => ImportKind::Orders,
            };
            let delimiter = delimiter.map(|c| c as u32 as u8);
            let r = import_with_bar(&store, &cfg, kind, &file, encoding, delimiter).await?;
            match format {
                Format::Json => out(&serde_json::to_string_pretty(&r).unwrap_or_default()),
                Format::Table => {
                    for (line, reason) in &r.errors {
                        eprintln!("{}:{line}: rejected: {reason}", r.file);
                    }
                    for w in &r.warnings {
                        eprintln!("{}:{}: warning: {}", r.file, w.line, w.reason);
                    }
                    let left_out = r.warnings.iter().filter(|w| w.refused).count();
                    out(&format!(
                        "{}: {} row(s) read ({}), {} inserted, {} updated, {} rejected{}",
                        r.file,
                        r.rows,
                        r.encoding,
                        r.stats.inserted,
                        r.stats.updated,
                        r.errors.len(),
                        if left_out > 0 {
                            format!(", {left_out} value(s) left out")
                        } else {
                            String::new()
                        }
                    ));
                }
            }
            Ok(if r.has_findings() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Run { once, now } => {
            let cfg = Config::load(&cli.config)?;
            // One dispatcher per SQLite file (daemon or --once: both send); held until exit,
            // and taken before the database is opened: a refused run never touches it (not
            // even to migrate it).
            let _lock = match crate::daemon::lock_database(&cfg.database_url) {
                Ok(lock) => lock,
                Err(e @ crate::daemon::LockError::Held { .. }) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(ALREADY_RUNNING));
                }
                Err(e) => return Err(AppError::Other(e.to_string())),
            };
            let app = App::open(cfg).await?;
            crate::daemon::warn_of_a_wide_handover(&app.cfg);
            if once {
                let app = std::sync::Arc::new(app);
                // SIGTERM/SIGINT: stop claiming, give messages in flight their grace.
                let stopper = crate::daemon::stop_on_signal(app.clone());
                let now = now.unwrap_or_else(crate::clock::now);
                let t = app.tick(now).await?;
                let d = app.drain(now).await?;
                stopper.abort();
                app.channels.close().await;
                out(&format!(
                    "tick at {now}: {} candidate(s), {} new message(s) queued, {} suppressed, {} already recorded; sent {}, retrying {}, failed {}, in doubt {}, waiting for a paused channel {}{}",
                    t.candidates,
                    t.queued,
                    t.suppressed,
                    t.already_recorded,
                    d.sent,
                    d.retrying,
                    d.failed,
                    d.in_doubt,
                    d.paused,
                    if app.stop_requested() {
                        format!(
                            "; stopped by a signal ({} given back to the queue)",
                            d.released
                        )
                    } else {
                        String::new()
                    }
                ));
                if let crate::config::EmailTransport::Outbox = app.cfg.delivery.email {
                    out(&format!(
                        "outbox: {}",
                        app.cfg.delivery.outbox_dir.display()
                    ));
                }
                Ok(if d.failed > 0 {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                })
            } else {
                crate::daemon::run(std::sync::Arc::new(app)).await?;
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Preview {
            serve: true, port, ..
        } => {
            let port = port.unwrap_or(DEFAULT_PREVIEW_PORT);
            let cfg = Config::load(&cli.config)?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|e| AppError::Other(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
            let addr = listener
                .local_addr()
                .map_err(|e| AppError::Other(e.to_string()))?;
            out(&format!("preview: http://{addr}/ (Ctrl-C to stop)"));
            crate::http::serve_preview(cfg, listener, crate::daemon::shutdown_signal())
                .await
                .map_err(|e| AppError::Other(format!("preview server: {e}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Preview {
            ritual,
            customer,
            date,
            channel,
            raw,
            locale,
            html,
            send_to,
            port,
            serve: false,
        } => {
            // clap's `requires` does not see a `--serve` flag's absence (flags default to false).
            if port.is_some() {
                return Err(AppError::Other("--port only goes with --serve".into()));
            }
            // clap enforces both without --serve; this keeps the contract if that ever changes.
            let (Some(ritual), Some(customer)) = (ritual, customer) else {
                return Err(AppError::Other(
                    "preview needs a RITUAL and --customer ID (or --serve for the web page)".into(),
                ));
            };
            let cfg = Config::load(&cli.config)?;
            let app = App::open(cfg).await?;
            let locale = locale
                .map(|l| crate::domain::Locale::parse(&l))
                .transpose()
                .map_err(|e| AppError::Other(e.to_string()))?;
            let req = PreviewRequest {
                ritual,
                customer,
                date,
                channel,
                locale,
            };
            if let Some(to) = send_to {
                let t = app.test_send(&req, &to).await?;
                app.channels.close().await;
                return Ok(match t.reply {
                    Ok(reply) => {
                        out(&format!(
                            "test {} sent to {}: {reply}",
                            t.channel, t.recipient
                        ));
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("test {} to {} failed: {e}", t.channel, t.recipient);
                        ExitCode::from(1)
                    }
                });
            }
            let p = app.preview(&req).await?;
            if let (Some(file), Preview::Messages { messages, .. }) = (&html, &p) {
                let Some(body) = messages.iter().find_map(|(_, _, m)| m.html.clone()) else {
                    return Err(AppError::Other(
                        "--html: this preview has no email (try --channel email)".into(),
                    ));
                };
                std::fs::write(file, body).map_err(|e| {
                    AppError::Other(format!("cannot write {}: {e}", file.display()))
                })?;
            }
            match p {
                Preview::NotSent { reason } => {
                    out(&format!("nothing would be sent: {reason}"));
                    Ok(ExitCode::from(1))
                }
                Preview::Messages { messages, .. } if raw => {
                    // Exactly the RFC 5322 bytes of the email, nothing before or after:
                    // `--raw > message.eml` is a valid message.
                    let Some((_, _, m)) = messages.iter().find(|(ch, _, _)| *ch == Channel::Email)
                    else {
                        return Err(AppError::Other(
                            "--raw prints an email: this preview has none (try --channel email)"
                                .into(),
                        ));
                    };
                    let mut o = std::io::stdout().lock();
                    let _ = o.write_all(m.payload.as_bytes());
                    let _ = o.flush();
                    Ok(ExitCode::SUCCESS)
                }
                Preview::Messages {
                    date,
                    send_at,
                    messages,
                } => {
                    for (ch, recipient, m) in messages {
                        out(&format!(
                            "=== {ch} to {recipient} on {date}, due {} ({} UTC), locale {}",
                            send_at,
                            send_at.timestamp(),
                            m.locale
                        ));
                        match ch {
                            Channel::Email => {
                                // Headers as people read them: unfolded, encoded words decoded.
                                for line in crate::channel::readable_headers(&m.payload) {
                                    if !line.starts_with("Content-")
                                        && !line.starts_with("MIME-Version")
                                    {
                                        out(&line);
                                    }
                                }
                                out("--- text ---");
                                out(m.text.as_deref().unwrap_or(""));
                                out("--- html ---");
                                out(m.html.as_deref().unwrap_or(""));
                            }
                            Channel::Sms => {
                                if let Some(len) = m.sms {
                                    out(&format!(
                                        "--- sms: {} segment(s), {}, {} units ---",
                                        len.segments,
                                        len.encoding.as_str(),
                                        len.units
                                    ));
                                }
                                out(&m.payload);
                            }
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Forget { customer, format } => {
            let cfg = Config::load(&cli.config)?;
            let app = App::open(cfg).await?;
            let Some(r) = app
                .forget(&customer, crate::clock::now().as_second())
                .await?
            else {
                eprintln!("no customer `{customer}` (external id, email or phone): nothing erased");
                return Ok(ExitCode::from(1));
            };
            match format {
                Format::Json => out(&serde_json::to_string_pretty(&r).unwrap_or_default()),
                Format::Table => {
                    let e = &r.erasure;
                    let fields = if e.fields.is_empty() {
                        "nothing left to erase in the customer row".to_string()
                    } else {
                        format!("erased {}", e.fields.join(", "))
                    };
                    out(&format!(
                        "forgot customer #{} (`{}`): {fields}; {} custom date(s) removed; {} message(s) scrubbed of recipient, subject and body; {} unsent message(s) cancelled; opted out of everything; {} new hashed stub(s) keep a re-import opted out",
                        e.customer_id,
                        r.customer,
                        e.custom_dates,
                        e.messages_scrubbed,
                        e.messages_cancelled,
                        e.stubs
                    ));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Optout {
            customer,
            scope,
            undo,
        } => {
            let cfg = Config::load(&cli.config)?;
            app::Known::load(&cfg)?.scope(&scope)?;
            let store = Store::open(&cfg.database_url).await?;
            let row = store
                .find_customer(&customer)
                .await?
                .ok_or_else(|| AppError::Other(format!("no customer `{customer}`")))?;
            store
                .set_consent(
                    row.id,
                    &scope,
                    !undo,
                    "cli",
                    crate::clock::now().as_second(),
                )
                .await?;
            out(&format!(
                "customer {}: {} {scope}",
                row.external_id,
                if undo {
                    "opted back in to"
                } else {
                    "opted out of"
                }
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::Calendar {
            id,
            year,
            locale,
            format,
        } => {
            let cfg = Config::load(&cli.config)?;
            let calendars = crate::calendar::load_calendars(&cfg.calendars_dir)?;
            let cal = crate::calendar::find_calendar(&calendars, &id).map_err(|e| {
                AppError::Other(format!("unknown calendar `{}`; {}", e.id, e.hint()))
            })?;
            let year = year
                .unwrap_or_else(|| crate::clock::now().to_zoned(jiff::tz::TimeZone::UTC).year());
            let dates = cal.dates_in(year);
            match format {
                Format::Json => {
                    let rows: Vec<serde_json::Value> = dates
                        .iter()
                        .map(|(d, h)| {
                            serde_json::json!({
                                "date": d.to_string(),
                                "weekday": format!("{:?}", d.weekday()).to_lowercase(),
                                "holiday": h.id,
                                "name": h.name(&locale),
                            })
                        })
                        .collect();
                    out(&serde_json::to_string_pretty(&rows).unwrap_or_default());
                }
                Format::Table => {
                    for (d, h) in &dates {
                        out(&format!(
                            "{d}  {:<9}  {:<24}  {}",
                            format!("{:?}", d.weekday()).to_lowercase(),
                            h.id,
                            h.name(&locale)
                        ));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            date,
            days,
            ritual,
            customer,
            format,
        } => {
            let cfg = Config::load(&cli.config)?;
            let app = App::open(cfg).await?;
            let date = date
                .unwrap_or_else(|| crate::clock::now().to_zoned(jiff::tz::TimeZone::UTC).date());
            let req = app::PlanRequest {
                date,
                days,
                ritual,
                customer,
            };
            // Each chunk's decisions are written as soon as they are made (the bar, on a
            // terminal, steps aside while they are).
            let bar = progress_bar();
            let mut stdout = std::io::BufWriter::new(std::io::stdout());
            if let Format::Table = format {
                print_plan_header(&mut stdout);
            }
            let summary = app
                .plan_each(
                    &req,
                    |done, total| {
                        if let Some(b) = &bar {
                            b.set_length(total);
                            b.set_position(done);
                        }
                    },
                    |chunk| match &bar {
                        Some(b) => b.suspend(|| print_plan(&mut stdout, chunk, format)),
                        None => print_plan(&mut stdout, chunk, format),
                    },
                )
                .await?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if let Format::Table = format {
                let _ = writeln!(
                    stdout,
                    "{} decision(s): {} send(s), {} suppression(s)",
                    summary.decisions,
                    summary.sends,
                    summary.decisions - summary.sends
                );
            }
            let _ = stdout.flush();
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox { action, format } => {
            let cfg = Config::load(&cli.config)?;
            let store = Store::open(&cfg.database_url).await?;
            let now = crate::clock::now().as_second();
            let (verb, change) = match action {
                None => {
                    print_outbox(&app::outbox_view(&store).await?, format);
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
                    let which = if all_failed {
                        app::all_failed()
                    } else if all_in_doubt {
                        app::all_in_doubt()
                    } else {
                        RowSelection::Ids(ids)
                    };
                    ("retried", app::outbox_retry(&store, &which, now).await?)
                }
                Some(OutboxAction::Cancel {
                    ids,
                    all_failed,
                    all_pending,
                    all_in_doubt,
                }) => {
                    let which = if all_failed {
                        app::all_failed()
                    } else if all_pending {
                        app::all_pending()
                    } else if all_in_doubt {
                        app::all_in_doubt()
                    } else {
                        RowSelection::Ids(ids)
                    };
                    ("cancelled", app::outbox_cancel(&store, &which, now).await?)
                }
            };
            match format {
                Format::Json => out(&serde_json::to_string_pretty(&change).unwrap_or_default()),
                Format::Table => {
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
            }
            Ok(if change.skipped.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Report {
            since,
            until,
            ritual,
            window_days,
            by,
            format,
        } => {
            let cfg = Config::load(&cli.config)?;
            let store = Store::open(&cfg.database_url).await?;
            if let Some(r) = &ritual {
                // A ritual removed from the config still has its history in the ledger.
                let known = app::Known::load(&cfg).unwrap_or_default();
                if known.ritual(r).is_err() && !store.ledger_has_ritual(r).await? {
                    known.ritual(r)?;
                }
            }
            let req = app::ReportRequest {
                since,
                until,
                ritual,
                window_days,
                by_month: by == ReportBy::Month,
            };
            let rows = app::report(&store, &cfg, &req, crate::clock::now().as_second()).await?;
            print_report(&req, &rows, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let cfg = Config::load(&cli.config)?;
            let store = Store::open(&cfg.database_url).await?;
            for (status, n) in store.status_counts().await? {
                out(&format!("{status:<12} {n}"));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `RON 43.06; EUR 10.00` from minor units (major units, each currency's decimals), `-` when
/// empty; `signed` adds `+` to gains.
fn money_map(m: &std::collections::BTreeMap<String, f64>, signed: bool) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(c, v)| crate::domain::money::format_major(c, *v, signed))
        .collect::<Vec<_>>()
        .join("; ")
}

fn opt(v: Option<f64>, suffix: &str, signed: bool) -> String {
    match v {
        Some(x) if signed => format!("{x:+.1}{suffix}"),
        Some(x) => format!("{x:.1}{suffix}"),
        None => "-".into(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_report(req: &app::ReportRequest, rows: &[app::ReportRow], format: ReportFormat) {
    let mut o = std::io::stdout().lock();
    match format {
        ReportFormat::Json => {
            let v = serde_json::json!({
                "since": req.since.map(|d| d.to_string()),
                "until": req.until.map(|d| d.to_string()),
                "ritual": req.ritual,
                "window_days": req.window_days,
                "money": "`*_minor` fields: minor units of each order's currency, as stored; the others: major units (RON 43.06 is 43.06)",
                "rows": rows,
            });
            let _ = writeln!(
                o,
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            );
        }
        ReportFormat::Csv => {
            let _ = writeln!(
                o,
                "ritual,period,due,sent,failed,in_flight,cancelled,suppressed,opt_outs,\
                 survey_responses,promoters,passives,detractors,nps,window_days,\
                 recipients_n,recipients_repeat_customers,recipients_repeat_rate_pct,recipients_revenue_per_customer,\
                 holdout_n,holdout_repeat_customers,holdout_repeat_rate_pct,holdout_revenue_per_customer,\
                 repeat_rate_diff_pts,revenue_per_customer_diff,window_open"
            );
            let num = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.1}"));
            // `RON:43.06 EUR:10.00`: major units, from the minor amounts.
            let money = |m: &std::collections::BTreeMap<String, f64>| {
                m.iter()
                    .map(|(c, v)| {
                        crate::domain::money::format_major(c, *v, false).replacen(' ', ":", 1)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            for r in rows {
                let sup = r
                    .suppressed
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(";");
                let (rec, hold) = (&r.outcome.recipients, &r.outcome.holdout);
                let fields = [
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
                    num(r.survey.nps),
                    r.outcome.window_days.to_string(),
                    rec.n.to_string(),
                    rec.repeat_customers.to_string(),
                    num(rec.repeat_rate_pct),
                    money(&rec.revenue_per_customer_minor),
                    hold.n.to_string(),
                    hold.repeat_customers.to_string(),
                    num(hold.repeat_rate_pct),
                    money(&hold.revenue_per_customer_minor),
                    num(r.outcome.repeat_rate_diff_pts),
                    money(&r.outcome.revenue_per_customer_diff_minor),
                    r.outcome.window_open.to_string(),
                ];
                let _ = writeln!(o, "{}", fields.join(","));
            }
        }
        ReportFormat::Table => {
            if rows.is_empty() {
                let _ = writeln!(o, "nothing in the ledger for this period");
                return;
            }
            for r in rows {
                let sup = if r.suppressed.is_empty() {
                    "none".to_string()
                } else {
                    r.suppressed
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let (rec, hold) = (&r.outcome.recipients, &r.outcome.holdout);
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
                if r.outcome.window_open > 0 {
                    let _ = writeln!(
                        o,
                        "  ({} occurrence(s) still inside their {}-day window: not measured yet)",
                        r.outcome.window_open, r.outcome.window_days
                    );
                }
            }
        }
    }
}

fn print_outbox(v: &app::OutboxView, format: Format) {
    let mut stdout = std::io::stdout().lock();
    if let Format::Json = format {
        let _ = writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_default()
        );
        return;
    }
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
    if !v.failed.is_empty() {
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
    if !v.in_doubt.is_empty() {
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
}

/// `import`: [`app::import_file`] with a bar in bytes of the file on stderr when it is a
/// terminal (never in pipes and logs).
async fn import_with_bar(
    store: &Store,
    cfg: &Config,
    kind: ImportKind,
    file: &std::path::Path,
    encoding: Option<String>,
    delimiter: Option<u8>,
) -> Result<app::ImportReport, AppError> {
    use std::io::IsTerminal;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {bytes}/{total_bytes} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("importing {}", file.display()));
        bar
    });
    let mut on_progress = |p: app::ImportProgress| {
        if let Some(b) = &bar {
            b.set_length(p.bytes_total);
            b.set_position(p.bytes_read);
        }
    };
    let now = crate::clock::now().as_second();
    let r = app::import_file(
        store,
        cfg,
        kind,
        file,
        encoding,
        delimiter,
        now,
        &mut on_progress,
    )
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    r
}

/// A progress bar on stderr when it is a terminal (never in pipes and logs).
fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} planning {bar:40} {pos}/{len} customers ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

fn print_plan_header(stdout: &mut impl Write) {
    let _ = writeln!(
        stdout,
        "{:<18} {:<16} {:<9} {:<6} {:<26} {:<21} {:<28} reason",
        "ritual", "customer", "decision", "chan", "send at (local)", "send at (UTC)", "occurrence"
    );
}

/// Writes one chunk of planned decisions (a JSON object per line, or table rows).
fn print_plan(stdout: &mut impl Write, planned: &[app::PlannedDecision], format: Format) {
    for p in planned {
        let _ = match format {
            Format::Json => writeln!(stdout, "{}", serde_json::to_string(p).unwrap_or_default()),
            Format::Table => writeln!(
                stdout,
                "{:<18} {:<16} {:<9} {:<6} {:<26} {:<21} {:<28} {}",
                p.ritual,
                p.customer,
                p.decision,
                p.channel.as_deref().unwrap_or("-"),
                p.send_at.as_deref().unwrap_or("-"),
                p.send_at_utc.as_deref().unwrap_or("-"),
                p.occurrence,
                p.reason.as_deref().unwrap_or("")
            ),
        };
    }
    let _ = stdout.flush();
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
