//! Reading and validating configurations: defaults, the example, and every problem at
//! once with its key path.

use std::collections::HashMap;

use super::*;
use crate::domain::metadata::{FieldMeta, ObjectMeta};
use crate::domain::value::FieldType;

fn problems(text: &str) -> Vec<String> {
    match SyncConfig::from_toml(text) {
        Ok(_) => Vec::new(),
        Err(ConfigErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

#[test]
fn the_builtin_default_is_valid_and_mirrors_hubspots_defaults() {
    let c = SyncConfig::builtin();
    assert!(c.contacts.enabled && c.companies.enabled && c.deals.enabled);
    assert!(!c.tickets.enabled && !c.activities.enabled);
    assert_eq!(c.contacts.create_salesforce_as, PersonObject::Lead);
    let hs: Vec<&str> = c
        .contacts
        .fields
        .iter()
        .map(|f| f.hubspot.as_str())
        .collect();
    for p in [
        "email",
        "firstname",
        "lastname",
        "phone",
        "jobtitle",
        "company",
        "address",
        "city",
        "state",
        "zip",
        "country",
    ] {
        assert!(hs.contains(&p), "{p}");
    }
    let company = c.contacts.fields.iter().find(|f| f.hubspot == "company");
    assert_eq!(
        company.and_then(|f| f.salesforce.on("Lead")),
        Some("Company")
    );
    assert_eq!(company.and_then(|f| f.salesforce.on("Contact")), None);
    assert_eq!(
        c.deals.pipelines["default"].to_salesforce["closedwon"],
        "Closed Won"
    );
}

#[test]
fn the_example_is_valid_and_enables_every_pair_that_runs() {
    let c = match SyncConfig::from_toml(EXAMPLE_TOML) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let on: Vec<&str> = c
        .pairs()
        .into_iter()
        .filter(|p| p.enabled())
        .map(|p| p.name())
        .collect();
    assert_eq!(
        on,
        ["contacts", "companies", "deals", "tickets", "machines"]
    );
    assert!(c.activities.enabled && c.activities.types.len() == 5);
    assert!(!c.contacts.lifecycle_from_opportunities.enabled);
    assert_eq!(c.custom_objects[0].lookups.len(), 1);
    assert!(matches!(c.contacts.inclusion.hubspot, Inclusion::Filter(_)));
}

#[test]
fn activities_read_their_types_and_rules_and_need_contacts() {
    let c = SyncConfig::from_toml("[deals]\nenabled = false\n[activities]\nenabled = true\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.activities.types.len(), 5, "every type unless told");
    assert_eq!(c.activities.unsynced_contact, UnsyncedRelated::Wait);
    assert!(!c.activities.salesforce_tasks_to_hubspot);
    let c = SyncConfig::from_toml(
        "[deals]\nenabled = false\n[activities]\nenabled = true\ntypes = [\"call\"]\nunsynced_contact = \"skip\"\nsalesforce_tasks_to_hubspot = true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.activities.types, vec![ActivityType::Call]);
    assert_eq!(c.activities.unsynced_contact, UnsyncedRelated::Skip);
    assert!(c.activities.salesforce_tasks_to_hubspot);
    let p = problems(
        "[deals]\nenabled = false\n[contacts]\nenabled = false\n[activities]\nenabled = true\nunsynced_contact = \"later\"\n",
    );
    assert!(has(&p, "activities.enabled"), "{p:?}");
    assert!(has(&p, "activities.unsynced_contact"), "{p:?}");
}

#[test]
fn lifecycle_propagation_needs_the_lifecycle_rule() {
    let text = "[deals]\nenabled = false\n[contacts.lifecycle_from_opportunities]\npropagate_to_company = true\n";
    let p = problems(text);
    assert!(
        p.iter()
            .any(|e| e.starts_with("contacts.lifecycle_from_opportunities.propagate_to_company: ")),
        "{p:?}"
    );
    let text = "[deals]\nenabled = false\n[contacts.lifecycle_from_opportunities]\nenabled = true\npropagate_to_company = true\n[contacts.state_country]\nsalesforce_picklists = \"customized\"\n";
    assert_eq!(problems(text), Vec::<String>::new());
}

#[test]
fn a_custom_lookup_must_point_at_an_enabled_single_object_pair() {
    let text = r#"
[deals]
enabled = false
[[custom_objects]]
name = "machines"
hubspot_object = "p_machines"
salesforce_object = "Machine__c"
hubspot_id_field = "HubSpot_Machine_Id__c"
salesforce_id_property = "salesforcemachineid"
[[custom_objects.lookups]]
salesforce = "Contact__c"
pair = "contacts"
[[custom_objects.lookups]]
salesforce = "Deal__c"
pair = "deals"
[[custom_objects.lookups]]
salesforce = "Thing__c"
pair = "things"
"#;
    let p = problems(text);
    assert!(has(
        &p,
        "custom_objects[0].lookups[0].pair: a lookup points at one sObject"
    ));
    assert!(has(
        &p,
        "custom_objects[0].lookups[1].pair: pair \"deals\" is not enabled"
    ));
    assert!(has(
        &p,
        "custom_objects[0].lookups[2].pair: no object pair \"things\""
    ));
}

#[test]
fn an_empty_file_is_the_all_defaults_configuration_but_deals_need_a_stage_map() {
    let p = problems("");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(has(&p, "deals.fields: no field maps deal stages"));
    assert!(problems("[deals]\nenabled = false\n").is_empty());
}

#[test]
fn every_problem_is_reported_at_once_with_its_key_path() {
    let broken = r#"
colour = "blue"
[contacts]
create_salesforce_as = "account"
[[contacts.fields]]
hubspot = "phone"
salesforce = "Phone"
direction = "prefer_sf"
[[contacts.fields]]
hubspot = "email"
salesforce = "Email"
unless_blank = "yes"
[deals]
[[deals.fields]]
hubspot = "dealstage"
salesforce = "StageName"
transform = "deal_stage"
[deals.pipelines.default.to_salesforce]
appointmentscheduled = "Prospecting"
closedwon = "Closed Won"
[deals.pipelines.default.to_hubspot]
"Prospecting" = "appointmentscheduled"
"#;
    let p = problems(broken);
    assert!(has(&p, "colour: unknown key; expected one of"), "{p:#?}");
    assert!(
        has(
            &p,
            "contacts.create_salesforce_as: expected one of \"lead\" or \"contact\", got \"account\""
        ),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "contacts.fields[0].direction: expected one of \"prefer_salesforce\", \"always_salesforce\", \"prefer_hubspot\", \"always_hubspot\", \"two_way\" or \"none\", got \"prefer_sf\""
        ),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "contacts.fields[1].unless_blank: expected true or false, got a string"
        ),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "deals.pipelines.default.to_salesforce: HubSpot stage \"qualifiedtobuy\" of the default pipeline has no Salesforce stage"
        ),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "deals.pipelines.default.to_hubspot: Salesforce stage \"Closed Won\" has no HubSpot stage"
        ),
        "{p:#?}"
    );
}

#[test]
fn duplicates_misplaced_transforms_and_bad_custom_objects_are_refused() {
    let p = problems(
        r#"
[deals]
enabled = false
[companies]
[[companies.fields]]
hubspot = "name"
salesforce = "Name"
[[companies.fields]]
hubspot = "name"
salesforce = "Name"
[[companies.fields]]
hubspot = "stage"
salesforce = { lead = "Status" }
[[companies.fields]]
hubspot = "x"
salesforce = "X__c"
transform = "deal_stage"
[[custom_objects]]
name = "contacts"
hubspot_object = "Machines!"
salesforce_object = "Machine"
"#,
    );
    assert!(
        has(
            &p,
            "companies.fields[1].hubspot: \"name\" is already mapped by companies.fields[0]"
        ),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "companies.fields[2].salesforce: a field per Salesforce object"
        ),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "companies.fields[3].transform: transform \"deal_stage\" does not apply to companies"
        ),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "custom_objects[0].name: \"contacts\" is the name of a standard pair"
        ),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "custom_objects[0].hubspot_object: expected an object type id"
        ),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "custom_objects[0].salesforce_object: expected a custom object API name ending in __c"
        ),
        "{p:#?}"
    );
}

