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

/// `plan` of the shipped offline example, with `extra` flags, its reports in `out`.
fn plan_example(extra: &[&str], out: &Path) -> Output {
    bin()
        .args(["plan", "--config", "examples/offline.toml"])
        .args(extra)
        .arg("--out-dir")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn offline_example_plans_and_writes_every_report() {
    let dir = tmp();
    let out = plan_example(&["--summary"], dir.path());
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
    // One folder per run (here --out-dir), one folder per sync in it, and the run's index.
    let index = std::fs::read_to_string(dir.path().join("index.md")).unwrap();
    assert!(
        index.contains("[drift.html](vmware-vm/drift.html)"),
        "{index}"
    );
    let sync = dir.path().join("vmware-vm");
    for file in ["plan.json", "drift.csv", "drift.md", "drift.html"] {
        let path = sync.join(file);
        assert!(
            path.metadata().map(|m| m.len() > 100).unwrap_or(false),
            "{file} missing or empty"
        );
    }
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sync.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["format_version"], 1);
    assert_eq!(
        plan["summary"]["creates"], 3,
        "new-svc-01 and the two hostile names"
    );
    // The hostile names stay inert in the HTML and the CSV.
    let html = std::fs::read_to_string(sync.join("drift.html")).unwrap();
    assert!(!html.contains("<script>alert(1)</script>"));
    // The names are change rows: they travel in the page's JSON block, `<` and `>` escaped.
    assert!(html.contains(r"\u003cscript\u003ealert(1)\u003c/script\u003e"));
    let csv = std::fs::read_to_string(sync.join("drift.csv")).unwrap();
    assert!(
        !csv.contains(",=HYPERLINK") && !csv.contains(",\"=HYPERLINK"),
        "{csv}"
    );
}

