//! The executor: carries out exactly a reviewed plan against ServiceNow, with bounded
//! concurrency, retries decided by [`crate::net::decide`], idempotent creates and stale-CI
//! detection. Every operation ends with an [`OperationOutcome`]; one failure never stops the
//! others.
//!
//! - Creates: when a create's response is lost (reset, timeout, gateway error), the CI is
//!   looked up by its identity before anything is sent again, so a retry never duplicates it.
//! - Updates and retirements: the CIs' current versions are read first (in `IN` chunks, one
//!   round trip per hundred CIs); a CI whose `sys_mod_count`/`sys_updated_on` differs from the
//!   plan was changed since the owners reviewed it and is skipped as stale, and one that
//!   already holds the planned values is skipped as already applied (so applying a plan twice
//!   writes nothing the second time).
//! - With `batch_size` > 1, updates, retirements and deletes travel through the Batch API;
//!   items that fail there are retried one by one.

use crate::net::RetryPolicy;
use crate::reconcile::plan::{Plan, RetireAction};
use crate::servicenow::ServiceNow;

mod check;
pub mod outcome;
mod send;
mod write;

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
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            batch_size: 0,
            retry: RetryPolicy::default(),
        }
    }
}

/// Applies the plan; returns one outcome per planned operation. The caller has already
/// checked that no guard refuses the plan.
pub async fn apply(plan: &Plan, sn: &ServiceNow, opts: &ApplyOptions) -> Vec<OperationOutcome> {
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
    match existing_identities(sn, table, &plan.creates, &opts.retry).await {
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
        Err(e) => {
            for create in &plan.creates {
                outcomes.push(OperationOutcome {
                    sys_id: None,
                    source_id: Some(create.source_id.clone()),
                    status: OutcomeStatus::Failed,
                    message: format!("could not check that the CI does not exist yet: {e}"),
                });
            }
        }
    }
    match current_versions(sn, table, &planned, &opts.retry).await {
        Ok(current) => {
            for p in &planned {
                match check_version(p, current.get(p.sys_id)) {
                    Ok(write) => writes.push(write),
                    Err(outcome) => outcomes.push(outcome),
                }
            }
        }
        Err(e) => {
            // Without the versions no write to an existing CI can be proven fresh.
            for p in &planned {
                outcomes.push(OperationOutcome {
                    sys_id: Some(p.sys_id.to_owned()),
                    source_id: p.source_id.map(str::to_owned),
                    status: OutcomeStatus::Failed,
                    message: format!("could not read the CI's current version: {e}"),
                });
            }
        }
    }

    outcomes.extend(execute(sn, table, writes, opts).await);
    outcome::sort_in_plan_order(plan, &mut outcomes);
    outcomes
}
