//! The lease: two runs never write to the CMDB at once. `run` and `apply` take it before
//! anything is read for writing and hold it until they end, in two layers:
//!
//! - a lock file on this host (`flock`-style, released by the kernel when the process dies),
//!   which keeps a hand-run `apply` and cron's `run` on one machine apart without a round
//!   trip;
//! - a lease row in a ServiceNow table, which keeps apart runs on different hosts (a CronJob
//!   and someone's laptop). The Table API has no conditional update (servicenow-api.md,
//!   integrations.md B.4), so a claim is write-then-read-back: each contender inserts a claim
//!   row, reads every live claim of the lease, and the earliest (`sys_created_on`, then
//!   `sys_id`, an order every reader sees alike) wins; a loser deletes its row and backs
//!   off. The winner reads once more after a short settle time, so a claim whose insert was
//!   still in flight during its first read cannot also win. Claims carry an expiry that the
//!   holder renews while it runs; a holder that died stops renewing and its claim expires.
//!   `--force-unlock` deletes every claim of the lease.
//!
//! The wall clock is not read here: times are the run's `now` plus a monotonic stopwatch.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use crate::net::HttpError;
use crate::reconcile::record::Ci;
use crate::servicenow::ServiceNow;

/// ServiceNow's datetime format (UTC), as the lease rows store their expiry.
const SN_DATETIME: &str = "%Y-%m-%d %H:%M:%S";

/// `[lease]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Take the ServiceNow lease too (not only the local lock file).
    pub servicenow: bool,
    /// The table holding claim rows (README "Lease": its columns).
    pub table: String,
    /// The lease's name: runs with the same name exclude each other.
    pub name: String,
    /// How long a claim lives unless renewed; renewed every third of it.
    pub ttl: Duration,
    /// How long the winner waits before confirming its claim (longer than an insert takes).
    pub settle: Duration,
    /// The local lock file; default: one per ServiceNow instance in the temp folder.
    pub lock_file: Option<PathBuf>,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            servicenow: true,
            table: "u_cmdb_reconcile_lease".into(),
            name: "cmdb-reconcile".into(),
            ttl: Duration::from_secs(300),
            settle: Duration::from_secs(2),
            lock_file: None,
        }
    }
}

/// Why the lease could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("another run holds the lease `{name}`: {holder} on host {host} since {since} UTC (its claim expires {expires} UTC unless renewed); nothing was written. If that run is dead, wait for the claim to expire or use --force-unlock")]
    Held {
        name: String,
        holder: String,
        host: String,
        since: String,
        expires: String,
    },
    #[error("another run on this host holds the lock file `{}` ({holder}); nothing was written", path.display())]
    Locked { path: PathBuf, holder: String },
    #[error("the lease claim just written to ServiceNow table `{table}` cannot be read back by `u_name`: the table lacks the lease columns (README \"Lease\")")]
    Unreadable { table: String },
    #[error("cannot use the lock file `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot take the lease in ServiceNow table `{table}` (README \"Lease\" says how to create it, or set [lease] servicenow = false)")]
    Http {
        table: String,
        #[source]
        source: HttpError,
    },
}

impl LeaseError {
    /// Whether another run holds the lease (exit code 5), rather than the lease failing.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Held { .. } | Self::Locked { .. })
    }
}

/// The run's clock: the `now` read once in `main`, moved on by a monotonic stopwatch.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: DateTime<Utc>,
    started: Instant,
}

impl Clock {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            start: now,
            started: Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.start + TimeDelta::from_std(self.started.elapsed()).unwrap_or_default()
    }
}

/// Who this run is, as a claim names it.
#[derive(Debug, Clone)]
pub struct Holder {
    /// Unique per run: host, process id and a random suffix.
    pub id: String,
    pub host: String,
}

impl Holder {
    pub fn this_process() -> Self {
        let host = hostname();
        let id = format!(
            "cmdb-reconcile pid {} ({:08x})",
            std::process::id(),
            rand::random::<u32>()
        );
        Self { id, host }
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the host name, for the claim: a file read by the shell"
)]
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A held lease. Release it with [`Lease::release`]; if the process dies instead, the lock
/// file is released by the kernel and the claim expires.
pub struct Lease {
    _file: File,
    claim: Option<Claim>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    lost: Arc<AtomicBool>,
}

