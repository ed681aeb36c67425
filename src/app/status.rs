//! How a command ended, for the exit code: one pure rule, from a plan and (after `apply`)
//! the counts of its outcomes, used by every command so `plan`, `apply` and `run` can never
//! disagree about what the same plan means.

use std::collections::HashMap;

use crate::apply::OutcomeStatus;
use crate::reconcile::plan::Plan;

/// How a command ended, for the exit code (README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Done; nothing to report (or changes, when the caller did not ask to be told).
    Clean,
    /// Changes are planned and `--detailed-exitcode` was given.
    ChangesPlanned,
    /// Done; part of a plan waits for its change request to be approved (README "Review in
    /// ServiceNow"). Not an error: the next run goes on from there.
    AwaitingApproval,
    /// Done, but the CMDB needs a person: it holds duplicate CIs (one machine recorded
    /// twice), which the job neither writes nor retires until one is left.
    Warning,
    /// Some operations failed, ended unknown, were not attempted or overwrote a concurrent
    /// edit, or the source read was incomplete (retirements withheld).
    Partial,
    /// A safety rule refused the plan: nothing was written.
    Refused,
    /// Another run holds the lease: nothing was written (README "Lease").
    Busy,
}

impl Status {
    /// The process exit code (README "Exit codes"; errors exit 1).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Clean => 0,
            Self::ChangesPlanned => 2,
            Self::AwaitingApproval => 7,
            Self::Warning => 6,
            Self::Partial => 3,
            Self::Refused => 4,
            Self::Busy => 5,
        }
    }
}

impl Status {
    /// How one sync ended. `applied` holds the outcome counts once the plan was applied
    /// (empty when there was nothing to write), `None` after planning only; `detailed` is
    /// `--detailed-exitcode` (planned changes are worth an exit code of their own).
    pub fn of(
        plan: &Plan,
        applied: Option<&HashMap<OutcomeStatus, usize>>,
        detailed: bool,
    ) -> Self {
        // Failed, unknown, never sent, or written over someone's edit: someone must look.
        let attention = applied.is_some_and(|counts| {
            counts
                .iter()
                .any(|(status, n)| status.needs_attention() && *n > 0)
        });
        if refused(plan) {
            Self::Refused
        } else if !plan.source.complete || attention {
            Self::Partial
        } else if plan.duplicate_cis() > 0 {
            Self::Warning
        } else if detailed && applied.is_none() && plan.has_changes() {
            Self::ChangesPlanned
        } else {
            Self::Clean
        }
    }
}

/// The worst of several syncs' statuses (`Clean` when there are none).
pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses.into_iter().max().unwrap_or(Status::Clean)
}

