//! Sending writes: bounded concurrency, retries through [`Attempts`], batches, and writes
//! whose answer was lost read back before anything else happens to them. Every request's
//! result goes to the [`Guard`], and nothing is sent once it says stop.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::net::{decide, Attempts, Decision, ErrorKind, HttpError};
use crate::servicenow::{BatchRequest, ServiceNow};

use super::guard::{Guard, Halt};
use super::write::{read_back_batch, ReadBack, Write};
use super::{ApplyOptions, OperationOutcome, OutcomeStatus};

/// Runs the writes with bounded concurrency; batched where asked (creates too: a batch whose
/// answer was lost is looked up, creates by identity, before anything in it is sent again).
pub(super) async fn execute(
    sn: &ServiceNow,
    table: &str,
    writes: Vec<Write>,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    let semaphore = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks: JoinSet<Vec<OperationOutcome>> = JoinSet::new();
    let units = units(writes, opts);
    for unit in units {
        let (sn, table, opts, semaphore) = (sn.clone(), table.to_owned(), *opts, semaphore.clone());
        let guard = guard.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            if unit.len() == 1 {
                let write = unit.into_iter().next().expect("one write");
                vec![run_one(&sn, &table, &write, &opts, &guard, None).await]
            } else {
                run_batch(&sn, &table, unit, &opts, &guard).await
            }
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(batch) => {
                crate::progress::writes_done(batch.len() as u64);
                outcomes.extend(batch)
            }
            // A panicking task is a bug; its operations are reported, not lost.
            Err(e) => outcomes.push(OperationOutcome {
                sys_id: None,
                source_id: None,
                status: OutcomeStatus::Failed,
                message: format!("internal error while applying: {e}"),
            }),
        }
    }
    outcomes
}

/// Whether the server may have carried out a request whose answer we did not get.
fn maybe_processed(e: &HttpError) -> bool {
    matches!(e.kind, ErrorKind::Interrupted | ErrorKind::Timeout)
        || matches!(e.status, Some(502 | 504))
}

/// One write, retried per the policy until the guard says stop. When its answer is lost
/// (`lost`, or a send that broke off) the CMDB is read back before anything else: done is
/// `applied`, not done is a failed attempt (sent again while the policy allows, `failed`
/// after), and a read-back that fails too leaves it `unknown`, never sent again, since it
/// may have happened.
pub(super) async fn run_one(
    sn: &ServiceNow,
    table: &str,
    write: &Write,
    opts: &ApplyOptions,
    guard: &Guard,
    mut lost: Option<HttpError>,
) -> OperationOutcome {
    let mut attempts = Attempts::new(&opts.retry, write.verb());
    let mut last = None;
    loop {
        let failure = match lost.take() {
            Some(answer) => {
                // Counted now: a hung server times out every write, and the breaker must
                // not wait for the read-backs to time out too.
                guard.failed(&answer);
                match write.read_back(sn, table, &opts.retry, guard).await {
                    Ok(ReadBack::Settled(outcome)) => {
                        if outcome.status == OutcomeStatus::Applied {
                            guard.succeeded();
                        }
                        return outcome;
                    }
                    Ok(ReadBack::NotDone(why)) => {
                        let mut failure = answer;
                        failure.message = format!("{}; read back: {why}", failure.message);
                        last = Some(failure.clone());
                        if let Err(halt) = guard.wait(&mut attempts, failure).await {
                            return write.halted(&halt);
                        }
                        continue;
                    }
                    Err(halt) => {
                        let why = match &halt {
                            Halt::Failed(e) => format!("reading it back failed: {e}"),
                            Halt::Stopped { reason, .. } => format!("not read back: {reason}"),
                        };
                        return write.outcome(
                            OutcomeStatus::Unknown,
                            None,
                            format!(
                                "the answer was lost ({answer}) and {why}; whether the {} happened is unknown: check the CI",
                                write.verb()
                            ),
                        );
                    }
                }
            }
            None => {
                if let Some(reason) = guard.stopped() {
                    return write.halted(&Halt::Stopped { reason, last });
                }
                match write.send(sn, table).await {
                    Ok(written) => {
                        guard.succeeded();
                        return write.landed(written);
                    }
                    Err(e) if maybe_processed(&e) => {
                        lost = Some(e);
                        continue;
                    }
                    Err(e) => e,
                }
            }
        };
        guard.failed(&failure);
        last = Some(failure.clone());
        if let Err(halt) = guard.wait(&mut attempts, failure).await {
            return write.halted(&halt);
        }
    }
}

