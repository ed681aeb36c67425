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
//! - Chunks: writes go in chunks of a hundred (`chunk`; at least a full batch for every
//!   slot), each checked in one round trip while the chunk before it is being sent, not all
//!   at the start: an edit a person makes during a long apply is seen by the check of its
//!   chunk.
//! - Creates: a CI that already carries the identity is not created again.
//! - Updates and retirements: a CI whose `sys_mod_count`/`sys_updated_on` differs from the
//!   plan was changed since the owners reviewed it and is skipped as stale, and one that
//!   already holds the planned values is skipped as already applied (so applying a plan twice
//!   writes nothing the second time). A write whose answer shows the CI's `sys_mod_count`
//!   moved by more than our one write since the check went over an edit made in between:
//!   `overwrote_concurrent_edit`.
//! - With `batch_size` > 1 (the default is 50), writes travel through the Batch API, creates
//!   included: each is looked up by identity before its chunk is sent, and a batch whose
//!   answer was lost (or that failed in a way that may have run some of it) is read back,
//!   creates by identity, before anything in it is sent again, so a batch never duplicates a
//!   CI. Items that fail inside a serviced batch are retried one by one.

use std::time::Duration;

use crate::net::RetryPolicy;
use crate::reconcile::plan::{Plan, RetireAction};
use crate::servicenow::ServiceNow;

mod check;
mod guard;
pub mod orders;
pub mod outcome;
mod relations;
mod send;
mod write;

pub use guard::{Guard, Halt};

use check::{check_creates, check_planned, Planned};
use send::execute;

pub use outcome::{tally, OperationOutcome, OutcomeStatus};

/// How to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Operations (or batches) in flight at once.
    pub concurrency: usize,
    /// Writes per Batch API request (creates, updates, retirements); 0 or 1 sends each
    /// write on its own. Default [`ApplyOptions::DEFAULT_BATCH_SIZE`].
    pub batch_size: usize,
    pub retry: RetryPolicy,
    /// No write is sent after this long from the start of applying (`None`: no limit).
    pub deadline: Option<Duration>,
    /// Failed requests in a row (5xx, 429, timeouts, broken connections) after which no
    /// write is sent any more: the circuit breaker. 0 turns it off.
    pub breaker: usize,
    /// Writes checked together, in one read just before they are sent.
    pub chunk: usize,
}

impl ApplyOptions {
    /// Writes per chunk: `chunk`, but never fewer than the writes (or batches of them) that
    /// may be in flight at once, so checking in chunks never holds concurrency back.
    fn chunk_len(&self) -> usize {
        self.chunk
            .max(self.concurrency.max(1) * self.batch_size.max(1))
            .max(1)
    }

    /// Half an hour: a run that cannot finish its writes in that time stops well inside
    /// an hourly schedule, and the next run carries on from what the CMDB then holds.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30 * 60);
    /// Fifty writes per Batch API request. A request per write spends a round trip on each
    /// (a first run's relationship rows are one per VM and type: tens of thousands), where a
    /// batch spends one per fifty; a bigger batch saves little more (at 50, the round trips
    /// are already a small part of the writes' time) and comes nearer the instance's limits:
    /// it stops serving a batch's items after 30 s of work (the rest come back
    /// `unserviced_requests` and are sent again), and 50 CMDB writes at the 100-300 ms each
    /// that business rules take stay well inside that. A lost answer is read back, creates
    /// by identity, before anything in the batch is sent again (`send.rs`), so batching
    /// never duplicates a CI. README "Performance" has the measurement.
    pub const DEFAULT_BATCH_SIZE: usize = 50;
    pub const DEFAULT_BREAKER: usize = 10;
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            batch_size: Self::DEFAULT_BATCH_SIZE,
            retry: RetryPolicy::default(),
            deadline: Some(Self::DEFAULT_DEADLINE),
            breaker: Self::DEFAULT_BREAKER,
            chunk: 100,
        }
    }
}

/// Checks and sends writes chunk by chunk, each checked just before it is sent: the fewer
/// writes between a check and its write, the smaller the window for a person's edit to slip
/// in. With `overlap`, each chunk is checked while the one before it is being sent (the
/// window grows by at most that chunk, and the check's round trip hides behind the sends
/// instead of adding to them; `concurrency` bounds the sends, the check goes beside them):
/// only where no write of one chunk can change what the next chunk's check reads, or the
/// check's read would see the table change under it and read it all again by key. What a
/// check holds back is reported as it is found.
async fn check_and_send<'c, T: 'c, C, F>(
    sn: &ServiceNow,
    table: &str,
    chunks: impl IntoIterator<Item = &'c [T]>,
    check: C,
    overlap: bool,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome>
where
    C: Fn(&'c [T]) -> F,
    F: std::future::Future<Output = (Vec<write::Write>, Vec<OperationOutcome>)>,
{
    let mut outcomes = Vec::new();
    let mut chunks = chunks.into_iter();
    let mut checked = match chunks.next() {
        Some(chunk) => Some(check(chunk).await),
        None => None,
    };
    while let Some((writes, unsent)) = checked.take() {
        crate::progress::writes_done(unsent.len() as u64);
        outcomes.extend(unsent);
        let next = chunks.next();
        if !overlap {
            outcomes.extend(execute(sn, table, writes, opts, guard).await);
            checked = match next {
                Some(chunk) => Some(check(chunk).await),
                None => None,
            };
            continue;
        }
        let (sent, next_checked) = tokio::join!(execute(sn, table, writes, opts, guard), async {
            match next {
                Some(chunk) => Some(check(chunk).await),
                None => None,
            }
        });
        outcomes.extend(sent);
        checked = next_checked;
    }
    outcomes
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

    crate::progress::writes_started(
        (plan.creates.len() + planned.len() + plan.relationships.len() + plan.classifications.len())
            as u64,
    );
    let size = opts.chunk_len();
    let check = |chunk| check_creates(sn, table, chunk, &opts.retry, guard);
    let overlap = check::reads_apart(&plan.creates);
    let chunks = plan.creates.chunks(size);
    outcomes.extend(check_and_send(sn, table, chunks, check, overlap, opts, guard).await);
    // Read by sys_id: no write of another chunk changes what such a check reads.
    let check = |chunk| check_planned(sn, table, chunk, &opts.retry, guard);
    let chunks = planned.chunks(size);
    outcomes.extend(check_and_send(sn, table, chunks, check, true, opts, guard).await);
    outcome::sort_in_plan_order(plan, &mut outcomes);
    // Relationships after the CIs: a row to a CI this plan creates needs its sys_id.
    if !plan.relationships.is_empty() {
        let rows = relations::apply(plan, &outcomes, sn, opts, guard).await;
        outcomes.extend(rows);
    }
    if !plan.classifications.is_empty() {
        let rows = relations::apply_classifications(plan, &outcomes, sn, opts, guard).await;
        outcomes.extend(rows);
    }
    crate::progress::writes_finished();
    outcomes
}
