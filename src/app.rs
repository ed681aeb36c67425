//! The imperative shell: one function per subcommand. It reads files (and later the APIs),
//! calls the pure core, writes reports and says what happened. The clock is read once, in
//! `main`, and passed in.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::cli::{CheckArgs, PlanArgs};
use crate::config::{Config, Location, SyncConfig};
use crate::reconcile::mapping::Mapping;
use crate::reconcile::plan::Plan;
use crate::reconcile::planner::{self, Input};
use crate::reconcile::record::{Ci, References};
use crate::report::{self, Format};
use crate::{source, target};

/// How a command ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing to change (or changes, when the caller did not ask to be told).
    Clean,
    /// Changes are planned and `--detailed-exitcode` was given.
    ChangesPlanned,
    /// A safety rule refused the plan.
    Refused,
}

/// Reads and compiles a mapping file.
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
            Ok(m) => {
                println!(
                    "ok: {} ({} -> {}, scope `{}`)\n  identity: {}\n  fields: {}\n  source attributes: {}",
                    path.display(),
                    m.source.collection,
                    m.target.table,
                    m.target.scope.text,
                    m.identify.iter().map(|r| r.describe()).collect::<Vec<_>>().join(", then "),
                    m.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
                    m.source_attributes().join(","),
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} mapping files are invalid",
            args.mapping.len()
        );
    }
    Ok(Status::Clean)
}

/// `plan`: computes each sync's plan and writes its reports.
pub fn plan(args: &PlanArgs, now: DateTime<Utc>) -> Result<Status> {
    let config = Config::for_plan(args)?;
    let mut status = Status::Clean;
    let mut summaries = Vec::new();
    for sync in &config.syncs {
        let plan = plan_sync(sync, now, args.plan_opts.allow_mass_change)?;
        let dir = report_dir(&config, &plan, now);
        // plan.json is always written: it is what `apply` carries out.
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
            report = %dir.display(),
            "plan written"
        );
        if refused(&plan) {
            status = Status::Refused;
        } else if plan.has_changes() && args.plan_opts.detailed_exitcode && status == Status::Clean
        {
            status = Status::ChangesPlanned;
        }
        summaries.push((plan, dir));
    }
    print!("{}", summary_table(&summaries));
    Ok(status)
}

/// Whether a guard refuses the plan (nothing may be written).
pub fn refused(plan: &Plan) -> bool {
    !plan.safety.guards_tripped.is_empty() && !plan.safety.mass_change_allowed
}

fn report_dir(config: &Config, plan: &Plan, now: DateTime<Utc>) -> PathBuf {
    match &config.out_dir {
        Some(dir) => dir.clone(),
        None => config.report_dir.join(format!(
            "{}-{}",
            now.format("%Y%m%dT%H%M%SZ"),
            plan.mapping.name
        )),
    }
}

fn plan_sync(sync: &SyncConfig, now: DateTime<Utc>, allow_mass_change: bool) -> Result<Plan> {
    let mapping = load_mapping(&sync.mapping)?;
    let Location::File(source_path) = &sync.source;
    let source = source::snapshot::read(source_path)?;
    let Location::File(target_path) = &sync.target;
    let cis = target::snapshot::read(target_path)?;
    let mut references = References::default();
    for (table, path) in &sync.references {
        references.add_table(table, target::snapshot::read(path)?);
    }
    tracing::debug!(
        records = source.records.len(),
        cis = cis.len(),
        "read {} and {}",
        source_path.display(),
        target_path.display()
    );
    Ok(plan_from(
        &mapping,
        source,
        cis,
        target_path.display().to_string(),
        &references,
        now,
        allow_mass_change,
    ))
}

/// Runs the pure planner on what was read.
pub fn plan_from(
    mapping: &Mapping,
    source: source::SourceRead,
    cis: Vec<Ci>,
    target_origin: String,
    references: &References,
    now: DateTime<Utc>,
    allow_mass_change: bool,
) -> Plan {
    planner::plan(Input {
        mapping,
        records: &source.records,
        source_origin: source.origin,
        source_incomplete: source.incomplete,
        cis: &cis,
        target_origin,
        references,
        now,
        allow_mass_change,
    })
}

/// The short summary printed on stdout: one row per sync, then warnings and report paths.
pub fn summary_table(plans: &[(Plan, PathBuf)]) -> String {
    let mut out = String::new();
    let header = [
        "mapping",
        "table",
        "create",
        "update",
        "absent",
        "retire",
        "delete",
        "unchanged",
        "quarantined",
        "issues",
    ];
    let rows: Vec<[String; 10]> = plans
        .iter()
        .map(|(p, _)| {
            let s = &p.summary;
            [
                p.mapping.name.clone(),
                p.mapping.table.clone(),
                s.creates.to_string(),
                s.updates.to_string(),
                s.marked_absent.to_string(),
                s.retirements.to_string(),
                s.deletes.to_string(),
                s.unchanged.to_string(),
                s.quarantined.to_string(),
                s.issues.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            // Names left-aligned, counts right-aligned.
            if i < 2 {
                let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
            } else {
                let _ = write!(l, "{cell:>w$}  ", w = widths[i]);
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(&header));
    for row in &rows {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    for (plan, dir) in plans {
        if let Some(reason) = &plan.safety.retirements_blocked {
            let _ = writeln!(
                out,
                "warning: {}: {} retirements withheld: {reason}",
                plan.mapping.name, plan.safety.retirements_withheld
            );
        }
        for trip in &plan.safety.guards_tripped {
            let verdict = if plan.safety.mass_change_allowed {
                "lifted by --allow-mass-change"
            } else {
                "plan refused"
            };
            let _ = writeln!(
                out,
                "guard {}: {}: {} ({verdict})",
                trip.guard, plan.mapping.name, trip.message
            );
        }
        let _ = writeln!(out, "report: {}", dir.display());
    }
    out
}
