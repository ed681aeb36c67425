//! The recorded ManageIQ responses in `tests/fixtures/manageiq/` parse as source records
//! and map to CIs: proof that the snapshot reader and the mapping accept real payloads (ids
//! as integers in older recordings, as strings in newer ones).
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use cmdb_reconcile::cloudforms;
use cmdb_reconcile::reconcile::mapping::Mapping;
use cmdb_reconcile::reconcile::plan::{IssueKind, Plan};
use cmdb_reconcile::reconcile::planner::{self, Input};
use cmdb_reconcile::reconcile::record::References;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manageiq")
        .join(name)
}

fn mapping(name: &str) -> Mapping {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mappings")
        .join(name);
    Mapping::parse(&std::fs::read_to_string(&path).unwrap(), name).unwrap()
}

fn plan_of(mapping: &Mapping, read: cmdb_reconcile::reconcile::record::SourceRead) -> Plan {
    planner::plan(Input {
        mapping,
        records: (&read.records[..]).into(),
        source_origin: read.origin,
        source_incomplete: read.incomplete,
        cis: &[],
        target_origin: "empty".into(),
        references: &References::default(),
        now: Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap(),
        allow_mass_change: false,
        relations: None,
        classifications: None,
    })
}

#[test]
fn get_vms_collection_parses_and_maps() {
    let read = cloudforms::snapshot::read(&fixture("get_vms.json")).unwrap();
    assert_eq!(read.records.len(), 5);
    assert_eq!(read.incomplete, None, "count == subcount == 5");
    let plan = plan_of(&mapping("vmware-vm.toml"), read);
    assert_eq!(plan.summary.creates, 5);
    assert!(
        plan.issues.iter().all(|i| i.kind != IssueKind::BadRecord),
        "{:?}",
        plan.issues
    );
    let first = plan
        .creates
        .iter()
        .find(|c| c.source_id == "161")
        .expect("integer id 161 read as \"161\"");
    let value = |f: &str| {
        first
            .fields
            .iter()
            .find(|v| v.field == f)
            .map(|v| v.value.as_str())
    };
    assert_eq!(value("name"), Some("aab-dev1"));
    assert_eq!(value("object_id"), Some("vm-53"));
    assert_eq!(
        value("correlation_id"),
        Some("564d5056-49ea-a5aa-a71d-cf9b8138430b")
    );
    assert_eq!(value("state"), Some("on"));
    // The identity a lost create is looked up by: the strongest rule with values.
    assert_eq!(
        first
            .identity
            .iter()
            .map(|v| v.field.as_str())
            .collect::<Vec<_>>(),
        ["correlation_id"]
    );
}

#[test]
fn single_vm_records_parse_with_nested_hardware() {
    let read = cloudforms::snapshot::read(&fixture("ui_service_vmware_vm.json")).unwrap();
    assert_eq!(read.records.len(), 1);
    let plan = plan_of(&mapping("vmware-vm.toml"), read);
    let create = &plan.creates[0];
    assert_eq!(create.source_id, "10000000002056");
    let value = |f: &str| {
        create
            .fields
            .iter()
            .find(|v| v.field == f)
            .map(|v| v.value.as_str())
    };
    assert_eq!(value("ip_address"), Some("10.9.62.96"));
    assert_eq!(
        value("guest_os_fullname"),
        Some("Red Hat Enterprise Linux 7 (64-bit)")
    );

    let read = cloudforms::snapshot::read(&fixture("ui_service_rhv_vm.json")).unwrap();
    let plan = plan_of(&mapping("vm.toml"), read);
    assert_eq!(plan.creates.len(), 1, "{:?}", plan.issues);
    assert_eq!(plan.creates[0].name, "laurent23");
}

#[test]
fn every_vm_fixture_parses() {
    for name in [
        "get_vms.json",
        "ui_service_rhv_vm.json",
        "ui_service_vmware_vm.json",
    ] {
        let read =
            cloudforms::snapshot::read(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!read.records.is_empty(), "{name}");
    }
}
