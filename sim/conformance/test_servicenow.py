"""ServiceNow simulator conformance: real third-party clients against the cmdb-sim binary.

PySNC talks HTTPS (it refuses http://), trusting the simulator's CA; pysnow talks plain HTTP;
OAuth and the raw headers are checked with requests. The `sim` fixture (conftest.py) starts the
binary with a generated world of 2,500 VMs (seed 7) and yields its URLs and credentials.

Every test checks the data it gets back, and tests that write clean up after themselves so the
generated CMDB stays as generated for the other tests.
"""

import re
import uuid
from urllib.parse import urlparse

import pysnc
import pysnow
import pytest
import requests

CI_TABLES = ("cmdb_ci_vmware_instance", "cmdb_ci_vm_instance")
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
DATETIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
INSTALL_STATUS = {
    "1": "Installed", "2": "On Order", "3": "In Maintenance", "4": "Pending Install",
    "5": "Pending Repair", "6": "In Stock", "7": "Retired", "8": "Stolen", "100": "Absent",
}
UNAUTHENTICATED = {
    "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
    "status": "failure",
}
NOT_FOUND = {
    "error": {
        "message": "No Record found",
        "detail": "Record doesn't exist or ACL restricts the record retrieval",
    },
    "status": "failure",
}


@pytest.fixture(scope="module")
def snow(sim):
    return sim["servicenow"]


@pytest.fixture(scope="module")
def https(snow):
    """A requests session over HTTPS with Basic auth, trusting the simulator's CA."""
    session = requests.Session()
    session.auth = (snow["user"], snow["password"])
    session.verify = snow["ca_pem"]
    session.headers["Accept"] = "application/json"
    return session


@pytest.fixture(scope="module")
def pysnc_client(snow):
    return pysnc.ServiceNowClient(snow["https_url"], (snow["user"], snow["password"]), verify=snow["ca_pem"])


@pytest.fixture(scope="module")
def pysnow_client(snow):
    return pysnow.Client(
        host=urlparse(snow["url"]).netloc, user=snow["user"], password=snow["password"], use_ssl=False
    )


def server_count(snow, https, table, query=""):
    """The server's own count of `table` rows matching `query` (X-Total-Count of a 1-row page)."""
    r = https.get(
        f"{snow['https_url']}/api/now/table/{table}",
        params={"sysparm_query": query, "sysparm_limit": 1, "sysparm_fields": "sys_id"},
    )
    assert r.status_code == 200, r.text
    return int(r.headers["X-Total-Count"])


def tag():
    """A value unique to one test, to find the records it wrote."""
    return f"conformance-{uuid.uuid4().hex}"


def test_pysnc_reads_every_generated_ci(snow, https, pysnc_client):
    total = 0
    for table in CI_TABLES:
        expected = server_count(snow, https, table)
        gr = pysnc_client.GlideRecord(table, batch_size=400)
        gr.fields = "sys_id,name,install_status,sys_class_name,sys_updated_on"
        gr.query()
        assert len(gr) == expected
        sys_ids = []
        for record in gr:
            sys_id = record.get_value("sys_id")
            assert SYS_ID.match(sys_id), sys_id
            sys_ids.append(sys_id)
            assert record.get_value("name")
            assert record.get_value("sys_class_name") == table
            assert DATETIME.match(record.get_value("sys_updated_on"))
            status = record.get_value("install_status")
            assert record.get_display_value("install_status") == INSTALL_STATUS.get(status, status)
        assert len(sys_ids) == expected, f"{table}: iterated {len(sys_ids)} of {expected}"
        assert len(set(sys_ids)) == expected, f"{table}: duplicate sys_ids across pages"
        assert sys_ids == sorted(sys_ids), "PySNC pages in sys_id order"
        total += expected
    # The generated world has 2,500 VMs; the CMDB holds roughly one CI per VM (minus VMs not
    # yet in the CMDB, plus CIs of vanished VMs).
    assert 2000 <= total <= 3000, total


