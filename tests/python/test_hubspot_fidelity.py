"""What real HubSpot clients meet on api.hubapi.com and the sandbox must answer the
same way: object types by singular name and type id, the v3 `associations=` block,
line items and products, OAuth token metadata and the dated token paths, JSON errors
for unknown routes and methods, and every operation of the contacts, companies, deals
and associations specs answering a documented shape."""

import urllib.error

import hubspot
import pytest

from conftest import INTEGRATION_TOKEN, http
from test_hubspot_conformance import OBJ, call, spec, validate


def req(url, method, path, body=None, token=INTEGRATION_TOKEN, form=None):
    return http(url, method, path, body, token, form)


def create(url, object_type, properties):
    status, _, body = req(url, "POST", f"/crm/v3/objects/{object_type}", {"properties": properties})
    assert status == 201, body
    return body["id"]


def test_object_types_go_by_singular_name_and_type_id(sandbox):
    u = sandbox.url
    cid = create(u, "contact", {"email": "singular@fid.example"})
    for path in (f"/crm/v3/objects/contact/{cid}", f"/crm/v3/objects/0-1/{cid}", f"/crm/v3/objects/Contacts/{cid}"):
        status, _, body = req(u, "GET", path)
        assert status == 200 and body["id"] == cid, (path, body)
    for object_type in ("company", "deal", "ticket", "0-2", "0-3", "0-5", "line_item", "product", "p_machines", "2-1001"):
        status, _, body = req(u, "GET", f"/crm/v3/properties/{object_type}")
        assert status == 200 and body["results"], (object_type, body)
        status, _, body = req(u, "POST", f"/crm/v3/objects/{object_type}/search", {"limit": 1})
        assert status == 200, (object_type, body)
    status, _, body = req(u, "POST", "/crm/v3/objects/contact/batch/read", {"inputs": [{"id": cid}]})
    assert status == 200 and body["results"][0]["id"] == cid
    status, _, body = req(u, "GET", "/crm/v3/objects/widget")
    assert status == 400 and body["message"] == "Unable to infer object type from: widget", body


def test_v3_reads_carry_the_associations_asked_for(sandbox):
    u = sandbox.url
    cid = create(u, "contacts", {"email": "assoc3@fid.example"})
    co = create(u, "companies", {"name": "Assoc3 Co"})
    deal = create(u, "deals", {"dealname": "Assoc3 deal"})
    item = create(u, "line_items", {"name": "Seat", "price": "20000", "quantity": "3"})
    lonely = create(u, "contacts", {"email": "lonely@fid.example"})
    # The primary company link with its unlabeled one: both show, each by its name.
    status, _, _ = req(u, "PUT", f"/crm/v4/objects/contacts/{cid}/associations/companies/{co}",
                       [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1},
                        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}])
    assert status == 201
    status, _, _ = req(u, "PUT", f"/crm/v4/objects/deals/{deal}/associations/line_items/{item}",
                       [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 19}])
    assert status == 201

    status, _, body = req(u, "GET", f"/crm/v3/objects/contacts/{cid}?associations=companies,deals")
    assert status == 200
    assert body["associations"] == {"companies": {"results": [
        {"id": co, "type": "contact_to_company"},
        {"id": co, "type": "contact_to_company_unlabeled"},
    ]}}, body
    status, _, body = req(u, "GET", f"/crm/v3/objects/deals/{deal}?associations=line_items")
    assert body["associations"] == {"line items": {"results": [{"id": item, "type": "deal_to_line_item"}]}}, body
    # Nothing linked: no key at all.
    status, _, body = req(u, "GET", f"/crm/v3/objects/contacts/{lonely}?associations=companies")
    assert status == 200 and "associations" not in body
    # The list endpoint carries them per record.
    status, _, body = req(u, "GET", f"/crm/v3/objects/companies?limit=100&associations=contacts")
    mine = next(r for r in body["results"] if r["id"] == co)
    assert {"id": cid, "type": "company_to_contact"} in mine["associations"]["contacts"]["results"], mine
    status, _, body = req(u, "GET", f"/crm/v3/objects/contacts/{cid}?associations=nonsense")
    assert status == 400 and "Unable to infer object type from: nonsense" in body["message"]


