//! The command line: argument parsing (clap) and output. Exit codes are a contract:
//! 0 clean, 1 findings (`check` errors, rejected import rows, a preview that would send
//! nothing), 2 could not run (including output that cannot be written as JSON), 3 another
//! `run` (or `migrate`) already holds this SQLite database. Data goes to stdout, logs to
//! stderr.
//!
//! Here: [`run`] and the dispatch to one module per command ([`cmd`]); the grammar is in
//! [`args`], the printing helpers and progress bars in [`output`].

mod args;
mod cmd;
mod output;

use std::process::ExitCode;

use crate::app::AppError;

pub use args::{
    ALREADY_RUNNING, CalendarArgs, Cli, Command, DEFAULT_PREVIEW_PORT, Format, ImportArgs,
    ImportWhat, OptoutArgs, OutboxAction, OutboxArgs, PlanArgs, PreviewArgs, ReportArgs, ReportBy,
    ReportFormat,
};

/// Runs the parsed command; the caller turns the result into the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    exit_code(dispatch(cli).await)
}

/// A command's exit code, or 2 after printing why it could not run.
fn exit_code(result: Result<ExitCode, AppError>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(AppError::Invalid(mut d)) => {
            d.attach_snippets();
            eprintln!("{d}");
            ExitCode::from(2)
        }
        Err(other) => {
            eprintln!("error: {other}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, AppError> {
    let config = cli.config.as_path();
    match cli.command {
        Command::Check { format } => cmd::check::run(config, format),
        Command::Doctor => cmd::doctor::run(config).await,
        Command::Migrate => cmd::migrate::run(config).await,
        Command::Import(args) => cmd::import::run(config, args).await,
        Command::Run { once, now } => cmd::run::run(config, once, now).await,
        Command::Preview(args) => cmd::preview::run(config, args).await,
        Command::Forget { customer, format } => cmd::forget::run(config, &customer, format).await,
        Command::Optout(args) => cmd::optout::run(config, args).await,
        Command::Calendar(args) => cmd::calendar::run(config, args),
        Command::Plan(args) => cmd::plan::run(config, args).await,
        Command::Outbox(args) => cmd::outbox::run(config, args).await,
        Command::Report(args) => cmd::report::run(config, args).await,
        Command::History(args) => cmd::history::run(config, args).await,
        Command::Surveys(args) => cmd::surveys::run(config, args).await,
        Command::Status => cmd::status::run(config).await,
        Command::Bounce(args) => cmd::bounce::run(config, args).await,
        Command::Bounces(args) => cmd::bounces::run(config, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_that_cannot_be_written_as_json_exits_2() {
        let keys: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let err = output::out_json(&keys).expect_err("non-string map keys are not JSON");
        assert!(
            err.to_string()
                .starts_with("cannot write the output as JSON: "),
            "{err}"
        );
        assert_eq!(exit_code(Err(err)), ExitCode::from(2));
    }

    #[test]
    fn a_command_s_own_code_passes_through() {
        assert_eq!(exit_code(Ok(ExitCode::from(1))), ExitCode::from(1));
        assert_eq!(exit_code(Ok(ExitCode::SUCCESS)), ExitCode::SUCCESS);
        assert_eq!(
            exit_code(Ok(ExitCode::from(ALREADY_RUNNING))),
            ExitCode::from(ALREADY_RUNNING)
        );
    }

    #[test]
    fn the_grammar_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
