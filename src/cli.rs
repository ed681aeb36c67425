//! Command-line types (clap derive) and nothing else: parsing lives here, behaviour in `app`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keep a ServiceNow CMDB true to what CloudForms (ManageIQ) knows about virtual machines.
///
/// Each run reads the VM inventory and the CIs of a CMDB table, maps every VM to the CI it
/// should be (a mapping file in `mappings/`), and plans creates, updates and retirements.
/// `plan` writes that plan as a drift report for review.
///
/// Exit codes: 0 success, 1 error, 2 changes planned (with --detailed-exitcode),
/// 3 partial (an operation failed, ended unknown, was not attempted or overwrote a concurrent
/// edit, or the source read was incomplete so retirements were withheld), 4 refused by a
/// safety rule (a guard tripped, or the plan is too old), 5 busy (another run holds the lease),
/// 6 done with a warning (the CMDB holds duplicate CIs).
#[derive(Debug, Parser)]
#[command(
    name = "cmdb-reconcile",
    version = env!("CMDB_RECONCILE_VERSION"),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// What the run prints and where its metrics go (README "Output and logs", "Monitoring").
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Output and metrics")]
pub struct OutputArgs {
    /// Print the summary table on stdout even when it is not a terminal or with -q (by
    /// default it is printed on a terminal only, so a quiet cron run prints nothing).
    #[arg(long, global = true)]
    pub summary: bool,

    /// Write the run's metrics to this node-exporter textfile (`*.prom`), atomically;
    /// overrides [metrics] file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "CMDB_RECONCILE_METRICS_FILE"
    )]
    pub metrics_file: Option<PathBuf>,

    /// Push the run's metrics to this Pushgateway (`http://pushgateway:9091`) as job
    /// `cmdb-reconcile`; overrides [metrics] push_gateway.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "CMDB_RECONCILE_PUSH_GATEWAY"
    )]
    pub push_gateway: Option<String>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log format: `text` for people, `json` for log collectors; `auto` picks text on a
    /// terminal and JSON otherwise (a CronJob's log).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto, env = "CMDB_RECONCILE_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// More log detail (-v debug, -vv trace). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings and errors in the log, no progress, and no summary unless --summary: a
    /// successful run prints nothing.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute the plan and write the drift report; changes nothing.
    ///
    /// Reads the inventory and the CMDB from snapshot files (--source-file, --target-file) or
    /// from the entries of a config file (--config), and writes the run's index.md into
    /// --out-dir, and each sync's plan.json, drift.csv, drift.md and drift.html into a folder
    /// of its own there, named after its mapping.
    Plan(PlanArgs),

    /// Apply a reviewed plan (plan.json) to ServiceNow: exactly that plan, nothing else.
    ///
    /// Writes outcome.json next to the plan and refreshes the reports with what happened.
    /// CIs changed since the plan was made are skipped as stale.
    Apply(ApplyArgs),

    /// Plan, then apply, in one go (for cron and CronJobs); --dry-run stops after the report.
    Run(RunArgs),

    /// The catalog pass alone (for a frequent CronJob): approved ServiceNow requested items
    /// of linked catalog items become CloudForms orders, and CloudForms' progress is written
    /// back to them ([catalog] in the config; README "Service catalog").
    ///
    /// Holds the catalog lease (not the CMDB's); --dry-run plans and reports the orders and
    /// status updates without making them.
    Catalog(RunArgs),

    /// Validate mapping files and print what each one reads and writes.
    Check(CheckArgs),

    /// Run the whole job against built-in simulators of CloudForms and ServiceNow:
    /// plan, apply, and plan again to show that no drift is left. (A build without the
    /// `demo` feature keeps the command only to say how to get it.)
    Demo(DemoArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    ///
    /// e.g. `cmdb-reconcile completions bash > /etc/bash_completion.d/cmdb-reconcile`.
    Completions(CompletionsArgs),

    /// Print the man page (roff) on stdout, or write one page per command into --out-dir.
    ///
    /// e.g. `cmdb-reconcile man | man -l -`.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `cmdb-reconcile.1` and a page per command (`cmdb-reconcile-plan.1`, ...) here.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Config file with one or more [[sync]] entries (see README "Configuration").
    #[arg(long, short = 'c', env = "CMDB_RECONCILE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Mapping file (TOML); overrides the config's when a single sync is planned.
    #[arg(long, short = 'm', value_name = "FILE")]
    pub mapping: Option<PathBuf>,

    /// CloudForms inventory snapshot: a `GET /api/vms?expand=resources` response, a JSON
    /// array of VM records, or JSON lines.
    #[arg(long, value_name = "FILE")]
    pub source_file: Option<PathBuf>,

    /// CMDB export of the mapping's table: a Table API response (`{"result":[...]}`) or a
    /// CSV export with a header row of field names (must include sys_id).
    #[arg(long, value_name = "FILE")]
    pub target_file: Option<PathBuf>,

    /// Export of a referenced table, for lookups such as owner email -> sys_user
    /// (`sys_user=users.csv`); repeatable.
    #[arg(long = "reference", value_name = "TABLE=FILE", value_parser = parse_reference)]
    pub references: Vec<(String, PathBuf)>,

    #[command(flatten)]
    pub connections: ConnectionArgs,

    #[command(flatten)]
    pub report: ReportArgs,

    #[command(flatten)]
    pub plan_opts: PlanOpts,
}

