//! The imperative shell: one function per subcommand. It reads files and the live APIs,
//! calls the pure core, applies plans, writes reports and says what happened. The clock is
//! read once, in `main`, and passed in.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};

use crate::apply::OutcomeStatus;
use crate::apply::{self, ApplyOptions};
use crate::cli::{ApplyArgs, CheckArgs, PlanArgs, RunArgs};
use crate::config::{Config, Location, SyncConfig};
use crate::lease::{self, Clock, Holder, Lease, LeaseConfig};
use crate::output::{self, seconds, Level};
use crate::reconcile::mapping::{disjoint, Mapping};
use crate::reconcile::plan::{Plan, FORMAT_VERSION, SECRET_FORMAT_VERSION};
use crate::reconcile::planner::{self, Input};
use crate::report::summary::Counts;
use crate::report::{self, Format};
use crate::review::ReviewMode;
use crate::servicenow::ServiceNow;
use crate::servicenow::ServiceNowConfig;
use crate::ticket::Ticket;
use crate::{metrics, progress};

mod catalog;
mod read;
mod review;
mod status;

pub use catalog::catalog;
#[cfg(feature = "demo")]
pub(crate) use catalog::in_run as catalog_pass;

use read::{
    check_fields, read_classifications, read_references, read_relations, read_schema, read_source,
    read_target,
};

use crate::servicenow;
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

