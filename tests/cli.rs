//! The binary as a user runs it: offline `plan` and `check`, their output, files and exit
//! codes (README "Exit codes").
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cmdb-reconcile"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .arg("--log-format=json");
    // No ambient configuration may leak into these runs.
    for var in [
        "CMDB_RECONCILE_CONFIG",
        "CLOUDFORMS_URL",
        "SERVICENOW_URL",
        "CLOUDFORMS_PASSWORD",
        "SERVICENOW_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn offline_example_plans_and_writes_every_report() {
    let dir = tmp();
    let out = bin()
        .args(["plan", "--config", "examples/offline.toml", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("mapping"),
        "summary table first: {stdout}"
    );
    assert!(
        stdout.contains("vmware-vm") && stdout.contains("cmdb_ci_vmware_instance"),
        "{stdout}"
    );
    for file in ["plan.json", "drift.csv", "drift.md", "drift.html"] {
        let path = dir.path().join(file);
        assert!(
            path.metadata().map(|m| m.len() > 100).unwrap_or(false),
            "{file} missing or empty"
        );
    }
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plan.json")).unwrap())
            .unwrap();
    assert_eq!(plan["format_version"], 1);
    assert_eq!(
        plan["summary"]["creates"], 3,
        "new-svc-01 and the two hostile names"
    );
    // The hostile names stay inert in the HTML and the CSV.
    let html = std::fs::read_to_string(dir.path().join("drift.html")).unwrap();
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let csv = std::fs::read_to_string(dir.path().join("drift.csv")).unwrap();
    assert!(
        !csv.contains(",=HYPERLINK") && !csv.contains(",\"=HYPERLINK"),
        "{csv}"
    );
}

#[test]
fn detailed_exitcode_says_changes_are_planned() {
    let dir = tmp();
    let out = bin()
        .args([
            "plan",
            "--config",
            "examples/offline.toml",
            "--detailed-exitcode",
            "--format",
            "json",
            "--out-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(dir.path().join("plan.json").exists());
    assert!(
        !dir.path().join("drift.html").exists(),
        "only the asked formats (and plan.json)"
    );
}

#[test]
fn flags_alone_plan_without_a_config_file() {
    let dir = tmp();
    let out = bin()
        .args([
            "plan",
            "--mapping",
            "mappings/vmware-vm.toml",
            "--source-file",
            "examples/cloudforms-vms.json",
            "--target-file",
            "examples/cmdb_ci_vmware_instance.csv",
            "--reference",
            "sys_user=examples/sys_user.csv",
            "--out-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_tripped_guard_refuses_with_exit_4_and_still_reports() {
    let dir = tmp();
    let mapping = dir.path().join("strict.toml");
    let shipped = std::fs::read_to_string(root().join("mappings/vmware-vm.toml")).unwrap();
    std::fs::write(&mapping, format!("{shipped}\n[guards]\nmax_retire = 0\n")).unwrap();
    let out = bin()
        .args([
            "plan",
            "--source-file",
            "examples/cloudforms-vms.json",
            "--target-file",
            "examples/cmdb_ci_vmware_instance.csv",
            "--mapping",
        ])
        .arg(&mapping)
        .arg("--out-dir")
        .arg(dir.path().join("r"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("guard max_retire"), "{}", text(&out));
    let md = std::fs::read_to_string(dir.path().join("r/drift.md")).unwrap();
    assert!(
        md.contains("max\\_retire") || md.contains("max_retire"),
        "{md}"
    );
}

#[test]
fn check_accepts_the_shipped_mappings() {
    let out = bin()
        .args([
            "check",
            "--mapping",
            "mappings/vmware-vm.toml",
            "mappings/vm.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok: mappings/vmware-vm.toml") && stdout.contains("ok: mappings/vm.toml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("object_id+vcenter_uuid, then correlation_id, then name"),
        "{stdout}"
    );
}

#[test]
fn a_bad_mapping_names_file_line_and_column() {
    let dir = tmp();
    let bad: PathBuf = dir.path().join("bad.toml");
    let shipped = std::fs::read_to_string(root().join("mappings/vmware-vm.toml")).unwrap();
    std::fs::write(&bad, shipped.replace("bytes_to_gb", "bytes_to_gib")).unwrap();
    let out = bin()
        .args(["check", "--mapping"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = shipped
        .lines()
        .position(|l| l.contains("bytes_to_gb"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
    assert!(
        err.contains("bytes_to_gib") && err.contains("hint"),
        "{err}"
    );
}

#[test]
fn bad_inputs_name_the_file_and_exit_1() {
    let dir = tmp();
    let broken = dir.path().join("vms.json");
    std::fs::write(&broken, "{\"resources\": [ {\"id\": 1}, \n {\"id\" 2} ]}").unwrap();
    let out = bin()
        .args([
            "plan",
            "--mapping",
            "mappings/vmware-vm.toml",
            "--target-file",
            "examples/cmdb_ci_vmware_instance.csv",
            "--source-file",
        ])
        .arg(&broken)
        .arg("--out-dir")
        .arg(dir.path().join("r"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = text(&out);
    assert!(err.contains("vms.json") && err.contains("line 2"), "{err}");

    let out = bin()
        .args([
            "plan",
            "--mapping",
            "mappings/vmware-vm.toml",
            "--source-file",
            "examples/cloudforms-vms.json",
            "--target-file",
            "nope.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("nope.csv"), "{}", text(&out));
}

#[test]
fn help_explains_the_commands() {
    let out = bin().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["plan", "check", "Exit codes"] {
        assert!(help.contains(word), "{word} missing from --help:\n{help}");
    }
}

#[test]
fn duplicate_cis_in_the_cmdb_end_the_run_as_a_warning() {
    let dir = tmp();
    let case = "tests/cases/cmdb-duplicate-cis";
    let out = bin()
        .args(["plan", "--mapping", "tests/cases/base-mapping.toml"])
        .args(["--source-file", &format!("{case}/source.json")])
        .args(["--target-file", &format!("{case}/cmdb.csv")])
        .args(["--format", "json", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
}

/// The README's first command, at a small size: the whole story ends in zero drift.
#[test]
fn the_demo_runs_the_whole_job_to_zero_drift() {
    let dir = tmp();
    let out = bin()
        .args(["demo", "--vms", "300", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("Zero drift."), "{}", text(&out));
    assert!(dir.path().join("1-plan").join("drift.html").exists());
}
