"""The simulated Service Catalog through real clients: an order placed with `order_now` (plain
requests, as the Service Catalog API is not a Table API), then its RITM's variables read with
PySNC both ways (integrations.md B.2): `variables.<name>` as a field of sc_req_item, and the
sc_item_option_mtom join. The rows the order created are deleted afterwards.
"""

import pytest
import requests


@pytest.fixture(scope="module")
def snow(sim):
    return sim["servicenow"]


@pytest.fixture(scope="module")
def https(snow):
    session = requests.Session()
    session.auth = (snow["user"], snow["password"])
    session.verify = snow["ca_pem"]
    session.headers["Accept"] = "application/json"
    return session


def test_pysnc_reads_the_variables_of_an_ordered_ritm(snow, https, sim):
    import pysnc

    client = pysnc.ServiceNowClient(snow["https_url"], (snow["user"], snow["password"]), verify=snow["ca_pem"])
    items = client.GlideRecord("sc_cat_item")
    items.add_query("name", "Linux VM")
    items.query()
    assert len(items) == 1
    assert items.next()
    item = items.get_value("sys_id")

    r = https.post(
        f"{snow['https_url']}/api/sn_sc/servicecatalog/items/{item}/order_now",
        json={"sysparm_quantity": 1, "variables": {"vm_name": "conformance-vm-01", "justification": "a test"}},
    )
    assert r.status_code == 200, r.text
    placed = r.json()["result"]
    assert placed["table"] == "sc_request" and placed["number"].startswith("REQ")

    created = []
    try:
        ritm = client.GlideRecord("sc_req_item")
        ritm.add_query("request", placed["request_id"])
        ritm.fields = "sys_id,number,approval,cat_item,variables.vm_name,variables.justification"
        ritm.query()
        assert len(ritm) == 1
        assert ritm.next()
        ritm_id = ritm.get_value("sys_id")
        created = [("sc_req_item", ritm_id), ("sc_request", placed["request_id"])]
        assert ritm.get_value("number").startswith("RITM")
        assert ritm.get_value("approval") == "approved"
        assert ritm.get_display_value("cat_item") == "Linux VM"
        assert ritm.get_value("variables.vm_name") == "conformance-vm-01"
        assert ritm.get_value("variables.justification") == "a test"

        mtom = client.GlideRecord("sc_item_option_mtom")
        mtom.add_query("request_item", ritm_id)
        mtom.fields = "sys_id,sc_item_option,sc_item_option.item_option_new.name,sc_item_option.value"
        mtom.query()
        values = {}
        for link in mtom:
            values[link.get_value("sc_item_option.item_option_new.name")] = link.get_value("sc_item_option.value")
            created.append(("sc_item_option_mtom", link.get_value("sys_id")))
            created.append(("sc_item_option", link.get_value("sc_item_option")))
        assert values == {"vm_name": "conformance-vm-01", "justification": "a test"}
    finally:
        for table, sys_id in created:
            d = https.delete(f"{snow['https_url']}/api/now/table/{table}/{sys_id}")
            assert d.status_code == 204, d.text
