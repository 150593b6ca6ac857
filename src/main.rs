//! The `ritualist` binary: its allocator; parse arguments, set up logging, run, map to an exit
//! code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// Composing a mass day's messages allocates and frees several small strings per message on
/// three threads at once: glibc's malloc took a quarter of the CPU (issue #26).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = ritualist::cli::Cli::parse();
    if let Err(code) = init_logging() {
        return code;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // The command runs as a task on the runtime's workers rather than on this thread: the
    // dispatcher's socket and ledger wake-ups then stay on the worker that handles them
    // (measured: about a third less CPU per email).
    rt.block_on(async {
        match tokio::spawn(ritualist::cli::run(cli)).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}

/// Logs to stderr, coloured only on a terminal (a journal or a log file gets plain text);
/// sqlx and lettre kept at warn/info (lettre's debug output would contain credentials and
/// message bodies). `RITUALIST_LOG_FORMAT=json`: one JSON object per line, for journald
/// or a log shipper. Exit 2 on an unknown format.
fn init_logging() -> Result<(), ExitCode> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RITUALIST_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn,lettre=info")
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match std::env::var("RITUALIST_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().with_current_span(false).init(),
        Ok("text") | Ok("") | Err(_) => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        Ok(other) => {
            eprintln!("error: RITUALIST_LOG_FORMAT={other}: expected `text` or `json`");
            return Err(ExitCode::from(2));
        }
    }
    Ok(())
}