#[test]
fn detailed_exitcode_says_changes_are_planned() {
    let dir = tmp();
    let out = plan_example(&["--detailed-exitcode", "--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(dir.path().join("vmware-vm/plan.json").exists());
    assert!(
        !dir.path().join("vmware-vm/drift.html").exists(),
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
    let md = std::fs::read_to_string(dir.path().join("r/strict/drift.md")).unwrap();
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

/// The JSON log lines on stderr, parsed (every line must be JSON in JSON mode).
fn log_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn quiet_cron_runs_print_nothing_and_the_summary_comes_when_asked() {
    let dir = tmp();
    let plan = |extra: &[&str]| plan_example(extra, dir.path());
    // -q, stdout not a terminal (cron): a successful run prints nothing at all.
    let quiet = plan(&["-q"]);
    assert_eq!(quiet.status.code(), Some(0), "{}", text(&quiet));
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "{}",
        text(&quiet)
    );
    // Not a terminal, no -q: logs only, no table.
    let piped = plan(&[]);
    assert!(piped.stdout.is_empty(), "{}", text(&piped));
    // --summary: the table, whatever stdout is, even with -q.
    let asked = plan(&["-q", "--summary"]);
    assert!(String::from_utf8_lossy(&asked.stdout).starts_with("mapping"));
}

#[test]
fn the_log_line_counts_in_the_tables_words_and_durations_in_seconds() {
    let dir = tmp();
    let out = plan_example(&["--summary"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let logs = log_lines(&out);
    let written = logs
        .iter()
        .find(|l| l["message"] == "plan written")
        .expect("the plan line");
    // The table's columns, in its numbers.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut rows = stdout.lines();
    let header: Vec<&str> = rows.next().unwrap().split_whitespace().collect();
    let values: Vec<&str> = rows.next().unwrap().split_whitespace().collect();
    for (name, value) in header.iter().zip(&values).skip(2) {
        assert_eq!(
            written[*name].as_u64().map(|n| n.to_string()).as_deref(),
            Some(*value),
            "log field `{name}`: {written}"
        );
    }
    assert!(written.get("retirements").is_none(), "{written}");
    // Seconds, rounded to the millisecond.
    let seconds = written["seconds"].as_f64().unwrap();
    assert_eq!((seconds * 1000.0).round() / 1000.0, seconds, "{written}");
    // The Markdown report's summary says the same in the same words.
    let md = std::fs::read_to_string(dir.path().join("vmware-vm/drift.md")).unwrap();
    for (name, value) in header.iter().zip(&values).skip(2) {
        let label = match *name {
            "issues" => "Issues (the quarantined included)".to_owned(),
            other => format!("{}{}", other[..1].to_uppercase(), &other[1..]),
        };
        assert!(
            md.contains(&format!("| {label} | {value} |")),
            "{label} {value}:\n{md}"
        );
    }
    // No Rust debug text anywhere in the log.
    assert!(!text(&out).contains("Some("), "{}", text(&out));
}

#[test]
fn check_errors_are_json_in_json_mode() {
    let dir = tmp();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[source]\ncollection = \"vms\"\n[target\n").unwrap();
    let out = bin()
        .args(["check", "--mapping"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let logs: Vec<_> = log_lines(&out)
        .into_iter()
        .filter(|l| l["message"] != "done")
        .collect();
    assert_eq!(
        logs.len(),
        2,
        "the mapping's error, then the summing up: {logs:?}"
    );
    assert!(
        logs.iter()
            .all(|l| l["level"] == "ERROR" && l["kind"] == "error"),
        "{logs:?}"
    );
    assert!(logs[0]["message"].as_str().unwrap().contains("bad.toml:3:"));
}

#[test]
fn version_completions_and_man_come_from_the_cli() {
    let out = bin().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with(&format!("cmdb-reconcile {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = bin().args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("cmdb-reconcile") && script.contains("apply"),
            "{shell}"
        );
    }
    let out = bin().arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH cmdb-reconcile"),
        "{page}"
    );
    let dir = tmp();
    let out = bin()
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(dir.path().join("cmdb-reconcile.1").exists());
    assert!(dir.path().join("cmdb-reconcile-plan.1").exists());
}

#[test]
fn report_folders_past_keep_are_pruned_and_nothing_else() {
    let dir = tmp();
    let reports = dir.path().join("reports");
    // Two old runs of this tool (one as older versions wrote it, a folder per sync; one a
    // run folder), and a folder of someone else's.
    for name in ["20200101T000000Z-vmware-vm", "20200102T000000Z/vmware-vm"] {
        std::fs::create_dir_all(reports.join(name)).unwrap();
        std::fs::write(
            reports.join(name).join("plan.json"),
            r#"{"format_version":1}"#,
        )
        .unwrap();
    }
    std::fs::create_dir_all(reports.join("20200101T000000Z-notes")).unwrap();
    let config = dir.path().join("offline.toml");
    let r = root().display();
    std::fs::write(
        &config,
        format!(
            "[report]\ndir = \"reports\"\nkeep = 2\n\n[[sync]]\nmapping = \"{r}/mappings/vmware-vm.toml\"\n\
             source_file = \"{r}/examples/cloudforms-vms.json\"\n\
             target_file = \"{r}/examples/cmdb_ci_vmware_instance.csv\"\n\
             references = {{ sys_user = \"{r}/examples/sys_user.csv\" }}\n"
        ),
    )
    .unwrap();
    let out = bin()
        .arg("plan")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut left: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(left[0], "20200101T000000Z-notes", "not the tool's: kept");
    assert_eq!(left[1], "20200102T000000Z", "the run before this one");
    assert!(
        left[2].len() == 16 && !left[2].starts_with("2020"),
        "{left:?}"
    );
    assert!(reports.join(&left[2]).join("vmware-vm/plan.json").exists());
    assert!(reports.join(&left[2]).join("index.md").exists());
}

/// A one-connection-at-a-time HTTP server that answers 200 and hands each request over as
/// (method, path, body).
fn pushgateway() -> (String, std::sync::mpsc::Receiver<(String, String, String)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            reader.read_line(&mut head).unwrap();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut parts = head.split_whitespace();
            let (method, path) = (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            );
            tx.send((method, path, String::from_utf8(body).unwrap()))
                .unwrap();
        }
    });
    (url, rx)
}

#[test]
fn metrics_are_pushed_and_a_failed_push_keeps_the_last_success() {
    let (url, requests) = pushgateway();
    let dir = tmp();
    let ok = plan_example(&["--push-gateway", &url], dir.path());
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let (method, path, body) = requests
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("PUT", "/metrics/job/cmdb-reconcile")
    );
    assert!(
        body.contains("cmdb_reconcile_last_success_timestamp_seconds "),
        "{body}"
    );
    assert!(
        body.contains(
            "cmdb_reconcile_planned_operations{action=\"create\",mapping=\"vmware-vm\"} 3"
        ),
        "{body}"
    );

    let failed = bin()
        .args([
            "plan",
            "--mapping",
            "mappings/vmware-vm.toml",
            "--source-file",
            "examples/cloudforms-vms.json",
        ])
        .args(["--target-file", "nope.csv", "--push-gateway", &url])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let (method, path, body) = requests
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    // POST replaces only the metrics it carries: the last success stays in the Pushgateway.
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("POST", "/metrics/job/cmdb-reconcile")
    );
    assert!(!body.contains("last_success"), "{body}");
    assert!(
        body.contains("cmdb_reconcile_last_run_exit_code 1"),
        "{body}"
    );
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
    assert!(dir.path().join("1-plan/index.md").exists());
    assert!(dir.path().join("1-plan/vmware-vm/drift.html").exists());
    assert!(dir
        .path()
        .join("1-plan/vmware-datacenter/drift.html")
        .exists());
    assert!(dir
        .path()
        .join("1-plan/provision-incident/drift.html")
        .exists());
    // The provisioning requests: AMBER tickets first, GREEN and RED ones after CloudForms
    // moved them on.
    let colours = text(&out)
        .lines()
        .filter(|l| l.contains("provisioning tickets:"))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert_eq!(colours.len(), 2, "{}", text(&out));
    assert!(!colours[0].contains(" 0 AMBER"), "{colours:?}");
    assert!(
        !colours[1].contains(" 0 GREEN") && !colours[1].contains(" 0 RED"),
        "{colours:?}"
    );
    // Review in ServiceNow: a change opened with the held plan, approved, applied, closed.
    assert!(
        text(&out).contains("AwaitingApproval (exit code 7): change CHG"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("3 files attached"), "{}", text(&out));
    assert!(
        text(&out).contains("(Closed), close code successful"),
        "{}",
        text(&out)
    );
    assert!(dir
        .path()
        .join("4-review/vmware-vm/review/plan.json")
        .exists());
}
