//! Reports retention (`[report] keep`): the last N runs, or the runs of the last N days, are
//! kept in the report folder and older ones removed after each plan.
//!
//! A run writes one folder, `<YYYYMMDDTHHMMSSZ>/`, holding the run's `index.md` and a folder
//! per sync with its plan and reports (earlier versions wrote `<YYYYMMDDTHHMMSSZ>-<mapping>/`
//! per sync; those are pruned the same way). Only what this tool wrote is ever removed: a
//! folder with the tool's name that holds a `plan.json` with a `format_version` (a run
//! folder: in one of its sync folders). Inside it only the tool's own files go (plan,
//! outcome, drift reports, the index, their temporary files); a folder is removed only when
//! that leaves it empty. Anything else (a person's notes, a symlink, the demo's folders,
//! another tool's files) is left alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{Format, OUTCOME_FILE, PLAN_FILE};

/// How many reports to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The folders of the last N runs (one per run; older versions wrote one per sync,
    /// all with the run's time, which count as one run).
    Runs(usize),
    /// The folders of runs younger than this.
    Age(Duration),
}

impl Keep {
    /// `30` (runs) or a duration such as `14d` (see `text::parse_duration`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(n) = text.parse::<usize>() {
            return if n == 0 {
                Err("keep `0` would remove every report; give at least 1 run or a duration such as `14d`".into())
            } else {
                Ok(Self::Runs(n))
            };
        }
        match crate::text::parse_duration(text)? {
            secs if secs <= 0 => Err(format!("keep `{text}` would remove every report")),
            secs => Ok(Self::Age(Duration::from_secs(secs as u64))),
        }
    }
}

/// A run folder's name: the run's UTC time (`chrono` format).
pub const RUN_STAMP: &str = "%Y%m%dT%H%M%SZ";

/// The time a report folder's name says, when the name is the tool's: a run folder
/// (`<stamp>`) or an older per-sync folder (`<stamp>-<mapping>`).
pub fn folder_time(name: &str) -> Option<DateTime<Utc>> {
    let (stamp, mapping) = name.split_at_checked(16)?;
    if !mapping.is_empty() && mapping.strip_prefix('-').is_none_or(str::is_empty) {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, RUN_STAMP)
        .ok()
        .map(|t| t.and_utc())
}

/// The report folders of a folder named as the tool's: itself when it holds a plan (a
/// per-sync folder), else its sub-folders that hold one (a run folder).
#[allow(clippy::disallowed_methods, reason = "the shell reads its own reports")]
fn plan_folders(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if holds_a_plan(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && holds_a_plan(&entry.path()) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Whether `dir` holds a plan this tool wrote.
#[allow(clippy::disallowed_methods, reason = "the shell reads its own reports")]
fn holds_a_plan(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(PLAN_FILE)) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format_version").and_then(serde_json::Value::as_u64))
        .is_some()
}

/// The files this tool writes into a report folder.
fn is_ours(name: &str) -> bool {
    let reports: Vec<&str> = Format::ALL.iter().map(|f| f.file_name()).collect();
    name == PLAN_FILE
        || name == OUTCOME_FILE
        || name == super::index::INDEX_FILE
        || reports.contains(&name)
        || (name.starts_with('.') && name.ends_with(".tmp"))
}

/// Removes the report folders under `root` that `keep` lets go; never one of `protect` (the
/// folders just written). Returns the folders removed. Folders that are not the tool's are
/// never touched; a folder holding anything else keeps that and stays.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell prunes the report folders it wrote"
)]
pub fn prune(
    root: &Path,
    keep: Keep,
    now: DateTime<Utc>,
    protect: &[PathBuf],
) -> std::io::Result<Vec<PathBuf>> {
    let mut ours: Vec<(DateTime<Utc>, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        // A symlink is not a folder we made, whatever it points to.
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        let Some(time) = entry.file_name().to_str().and_then(folder_time) else {
            continue;
        };
        if !plan_folders(&path)?.is_empty() {
            ours.push((time, path));
        }
    }
    ours.sort();
    let doomed: Vec<PathBuf> = match keep {
        Keep::Runs(n) => {
            let mut runs: Vec<DateTime<Utc>> = ours.iter().map(|(t, _)| *t).collect();
            runs.dedup();
            let Some(oldest_kept) = runs.len().checked_sub(n).map(|i| runs[i]) else {
                return Ok(Vec::new());
            };
            ours.into_iter()
                .filter(|(t, _)| *t < oldest_kept)
                .map(|(_, p)| p)
                .collect()
        }
        Keep::Age(age) => {
            let cutoff = now - chrono::TimeDelta::from_std(age).unwrap_or(chrono::TimeDelta::MAX);
            ours.into_iter()
                .filter(|(t, _)| *t < cutoff)
                .map(|(_, p)| p)
                .collect()
        }
    };
    let mut removed = Vec::new();
    for dir in doomed {
        if protect.iter().any(|p| p == &dir) {
            continue;
        }
        for folder in plan_folders(&dir)? {
            remove_ours(&folder)?;
            if folder != dir {
                // A sync's folder holding something else stays, and so does the run's.
                let _ = std::fs::remove_dir(&folder);
            }
        }
        remove_ours(&dir)?;
        // Fails on a folder that still holds something else: it stays, with that.
        if std::fs::remove_dir(&dir).is_ok() {
            removed.push(dir);
        } else {
            tracing::warn!(folder = %dir.display(), "old report folder kept: it holds files this tool did not write");
        }
    }
    Ok(removed)
}

