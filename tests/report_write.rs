//! `write_reports`: the files it writes, `plan.json` read back as the same plan, and errors that
//! name the file.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

mod report_fixture;

use cmdb_reconcile::apply::{OperationOutcome, OutcomeStatus};
use cmdb_reconcile::reconcile::plan::Plan;
use cmdb_reconcile::report::{write_reports, Format, ReportError};
use report_fixture::{hostile_plan, small_plan};

#[test]
fn report_writes_one_file_per_format_and_plan_json_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports/run-1");
    let plan = hostile_plan();
    let written = write_reports(&plan, None, &out, &Format::ALL).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["plan.json", "drift.csv", "drift.md", "drift.html"]);
    let json = std::fs::read_to_string(out.join("plan.json")).unwrap();
    let read: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(read, plan);
    assert!(json.contains("\"format_version\": 1"));
    // No temporary file is left behind.
    let mut entries: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["drift.csv", "drift.html", "drift.md", "plan.json"]
    );
}

#[test]
fn report_writes_only_the_formats_asked_for_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_reports(
        &small_plan(),
        None,
        dir.path(),
        &[Format::Html, Format::Csv, Format::Html],
    )
    .unwrap();
    assert_eq!(
        written,
        [dir.path().join("drift.csv"), dir.path().join("drift.html")]
    );
}

#[test]
fn report_outcomes_add_outcome_json() {
    let dir = tempfile::tempdir().unwrap();
    let outcomes = [OperationOutcome {
        sys_id: Some("a1b2c3".to_owned()),
        source_id: Some("1000000000011".to_owned()),
        status: OutcomeStatus::Failed,
        message: "HTTP 500".to_owned(),
    }];
    let written =
        write_reports(&small_plan(), Some(&outcomes), dir.path(), &[Format::Json]).unwrap();
    assert_eq!(
        written,
        [
            dir.path().join("plan.json"),
            dir.path().join("outcome.json")
        ]
    );
    let outcome: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("outcome.json")).unwrap())
            .unwrap();
    assert_eq!(outcome["format_version"], 1);
    assert_eq!(outcome["failed"], 1);
    assert_eq!(outcome["not_attempted"], 3);
    assert_eq!(outcome["outcomes"][0]["status"], "failed");
    let back: Vec<OperationOutcome> = serde_json::from_value(outcome["outcomes"].clone()).unwrap();
    assert_eq!(back, outcomes);
    assert_eq!(outcome["unknown"], 0);
    assert_eq!(outcome["overwrote_concurrent_edit"], 0);
}

#[test]
fn report_outcome_json_counts_the_new_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = |sys_id: &str, source_id: Option<&str>, status| OperationOutcome {
        sys_id: Some(sys_id.to_owned()),
        source_id: source_id.map(str::to_owned),
        status,
        message: String::new(),
    };
    let outcomes = [
        outcome("new", Some("1000000000101"), OutcomeStatus::Unknown),
        outcome(
            "a1b2c3",
            Some("1000000000011"),
            OutcomeStatus::OverwroteConcurrentEdit,
        ),
        outcome("0a0b0c", None, OutcomeStatus::NotAttempted),
    ];
    write_reports(&small_plan(), Some(&outcomes), dir.path(), &[Format::Json]).unwrap();
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("outcome.json")).unwrap())
            .unwrap();
    assert_eq!(file["unknown"], 1);
    assert_eq!(file["overwrote_concurrent_edit"], 1);
    assert_eq!(file["not_attempted"], 2, "one said so, one has no outcome");
    let statuses: Vec<&str> = file["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["unknown", "overwrote_concurrent_edit", "not_attempted"]
    );
}

#[test]
fn report_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = write_reports(&small_plan(), None, &file, &[Format::Csv]).unwrap_err();
    assert!(matches!(err, ReportError::CreateDir { .. }));
    assert_eq!(
        err.to_string(),
        format!("cannot create report folder `{}`", file.display())
    );
    assert!(std::error::Error::source(&err).is_some());
}
