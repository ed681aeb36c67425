//! `run` for a sync with `review = "approve"` (README "Review in ServiceNow"): first the
//! sync's open change requests (approved: apply exactly the attached plan and close the
//! change with the outcome; rejected: cancel it and discard the plan; no decision: wait),
//! then a fresh plan, split by the `[review]` policy: what needs no approval is applied at
//! once, the rest goes to a change request (one per plan: a waiting change with the same
//! digest is kept, one with another is cancelled, pointing to the new one).
//!
//! Everything the next run needs is in ServiceNow (the change, its attachments, its
//! digest), so a CronJob without a volume works; the report folder keeps a copy
//! (`<sync>/review/plan.json`, for reading: it says `held_for_review`, which `apply` refuses).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};

use super::{
    apply_one, apply_outcomes, humanize, load_mapping, plan_sync, refused, warn_about, Planned,
    Status,
};
use crate::apply::{self, OutcomeStatus};
use crate::config::{Config, SyncConfig};
use crate::reconcile::plan::Plan;
use crate::reconcile::review::{digest, split};
use crate::report::{self, Format};
use crate::review::{self as change, ChangeChoices, Decision, OpenChange};
use crate::servicenow::ServiceNow;
use crate::{metrics, output};

/// What a reviewed sync did: the part this run applied (its reports are the sync's), how
/// it ended, and what the run's summary should say about its changes.
pub(super) struct Reviewed {
    pub planned: Planned,
    pub status: Status,
    pub notes: Vec<String>,
}

/// The files a held plan is reviewed from, in `<sync>/review/`.
const REVIEW_FORMATS: [Format; 4] = [Format::Json, Format::Csv, Format::Html, Format::Markdown];

/// How many operations a plan writes (CIs and relationship and classification rows).
fn operations(plan: &Plan) -> usize {
    plan.creates.len()
        + plan.updates.iter().filter(|u| u.has_writes()).count()
        + plan.retirements.len()
        + plan.relationships.len()
        + plan.classifications.len()
}

/// The report formats of a sync's folder (plan.json always).
fn formats(config: &Config) -> Vec<Format> {
    let mut formats = config.formats.clone();
    if !formats.contains(&Format::Json) {
        formats.push(Format::Json);
    }
    formats
}

/// `run --dry-run` (and `plan`) of a reviewed sync: the plan split, the held part's reports
/// in `<dir>/review/`, and a note of what a run would ask approval for. Nothing is written
/// to ServiceNow.
pub(super) fn dry_run(config: &Config, planned: &Planned) -> Result<Option<String>> {
    let s = split(&planned.plan, &config.review.policy);
    if refused(&planned.plan) || !s.held.has_changes() {
        return Ok(None);
    }
    let dir = planned.dir.join("review");
    report::write_reports(&s.held, None, &dir, &REVIEW_FORMATS)?;
    Ok(Some(format!(
        "{}: {} operations would wait for approval in a change request ({}); {} would be applied at once",
        planned.plan.mapping.name,
        operations(&s.held),
        s.reasons.join("; "),
        operations(&s.now)
    )))
}

