//! The `cmdb-reconcile` binary: parse the command line, set up logging, run the command and
//! turn its outcome into a documented exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cmdb_reconcile::app;
use cmdb_reconcile::cli::{Cli, Command, LogArgs, LogFormat};

/// Exit code of an error (the others come from `Status::exit_code`; README "Exit codes").
const EXIT_ERROR: u8 = 1;

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

/// The process's peak resident memory (Linux), for the closing log line: sizing a CronJob's
/// memory limit needs it.
#[allow(clippy::disallowed_methods, reason = "reads /proc/self/status")]
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024)
}

#[allow(
    clippy::disallowed_methods,
    reason = "the one place the job reads the wall clock"
)]
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
            Command::Check(args) => app::check(args).await,
            #[cfg(feature = "demo")]
            Command::Demo(args) => cmdb_reconcile::demo::demo(args, now).await,
            // Production builds leave the simulators out (README "Install").
            #[cfg(not(feature = "demo"))]
            Command::Demo(_) => Err(anyhow::anyhow!(
                "this cmdb-reconcile was built without the `demo` feature (no simulators); run `cargo run --release -- demo` in a clone of the repository"
            )),
        }
    });
    if let Some(mib) = peak_rss_mib() {
        tracing::info!(peak_rss_mib = mib, "done");
    }
    match result {
        Ok(status) => ExitCode::from(status.exit_code()),
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
