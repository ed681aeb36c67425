//! Data-driven cases of the core: each folder under `tests/cases/` holds a mapping, a source
//! snapshot, a CMDB export and `case.toml` (the clock, options and the expected counts). The
//! whole plan is held in an insta snapshot beside the case; the counts in `case.toml` say in
//! plain words what the case proves.
//!
//! Each folder is one test named after it (libtest-mimic, `harness = false`), so a failing
//! case hides no other and one runs alone: `cargo test --test cases -- heartbeat`.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use cmdb_reconcile::reconcile::mapping::Mapping;
use cmdb_reconcile::reconcile::plan::Plan;
use cmdb_reconcile::reconcile::planner::{self, Input};
use cmdb_reconcile::reconcile::record::References;
use cmdb_reconcile::{cloudforms, servicenow};
use libtest_mimic::{Arguments, Failed, Trial};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What the case proves, in a sentence.
    about: String,
    now: DateTime<Utc>,
    #[serde(default)]
    allow_mass_change: bool,
    /// Marks the source read incomplete (as a failed page would).
    source_incomplete: Option<String>,
    /// Expected summary counts (only those named are checked).
    expect: BTreeMap<String, usize>,
    /// Expected issue kinds -> count.
    #[serde(default)]
    expect_issues: BTreeMap<String, usize>,
    /// Guards expected to trip.
    #[serde(default)]
    expect_guards: Vec<String>,
    #[serde(default)]
    expect_retirements_blocked: bool,
}

fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["json", "jsonl", "csv"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.exists())
}

fn run_case(dir: &Path) -> Result<(Case, Plan), Failed> {
    let path = dir.join("case.toml");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading `{}`: {e}", path.display()))?;
    let case: Case = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let path = dir.join("mapping.toml");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading `{}`: {e}", path.display()))?;
    let mapping =
        Mapping::parse(&text, "mapping.toml").map_err(|e| format!("{}: {e}", dir.display()))?;
    let source = cloudforms::snapshot::read(&find(dir, "source").ok_or("no source.json")?)
        .map_err(|e| e.to_string())?;
    let cis = servicenow::snapshot::read(&find(dir, "cmdb").ok_or("no cmdb.csv or cmdb.json")?)
        .map_err(|e| e.to_string())?;
    let mut references = References::default();
    if let Some(users) = find(dir, "sys_user") {
        let rows = servicenow::snapshot::read(&users).map_err(|e| e.to_string())?;
        references.add_table("sys_user", rows);
    }
    let plan = planner::plan(Input {
        mapping: &mapping,
        records: &source.records,
        source_origin: "source".into(),
        source_incomplete: case.source_incomplete.clone().or(source.incomplete),
        cis: &cis,
        target_origin: "cmdb".into(),
        references: &references,
        now: case.now,
        allow_mass_change: case.allow_mass_change,
    });
    Ok((case, plan))
}

fn check_expectations(name: &str, case: &Case, plan: &Plan) -> Vec<String> {
    let whole = serde_json::to_value(plan).unwrap();
    let mut failures = Vec::new();
    for (key, want) in &case.expect {
        // `creates` is a summary count; `source.inactive` a path into the plan.
        let path = if key.contains('.') {
            key.clone()
        } else {
            format!("summary.{key}")
        };
        let got = path
            .split('.')
            .try_fold(&whole, |v, k| v.get(k))
            .and_then(|v| v.as_u64())
            .map(|v| v as usize);
        if got != Some(*want) {
            failures.push(format!("{name}: summary `{key}`: want {want}, got {got:?}"));
        }
    }
    for (kind, want) in &case.expect_issues {
        let got = plan
            .issues
            .iter()
            .filter(|i| i.kind.as_str() == kind)
            .count();
        if got != *want {
            failures.push(format!("{name}: issues `{kind}`: want {want}, got {got}"));
        }
    }
    let guards: Vec<&str> = plan
        .safety
        .guards_tripped
        .iter()
        .map(|g| g.guard.as_str())
        .collect();
    if guards
        != case
            .expect_guards
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    {
        failures.push(format!(
            "{name}: guards: want {:?}, got {guards:?}",
            case.expect_guards
        ));
    }
    if plan.safety.retirements_blocked.is_some() != case.expect_retirements_blocked {
        failures.push(format!(
            "{name}: retirements blocked: want {}, got {:?}",
            case.expect_retirements_blocked, plan.safety.retirements_blocked
        ));
    }
    failures
}

/// One case: the expected counts, then the plan against its snapshot. Both are checked before
/// either fails, so a run reports every difference of the case at once.
fn case_test(dir: &Path) -> Result<(), Failed> {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let (case, plan) = run_case(dir)?;
    if case.about.is_empty() {
        return Err("`about` is empty: say what the case proves".into());
    }
    let mut failures = check_expectations(&name, &case, &plan);
    let snapshot = panic::catch_unwind(AssertUnwindSafe(|| {
        insta::with_settings!({
            snapshot_path => dir,
            prepend_module_to_snapshot => false,
            description => case.about.clone(),
            omit_expression => true,
        }, {
            insta::assert_yaml_snapshot!("plan", plan);
        });
    }));
    if snapshot.is_err() {
        failures.push(format!(
            "{name}: the plan differs from its snapshot `plan.snap` (insta's diff above)"
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading `{}`: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.toml").exists())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 10,
        "expected the case folders under {}",
        root.display()
    );
    let trials: Vec<Trial> = dirs
        .into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            Trial::test(name, move || case_test(&dir))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