struct Claim {
    sn: ServiceNow,
    table: String,
    sys_id: String,
}

impl Lease {
    /// Takes the local lock, then (when configured and a connection is given) the ServiceNow
    /// lease. Fails with [`LeaseError::Held`]/[`LeaseError::Locked`] when another run has it.
    pub async fn acquire(
        cfg: &LeaseConfig,
        instance: &str,
        sn: Option<&ServiceNow>,
        holder: &Holder,
        clock: Clock,
    ) -> Result<Self, LeaseError> {
        let path = cfg
            .lock_file
            .clone()
            .unwrap_or_else(|| default_lock_file(instance, &cfg.name));
        let file = lock_file(&path, holder, clock)?;
        let lost = Arc::new(AtomicBool::new(false));
        let (claim, renewer) = match sn {
            Some(sn) if cfg.servicenow => {
                let claim = claim(cfg, sn, holder, clock).await?;
                let renewer = tokio::spawn(renew(
                    cfg.clone(),
                    sn.clone(),
                    claim.sys_id.clone(),
                    clock,
                    lost.clone(),
                ));
                (Some(claim), Some(renewer))
            }
            _ => (None, None),
        };
        tracing::debug!(lock_file = %path.display(), servicenow = claim.is_some(), "lease taken");
        Ok(Self {
            _file: file,
            claim,
            renewer,
            lost,
        })
    }

    /// Whether the lease was lost while running (the claim was deleted by `--force-unlock`
    /// or another run's claim now comes first): the run must not count as clean.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// The flag [`Lease::lost`] reads, for a `Guard` to stop writes the moment it is set.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.lost)
    }

    /// Stops renewing and deletes the claim (the lock file goes with the process's handle).
    pub async fn release(self) {
        if let Some(renewer) = self.renewer {
            renewer.abort();
        }
        if let Some(c) = self.claim {
            if let Err(e) = c.sn.delete(&c.table, &c.sys_id).await {
                tracing::warn!("could not delete the lease claim (it will expire): {e}");
            }
        }
    }
}

/// Deletes every claim of the lease (`--force-unlock`); returns how many there were.
pub async fn force_unlock(cfg: &LeaseConfig, sn: &ServiceNow) -> Result<usize, LeaseError> {
    let http = |source| LeaseError::Http {
        table: cfg.table.clone(),
        source,
    };
    let claims = read_claims(cfg, sn).await.map_err(http)?;
    for c in &claims {
        sn.delete(&cfg.table, &c.sys_id).await.map_err(http)?;
    }
    Ok(claims.len())
}

/// One lock file per ServiceNow instance, so runs against different instances do not wait
/// on each other, wherever they were started from; and one per lease name besides the
/// default, so that leases of other names (the catalog pass's) do not wait on it either.
fn default_lock_file(instance: &str, name: &str) -> PathBuf {
    // FNV-1a: a short stable name, not a secret (the URL has no credentials).
    let hash = instance.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let suffix: String = if name == LeaseConfig::default().name {
        String::new()
    } else {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("-{safe}")
    };
    std::env::temp_dir().join(format!("cmdb-reconcile-{hash:016x}{suffix}.lock"))
}

