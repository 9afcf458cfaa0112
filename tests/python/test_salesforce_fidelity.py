"""What real Salesforce clients meet and the sandbox must answer the same way: compound
address fields (describe, SOQL, writes), the standard fields admins map, URLs in the API
version that was called, NOT_FOUND and METHOD_NOT_ALLOWED bodies for unknown routes and
methods, and Bulk API 2.0 query jobs, through simple-salesforce's own bulk2 client."""

import csv
import io

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from conftest import SF_TOKEN, http
from test_salesforce_client import HttpSession


@pytest.fixture(scope="module")
def sf59(sandbox):
    host = sandbox.salesforce_url.removeprefix("http://")
    return Salesforce(instance_url=f"https://{host}", session_id=SF_TOKEN, session=HttpSession(host), version="59.0")


def rest(sandbox, method, path, body=None):
    return http(sandbox.salesforce_url, method, path, body, SF_TOKEN)


def fields(sf, sobject):
    return {f["name"]: f for f in getattr(sf, sobject).describe()["fields"]}


def test_describe_has_compound_addresses_and_the_standard_fields(sf59):
    contact = fields(sf59, "Contact")
    for compound in ("MailingAddress", "OtherAddress"):
        f = contact[compound]
        assert f["type"] == "address" and not f["createable"] and not f["updateable"], f
        assert f["compoundFieldName"] is None and f["queryByDistance"] is True
    prefix = "Mailing"
    for part in ("Street", "City", "State", "PostalCode", "Country", "Latitude", "Longitude", "GeocodeAccuracy"):
        assert contact[f"{prefix}{part}"]["compoundFieldName"] == "MailingAddress", part
    for name, ty in (("Department", "string"), ("MobilePhone", "phone"), ("HomePhone", "phone"), ("Birthdate", "date"),
                     ("AssistantName", "string"), ("ReportsToId", "reference"), ("DoNotCall", "boolean"),
                     ("HasOptedOutOfEmail", "boolean"), ("Description", "textarea"), ("Salutation", "picklist")):
        assert contact[name]["type"] == ty, name
    lead = fields(sf59, "Lead")
    assert lead["Address"]["type"] == "address" and lead["City"]["compoundFieldName"] == "Address"
    for name in ("Website", "NumberOfEmployees", "AnnualRevenue", "MobilePhone", "Description"):
        assert name in lead, name
    account = fields(sf59, "Account")
    assert account["BillingAddress"]["type"] == "address" and account["ShippingAddress"]["type"] == "address"
    assert account["ShippingCity"]["compoundFieldName"] == "ShippingAddress"


def test_soql_reads_a_compound_address_and_refuses_to_filter_or_write_it(sf59, sandbox):
    cid = sf59.Contact.create({"LastName": "Compound", "MailingCity": "Lisbon", "MailingCountry": "Portugal",
                               "MailingStreet": "Rua Augusta 1"})["id"]
    bare = sf59.Contact.create({"LastName": "NoAddress"})["id"]
    rows = sf59.query(f"SELECT Id, MailingAddress FROM Contact WHERE Id IN ('{cid}', '{bare}')")["records"]
    by_id = {r["Id"][:15]: r for r in rows}
    address = by_id[cid[:15]]["MailingAddress"]
    assert list(address) == sorted(address), "keys in alphabetical order"
    assert address == {"city": "Lisbon", "country": "Portugal", "geocodeAccuracy": None, "latitude": None,
                       "longitude": None, "postalCode": None, "state": None, "street": "Rua Augusta 1"}
    assert by_id[bare[:15]]["MailingAddress"] is None
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf59.query("SELECT Id FROM Contact WHERE MailingAddress != null")
    assert "Address fields can only be filtered" in str(e.value)
    status, _, body = rest(sandbox, "PATCH", f"/services/data/v59.0/sobjects/Contact/{cid}",
                           {"MailingAddress": {"city": "Porto"}})
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE", body


def test_urls_carry_the_api_version_that_was_called(sf59, sandbox):
    sf59.Lead.create({"LastName": "Versioned", "Company": "V Co"})
    record = sf59.query("SELECT Id FROM Lead WHERE LastName = 'Versioned'")["records"][0]
    assert record["attributes"]["url"].startswith("/services/data/v59.0/sobjects/Lead/"), record
    assert sf59.Lead.describe()["urls"]["describe"] == "/services/data/v59.0/sobjects/Lead/describe"
    status, _, body = rest(sandbox, "GET", "/services/data/v61.0/query?q=SELECT+Id+FROM+Lead+LIMIT+1")
    assert status == 200 and body["records"][0]["attributes"]["url"].startswith("/services/data/v61.0/")
    status, _, body = rest(sandbox, "GET", "/services/data/v99.0/query?q=SELECT+Id+FROM+Lead")
    assert status == 404 and body == [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]


