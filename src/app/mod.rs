//! The imperative shell: one function per subcommand. It reads files and the live APIs,
//! calls the pure core, applies plans, writes reports and says what happened. The clock is
//! read once, in `main`, and passed in.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};

use crate::apply::OutcomeStatus;
use crate::apply::{self, ApplyOptions};
use crate::cli::{ApplyArgs, CheckArgs, PlanArgs, RunArgs};
use crate::cloudforms::CloudForms;
use crate::config::{Config, Location, SyncConfig};
use crate::lease::{self, Clock, Holder, Lease, LeaseConfig};
use crate::reconcile::mapping::Mapping;
use crate::reconcile::plan::{Plan, FORMAT_VERSION};
use crate::reconcile::planner::{self, Input};
use crate::reconcile::record::SourceRead;
use crate::reconcile::record::{Ci, References};
use crate::report::{self, Format};
use crate::servicenow::ServiceNow;
use crate::servicenow::ServiceNowConfig;
use crate::ticket::Ticket;

mod status;

use crate::{cloudforms, servicenow};
pub use status::{refused, worst, Status};

/// Reads and compiles a mapping file.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
pub fn load_mapping(path: &Path) -> Result<Mapping> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read mapping file `{}`", path.display()))?;
    Ok(Mapping::parse(&text, &path.display().to_string())?)
}

/// `check`: validates mapping files and says what each reads and writes.
pub fn check(args: &CheckArgs) -> Result<Status> {
    let mut failed = 0;
    for path in &args.mapping {
        match load_mapping(path) {
            Ok(m) => println!(
                "ok: {} ({} -> {}, scope `{}`)\n  identity: {}\n  fields: {}\n  source attributes: {}",
                path.display(),
                m.source.collection,
                m.target.table,
                m.target.scope.text,
                m.identify.iter().map(|r| r.describe()).collect::<Vec<_>>().join(", then "),
                m.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
                m.source_attributes().join(","),
            ),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} mapping files are invalid",
            args.mapping.len()
        );
    }
    Ok(Status::Clean)
}

/// A plan and where its reports went.
pub struct Planned {
    pub plan: Plan,
    pub dir: PathBuf,
}

/// `plan`: computes each sync's plan and writes its reports.
pub async fn plan(args: &PlanArgs, now: DateTime<Utc>) -> Result<Status> {
    let config = Config::for_plan(args, &Default::default())?;
    let planned = plan_all(&config, now, args.plan_opts.allow_mass_change).await?;
    print!("{}", summary_table(&planned));
    Ok(worst(planned.iter().map(|p| {
        Status::of(&p.plan, None, args.plan_opts.detailed_exitcode)
    })))
}

/// Plans every sync of the config and writes the reports (always including plan.json).
pub async fn plan_all(
    config: &Config,
    now: DateTime<Utc>,
    allow_mass_change: bool,
) -> Result<Vec<Planned>> {
    let mut planned = Vec::new();
    for sync in &config.syncs {
        let started = std::time::Instant::now();
        let plan = plan_sync(config, sync, now, allow_mass_change).await?;
        let seconds = started.elapsed().as_secs_f64();
        let dir = match &config.out_dir {
            Some(dir) => dir.clone(),
            None => config.report_dir.join(format!(
                "{}-{}",
                now.format("%Y%m%dT%H%M%SZ"),
                plan.mapping.name
            )),
        };
        let mut formats = config.formats.clone();
        if !formats.contains(&Format::Json) {
            formats.push(Format::Json);
        }
        report::write_reports(&plan, None, &dir, &formats)?;
        tracing::info!(
            mapping = %plan.mapping.name,
            creates = plan.summary.creates,
            updates = plan.summary.updates,
            retirements = plan.summary.retirements + plan.summary.deletes + plan.summary.marked_absent,
            issues = plan.summary.issues,
            source_complete = plan.source.complete,
            seconds,
            report = %dir.display(),
            "plan written"
        );
        planned.push(Planned { plan, dir });
    }
    Ok(planned)
}

async fn plan_sync(
    config: &Config,
    sync: &SyncConfig,
    now: DateTime<Utc>,
    allow_mass_change: bool,
) -> Result<Plan> {
    let mapping = load_mapping(&sync.mapping)?;
    let servicenow = match (&sync.target, &config.servicenow) {
        (Location::Live, Some(cfg)) => Some(ServiceNow::new(cfg.clone())?),
        _ => None,
    };
    // The two reads are independent: run them side by side.
    let (source, target) = tokio::join!(
        read_source(config, sync, &mapping),
        read_target(sync, &mapping, servicenow.as_ref())
    );
    let source = source?;
    let (cis, target_origin) = target?;
    let references = read_references(sync, &mapping, &source, servicenow.as_ref()).await?;
    if let Some(reason) = &source.incomplete {
        tracing::warn!(mapping = %mapping.name, "source read incomplete: {reason}; no CI will be retired this run");
    }
    Ok(plan_from(
        &mapping,
        &source,
        &cis,
        target_origin,
        &references,
        now,
        allow_mass_change,
    ))
}