/// `run` of a reviewed sync; see the module docs.
pub(super) async fn run_sync(
    config: &Config,
    sync: &SyncConfig,
    now: DateTime<Utc>,
    allow_mass_change: bool,
    dir: PathBuf,
    guard: &apply::Guard,
) -> Result<Reviewed> {
    let cfg = &config.review;
    let sn_cfg = config.servicenow.clone().ok_or_else(|| {
        anyhow!(
            "`{}` has review = \"approve\", which needs a [servicenow] connection",
            sync.mapping.display()
        )
    })?;
    let sn = ServiceNow::new(sn_cfg)?;
    let name = load_mapping(&sync.mapping)?.name;
    let tag = change::tag(&name);
    let choices = ChangeChoices::read(&sn, &cfg.table).await?;
    let mut status = Status::Clean;
    let mut notes = Vec::new();
    let mut waiting = Vec::new();

    // 1. The decisions people made since the last run.
    for open in change::open_changes(&sn, &cfg.table, &tag).await? {
        match Decision::of(&open, &choices) {
            Decision::Apply => {
                let s = apply_approved(
                    config, &sn, &choices, &name, open, now, &dir, guard, &mut notes,
                )
                .await?;
                status = status.max(s);
            }
            Decision::Discard => {
                change::cancel(
                    &sn,
                    &cfg.table,
                    &choices,
                    &open,
                    "Rejected: cmdb-reconcile discards this plan and will not ask for it again. A later plan that differs (the drift changed) gets a change of its own.",
                )
                .await?;
                metrics::review(&name, "rejected");
                notes.push(format!(
                    "{name}: {} was rejected; its plan is discarded",
                    open.number
                ));
            }
            Decision::Wait => waiting.push(open),
        }
    }

    // 2. This run's plan: the part that needs no approval is applied now.
    let started = std::time::Instant::now();
    let plan = plan_sync(config, sync, now, allow_mass_change).await?;
    warn_about(&plan);
    let parts = split(&plan, &cfg.policy);
    let now_part = Planned {
        plan: parts.now,
        dir: dir.clone(),
    };
    report::write_reports(&now_part.plan, None, &dir, &formats(config))?;
    metrics::planned(&now_part.plan);
    tracing::info!(
        mapping = %name,
        held = operations(&parts.held),
        now = operations(&now_part.plan),
        seconds = super::seconds(started.elapsed()),
        report = %dir.display(),
        "plan written and split for review"
    );
    status = status.max(apply_one(config, &now_part, guard).await?);

    // 3. The part that needs approval goes to a change request.
    let held = parts.held;
    if refused(&plan) {
        // A guard refuses the whole plan; an approval cannot lift it.
        return Ok(Reviewed {
            planned: now_part,
            status,
            notes,
        });
    }
    if !held.has_changes() {
        for old in waiting {
            change::cancel(
                &sn,
                &cfg.table,
                &choices,
                &old,
                "No longer needed: cmdb-reconcile's latest plan holds nothing that needs approval.",
            )
            .await?;
            metrics::review(&name, "superseded");
            notes.push(format!(
                "{name}: {} cancelled: nothing needs approval any more",
                old.number
            ));
        }
        metrics::awaiting(&name, 0);
        return Ok(Reviewed {
            planned: now_part,
            status,
            notes,
        });
    }
    let review_dir = dir.join("review");
    report::write_reports(&held, None, &review_dir, &REVIEW_FORMATS)?;
    let digest = digest(&held);
    let count = operations(&held);
    metrics::awaiting(&name, count);

    let (mut same, superseded): (Vec<OpenChange>, Vec<OpenChange>) =
        waiting.into_iter().partition(|c| c.digest == digest);
    // Never two changes for one plan: the oldest is kept (a duplicate left by someone's
    // copy of it is superseded).
    let extra = if same.len() > 1 {
        same.split_off(1)
    } else {
        Vec::new()
    };
    let mut current = match same.pop() {
        Some(c) => {
            metrics::review(&name, "waiting");
            c
        }
        None => {
            if let Some(number) = rejected_before(&sn, &cfg.table, &choices, &tag, &digest).await? {
                tracing::warn!(mapping = %name, change = %number, "the plan was rejected in {number}; it is not applied and not asked for again until it changes");
                notes.push(format!(
                    "{name}: {count} operations held back: the same plan was rejected in {number}"
                ));
                for old in superseded {
                    let note = format!("Superseded: a newer plan of cmdb-reconcile differs from this one and was rejected before ({number}).");
                    change::cancel(&sn, &cfg.table, &choices, &old, &note).await?;
                    metrics::review(&name, "superseded");
                }
                return Ok(Reviewed {
                    planned: now_part,
                    status,
                    notes,
                });
            }
            let short = format!(
                "cmdb-reconcile: {count} changes to {} ({name}) need approval",
                held.mapping.table
            );
            let description = change::describe(&held, &now_part.plan, &parts.reasons, &digest);
            let opened = change::open(&sn, cfg, &tag, &digest, &short, &description).await?;
            metrics::review(&name, "opened");
            tracing::info!(mapping = %name, change = %opened.number, operations = count, "change request opened for review");
            opened
        }
    };
    change::attach_missing(&sn, &cfg.table, &current, &review_dir).await?;
    if current.state == choices.new_state() {
        // "Request Approval": the approvers (the assignment group) are asked.
        change::advance(&sn, &cfg.table, &choices, &mut current, choices.assess()).await?;
    }
    for old in superseded.into_iter().chain(extra) {
        let note = format!(
            "Superseded by {}: cmdb-reconcile's newer plan differs from this one (the CMDB or CloudForms changed since). This plan is discarded; review {} instead.",
            current.number, current.number
        );
        change::cancel(&sn, &cfg.table, &choices, &old, &note).await?;
        metrics::review(&name, "superseded");
        notes.push(format!(
            "{name}: {} cancelled, superseded by {}",
            old.number, current.number
        ));
    }
    notes.push(format!(
        "{name}: {count} operations wait for approval in {} (approval: {})",
        current.number,
        if current.approval.is_empty() {
            "requested"
        } else {
            &current.approval
        }
    ));
    Ok(Reviewed {
        planned: now_part,
        status: status.max(Status::AwaitingApproval),
        notes,
    })
}