def test_line_items_and_products_exist_in_every_portal(sandbox):
    u = sandbox.url
    product = create(u, "products", {"name": "Implementation", "price": "6000.00", "hs_sku": "IMP-1"})
    status, _, body = req(u, "GET", f"/crm/v3/objects/products/{product}")
    assert status == 200
    assert {"name", "price", "description"} <= set(body["properties"]) | {"description"}
    item = create(u, "line_items", {"name": "Implementation", "hs_product_id": product, "price": "6000", "quantity": "2"})
    status, _, body = req(u, "GET", f"/crm/v3/objects/line_items/{item}?properties=amount,hs_product_id")
    assert body["properties"]["amount"] == "12000.00", body
    assert body["properties"]["hs_product_id"] == product
    deal = create(u, "deals", {"dealname": "With items"})
    status, _, _ = req(u, "PUT", f"/crm/v4/objects/line_items/{item}/associations/default/deals/{deal}")
    assert status == 200
    status, _, body = req(u, "GET", f"/crm/v4/objects/deals/{deal}/associations/line_items")
    assert body["results"][0]["toObjectId"] in (item, int(item))
    assert body["results"][0]["associationTypes"][0]["typeId"] == 19, body
    status, _, body = req(u, "GET", "/crm/v3/properties/line_items/amount")
    assert status == 200 and body["modificationMetadata"]["readOnlyValue"] is True, body


def test_oauth_token_metadata_and_the_dated_token_paths(sandbox):
    u = sandbox.url
    form = {"grant_type": "refresh_token", "client_id": "hubspot-client-id",
            "client_secret": "hubspot-client-secret", "refresh_token": "hubspot-refresh-token"}
    tokens = []
    for path in ("/oauth/v1/token", "/oauth/v3/token", "/oauth/2026-03/token", "/oauth/2026-09/token"):
        status, _, body = req(u, "POST", path, token=None, form=form)
        assert status == 200, (path, body)
        assert body["token_type"] == "bearer" and body["expires_in"] == 1800 and body["token_use"] == "access_token"
        assert body["hub_id"] == 62515 and "oauth" in body["scopes"]
        tokens.append(body["access_token"])
    status, _, info = req(u, "GET", f"/oauth/v1/access-tokens/{tokens[-1]}", token=None)
    assert status == 200
    assert {"token", "hub_id", "app_id", "user_id", "scopes", "expires_in", "token_type"} <= set(info)
    assert info["token"] == tokens[-1] and info["token_type"] == "access" and 0 < info["expires_in"] <= 1800
    # The issued token works against the API.
    status, _, _ = req(u, "GET", "/crm/v3/objects/contacts?limit=1", token=tokens[-1])
    assert status == 200
    status, _, body = req(u, "GET", f"/oauth/v1/access-tokens/{INTEGRATION_TOKEN}", token=None)
    assert status == 400 and body["message"] == "The access token must have the correct format"
    status, _, body = req(u, "GET", "/oauth/v1/access-tokens/CInope", token=None)
    assert status == 404 and body["category"] and body["correlationId"]
    status, _, body = req(u, "POST", "/oauth/2026-03/token", token=None, form={**form, "refresh_token": "stale"})
    assert status == 400 and body["status"] == "BAD_REFRESH_TOKEN"


def test_unknown_routes_and_methods_answer_hubspots_json_error(sandbox):
    u = sandbox.url
    status, head, body = req(u, "GET", "/crm/v3/nothing/here")
    assert status == 404 and head["content-type"].startswith("application/json"), (status, body)
    assert {"status", "message", "correlationId", "category"} <= set(body)
    status, head, body = req(u, "PUT", f"{OBJ}/1")
    assert status == 405 and head["content-type"].startswith("application/json"), (status, body)
    assert {"message", "correlationId", "category"} <= set(body)
    assert "PATCH" in head["allow"], head


def test_custom_object_schemas_read_through_hubspots_client(sandbox):
    client = hubspot.Client.create(access_token=INTEGRATION_TOKEN, host=sandbox.url)
    schemas = client.crm.schemas.core_api.get_all()
    by_id = {s.object_type_id: s for s in schemas.results}
    assert set(by_id) == {"2-1001", "2-1002"}
    machines = by_id["2-1001"]
    assert machines.name == "machines" or machines.fully_qualified_name.endswith("machines")
    assert any(p.name == "serial_number" for p in machines.properties)
    one = client.crm.schemas.core_api.get_by_id(object_type="p_machines")
    assert one.object_type_id == "2-1001"