async fn read_source(config: &Config, sync: &SyncConfig, mapping: &Mapping) -> Result<SourceRead> {
    match &sync.source {
        Location::File(path) => Ok(cloudforms::snapshot::read(path)?),
        Location::Live => {
            let cfg = config
                .cloudforms
                .clone()
                .ok_or_else(|| anyhow!("no [cloudforms] connection configured"))?;
            let client = CloudForms::new(cfg)?;
            let read = client
                .read(
                    &mapping.source.collection,
                    &mapping.source_attributes(),
                    &mapping.source.filters,
                )
                .await
                .with_context(|| format!("reading CloudForms for mapping `{}`", mapping.name))?;
            tracing::info!(
                records = read.records.len(),
                requests = client.requests_sent(),
                "read {}",
                read.origin
            );
            Ok(read)
        }
    }
}

async fn read_target(
    sync: &SyncConfig,
    mapping: &Mapping,
    sn: Option<&ServiceNow>,
) -> Result<(Vec<Ci>, String)> {
    match (&sync.target, sn) {
        (Location::File(path), _) => Ok((
            servicenow::snapshot::read(path)?,
            path.display().to_string(),
        )),
        (Location::Live, Some(sn)) => {
            let table = &mapping.target.table;
            let cis = sn
                .read_table(table, &mapping.target_fields(), None)
                .await
                .with_context(|| {
                    format!(
                        "reading ServiceNow table `{table}` for mapping `{}`",
                        mapping.name
                    )
                })?;
            tracing::info!(
                cis = cis.len(),
                requests = sn.requests_sent(),
                "read table {table}"
            );
            Ok((cis, format!("ServiceNow table {table}")))
        }
        (Location::Live, None) => bail!("no [servicenow] connection configured"),
    }
}

async fn read_references(
    sync: &SyncConfig,
    mapping: &Mapping,
    source: &SourceRead,
    sn: Option<&ServiceNow>,
) -> Result<References> {
    let mut references = References::default();
    for (table, path) in &sync.references {
        references.add_table(table, servicenow::snapshot::read(path)?);
    }
    let Some(sn) = sn else { return Ok(references) };
    for (lookup, values) in mapping.lookup_keys(&source.records) {
        if references.has_table(&lookup.table) {
            continue; // an export file was given for it
        }
        let rows = sn
            .read_where_in(
                &lookup.table,
                &lookup.by,
                &values,
                std::slice::from_ref(&lookup.by),
            )
            .await
            .with_context(|| {
                format!(
                    "resolving `{}` by `{}` in ServiceNow",
                    lookup.table, lookup.by
                )
            })?;
        references.add_table(&lookup.table, rows);
    }
    Ok(references)
}

/// Runs the pure planner on what was read.
pub fn plan_from(
    mapping: &Mapping,
    source: &SourceRead,
    cis: &[Ci],
    target_origin: String,
    references: &References,
    now: DateTime<Utc>,
    allow_mass_change: bool,
) -> Plan {
    planner::plan(Input {
        mapping,
        records: &source.records,
        source_origin: source.origin.clone(),
        source_incomplete: source.incomplete.clone(),
        cis,
        target_origin,
        references,
        now,
        allow_mass_change,
    })
}

/// `apply`: carries out a reviewed plan file.
pub async fn apply(args: &ApplyArgs, now: DateTime<Utc>) -> Result<Status> {
    let cfg = Config::for_apply(&args.config, &args.connections, &args.apply_opts)?;
    let plan = read_plan(&args.plan)?;
    if let Some(max_age) = cfg.max_plan_age {
        let age = now - plan.generated_at;
        if age > chrono::TimeDelta::from_std(max_age).unwrap_or(chrono::TimeDelta::MAX) {
            eprintln!(
                "refused: the plan `{}` was made {} ago, more than --max-plan-age {}; plan again and review the new plan",
                args.plan.display(),
                humanize(age),
                humanize(chrono::TimeDelta::from_std(max_age).unwrap_or_default())
            );
            return Ok(Status::Refused);
        }
    }
    let dir = args
        .plan
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let Some(lease) = take_lease(
        &cfg.lease,
        Some(&cfg.servicenow),
        args.apply_opts.force_unlock,
        now,
    )
    .await?
    else {
        return Ok(Status::Busy);
    };
    let sn = ServiceNow::new(cfg.servicenow)?;
    let guard = apply::Guard::new(&cfg.options);
    let status = apply_planned(&Planned { plan, dir }, &sn, &cfg.options, &guard).await;
    Ok(release(lease, status?).await)
}

