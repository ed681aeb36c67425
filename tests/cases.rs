//! Data-driven cases of the core: each folder under `tests/cases/` holds a source snapshot, a
//! CMDB export and `case.toml` (the clock, options and the expected counts), and a mapping:
//! its own `mapping.toml`, the shared `base-mapping.toml`, or the base with its
//! `mapping.override.toml` merged over it (`tests/cases/README.md`). The whole plan is held in
//! an insta snapshot beside the case; the counts in `case.toml` say in plain words what the
//! case proves.
//!
//! Each folder is one test named after it (libtest-mimic, `harness = false`), so a failing
//! case hides no other and one runs alone: `cargo test --test cases -- heartbeat`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use cmdb_reconcile::reconcile::classify::KvInput;
use cmdb_reconcile::reconcile::mapping::Mapping;
use cmdb_reconcile::reconcile::plan::Plan;
use cmdb_reconcile::reconcile::planner::{self, Input};
use cmdb_reconcile::reconcile::record::References;
use cmdb_reconcile::reconcile::relations::RelInput;
use cmdb_reconcile::{cloudforms, servicenow};
use libtest_mimic::{Arguments, Failed, Trial};
use serde::Deserialize;

/// The mapping of every case without a `mapping.toml` of its own.
const BASE_MAPPING: &str = "base-mapping.toml";
/// A case's own, complete mapping.
const OWN_MAPPING: &str = "mapping.toml";
/// Tables merged over the base mapping.
const OVERRIDE_MAPPING: &str = "mapping.override.toml";
/// The origin every case's plan records, wherever its mapping text came from: the snapshots
/// show it, and it stayed `mapping.toml` when the copies of the base were removed.
const MAPPING_ORIGIN: &str = "mapping.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What the case proves, in a sentence.
    about: String,
    /// The base mapping instead of `base-mapping.toml`: a path from the repository root
    /// (a shipped mapping, e.g. `mappings/provision-incident.toml`), which the case's
    /// `mapping.override.toml` is merged over; so the case tests the file users get.
    base: Option<PathBuf>,
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
    /// Issues expected in the plan, each found by kind and its VMs (`source_ids`, in order).
    #[serde(default)]
    expect_issue: Vec<ExpectIssue>,
    /// Guards expected to trip.
    #[serde(default)]
    expect_guards: Vec<String>,
    #[serde(default)]
    expect_retirements_blocked: bool,
    /// Expected relationship rows to create and delete (`[[relate]]` cases).
    #[serde(default)]
    expect_relationships: ExpectRelationships,
    /// Expected classification rows to create and delete (`[classify]` cases).
    #[serde(default)]
    expect_classifications: ExpectRelationships,
}

/// One issue the plan must hold: of `kind`, listing exactly `source_ids`, and named `name`
/// when given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectIssue {
    kind: String,
    source_ids: Vec<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectRelationships {
    creates: Option<usize>,
    deletes: Option<usize>,
}

fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["json", "jsonl", "csv"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.exists())
}

/// Merges `over` into `base`: tables (inline ones too) merge key by key at any depth; any
/// other value replaces the base's, arrays whole (an override's `[[identify]]` replaces every
/// identity rule). Nothing can be removed: a case that needs a key gone keeps its own mapping.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => merge(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `override_text` merged over `base_text`, printed as TOML.
fn merged(base_text: &str, override_text: &str) -> Result<String, String> {
    let mut base: toml::Table = toml::from_str(base_text).map_err(|e| e.to_string())?;
    merge(
        &mut base,
        toml::from_str(override_text).map_err(|e| e.to_string())?,
    );
    toml::to_string(&base).map_err(|e| e.to_string())
}

/// The mapping text of the case in `dir` (see the module comment). The base is passed as it
/// is, byte for byte, so its plans keep the digest the copies it replaced had.
fn mapping_text(dir: &Path, base: &str) -> Result<String, Failed> {
    let read = |name: &str| -> Result<Option<String>, Failed> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading `{}`: {e}", path.display()).into()),
        }
    };
    match (read(OWN_MAPPING)?, read(OVERRIDE_MAPPING)?) {
        (Some(_), Some(_)) => {
            Err(format!("`{OWN_MAPPING}` and `{OVERRIDE_MAPPING}` both: keep one").into())
        }
        (Some(own), None) if own == base => Err(format!(
            "`{OWN_MAPPING}` is a copy of `{BASE_MAPPING}`: delete it and the case uses the base"
        )
        .into()),
        (Some(own), None) => Ok(own),
        (None, Some(over)) => {
            merged(base, &over).map_err(|e| format!("`{OVERRIDE_MAPPING}`: {e}").into())
        }
        (None, None) => Ok(base.to_owned()),
    }
}