#[test]
fn a_value_map_that_cannot_be_read_backwards_needs_an_explicit_reverse() {
    let text = r#"
[deals]
enabled = false
[[companies.fields]]
hubspot = "tier"
salesforce = "Tier__c"
value_map = { gold = "Top", platinum = "Top" }
"#;
    assert!(has(
        &problems(text),
        "companies.fields[0].value_map: \"gold\" and \"platinum\" both map to \"Top\""
    ));
    let one_way = text.replace("value_map =", "direction = \"always_hubspot\"\nvalue_map =");
    assert!(problems(&one_way).is_empty());
}

#[test]
fn default_owners_are_read_and_bad_ids_named_by_key() {
    let ok = SyncConfig::from_toml(
        "[owners]\ndefault_salesforce_user = \"005000000000001AAA\"\ndefault_hubspot_owner = \"12345\"\n[deals]\nenabled = false\n",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        ok.owners.default_salesforce_user.as_deref(),
        Some("005000000000001AAA")
    );
    assert_eq!(ok.owners.default_hubspot_owner.as_deref(), Some("12345"));
    let bad = problems(
        "[owners]\ndefault_salesforce_user = \"00Q000000000001AAA\"\ndefault_hubspot_owner = \"rep@acme.com\"\n",
    );
    assert!(has(&bad, "owners.default_salesforce_user"), "{bad:?}");
    assert!(has(&bad, "owners.default_hubspot_owner"), "{bad:?}");
}