/// Takes the lease for a command that writes (README "Lease"). `None` when another run
/// holds it: the command then ends with [`Status::Busy`] after saying who holds it.
async fn take_lease(
    cfg: &LeaseConfig,
    sn: Option<&ServiceNowConfig>,
    force_unlock: bool,
    now: DateTime<Utc>,
) -> Result<Option<Lease>> {
    let client = sn.map(|c| ServiceNow::new(c.clone())).transpose()?;
    if force_unlock {
        match &client {
            Some(client) if cfg.servicenow => {
                let claims = lease::force_unlock(cfg, client).await?;
                tracing::warn!(claims, "--force-unlock: deleted every claim of the lease");
            }
            _ => tracing::warn!("--force-unlock: no ServiceNow lease to break"),
        }
    }
    let instance = sn.map_or("offline", |c| c.url.as_str());
    let holder = Holder::this_process();
    match Lease::acquire(cfg, instance, client.as_ref(), &holder, Clock::new(now)).await {
        Ok(lease) => Ok(Some(lease)),
        Err(e) if e.is_busy() => {
            eprintln!("busy: {e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Releases the lease; a lease lost while running makes the run at best partial.
async fn release(lease: Lease, status: Status) -> Status {
    let lost = lease.lost();
    lease.release().await;
    if lost {
        status.max(Status::Partial)
    } else {
        status
    }
}

/// Reads and checks a plan file.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads and writes files; the core never does"
)]
pub fn read_plan(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read plan `{}`", path.display()))?;
    let version: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("plan `{}` is not JSON", path.display()))?;
    let found = version
        .get("format_version")
        .and_then(serde_json::Value::as_u64);
    if found != Some(u64::from(FORMAT_VERSION)) {
        bail!(
            "plan `{}` has format_version {found:?}; this cmdb-reconcile reads {FORMAT_VERSION}: plan again with this version",
            path.display()
        );
    }
    serde_json::from_value(version)
        .with_context(|| format!("plan `{}` is not a cmdb-reconcile plan", path.display()))
}

/// Applies one plan (unless a guard refuses it), writes outcome.json and refreshes the reports.
async fn apply_planned(
    planned: &Planned,
    sn: &ServiceNow,
    options: &ApplyOptions,
    guard: &apply::Guard,
) -> Result<Status> {
    let plan = &planned.plan;
    if refused(plan) {
        for trip in &plan.safety.guards_tripped {
            eprintln!(
                "refused: {}: guard {}: {}",
                plan.mapping.name, trip.guard, trip.message
            );
        }
        return Ok(Status::Refused);
    }
    let started = std::time::Instant::now();
    let outcomes = apply::apply(plan, sn, options, guard).await;
    let written = report::write_reports(plan, Some(&outcomes), &planned.dir, &Format::ALL)?;
    let counts = apply::tally(&outcomes);
    let count = |s| counts.get(&s).copied().unwrap_or(0);
    tracing::info!(
        mapping = %plan.mapping.name,
        applied = count(OutcomeStatus::Applied),
        overwrote_concurrent_edit = count(OutcomeStatus::OverwroteConcurrentEdit),
        failed = count(OutcomeStatus::Failed),
        unknown = count(OutcomeStatus::Unknown),
        not_attempted = count(OutcomeStatus::NotAttempted),
        skipped_stale = count(OutcomeStatus::SkippedStale),
        skipped = count(OutcomeStatus::Skipped),
        requests = sn.requests_sent(),
        seconds = started.elapsed().as_secs_f64(),
        "plan applied"
    );
    println!("{}", outcome_line(plan, count, &planned.dir));
    for o in outcomes
        .iter()
        .filter(|o| o.status.needs_attention())
        .take(10)
    {
        println!(
            "  {} {}: {}",
            o.status,
            o.sys_id
                .as_deref()
                .or(o.source_id.as_deref())
                .unwrap_or("?"),
            o.message
        );
    }
    tracing::debug!(files = written.len(), "reports refreshed");
    Ok(Status::of(plan, Some(&counts), false))
}

/// `<mapping>: applied 3, failed 1, ... (outcome: <file>)`, naming every status that
/// occurred besides the four always shown.
fn outcome_line(plan: &Plan, count: impl Fn(OutcomeStatus) -> usize, dir: &Path) -> String {
    let always = [
        OutcomeStatus::Applied,
        OutcomeStatus::Failed,
        OutcomeStatus::SkippedStale,
        OutcomeStatus::Skipped,
    ];
    let parts: Vec<String> = OutcomeStatus::ALL
        .into_iter()
        .filter(|s| always.contains(s) || count(*s) > 0)
        .map(|s| format!("{} {}", s.label().to_lowercase(), count(s)))
        .collect();
    format!(
        "{}: {} (outcome: {})",
        plan.mapping.name,
        parts.join(", "),
        dir.join(report::OUTCOME_FILE).display()
    )
}

/// `run`: plan then apply, for cron. With `[ticket]`, the run is tracked in a ServiceNow
/// ticket that is resolved on success and left open, urgent, on anything else.
pub async fn run(args: &RunArgs, now: DateTime<Utc>) -> Result<Status> {
    let config = Config::for_plan(&args.plan, &args.apply_opts)?;
    // A dry run writes nothing, so it needs no lease and never waits for one.
    let lease = if args.dry_run {
        None
    } else {
        let servicenow = config.servicenow.as_ref();
        match take_lease(&config.lease, servicenow, args.apply_opts.force_unlock, now).await? {
            Some(lease) => Some(lease),
            None => return Ok(Status::Busy),
        }
    };
    let ticket = match (&config.ticket, &config.servicenow) {
        (Some(t), Some(sn)) if !args.dry_run => {
            let run_id = format!("cmdb-reconcile-{}", now.format("%Y%m%dT%H%M%SZ"));
            let mappings: Vec<String> = config
                .syncs
                .iter()
                .map(|s| s.mapping.display().to_string())
                .collect();
            let description = format!(
                "Scheduled reconciliation of the CMDB with CloudForms.\nMappings: {}",
                mappings.join(", ")
            );
            Ticket::open(
                &ServiceNow::new(sn.clone())?,
                t,
                &format!("run {}", now.format("%Y-%m-%d %H:%M UTC")),
                &description,
                &run_id,
            )
            .await
        }
        _ => None,
    };
    let result = run_steps(&config, args, now).await;
    if let Some(ticket) = ticket {
        match &result {
            Ok((Status::Clean, summary)) => ticket.succeed(&format!("Completed.\n{summary}")).await,
            Ok((status, summary)) => {
                ticket
                    .fail(&format!(
                        "Ended {status:?} (exit code {}).\n{summary}",
                        status.exit_code()
                    ))
                    .await
            }
            Err(e) => ticket.fail(&format!("Failed: {e:#}")).await,
        }
    }
    let status = result.map(|(status, _)| status);
    match lease {
        Some(lease) => {
            let released = release(lease, Status::Clean).await;
            status.map(|s| s.max(released))
        }
        None => status,
    }
}

async fn run_steps(
    config: &Config,
    args: &RunArgs,
    now: DateTime<Utc>,
) -> Result<(Status, String)> {
    let planned = plan_all(config, now, args.plan.plan_opts.allow_mass_change).await?;
    let summary = summary_table(&planned);
    print!("{summary}");
    if args.dry_run {
        let detailed = args.plan.plan_opts.detailed_exitcode;
        let status = worst(planned.iter().map(|p| Status::of(&p.plan, None, detailed)));
        return Ok((status, summary));
    }
    Ok((run_apply(config, &planned).await?, summary))
}

/// Applies each plan that has changes; the worst status wins. The deadline and the breaker
/// hold for all of them together.
pub async fn run_apply(config: &Config, planned: &[Planned]) -> Result<Status> {
    let guard = apply::Guard::new(&config.apply);
    let mut status = Status::Clean;
    for p in planned {
        let this = if refused(&p.plan) || !p.plan.has_changes() {
            Status::of(&p.plan, Some(&Default::default()), false)
        } else {
            let cfg = config.servicenow.clone().ok_or_else(|| {
                anyhow!(
                    "applying `{}` needs a [servicenow] connection",
                    p.plan.mapping.name
                )
            })?;
            let sn = ServiceNow::new(cfg)?;
            apply_planned(p, &sn, &config.apply, &guard).await?
        };
        status = status.max(this);
    }
    Ok(status)
}

fn humanize(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds();
    match secs {
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The short summary printed on stdout (see [`report::summary`]).
pub fn summary_table(planned: &[Planned]) -> String {
    report::summary::summary_table(planned.iter().map(|p| (&p.plan, p.dir.as_path())))
}
