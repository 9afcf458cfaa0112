"""Every HubSpot sandbox endpoint, success and error statuses alike, answers with bodies
valid against HubSpot's published OpenAPI specs (sandbox/specs/hubspot/), checked with
an OpenAPI schema validator rather than hand-written shape checks."""

import json
import urllib.error
import urllib.request
from functools import lru_cache

import pytest
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator

from conftest import HUMAN_TOKEN, INTEGRATION_TOKEN, ROOT

SPECS = ROOT / "sandbox" / "specs" / "hubspot"


@lru_cache(maxsize=None)
def spec(name):
    return json.loads((SPECS / f"{name}.json").read_text())


def response_schema(spec_name, method, template, status):
    s = spec(spec_name)
    responses = s["paths"][template][method]["responses"]
    resp = responses.get(str(status)) or responses.get("default")
    assert resp is not None, f"{method} {template} documents no {status}"
    while "$ref" in resp:
        resp = s["components"]["responses"][resp["$ref"].split("/")[-1]]
    content = resp.get("content")
    if not content:
        return None
    media = content.get("application/json") or content.get("*/*") or next(iter(content.values()))
    return media["schema"]


def validate(spec_name, method, template, status, body):
    schema = response_schema(spec_name, method, template, status)
    if schema is None:
        assert body in (None, b"", ""), f"{method} {template} {status} documents no body"
        return
    # The schema's $refs resolve within a document that holds the spec's components.
    document = {**schema, "components": spec(spec_name)["components"]}
    OAS30Validator(document).validate(body)


