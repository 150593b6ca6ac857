//! `ritualist preview`: the exact message a customer would get for a ritual on a date (the
//! readable form, `--raw` RFC 5322 bytes, `--html FILE`), a test send with `--send-to`, or
//! with `--serve` the local preview web page. Exit 1 when nothing would be sent or a test
//! send fails.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::app::{App, AppError, Composed, Preview, PreviewRequest};
use crate::cli::output::out;
use crate::cli::{DEFAULT_PREVIEW_PORT, PreviewArgs};
use crate::config::Config;
use crate::domain::Channel;
use crate::http::{KEY_VAR, PASSWORD_VAR, PreviewAccess, USER_VAR};

pub async fn run(config: &Path, args: PreviewArgs) -> Result<ExitCode, AppError> {
    if args.serve {
        let bind = args.bind.as_deref().unwrap_or("127.0.0.1");
        return serve(config, bind, args.port).await;
    }
    // clap's `requires` does not see a `--serve` flag's absence (flags default to false).
    if args.port.is_some() || args.bind.is_some() {
        return Err(AppError::Other(
            "--port and --bind only go with --serve".into(),
        ));
    }
    // clap enforces both without --serve; this keeps the contract if that ever changes.
    let (Some(ritual), Some(customer)) = (args.ritual, args.customer) else {
        return Err(AppError::Other(
            "preview needs a RITUAL and --customer ID (or --serve for the web page)".into(),
        ));
    };
    let cfg = Config::load(config)?;
    let app = App::open(cfg).await?;
    let locale = args
        .locale
        .map(|l| crate::domain::Locale::parse(&l))
        .transpose()
        .map_err(|e| AppError::Other(e.to_string()))?;
    let req = PreviewRequest {
        ritual,
        customer,
        date: args.date,
        channel: args.channel,
        locale,
    };
    if let Some(to) = args.send_to {
        return test_send(&app, &req, &to).await;
    }
    let p = app.preview(&req).await?;
    if let (Some(file), Preview::Messages { messages, .. }) = (&args.html, &p) {
        write_html(file, messages)?;
    }
    print(p, args.raw)
}

/// `--serve`: the preview page and the marketer's pages on 127.0.0.1 (or `--bind`, which
/// needs a key or a password from the environment) until a signal.
async fn serve(config: &Path, bind: &str, port: Option<u16>) -> Result<ExitCode, AppError> {
    let port = port.unwrap_or(DEFAULT_PREVIEW_PORT);
    let cfg = Config::load(config)?;
    let access = PreviewAccess::from_vars(|k| std::env::var(k).ok()).map_err(AppError::Other)?;
    let ip: std::net::IpAddr = bind
        .parse()
        .map_err(|_| AppError::Other(format!("--bind: `{bind}` is not an IP address")))?;
    if !ip.is_loopback() && !access.is_set() {
        return Err(AppError::Other(format!(
            "--bind {ip}: beyond loopback the pages need {KEY_VAR}, or {USER_VAR} and {PASSWORD_VAR}, in the environment"
        )));
    }
    // The pages read the database; the preview itself does not need one. An app that cannot
    // open (no database yet, a broken ritual) is explained on the pages, not fatal.
    let app = if crate::store::Store::exists(&cfg.database_url) {
        App::open(cfg.clone())
            .await
            .map(std::sync::Arc::new)
            .map_err(|e| format!("the pages cannot open the database: {e}"))
    } else {
        Err("there is no database yet: import customers first (`ritualist import customers FILE`), then start `preview --serve` again".into())
    };
    let listener = tokio::net::TcpListener::bind((ip, port))
        .await
        .map_err(|e| AppError::Other(format!("cannot listen on {ip}:{port}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Other(e.to_string()))?;
    out(&format!("preview: http://{addr}/ (Ctrl-C to stop)"));
    crate::http::serve_preview(cfg, app, access, listener, crate::daemon::shutdown_signal())
        .await
        .map_err(|e| AppError::Other(format!("preview server: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// `--send-to`: the message sent as a test; exit 1 when the transport refuses it.
async fn test_send(app: &App, req: &PreviewRequest, to: &str) -> Result<ExitCode, AppError> {
    let t = app.test_send(req, to).await?;
    app.channels.close().await;
    Ok(match t.reply {
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
    })
}

/// `--html FILE`: the email's HTML body written to the file.
fn write_html(file: &Path, messages: &[(Channel, String, Composed)]) -> Result<(), AppError> {
    let Some(body) = messages.iter().find_map(|(_, _, m)| m.html.clone()) else {
        return Err(AppError::Other(
            "--html: this preview has no email (try --channel email)".into(),
        ));
    };
    std::fs::write(file, body)
        .map_err(|e| AppError::Other(format!("cannot write {}: {e}", file.display())))
}

/// Prints the preview: why nothing would be sent (exit 1), the raw email, or each message.
fn print(p: Preview, raw: bool) -> Result<ExitCode, AppError> {
    match p {
        Preview::NotSent { reason } => {
            out(&format!("nothing would be sent: {reason}"));
            Ok(ExitCode::from(1))
        }
        Preview::Messages { messages, .. } if raw => {
            // Exactly the RFC 5322 bytes of the email, nothing before or after:
            // `--raw > message.eml` is a valid message.
            let Some((_, _, m)) = messages.iter().find(|(ch, _, _)| *ch == Channel::Email) else {
                return Err(AppError::Other(
                    "--raw prints an email: this preview has none (try --channel email)".into(),
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
                print_message(ch, &m);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One message of a preview, readable: an email's headers and parts, an SMS's length and text.
fn print_message(ch: Channel, m: &Composed) {
    match ch {
        Channel::Email => {
            // Headers as people read them: unfolded, encoded words decoded.
            for line in crate::channel::readable_headers(&m.payload) {
                if !line.starts_with("Content-") && !line.starts_with("MIME-Version") {
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
