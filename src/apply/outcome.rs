//! What the executor says happened: one [`OperationOutcome`] per planned operation, their
//! counts, and the order they are reported in (the plan's, so `outcome.json` is the same
//! whatever order concurrent writes finished in).

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::reconcile::plan::Plan;

/// What happened to one planned operation (a create, an update or a retirement of one CI)
/// when `apply` carried it out. Produced by the executor; reports only display it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationOutcome {
    /// The CI written: the planned CI for updates and retirements, the new CI for a create
    /// that succeeded, `None` for a create that never got one.
    #[serde(default)]
    pub sys_id: Option<String>,
    /// The VM the operation came from (`None` for retirements, which have no VM).
    #[serde(default)]
    pub source_id: Option<String>,
    pub status: OutcomeStatus,
    /// Why, in words (an error, or why it was skipped); may be empty when applied.
    #[serde(default)]
    pub message: String,
}

/// The end state of one operation after `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// Written.
    Applied,
    /// Tried and failed (after retries): the CMDB does not hold the planned values.
    Failed,
    /// Not written because the CI changed after the plan was made.
    SkippedStale,
    /// Not written because there was nothing to write: the CMDB already holds it (a create
    /// whose identity is already there, a CI that already holds the planned values, a CI
    /// already deleted).
    Skipped,
    /// Sent, but the answer was lost and reading the CI back could not tell whether the
    /// write happened: someone must look.
    Unknown,
    /// Never sent: the run stopped sending (its deadline passed, or the circuit breaker
    /// opened after a run of failures), or the CI could not be checked before the write.
    NotAttempted,
    /// Written, but someone changed the CI between the check just before the write and the
    /// write itself (its `sys_mod_count` moved by more than our one write): our values
    /// replaced a person's edit made after the review.
    OverwroteConcurrentEdit,
}

impl OutcomeStatus {
    /// Every status, in the order reports list their counts.
    pub const ALL: [Self; 7] = [
        Self::Applied,
        Self::OverwroteConcurrentEdit,
        Self::Failed,
        Self::Unknown,
        Self::NotAttempted,
        Self::SkippedStale,
        Self::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::SkippedStale => "skipped_stale",
            Self::Skipped => "skipped",
            Self::Unknown => "unknown",
            Self::NotAttempted => "not_attempted",
            Self::OverwroteConcurrentEdit => "overwrote_concurrent_edit",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Applied => "Applied",
            Self::Failed => "Failed",
            Self::SkippedStale => "Skipped (stale)",
            Self::Skipped => "Skipped",
            Self::Unknown => "Unknown",
            Self::NotAttempted => "Not attempted",
            Self::OverwroteConcurrentEdit => "Overwrote a concurrent edit",
        }
    }

    /// Whether a person must look at the operation: it did not end as planned, or it ended
    /// over someone's edit. Such an outcome makes the run partial (exit 3).
    pub fn needs_attention(self) -> bool {
        match self {
            Self::Applied | Self::SkippedStale | Self::Skipped => false,
            Self::Failed | Self::Unknown | Self::NotAttempted | Self::OverwroteConcurrentEdit => {
                true
            }
        }
    }
}

impl fmt::Display for OutcomeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of outcomes by status, for logs and the exit code.
pub fn tally(outcomes: &[OperationOutcome]) -> HashMap<OutcomeStatus, usize> {
    let mut counts = HashMap::new();
    for o in outcomes {
        *counts.entry(o.status).or_insert(0) += 1;
    }
    counts
}

/// Sorts outcomes into the plan's order: creates, then updates, then retirements, each as
/// the plan lists them. Writes finish in any order; the report must not.
pub fn sort_in_plan_order(plan: &Plan, outcomes: &mut [OperationOutcome]) {
    // A create and an update come from different records, so a source id names one
    // operation; retirements have no record and are named by their CI.
    let by_source: HashMap<&str, usize> = plan
        .creates
        .iter()
        .map(|c| c.source_id.as_str())
        .chain(plan.updates.iter().map(|u| u.source_id.as_str()))
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    let first_retirement = plan.creates.len() + plan.updates.len();
    let by_sys_id: HashMap<&str, usize> = plan
        .retirements
        .iter()
        .enumerate()
        .map(|(i, r)| (r.sys_id.as_str(), first_retirement + i))
        .collect();
    outcomes.sort_by_cached_key(|o| {
        match (&o.source_id, &o.sys_id) {
            (Some(source), _) => by_source.get(source.as_str()).copied(),
            (None, Some(sys_id)) => by_sys_id.get(sys_id.as_str()).copied(),
            (None, None) => None,
        }
        .unwrap_or(usize::MAX)
    });
}