def call(url, method, path, body=None, token=INTEGRATION_TOKEN):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=data, method=method.upper(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    return status, (json.loads(text) if text else None)


def check(url, spec_name, method, template, path, body=None, expect=None, token=INTEGRATION_TOKEN):
    status, reply = call(url, method, path, body, token)
    if expect is not None:
        assert status == expect, f"{method} {path}: {status} {reply}"
    validate(spec_name, method, template, status, reply)
    return reply


OBJ = "/crm/v3/objects/contacts"


def test_the_validator_rejects_a_body_missing_a_required_property():
    good = {"id": "1", "properties": {}, "createdAt": "2024-01-17T19:55:04.281Z",
            "updatedAt": "2024-01-17T19:55:04.281Z", "archived": False}
    validate("crm-contacts-v3", "get", "/crm/v3/objects/contacts/{contactId}", 200, good)
    bad = {k: v for k, v in good.items() if k != "createdAt"}
    with pytest.raises(ValidationError):
        validate("crm-contacts-v3", "get", "/crm/v3/objects/contacts/{contactId}", 200, bad)
    with pytest.raises(ValidationError):
        validate("crm-contacts-v3", "get", "/crm/v3/objects/contacts/{contactId}", 404, {"message": "no category"})


def test_contacts_endpoints_and_their_errors(sandbox):
    u, s = sandbox.url, "crm-contacts-v3"
    one = f"{OBJ}/{{contactId}}"
    check(u, s, "get", OBJ, f"{OBJ}?limit=5", expect=200)
    a = check(u, s, "post", OBJ, OBJ, {"properties": {"email": "c1@conf.example", "firstname": "C"}}, expect=201)
    b = check(u, s, "post", OBJ, OBJ, {"properties": {"email": "c2@conf.example"}}, expect=201)
    check(u, s, "get", one, f"{OBJ}/{a['id']}?propertiesWithHistory=firstname", expect=200)
    check(u, s, "patch", one, f"{OBJ}/{a['id']}", {"properties": {"lastname": "Conf"}}, expect=200)
    check(u, s, "post", f"{OBJ}/batch/read", f"{OBJ}/batch/read", {"inputs": [{"id": a["id"]}], "properties": ["email"]}, expect=200)
    check(u, s, "post", f"{OBJ}/batch/read", f"{OBJ}/batch/read", {"inputs": [{"id": a["id"]}, {"id": "1"}]}, expect=207)
    check(u, s, "post", f"{OBJ}/batch/create", f"{OBJ}/batch/create", {"inputs": [{"properties": {"email": "c3@conf.example"}}]}, expect=201)
    check(u, s, "post", f"{OBJ}/batch/create", f"{OBJ}/batch/create",
          {"inputs": [{"properties": {"email": "c4@conf.example"}, "objectWriteTraceId": "x"},
                      {"properties": {"email": "c1@conf.example"}, "objectWriteTraceId": "y"}]}, expect=207)
    check(u, s, "post", f"{OBJ}/batch/update", f"{OBJ}/batch/update", {"inputs": [{"id": a["id"], "properties": {"phone": "1"}}]}, expect=200)
    check(u, s, "post", f"{OBJ}/batch/upsert", f"{OBJ}/batch/upsert",
          {"inputs": [{"id": "c5@conf.example", "idProperty": "email", "properties": {"firstname": "U"}}]}, expect=200)
    check(u, s, "post", f"{OBJ}/search", f"{OBJ}/search",
          {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@conf.example"}]}], "limit": 2}, expect=200)
    check(u, s, "post", f"{OBJ}/merge", f"{OBJ}/merge", {"primaryObjectId": a["id"], "objectIdToMerge": b["id"]}, expect=200)
    check(u, s, "post", f"{OBJ}/batch/archive", f"{OBJ}/batch/archive", {"inputs": [{"id": "1"}]}, expect=204)
    check(u, s, "delete", one, f"{OBJ}/1", expect=204)
    # Errors.
    check(u, s, "get", OBJ, OBJ, token=None, expect=401)
    check(u, s, "get", one, f"{OBJ}/1", expect=404)
    check(u, s, "post", OBJ, OBJ, {"properties": {"email": "c3@conf.example"}}, expect=409)
    check(u, s, "post", OBJ, OBJ, {"properties": {"nope": "x"}}, expect=400)
    check(u, s, "post", f"{OBJ}/batch/read", f"{OBJ}/batch/read", {"inputs": [{"id": str(i)} for i in range(101)]}, expect=400)
    check(u, s, "post", f"{OBJ}/search", f"{OBJ}/search", {"after": "10000"}, expect=400)


def test_rate_limit_429_conforms(strict_sandbox):
    u = strict_sandbox.url
    statuses = [call(u, "get", OBJ)[0] for _ in range(4)]
    assert statuses[-1] == 429
    check(u, "crm-contacts-v3", "get", OBJ, OBJ, expect=429)


@pytest.mark.parametrize("name,spec_name,template", [
    ("companies", "crm-companies-v3", "/crm/v3/objects/companies"),
    ("deals", "crm-deals-v3", "/crm/v3/objects/0-3"),
    ("tickets", "crm-tickets-v3", "/crm/v3/objects/tickets"),
    ("calls", "crm-calls-v3", "/crm/v3/objects/calls"),
    ("emails", "crm-emails-v3", "/crm/v3/objects/emails"),
    ("meetings", "crm-meetings-v3", "/crm/v3/objects/meetings"),
    ("notes", "crm-notes-v3", "/crm/v3/objects/notes"),
    ("tasks", "crm-tasks-v3", "/crm/v3/objects/tasks"),
    ("p_machines", "crm-objects-v3", "/crm/v3/objects/{objectType}"),
])
def test_every_object_type_conforms(sandbox, name, spec_name, template):
    u = sandbox.url
    path = f"/crm/v3/objects/{name}"
    props = {"p_machines": {"serial_number": f"SN-{name}"}, "companies": {"name": "Conf Co"}}.get(name, {})
    created = check(u, spec_name, "post", template, path, {"properties": props}, expect=201)
    check(u, spec_name, "get", template, f"{path}?limit=3", expect=200)
    one = next(p for p in spec(spec_name)["paths"] if p.startswith(template + "/{") and p.count("/") == template.count("/") + 1)
    check(u, spec_name, "get", one, f"{path}/{created['id']}", expect=200)
    check(u, spec_name, "post", template + "/search", f"{path}/search", {"limit": 1}, expect=200)


def test_associations_properties_owners_and_pipelines_conform(sandbox):
    u = sandbox.url
    contact = check(u, "crm-contacts-v3", "post", OBJ, OBJ, {"properties": {"email": "assoc@conf.example"}}, expect=201)
    company = check(u, "crm-companies-v3", "post", "/crm/v3/objects/companies", "/crm/v3/objects/companies",
                    {"properties": {"name": "Assoc Co"}}, expect=201)
    a, s = "crm-associations-v4", None
    cid, coid = contact["id"], company["id"]
    check(u, a, "put", "/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/{toObjectType}/{toObjectId}",
          f"/crm/v4/objects/contacts/{cid}/associations/default/companies/{coid}", expect=200)
    check(u, a, "put", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/{toObjectId}",
          f"/crm/v4/objects/contacts/{cid}/associations/companies/{coid}",
          [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}], expect=201)
    check(u, a, "get", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}",
          f"/crm/v4/objects/contacts/{cid}/associations/companies", expect=200)
    base = "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch"
    check(u, a, "post", base + "/associate/default", "/crm/v4/associations/contacts/companies/batch/associate/default",
          {"inputs": [{"from": {"id": cid}, "to": {"id": coid}}]}, expect=200)
    check(u, a, "post", base + "/create", "/crm/v4/associations/contacts/companies/batch/create",
          {"inputs": [{"from": {"id": cid}, "to": {"id": coid}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]}, expect=201)
    check(u, a, "post", base + "/read", "/crm/v4/associations/contacts/companies/batch/read", {"inputs": [{"id": cid}]}, expect=200)
    check(u, a, "post", base + "/archive", "/crm/v4/associations/contacts/companies/batch/archive",
          {"inputs": [{"from": {"id": cid}, "to": [{"id": coid}]}]}, expect=204)
    check(u, a, "delete", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/{toObjectId}",
          f"/crm/v4/objects/contacts/{cid}/associations/companies/{coid}", expect=204)

    p = "crm-properties-v3"
    check(u, p, "get", "/crm/v3/properties/{objectType}", "/crm/v3/properties/contacts", expect=200)
    check(u, p, "get", "/crm/v3/properties/{objectType}/{propertyName}", "/crm/v3/properties/contacts/email", expect=200)
    check(u, p, "get", "/crm/v3/properties/{objectType}/{propertyName}", "/crm/v3/properties/contacts/nope", expect=404)
    check(u, p, "post", "/crm/v3/properties/{objectType}", "/crm/v3/properties/contacts",
          {"name": "crmsync_conf", "label": "crmsync conf", "type": "string", "fieldType": "text", "groupName": "contactinformation"}, expect=201)

    o = "crm-owners-v3"
    owners = check(u, o, "get", "/crm/v3/owners", "/crm/v3/owners?limit=2", expect=200)
    check(u, o, "get", "/crm/v3/owners/{ownerId}", f"/crm/v3/owners/{owners['results'][0]['id']}", expect=200)

    pl = "crm-pipelines-v3"
    check(u, pl, "get", "/crm/v3/pipelines/{objectType}", "/crm/v3/pipelines/deals", expect=200)
    check(u, pl, "get", "/crm/v3/pipelines/{objectType}/{pipelineId}", "/crm/v3/pipelines/tickets/0", expect=200)
    check(u, pl, "get", "/crm/v3/pipelines/{objectType}/{pipelineId}", "/crm/v3/pipelines/deals/enterprise", expect=200)

    sc = "crm-schemas-v3"
    for prefix in ("/crm/v3/schemas", "/crm-object-schemas/v3/schemas"):
        listed = check(u, sc, "get", "/crm-object-schemas/v3/schemas", prefix, expect=200)
        assert [x["objectTypeId"] for x in listed["results"]] == ["2-1001", "2-1002"]
        check(u, sc, "get", "/crm-object-schemas/v3/schemas/{objectType}", f"{prefix}/p_machines", expect=200)
        check(u, sc, "get", "/crm-object-schemas/v3/schemas/{objectType}", f"{prefix}/contacts", expect=404)


def test_lists_and_oauth_errors_conform(sandbox):
    u, s = sandbox.url, "crm-lists-v3"
    created = check(u, s, "post", "/crm/v3/lists", "/crm/v3/lists",
                    {"name": "Conformance", "objectTypeId": "0-1", "processingType": "MANUAL"}, expect=200)
    list_id = created["list"]["listId"]
    contact = check(u, "crm-contacts-v3", "post", OBJ, OBJ, {"properties": {"email": "member@conf.example"}}, expect=201)
    check(u, s, "put", "/crm/v3/lists/{listId}/memberships/add", f"/crm/v3/lists/{list_id}/memberships/add",
          [contact["id"]], expect=200)
    check(u, s, "get", "/crm/v3/lists/{listId}", f"/crm/v3/lists/{list_id}", expect=200)
    check(u, s, "get", "/crm/v3/lists/object-type-id/{objectTypeId}/name/{listName}",
          "/crm/v3/lists/object-type-id/0-1/name/Conformance", expect=200)
    check(u, s, "get", "/crm/v3/lists/{listId}/memberships", f"/crm/v3/lists/{list_id}/memberships?limit=10", expect=200)
    check(u, s, "get", "/crm/v3/lists/records/{objectTypeId}/{recordId}/memberships",
          f"/crm/v3/lists/records/0-1/{contact['id']}/memberships", expect=200)
    check(u, s, "put", "/crm/v3/lists/{listId}/memberships/remove", f"/crm/v3/lists/{list_id}/memberships/remove",
          [contact["id"]], expect=200)
    check(u, s, "get", "/crm/v3/lists/{listId}", "/crm/v3/lists/987654", expect=404)