def test_pysnc_references_display_the_referenced_record(snow, https, pysnc_client):
    gr = pysnc_client.GlideRecord("cmdb_ci_vmware_instance", batch_size=50)
    gr.add_not_null_query("owned_by")
    gr.fields = "sys_id,owned_by"
    gr.limit = 50
    gr.query()
    assert len(gr) > 0, "some generated CIs have an owner"
    users = pysnc_client.GlideRecord("sys_user")
    checked = 0
    for record in gr:
        owner = record.get_value("owned_by")
        assert SYS_ID.match(owner)
        assert users.get(owner), f"owner {owner} exists"
        assert record.get_display_value("owned_by") == users.get_value("name")
        checked += 1
    assert checked == min(50, server_count(snow, https, "cmdb_ci_vmware_instance", "owned_byISNOTEMPTY"))


def test_pysnc_inserts_updates_and_deletes(pysnc_client):
    table = "cmdb_ci_vmware_instance"
    name = tag()
    gr = pysnc_client.GlideRecord(table)
    gr.initialize()
    gr.name = name
    gr.cpus = 2
    gr.discovery_source = "CloudForms"
    sys_id = str(gr.insert())
    assert SYS_ID.match(sys_id)

    fresh = pysnc_client.GlideRecord(table)
    assert fresh.get(sys_id)
    assert fresh.get_value("name") == name
    assert fresh.get_value("cpus") == "2", "numbers are stored as strings"
    assert fresh.get_value("sys_mod_count") == "0"
    assert fresh.get_value("sys_class_name") == table

    fresh.cpus = 4
    assert str(fresh.update()) == sys_id
    again = pysnc_client.GlideRecord(table)
    assert again.get(sys_id)
    assert again.get_value("cpus") == "4"
    assert again.get_value("sys_mod_count") == "1"
    assert again.get_value("name") == name, "an update leaves other fields alone"

    assert again.delete() is True
    assert pysnc_client.GlideRecord(table).get(sys_id) is False


def test_pysnc_update_multiple_goes_through_the_batch_api(pysnc_client):
    table = "cmdb_ci_vm_instance"
    marker = tag()
    created = []
    for i in range(7):
        gr = pysnc_client.GlideRecord(table)
        gr.initialize()
        gr.name = f"{marker}-{i}"
        gr.short_description = marker
        gr.cpus = 1
        created.append(str(gr.insert()))

    batch = pysnc_client.GlideRecord(table)
    batch.add_query("short_description", marker)
    batch.query()
    assert len(batch) == 7
    for record in batch:
        record.cpus = 8
        record.state = "off"
    assert batch.update_multiple() is True

    check = pysnc_client.GlideRecord(table)
    check.add_query("short_description", marker)
    check.query()
    seen = {}
    for record in check:
        seen[record.get_value("sys_id")] = (
            record.get_value("cpus"), record.get_value("state"), record.get_value("sys_mod_count")
        )
    assert seen == {sys_id: ("8", "off", "1") for sys_id in created}

    cleanup = pysnc_client.GlideRecord(table)
    cleanup.add_query("short_description", marker)
    cleanup.query()
    assert cleanup.delete_multiple() is True
    gone = pysnc_client.GlideRecord(table)
    gone.add_query("short_description", marker)
    gone.query()
    assert len(gone) == 0


def test_pysnow_gets_creates_updates_and_deletes(snow, https, pysnow_client):
    table = "cmdb_ci_vm_instance"
    resource = pysnow_client.resource(api_path=f"/table/{table}")
    records = list(resource.get(query={}).all())
    assert len(records) == server_count(snow, https, table)
    assert len({r["sys_id"] for r in records}) == len(records)
    assert all(isinstance(v, str) for r in records for v in r.values() if not isinstance(v, dict))

    name = tag()
    created = resource.create(payload={"name": name, "cpus": 3, "state": "on"}).one()
    sys_id = created["sys_id"]
    assert SYS_ID.match(sys_id)
    assert (created["name"], created["cpus"], created["sys_mod_count"]) == (name, "3", "0")

    fetched = resource.get(query={"name": name}).one()
    assert fetched["sys_id"] == sys_id

    updated = resource.update(query={"name": name}, payload={"cpus": 6, "state": "off"}).one()
    assert (updated["sys_id"], updated["cpus"], updated["state"]) == (sys_id, "6", "off")
    assert updated["sys_mod_count"] == "1"
    assert updated["name"] == name, "PUT is a partial update"

    labelled = resource.get(query={"name": name}, display_value=True).one()
    assert labelled["cpus"] == "6"

    assert resource.delete(query={"name": name}) == {"status": "record deleted"}
    assert list(resource.get(query={"name": name}).all()) == []
    r = https.get(f"{snow['https_url']}/api/now/table/{table}/{sys_id}")
    assert r.status_code == 404
    assert r.json() == NOT_FOUND


