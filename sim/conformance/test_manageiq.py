"""ManageIQ simulator conformance: the third-party `manageiq-client` against the cmdb-sim binary.

The `sim` fixture (conftest.py) serves a generated estate of 2,500 VMs (seed 7). The client must
load the entry point, list and page through every VM (by offset and by following links.next),
filter with Q, get the real server's error for an unknown attribute, and poll the provisioning
requests by updated_on.
"""

import pytest
from manageiq_client.api import APIException, ManageIQClient
from manageiq_client.filters import Q

TOTAL = 2500


@pytest.fixture(scope="module")
def miq(sim):
    return sim["manageiq"]


@pytest.fixture(scope="module")
def client(miq):
    return ManageIQClient(miq["url"] + "/api", dict(user=miq["user"], password=miq["password"]), verify_ssl=False)


def test_entry_point_loads(client, miq):
    assert client.version
    assert client.versions
    names = client.collections.all_names
    for name in ("vms", "templates", "hosts", "providers"):
        assert name in names
    assert client.collections.vms.description == "Virtual Machines"
    assert client.identity["userid"] == miq["user"]


def test_all_is_one_page_of_1000(client):
    vms = client.collections.vms.all
    assert len(vms) == 1000
    assert client.collections.vms.count == TOTAL
    first = vms[0]
    assert isinstance(first.id, str) and first.id.isdigit()
    assert first.vendor in ("vmware", "redhat")
    assert first.name
    assert first.type.endswith("InfraManager::Vm")
    assert first.template is False


def test_pages_by_offset_cover_every_vm(client):
    seen = []
    for offset in range(0, TOTAL, 1000):
        page = client.collections.vms.query_string(
            offset=offset, limit=1000, expand="resources", sort_by="id", sort_order="asc"
        )
        assert page.count == TOTAL
        assert page.subcount == min(1000, TOTAL - offset)
        seen.extend(r.id for r in page.resources)
    assert len(seen) == TOTAL
    assert len(set(seen)) == TOTAL
    assert seen == sorted(seen, key=int)


def test_following_next_links_covers_every_vm(client):
    href = client.collections.vms._href
    data = client.get(href, expand="resources", attributes="name,vendor,ipaddresses", limit=700, sort_by="id")
    ids, pages = [], 0
    while True:
        pages += 1
        for r in data["resources"]:
            assert set(r) >= {"href", "id", "name", "vendor", "ipaddresses"}
            assert all(isinstance(ip, str) for ip in r["ipaddresses"])
            ids.append(r["id"])
        nxt = data["links"].get("next")
        if not nxt:
            break
        data = client.get(nxt)
    assert pages == 4
    assert len(ids) == TOTAL == len(set(ids))


def test_last_link_is_not_to_be_trusted_on_exact_multiples(client):
    href = client.collections.vms._href
    data = client.get(href, limit=500, offset=0)
    assert data["pages"] == 5
    last = client.get(data["links"]["last"])
    assert last["subcount"] == 0, "the real server's last link points past the end"


def test_filter_with_q(client):
    href = client.collections.vms._href
    expected = client.get(href, **{"filter[]": ["vendor='vmware'"], "limit": 1})["subquery_count"]
    assert 0 < expected < TOTAL
    vmware = client.collections.vms.filter(Q("vendor", "=", "vmware"))
    assert vmware.count == TOTAL, "count ignores filters"
    assert len(vmware.resources) == min(expected, 1000)

    some = client.collections.vms.query_string(expand="resources", limit=2, offset=10, sort_by="id")
    a, b = (r.id for r in some.resources)
    either = client.collections.vms.filter(Q("id", "=", int(a)) | Q("id", "=", int(b)))
    assert sorted(r._href.rsplit("/", 1)[1] for r in either.resources) == sorted([a, b])

    big = client.collections.vms.filter(Q("hardware.memory_mb", ">=", 16384) & Q("vendor", "=", "vmware"))
    for entity in big.resources[:5]:
        entity.reload(attributes=["hardware.memory_mb"])
        assert entity.vendor == "vmware"
        assert entity.hardware["memory_mb"] >= 16384


def test_one_vm_with_nested_attributes(client):
    page = client.collections.vms.query_string(expand="resources", limit=1, sort_by="id")
    vm_id = page.resources[0].id
    vm = client.collections.vms(vm_id, attributes=["ext_management_system.name", "ram_size", "tags"])
    assert vm.ram_size > 0
    assert vm.ext_management_system["name"]
    assert all(t["name"].startswith("/") for t in vm.tags)


def test_unknown_attribute_is_an_error(client):
    with pytest.raises(APIException) as err:
        client.collections.vms.query_string(expand="resources", attributes="name,bogus")
    assert "Invalid attributes specified: bogus" in str(err.value)


def test_unknown_vm_is_not_found(client):
    with pytest.raises(APIException) as err:
        client.get(client.collections.vms._href + "/9999")
    assert "Couldn't find Vm with 'id'=9999" in str(err.value)


def test_requests_are_polled_by_updated_on(client):
    """The provisioning requests (12 by default) through the client's own collection objects:
    sorted by updated_on, rendered with their tasks, and polled with an unquoted datetime filter;
    `>=` on a datetime is the real server's 400."""
    names = client.collections.all_names
    for name in ("requests", "provision_requests", "service_requests", "request_tasks"):
        assert name in names
    page = client.collections.requests.query_string(
        expand="resources", attributes="miq_request_tasks", sort_by="updated_on", sort_order="asc"
    )
    assert page.count == 12 and page.subcount == 12
    times = [r.updated_on for r in page.resources]
    assert times == sorted(times)
    for r in page.resources:
        assert r.type in ("MiqProvisionRequest", "ServiceTemplateProvisionRequest")
        assert r.request_state in ("pending", "active", "finished")
        assert isinstance(r.miq_request_tasks, list)
        assert all(t["href"].endswith("/api/request_tasks/" + t["id"]) for t in r.miq_request_tasks)
    # The client parses times; the filter takes them as ManageIQ renders them.
    pivot = times[5]
    text = pivot.strftime("%Y-%m-%dT%H:%M:%SZ")
    later = client.collections.requests.raw_filter(["updated_on>" + text])
    assert len(later) == sum(1 for t in times if t > pivot)
    with pytest.raises(APIException) as err:
        client.collections.requests.raw_filter(["updated_on>=" + text])
    assert "Unsupported operator for datetime: >=" in str(err.value)
    # The client's Q quotes strings: a quoted datetime is a plain comparison, any operator.
    quoted = client.collections.requests.filter(Q("updated_on", ">=", text))
    assert len(quoted) == sum(1 for t in times if t >= pivot)