fn run_case(dir: &Path, base: &str) -> Result<(Case, Plan), Failed> {
    let path = dir.join("case.toml");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading `{}`: {e}", path.display()))?;
    let case: Case = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let own_base;
    let base = match &case.base {
        Some(file) => {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            own_base = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading `{}`: {e}", path.display()))?;
            own_base.as_str()
        }
        None => base,
    };
    let mut mapping = Mapping::parse(&mapping_text(dir, base)?, MAPPING_ORIGIN)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    // The table's schema, as a live plan reads it from the instance: `sys_dictionary` (and
    // `sys_choice`) exports in the case give it, and the mapping is checked and fitted to it.
    if let Some(dictionary) = find(dir, "sys_dictionary") {
        let dictionary = servicenow::snapshot::read(&dictionary).map_err(|e| e.to_string())?;
        let choices = match find(dir, "sys_choice") {
            Some(p) => servicenow::snapshot::read(&p).map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        let table = mapping.target.table.clone();
        let mut lineage = vec![table.clone()];
        for row in &dictionary {
            let name = row.get("name").trim().to_owned();
            if !name.is_empty() && !lineage.contains(&name) {
                lineage.push(name);
            }
        }
        let schema = cmdb_reconcile::reconcile::schema::TableSchema::from_dictionary(
            &table,
            &lineage,
            &dictionary,
            &choices,
        );
        let labels = mapping.unknown_labels(&schema);
        if !labels.is_empty() {
            return Err(format!("labels the choices lack: {labels:?}").into());
        }
        mapping.apply_schema(&schema);
    }
    let source = cloudforms::snapshot::read(&find(dir, "source").ok_or("no source.json")?)
        .map_err(|e| e.to_string())?;
    let cis = servicenow::snapshot::read(&find(dir, "cmdb").ok_or("no cmdb.csv or cmdb.json")?)
        .map_err(|e| e.to_string())?;
    let mut references = References::default();
    if let Some(users) = find(dir, "sys_user") {
        let rows = servicenow::snapshot::read(&users).map_err(|e| e.to_string())?;
        references.add_table("sys_user", rows);
    }
    // Other referenced tables: `ref.<table>.csv` (e.g. the ESX servers a VM relates to).
    let mut others: Vec<cmdb_reconcile::reconcile::record::Ci> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(table) = name
            .strip_prefix("ref.")
            .and_then(|n| n.strip_suffix(".csv"))
        {
            let rows = servicenow::snapshot::read(&path).map_err(|e| e.to_string())?;
            others.extend(rows.iter().cloned());
            references.add_table(table, rows);
        }
    }
    // Relationships: `cmdb_rel_ci.csv` and `cmdb_rel_type.csv`.
    let relations = match (find(dir, "cmdb_rel_ci"), find(dir, "cmdb_rel_type")) {
        (Some(rels), Some(types)) => {
            let mut input = RelInput::default();
            for t in servicenow::snapshot::read(&types).map_err(|e| e.to_string())? {
                input
                    .types
                    .insert(t.get("name").to_owned(), t.sys_id.clone());
            }
            input.rows = servicenow::snapshot::read(&rels).map_err(|e| e.to_string())?;
            input.others = others.into_iter().map(|c| (c.sys_id.clone(), c)).collect();
            Some(input)
        }
        _ => None,
    };
    // Classifications: `cmdb_key_value.csv`.
    let classifications = match find(dir, "cmdb_key_value") {
        Some(path) => Some(KvInput {
            rows: servicenow::snapshot::read(&path).map_err(|e| e.to_string())?,
        }),
        None => None,
    };
    let input = |records| Input {
        mapping: &mapping,
        records,
        source_origin: "source".into(),
        source_incomplete: case.source_incomplete.clone().or(source.incomplete.clone()),
        cis: &cis,
        target_origin: "cmdb".into(),
        references: &references,
        now: case.now,
        allow_mass_change: case.allow_mass_change,
        relations: relations.as_ref(),
        classifications: classifications.as_ref(),
    };
    let plan = planner::plan(input((&source.records[..]).into()));
    // A run hands its records over (the planner lets each go once evaluated); the plan must
    // not depend on which.
    let handed_over = planner::plan(input(source.records.clone().into()));
    if handed_over != plan {
        return Err("the plan of records handed over differs from that of records lent".into());
    }
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
    let (rel_creates, rel_deletes) = plan.relationship_counts();
    let (kv_creates, kv_deletes) = plan.classification_counts();
    for (key, got, want) in [
        (
            "classification_creates",
            kv_creates,
            case.expect_classifications.creates,
        ),
        (
            "classification_deletes",
            kv_deletes,
            case.expect_classifications.deletes,
        ),
        (
            "relationship_creates",
            rel_creates,
            case.expect_relationships.creates,
        ),
        (
            "relationship_deletes",
            rel_deletes,
            case.expect_relationships.deletes,
        ),
    ] {
        if let Some(want) = want {
            if got != want {
                failures.push(format!("{name}: `{key}`: want {want}, got {got}"));
            }
        }
    }
    for want in &case.expect_issue {
        let found = plan.issues.iter().any(|i| {
            i.kind.as_str() == want.kind
                && i.source_ids == want.source_ids
                && want.name.as_ref().is_none_or(|n| *n == i.name)
        });
        if !found {
            failures.push(format!("{name}: no issue like {want:?}"));
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
fn case_test(dir: &Path, base: &str) -> Result<(), Failed> {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let (case, plan) = run_case(dir, base)?;
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

/// The override mechanism, proven on the cases that predate it (every case whose mapping
/// differed from the base kept its own: the plan's digest hashes the mapping text, and
/// converting them would change their snapshots). Two of those cases written as overrides
/// compile to the same mapping as their own files, digest aside.
fn override_test(root: &Path, base: &str) -> Result<(), Failed> {
    let examples = [
        ("adopt", "[target]\nadopt = true\n"),
        (
            "field-modes",
            r#"[fields]
owned_by = { from = "evm_owner_email", lookup = { table = "sys_user", by = "email" }, mode = "fill_empty" }
short_description = { from = "description", mode = "create_only" }
comments = { from = "comments", mode = "ignore" }
"#,
        ),
    ];
    for (case, over) in examples {
        let path = root.join(case).join(OWN_MAPPING);
        let own = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading `{}`: {e}", path.display()))?;
        let own = Mapping::parse(&own, MAPPING_ORIGIN).map_err(|e| e.to_string())?;
        let text = merged(base, over)?;
        let mut ours = Mapping::parse(&text, MAPPING_ORIGIN).map_err(|e| e.to_string())?;
        ours.digest.clone_from(&own.digest);
        if ours != own {
            return Err(
                format!("{case}: base + override differs from its own mapping:\n{text}").into(),
            );
        }
    }
    // A value replaces the base's, other keys of its table stay; an array replaces the whole.
    let text = merged(
        base,
        "[retire]\naction = \"none\"\n[[identify]]\nfields = [\"name\"]\n",
    )?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
    let want: toml::Table = toml::from_str(
        r#"action = "none"
set = { install_status = "7", operational_status = "6", state = "terminated" }"#,
    )
    .map_err(|e| e.to_string())?;
    if table.get("retire") != Some(&toml::Value::Table(want)) {
        return Err(format!("`[retire]` not merged key by key:\n{text}").into());
    }
    let identify = table.get("identify").and_then(toml::Value::as_array);
    if identify.map(Vec::len) != Some(1) {
        return Err(format!("`[[identify]]` not replaced whole:\n{text}").into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let base_path = root.join(BASE_MAPPING);
    let base = std::fs::read_to_string(&base_path)
        .unwrap_or_else(|e| panic!("reading `{}`: {e}", base_path.display()));
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
    let mut trials: Vec<Trial> = dirs
        .into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let base = base.clone();
            Trial::test(name, move || case_test(&dir, &base))
        })
        .collect();
    trials.push(Trial::test("harness::mapping-override", move || {
        override_test(&root, &base)
    }));
    libtest_mimic::run(&args, trials).exit();
}