/// The writes as units of work: one write each, or batches of at most `batch_size`. A
/// chunk too small to fill every slot with a full batch is spread over the slots (200 writes,
/// 8 in flight: 8 batches of 25, not 2 of 100), so that a slow server works on all of them.
fn units(writes: Vec<Write>, opts: &ApplyOptions) -> Vec<Vec<Write>> {
    if opts.batch_size <= 1 {
        return writes.into_iter().map(|w| vec![w]).collect();
    }
    let spread = writes.len().div_ceil(opts.concurrency.max(1));
    let size = opts.batch_size.min(spread).max(1);
    let mut units = Vec::with_capacity(writes.len().div_ceil(size));
    let mut writes = writes.into_iter().peekable();
    while writes.peek().is_some() {
        units.push(writes.by_ref().take(size).collect());
    }
    units
}

/// Whether a failed batch request certainly did nothing: refused before it ran (a rate
/// limit, a client error) or never delivered. Anything else (a lost or cut-short answer, a
/// server error, a 200 that cannot be read) may have run some of its writes.
fn not_run(e: &HttpError) -> bool {
    matches!(e.kind, ErrorKind::Connect | ErrorKind::Tls) || matches!(e.status, Some(400..=499))
}

/// A batch of writes (creates, updates, deletes). A batch request that certainly did
/// nothing is sent again whole while the policy allows; one that may have done something is
/// read back first, every write of it together (creates by identity): what was done is
/// `applied`, only what was not is sent again, and when the read-back fails too the writes
/// are `unknown`, never sent again. Items that fail inside a serviced batch go on one by one.
async fn run_batch(
    sn: &ServiceNow,
    table: &str,
    unit: Vec<Write>,
    opts: &ApplyOptions,
    guard: &Guard,
) -> Vec<OperationOutcome> {
    let mut attempts = Attempts::new(&opts.retry, "batch");
    let mut last = None;
    let mut pending = unit;
    let mut outcomes = Vec::with_capacity(pending.len());
    loop {
        if let Some(reason) = guard.stopped() {
            let halt = Halt::Stopped { reason, last };
            outcomes.extend(pending.iter().map(|w| w.halted(&halt)));
            return outcomes;
        }
        let requests: Vec<BatchRequest> = pending.iter().map(|w| w.request(table)).collect();
        let error = match sn.batch(&requests).await {
            Ok(results) => {
                guard.succeeded();
                for (write, result) in pending.iter().zip(results) {
                    outcomes.push(item_outcome(sn, table, write, result, opts, guard).await);
                }
                return outcomes;
            }
            Err(e) => e,
        };
        guard.failed(&error);
        last = Some(error.clone());
        if !not_run(&error) {
            match read_back_batch(sn, table, &pending, &opts.retry, guard).await {
                Ok(verdicts) => {
                    let mut not_done = Vec::new();
                    for (write, verdict) in pending.into_iter().zip(verdicts) {
                        match verdict {
                            ReadBack::Settled(outcome) => {
                                if outcome.status == OutcomeStatus::Applied {
                                    guard.succeeded();
                                }
                                outcomes.push(outcome);
                            }
                            ReadBack::NotDone(_) => not_done.push(write),
                        }
                    }
                    pending = not_done;
                    if pending.is_empty() {
                        return outcomes;
                    }
                }
                Err(halt) => {
                    let why = match &halt {
                        Halt::Failed(e) => format!("reading it back failed: {e}"),
                        Halt::Stopped { reason, .. } => format!("not read back: {reason}"),
                    };
                    outcomes.extend(pending.iter().map(|w| {
                        w.outcome(
                            OutcomeStatus::Unknown,
                            None,
                            format!(
                                "the batch's answer was lost ({error}) and {why}; whether the {} happened is unknown: check the CI",
                                w.verb()
                            ),
                        )
                    }));
                    return outcomes;
                }
            }
        }
        if let Err(halt) = guard.wait(&mut attempts, error).await {
            let message = format!("batch failed: {}", halt.message());
            outcomes.extend(
                pending
                    .iter()
                    .map(|w| w.outcome(OutcomeStatus::Failed, None, message.clone())),
            );
            return outcomes;
        }
    }
}