#[test]
fn a_setting_the_engine_does_not_implement_is_refused_not_ignored() {
    let narrow = Capabilities {
        supported: vec![Feature::Contacts, Feature::Companies],
    };
    let result = SyncConfig::from_toml_with(EXAMPLE_TOML, &narrow);
    let Err(ConfigErrors(errors)) = result else {
        panic!("the example enables deals, which this capability set lacks");
    };
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for path in ["deals.enabled", "custom_objects"] {
        assert!(paths.contains(&path), "{path} not refused: {paths:?}");
    }
    assert!(errors.iter().all(|e| e.message.contains("not implemented")));
}

#[test]
fn metadata_catches_missing_fields_and_incompatible_types() {
    let config = SyncConfig::builtin();
    let mut hubspot = HashMap::new();
    let mut contacts = ObjectMeta::new();
    for p in [
        "email",
        "firstname",
        "lastname",
        "jobtitle",
        "company",
        "address",
        "city",
        "state",
        "zip",
        "country",
        "hubspot_owner_id",
    ] {
        contacts.insert(p.into(), FieldMeta::of_type(FieldType::Text));
    }
    contacts.insert("phone".into(), FieldMeta::of_type(FieldType::Text));
    hubspot.insert("contacts".to_owned(), contacts);
    let mut lead = ObjectMeta::new();
    for f in [
        "Email",
        "FirstName",
        "LastName",
        "Title",
        "Company",
        "Street",
        "City",
        "State",
        "PostalCode",
        "Country",
        "OwnerId",
    ] {
        lead.insert(f.into(), FieldMeta::of_type(FieldType::Text));
    }
    lead.insert("Phone".into(), FieldMeta::of_type(FieldType::Number));
    let mut salesforce = HashMap::new();
    salesforce.insert("Lead".to_owned(), lead);
    let errors: Vec<String> = validate_against_metadata(&config, &hubspot, &salesforce)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        has(
            &errors,
            "contacts.fields[3]: a text property mapped to a number field (Lead.Phone)"
        ),
        "{errors:#?}"
    );
    assert!(
        errors.iter().all(|e| !e.contains("Lead has no field")),
        "{errors:#?}"
    );

    salesforce.get_mut("Lead").map(|l| l.remove("Title"));
    let errors: Vec<String> = validate_against_metadata(&config, &hubspot, &salesforce)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        has(
            &errors,
            "contacts.fields[4].salesforce: Salesforce Lead has no field \"Title\""
        ),
        "{errors:#?}"
    );
}

#[test]
fn a_salesforce_inclusion_filter_reads_per_sobject_and_names_bad_keys() {
    let toml = format!(
        "{EXAMPLE_TOML}\n[companies.inclusion]\nfilters = [{{ property = \"hubspot_owner_id\", operator = \"has_property\" }}]\n"
    );
    let c = match SyncConfig::from_toml(&toml) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let row = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    let rules = &c.contacts.inclusion;
    assert!(rules.admits_salesforce(
        "Lead",
        &row(serde_json::json!({"Status": "working - contacted"}))
    ));
    assert!(!rules.admits_salesforce("Lead", &row(serde_json::json!({"Status": "Closed"}))));
    assert!(!rules.admits_salesforce("Lead", &row(serde_json::json!({}))));
    // A Contact has no Lead conditions.
    assert!(rules.admits_salesforce("Contact", &row(serde_json::json!({}))));
    assert_eq!(rules.salesforce_fields("Lead"), vec!["Status".to_owned()]);
    assert_eq!(
        rules.describe_salesforce("Lead"),
        "Status in Open - Not Contacted, Working - Contacted"
    );
    assert_eq!(
        c.companies
            .inclusion
            .hubspot
            .admits(&row(serde_json::json!({"hubspot_owner_id": "7"}))),
        Some(true)
    );
    assert_eq!(
        c.companies
            .inclusion
            .hubspot
            .admits(&row(serde_json::json!({}))),
        Some(false)
    );

    let bad = format!(
        "{DEFAULT_TOML}\n[contacts.salesforce_inclusion]\nfilters = [{{ object = \"Account\", field = \"Status\", values = [\"x\"] }}, {{ object = \"Lead\", operator = \"in\", values = [] }}]\n"
    );
    let errors = match SyncConfig::from_toml(&bad) {
        Ok(_) => panic!("accepted a filter on an sObject the pair does not sync"),
        Err(e) => e.to_string(),
    };
    assert!(
        errors.contains("contacts.salesforce_inclusion.filters[0].object"),
        "{errors}"
    );
    assert!(
        errors.contains("contacts.salesforce_inclusion.filters[1].field"),
        "{errors}"
    );
    assert!(
        errors.contains("contacts.salesforce_inclusion.filters[1].values"),
        "{errors}"
    );
}

