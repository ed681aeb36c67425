//! The executor: carries out exactly a reviewed plan against ServiceNow, with bounded
//! concurrency, retries decided by [`crate::net::decide`], idempotent creates and stale-CI
//! detection. Every operation ends with an [`OperationOutcome`]; one failure never stops the
//! others, but a run of them does: the [`Guard`] stops every write once the deadline passes
//! or the circuit breaker opens, and what was never sent is reported `not_attempted`.
//!
//! - Lost answers: when a write's answer is lost (reset, cut-short body, timeout, gateway
//!   error) the CMDB is read back before anything else: a create is looked up by its
//!   identity, an update read back and compared, a delete looked for. Done is `applied`, not
//!   done is sent again while the retry policy allows (a retry never duplicates a CI), and
//!   a read-back that fails too is `unknown`: never sent again, since it may have happened.
//! - Updates and retirements: the CIs' current versions are read first (in `IN` chunks, one
//!   round trip per hundred CIs); a CI whose `sys_mod_count`/`sys_updated_on` differs from the
//!   plan was changed since the owners reviewed it and is skipped as stale, and one that
//!   already holds the planned values is skipped as already applied (so applying a plan twice
//!   writes nothing the second time).
//! - With `batch_size` > 1, updates, retirements and deletes travel through the Batch API;
//!   items that fail there are retried one by one.

use std::time::Duration;

use crate::net::RetryPolicy;
use crate::reconcile::plan::{Plan, RetireAction};
use crate::servicenow::ServiceNow;

mod check;
mod guard;
pub mod outcome;
mod send;
mod write;

pub use guard::{Guard, Halt};

use check::{check_version, current_versions, existing_identities, identity_key, Planned};
use send::execute;
use write::Write;

pub use outcome::{tally, OperationOutcome, OutcomeStatus};

/// How to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Operations (or batches) in flight at once.
    pub concurrency: usize,
    /// Writes per Batch API request; 0 or 1 sends each write on its own.
    pub batch_size: usize,
    pub retry: RetryPolicy,
    /// No write is sent after this long from the start of applying (`None`: no limit).
    pub deadline: Option<Duration>,
    /// Failed requests in a row (5xx, 429, timeouts, broken connections) after which no
    /// write is sent any more: the circuit breaker. 0 turns it off.
    pub breaker: usize,
}

impl ApplyOptions {
    /// Half an hour: a run that cannot finish its writes in that time stops well inside
    /// an hourly schedule, and the next run carries on from what the CMDB then holds.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30 * 60);
    pub const DEFAULT_BREAKER: usize = 10;
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            batch_size: 0,
            retry: RetryPolicy::default(),
            deadline: Some(Self::DEFAULT_DEADLINE),
            breaker: Self::DEFAULT_BREAKER,
        }
    }
}

/// Applies the plan; returns one outcome per planned operation. The caller has already
/// checked that no guard refuses the plan. `guard` holds the deadline and the breaker of
/// the whole command: one for all the plans it applies.
pub async fn apply(
    plan: &Plan,
    sn: &ServiceNow,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    let table = plan.mapping.table.as_str();
    let mut outcomes = Vec::new();

    let planned: Vec<Planned> = plan
        .updates
        .iter()
        .filter(|u| u.has_writes())
        .map(|u| Planned {
            sys_id: &u.sys_id,
            source_id: Some(&u.source_id),
            sys_mod_count: &u.sys_mod_count,
            sys_updated_on: &u.sys_updated_on,
            changes: u.changes.iter().filter(|c| c.is_write()).collect(),
            delete: false,
        })
        .chain(plan.retirements.iter().map(|r| Planned {
            sys_id: &r.sys_id,
            source_id: None,
            sys_mod_count: &r.sys_mod_count,
            sys_updated_on: &r.sys_updated_on,
            changes: r.changes.iter().collect(),
            delete: r.action == RetireAction::Delete,
        }))
        .collect();

    let mut writes: Vec<Write> = Vec::new();
    match existing_identities(sn, table, &plan.creates, &opts.retry, guard).await {
        Ok(existing) => {
            for create in &plan.creates {
                match existing.get(&identity_key(create)) {
                    // Applied before (the same plan twice, or a run that died after the
                    // write): creating again would duplicate the CI.
                    Some(sys_id) => outcomes.push(OperationOutcome {
                        sys_id: Some(sys_id.clone()),
                        source_id: Some(create.source_id.clone()),
                        status: OutcomeStatus::Skipped,
                        message: "already exists: a CI with this identity is in the CMDB".into(),
                    }),
                    None => writes.push(Write::Create(create.clone())),
                }
            }
        }
        Err(halt) => {
            let (status, message) =
                unchecked(&halt, "could not check that the CI does not exist yet");
            for create in &plan.creates {
                outcomes.push(OperationOutcome {
                    sys_id: None,
                    source_id: Some(create.source_id.clone()),
                    status,
                    message: message.clone(),
                });
            }
        }
    }
    match current_versions(sn, table, &planned, &opts.retry, guard).await {
        Ok(current) => {
            for p in &planned {
                match check_version(p, current.get(p.sys_id)) {
                    Ok(write) => writes.push(write),
                    Err(outcome) => outcomes.push(outcome),
                }
            }
        }
        Err(halt) => {
            // Without the versions no write to an existing CI can be proven fresh.
            let (status, message) = unchecked(&halt, "could not read the CI's current version");
            for p in &planned {
                outcomes.push(OperationOutcome {
                    sys_id: Some(p.sys_id.to_owned()),
                    source_id: p.source_id.map(str::to_owned),
                    status,
                    message: message.clone(),
                });
            }
        }
    }

    outcomes.extend(execute(sn, table, writes, opts, guard).await);
    outcome::sort_in_plan_order(plan, &mut outcomes);
    outcomes
}

/// The outcome of writes whose check before sending halted: failed when the check did,
/// not attempted when the run stopped.
fn unchecked(halt: &Halt, what: &str) -> (OutcomeStatus, String) {
    match halt {
        Halt::Failed(e) => (OutcomeStatus::Failed, format!("{what}: {e}")),
        Halt::Stopped { .. } => (OutcomeStatus::NotAttempted, halt.message()),
    }
}
