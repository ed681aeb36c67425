//! Runs the Python conformance suite (`sim/conformance/`): the real
//! third-party clients — manageiq-client, PySNC, pysnow — against the
//! `cmdb-sim` binary this build produced. The virtualenv lives under the
//! target directory and is reinstalled only when `requirements.txt` changes.
//!
//! Needs `python3` (or `$CMDB_SIM_PYTHON`) with `venv`, and PyPI the first
//! time. `CMDB_SIM_SKIP_CONFORMANCE=1` skips it on machines without them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PYTEST_TIMEOUT: Duration = Duration::from_secs(600);

fn run(cmd: &mut Command, log: &Path, timeout: Duration) -> (bool, String) {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file handle");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("waiting for the child") {
            Some(status) => break Some(status),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("{text}\n(timed out after {timeout:?})")),
    }
}

/// A virtualenv with the pinned requirements, reused while they are unchanged.
fn venv(sim_dir: &Path, tmp: &Path) -> PathBuf {
    let requirements = sim_dir.join("conformance/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements.txt");
    let venv = tmp.join("conformance-venv");
    let marker = venv.join("installed-requirements.txt");
    let python = venv.join("bin/python");
    if python.exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str())
    {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let base = std::env::var("CMDB_SIM_PYTHON").unwrap_or_else(|_| "python3".into());
    let log = tmp.join("conformance-venv.log");
    let (ok, text) = run(
        Command::new(&base).args(["-m", "venv"]).arg(&venv),
        &log,
        Duration::from_secs(120),
    );
    assert!(
        ok,
        "creating the virtualenv with `{base} -m venv` failed:\n{text}"
    );
    let (ok, text) = run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "-r",
            ])
            .arg(&requirements),
        &log,
        Duration::from_secs(600),
    );
    assert!(ok, "installing {} failed:\n{text}", requirements.display());
    std::fs::write(&marker, wanted).expect("marker file");
    python
}

#[test]
fn third_party_clients_accept_the_simulators() {
    if std::env::var_os("CMDB_SIM_SKIP_CONFORMANCE").is_some() {
        eprintln!("conformance suite skipped (CMDB_SIM_SKIP_CONFORMANCE is set)");
        return;
    }
    let sim_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let python = venv(&sim_dir, &tmp);
    let log = tmp.join("conformance-pytest.log");
    let (ok, text) = run(
        Command::new(&python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "conformance",
            ])
            .current_dir(&sim_dir)
            .env("CMDB_SIM_BIN", env!("CARGO_BIN_EXE_cmdb-sim"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        &log,
        PYTEST_TIMEOUT,
    );
    println!("{text}");
    assert!(ok, "the conformance suite failed (log: {})", log.display());
    assert!(
        text.contains(" passed"),
        "pytest reported no passed test:\n{text}"
    );
}