# Every operation of these specs, served or not, answers a status the spec documents
# (or its `default` error) with a body valid against it.
SPECS = ("crm-contacts-v3", "crm-companies-v3", "crm-deals-v3", "crm-associations-v4")


def operations(spec_name):
    for template, methods in spec(spec_name)["paths"].items():
        for method in methods:
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, template


def fill(template, ids):
    path = template
    for name, value in ids.items():
        path = path.replace("{" + name + "}", str(value))
    assert "{" not in path, f"no value for a parameter of {template}"
    return path


def body_for(method, template, ids):
    a, b = ids["fromObjectId"], ids["toObjectId"]
    if template.endswith("/batch/read"):
        return {"inputs": [{"id": a}]}
    if template.endswith("/batch/archive") and "/associations/" in template:
        return {"inputs": [{"from": {"id": a}, "to": [{"id": b}]}]}
    if template.endswith("/batch/archive"):
        return {"inputs": [{"id": "999999"}]}
    if template.endswith("/batch/associate/default"):
        return {"inputs": [{"from": {"id": a}, "to": {"id": b}}]}
    if template.endswith("/batch/create") and "/associations/" in template:
        return {"inputs": [{"from": {"id": a}, "to": {"id": b},
                            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]}
    if template.endswith("/batch/labels/archive"):
        return {"inputs": [{"from": {"id": a}, "to": {"id": b},
                            "types": [{"associationCategory": "USER_DEFINED", "associationTypeId": 9999}]}]}
    if template.endswith("/batch/create"):
        return {"inputs": [{"properties": {}}]}
    if template.endswith("/batch/update"):
        return {"inputs": [{"id": ids["own"], "properties": {}}]}
    if template.endswith("/batch/upsert"):
        return {"inputs": [{"id": "upsert@fid.example", "idProperty": "email", "properties": {}}]}
    if template.endswith("/merge"):
        return {"primaryObjectId": ids["own"], "objectIdToMerge": ids["merge"]}
    if template.endswith("/gdpr-delete"):
        return {"objectId": ids["own"]}
    if template.endswith("/search"):
        return {"limit": 1}
    if method == "put" and template.endswith("/{toObjectId}") and "/default/" not in template:
        return [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]
    if method in ("post", "patch"):
        return {"properties": {}}
    return None


@pytest.mark.parametrize("spec_name", SPECS)
def test_every_operation_answers_a_documented_shape(sandbox, spec_name):
    u = sandbox.url
    object_type = {"crm-contacts-v3": "contacts", "crm-companies-v3": "companies",
                   "crm-deals-v3": "deals", "crm-associations-v4": "contacts"}[spec_name]
    seen = []
    for method, template in operations(spec_name):
        own = create(u, object_type, {})
        ids = {"contactId": own, "companyId": own, "dealId": own, "objectId": own, "fromObjectId": own,
               "objectType": "contacts", "fromObjectType": "contacts", "toObjectType": "companies",
               "toObjectId": create(u, "companies", {}), "userId": 1, "own": own,
               "merge": create(u, object_type, {})}
        path = fill(template, ids)
        status, reply = call(u, method, path, body_for(method, template, ids))
        assert status < 500, (method, path, status, reply)
        validate(spec_name, method, template, status, reply)
        seen.append((method, template, status))
    assert len(seen) == len(list(operations(spec_name)))
    print(spec_name, seen)


def test_a_person_restores_an_archived_record_unless_its_email_was_taken(sandbox):
    u = sandbox.url
    cid = create(u, "contacts", {"email": "bin@fid.example"})
    sandbox.control("DELETE", f"/objects/contacts/{cid}")
    status, _, _ = req(u, "GET", f"/crm/v3/objects/contacts/{cid}")
    assert status == 404
    sandbox.control("POST", f"/objects/contacts/{cid}/restore")
    status, _, body = req(u, "GET", f"/crm/v3/objects/contacts/{cid}?properties=email")
    assert status == 200 and body["properties"]["email"] == "bin@fid.example"
    sandbox.control("DELETE", f"/objects/contacts/{cid}")
    create(u, "contacts", {"email": "bin@fid.example"})
    with pytest.raises(urllib.error.HTTPError) as e:
        sandbox.control("POST", f"/objects/contacts/{cid}/restore")
    assert e.value.code == 409