/// `check`: validates mapping files and says what each reads and writes; with `--live`,
/// checks each against its table's dictionary on the instance too.
pub async fn check(args: &CheckArgs) -> Result<Status> {
    let sn = if args.live {
        let cfg = Config::for_apply(&args.config, &args.connections, &Default::default())
            .context("--live needs a ServiceNow connection")?;
        Some(ServiceNow::new(cfg.servicenow)?)
    } else {
        None
    };
    let mut failed = 0;
    for path in &args.mapping {
        // A catalog link (README "Service catalog") is checked as one.
        if let Some(result) = catalog::check_link(path) {
            match result {
                Ok(line) => println!("{}", report::summary::printable(&line)),
                Err(e) => {
                    failed += 1;
                    output::error(&format!("{e:#}"));
                }
            }
            continue;
        }
        let checked = match load_mapping(path) {
            Ok(m) => match &sn {
                Some(sn) => check_live(&m, path, sn).await.map(|()| m),
                None => Ok(m),
            },
            Err(e) => Err(e),
        };
        match checked {
            Ok(m) => println!(
                "{}",
                report::summary::printable(&format!(
                    "ok: {} ({} -> {}, scope `{}`)\n  identity: {}\n  fields: {}\n  source attributes: {}",
                    path.display(),
                    m.source.collection,
                    m.target.table,
                    m.target.scope.text,
                    m.identify.iter().map(|r| r.describe()).collect::<Vec<_>>().join(", then "),
                    m.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
                    m.source_attributes().join(","),
                ))
            ),
            Err(e) => {
                failed += 1;
                // A JSON log event in JSON mode, like every other error.
                output::error(&format!("{e:#}"));
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

/// The live part of `check`: the table's dictionary, then the mapping's fields against it.
async fn check_live(mapping: &Mapping, path: &Path, sn: &ServiceNow) -> Result<()> {
    let table = &mapping.target.table;
    let schema = servicenow::dictionary::read_schema(sn, table)
        .await
        .with_context(|| format!("reading the dictionary of ServiceNow table `{table}`"))?;
    if schema.columns.is_empty() {
        bail!("ServiceNow has no dictionary for table `{table}` (misspelt, or no read access to sys_dictionary)");
    }
    check_fields(mapping, &schema, path)
}

/// A plan and where its reports went.
pub struct Planned {
    pub plan: Plan,
    pub dir: PathBuf,
}

/// `plan`: computes each sync's plan and writes its reports into the run's folder.
pub async fn plan(args: &PlanArgs, now: DateTime<Utc>) -> Result<Status> {
    let config = Config::for_plan(args, &Default::default())?;
    metrics::set_config(config.ops.metrics.clone());
    let planned = plan_all(&config, now, args.plan_opts.allow_mass_change).await?;
    output::summary(&summary_table(&planned));
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
    plan_all_noted(config, now, allow_mass_change)
        .await
        .map(|(planned, _)| planned)
}

/// [`plan_all`], with what the reviewed syncs would ask approval for (README "Review in
/// ServiceNow"), for the summary.
async fn plan_all_noted(
    config: &Config,
    now: DateTime<Utc>,
    allow_mass_change: bool,
) -> Result<(Vec<Planned>, Vec<String>)> {
    refuse_overlapping_syncs(config)?;
    let run = run_dir(config, now);
    let folders = sync_folders(config)?;
    let mut planned = Vec::new();
    let mut notes = Vec::new();
    for (sync, folder) in config.syncs.iter().zip(&folders) {
        let dir = run.join(folder);
        let mut p = plan_one(config, sync, now, allow_mass_change, dir).await?;
        if sync.review == ReviewMode::Approve {
            if let Some(note) = review::dry_run(config, &p)? {
                tracing::info!("{}", report::summary::printable(&note));
                notes.push(note);
                // The whole plan holds what waits for approval: `apply` must not take it.
                p.plan.held_for_review = Some(crate::reconcile::review::HELD.to_owned());
                report::write_reports(&p.plan, None, &p.dir, &[Format::Json])?;
            }
        }
        planned.push(p);
    }
    write_index(&run, now, &planned, &vec![false; planned.len()])?;
    prune_reports(config, now, &run);
    Ok((planned, notes))
}

/// The run's folder: `--out-dir`, or `<report dir>/<UTC time>/`. Each sync's reports go in a
/// folder of its own in it ([`sync_folders`]), next to the run's `index.md`.
fn run_dir(config: &Config, now: DateTime<Utc>) -> PathBuf {
    match &config.out_dir {
        Some(dir) => dir.clone(),
        None => config
            .report_dir
            .join(now.format(report::retention::RUN_STAMP).to_string()),
    }
}

/// Each sync's folder in the run folder, in config order: its mapping's name (characters
/// other than letters, digits, `.`, `_` and `-` as `_`), with `-2`, `-3`... when a name
/// repeats.
fn sync_folders(config: &Config) -> Result<Vec<String>> {
    let mut folders: Vec<String> = Vec::new();
    for sync in &config.syncs {
        let name = load_mapping(&sync.mapping)?.name;
        let mut base: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if base.is_empty() || base.starts_with('.') {
            base.insert(0, '_');
        }
        let mut folder = base.clone();
        let mut n = 1;
        while folders.contains(&folder) {
            n += 1;
            folder = format!("{base}-{n}");
        }
        folders.push(folder);
    }
    Ok(folders)
}

/// The run's `index.md`: every sync of the run, with links to its reports.
fn write_index(
    run: &Path,
    now: DateTime<Utc>,
    planned: &[Planned],
    applied: &[bool],
) -> Result<()> {
    let syncs: Vec<report::index::RunSync> = planned
        .iter()
        .zip(applied)
        .map(|(p, &applied)| report::index::RunSync {
            plan: &p.plan,
            folder: p.dir.file_name().and_then(|f| f.to_str()).unwrap_or(""),
            applied,
        })
        .collect();
    report::write_index(run, now, &syncs)?;
    Ok(())
}

/// `run`: each sync planned and applied before the next is planned, in config order
/// (parents first: vCenters, datacenters, clusters, hosts, datastores, VMs), so a later
/// sync's lookups and relationships find the CIs an earlier one created in the same run.
/// Each sync applies exactly the plan written to its report folder.
pub async fn plan_and_apply(
    config: &Config,
    now: DateTime<Utc>,
    allow_mass_change: bool,
) -> Result<(Vec<Planned>, Status)> {
    plan_and_apply_noted(config, now, allow_mass_change, None)
        .await
        .map(|(planned, status, _)| (planned, status))
}

/// [`plan_and_apply`], with what the reviewed syncs' change requests did (README "Review
/// in ServiceNow"), for the summary.
async fn plan_and_apply_noted(
    config: &Config,
    now: DateTime<Utc>,
    allow_mass_change: bool,
    lease_lost: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> Result<(Vec<Planned>, Status, Vec<String>)> {
    refuse_overlapping_syncs(config)?;
    let guard = apply::Guard::new(&config.apply);
    if let Some(lost) = lease_lost {
        guard.watch_lease(lost);
    }
    let run = run_dir(config, now);
    let folders = sync_folders(config)?;
    let mut planned = Vec::new();
    let mut applied = Vec::new();
    let mut status = Status::Clean;
    let mut notes = Vec::new();
    for (sync, folder) in config.syncs.iter().zip(&folders) {
        if sync.review == ReviewMode::Approve {
            let r = review::run_sync(
                config,
                sync,
                now,
                allow_mass_change,
                run.join(folder),
                &guard,
            )
            .await?;
            status = status.max(r.status);
            applied.push(!refused(&r.planned.plan) && r.planned.plan.has_changes());
            notes.extend(r.notes);
            planned.push(r.planned);
            continue;
        }
        let p = plan_one(config, sync, now, allow_mass_change, run.join(folder)).await?;
        status = status.max(apply_one(config, &p, &guard).await?);
        applied.push(!refused(&p.plan) && p.plan.has_changes());
        planned.push(p);
    }
    write_index(&run, now, &planned, &applied)?;
    prune_reports(config, now, &run);
    Ok((planned, status, notes))
}

/// Plans one sync and writes its reports.
async fn plan_one(
    config: &Config,
    sync: &SyncConfig,
    now: DateTime<Utc>,
    allow_mass_change: bool,
    dir: PathBuf,
) -> Result<Planned> {
    let started = std::time::Instant::now();
    let plan = plan_sync(config, sync, now, allow_mass_change).await?;
    let elapsed = started.elapsed();
    let mut formats = config.formats.clone();
    if !formats.contains(&Format::Json) {
        formats.push(Format::Json);
    }
    report::write_reports(&plan, None, &dir, &formats)?;
    metrics::planned(&plan);
    // The summary table's words (`Counts`), field for field (README "Output and logs").
    let c = Counts::of(&plan);
    tracing::info!(
        mapping = %plan.mapping.name,
        create = c.create,
        update = c.update,
        heartbeat = c.heartbeat,
        absent = c.absent,
        retire = c.retire,
        delete = c.delete,
        order = c.order,
        unchanged = c.unchanged,
        quarantined = c.quarantined,
        issues = c.issues,
        source_complete = plan.source.complete,
        seconds = seconds(elapsed),
        report = %dir.display(),
        "plan written"
    );
    warn_about(&plan);
    Ok(Planned { plan, dir })
}

/// `[report] keep`: old run folders go once this run's is written.
fn prune_reports(config: &Config, now: DateTime<Utc>, run: &Path) {
    let (None, Some(keep)) = (&config.out_dir, config.ops.report_keep) else {
        return;
    };
    match report::retention::prune(&config.report_dir, keep, now, &[run.to_path_buf()]) {
        Ok(removed) if !removed.is_empty() => tracing::info!(
            removed = removed.len(),
            dir = %config.report_dir.display(),
            "old report folders removed ([report] keep)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(
            dir = %config.report_dir.display(),
            "cannot prune old report folders: {e}"
        ),
    }
}

/// Says on stderr what a reviewer must not miss, whatever is printed on stdout: withheld
/// retirements and tripped guards.
fn warn_about(plan: &Plan) {
    let mapping = plan.mapping.name.as_str();
    if let Some(reason) = &plan.safety.retirements_blocked {
        tracing::warn!(
            mapping,
            withheld = plan.safety.retirements_withheld,
            "{}",
            report::summary::printable(&format!(
                "{mapping}: {} retirements withheld: {reason}",
                plan.safety.retirements_withheld
            ))
        );
    }
    for trip in &plan.safety.guards_tripped {
        let verdict = if plan.safety.mass_change_allowed {
            "lifted by --allow-mass-change"
        } else {
            "plan refused"
        };
        tracing::warn!(
            mapping,
            guard = %trip.guard,
            "guard {}: {mapping}: {} ({verdict})",
            trip.guard,
            trip.message
        );
    }
}

/// Two syncs that could turn one record into a CI each (the same collection into the same
/// table, or into two CMDB classes) would fight over it or create it twice: refused unless
/// their source filters cannot both pass (e.g. `vendor=vmware` and `vendor!=vmware`).
fn refuse_overlapping_syncs(config: &Config) -> Result<()> {
    let mappings = config
        .syncs
        .iter()
        .map(|s| Ok((s.mapping.clone(), load_mapping(&s.mapping)?)))
        .collect::<Result<Vec<_>>>()?;
    for (i, (path_a, a)) in mappings.iter().enumerate() {
        for (path_b, b) in &mappings[i + 1..] {
            let cmdb = |t: &str| t.starts_with("cmdb_ci");
            let same_home = a.target.table == b.target.table
                || (cmdb(&a.target.table) && cmdb(&b.target.table));
            if a.source.collection == b.source.collection
                && same_home
                && !disjoint(&a.source.filters, &b.source.filters)
            {
                bail!(
                    "`{}` and `{}` both map CloudForms `{}` into the CMDB ({} and {}) with source filters that can both pass, so one record could become two CIs; give them disjoint filters (e.g. `vendor=vmware` and `vendor!=vmware`)",
                    path_a.display(),
                    path_b.display(),
                    a.source.collection,
                    a.target.table,
                    b.target.table
                );
            }
        }
    }
    Ok(())
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
    // The reads are independent: run them side by side. The relationship and classification
    // rows need neither the records nor the table's schema (which only refines the fields'
    // rules), so they are read alongside; only the lookups wait for the records, whose
    // values they resolve.
    let reading = std::time::Instant::now();
    let (source, target, schema, relations, classifications) = tokio::join!(
        read_source(config, sync, &mapping, now),
        read_target(sync, &mapping, servicenow.as_ref()),
        read_schema(sync, &mapping, servicenow.as_ref()),
        read_relations(sync, &mapping, servicenow.as_ref()),
        read_classifications(sync, &mapping, servicenow.as_ref())
    );
    // The mapping is checked against the table before anything else is trusted.
    let mut mapping = mapping;
    match schema? {
        Some(schema) => {
            check_fields(&mapping, &schema, &sync.mapping)?;
            mapping.apply_schema(&schema);
        }
        None if !mapping.label_fields().is_empty() => bail!(
            "`{}`: {} written by choice label (`choice = \"label\"`) need the table's choices: plan against the live instance, or give the sync `dictionary` and `choices` exports",
            sync.mapping.display(),
            mapping.label_fields().join(", ")
        ),
        None => {}
    }
    let source = source?;
    let (cis, target_origin) = target?;
    let relations = relations?;
    let classifications = classifications?;
    let references = read_references(sync, &mapping, &source, servicenow.as_ref()).await?;
    progress::reads_finished();
    metrics::phase(&mapping.name, "read", reading.elapsed());
    if let Some(reason) = &source.incomplete {
        tracing::warn!(mapping = %mapping.name, "{}", report::summary::printable(&format!("source read incomplete: {reason}; no CI will be retired this run")));
    }
    let planning = std::time::Instant::now();
    let _spinner = progress::phase(format!("planning {}", mapping.name));
    let plan = planner::plan(Input {
        mapping: &mapping,
        // Owned: the planner lets the records go once it has evaluated them.
        records: source.records.into(),
        source_origin: source.origin,
        source_incomplete: source.incomplete,
        cis: &cis,
        target_origin,
        references: &references,
        now,
        allow_mass_change,
        relations: relations.as_ref(),
        classifications: classifications.as_ref(),
    });
    metrics::phase(&mapping.name, "plan", planning.elapsed());
    Ok(plan)
}

/// `apply`: carries out a reviewed plan file.
pub async fn apply(args: &ApplyArgs, now: DateTime<Utc>) -> Result<Status> {
    let cfg = Config::for_apply(&args.config, &args.connections, &args.apply_opts)?;
    metrics::set_config(cfg.ops.metrics.clone());
    let plan = read_plan(&args.plan)?;
    if let Some(why) = &plan.held_for_review {
        output::notice(
            Level::Warn,
            "refused",
            &format!("`{}`: {why}", args.plan.display()),
        );
        return Ok(Status::Refused);
    }
    if let Some(max_age) = cfg.max_plan_age {
        let age = now - plan.generated_at;
        if age > chrono::TimeDelta::from_std(max_age).unwrap_or(chrono::TimeDelta::MAX) {
            output::notice(
                Level::Warn,
                "refused",
                &format!(
                    "the plan `{}` was made {} ago, more than --max-plan-age {}; plan again and review the new plan",
                    args.plan.display(),
                    humanize(age),
                    humanize(chrono::TimeDelta::from_std(max_age).unwrap_or_default())
                ),
            );
            return Ok(Status::Refused);
        }
    }
    let dir = args
        .plan
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if !plan.orders.is_empty() {
        return catalog::apply_file(cfg, Planned { plan, dir }, args, now).await;
    }
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
    guard.watch_lease(lease.lost_flag());
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
            output::notice(Level::Warn, "busy", &e.to_string());
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
    parse_plan(&text, &path.display().to_string())
}

/// Checks and parses a plan's JSON; `origin` names it in errors (a file, an attachment).
pub fn parse_plan(text: &str, origin: &str) -> Result<Plan> {
    let version: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("plan `{origin}` is not JSON"))?;
    let found = version
        .get("format_version")
        .and_then(serde_json::Value::as_u64);
    if ![FORMAT_VERSION, SECRET_FORMAT_VERSION]
        .iter()
        .any(|v| found == Some(u64::from(*v)))
    {
        bail!(
            "plan `{origin}` has format_version {found:?}; this cmdb-reconcile reads {FORMAT_VERSION} and {SECRET_FORMAT_VERSION} (orders with secret fields): plan again with this version"
        );
    }
    serde_json::from_value(version)
        .with_context(|| format!("plan `{origin}` is not a cmdb-reconcile plan"))
}

/// Applies one plan (unless a guard refuses it), writes outcome.json and refreshes the reports.
async fn apply_planned(
    planned: &Planned,
    sn: &ServiceNow,
    options: &ApplyOptions,
    guard: &apply::Guard,
) -> Result<Status> {
    apply_outcomes(planned, sn, options, guard)
        .await
        .map(|(status, _)| status)
}

/// [`apply_planned`], with the outcomes (none when a guard refused the plan).
async fn apply_outcomes(
    planned: &Planned,
    sn: &ServiceNow,
    options: &ApplyOptions,
    guard: &apply::Guard,
) -> Result<(Status, Vec<apply::OperationOutcome>)> {
    let plan = &planned.plan;
    if refused(plan) {
        for trip in &plan.safety.guards_tripped {
            output::notice(
                Level::Warn,
                "refused",
                &format!(
                    "{}: guard {}: {}",
                    plan.mapping.name, trip.guard, trip.message
                ),
            );
        }
        return Ok((Status::Refused, Vec::new()));
    }
    let started = std::time::Instant::now();
    let outcomes = apply::apply(plan, sn, options, guard).await;
    let elapsed = started.elapsed();
    metrics::phase(&plan.mapping.name, "apply", elapsed);
    metrics::applied(plan, &outcomes);
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
        seconds = seconds(elapsed),
        "plan applied"
    );
    output::summary(&outcome_line(plan, count, &planned.dir));
    for o in outcomes
        .iter()
        .filter(|o| o.status.needs_attention())
        .take(10)
    {
        // Server text: printable only (the log escapes it; a person's terminal must too).
        tracing::warn!(
            mapping = %plan.mapping.name,
            "{}",
            report::summary::printable(&format!(
                "{} {}: {}",
                o.status,
                o.sys_id
                    .as_deref()
                    .or(o.source_id.as_deref())
                    .unwrap_or("?"),
                o.message
            ))
        );
    }
    tracing::debug!(files = written.len(), "reports refreshed");
    Ok((Status::of(plan, Some(&counts), false), outcomes))
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
    // The run's clock: the catalog pass at its end stamps what it writes with its own time.
    let clock = crate::lease::Clock::new(now);
    let config = Config::for_plan(&args.plan, &args.apply_opts)?;
    metrics::set_config(config.ops.metrics.clone());
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
    let result = run_steps(
        &config,
        args,
        now,
        clock,
        lease.as_ref().map(Lease::lost_flag),
    )
    .await;
    if let Some(ticket) = ticket {
        match &result {
            Ok((Status::Clean, summary)) => ticket.succeed(&format!("Completed.\n{summary}")).await,
            Ok((Status::AwaitingApproval, summary)) => {
                ticket
                    .succeed(&format!(
                        "Completed; part of the plan waits for approval in a change request (exit code 7).\n{summary}"
                    ))
                    .await
            }
            Ok((Status::Warning, summary)) => {
                ticket
                    .warn(&format!(
                        "Completed with warnings (exit code 6): the CMDB holds duplicate CIs, which are neither written nor retired until one is left; see the report's issues.\n{summary}"
                    ))
                    .await
            }
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
    clock: crate::lease::Clock,
    lease_lost: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> Result<(Status, String)> {
    let allow = args.plan.plan_opts.allow_mass_change;
    let detailed = args.plan.plan_opts.detailed_exitcode;
    let (mut planned, mut status, notes) = if args.dry_run {
        let (planned, notes) = plan_all_noted(config, now, allow).await?;
        let status = worst(planned.iter().map(|p| Status::of(&p.plan, None, detailed)));
        (planned, status, notes)
    } else {
        plan_and_apply_noted(config, now, allow, lease_lost).await?
    };
    // The catalog pass after the syncs (README "Service catalog").
    let force = args.apply_opts.force_unlock;
    if let Some(passed) =
        catalog::in_run_clocked(config, now, clock, allow, args.dry_run, force).await?
    {
        if !passed.is_empty() {
            let mut applied: Vec<bool> = planned
                .iter()
                .map(|p| !args.dry_run && !refused(&p.plan) && p.plan.has_changes())
                .collect();
            for (p, s) in passed {
                status = status.max(s.unwrap_or_else(|| Status::of(&p.plan, None, detailed)));
                applied.push(s.is_some() && !refused(&p.plan) && p.plan.has_changes());
                planned.push(p);
            }
            write_index(&run_dir(config, now), now, &planned, &applied)?;
        }
    }
    let summary = with_notes(summary_table(&planned), &notes);
    output::summary(&summary);
    Ok((status, summary))
}

/// The summary table, then a line per review note (README "Review in ServiceNow").
fn with_notes(mut summary: String, notes: &[String]) -> String {
    if !notes.is_empty() {
        if !summary.ends_with('\n') {
            summary.push('\n');
        }
        summary.push_str("Review in ServiceNow:\n");
        for note in notes {
            summary.push_str(&format!("  {}\n", report::summary::printable(note)));
        }
    }
    summary
}

/// Applies each plan that has changes; the worst status wins. The deadline and the breaker
/// hold for all of them together.
pub async fn run_apply(config: &Config, planned: &[Planned]) -> Result<Status> {
    let guard = apply::Guard::new(&config.apply);
    let mut status = Status::Clean;
    for p in planned {
        status = status.max(apply_one(config, p, &guard).await?);
    }
    Ok(status)
}

/// Applies one plan if it has changes and no guard refuses it.
async fn apply_one(config: &Config, p: &Planned, guard: &apply::Guard) -> Result<Status> {
    if refused(&p.plan) || !p.plan.has_changes() {
        return Ok(Status::of(&p.plan, Some(&Default::default()), false));
    }
    let cfg = config.servicenow.clone().ok_or_else(|| {
        anyhow!(
            "applying `{}` needs a [servicenow] connection",
            p.plan.mapping.name
        )
    })?;
    let sn = ServiceNow::new(cfg)?;
    apply_planned(p, &sn, &config.apply, guard).await
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
