//! Conformance of the simulators with real third-party clients: manageiq-client, pysnc and
//! pysnow (from PyPI) run `sim/conformance/*.py` under pytest against the `cmdb-sim` binary.
//!
//! Part of `cargo test --workspace`, so the README's one test command covers it. The test
//! makes its own venv under `target/conformance-venv` and installs
//! `sim/conformance/requirements.txt` there the first time (and again when the file
//! changes); it needs `python3` with `venv` and access to PyPI for that first install.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sim/ has a parent")
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) -> String {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", cmd.get_program()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{text}",
        output.status
    );
    text
}

/// The venv's python, (re)built when requirements.txt differs from what was installed.
fn venv(root: &Path) -> PathBuf {
    let requirements = root.join("sim/conformance/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements.txt");
    let dir = root.join("target/conformance-venv");
    let python = dir.join("bin/python");
    let stamp = dir.join("installed-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(
        Command::new(&system)
            .args(["-m", "venv", "--clear"])
            .arg(&dir),
        "python3 -m venv",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r sim/conformance/requirements.txt",
    );
    std::fs::write(&stamp, wanted).expect("write the venv stamp");
    python
}

#[test]
fn third_party_clients_work_against_the_simulators() {
    let root = repo_root();
    let python = venv(&root);
    let output = run(
        Command::new(&python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "sim/conformance",
            ])
            .current_dir(&root)
            .env("CMDB_SIM_BIN", env!("CARGO_BIN_EXE_cmdb-sim")),
        "pytest sim/conformance",
    );
    // pytest exits 0 with nothing collected only if no test exists: hold it to a real count.
    let passed = output
        .lines()
        .rev()
        .find_map(|l| {
            l.split(" passed")
                .next()
                .and_then(|n| n.trim().rsplit(' ').next()?.parse::<u32>().ok())
        })
        .unwrap_or(0);
    assert!(
        passed >= 10,
        "expected the conformance tests to run, got:\n{output}"
    );
    println!("{output}");
}
