//! Hand-built plans for the report tests: one small and friendly (for snapshots), one with every
//! kind of operation, issue and safety decision, carrying hostile inventory values.

#![allow(dead_code)] // each test crate uses part of the fixture

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use cmdb_reconcile::reconcile::plan::{
    Change, Create, FieldMode, FieldValue, GuardTrip, Issue, IssueKind, MappingInfo, Plan,
    RetireAction, Retirement, Safety, SourceSummary, TargetSummary, Update, UpdateKind,
};

/// Values an attacker who can name a VM (or tag it, or set its owner) could plant.
pub const HOSTILE: &[&str] = &[
    "=HYPERLINK(\"http://x\")",
    "+cmd",
    "-1+1",
    "@SUM(A1)",
    "<script>alert(1)</script>",
    "\"quotes\" & 'apostrophes'",
    "</script>",
    "<img src=x onerror=alert(1)>",
    "ünïcødé ✓ 日本語",
    "line one\nline two",
    "pipe | in `ticks`",
    "\tTAB",
    "\rCR",
];

fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn fv(field: &str, value: &str, from: &str) -> FieldValue {
    FieldValue {
        field: field.to_owned(),
        value: value.to_owned(),
        from: from.to_owned(),
    }
}

fn change(field: &str, current: &str, desired: &str, mode: FieldMode, from: &str) -> Change {
    Change {
        field: field.to_owned(),
        current: current.to_owned(),
        desired: desired.to_owned(),
        mode,
        from: from.to_owned(),
    }
}

fn mapping() -> MappingInfo {
    MappingInfo {
        name: "vmware-vms".to_owned(),
        origin: "mappings/vmware.toml".to_owned(),
        digest: "sha256:0f1e2d3c".to_owned(),
        table: "cmdb_ci_vmware_instance".to_owned(),
        scope: "discovery_source=CloudForms".to_owned(),
        collection: "vms".to_owned(),
    }
}

fn source(records: usize) -> SourceSummary {
    SourceSummary {
        origin: "https://cloudforms.example.test/api".to_owned(),
        complete: true,
        incomplete_reason: None,
        records,
        filtered_out: 2,
        inactive: 1,
        window: None,
    }
}

fn target(cis: usize) -> TargetSummary {
    TargetSummary {
        origin: "https://example.service-now.com".to_owned(),
        table: "cmdb_ci_vmware_instance".to_owned(),
        cis,
        in_scope: cis - 1,
    }
}

fn update(
    name: &str,
    sys_id: &str,
    source_id: &str,
    kind: UpdateKind,
    changes: Vec<Change>,
    context: BTreeMap<String, String>,
) -> Update {
    Update {
        sys_id: sys_id.to_owned(),
        source_id: source_id.to_owned(),
        name: name.to_owned(),
        kind,
        matched_by: "object_id+vcenter_uuid".to_owned(),
        sys_updated_on: "2024-05-01 10:00:00".to_owned(),
        sys_mod_count: "4".to_owned(),
        changes,
        context,
    }
}

fn retirement(
    name: &str,
    sys_id: &str,
    action: RetireAction,
    changes: Vec<Change>,
    context: BTreeMap<String, String>,
) -> Retirement {
    Retirement {
        sys_id: sys_id.to_owned(),
        name: name.to_owned(),
        action,
        reason: match action {
            RetireAction::MarkAbsent => "not in CloudForms (first miss)".to_owned(),
            RetireAction::Retire => "absent for more than 7d (retire_after)".to_owned(),
            RetireAction::Delete => "absent; the mapping deletes retired CIs".to_owned(),
        },
        absent_since: Some("2024-04-20 08:00:00".to_owned()),
        retire_on: (action != RetireAction::MarkAbsent).then(|| "2024-04-27".to_owned()),
        sys_updated_on: "2024-04-20 08:00:00".to_owned(),
        sys_mod_count: "9".to_owned(),
        changes,
        context,
    }
}

/// A small, friendly plan: one of each operation, no hostile values.
pub fn small_plan() -> Plan {
    let vc = || {
        ctx(&[
            ("provider", "vcenter-east"),
            ("cluster", "prod-a"),
            ("owner", "ops@example.com"),
        ])
    };
    Plan::new(
        Utc.with_ymd_and_hms(2024, 5, 2, 3, 0, 0).unwrap(),
        mapping(),
        source(42),
        target(40),
        Safety::default(),
        vec![Create {
            source_id: "1000000000101".to_owned(),
            name: "web-03".to_owned(),
            identity: vec![fv("object_id", "vm-303", "ems_ref")],
            fields: vec![
                fv("name", "web-03", "name"),
                fv("object_id", "vm-303", "ems_ref"),
                fv("cpus", "4", "cpu_total_cores"),
            ],
            context: vc(),
        }],
        vec![
            update(
                "db-01",
                "a1b2c3",
                "1000000000011",
                UpdateKind::Drift,
                vec![
                    change(
                        "cpus",
                        "4",
                        "8",
                        FieldMode::Authoritative,
                        "cpu_total_cores",
                    ),
                    change(
                        "ip_address",
                        "",
                        "10.0.0.11",
                        FieldMode::Authoritative,
                        "ipaddresses | first_ipv4",
                    ),
                    change(
                        "short_description",
                        "Web server (old)",
                        "Web server (new)",
                        FieldMode::Ignore,
                        "description",
                    ),
                ],
                vc(),
            ),
            update(
                "app-07",
                "d4e5f6",
                "1000000000007",
                UpdateKind::Restore,
                vec![change(
                    "install_status",
                    "100",
                    "1",
                    FieldMode::Authoritative,
                    "lifecycle: restore",
                )],
                vc(),
            ),
        ],
        vec![retirement(
            "old-09",
            "0a0b0c",
            RetireAction::Retire,
            vec![change(
                "install_status",
                "100",
                "7",
                FieldMode::Authoritative,
                "retire.set",
            )],
            vc(),
        )],
        vec![Issue {
            kind: IssueKind::Ambiguous,
            source_ids: vec!["1000000000050".to_owned()],
            sys_ids: vec!["ff01".to_owned(), "ff02".to_owned()],
            name: "mail-01".to_owned(),
            field: None,
            message: "rule `name` matched 2 CIs".to_owned(),
        }],
        37,
    )
}

