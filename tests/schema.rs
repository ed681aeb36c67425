//! Mappings against their tables, offline: against the table's dictionary (a
//! `sys_dictionary` export next to the CMDB export), a field the table lacks stops the plan
//! before anything is planned, with the mapping's file, line and the closest column; and two
//! syncs that could turn one record into two CIs are refused.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures, write files and read the clock"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A `sys_dictionary` export of `cmdb_ci_vmware_instance`, one row per column of the CMDB
/// export's header (which holds exactly the columns the shipped mapping uses), the `name`
/// column defined on the parent `cmdb_ci`.
fn write_dictionary(dir: &Path) -> PathBuf {
    let header = std::fs::read_to_string(examples().join("cmdb_ci_vmware_instance.csv")).unwrap();
    let mut csv = String::from("sys_id,name,element,internal_type,max_length,reference\n");
    for (n, column) in header.lines().next().unwrap().split(',').enumerate() {
        let table = if column == "name" {
            "cmdb_ci"
        } else {
            "cmdb_ci_vmware_instance"
        };
        let (kind, reference) = if column == "owned_by" {
            ("reference", "sys_user")
        } else {
            ("string", "")
        };
        csv.push_str(&format!(
            "{n:032x},{table},{column},{kind},255,{reference}\n"
        ));
    }
    let path = dir.join("sys_dictionary.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn plan(dir: &Path, mapping: &str) -> Output {
    plan_with_choices(dir, mapping, None)
}

/// Plans with the dictionary export and, when given, a `sys_choice` export.
fn plan_with_choices(dir: &Path, mapping: &str, choices: Option<&str>) -> Output {
    let mapping_path = dir.join("vmware-vm.toml");
    std::fs::write(&mapping_path, mapping).unwrap();
    let dictionary = write_dictionary(dir);
    let choices_line = match choices {
        Some(csv) => {
            let path = dir.join("sys_choice.csv");
            std::fs::write(&path, csv).unwrap();
            format!("choices = {path:?}\n")
        }
        None => String::new(),
    };
    let config = dir.join("c.toml");
    let e = examples();
    std::fs::write(
        &config,
        format!(
            "[[sync]]\nmapping = {:?}\nsource_file = {:?}\ntarget_file = {:?}\ndictionary = {:?}\n{choices_line}references = {{ sys_user = {:?} }}\n",
            mapping_path,
            e.join("cloudforms-vms.json"),
            e.join("cmdb_ci_vmware_instance.csv"),
            dictionary,
            e.join("sys_user.csv"),
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_cmdb-reconcile"))
        .current_dir(dir)
        .env_remove("CMDB_RECONCILE_CONFIG")
        .args(["--log-format", "text", "plan", "--config"])
        .arg(&config)
        .args(["--out-dir"])
        .arg(dir.join("out"))
        .output()
        .unwrap()
}

const MAPPING: &str = include_str!("../mappings/vmware-vm.toml");

#[test]
fn the_shipped_mapping_fits_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = plan(dir.path(), MAPPING);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_misspelt_field_stops_the_plan_naming_file_line_and_the_closest_column() {
    let dir = tempfile::tempdir().unwrap();
    let misspelt = MAPPING.replace("\nowned_by = ", "\nownd_by = ");
    assert_ne!(misspelt, MAPPING, "the mapping has an owned_by line");
    let out = plan(dir.path(), &misspelt);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = misspelt
        .lines()
        .position(|l| l.starts_with("ownd_by"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("vmware-vm.toml:{line}:1: field `ownd_by` is not a column of `cmdb_ci_vmware_instance` (nor of cmdb_ci); did you mean `owned_by`?")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("out").join("plan.json").exists(),
        "nothing was planned"
    );
}

#[test]
fn two_syncs_that_could_claim_one_vm_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vm = std::fs::read_to_string(root.join("mappings/vm.toml")).unwrap();
    let unfiltered = vm.replace("filter = [\"vendor!=vmware\"]\n", "");
    assert_ne!(vm, unfiltered);
    std::fs::write(dir.path().join("vm.toml"), &unfiltered).unwrap();
    std::fs::write(dir.path().join("vmware-vm.toml"), MAPPING).unwrap();
    let e = examples();
    let sync = |m: &str| {
        format!(
            "[[sync]]\nmapping = {m:?}\nsource_file = {:?}\ntarget_file = {:?}\nreferences = {{ sys_user = {:?} }}\n",
            e.join("cloudforms-vms.json"),
            e.join("cmdb_ci_vmware_instance.csv"),
            e.join("sys_user.csv"),
        )
    };
    let run = |mappings: &[&str]| {
        let config = dir.path().join("c.toml");
        std::fs::write(
            &config,
            mappings.iter().map(|m| sync(m)).collect::<String>(),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_cmdb-reconcile"))
            .current_dir(dir.path())
            .env_remove("CMDB_RECONCILE_CONFIG")
            .args(["--log-format", "text", "plan", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let refused = run(&["vmware-vm.toml", "vm.toml"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("one record could become two CIs"),
        "{stderr}"
    );
    // The shipped pair has disjoint filters.
    std::fs::write(dir.path().join("vm.toml"), &vm).unwrap();
    let shipped = run(&["vmware-vm.toml", "vm.toml"]);
    assert_eq!(
        shipped.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&shipped.stderr)
    );
}

#[test]
fn a_value_outside_the_columns_choices_is_reported_and_not_written() {
    let dir = tempfile::tempdir().unwrap();
    // The instance knows only `on` for `state`: every other state is not one of its choices.
    let choices = "sys_id,name,element,value,inactive\n\
                   00000000000000000000000000000001,cmdb_ci_vmware_instance,state,on,false\n";
    let out = plan_with_choices(dir.path(), MAPPING, Some(choices));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/vmware-vm/plan.json")).unwrap(),
    )
    .unwrap();
    let issues = plan["issues"].as_array().unwrap();
    let misfits: Vec<&serde_json::Value> = issues
        .iter()
        .filter(|i| i["field"] == "state" && i["kind"] == "bad_value")
        .collect();
    assert!(!misfits.is_empty(), "{issues:#?}");
    assert!(misfits[0]["message"]
        .as_str()
        .unwrap()
        .contains("is not one of the column's choices (on); not written"));
    let writes_off = plan["creates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["fields"].as_array().unwrap())
        .chain(
            plan["updates"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|u| u["changes"].as_array().unwrap()),
        )
        .any(|f| f["field"] == "state" && (f["value"] == "off" || f["desired"] == "off"));
    assert!(!writes_off, "a value outside the choices is never written");
}