/// Connection settings that may come from flags or the environment rather than the config
/// file (secrets in particular: a Kubernetes Secret mounted as env vars or files).
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Connections (flags or env; secrets best from env or files)")]
pub struct ConnectionArgs {
    /// CloudForms appliance URL (overrides [cloudforms] url).
    #[arg(long, env = "CLOUDFORMS_URL", value_name = "URL")]
    pub cloudforms_url: Option<String>,
    /// CloudForms user.
    #[arg(long, env = "CLOUDFORMS_USER", value_name = "USER")]
    pub cloudforms_user: Option<String>,
    /// CloudForms password (prefer the env var or [cloudforms] password_file).
    #[arg(
        long,
        env = "CLOUDFORMS_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub cloudforms_password: Option<String>,
    /// CloudForms group to act as (X-MIQ-Group).
    #[arg(long, env = "CLOUDFORMS_GROUP", value_name = "GROUP")]
    pub cloudforms_group: Option<String>,
    /// CloudForms requests per second at most, `0` = no ceiling (overrides [cloudforms] max_rps).
    #[arg(long, env = "CLOUDFORMS_MAX_RPS", value_name = "N")]
    pub cloudforms_max_rps: Option<f64>,
    /// ServiceNow instance URL (overrides [servicenow] url).
    #[arg(long, env = "SERVICENOW_URL", value_name = "URL")]
    pub servicenow_url: Option<String>,
    /// ServiceNow user.
    #[arg(long, env = "SERVICENOW_USER", value_name = "USER")]
    pub servicenow_user: Option<String>,
    /// ServiceNow password (prefer the env var or [servicenow] password_file).
    #[arg(
        long,
        env = "SERVICENOW_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub servicenow_password: Option<String>,
    /// ServiceNow OAuth client id (switches to OAuth).
    #[arg(long, env = "SERVICENOW_CLIENT_ID", value_name = "ID")]
    pub servicenow_client_id: Option<String>,
    /// ServiceNow OAuth client secret.
    #[arg(
        long,
        env = "SERVICENOW_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub servicenow_client_secret: Option<String>,
    /// ServiceNow requests per second at most, `0` = no ceiling (overrides [servicenow] max_rps).
    #[arg(long, env = "SERVICENOW_MAX_RPS", value_name = "N")]
    pub servicenow_max_rps: Option<f64>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The reviewed plan: `plan.json` written by `plan`.
    #[arg(long, short = 'p', value_name = "FILE")]
    pub plan: PathBuf,

    /// Config file ([servicenow] connection, [apply] settings).
    #[arg(long, short = 'c', env = "CMDB_RECONCILE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub connections: ConnectionArgs,

    #[command(flatten)]
    pub apply_opts: ApplyOpts,
}

#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Apply")]
pub struct ApplyOpts {
    /// Refuse a plan older than this (`24h`, `90m`, `0` = no limit); default 24h.
    #[arg(long, value_name = "DURATION")]
    pub max_plan_age: Option<String>,