/// Every operation, issue kind and safety decision, with hostile values everywhere a VM's data
/// can reach.
pub fn hostile_plan() -> Plan {
    let h = |i: usize| HOSTILE[i % HOSTILE.len()];
    let hostile_ctx = |i: usize| {
        ctx(&[
            ("provider", h(i)),
            ("cluster", h(i + 4)),
            ("owner", h(i + 6)),
            ("<img src=x onerror=alert(1)>", h(i + 1)),
        ])
    };
    let mut creates = Vec::new();
    for (i, value) in HOSTILE.iter().enumerate() {
        creates.push(Create {
            source_id: format!("10000000001{i:02}"),
            name: (*value).to_owned(),
            identity: vec![fv("object_id", value, "ems_ref")],
            fields: vec![
                fv("name", value, "name"),
                fv("ip_address", h(i + 3), "ipaddresses"),
            ],
            context: hostile_ctx(i),
        });
    }
    let mut updates = vec![
        update(
            HOSTILE[0],
            "sys-upd-0",
            "1000000000200",
            UpdateKind::Drift,
            HOSTILE
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    change(
                        &format!("u_field_{i}"),
                        h(i + 1),
                        v,
                        FieldMode::Authoritative,
                        v,
                    )
                })
                .collect(),
            hostile_ctx(0),
        ),
        update(
            "ignored-only",
            "sys-upd-1",
            "1000000000201",
            UpdateKind::Drift,
            vec![change(
                "comments",
                "=1+1",
                "<b>x</b>",
                FieldMode::Ignore,
                "comments",
            )],
            hostile_ctx(1),
        ),
        update(
            "fill-me",
            "sys-upd-2",
            "1000000000202",
            UpdateKind::Drift,
            vec![change(
                "owned_by",
                "",
                "@owner",
                FieldMode::FillEmpty,
                "evm_owner_email | lookup",
            )],
            hostile_ctx(2),
        ),
        update(
            "back-again </script>",
            "sys-restore",
            "1000000000203",
            UpdateKind::Restore,
            vec![change(
                "install_status",
                "100",
                "1",
                FieldMode::Authoritative,
                "lifecycle",
            )],
            hostile_ctx(3),
        ),
        update(
            "heartbeat-vm",
            "sys-hb",
            "1000000000204",
            UpdateKind::Heartbeat,
            vec![change(
                "last_discovered",
                "2024-04-01 00:00:00",
                "2024-05-02 03:00:00",
                FieldMode::Authoritative,
                "heartbeat",
            )],
            hostile_ctx(4),
        ),
    ];
    updates.push(update(
        "+plus-name",
        "-sys-id",
        "@source",
        UpdateKind::Drift,
        vec![change(
            "cpus",
            "2",
            "4",
            FieldMode::Authoritative,
            "cpu_total_cores",
        )],
        BTreeMap::new(),
    ));
    let retirements = vec![
        retirement(
            "gone-1 <script>alert(1)</script>",
            "sys-ret",
            RetireAction::Retire,
            vec![
                change(
                    "install_status",
                    "1",
                    "7",
                    FieldMode::Authoritative,
                    "retire.set",
                ),
                change(
                    "operational_status",
                    "1",
                    "6",
                    FieldMode::Authoritative,
                    "retire.set",
                ),
            ],
            hostile_ctx(5),
        ),
        retirement(
            "=gone-2",
            "sys-del",
            RetireAction::Delete,
            Vec::new(),
            hostile_ctx(6),
        ),
        retirement(
            "gone-3",
            "sys-abs",
            RetireAction::MarkAbsent,
            vec![change(
                "install_status",
                "1",
                "100",
                FieldMode::Authoritative,
                "retire.absent",
            )],
            hostile_ctx(7),
        ),
    ];
    let kinds = IssueKind::ALL;
    let issues = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| Issue {
            kind: *kind,
            source_ids: vec![h(i).to_owned(), format!("10000000003{i:02}")],
            sys_ids: vec![h(i + 2).to_owned()],
            name: h(i + 4).to_owned(),
            field: (i % 2 == 0).then(|| h(i + 5).to_owned()),
            message: format!("problem: {}", h(i + 6)),
        })
        .collect();
    let safety = Safety {
        retirements_blocked: Some(
            "source returned 12 records, CMDB holds 400 <b>in scope</b>".to_owned(),
        ),
        retirements_withheld: 388,
        guards_tripped: vec![GuardTrip {
            guard: "max_updates".to_owned(),
            limit: "5%".to_owned(),
            planned: 6,
            message: "6 updates exceed 5% of 40 CIs <script>alert(1)</script>".to_owned(),
        }],
        mass_change_allowed: false,
        relationship_deletes_withheld: 0,
        classification_deletes_withheld: 0,
    };
    let mut source = source(12);
    source.complete = false;
    source.incomplete_reason = Some("page 3 failed: HTTP 503 & <retry>".to_owned());
    Plan::new(
        Utc.with_ymd_and_hms(2024, 5, 2, 3, 0, 0).unwrap(),
        MappingInfo {
            name: "vms <script>alert(1)</script>".to_owned(),
            ..mapping()
        },
        source,
        target(401),
        safety,
        creates,
        updates,
        retirements,
        issues,
        3,
    )
}
