//! Relationship drift in every report format: the `relationship-vmotion` case planned from
//! its files and rendered as plan.json, drift.csv, drift.md and drift.html, each of which
//! must show the row to create, the row to delete and, in HTML, the rows around the CI.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::path::Path;

use cmdb_reconcile::cloudforms;
use cmdb_reconcile::reconcile::mapping::Mapping;
use cmdb_reconcile::reconcile::planner::{self, Input};
use cmdb_reconcile::reconcile::record::References;
use cmdb_reconcile::reconcile::relations::RelInput;
use cmdb_reconcile::report::{self, Format};
use cmdb_reconcile::servicenow;

#[test]
fn relationship_drift_shows_in_every_format() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/relationship-vmotion");
    let base = std::fs::read_to_string(case.join("../base-mapping.toml")).unwrap();
    let over = std::fs::read_to_string(case.join("mapping.override.toml")).unwrap();
    let mapping = Mapping::parse(&format!("{base}\n{over}"), "vm.toml").unwrap();
    let source = cloudforms::snapshot::read(&case.join("source.json")).unwrap();
    let cis = servicenow::snapshot::read(&case.join("cmdb.csv")).unwrap();
    let hosts = servicenow::snapshot::read(&case.join("ref.cmdb_ci_esx_server.csv")).unwrap();
    let mut references = References::default();
    references.add_table("cmdb_ci_esx_server", hosts.clone());
    let mut relations = RelInput::default();
    for t in servicenow::snapshot::read(&case.join("cmdb_rel_type.csv")).unwrap() {
        relations
            .types
            .insert(t.get("name").to_owned(), t.sys_id.clone());
    }
    relations.rows = servicenow::snapshot::read(&case.join("cmdb_rel_ci.csv")).unwrap();
    relations.others = hosts.into_iter().map(|h| (h.sys_id.clone(), h)).collect();
    let plan = planner::plan(Input {
        mapping: &mapping,
        records: (&source.records[..]).into(),
        source_origin: "source".into(),
        source_incomplete: None,
        cis: &cis,
        target_origin: "cmdb".into(),
        references: &references,
        now: "2026-11-27T06:00:00Z".parse().unwrap(),
        allow_mass_change: false,
        relations: Some(&relations),
        classifications: None,
    });
    assert_eq!(plan.relationship_counts(), (1, 1));

    let dir = tempfile::tempdir().unwrap();
    report::write_reports(&plan, None, dir.path(), &Format::ALL).unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();

    let json: serde_json::Value = serde_json::from_str(&read("plan.json")).unwrap();
    let rels = json["relationships"].as_array().unwrap();
    assert_eq!(rels.len(), 2);
    assert_eq!(rels[0]["action"], "create");
    assert_eq!(rels[0]["child"]["name"], "esx-2");
    assert_eq!(rels[1]["action"], "delete");
    assert_eq!(rels[1]["sys_id"], "0000000000000000000000000000a001");

    let csv = read("drift.csv");
    assert!(
        csv.contains("relationship_create,,,,web,Registered on::Has registered,,web -> esx-2,"),
        "{csv}"
    );
    assert!(
        csv.contains("relationship_delete,,,0000000000000000000000000000a001,web,Registered on::Has registered,web -> esx-1,,"),
        "{csv}"
    );

    let md = read("drift.md");
    assert!(md.contains("## Relationships"), "{md}");
    assert!(
        md.contains("| create | Registered on::Has registered | web | esx-2 |"),
        "{md}"
    );
    assert!(
        md.contains("| delete | Registered on::Has registered | web | esx-1 |"),
        "{md}"
    );

    let html = read("drift.html");
    assert!(
        html.contains("<section id=\"relationships\">"),
        "relationships section"
    );
    assert!(
        html.contains("<tr class=\"rel delete\"><td>delete</td><td><code>Registered on::Has registered</code></td><td>web</td><td>esx-1</td>"),
        "delete row"
    );
    // Under the CI, the rows planned around it (web has no field drift: it shows in the
    // relationships section only; its heading appears when a CI has an operation too).
    assert!(html.contains("esx-2"), "create row");
}

/// Classification drift in every report format: the `classifications-from-tags` case
/// rendered, each format showing the rows to create and delete.
#[test]
fn classification_drift_shows_in_every_format() {
    use cmdb_reconcile::reconcile::classify::KvInput;
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/classifications-from-tags");
    let base = std::fs::read_to_string(case.join("../base-mapping.toml")).unwrap();
    let over = std::fs::read_to_string(case.join("mapping.override.toml")).unwrap();
    let mapping = Mapping::parse(&format!("{base}\n{over}"), "vm.toml").unwrap();
    let source = cloudforms::snapshot::read(&case.join("source.json")).unwrap();
    let cis = servicenow::snapshot::read(&case.join("cmdb.csv")).unwrap();
    let kv = KvInput {
        rows: servicenow::snapshot::read(&case.join("cmdb_key_value.csv")).unwrap(),
    };
    let plan = planner::plan(Input {
        mapping: &mapping,
        records: (&source.records[..]).into(),
        source_origin: "source".into(),
        source_incomplete: None,
        cis: &cis,
        target_origin: "cmdb".into(),
        references: &References::default(),
        now: "2026-11-27T06:00:00Z".parse().unwrap(),
        allow_mass_change: false,
        relations: None,
        classifications: Some(&kv),
    });
    assert_eq!(plan.classification_counts(), (2, 1));
    let dir = tempfile::tempdir().unwrap();
    report::write_reports(&plan, None, dir.path(), &Format::ALL).unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&read("plan.json")).unwrap();
    assert_eq!(json["classifications"].as_array().unwrap().len(), 3);
    let csv = read("drift.csv");
    assert!(
        csv.contains("classification_create,,,,web,environment,,prod,"),
        "{csv}"
    );
    assert!(
        csv.contains(
            "classification_delete,,,00000000000000000000000000000a01,web,environment,test,,"
        ),
        "{csv}"
    );
    let md = read("drift.md");
    assert!(md.contains("## Classifications"), "{md}");
    assert!(md.contains("| delete | web | environment | test |"), "{md}");
    assert!(
        md.contains("| create | new-app (new) | environment | dev |"),
        "{md}"
    );
    let html = read("drift.html");
    assert!(html.contains("<section id=\"classifications\">"));
    assert!(html.contains("<td>new-app (new)</td><td><code>environment</code></td><td>dev</td>"));
    // Withheld on incomplete knowledge: the deletes go, the creates stay.
    let withheld = planner::plan(Input {
        mapping: &mapping,
        records: (&source.records[..]).into(),
        source_origin: "source".into(),
        source_incomplete: Some("a page was lost".into()),
        cis: &cis,
        target_origin: "cmdb".into(),
        references: &References::default(),
        now: "2026-11-27T06:00:00Z".parse().unwrap(),
        allow_mass_change: false,
        relations: None,
        classifications: Some(&kv),
    });
    assert_eq!(withheld.classification_counts(), (2, 0));
    assert_eq!(withheld.safety.classification_deletes_withheld, 1);
}
