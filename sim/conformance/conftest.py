"""Shared fixture of the simulator conformance tests: one `cmdb-sim` process per session.

The binary comes from $CMDB_SIM_BIN (default: target/debug/cmdb-sim under the repository root).
It is started with `--json --vms 2500 --seed 7 --ca-pem <tmp>`; the fixture yields the JSON line
it prints (`strict_sim`: a 30-VM world with `--snow-invalid-query-returns-no-rows`):

    {"manageiq": {"url", "user", "password"},
     "servicenow": {"url", "https_url", "user", "password", "ca_pem", "client_id", "client_secret"}}
"""

import json
import os
import pathlib
import signal
import subprocess

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120


def _binary():
    path = pathlib.Path(os.environ.get("CMDB_SIM_BIN", "target/debug/cmdb-sim"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        pytest.exit(f"cmdb-sim binary not found at {path}: build it or set CMDB_SIM_BIN", returncode=2)
    return path


@pytest.fixture(scope="session", autouse=True)
def _no_ca_bundle_override():
    """requests lets $REQUESTS_CA_BUNDLE / $CURL_CA_BUNDLE override a Session's `verify`
    (psf/requests#3829); machines that set them would make clients distrust the simulator's
    CA. The tests trust exactly that CA, so the variables are cleared for the session."""
    saved = {k: os.environ.pop(k) for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if k in os.environ}
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    yield from _run(tmp_path_factory, ["--vms", "2500", "--seed", "7"])


@pytest.fixture(scope="session")
def strict_sim(tmp_path_factory):
    """A small world on an instance whose `glide.invalid_query.returns_no_rows` is true."""
    yield from _run(tmp_path_factory, ["--vms", "30", "--seed", "7", "--snow-invalid-query-returns-no-rows"])


def _run(tmp_path_factory, args):
    workdir = tmp_path_factory.mktemp("cmdb-sim")
    ca_pem = workdir / "ca.pem"
    cmd = [str(_binary()), "--json", *args, "--ca-pem", str(ca_pem)]
    # stderr goes to a file: a pipe nobody reads could fill up and block the simulator.
    stderr = open(workdir / "stderr.log", "w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        info = json.loads(_first_line(proc))
    except Exception as e:
        proc.kill()
        proc.wait(timeout=10)
        stderr.seek(0)
        raise RuntimeError(f"cmdb-sim did not start ({e}): {stderr.read().strip()}") from e
    try:
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        stderr.close()


def _first_line(proc):
    """The JSON line, or an error if the process exits or stays silent too long."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout=STARTUP_TIMEOUT_S):
        raise TimeoutError(f"no output from cmdb-sim within {STARTUP_TIMEOUT_S} s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"cmdb-sim exited with {proc.wait(timeout=10)}")
    return line
