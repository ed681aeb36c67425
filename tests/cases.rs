//! Data-driven cases of the core: each folder under `tests/cases/` holds a mapping, a source
//! snapshot, a CMDB export and `case.toml` (the clock, options and the expected counts). The
//! whole plan is held in an insta snapshot beside the case; the counts in `case.toml` say in
//! plain words what the case proves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use cmdb_reconcile::reconcile::mapping::Mapping;
use cmdb_reconcile::reconcile::plan::Plan;
use cmdb_reconcile::reconcile::planner::{self, Input};
use cmdb_reconcile::reconcile::record::References;
use cmdb_reconcile::{cloudforms, servicenow};
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

fn run_case(dir: &Path) -> (Case, Plan) {
    let case: Case = toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mapping_path = dir.join("mapping.toml");
    let mapping = Mapping::parse(
        &std::fs::read_to_string(&mapping_path).unwrap(),
        "mapping.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let source = cloudforms::snapshot::read(&find(dir, "source").expect("source.json")).unwrap();
    let cis =
        servicenow::snapshot::read(&find(dir, "cmdb").expect("cmdb.csv or cmdb.json")).unwrap();
    let mut references = References::default();
    if let Some(users) = find(dir, "sys_user") {
        references.add_table("sys_user", servicenow::snapshot::read(&users).unwrap());
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
    (case, plan)
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

#[test]
fn cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.toml").exists())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 10,
        "expected the case folders under {}",
        root.display()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (case, plan) = run_case(dir);
        assert!(!case.about.is_empty());
        failures.extend(check_expectations(&name, &case, &plan));
        insta::with_settings!({
            snapshot_path => dir.clone(),
            prepend_module_to_snapshot => false,
            description => case.about.clone(),
            omit_expression => true,
        }, {
            insta::assert_yaml_snapshot!("plan", plan);
        });
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