#[test]
fn an_inclusion_filter_admits_only_matching_contacts() {
    let c = match SyncConfig::from_toml(EXAMPLE_TOML) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let props = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    let admits = |v| c.contacts.inclusion.hubspot.admits(&props(v));
    assert_eq!(
        admits(serde_json::json!({"lifecyclestage": "customer", "email": "a@acme.com"})),
        Some(true)
    );
    assert_eq!(
        admits(serde_json::json!({"lifecyclestage": "subscriber", "email": "a@acme.com"})),
        Some(false)
    );
    assert_eq!(
        admits(serde_json::json!({"lifecyclestage": "customer", "email": "qa@TEST.com"})),
        Some(false)
    );
    assert_eq!(
        Inclusion::Everything.admits(&props(serde_json::json!({}))),
        Some(true)
    );
    assert_eq!(
        Inclusion::List("7".into()).admits(&props(serde_json::json!({}))),
        None
    );
}

#[test]
fn malformed_toml_names_the_line() {
    let p = problems("[contacts]\nenabled = tru\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("line 2: not valid TOML"), "{p:?}");
}

#[test]
fn a_pipeline_mapped_to_record_types_needs_a_stage_map_for_each_pipeline() {
    let text = format!(
        "{}\n{}",
        DEFAULT_TOML.replace(
            "[[deals.fields]]\nhubspot = \"hubspot_owner_id\"",
            "[[deals.fields]]\nhubspot = \"pipeline\"\nsalesforce = \"RecordTypeId\"\nvalue_map = { default = \"012000000000001AAA\", enterprise = \"012000000000002AAA\" }\n\n[[deals.fields]]\nhubspot = \"hubspot_owner_id\"",
        ),
        ""
    );
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(has(
        &p,
        ".value_map.enterprise: pipeline \"enterprise\" has no stage map"
    ));
}

/// A ticket status or priority without its counterpart on the other side is refused,
/// naming it, once the CRMs' picklists are known.
#[test]
fn ticket_statuses_and_priorities_map_both_ways() {
    let config = match SyncConfig::from_toml(EXAMPLE_TOML) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let enumeration = |values: &[&str]| {
        let mut m = FieldMeta::of_type(FieldType::Enum);
        m.picklist = Some(values.iter().map(|v| (*v).to_owned()).collect());
        m
    };
    let mut tickets = HashMap::new();
    tickets.insert(
        "hs_pipeline_stage".to_owned(),
        enumeration(&["1", "2", "3", "4", "5"]),
    );
    tickets.insert(
        "hs_ticket_priority".to_owned(),
        enumeration(&["LOW", "MEDIUM", "HIGH"]),
    );
    let mut hubspot = HashMap::new();
    hubspot.insert("tickets".to_owned(), tickets);
    let mut case = HashMap::new();
    case.insert(
        "Status".to_owned(),
        enumeration(&["New", "Working", "Escalated", "Closed", "On Hold"]),
    );
    case.insert(
        "Priority".to_owned(),
        enumeration(&["Low", "Medium", "High"]),
    );
    let mut salesforce = HashMap::new();
    salesforce.insert("Case".to_owned(), case);
    let errors: Vec<String> = validate_against_metadata(&config, &hubspot, &salesforce)
        .iter()
        .map(ToString::to_string)
        .collect();
    let status: Vec<&String> = errors
        .iter()
        .filter(|e| e.starts_with("tickets.fields[2].value_map"))
        .collect();
    assert_eq!(status.len(), 2, "{errors:#?}");
    assert!(
        status
            .iter()
            .any(|e| e.contains("hs_pipeline_stage \"5\" has no Salesforce value"))
    );
    assert!(
        status
            .iter()
            .any(|e| e.contains("Case.Status \"On Hold\" has no HubSpot value"))
    );
    assert!(
        !errors.iter().any(|e| e.starts_with("tickets.fields[3]")),
        "priorities map both ways: {errors:#?}"
    );
}
