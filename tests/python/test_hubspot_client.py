"""HubSpot's own Python client (hubspot-api-client) against the sandbox: if the sandbox
spoke a dialect of its own, HubSpot's generated client would fail to parse it."""

import hubspot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException

from conftest import INTEGRATION_TOKEN


def client(sandbox):
    return hubspot.Client.create(access_token=INTEGRATION_TOKEN, host=sandbox.url)


def test_create_and_get_a_contact(sandbox):
    api = client(sandbox).crm.contacts
    created = api.basic_api.create(
        simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
            properties={"email": "grace@py.example", "firstname": "Grace", "lastname": "Hopper"}
        )
    )
    assert created.id
    got = api.basic_api.get_by_id(contact_id=created.id, properties=["email", "firstname", "lastname"])
    assert got.properties["firstname"] == "Grace"
    assert got.archived is False
    assert got.created_at is not None


def test_duplicate_email_raises_409(sandbox):
    api = client(sandbox).crm.contacts
    inp = SimplePublicObjectInputForCreate(properties={"email": "dupe@py.example"})
    api.basic_api.create(simple_public_object_input_for_create=inp)
    try:
        api.basic_api.create(simple_public_object_input_for_create=inp)
    except ApiException as e:
        assert e.status == 409
        assert "Contact already exists" in e.body
    else:
        raise AssertionError("expected a 409")


def test_batch_create_and_update(sandbox):
    api = client(sandbox).crm.contacts
    inputs = [
        SimplePublicObjectInputForCreate(properties={"email": f"batch{i}@py.example", "firstname": f"B{i}"})
        for i in range(3)
    ]
    created = api.batch_api.create(
        batch_input_simple_public_object_batch_input_for_create=BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)
    )
    assert created.status == "COMPLETE"
    ids = sorted(r.id for r in created.results)
    assert len(ids) == 3
    updated = api.batch_api.update(
        batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=i, properties={"jobtitle": "Engineer"}) for i in ids]
        )
    )
    assert sorted(r.id for r in updated.results) == ids
    assert all(r.properties["jobtitle"] == "Engineer" for r in updated.results)


def test_search_pages_through_every_match(sandbox):
    api = client(sandbox).crm.contacts
    for i in range(7):
        api.basic_api.create(
            simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
                properties={"email": f"page{i}@search.example", "lastname": "Paged"}
            )
        )
    request = dict(
        filter_groups=[FilterGroup(filters=[Filter(property_name="lastname", operator="EQ", value="Paged")])],
        sorts=["email"],
        properties=["email"],
        limit=3,
    )
    seen, after = [], None
    while True:
        page = api.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(after=after, **request))
        assert page.total == 7
        seen += [r.properties["email"] for r in page.results]
        if not page.paging or not page.paging.next:
            break
        after = page.paging.next.after
    assert seen == sorted(f"page{i}@search.example" for i in range(7))


def test_associations_v4(sandbox):
    c = client(sandbox)
    contact = c.crm.contacts.basic_api.create(
        simple_public_object_input_for_create=SimplePublicObjectInputForCreate(properties={"email": "assoc@py.example"})
    )
    from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyInput

    company = c.crm.companies.basic_api.create(
        simple_public_object_input_for_create=CompanyInput(properties={"name": "Py Co", "domain": "py.example"})
    )
    result = c.crm.associations.v4.basic_api.create_default(
        from_object_type="contacts", from_object_id=contact.id, to_object_type="companies", to_object_id=company.id
    )
    assert result.results[0].association_spec.association_type_id == 279
    page = c.crm.associations.v4.basic_api.get_page(object_type="companies", object_id=company.id, to_object_type="contacts")
    assert [str(r.to_object_id) for r in page.results] == [contact.id]
    assert page.results[0].association_types[0].type_id == 280