/// Whether a guard refuses the plan (nothing may be written).
pub fn refused(plan: &Plan) -> bool {
    !plan.safety.guards_tripped.is_empty() && !plan.safety.mass_change_allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::plan::{GuardTrip, Plan};

    /// A plan of `creates` creates whose source read was (in)complete, with a tripped guard
    /// when asked; built from JSON so the test states only what the rule reads.
    fn plan(creates: usize, complete: bool, tripped: bool, allowed: bool) -> Plan {
        let create = |i: usize| {
            serde_json::json!({"source_id": i.to_string(), "name": format!("vm{i}"),
                "identity": [], "fields": [], "context": {}})
        };
        let mut plan: Plan = serde_json::from_value(serde_json::json!({
            "format_version": 1, "generated_at": "2026-12-01T00:00:00Z",
            "mapping": {"name": "m", "origin": "m.toml", "digest": "d", "table": "t",
                        "scope": "", "collection": "vms"},
            "source": {"origin": "s", "complete": complete, "incomplete_reason": null,
                       "records": creates, "filtered_out": 0, "inactive": 0},
            "target": {"origin": "t", "table": "t", "cis": 0, "in_scope": 0},
            "summary": {"creates": creates, "updates": 0, "restores": 0, "heartbeats": 0,
                        "retirements": 0, "deletes": 0, "marked_absent": 0, "unchanged": 0,
                        "quarantined": 0, "issues": 0, "drift_by_field": {}},
            "safety": {"retirements_blocked": null, "retirements_withheld": 0,
                       "guards_tripped": [], "mass_change_allowed": allowed},
            "creates": (0..creates).map(create).collect::<Vec<_>>(),
            "updates": [], "retirements": [], "issues": []
        }))
        .unwrap();
        if tripped {
            plan.safety.guards_tripped.push(GuardTrip {
                guard: "max_create".into(),
                limit: "1".into(),
                planned: creates,
                message: "over".into(),
            });
        }
        plan
    }

    fn failed(n: usize) -> HashMap<OutcomeStatus, usize> {
        HashMap::from([(OutcomeStatus::Failed, n), (OutcomeStatus::Applied, 3)])
    }

    #[test]
    fn after_planning() {
        assert_eq!(
            Status::of(&plan(0, true, false, false), None, true),
            Status::Clean
        );
        assert_eq!(
            Status::of(&plan(2, true, false, false), None, false),
            Status::Clean
        );
        assert_eq!(
            Status::of(&plan(2, true, false, false), None, true),
            Status::ChangesPlanned
        );
        assert_eq!(
            Status::of(&plan(2, false, false, false), None, true),
            Status::Partial
        );
        assert_eq!(
            Status::of(&plan(2, false, true, false), None, true),
            Status::Refused
        );
        // --allow-mass-change lifts a tripped guard.
        assert_eq!(
            Status::of(&plan(2, true, true, true), None, false),
            Status::Clean
        );
    }

    #[test]
    fn after_applying() {
        let p = plan(2, true, false, false);
        assert_eq!(Status::of(&p, Some(&failed(0)), true), Status::Clean);
        assert_eq!(Status::of(&p, Some(&failed(1)), false), Status::Partial);
        let incomplete = plan(0, false, false, false);
        assert_eq!(
            Status::of(&incomplete, Some(&HashMap::new()), false),
            Status::Partial
        );
    }

    #[test]
    fn duplicate_cis_end_as_a_warning_never_as_plain_success() {
        let mut p = plan(0, true, false, false);
        p.issues.push(
            serde_json::from_value(serde_json::json!({
                "kind": "duplicate_ci", "source_ids": [], "sys_ids": ["a", "b"], "name": "vm1",
                "field": null, "message": "two CIs"
            }))
            .unwrap(),
        );
        assert_eq!(Status::of(&p, None, false), Status::Warning);
        assert_eq!(Status::of(&p, Some(&failed(0)), false), Status::Warning);
        assert_eq!(Status::of(&p, Some(&failed(1)), false), Status::Partial);
        assert_eq!(Status::Warning.exit_code(), 6);
    }

    #[test]
    fn a_write_left_unknown_unsent_or_over_an_edit_is_not_a_clean_run() {
        let p = plan(2, true, false, false);
        for status in [
            OutcomeStatus::Unknown,
            OutcomeStatus::NotAttempted,
            OutcomeStatus::OverwroteConcurrentEdit,
        ] {
            let counts = HashMap::from([(OutcomeStatus::Applied, 1), (status, 1)]);
            assert_eq!(
                Status::of(&p, Some(&counts), false),
                Status::Partial,
                "{status}"
            );
        }
        // What needs nobody's attention stays clean.
        let fine = HashMap::from([
            (OutcomeStatus::Applied, 1),
            (OutcomeStatus::Skipped, 1),
            (OutcomeStatus::SkippedStale, 1),
        ]);
        assert_eq!(Status::of(&p, Some(&fine), false), Status::Clean);
    }

    #[test]
    fn the_worst_status_wins() {
        assert_eq!(worst([]), Status::Clean);
        assert_eq!(
            worst([Status::Partial, Status::Refused, Status::Clean]),
            Status::Refused
        );
        assert_eq!(Status::Refused.exit_code(), 4);
        // Waiting for an approval is worse than clean, better than anything needing a fix.
        assert_eq!(
            worst([Status::AwaitingApproval, Status::Clean]),
            Status::AwaitingApproval
        );
        assert_eq!(
            worst([Status::AwaitingApproval, Status::Warning]),
            Status::Warning
        );
        assert_eq!(Status::AwaitingApproval.exit_code(), 7);
    }
}