    /// Writes in flight at once (default 8, or [apply] concurrency).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Send writes (creates too) through the Batch API, N per request (default 50, or [apply]
    /// batch_size; 0 or 1 = one request per write).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,

    /// Send no write after this long from the start of applying (`30m`, `0` = no limit);
    /// default 30m, or [apply] deadline. Writes not sent are reported not_attempted.
    #[arg(long, value_name = "DURATION")]
    pub deadline: Option<String>,

    /// Delete every claim of the ServiceNow lease before taking it: only when the run that
    /// holds it is known to be dead (README "Lease").
    #[arg(long)]
    pub force_unlock: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub plan: PlanArgs,

    /// Stop after writing the report; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub apply_opts: ApplyOpts,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// VMs in the simulated estate.
    #[arg(long, default_value_t = 5000)]
    pub vms: usize,

    /// Fraction of CIs with drifted fields.
    #[arg(long, default_value_t = 0.05)]
    pub drift: f64,

    /// Seed of the simulated estate.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Where the reports go (default reports/demo-<timestamp>/).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Reports")]
pub struct ReportArgs {
    /// The run's report folder (index.md, a folder per sync); default
    /// `<report dir>/<UTC timestamp>/`.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Report formats to write (comma-separated); default all.
    #[arg(long, value_delimiter = ',', value_name = "FORMAT", value_parser = clap::builder::PossibleValuesParser::new(["json", "csv", "markdown", "html"]))]
    pub format: Vec<String>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Plan")]
pub struct PlanOpts {
    /// Exit 2 when changes are planned, 0 when none (terraform's convention).
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Lift the count guards (max_retire, max_delete, max_update, max_create) and the
    /// min_source_ratio guard for this run; the report records that it was used. Never
    /// lifts the block on an incomplete or empty source read.
    #[arg(long)]
    pub allow_mass_change: bool,

    /// Plan as of this time (RFC 3339) instead of now: to reproduce a past run. With `run`
    /// or `catalog` only with --dry-run, or within a minute of the clock: a run that writes
    /// stamps its lease and claims with it (tests against dated simulators set
    /// CMDB_RECONCILE_TEST_CLOCK=1; README "Development").
    #[arg(long, value_name = "TIME", hide = true)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Mapping files to validate.
    #[arg(long, short = 'm', value_name = "FILE", required = true, num_args = 1..)]
    pub mapping: Vec<PathBuf>,

    /// Also check each mapping against its table's dictionary on the ServiceNow instance
    /// ([servicenow] of --config, or the SERVICENOW_* variables): every field it names must
    /// be a column of the table or a parent.
    #[arg(long)]
    pub live: bool,

    /// Config file (its [servicenow] connection, for --live).
    #[arg(long, short = 'c', env = "CMDB_RECONCILE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub connections: ConnectionArgs,
}

fn parse_reference(text: &str) -> Result<(String, PathBuf), String> {
    let (table, file) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not TABLE=FILE (e.g. sys_user=users.csv)"))?;
    if table.trim().is_empty() || file.trim().is_empty() {
        return Err(format!(
            "`{text}` is not TABLE=FILE (e.g. sys_user=users.csv)"
        ));
    }
    Ok((table.trim().to_owned(), PathBuf::from(file.trim())))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_and_apply_take_a_deadline() {
        for argv in [
            ["cmdb-reconcile", "run", "--deadline", "20m"].as_slice(),
            &[
                "cmdb-reconcile",
                "apply",
                "--plan",
                "p.json",
                "--deadline",
                "20m",
            ],
        ] {
            let opts = match Cli::try_parse_from(argv).unwrap().command {
                Command::Run(args) => args.apply_opts,
                Command::Apply(args) => args.apply_opts,
                _ => unreachable!(),
            };
            assert_eq!(opts.deadline.as_deref(), Some("20m"));
        }
    }

    #[test]
    fn references_parse() {
        assert_eq!(
            parse_reference("sys_user=u.csv").unwrap(),
            ("sys_user".into(), PathBuf::from("u.csv"))
        );
        assert!(parse_reference("sys_user").is_err());
        assert!(parse_reference("=u.csv").is_err());
    }
}
