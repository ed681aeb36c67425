//! The `cmdb-reconcile` binary: parse the command line, set up logging, run the command and
//! turn its outcome into a documented exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cmdb_reconcile::app::{self, Status};
use cmdb_reconcile::cli::{Cli, Command, LogArgs, LogFormat};

/// Exit codes (README "Exit codes").
const EXIT_OK: u8 = 0;
const EXIT_ERROR: u8 = 1;
const EXIT_CHANGES: u8 = 2;
const EXIT_PARTIAL: u8 = 3;
const EXIT_REFUSED: u8 = 4;

/// Sets up logging on stderr; returns whether it is JSON.
fn init_logging(args: &LogArgs) -> bool {
    let level = match (args.quiet, args.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("cmdb_reconcile={level},warn")));
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.with_target(false).init();
    }
    json
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_logs = init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    // The one clock reading of the run (a hidden flag pins it to reproduce a past plan).
    let now = chrono::Utc::now();
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Plan(args) => app::plan(args, args.plan_opts.now.unwrap_or(now)).await,
            Command::Apply(args) => app::apply(args, now).await,
            Command::Run(args) => app::run(args, args.plan.plan_opts.now.unwrap_or(now)).await,
            Command::Check(args) => app::check(args),
            #[cfg(feature = "demo")]
            Command::Demo(args) => cmdb_reconcile::demo::demo(args, now).await,
        }
    });
    match result {
        Ok(Status::Clean) => ExitCode::from(EXIT_OK),
        Ok(Status::ChangesPlanned) => ExitCode::from(EXIT_CHANGES),
        Ok(Status::Partial) => ExitCode::from(EXIT_PARTIAL),
        Ok(Status::Refused) => ExitCode::from(EXIT_REFUSED),
        Err(e) => {
            // One clear line: the log collector gets it as JSON, a person as text.
            if json_logs {
                tracing::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}