/// Removes the tool's own files (not folders) from `dir`.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell prunes the report folders it wrote"
)]
fn remove_ours(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_file = entry.file_type()?.is_file();
        if is_file && entry.file_name().to_str().is_some_and(is_ours) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests build report folders")]
mod tests {
    use super::*;

    #[test]
    fn keep_is_runs_or_a_duration() {
        assert_eq!(Keep::parse("30"), Ok(Keep::Runs(30)));
        assert_eq!(
            Keep::parse("14d"),
            Ok(Keep::Age(Duration::from_secs(14 * 86_400)))
        );
        assert!(Keep::parse("0").is_err());
        assert!(Keep::parse("fortnight").is_err());
    }

    #[test]
    fn only_the_tools_folder_names_have_a_time() {
        assert!(folder_time("20261201T061500Z-vmware-vm").is_some());
        assert!(folder_time("20261201T061500Z").is_some(), "a run folder");
        assert!(folder_time("20261201T061500Z-").is_none());
        assert!(folder_time("20261201T061500Zx").is_none());
        assert!(folder_time("demo-20261201T061500Z").is_none());
        assert!(folder_time("20261301T061500Z-vm").is_none(), "month 13");
        assert!(folder_time("notes").is_none());
        assert!(folder_time("2026120").is_none());
    }

    fn report(root: &Path, name: &str, plan: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(PLAN_FILE), plan).unwrap();
        std::fs::write(dir.join("drift.html"), "<html>").unwrap();
        dir
    }

    const PLAN: &str = r#"{"format_version": 1}"#;

    #[test]
    fn prunes_only_what_the_tool_wrote() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let old1 = report(r, "20261101T000000Z-vmware-vm", PLAN);
        let old2 = report(r, "20261101T000000Z-vm", PLAN); // same run, other sync
        let mid = report(r, "20261115T000000Z-vmware-vm", PLAN);
        let new = report(r, "20261201T000000Z-vmware-vm", PLAN);
        // Look like ours but are not: no plan, a plan of something else, a person's notes.
        let no_plan = r.join("20261001T000000Z-vmware-vm");
        std::fs::create_dir_all(&no_plan).unwrap();
        let foreign = report(r, "20261002T000000Z-other", r#"{"version": 3}"#);
        let notes = report(r, "20261003T000000Z-vmware-vm", PLAN);
        std::fs::write(notes.join("review-notes.txt"), "keep me").unwrap();
        let demo = report(r, "demo-20261001T000000Z", PLAN);
        std::fs::write(r.join("20261001T000000Z-file"), "a file").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&old1, r.join("20260901T000000Z-link")).unwrap();

        let now: DateTime<Utc> = "2026-12-02T00:00:00Z".parse().unwrap();
        let removed = prune(r, Keep::Runs(2), now, &[]).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(
            !old1.exists() && !old2.exists(),
            "both folders of the old run"
        );
        assert!(mid.exists() && new.exists());
        assert!(no_plan.exists() && foreign.exists() && demo.exists());
        assert!(r.join("20261001T000000Z-file").exists());
        // The person's notes stay, in their folder; the tool's files in it went.
        assert!(notes.join("review-notes.txt").exists());
        assert!(!notes.join(PLAN_FILE).exists());

        // By age: the run of 15 November is 17 days old.
        let removed = prune(r, Keep::Age(Duration::from_secs(14 * 86_400)), now, &[]).unwrap();
        assert_eq!(removed, vec![mid.clone()]);
        assert!(new.exists());
        // A folder just written is never removed, whatever the setting.
        let removed = prune(
            r,
            Keep::Age(Duration::from_secs(1)),
            now,
            std::slice::from_ref(&new),
        )
        .unwrap();
        assert!(removed.is_empty() && new.exists());
    }

    #[test]
    fn prunes_run_folders_with_their_syncs_and_index() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let run = |name: &str| {
            let dir = r.join(name);
            report(&dir, "vcenter", PLAN);
            report(&dir, "vmware-vm", PLAN);
            std::fs::write(dir.join("index.md"), "# run").unwrap();
            dir
        };
        let old = run("20261101T000000Z");
        let kept_notes = run("20261102T000000Z");
        std::fs::write(kept_notes.join("vmware-vm/notes.txt"), "mine").unwrap();
        let legacy = report(r, "20261103T000000Z-vmware-vm", PLAN);
        let new = run("20261201T000000Z");
        // A stamp-named folder with no plan in it is not ours.
        let other = r.join("20261001T000000Z");
        std::fs::create_dir_all(other.join("x")).unwrap();

        let now: DateTime<Utc> = "2026-12-02T00:00:00Z".parse().unwrap();
        let removed = prune(r, Keep::Runs(1), now, &[]).unwrap();
        assert_eq!(removed, vec![old.clone(), legacy.clone()]);
        assert!(!old.exists() && !legacy.exists() && new.exists() && other.exists());
        // The folder with a person's notes stays with them only.
        assert!(kept_notes.join("vmware-vm/notes.txt").exists());
        assert!(!kept_notes.join("vmware-vm/plan.json").exists());
        assert!(!kept_notes.join("vcenter").exists());
        assert!(!kept_notes.join("index.md").exists());
    }
}