def test_unknown_routes_and_methods_answer_salesforces_json_errors(sandbox):
    status, head, body = rest(sandbox, "GET", "/services/data/v65.0/nothing/here")
    assert status == 404 and head["content-type"].startswith("application/json")
    assert body == [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    status, _, body = rest(sandbox, "GET", "/services/data/v65.0/sobjects/Nope__c/describe")
    assert status == 404 and body[0]["errorCode"] == "NOT_FOUND"
    status, head, body = rest(sandbox, "PUT", "/services/data/v65.0/sobjects/Lead/00Q000000000001", {})
    assert status == 405 and head["content-type"].startswith("application/json"), body
    assert body[0]["errorCode"] == "METHOD_NOT_ALLOWED"
    assert body[0]["message"].startswith("HTTP Method 'PUT' not allowed. Allowed are "), body
    assert "PATCH" in head["allow"] and "GET" in head["allow"]


def test_bulk_query_jobs_through_simple_salesforces_bulk2(sf59):
    for i in range(7):
        sf59.Contact.create({"LastName": f"Bulk{i}", "Email": f"bulk{i}@sf.example", "Title": 'Says "hi", twice'})
    expected = sf59.query("SELECT COUNT() FROM Contact")["totalSize"]
    pages = list(sf59.bulk2.Contact.query("SELECT Id, LastName, Title, Account.Name FROM Contact", max_records=3, wait=0))
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert len(rows) == expected and len(pages) == (expected + 2) // 3, (len(rows), len(pages))
    assert list(rows[0]) == ["Id", "LastName", "Title", "Account.Name"]
    bulk = [r for r in rows if r["LastName"].startswith("Bulk")]
    assert len(bulk) == 7 and bulk[0]["Title"] == 'Says "hi", twice'
    # queryAll includes deleted records.
    gone = sf59.Contact.create({"LastName": "BulkGone"})["id"]
    sf59.Contact.delete(gone)
    live = [r for p in sf59.bulk2.Contact.query("SELECT Id FROM Contact", wait=0) for r in csv.DictReader(io.StringIO(p))]
    every = [r for p in sf59.bulk2.Contact.query_all("SELECT Id FROM Contact", wait=0) for r in csv.DictReader(io.StringIO(p))]
    assert len(every) == len(live) + 1


def test_bulk_query_jobs_over_http(sandbox):
    base = "/services/data/v59.0/jobs/query"
    status, _, job = rest(sandbox, "POST", base, {"operation": "query", "query": "SELECT Id, Name FROM Lead"})
    assert status == 200 and job["state"] == "UploadComplete" and job["object"] == "Lead", job
    assert job["apiVersion"] == 59.0 and job["contentType"] == "CSV" and job["columnDelimiter"] == "COMMA"
    status, _, early = rest(sandbox, "GET", f"{base}/{job['id']}/results")
    assert status == 412 and early[0]["errorCode"] == "JOB_NOT_COMPLETE"
    status, _, done = rest(sandbox, "GET", f"{base}/{job['id']}")
    assert done["state"] == "JobComplete" and done["jobType"] == "V2Query"
    total = done["numberRecordsProcessed"]
    locator, seen = None, 0
    while True:
        query = "?maxRecords=2" + (f"&locator={locator}" if locator else "")
        status, head, text = rest(sandbox, "GET", f"{base}/{job['id']}/results{query}")
        assert status == 200 and head["content-type"].startswith("text/csv")
        assert text.splitlines()[0] == '"Id","Name"'
        assert int(head["Sforce-NumberOfRecords"]) == len(text.splitlines()) - 1
        seen += int(head["Sforce-NumberOfRecords"])
        locator = head["Sforce-Locator"]
        if locator == "null":
            break
    assert seen == total
    status, _, listed = rest(sandbox, "GET", base)
    assert any(j["id"] == job["id"] for j in listed["records"]) and listed["done"] is True
    status, _, _ = rest(sandbox, "DELETE", f"{base}/{job['id']}")
    assert status == 204
    status, _, _ = rest(sandbox, "GET", f"{base}/{job['id']}")
    assert status == 404
    # Abort a job that has not run yet; a running one cannot be deleted.
    _, _, second = rest(sandbox, "POST", base, {"operation": "query", "query": "SELECT Id FROM Account", "columnDelimiter": "PIPE"})
    status, _, _ = rest(sandbox, "DELETE", f"{base}/{second['id']}")
    assert status == 400
    status, _, aborted = rest(sandbox, "PATCH", f"{base}/{second['id']}", {"state": "Aborted"})
    assert status == 200 and aborted["state"] == "Aborted"
    # What Bulk queries refuse, refused when the job is created.
    for soql, code in (("SELECT COUNT() FROM Lead", "API_ERROR"), ("SELECT Id, Address FROM Lead", "API_ERROR"),
                       ("SELECT Nope__c FROM Lead", "INVALID_FIELD"), ("SELECT Id FROM Nope__c", "INVALID_TYPE")):
        status, _, body = rest(sandbox, "POST", base, {"operation": "query", "query": soql})
        assert status == 400 and body[0]["errorCode"] == code, (soql, body)


def test_a_lookup_refuses_an_id_of_another_object(sf59, sandbox):
    lead = sf59.Lead.create({"LastName": "NotAContact", "Company": "L Co"})["id"]
    status, _, body = rest(sandbox, "POST", "/services/data/v59.0/sobjects/Case",
                           {"Subject": "Wrong lookup", "ContactId": lead})
    assert status == 400 and body[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION", body
    assert "id value of incorrect type" in body[0]["message"] and body[0]["fields"] == ["ContactId"]


def test_an_admin_undeletes_a_record_from_the_recycle_bin(sf59, sandbox):
    lead = sf59.Lead.create({"LastName": "Binned", "Company": "Bin Co"})["id"]
    sf59.Lead.delete(lead)
    assert sf59.query(f"SELECT Id FROM Lead WHERE Id = '{lead}'")["totalSize"] == 0
    binned = sf59.query_all(f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{lead}'", include_deleted=True)
    assert binned["records"][0]["IsDeleted"] is True
    sandbox.control("POST", f"/objects/Lead/{lead}/undelete", crm="salesforce")
    back = sf59.query(f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{lead}'")["records"]
    assert len(back) == 1 and back[0]["IsDeleted"] is False
    with pytest.raises(Exception):
        sandbox.control("POST", f"/objects/Lead/{lead}/undelete", crm="salesforce")


def valid_for(entry, countries):
    """The country codes a dependent picklist entry's validFor bitmap names."""
    import base64
    bits = base64.b64decode(entry["validFor"])
    return [c["value"] for i, c in enumerate(countries) if bits[i // 8] & (0x80 >> (i % 8))]


def test_state_and_country_picklists_as_the_org_customized_them(sf59, sandbox):
    sandbox.control("PUT", "/settings", {
        "state_country_picklists": True,
        "places": {"countries": [{"code": "FR", "label": "France", "active": False},
                                 {"code": "XK", "label": "Kosovo"}],
                   "states": [{"country": "GB", "code": "SCT", "label": "Scotland"},
                              {"country": "US", "code": "CA", "label": "Golden State"}]},
    }, crm="salesforce")
    try:
        contact = fields(sf59, "Contact")
        countries = contact["MailingCountryCode"]["picklistValues"]
        codes = [c["value"] for c in countries]
        assert "XK" in codes and "FR" not in codes and "US" in codes
        assert contact["MailingCountryCode"]["restrictedPicklist"] is True
        states = contact["MailingStateCode"]
        assert states["dependentPicklist"] is True and states["controllerName"] == "MailingCountryCode"
        scotland = next(s for s in states["picklistValues"] if s["value"] == "SCT")
        assert scotland["label"] == "Scotland" and valid_for(scotland, countries) == ["GB"]
        assert [s["label"] for s in states["picklistValues"] if valid_for(s, countries) == ["US"] and s["value"] == "CA"] == ["Golden State"]

        cid = sf59.Contact.create({"LastName": "Places", "MailingCountry": "United Kingdom", "MailingState": "Scotland"})["id"]
        row = sf59.Contact.get(cid)
        assert (row["MailingCountryCode"], row["MailingStateCode"]) == ("GB", "SCT")
        sf59.Contact.update(cid, {"MailingCountryCode": "US", "MailingStateCode": "CA", "MailingCountry": None, "MailingState": None})
        row = sf59.Contact.get(cid)
        assert (row["MailingCountry"], row["MailingState"]) == ("United States", "Golden State")
        for bad in ({"MailingCountry": "France"}, {"MailingCountryCode": "FR"},
                    {"MailingCountryCode": "US", "MailingStateCode": "ZZ"}):
            with pytest.raises(SalesforceMalformedRequest) as e:
                sf59.Contact.create({"LastName": "Refused", **bad})
            assert e.value.content[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION", bad
    finally:
        sandbox.control("PUT", "/settings", {"state_country_picklists": False}, crm="salesforce")
