"""simple-salesforce, a Salesforce client others wrote, against the Salesforce sandbox:
queries with paging past one batch, query_all, rows, upserts by external id, describe
and the sObject Collections calls."""

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from conftest import SF_TOKEN


class HttpSession(requests.Session):
    """simple-salesforce builds https:// URLs only; the sandbox serves plain HTTP on
    loopback, so requests to it are sent over http://."""

    def __init__(self, host):
        super().__init__()
        self.host = host

    def request(self, method, url, *args, **kwargs):
        if url.startswith(f"https://{self.host}"):
            url = "http://" + url[len("https://"):]
        return super().request(method, url, *args, **kwargs)


@pytest.fixture(scope="module")
def sf(sandbox):
    host = sandbox.salesforce_url.removeprefix("http://")
    return Salesforce(instance_url=f"https://{host}", session_id=SF_TOKEN, session=HttpSession(host), version="65.0")


def test_query_and_query_all_page_past_one_batch(sf, sandbox):
    created = [sf.Lead.create({"LastName": f"Pager{i}", "Company": "Paging Co"})["id"] for i in range(5)]
    # A tiny batch size makes every query span several pages.
    sandbox.control("PUT", "/settings", {"batch_size": 2}, crm="salesforce")
    try:
        first = sf.query("SELECT Id, LastName FROM Lead WHERE Company = 'Paging Co' ORDER BY LastName")
        assert first["totalSize"] == 5
        assert first["done"] is False
        everything = sf.query_all("SELECT Id, LastName FROM Lead WHERE Company = 'Paging Co' ORDER BY LastName")
        assert [r["LastName"] for r in everything["records"]] == [f"Pager{i}" for i in range(5)]
        sf.Lead.delete(created[0])
        live = sf.query_all("SELECT Id FROM Lead WHERE Company = 'Paging Co'")
        assert live["totalSize"] == 4
        with_deleted = sf.query_all("SELECT Id FROM Lead WHERE Company = 'Paging Co'", include_deleted=True)
        assert with_deleted["totalSize"] == 5
    finally:
        sandbox.control("PUT", "/settings", {"batch_size": 2000}, crm="salesforce")


def test_create_get_update_delete(sf):
    result = sf.Contact.create({"LastName": "Lovelace", "Email": "ada@py-sf.example"})
    assert result["success"] is True
    contact_id = result["id"]
    assert sf.Contact.get(contact_id)["Email"] == "ada@py-sf.example"
    assert sf.Contact.update(contact_id, {"Title": "Countess"}) == 204
    assert sf.Contact.get(contact_id)["Title"] == "Countess"
    assert sf.Contact.delete(contact_id) == 204


def test_upsert_by_external_id(sf):
    assert sf.Account.upsert("HubSpot_Company_Id__c/900", {"Name": "Upserted"}) == 201
    assert sf.Account.upsert("HubSpot_Company_Id__c/900", {"Name": "Upserted again"}) == 200
    got = sf.Account.get_by_custom_id("HubSpot_Company_Id__c", "900")
    assert got["Name"] == "Upserted again"


def test_describe(sf):
    describe = sf.Lead.describe()
    fields = {f["name"]: f for f in describe["fields"]}
    assert fields["Status"]["restrictedPicklist"] is True
    assert fields["Name"]["calculated"] is True
    assert "Lead" in [o["name"] for o in sf.describe()["sobjects"]]


def test_malformed_soql_raises_with_salesforces_code(sf):
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.query("SELECT Id FRM Lead")
    assert e.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_sobject_collections(sf):
    created = sf.restful("composite/sobjects", method="POST", json={
        "allOrNone": False,
        "records": [{"attributes": {"type": "Account"}, "Name": f"Coll {i}"} for i in range(3)],
    })
    assert all(r["success"] for r in created)
    ids = [r["id"] for r in created]
    updated = sf.restful("composite/sobjects", method="PATCH", json={
        "records": [{"attributes": {"type": "Account"}, "Id": i, "Industry": "Technology"} for i in ids],
    })
    assert all(r["success"] for r in updated)
    fetched = sf.restful("composite/sobjects/Account", method="GET", params={"ids": ",".join(ids), "fields": "Id,Industry"})
    assert [r["Industry"] for r in fetched] == ["Technology"] * 3
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(ids)})
    assert all(r["success"] for r in deleted)