/// The number of a change of this sync that held a plan with this digest and was rejected.
async fn rejected_before(
    sn: &ServiceNow,
    table: &str,
    choices: &ChangeChoices,
    tag: &str,
    digest: &str,
) -> Result<Option<String>> {
    let rows = sn
        .find(
            table,
            &[
                ("correlation_display".to_owned(), tag.to_owned()),
                ("correlation_id".to_owned(), digest.to_owned()),
                ("approval".to_owned(), choices.rejected.clone()),
            ],
            &["number".to_owned()],
        )
        .await?;
    Ok(rows.first().map(|r| r.get("number").to_owned()))
}

/// An approved change: its attached plan checked against the digest and the maximum plan
/// age, applied (CIs changed since are skipped as stale), the outcome attached, and the
/// change closed with a close code saying how it went.
#[allow(clippy::too_many_arguments)]
async fn apply_approved(
    config: &Config,
    sn: &ServiceNow,
    choices: &ChangeChoices,
    name: &str,
    mut open: OpenChange,
    now: DateTime<Utc>,
    dir: &Path,
    guard: &apply::Guard,
    notes: &mut Vec<String>,
) -> Result<Status> {
    let table = &config.review.table;
    // A ServiceNow error stops the run with the change left approved for the next one; a
    // plan that is not the approved one is never applied, and the change says so.
    let plan = match change::attached_plan(sn, table, &open).await? {
        Ok(plan) => plan,
        Err(e) => {
            let why = format!("Not applied: {e}");
            close(sn, table, choices, &mut open, &choices.unsuccessful, &why).await?;
            output::notice(output::Level::Warn, "refused", &why);
            metrics::review(name, "skipped");
            notes.push(format!("{}: not applied: {e}", open.number));
            return Ok(Status::Refused);
        }
    };
    if let Some(max) = config.max_plan_age {
        let age = now - plan.generated_at;
        let limit = chrono::TimeDelta::from_std(max).unwrap_or(chrono::TimeDelta::MAX);
        if age > limit {
            let why = format!(
                "Skipped: the approved plan was made {} ago, more than [apply] max_plan_age {}; nothing was written. cmdb-reconcile plans again and asks for a fresh approval.",
                humanize(age),
                humanize(limit)
            );
            close(sn, table, choices, &mut open, &choices.unsuccessful, &why).await?;
            metrics::review(name, "skipped");
            notes.push(format!(
                "{name}: {} skipped: its plan is older than max_plan_age",
                open.number
            ));
            return Ok(Status::Clean);
        }
    }
    // The change is being implemented from here; a run that stops half way leaves it in
    // Implement, approved, and the next run applies the plan again (writes are idempotent).
    change::advance(sn, table, choices, &mut open, choices.implement()).await?;
    let run_dir = dir.join(format!("approved-{}", safe(&open.number)));
    report::write_reports(&plan, None, &run_dir, &REVIEW_FORMATS)?;
    let planned = Planned {
        plan,
        dir: run_dir.clone(),
    };
    tracing::info!(mapping = %name, change = %open.number, "applying the approved plan");
    let (status, outcomes) = apply_outcomes(&planned, sn, &config.apply, guard).await?;
    let counts = apply::tally(&outcomes);
    let n = |s| counts.get(&s).copied().unwrap_or(0);
    let attention: usize = OutcomeStatus::ALL
        .into_iter()
        .filter(|s| s.needs_attention())
        .map(n)
        .sum();
    let applied = n(OutcomeStatus::Applied) + n(OutcomeStatus::OverwroteConcurrentEdit);
    let stale = n(OutcomeStatus::SkippedStale);
    let code = if status == Status::Refused || (attention > 0 && applied == 0) {
        &choices.unsuccessful
    } else if attention > 0 || stale > 0 {
        &choices.successful_issues
    } else {
        &choices.successful
    };
    let stale_names: Vec<String> = outcomes
        .iter()
        .filter(|o| o.status == OutcomeStatus::SkippedStale)
        .take(20)
        .map(|o| {
            o.sys_id
                .as_deref()
                .or(o.source_id.as_deref())
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    let mut summary = format!(
        "Applied by cmdb-reconcile: {}.",
        OutcomeStatus::ALL
            .into_iter()
            .filter(|s| n(*s) > 0)
            .map(|s| format!("{} {}", s.label().to_lowercase(), n(s)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if summary.ends_with(": .") {
        summary = "Applied by cmdb-reconcile: nothing was left to write.".to_owned();
    }
    if stale > 0 {
        summary.push_str(&format!(
            "\nSkipped as stale (changed in the CMDB after the plan was made; the next plan looks at them again): {}{}",
            stale_names.join(", "),
            if stale > stale_names.len() { ", ..." } else { "" }
        ));
    }
    summary.push_str("\nDetails per operation: outcome.json (attached).");
    let outcome = change::read_file(&run_dir.join(report::OUTCOME_FILE)).ok();
    if let Some(bytes) = outcome {
        sn.attach(
            table,
            &open.sys_id,
            change::OUTCOME_FILE,
            "application/json",
            &bytes,
        )
        .await
        .map_err(|e| anyhow!("attaching outcome.json to change {}: {e}", open.number))?;
    }
    close(sn, table, choices, &mut open, code, &summary).await?;
    metrics::review(name, "applied");
    notes.push(format!(
        "{name}: {} applied and closed ({code}): applied {applied}, stale {stale}, needing attention {attention}",
        open.number
    ));
    Ok(status)
}

/// Moves the change to Review, then closes it with a close code and notes.
async fn close(
    sn: &ServiceNow,
    table: &str,
    choices: &ChangeChoices,
    open: &mut OpenChange,
    code: &str,
    notes: &str,
) -> Result<()> {
    change::advance(sn, table, choices, open, choices.review()).await?;
    change::write(
        sn,
        table,
        open,
        &[
            ("close_code", code),
            ("close_notes", notes),
            ("work_notes", notes),
            ("state", choices.closed()),
        ],
    )
    .await
    .map(drop)
}

/// A change number fit for a folder name.
fn safe(number: &str) -> String {
    number
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
