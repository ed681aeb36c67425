"""ServiceNow simulator conformance: real third-party clients against the cmdb-sim binary.

PySNC talks HTTPS (it refuses http://), trusting the simulator's CA; pysnow talks plain HTTP;
OAuth and the raw headers are checked with requests. The `sim` fixture (conftest.py) starts the
binary with a generated world of 2,500 VMs (seed 7) and yields its URLs and credentials.

Every test checks the data it gets back, and tests that write clean up after themselves so the
generated CMDB stays as generated for the other tests. The last ones hold the simulator to what
makes it an instance (issue 10): a dictionary, defaults, table inheritance, strict tables.
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
    # cmdb_ci_vmware_instance extends cmdb_ci_vm_instance: reading the parent lists the
    # VMware CIs too, each with its own class.
    table = "cmdb_ci_vm_instance"
    expected = server_count(snow, https, table)
    vmware = server_count(snow, https, "cmdb_ci_vmware_instance")
    assert 0 < vmware < expected
    gr = pysnc_client.GlideRecord(table, batch_size=400)
    gr.fields = "sys_id,name,install_status,sys_class_name,sys_updated_on"
    gr.query()
    assert len(gr) == expected
    sys_ids = []
    classes = {}
    for record in gr:
        sys_id = record.get_value("sys_id")
        assert SYS_ID.match(sys_id), sys_id
        sys_ids.append(sys_id)
        assert record.get_value("name")
        cls = record.get_value("sys_class_name")
        assert cls in CI_TABLES, cls
        classes[cls] = classes.get(cls, 0) + 1
        assert DATETIME.match(record.get_value("sys_updated_on"))
        status = record.get_value("install_status")
        assert record.get_display_value("install_status") == INSTALL_STATUS.get(status, status)
    assert len(sys_ids) == expected, f"{table}: iterated {len(sys_ids)} of {expected}"
    assert len(set(sys_ids)) == expected, f"{table}: duplicate sys_ids across pages"
    assert sys_ids == sorted(sys_ids), "PySNC pages in sys_id order, across classes"
    assert classes["cmdb_ci_vmware_instance"] == vmware
    # The generated world has 2,500 VMs; the CMDB holds roughly one CI per VM (minus VMs not
    # yet in the CMDB, plus CIs of vanished VMs).
    assert 2000 <= expected <= 3000, expected


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


# ---- The simulator behaves like an instance (issue 10)


def test_pysnc_inserts_an_incident_and_reads_the_platforms_defaults(pysnc_client):
    marker = tag()
    gr = pysnc_client.GlideRecord("incident")
    gr.initialize()
    gr.short_description = marker
    gr.impact = 2
    gr.urgency = 1
    sys_id = str(gr.insert())
    assert SYS_ID.match(sys_id)

    incident = pysnc_client.GlideRecord("incident")
    assert incident.get(sys_id)
    assert re.match(r"^INC\d{7}$", incident.get_value("number")), incident.get_value("number")
    assert incident.get_value("state") == "1"
    assert incident.get_display_value("state") == "New"
    assert incident.get_value("priority") == "2", "impact 2 x urgency 1 by the priority lookup"
    assert incident.get_display_value("priority") == "2 - High"
    assert incident.get_value("active") == "true"
    assert incident.get_value("opened_by") == "6816f79cc0a8016401c5a33be04be441", "admin's sys_id"
    assert DATETIME.match(incident.get_value("opened_at"))
    assert incident.get_value("sys_class_name") == "incident"
    # Every column of incident and task, set or not.
    for column in ("caller_id", "close_code", "assigned_to", "cmdb_ci", "correlation_id"):
        assert incident.get_value(column) == "", column

    second = pysnc_client.GlideRecord("incident")
    second.initialize()
    second.short_description = marker
    assert SYS_ID.match(str(second.insert()))
    check = pysnc_client.GlideRecord("incident")
    check.add_query("short_description", marker)
    check.query()
    got = sorted(r.get_value("number") for r in check)
    assert len(got) == 2 and int(got[1][3:]) == int(got[0][3:]) + 1, got

    # Through the parent table: a task query finds the incidents, and deletes them.
    tasks = pysnc_client.GlideRecord("task")
    tasks.add_query("short_description", marker)
    tasks.query()
    assert len(tasks) == 2
    assert {r.get_value("sys_class_name") for r in tasks} == {"incident"}
    assert tasks.delete_multiple() is True
    assert pysnc_client.GlideRecord("incident").get(sys_id) is False


def test_pysnc_finds_vmware_instances_through_cmdb_ci(snow, https, pysnc_client):
    vmware = server_count(snow, https, "cmdb_ci_vmware_instance")
    gr = pysnc_client.GlideRecord("cmdb_ci", batch_size=500)
    gr.add_query("sys_class_name", "cmdb_ci_vmware_instance")
    gr.fields = "sys_id,name,sys_class_name"
    gr.query()
    assert len(gr) == vmware
    first = next(iter(gr))
    assert first.get_value("sys_class_name") == "cmdb_ci_vmware_instance"
    # The CI read through its parent, and through its own class with the class's columns.
    ci = pysnc_client.GlideRecord("cmdb_ci")
    assert ci.get(first.get_value("sys_id"))
    assert ci.get_value("name") == first.get_value("name")
    vm = pysnc_client.GlideRecord("cmdb_ci_vmware_instance")
    assert vm.get(first.get_value("sys_id"))
    assert vm.get_value("cpus")
    # A column cmdb_ci has but no generated CI fills: the condition is evaluated.
    none = pysnc_client.GlideRecord("cmdb_ci_vmware_instance")
    none.add_query("serial_number", "ABC123")
    none.query()
    assert len(none) == 0


def test_pysnc_refuses_an_unknown_table(pysnc_client):
    gr = pysnc_client.GlideRecord("u_no_such_table")
    with pytest.raises(pysnc.exceptions.RequestException) as refused:
        gr.query()
    assert "Invalid table u_no_such_table" in str(refused.value)


def test_pysnc_reads_the_dictionary(pysnc_client):
    gr = pysnc_client.GlideRecord("sys_dictionary")
    gr.add_query("name", "u_cmdb_reconcile_lease")
    gr.add_query("element", "STARTSWITH", "u_")
    gr.query()
    lengths = {r.get_value("element"): r.get_value("max_length") for r in gr}
    assert lengths == {"u_name": "40", "u_holder": "100", "u_host": "100", "u_expires": "40"}
    table = pysnc_client.GlideRecord("sys_db_object")
    table.add_query("name", "cmdb_ci_vmware_instance")
    table.query()
    assert table.next()
    assert table.get_display_value("super_class") == "Virtual Machine Instance"


def test_pysnc_attaches_a_file_and_reads_it_back(pysnc_client):
    gr = pysnc_client.GlideRecord("incident")
    gr.initialize()
    gr.short_description = tag()
    gr.insert()
    assert gr.get(gr.sys_id)
    content = b"cmdb-reconcile report\n" * 500
    location = gr.add_attachment("report.txt", content, "text/plain")
    assert location.endswith("/api/now/attachment/" + location.rsplit("/", 1)[1])
    attachments = gr.get_attachments()
    assert len(attachments) == 1
    attachment = next(iter(attachments))
    assert attachment.file_name == "report.txt"
    assert attachment.read() == content
    attachment.delete()
    assert len(gr.get_attachments()) == 0
    assert gr.delete() is True


def test_pysnow_creates_an_incident_and_queries_cmdb_ci(snow, pysnow_client):
    incidents = pysnow_client.resource(api_path="/table/incident")
    marker = tag()
    created = incidents.create(payload={"short_description": marker, "impact": 1, "urgency": 1}).one()
    assert re.match(r"^INC\d{7}$", created["number"])
    assert (created["state"], created["priority"], created["active"]) == ("1", "1", "true")
    assert incidents.delete(query={"short_description": marker}) == {"status": "record deleted"}

    cis = pysnow_client.resource(api_path="/table/cmdb_ci")
    vm = cis.get(query={"sys_class_name": "cmdb_ci_vmware_instance"}, limit=1, stream=True).first()
    assert vm["sys_class_name"] == "cmdb_ci_vmware_instance"
    assert "cpus" not in vm, "only cmdb_ci's columns through cmdb_ci"

    unknown = pysnow_client.resource(api_path="/table/u_no_such_table")
    # pysnow raises the HTTP error of a 4xx before reading the error envelope.
    with pytest.raises(requests.exceptions.HTTPError) as refused:
        list(unknown.get(query={}).all())
    assert refused.value.response.status_code == 400
    assert refused.value.response.json() == {
        "error": {"message": "Invalid table u_no_such_table", "detail": None}, "status": "failure",
    }


def test_unknown_query_fields_are_ignored_as_an_instance_ships(snow, https):
    table = "cmdb_ci_vmware_instance"
    total = server_count(snow, https, table)
    assert server_count(snow, https, table, "u_no_such_field=1") == total
    assert server_count(snow, https, table, "serial_number=ABC123") == 0


def test_unknown_query_fields_return_no_rows_when_the_instance_says_so(strict_sim):
    snow = strict_sim["servicenow"]
    client = pysnc.ServiceNowClient(snow["https_url"], (snow["user"], snow["password"]), verify=snow["ca_pem"])
    every = client.GlideRecord("cmdb_ci_vmware_instance")
    every.query()
    assert len(every) > 0
    strict = client.GlideRecord("cmdb_ci_vmware_instance")
    strict.add_query("u_no_such_field", "1")
    strict.query()
    assert len(strict) == 0
    known = client.GlideRecord("cmdb_ci_vmware_instance")
    known.add_query("discovery_source", "CloudForms")
    known.query()
    assert 0 < len(known) <= len(every)


def test_the_cmdb_instance_api_with_requests(snow, https):
    api = f"{snow['https_url']}/api/now/cmdb/instance"
    r = https.get(f"{api}/cmdb_ci_esx_server", params={"sysparm_limit": 1})
    assert r.status_code == 200, r.text
    esx = r.json()["result"][0]["sys_id"]
    types = https.get(
        f"{snow['https_url']}/api/now/table/cmdb_rel_type",
        params={"sysparm_query": "name=Registered on::Has registered", "sysparm_fields": "sys_id"},
    ).json()["result"]
    registered_on = types[0]["sys_id"]
    created = https.post(f"{api}/cmdb_ci_vmware_instance", json={
        "attributes": {"name": tag(), "cpus": "2"},
        "source": "CloudForms",  # registered by the site as a discovery_source choice
        "outbound_relations": [{"target": esx, "type": registered_on}],
    })
    assert created.status_code == 200, created.text
    ci = created.json()["result"]
    sys_id = ci["attributes"]["sys_id"]
    assert ci["attributes"]["discovery_source"] == "CloudForms"
    assert ci["outbound_relations"][0]["target"]["value"] == esx
    one = https.get(f"{api}/cmdb_ci_vmware_instance/{sys_id}").json()["result"]
    rel = one["outbound_relations"][0]["sys_id"]
    assert https.delete(f"{api}/cmdb_ci_vmware_instance/{sys_id}/relation/{rel}").status_code == 200
    assert https.delete(f"{snow['https_url']}/api/now/table/cmdb_ci/{sys_id}").status_code == 204


def test_a_tiny_url_replaces_a_long_query(snow, https):
    table = "cmdb_ci_vmware_instance"
    names = [r["name"] for r in https.get(
        f"{snow['https_url']}/api/now/table/{table}",
        params={"sysparm_limit": 300, "sysparm_fields": "name"},
    ).json()["result"]]
    query = "nameIN" + ",".join(names)
    r = https.post(f"{snow['https_url']}/api/now/tinyurl", json={"url": f"{table}_list.do?sysparm_query={query}"})
    assert r.status_code == 200, r.text
    tiny = r.json()["result"].split("sysparm_tiny=")[1]
    listed = https.get(f"{snow['https_url']}/api/now/table/{table}", params={"sysparm_tiny": tiny, "sysparm_fields": "name"})
    assert int(listed.headers["X-Total-Count"]) == server_count(snow, https, table, query)


# ---- Change requests for the review workflow (issue 15)


def test_pysnc_moves_a_change_along_its_state_model_with_an_attached_plan(snow, https, pysnc_client):
    """A change request as cmdb-reconcile's review workflow writes it, through PySNC: it starts
    New, takes an attached plan, asks for approval (Assess: approval requested), and may not
    skip ahead to Scheduled before the approvers decide (403, as a business rule's abort)."""
    marker = tag()
    gr = pysnc_client.GlideRecord("change_request")
    gr.initialize()
    gr.short_description = marker
    gr.type = "normal"
    gr.correlation_id = "ab" * 32
    gr.correlation_display = "cmdb-reconcile:conformance"
    gr.insert()
    assert gr.get(gr.sys_id)
    assert gr.get_value("state") == "-5"
    assert gr.get_value("approval") == "not requested"
    assert gr.get_value("number").startswith("CHG")
    plan = b'{"format_version": 1}\n'
    gr.add_attachment("plan.json", plan, "application/json")
    [attachment] = list(gr.get_attachments())
    assert attachment.file_name == "plan.json"
    assert attachment.read() == plan

    skip = https.patch(
        f"{snow['https_url']}/api/now/table/change_request/{gr.sys_id}",
        json={"state": "-2"},
    )
    assert skip.status_code == 403, skip.text
    assert skip.json()["error"]["message"] == "Operation Failed"

    gr.state = -4
    gr.update()
    again = pysnc_client.GlideRecord("change_request")
    assert again.get(gr.sys_id)
    assert again.get_value("state") == "-4"
    assert again.get_value("approval") == "requested"

    # The choices a client reads instead of assuming them.
    choices = pysnc_client.GlideRecord("sys_choice")
    choices.add_query("name", "change_request")
    choices.add_query("element", "close_code")
    choices.query()
    values = set()
    while choices.next():
        values.add(choices.get_value("value"))
    assert values == {"successful", "successful_issues", "unsuccessful"}

    gr.state = 4
    gr.update()
    for a in gr.get_attachments():
        a.delete()
    assert gr.delete() is True