def test_lists_carry_counts_and_absolute_paging_links(snow, https):
    table = "cmdb_ci_vmware_instance"
    total = server_count(snow, https, table)
    limit = 100
    r = https.get(
        f"{snow['https_url']}/api/now/v2/table/{table}",
        params={"sysparm_limit": limit, "sysparm_offset": limit, "sysparm_fields": "sys_id,name"},
    )
    assert r.status_code == 200
    assert int(r.headers["X-Total-Count"]) == total
    assert len(r.json()["result"]) == min(limit, max(total - limit, 0))
    links = r.links
    prefix = f"{snow['https_url']}/api/now/v2/table/{table}?"
    assert links["first"]["url"].startswith(prefix) and "sysparm_offset=0" in links["first"]["url"]
    assert "sysparm_offset=0" in links["prev"]["url"]
    assert f"sysparm_offset={(total - 1) // limit * limit}" in links["last"]["url"]
    if 2 * limit < total:
        assert f"sysparm_offset={2 * limit}" in links["next"]["url"]
        page = https.get(links["next"]["url"])
        assert page.status_code == 200
        assert len(page.json()["result"]) == min(limit, total - 2 * limit)


def test_oauth_password_grant_then_bearer(snow, https):
    token_url = f"{snow['url']}/oauth_token.do"
    form = {
        "grant_type": "password",
        "client_id": snow["client_id"],
        "client_secret": snow["client_secret"],
        "username": snow["user"],
        "password": snow["password"],
    }
    r = requests.post(token_url, data=form)
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "useraccount"
    assert token["expires_in"] > 0
    assert token["access_token"] and token["refresh_token"]

    table = "cmdb_ci_vm_instance"
    listed = requests.get(
        f"{snow['url']}/api/now/table/{table}",
        params={"sysparm_limit": 5, "sysparm_fields": "sys_id"},
        headers={"Authorization": f"Bearer {token['access_token']}", "Accept": "application/json"},
    )
    assert listed.status_code == 200
    assert int(listed.headers["X-Total-Count"]) == server_count(snow, https, table)
    assert all(SYS_ID.match(row["sys_id"]) for row in listed.json()["result"])

    refreshed = requests.post(token_url, data={
        "grant_type": "refresh_token",
        "client_id": snow["client_id"],
        "client_secret": snow["client_secret"],
        "refresh_token": token["refresh_token"],
    })
    assert refreshed.status_code == 200
    assert refreshed.json()["access_token"] != token["access_token"]

    denied = requests.post(token_url, data={**form, "password": "wrong"})
    assert denied.status_code == 401
    assert denied.json() == {"error": "server_error", "error_description": "access_denied"}


def test_missing_or_bad_credentials_get_the_error_envelope(snow):
    url = f"{snow['url']}/api/now/table/cmdb_ci_vm_instance"
    for kwargs in ({}, {"auth": (snow["user"], "wrong")}, {"headers": {"Authorization": "Bearer forged"}}):
        r = requests.get(url, **kwargs)
        assert r.status_code == 401
        assert r.json() == UNAUTHENTICATED


def test_attachment_list_is_empty_with_a_count(snow, https):
    r = https.get(
        f"{snow['https_url']}/api/now/attachment",
        params={"table_name": "cmdb_ci_vmware_instance", "table_sys_id": "0" * 32},
    )
    assert r.status_code == 200
    assert r.headers["X-Total-Count"] == "0"
    assert r.json() == {"result": []}
