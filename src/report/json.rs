//! The JSON files: `plan.json` (the plan itself, which `apply` reads back) and `outcome.json`
//! (what `apply` did with it).
//!
//! `plan.json` is the one file not rendered from the report model: it must carry everything
//! `apply` needs, exactly as the core produced it, versioned by `format_version`.

use std::io::Write;

use serde::Serialize;

use super::model::{OperationOutcome, OutcomeReport, ReportModel};
use crate::reconcile::plan::Plan;

/// Bumped whenever `outcome.json` changes incompatibly.
pub const OUTCOME_FORMAT_VERSION: u32 = 1;

/// `plan.json`: the plan, pretty-printed so a reviewer can diff two plans.
pub fn render_plan(plan: &Plan) -> Result<String, serde_json::Error> {
    let mut json = Vec::new();
    write_plan(&mut json, plan)?;
    Ok(String::from_utf8(json).expect("serde_json writes UTF-8"))
}

/// [`render_plan`], written as it is serialised: a plan of 100,000 VMs is a JSON text of
/// over 100 MB that is never held whole.
pub fn write_plan(mut out: impl Write, plan: &Plan) -> Result<(), serde_json::Error> {
    serde_json::to_writer_pretty(&mut out, plan)?;
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

/// The contents of `outcome.json`.
#[derive(Debug, Serialize)]
struct OutcomeFile<'a> {
    format_version: u32,
    /// The plan's `generated_at`: ties the outcomes to the plan they carried out.
    plan_generated_at: &'a str,
    mapping: &'a str,
    mapping_digest: &'a str,
    table: &'a str,
    applied: usize,
    failed: usize,
    skipped_stale: usize,
    skipped: usize,
    unknown: usize,
    overwrote_concurrent_edit: usize,
    not_attempted: usize,
    outcomes: &'a [OperationOutcome],
}

/// `outcome.json`: counts and every operation's outcome.
pub fn render_outcome(
    model: &ReportModel,
    outcome: &OutcomeReport,
) -> Result<String, serde_json::Error> {
    let mut json = Vec::new();
    write_outcome(&mut json, model, outcome)?;
    Ok(String::from_utf8(json).expect("serde_json writes UTF-8"))
}

/// [`render_outcome`], written as it is serialised.
pub fn write_outcome(
    mut out: impl Write,
    model: &ReportModel,
    outcome: &OutcomeReport,
) -> Result<(), serde_json::Error> {
    let file = OutcomeFile {
        format_version: OUTCOME_FORMAT_VERSION,
        plan_generated_at: &model.header.generated_at_rfc3339,
        mapping: &model.header.mapping,
        mapping_digest: &model.header.mapping_digest,
        table: &model.header.table,
        applied: outcome.applied,
        failed: outcome.failed,
        skipped_stale: outcome.skipped_stale,
        skipped: outcome.skipped,
        unknown: outcome.unknown,
        overwrote_concurrent_edit: outcome.overwrote_concurrent_edit,
        not_attempted: outcome.not_attempted,
        outcomes: &outcome.outcomes,
    };
    serde_json::to_writer_pretty(&mut out, &file)?;
    out.write_all(b"\n").map_err(serde_json::Error::io)
}