/// The outcome of one item of a serviced batch: written, lost (read back), refused for now
/// (sent again on its own) or failed.
async fn item_outcome(
    sn: &ServiceNow,
    table: &str,
    write: &Write,
    result: Result<Option<crate::reconcile::record::Ci>, HttpError>,
    opts: &ApplyOptions,
    guard: &Guard,
) -> OperationOutcome {
    match result {
        Ok(written) => write.landed(written),
        Err(e) if maybe_processed(&e) => run_one(sn, table, write, opts, guard, Some(e)).await,
        Err(e) if decide(&opts.retry, &e, 1, 0.0) != Decision::GiveUp => {
            run_one(sn, table, write, opts, guard, None).await
        }
        Err(e) => {
            guard.failed(&e);
            write.outcome(OutcomeStatus::Failed, None, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ErrorKind;

    #[test]
    fn outcomes_of_lost_responses() {
        let reset = HttpError::new("POST", "u", ErrorKind::Interrupted, "reset");
        assert!(maybe_processed(&reset));
        let mut gateway = HttpError::new("POST", "u", ErrorKind::Status, "504");
        gateway.status = Some(504);
        assert!(maybe_processed(&gateway));
        let refused = HttpError::new("POST", "u", ErrorKind::Connect, "refused");
        assert!(!maybe_processed(&refused), "never reached the server");
    }

    #[test]
    fn a_batch_is_read_back_unless_it_certainly_did_nothing() {
        let status = |code| {
            let mut e = HttpError::new("POST", "u", ErrorKind::Status, "x");
            e.status = Some(code);
            e
        };
        assert!(not_run(&status(429)) && not_run(&status(400)));
        assert!(not_run(&HttpError::new(
            "POST",
            "u",
            ErrorKind::Connect,
            "refused"
        )));
        for e in [
            status(500),
            status(503),
            status(504),
            HttpError::new("POST", "u", ErrorKind::Interrupted, "reset"),
            HttpError::new("POST", "u", ErrorKind::Timeout, "slow"),
            // A 200 whose body could not be read: its items ran.
            HttpError::new("POST", "u", ErrorKind::Decode, "garbled"),
        ] {
            assert!(!not_run(&e), "{e}");
        }
    }

    #[test]
    fn small_chunks_are_spread_over_every_slot() {
        let writes = |n: usize| -> Vec<Write> {
            (0..n)
                .map(|i| Write::Delete {
                    sys_id: i.to_string(),
                })
                .collect()
        };
        let opts = |batch_size| ApplyOptions {
            batch_size,
            concurrency: 8,
            ..ApplyOptions::default()
        };
        let sizes = |n, batch| -> Vec<usize> {
            units(writes(n), &opts(batch))
                .iter()
                .map(Vec::len)
                .collect()
        };
        assert_eq!(sizes(800, 100), vec![100; 8]);
        assert_eq!(sizes(200, 100), vec![25; 8]);
        assert_eq!(sizes(5, 100), vec![1; 5]);
        assert_eq!(sizes(1000, 100), vec![100; 10]);
        assert_eq!(sizes(3, 0), vec![1; 3], "no batches");
        let all: usize = sizes(777, 100).iter().sum();
        assert_eq!(all, 777);
    }
}