#[allow(
    clippy::disallowed_methods,
    reason = "the lock file is the shell's; opened with OpenOptions"
)]
fn lock_file(path: &Path, holder: &Holder, clock: Clock) -> Result<File, LeaseError> {
    let io = |source| LeaseError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            // The holder writes its name just after taking the lock: a run that reads in
            // between finds the file empty, so it waits a moment for the name.
            let mut who = String::new();
            for _ in 0..20 {
                who.clear();
                let _ = file.rewind();
                let _ = file.read_to_string(&mut who);
                if !who.trim().is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            return Err(LeaseError::Locked {
                path: path.to_path_buf(),
                holder: who.trim().to_owned(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    // Say who holds it, for the next run's message.
    let who = format!(
        "{} on host {} since {} UTC",
        holder.id,
        holder.host,
        clock.now().format(SN_DATETIME)
    );
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(who.as_bytes()).map_err(io)?;
    Ok(file)
}

/// A claim row as read back.
#[derive(Debug, Clone)]
struct ClaimRow {
    sys_id: String,
    holder: String,
    host: String,
    created: String,
    expires: String,
}

impl ClaimRow {
    fn from_ci(ci: &Ci) -> Self {
        Self {
            sys_id: ci.sys_id.clone(),
            // Printed in the busy message: a row anyone may write is server text.
            holder: crate::net::printable(ci.get("u_holder")),
            host: crate::net::printable(ci.get("u_host")),
            created: ci.get("sys_created_on").to_owned(),
            expires: ci.get("u_expires").to_owned(),
        }
    }

    /// Live until its expiry; a claim whose expiry cannot be read is taken as live (safe:
    /// it only ever makes this run wait).
    fn live(&self, now: DateTime<Utc>) -> bool {
        chrono::NaiveDateTime::parse_from_str(self.expires.trim(), SN_DATETIME)
            .map_or(true, |t| t.and_utc() > now)
    }
}

const CLAIM_FIELDS: [&str; 5] = [
    "u_name",
    "u_holder",
    "u_host",
    "u_expires",
    "sys_created_on",
];

/// Every claim of the lease, earliest first.
async fn read_claims(cfg: &LeaseConfig, sn: &ServiceNow) -> Result<Vec<ClaimRow>, HttpError> {
    let fields: Vec<String> = CLAIM_FIELDS.map(String::from).to_vec();
    let rows = sn
        .find(
            &cfg.table,
            &[("u_name".to_owned(), cfg.name.clone())],
            &fields,
        )
        .await?;
    let mut claims: Vec<ClaimRow> = rows.iter().map(ClaimRow::from_ci).collect();
    // `YYYY-MM-DD HH:MM:SS` sorts as text; the sys_id breaks ties the same way for everyone.
    claims.sort_by(|a, b| (&a.created, &a.sys_id).cmp(&(&b.created, &b.sys_id)));
    Ok(claims)
}

/// The first live claim, if it is not `ours`.
fn first_other(claims: &[ClaimRow], ours: &str, now: DateTime<Utc>) -> Option<ClaimRow> {
    claims
        .iter()
        .find(|c| c.live(now))
        .filter(|c| c.sys_id != ours)
        .cloned()
}

async fn claim(
    cfg: &LeaseConfig,
    sn: &ServiceNow,
    holder: &Holder,
    clock: Clock,
) -> Result<Claim, LeaseError> {
    let http = |source| LeaseError::Http {
        table: cfg.table.clone(),
        source,
    };
    let expires = expiry(cfg, clock);
    let row = sn
        .create(
            &cfg.table,
            &[
                ("u_name".to_owned(), cfg.name.clone()),
                ("u_holder".to_owned(), holder.id.clone()),
                ("u_host".to_owned(), holder.host.clone()),
                ("u_expires".to_owned(), expires),
            ],
        )
        .await
        .map_err(http)?;
    let ours = row.sys_id.clone();
    let mut confirmations = [Duration::ZERO, cfg.settle].into_iter();
    let outcome = loop {
        let Some(wait) = confirmations.next() else {
            break Ok(());
        };
        tokio::time::sleep(wait).await;
        let claims = match read_claims(cfg, sn).await {
            Ok(c) => c,
            Err(e) => break Err(http(e)),
        };
        if !claims.iter().any(|c| c.sys_id == ours) {
            // A table that drops our columns or rows cannot hold a lease.
            break Err(LeaseError::Unreadable {
                table: cfg.table.clone(),
            });
        }
        if let Some(winner) = first_other(&claims, &ours, clock.now()) {
            break Err(LeaseError::Held {
                name: cfg.name.clone(),
                holder: winner.holder,
                host: winner.host,
                since: winner.created,
                expires: winner.expires,
            });
        }
    };
    match outcome {
        Ok(()) => {
            // Claims of runs that died: nobody renews them, so nobody needs them.
            if let Ok(claims) = read_claims(cfg, sn).await {
                for dead in claims.iter().filter(|c| !c.live(clock.now())) {
                    let _ = sn.delete(&cfg.table, &dead.sys_id).await;
                }
            }
            Ok(Claim {
                sn: sn.clone(),
                table: cfg.table.clone(),
                sys_id: ours,
            })
        }
        Err(e) => {
            // Back off: a loser's claim must not stand in the way of the next run.
            let _ = sn.delete(&cfg.table, &ours).await;
            Err(e)
        }
    }
}

fn expiry(cfg: &LeaseConfig, clock: Clock) -> String {
    let ttl = TimeDelta::from_std(cfg.ttl).unwrap_or(TimeDelta::seconds(300));
    (clock.now() + ttl).format(SN_DATETIME).to_string()
}

/// Renews the claim every third of its life; marks the lease lost when the claim is gone or
/// another claim now comes first.
async fn renew(
    cfg: LeaseConfig,
    sn: ServiceNow,
    ours: String,
    clock: Clock,
    lost: Arc<AtomicBool>,
) {
    let period = (cfg.ttl / 3).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = sn
            .update(
                &cfg.table,
                &ours,
                &[("u_expires".to_owned(), expiry(&cfg, clock))],
            )
            .await
        {
            tracing::warn!("could not renew the lease claim: {e}");
        }
        match read_claims(&cfg, &sn).await {
            Ok(claims) => {
                let gone = !claims.iter().any(|c| c.sys_id == ours);
                if gone || first_other(&claims, &ours, clock.now()).is_some() {
                    tracing::error!(
                        "the lease `{}` was lost while running (force-unlocked, or expired); this run is not counted as clean",
                        cfg.name
                    );
                    lost.store(true, Ordering::Relaxed);
                    return;
                }
            }
            Err(e) => tracing::warn!("could not check the lease claim: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sys_id: &str, created: &str, expires: &str) -> ClaimRow {
        ClaimRow {
            sys_id: sys_id.into(),
            holder: format!("h-{sys_id}"),
            host: "host".into(),
            created: created.into(),
            expires: expires.into(),
        }
    }

    #[test]
    fn the_earliest_live_claim_wins() {
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let claims = vec![
            row("a", "2026-12-01 09:00:00", "2026-12-01 09:05:00"), // expired: its holder died
            row("c", "2026-12-01 09:59:59", "2026-12-01 10:05:00"),
            row("b", "2026-12-01 09:59:59", "2026-12-01 10:05:00"),
        ];
        let mut sorted = claims.clone();
        sorted.sort_by(|a, b| (&a.created, &a.sys_id).cmp(&(&b.created, &b.sys_id)));
        assert_eq!(first_other(&sorted, "b", now).map(|c| c.sys_id), None);
        assert_eq!(
            first_other(&sorted, "c", now).map(|c| c.sys_id),
            Some("b".into())
        );
        // An expiry nobody can read is taken as live: it only ever makes a run wait.
        let odd = vec![row("x", "2026-12-01 09:00:00", "soon")];
        assert!(first_other(&odd, "y", now).is_some());
    }

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let clock = Clock::new("2026-12-01T10:00:00Z".parse().unwrap());
        let first = Holder {
            id: "first".into(),
            host: "h1".into(),
        };
        let held = lock_file(&path, &first, clock).unwrap();
        let second = Holder {
            id: "second".into(),
            host: "h1".into(),
        };
        match lock_file(&path, &second, clock) {
            Err(e @ LeaseError::Locked { .. }) => {
                assert!(e.is_busy());
                assert!(e.to_string().contains("first on host h1"), "{e}");
            }
            other => panic!("expected Locked, got {:?}", other.map(|_| ())),
        }
        drop(held);
        lock_file(&path, &second, clock).expect("free again once the holder is gone");
    }
}
