//! The `cmdb-reconcile` binary: parse the command line, set up logging, output and progress,
//! run the command, publish the run's metrics and turn its outcome into a documented exit
//! code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

use cmdb_reconcile::cli::{Cli, Command, LogArgs, LogFormat, ManArgs};
use cmdb_reconcile::{app, metrics, output, progress};

/// The job's allocator. glibc's malloc holds memory freed by a thread in that thread's arena
/// while others reach their peak (reads, planning and apply run on tokio's and rayon's
/// threads); mimalloc returns freed pages, which took the job's peak RSS at 100,000 VMs from
/// 745-752 MiB to 510-511 at the same wall time (README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h` of mimalloc v3, the version
/// libmimalloc-sys 0.1.49 builds; its Rust bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
// The option enum of the header the index above was read from ends at 47: a mimalloc whose
// enum differs fails the build here rather than setting some other option.
const _: () = assert!(libmimalloc_sys::_mi_option_last == 47);

/// Memory the job frees goes back to the system at once, not a second later (mimalloc v3's
/// default `purge_delay` is 1,000 ms): the job frees large structures between its phases
/// (a page's JSON, the records once evaluated, the reports' buffers) and the next phase
/// would otherwise reach its peak on top of them. At 100,000 VMs that took the peak RSS from
/// 470 to 404 MiB at the same wall time (README, Performance).
#[allow(
    unsafe_code,
    reason = "mimalloc's options are set through its C API only"
)]
fn tune_allocator() {
    // SAFETY: `mi_option_set` takes any option index below `_mi_option_last` and any value;
    // the purge delay is read at each purge, so setting it after start-up takes effect.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Exit code of an error (the others come from `Status::exit_code`; README "Exit codes").
const EXIT_ERROR: u8 = 1;

/// Set to `1`, lets `run` and `catalog` write with a `--now` far from the clock: for tests
/// against simulators whose estate is dated (README "Development"); honoured only by builds
/// with the `demo` feature, never by a production build.
const TEST_CLOCK_ENV: &str = "CMDB_RECONCILE_TEST_CLOCK";

/// The `now` of a command: the clock, or the hidden `--now` (to reproduce a past plan). A
/// command that writes (`run`, `catalog` without `--dry-run`) stamps its lease, its claim
/// markers and its writes with it, so there a `--now` more than a minute from the clock is
/// refused: its lease and claims would be written expired (another run would take over while
/// it writes) or dated in the future, and its CIs misdated. `test_clock` lifts that.
fn command_now(
    pinned: Option<chrono::DateTime<chrono::Utc>>,
    writes: bool,
    clock: chrono::DateTime<chrono::Utc>,
    test_clock: bool,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let Some(pinned) = pinned else {
        return Ok(clock);
    };
    let off = (pinned - clock).abs();
    if writes && !test_clock && off > chrono::TimeDelta::minutes(1) {
        return Err(format!(
            "--now {} is {} from the clock: a run that writes would stamp its lease, claim markers and writes with it (written expired, or in the future); use --now only with --dry-run (or `plan`)",
            pinned.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            cmdb_reconcile::text::format_duration(off.to_std().unwrap_or_default())
        ));
    }
    Ok(pinned)
}

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
    // Colour only for a terminal that wants it: a log file or a pipe gets plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(progress::log_writer);
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

/// `man`: the page on stdout, or a page per command into a folder.
fn man(args: &ManArgs) -> std::io::Result<()> {
    let cmd = Cli::command();
    match &args.out_dir {
        Some(dir) => clap_mangen::generate_to(cmd, dir),
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the one place the job reads the wall clock"
)]
fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    // Generated from the CLI itself, before anything else is set up.
    match &cli.command {
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "cmdb-reconcile",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        Command::Man(args) => {
            return match man(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the man page: {e}");
                    ExitCode::from(EXIT_ERROR)
                }
            };
        }
        _ => {}
    }
    let json_logs = init_logging(&cli.log);
    output::init(output::Mode::new(
        json_logs,
        cli.log.quiet,
        cli.output.summary,
        std::io::stdout().is_terminal(),
    ));
    // Bars only for a person watching: a terminal, text logs, not -q.
    let runs = matches!(
        cli.command,
        Command::Plan(_)
            | Command::Apply(_)
            | Command::Run(_)
            | Command::Catalog(_)
            | Command::Demo(_)
    );
    if runs && !json_logs && !cli.log.quiet && std::io::stderr().is_terminal() {
        progress::enable();
    }
    metrics::set_flags(metrics::Target {
        file: cli.output.metrics_file.clone(),
        push_gateway: cli.output.push_gateway.clone(),
    });
    let started = std::time::Instant::now();
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
    // Only builds with the simulators (the `demo` feature) honour it: a production build
    // (`--no-default-features`) refuses a far `--now` whatever the environment says.
    let test_clock =
        cfg!(feature = "demo") && std::env::var(TEST_CLOCK_ENV).is_ok_and(|v| v == "1");
    let writes_at = match &cli.command {
        Command::Run(args) | Command::Catalog(args) => Some(command_now(
            args.plan.plan_opts.now,
            !args.dry_run,
            now,
            test_clock,
        )),
        _ => None,
    };
    let writes_at = match writes_at.transpose() {
        Ok(at) => at.unwrap_or(now),
        Err(e) => {
            output::error(&e);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Plan(args) => app::plan(args, args.plan_opts.now.unwrap_or(now)).await,
            Command::Apply(args) => app::apply(args, now).await,
            Command::Run(args) => app::run(args, writes_at).await,
            Command::Check(args) => app::check(args).await,
            Command::Catalog(args) => app::catalog(args, writes_at).await,
            #[cfg(feature = "demo")]
            Command::Demo(args) => cmdb_reconcile::demo::demo(args, now).await,
            // Production builds leave the simulators out (README "Install").
            #[cfg(not(feature = "demo"))]
            Command::Demo(_) => Err(anyhow::anyhow!(
                "this cmdb-reconcile was built without the `demo` feature (no simulators); run `cargo run --release -- demo` in a clone of the repository"
            )),
            Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
        }
    });
    progress::writes_finished();
    let exit_code = match &result {
        Ok(status) => status.exit_code(),
        Err(e) => {
            // One clear line: the log collector gets it as JSON, a person as text.
            output::error(&format!("{e:#}"));
            EXIT_ERROR
        }
    };
    if !matches!(cli.command, Command::Check(_)) && !metrics::target().is_empty() {
        let finish = metrics::Finish {
            started: now,
            duration: started.elapsed(),
            exit_code,
        };
        runtime.block_on(metrics::publish(&finish));
    }
    if let Some(mib) = peak_rss_mib() {
        tracing::info!(
            peak_rss_mib = mib,
            exit_code,
            seconds = output::seconds(started.elapsed()),
            "done"
        );
    }
    ExitCode::from(exit_code)
}

#[cfg(test)]
mod tests {
    use super::command_now;

    #[test]
    fn a_pinned_now_far_from_the_clock_is_refused_only_for_a_run_that_writes() {
        let clock = "2026-12-02T15:00:00Z".parse().unwrap();
        let old = "2026-11-27T06:00:00Z".parse().unwrap();
        let near = "2026-12-02T15:00:30Z".parse().unwrap();
        assert_eq!(command_now(None, true, clock, false), Ok(clock));
        assert_eq!(command_now(Some(old), false, clock, false), Ok(old));
        assert_eq!(command_now(Some(near), true, clock, false), Ok(near));
        let e = command_now(Some(old), true, clock, false).unwrap_err();
        assert!(
            e.contains("--now 2026-11-27T06:00:00Z is 129h from the clock")
                && e.contains("--dry-run"),
            "{e}"
        );
        let future = "2026-12-02T16:00:00Z".parse().unwrap();
        assert!(command_now(Some(future), true, clock, false).is_err());
        // The tests' escape (CMDB_RECONCILE_TEST_CLOCK=1).
        assert_eq!(command_now(Some(old), true, clock, true), Ok(old));
    }
}
