//! The merge, field direction by field direction, option by option; then the
//! properties that must hold for every input.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::domain::config::{SyncConfig, ValidatedConfig};
use crate::domain::metadata::{FieldMeta, PairMeta};

/// A configuration whose only enabled pair is companies, with these field mappings.
fn config(fields: &str) -> ValidatedConfig {
    let text = format!(
        "[contacts]\nenabled = false\n[deals]\nenabled = false\n[companies]\nenabled = true\n{fields}"
    );
    match SyncConfig::from_toml(&text) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn field(hs: &str, sf: &str, direction: &str, extra: &str) -> String {
    format!(
        "[[companies.fields]]\nhubspot = \"{hs}\"\nsalesforce = \"{sf}\"\ndirection = \"{direction}\"\n{extra}\n"
    )
}

fn snap(values: Value, at: i64) -> Snapshot {
    Snapshot::new(values.as_object().cloned().unwrap_or_default(), Some(at))
}

fn last(pairs: &[(&str, Value, Value)]) -> LastSynced {
    pairs
        .iter()
        .map(|(k, h, s)| {
            (
                (*k).to_owned(),
                SyncedField {
                    hubspot: h.clone(),
                    salesforce: s.clone(),
                    held: None,
                },
            )
        })
        .collect()
}

struct Case {
    config: ValidatedConfig,
    meta: PairMeta,
    owners: OwnerDirectory,
}

impl Case {
    fn new(fields: &str) -> Self {
        Case {
            config: config(fields),
            meta: PairMeta::default(),
            owners: OwnerDirectory::default(),
        }
    }

    fn sf_meta(mut self, field: &str, meta: FieldMeta) -> Self {
        self.meta.salesforce.insert(field.to_owned(), meta);
        self
    }

    fn hs_meta(mut self, field: &str, meta: FieldMeta) -> Self {
        self.meta.hubspot.insert(field.to_owned(), meta);
        self
    }

    /// The case's merge rules (companies <-> Account).
    fn rules(&self) -> MergeRules<'_> {
        match MergeRules::new(
            &self.config,
            "companies",
            "Account",
            &self.meta,
            &self.owners,
        ) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// Runs the merge and returns (HubSpot writes, Salesforce writes, reasons by HubSpot property).
    fn merge(
        &self,
        hs: &Snapshot,
        sf: &Snapshot,
        last: Option<&LastSynced>,
    ) -> (Value, Value, Vec<(String, Reason)>) {
        self.merge_resumed(hs, sf, last, false)
    }

    /// [`Case::merge`] of a pair that was synced before and lost its link (`resumed`).
    fn merge_resumed(
        &self,
        hs: &Snapshot,
        sf: &Snapshot,
        last: Option<&LastSynced>,
        resumed: bool,
    ) -> (Value, Value, Vec<(String, Reason)>) {
        let mut rules = self.rules();
        rules.resumed = resumed;
        let plan = merge_fields(&rules, hs, sf, last);
        (
            Value::Object(plan.hubspot_writes.clone()),
            Value::Object(plan.salesforce_writes.clone()),
            plan.fields
                .iter()
                .map(|f| (f.hubspot.to_owned(), f.reason))
                .collect(),
        )
    }
}

fn reason_of(reasons: &[(String, Reason)], hs: &str) -> Reason {
    reasons
        .iter()
        .find(|(k, _)| k == hs)
        .map(|(_, r)| *r)
        .unwrap_or(Reason::Unchanged)
}

#[test]
fn a_pair_synced_before_resumes_with_the_most_recent_value() {
    // Strangers: the preferred side. A pair that lost its link to a deletion and a
    // restore: the later edit (here HubSpot's, made after the restore), like a conflict.
    let case = Case::new(&field("name", "Name", "prefer_salesforce", ""));
    let hs = snap(json!({"name": "Edited after the restore"}), 20);
    let sf = snap(json!({"Name": "Acme"}), 10);
    let (hw, sw, r) = case.merge_resumed(&hs, &sf, None, true);
    assert_eq!(
        (hw, sw),
        (json!({}), json!({"Name": "Edited after the restore"}))
    );
    assert_eq!(reason_of(&r, "name"), Reason::FirstSyncMostRecent);
    let (hw, _, r) = case.merge_resumed(&hs, &sf, None, false);
    assert_eq!(hw, json!({"name": "Acme"}));
    assert_eq!(reason_of(&r, "name"), Reason::FirstSyncPreferred);
    // Times unknown or equal: the preferred side still.
    let (hw, _, _) = case.merge_resumed(&snap(json!({"name": "x"}), 10), &sf, None, true);
    assert_eq!(hw, json!({"name": "Acme"}));
}

#[test]
fn prefer_salesforce_first_sync_salesforce_wins() {
    let case = Case::new(&field("name", "Name", "prefer_salesforce", ""));
    let (hs, sf, r) = case.merge(
        &snap(json!({"name": "Acme"}), 20),
        &snap(json!({"Name": "ACME Corp"}), 10),
        None,
    );
    assert_eq!(hs, json!({"name": "ACME Corp"}));
    assert_eq!(sf, json!({}));
    assert_eq!(reason_of(&r, "name"), Reason::FirstSyncPreferred);
}

#[test]
fn prefer_hubspot_first_sync_hubspot_wins() {
    let case = Case::new(&field("name", "Name", "prefer_hubspot", ""));
    let (hs, sf, _) = case.merge(
        &snap(json!({"name": "Acme"}), 10),
        &snap(json!({"Name": "ACME Corp"}), 20),
        None,
    );
    assert_eq!(hs, json!({}));
    assert_eq!(sf, json!({"Name": "Acme"}));
}

#[test]
fn two_way_first_sync_most_recent_wins() {
    let case = Case::new(&field("name", "Name", "two_way", ""));
    let (hs, sf, r) = case.merge(
        &snap(json!({"name": "Acme"}), 30),
        &snap(json!({"Name": "ACME Corp"}), 20),
        None,
    );
    assert_eq!((hs, sf), (json!({}), json!({"Name": "Acme"})));
    assert_eq!(reason_of(&r, "name"), Reason::FirstSyncMostRecent);
}

#[test]
fn first_sync_blank_is_filled_whatever_the_preference() {
    let case = Case::new(&field("name", "Name", "prefer_salesforce", ""));
    let (hs, sf, r) = case.merge(
        &snap(json!({"name": "Acme"}), 10),
        &snap(json!({"Name": null}), 20),
        None,
    );
    assert_eq!((hs, sf), (json!({}), json!({"Name": "Acme"})));
    assert_eq!(reason_of(&r, "name"), Reason::FirstSyncFillsBlank);
}

#[test]
fn a_change_on_one_side_moves_to_the_other() {
    let case = Case::new(&field("name", "Name", "prefer_salesforce", ""));
    let l = last(&[("name", json!("Acme"), json!("Acme"))]);
    let (hs, sf, r) = case.merge(
        &snap(json!({"name": "Acme Ltd"}), 10),
        &snap(json!({"Name": "Acme"}), 20),
        Some(&l),
    );
    assert_eq!((hs, sf), (json!({}), json!({"Name": "Acme Ltd"})));
    assert_eq!(reason_of(&r, "name"), Reason::ChangedInHubspot);

    let (hs, sf, r) = case.merge(
        &snap(json!({"name": "Acme"}), 30),
        &snap(json!({"Name": "Acme SA"}), 20),
        Some(&l),
    );
    assert_eq!((hs, sf), (json!({"name": "Acme SA"}), json!({})));
    assert_eq!(reason_of(&r, "name"), Reason::ChangedInSalesforce);
}

#[test]
fn a_conflict_goes_to_the_most_recent_change_by_field_time() {
    let case = Case::new(&field("name", "Name", "prefer_salesforce", ""));
    let l = last(&[("name", json!("Acme"), json!("Acme"))]);
    // HubSpot's record changed last, but its name field changed before Salesforce's.
    let mut hs = snap(json!({"name": "Acme HS"}), 100);
    hs.field_modified_at.insert("name".into(), 10);
    let (hw, sw, r) = case.merge(&hs, &snap(json!({"Name": "Acme SF"}), 50), Some(&l));
    assert_eq!((hw, sw), (json!({"name": "Acme SF"}), json!({})));
    assert_eq!(reason_of(&r, "name"), Reason::ConflictMostRecent);
}

/// A value edited and edited back between two syncs (A, B, A) looks unchanged; its
/// history says it is the latest edit, so it wins over the other side's earlier change
/// (found by the convergence harness, history 174). Without history, or with an edit
/// back before the other side's change or before the last sync, the change moves.
#[test]
fn a_value_edited_back_after_the_other_sides_change_wins() {
    let case = Case::new(&field("name", "Name", "two_way", ""));
    let l = last(&[("name", json!("Acme"), json!("Acme"))]);
    let run = |hs: &Snapshot, sf: &Snapshot, synced_at: Option<i64>| {
        let mut rules = case.rules();
        rules.synced_at = synced_at;
        let plan = merge_fields(&rules, hs, sf, Some(&l));
        let f = plan.fields.iter().find(|f| f.hubspot == "name");
        (
            Value::Object(plan.hubspot_writes.clone()),
            Value::Object(plan.salesforce_writes.clone()),
            f.map(|f| (f.reason, f.timed)),
        )
    };
    // Salesforce changed at 200; HubSpot's record changed after the last sync (100).
    let mut sf = snap(json!({"Name": "Acme SF"}), 200);
    sf.field_modified_at.insert("Name".into(), 200);
    let hs = snap(json!({"name": "Acme"}), 300);
    // Without the field's history yet: the merge asks for it.
    let (_, _, f) = run(&hs, &sf, Some(100));
    assert_eq!(f, Some((Reason::ChangedInSalesforce, true)));
    // HubSpot's history: edited back at 300, after Salesforce's change: it wins.
    let mut back = hs.clone();
    back.field_modified_at.insert("name".into(), 300);
    let (hw, sw, f) = run(&back, &sf, Some(100));
    assert_eq!((hw, sw), (json!({}), json!({"Name": "Acme"})));
    assert_eq!(f.map(|f| f.0), Some(Reason::ConflictMostRecent));
    // Edited back before Salesforce's change: Salesforce's change moves.
    let mut earlier = hs.clone();
    earlier.field_modified_at.insert("name".into(), 150);
    let (hw, _, f) = run(&earlier, &sf, Some(100));
    assert_eq!(hw, json!({"name": "Acme SF"}));
    assert_eq!(f.map(|f| f.0), Some(Reason::ChangedInSalesforce));
    // The field's last change was the sync itself (or before): nothing was edited back.
    let mut synced = hs.clone();
    synced.field_modified_at.insert("name".into(), 90);
    let (hw, _, _) = run(&synced, &sf, Some(100));
    assert_eq!(hw, json!({"name": "Acme SF"}));
    // A record untouched since the sync is not asked about.
    let (_, _, f) = run(&snap(json!({"name": "Acme"}), 90), &sf, Some(100));
    assert_eq!(f, Some((Reason::ChangedInSalesforce, false)));
    // Nor a pair with no sync time (a first sync, a link made before this was kept).
    let (hw, _, f) = run(&back, &sf, None);
    assert_eq!(hw, json!({"name": "Acme SF"}));
    assert_eq!(f, Some((Reason::ChangedInSalesforce, false)));
}

#[test]
fn a_conflict_at_the_same_time_goes_to_the_preferred_side() {
    let case = Case::new(&field("name", "Name", "prefer_hubspot", ""));
    let l = last(&[("name", json!("Acme"), json!("Acme"))]);
    let (hw, sw, r) = case.merge(
        &snap(json!({"name": "Acme HS"}), 50),
        &snap(json!({"Name": "Acme SF"}), 50),
        Some(&l),
    );
    assert_eq!((hw, sw), (json!({}), json!({"Name": "Acme HS"})));
    assert_eq!(reason_of(&r, "name"), Reason::ConflictPreferred);
}

#[test]
fn always_salesforce_overwrites_hubspot_edits_and_never_writes_salesforce() {
    let case = Case::new(&field("name", "Name", "always_salesforce", ""));
    let l = last(&[("name", json!("Acme"), json!("Acme"))]);
    let (hw, sw, r) = case.merge(
        &snap(json!({"name": "Edited"}), 99),
        &snap(json!({"Name": "Acme"}), 1),
        Some(&l),
    );
    assert_eq!((hw, sw), (json!({"name": "Acme"}), json!({})));
    assert_eq!(reason_of(&r, "name"), Reason::AlwaysSource);
}

#[test]
fn always_hubspot_mirrors_it() {
    let case = Case::new(&field("name", "Name", "always_hubspot", ""));
    let (hw, sw, _) = case.merge(
        &snap(json!({"name": "Acme"}), 1),
        &snap(json!({"Name": "Other"}), 99),
        None,
    );
    assert_eq!((hw, sw), (json!({}), json!({"Name": "Acme"})));
}

#[test]
fn direction_none_writes_nothing() {
    let case = Case::new(&field("name", "Name", "none", ""));
    let (hw, sw, r) = case.merge(
        &snap(json!({"name": "Acme"}), 1),
        &snap(json!({"Name": "Other"}), 99),
        None,
    );
    assert_eq!((hw, sw), (json!({}), json!({})));
    assert_eq!(reason_of(&r, "name"), Reason::Direction);
}

#[test]
fn unless_blank_keeps_a_filled_value_and_without_it_blanks_propagate() {
    let l = last(&[("phone", json!("555"), json!("555"))]);
    let protected = Case::new(&field("phone", "Phone", "two_way", "unless_blank = true"));
    let (hw, sw, r) = protected.merge(
        &snap(json!({"phone": ""}), 9),
        &snap(json!({"Phone": "555"}), 1),
        Some(&l),
    );
    assert_eq!((hw, sw), (json!({}), json!({})));
    assert_eq!(reason_of(&r, "phone"), Reason::BlankProtected);

    let plain = Case::new(&field("phone", "Phone", "two_way", ""));
    let (hw, sw, _) = plain.merge(
        &snap(json!({"phone": ""}), 9),
        &snap(json!({"Phone": "555"}), 1),
        Some(&l),
    );
    assert_eq!((hw, sw), (json!({}), json!({"Phone": null})));
}

#[test]
fn our_own_write_read_back_writes_nothing() {
    let case = Case::new(&field("name", "Name", "two_way", ""));
    let l = last(&[("name", json!("Acme"), json!("Acme"))]);
    let hs = snap(json!({"name": "Acme Ltd"}), 10);
    let rules = MergeRules::new(
        &case.config,
        "companies",
        "Account",
        &case.meta,
        &case.owners,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let plan = merge_fields(&rules, &hs, &snap(json!({"Name": "Acme"}), 5), Some(&l));
    // The echo: Salesforce now holds what we wrote, and reports it as a change.
    let sf_after = snap(json!({"Name": "Acme Ltd"}), 11);
    let again = merge_fields(
        &rules,
        &hs,
        &sf_after,
        Some(&plan.next_last_synced(Some(&l))),
    );
    assert!(again.writes_nothing());
    assert_eq!(again.fields[0].reason, Reason::InSync);
}

#[test]
fn a_field_newly_added_to_the_mapping_merges_as_on_a_first_sync() {
    let case = Case::new(
        &(field("name", "Name", "two_way", "")
            + &field("industry", "Industry", "prefer_salesforce", "")),
    );
    let l = last(&[("name", json!("Acme"), json!("Acme"))]);
    let (hw, _, r) = case.merge(
        &snap(json!({"name": "Acme", "industry": "Software"}), 10),
        &snap(json!({"Name": "Acme", "Industry": "Technology"}), 5),
        Some(&l),
    );
    assert_eq!(hw, json!({"industry": "Technology"}));
    assert_eq!(reason_of(&r, "industry"), Reason::FirstSyncPreferred);
}

#[test]
fn spelling_differences_are_not_changes() {
    let case = Case::new(
        &(field("numberofemployees", "NumberOfEmployees", "two_way", "")
            + &field("tags", "Tags__c", "two_way", "")
            + &field("domain", "Website", "two_way", "")),
    )
    .hs_meta("tags", FieldMeta::of_type(FieldType::MultiEnum));
    let (hw, sw, _) = case.merge(
        &snap(
            json!({"numberofemployees": "120.0", "tags": "b;a", "domain": "acme.com"}),
            10,
        ),
        &snap(
            json!({"NumberOfEmployees": 120, "Tags__c": "a;b", "Website": "https://www.Acme.com/"}),
            5,
        ),
        None,
    );
    assert_eq!((hw, sw), (json!({}), json!({})));
}

#[test]
fn formula_and_read_only_targets_are_never_written() {
    let case = Case::new(
        &(field("annualrevenue", "AnnualRevenue", "prefer_hubspot", "")
            + &field("rating", "Rating", "prefer_hubspot", "")),
    )
    .sf_meta(
        "AnnualRevenue",
        FieldMeta {
            formula: true,
            ..FieldMeta::of_type(FieldType::Number)
        },
    )
    .sf_meta(
        "Rating",
        FieldMeta {
            read_only: true,
            ..FieldMeta::of_type(FieldType::Text)
        },
    );
    let l = last(&[
        ("annualrevenue", json!("1"), json!(1)),
        ("rating", json!("Hot"), json!("Hot")),
    ]);
    let (hw, sw, r) = case.merge(
        &snap(json!({"annualrevenue": "2", "rating": "Cold"}), 10),
        &snap(json!({"AnnualRevenue": 1, "Rating": "Hot"}), 5),
        Some(&l),
    );
    assert_eq!((hw, sw), (json!({}), json!({})));
    assert_eq!(reason_of(&r, "annualrevenue"), Reason::FormulaField);
    assert_eq!(reason_of(&r, "rating"), Reason::ReadOnlyField);
}

#[test]
fn a_formula_change_alone_never_triggers_but_rides_along_with_a_real_change() {
    let case = Case::new(
        &(field("score", "Score__c", "prefer_salesforce", "")
            + &field("name", "Name", "two_way", "")),
    )
    .sf_meta(
        "Score__c",
        FieldMeta {
            formula: true,
            read_only: true,
            ..FieldMeta::of_type(FieldType::Number)
        },
    );
    let l = last(&[
        ("score", json!("1"), json!(1)),
        ("name", json!("Acme"), json!("Acme")),
    ]);
    let hs = snap(json!({"score": "1", "name": "Acme"}), 1);
    let (hw, sw, r) = case.merge(
        &hs,
        &snap(json!({"Score__c": 2, "Name": "Acme"}), 5),
        Some(&l),
    );
    assert_eq!((hw, sw), (json!({}), json!({})));
    assert_eq!(reason_of(&r, "score"), Reason::FormulaChangeAlone);

    let (hw, _, r) = case.merge(
        &hs,
        &snap(json!({"Score__c": 2, "Name": "Acme SA"}), 5),
        Some(&l),
    );
    assert_eq!(hw, json!({"score": "2", "name": "Acme SA"}));
    assert_eq!(reason_of(&r, "score"), Reason::ChangedInSalesforce);
}

#[test]
fn values_a_picklist_refuses_or_a_map_lacks_are_held_back() {
    let case = Case::new(
        &(field("industry", "Industry", "prefer_hubspot", "")
            + &field(
                "tier",
                "Tier__c",
                "prefer_hubspot",
                "value_map = { gold = \"Gold\", silver = \"Silver\" }",
            )),
    )
    .sf_meta(
        "Industry",
        FieldMeta {
            picklist: Some(vec!["Technology".into()]),
            restricted: true,
            ..FieldMeta::of_type(FieldType::Enum)
        },
    );
    let (hw, sw, r) = case.merge(
        &snap(
            json!({"industry": "COMPUTER_SOFTWARE", "tier": "bronze"}),
            10,
        ),
        &snap(json!({"Industry": "Technology", "Tier__c": "Gold"}), 5),
        None,
    );
    assert_eq!((hw, sw), (json!({}), json!({})));
    assert_eq!(reason_of(&r, "industry"), Reason::NotInPicklist);
    assert_eq!(reason_of(&r, "tier"), Reason::ValueNotMapped);
    assert!(Reason::NotInPicklist.is_data_quality());

    let (_, sw, _) = case.merge(
        &snap(json!({"tier": "silver"}), 10),
        &snap(json!({"Tier__c": "Gold"}), 5),
        None,
    );
    assert_eq!(sw, json!({"Tier__c": "Silver"}));
}

#[test]
fn values_longer_than_the_target_are_held_back() {
    let case = Case::new(&field("name", "Name", "prefer_hubspot", "")).sf_meta(
        "Name",
        FieldMeta {
            length: Some(5),
            ..FieldMeta::of_type(FieldType::Text)
        },
    );
    let (_, sw, r) = case.merge(
        &snap(json!({"name": "Acme Holdings"}), 10),
        &snap(json!({"Name": "Acme"}), 5),
        None,
    );
    assert_eq!(sw, json!({}));
    assert_eq!(reason_of(&r, "name"), Reason::WouldTruncate);
}

#[test]
fn a_value_of_the_wrong_type_is_a_data_quality_issue() {
    let case = Case::new(&field(
        "numberofemployees",
        "NumberOfEmployees",
        "two_way",
        "",
    ));
    let (hw, sw, r) = case.merge(
        &snap(json!({"numberofemployees": "about 50"}), 10),
        &snap(json!({"NumberOfEmployees": 40}), 5),
        None,
    );
    assert_eq!((hw, sw), (json!({}), json!({})));
    assert_eq!(reason_of(&r, "numberofemployees"), Reason::TypeMismatch);
}

#[test]
fn lifecycle_stage_never_moves_backwards() {
    let case = Case::new(&field(
        "lifecyclestage",
        "Stage__c",
        "prefer_salesforce",
        "",
    ));
    let l = last(&[("lifecyclestage", json!("lead"), json!("lead"))]);
    let (hw, _, r) = case.merge(
        &snap(json!({"lifecyclestage": "customer"}), 1),
        &snap(json!({"Stage__c": "opportunity"}), 9),
        Some(&l),
    );
    assert_eq!(hw, json!({}));
    assert_eq!(reason_of(&r, "lifecyclestage"), Reason::LifecycleBackwards);
    let (hw, _, _) = case.merge(
        &snap(json!({"lifecyclestage": "lead"}), 1),
        &snap(json!({"Stage__c": "customer"}), 9),
        Some(&l),
    );
    assert_eq!(hw, json!({"lifecyclestage": "customer"}));
}

#[test]
fn owners_translate_by_email_and_an_unmatched_one_is_held() {
    let mut case = Case::new(&field(
        "hubspot_owner_id",
        "OwnerId",
        "prefer_salesforce",
        "transform = \"owner\"",
    ));
    case.owners = OwnerDirectory::match_by_email(
        &[("101".into(), "Rep@Acme.com".into())],
        &[
            ("005A".into(), "rep@acme.com".into()),
            ("005B".into(), "other@acme.com".into()),
        ],
        &Default::default(),
    );
    let (hw, _, _) = case.merge(
        &snap(json!({"hubspot_owner_id": ""}), 1),
        &snap(json!({"OwnerId": "005A"}), 9),
        None,
    );
    assert_eq!(hw, json!({"hubspot_owner_id": "101"}));
    let (_, _, r) = case.merge(
        &snap(json!({"hubspot_owner_id": "101"}), 1),
        &snap(json!({"OwnerId": "005B"}), 9),
        None,
    );
    assert_eq!(reason_of(&r, "hubspot_owner_id"), Reason::OwnerNotMatched);
}

/// `[owners] default_hubspot_owner` / `default_salesforce_user`: an owner with no
/// match takes the stand-in instead of being held, and the reason says so; the pair
/// as written then stays put (no ping-pong between the owner and its stand-in).
#[test]
fn an_unmatched_owner_takes_the_configured_default_and_says_so() {
    let mut case = Case::new(&field(
        "hubspot_owner_id",
        "OwnerId",
        "two_way",
        "transform = \"owner\"",
    ));
    let settings = crate::domain::config::OwnerSettings {
        enabled: true,
        overrides: Default::default(),
        default_salesforce_user: Some("005D".into()),
        default_hubspot_owner: Some("909".into()),
    };
    case.owners = OwnerDirectory::match_by_email(
        &[("101".into(), "rep@acme.com".into())],
        &[("005A".into(), "rep@acme.com".into())],
        &Default::default(),
    )
    .with_defaults(&settings);
    // A Salesforce owner HubSpot does not know: HubSpot gets the default owner.
    let (hw, sw, r) = case.merge(
        &snap(json!({"hubspot_owner_id": ""}), 1),
        &snap(json!({"OwnerId": "005B"}), 9),
        None,
    );
    assert_eq!((hw, sw), (json!({"hubspot_owner_id": "909"}), json!({})));
    assert_eq!(reason_of(&r, "hubspot_owner_id"), Reason::OwnerDefaulted);
    assert!(Reason::OwnerDefaulted.is_data_quality());
    // A HubSpot owner Salesforce does not know, changed since the last sync.
    let last: LastSynced = [(
        "hubspot_owner_id".to_owned(),
        SyncedField {
            hubspot: json!("101"),
            salesforce: json!("005A"),
            held: None,
        },
    )]
    .into_iter()
    .collect();
    let (hw, sw, r) = case.merge(
        &snap(json!({"hubspot_owner_id": "777"}), 9),
        &snap(json!({"OwnerId": "005A"}), 1),
        Some(&last),
    );
    assert_eq!((hw, sw), (json!({}), json!({"OwnerId": "005D"})));
    assert_eq!(reason_of(&r, "hubspot_owner_id"), Reason::OwnerDefaulted);
    // Once written, the pair as it stands moves nothing.
    let written: LastSynced = [(
        "hubspot_owner_id".to_owned(),
        SyncedField {
            hubspot: json!("777"),
            salesforce: json!("005D"),
            held: None,
        },
    )]
    .into_iter()
    .collect();
    let (hw, sw, _) = case.merge(
        &snap(json!({"hubspot_owner_id": "777"}), 9),
        &snap(json!({"OwnerId": "005D"}), 10),
        Some(&written),
    );
    assert_eq!((hw, sw), (json!({}), json!({})));
}

/// A value held at a first sync is remembered with the pair as seen: while neither
/// side changes nothing moves; a later change on the other side does, where without
/// the memory the preferred side's held value kept winning.
#[test]
fn a_held_owner_does_not_block_a_later_change_of_the_other_side() {
    let mut case = Case::new(&field(
        "hubspot_owner_id",
        "OwnerId",
        "prefer_salesforce",
        "transform = \"owner\"",
    ));
    case.owners = OwnerDirectory::match_by_email(
        &[("101".into(), "rep@acme.com".into())],
        &[
            ("005A".into(), "rep@acme.com".into()),
            ("005B".into(), "other@acme.com".into()),
        ],
        &Default::default(),
    );
    let seen: LastSynced = [(
        "hubspot_owner_id".to_owned(),
        SyncedField {
            hubspot: json!(""),
            salesforce: json!("005B"),
            held: Some(Side::Salesforce),
        },
    )]
    .into_iter()
    .collect();
    let (hw, sw, r) = case.merge(
        &snap(json!({"hubspot_owner_id": ""}), 1),
        &snap(json!({"OwnerId": "005B"}), 9),
        Some(&seen),
    );
    assert_eq!((hw, sw), (json!({}), json!({})));
    assert_eq!(reason_of(&r, "hubspot_owner_id"), Reason::Unchanged);
    // The first sync itself records the pair as seen.
    let mut rules = MergeRules::new(
        &case.config,
        "companies",
        "Account",
        &case.meta,
        &case.owners,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    rules.resumed = false;
    let plan = merge_fields(
        &rules,
        &snap(json!({"hubspot_owner_id": ""}), 1),
        &snap(json!({"OwnerId": "005B"}), 9),
        None,
    );
    assert_eq!(plan.next_last_synced(None), seen);
    let (hw, sw, _) = case.merge(
        &snap(json!({"hubspot_owner_id": "101"}), 10),
        &snap(json!({"OwnerId": "005B"}), 9),
        Some(&seen),
    );
    assert_eq!(hw, json!({}));
    assert_eq!(sw, json!({"OwnerId": "005A"}));
}

#[test]
fn types_from_metadata_render_each_side_correctly() {
    let case = Case::new(&field("founded", "Founded__c", "prefer_salesforce", ""))
        .hs_meta("founded", FieldMeta::of_type(FieldType::DateTime))
        .sf_meta("Founded__c", FieldMeta::of_type(FieldType::Date));
    let (hw, _, _) = case.merge(
        &snap(json!({"founded": ""}), 1),
        &snap(json!({"Founded__c": "2001-02-03"}), 9),
        None,
    );
    assert_eq!(hw, json!({"founded": "2001-02-03T00:00:00.000Z"}));
    let (hw, sw, _) = case.merge(
        &snap(json!({"founded": "981158400000"}), 1),
        &snap(json!({"Founded__c": "2001-02-03"}), 9),
        None,
    );
    assert_eq!((hw, sw), (json!({}), json!({})));
}

fn contact_rules_case(state_country: &str) -> ValidatedConfig {
    let text = format!(
        "[contacts]\n{state_country}\n[[contacts.fields]]\nhubspot = \"company\"\nsalesforce = {{ lead = \"Company\" }}\n\
         [[contacts.fields]]\nhubspot = \"state\"\nsalesforce = {{ lead = \"State\", contact = \"MailingStateCode\" }}\ntransform = \"state\"\n\
         [[contacts.fields]]\nhubspot = \"country\"\nsalesforce = {{ lead = \"Country\", contact = \"MailingCountryCode\" }}\ntransform = \"country\"\n\
         [deals]\nenabled = false\n"
    );
    SyncConfig::from_toml(&text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn lead_and_contact_fields_differ_and_a_lead_only_mapping_skips_contacts() {
    let config = contact_rules_case("");
    let owners = OwnerDirectory::default();
    let rules = MergeRules::new(
        &config,
        "contacts",
        "Contact",
        &PairMeta::default(),
        &owners,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let hs = snap(
        json!({"company": "Acme", "state": "California", "country": "United States"}),
        9,
    );
    let plan = merge_fields(&rules, &hs, &snap(json!({}), 1), None);
    assert_eq!(plan.fields[0].reason, Reason::NotMappedForObject);
    // Code fields take codes whatever the mode.
    assert_eq!(
        Value::Object(plan.salesforce_writes),
        json!({"MailingStateCode": "CA", "MailingCountryCode": "US"})
    );
}

#[test]
fn free_text_places_become_salesforce_picklist_values_and_a_state_needs_a_country() {
    let config = contact_rules_case(
        "[contacts.state_country]\nsalesforce_picklists = \"enabled\"\nhubspot_values = \"match_salesforce_defaults\"",
    );
    let owners = OwnerDirectory::default();
    let rules = MergeRules::new(&config, "contacts", "Lead", &PairMeta::default(), &owners)
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = merge_fields(
        &rules,
        &snap(json!({"state": "ca", "country": "usa"}), 9),
        &snap(json!({}), 1),
        None,
    );
    assert_eq!(
        Value::Object(plan.salesforce_writes),
        json!({"State": "California", "Country": "United States"})
    );
    // Same place, other spelling: no write.
    let plan = merge_fields(
        &rules,
        &snap(json!({"state": "ca", "country": "usa"}), 9),
        &snap(
            json!({"State": "California", "Country": "United States"}),
            1,
        ),
        None,
    );
    assert!(plan.writes_nothing());
    let plan = merge_fields(
        &rules,
        &snap(json!({"state": "Ontario"}), 9),
        &snap(json!({}), 1),
        None,
    );
    assert_eq!(plan.fields[1].reason, Reason::StateNeedsCountry);
}

#[test]
fn customized_picklists_take_the_orgs_own_values_and_hold_back_the_rest() {
    use crate::domain::geo::{Place, PlaceCatalog};
    let config = contact_rules_case(
        "[contacts.state_country]\nsalesforce_picklists = \"customized\"\nhubspot_values = \"match_salesforce_defaults\"",
    );
    let owners = OwnerDirectory::default();
    let place = |code: &str, label: &str| Place {
        code: code.into(),
        label: label.into(),
    };
    let meta = PairMeta {
        places: Some(std::sync::Arc::new(PlaceCatalog {
            countries: vec![place("US", "United States"), place("XK", "Kosovo")],
            states: [("US".to_owned(), vec![place("CA", "Golden State")])].into(),
        })),
        ..PairMeta::default()
    };
    let rules = MergeRules::new(&config, "contacts", "Lead", &meta, &owners)
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = merge_fields(
        &rules,
        &snap(json!({"state": "California", "country": "usa"}), 9),
        &snap(json!({}), 1),
        None,
    );
    assert_eq!(
        Value::Object(plan.salesforce_writes),
        json!({"State": "Golden State", "Country": "United States"})
    );
    let plan = merge_fields(
        &rules,
        &snap(json!({"state": "Texas", "country": "Kosovo"}), 9),
        &snap(json!({}), 1),
        None,
    );
    assert_eq!(
        Value::Object(plan.salesforce_writes.clone()),
        json!({"Country": "Kosovo"}),
        "the country syncs, the state the org does not have is held back"
    );
    let state = plan
        .fields
        .iter()
        .find(|f| f.hubspot == "state")
        .unwrap_or_else(|| panic!("state"));
    assert_eq!(state.reason, Reason::NotInPicklist);
    assert!(
        state.detail.as_deref().is_some_and(|d| d.contains("Texas")),
        "{:?}",
        state.detail
    );
}

#[test]
fn deal_stages_translate_through_the_pipeline_stage_map() {
    let config = SyncConfig::builtin();
    let owners = OwnerDirectory::default();
    let rules = MergeRules::new(
        &config,
        "deals",
        "Opportunity",
        &PairMeta::default(),
        &owners,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let plan = merge_fields(
        &rules,
        &snap(
            json!({"dealname": "Big", "dealstage": "contractsent", "pipeline": "default"}),
            9,
        ),
        &snap(json!({"Name": "Big", "StageName": "Prospecting"}), 1),
        None,
    );
    assert_eq!(
        Value::Object(plan.salesforce_writes),
        json!({"StageName": "Negotiation/Review"})
    );
    let plan = merge_fields(
        &rules,
        &snap(
            json!({"dealname": "Big", "dealstage": "appointmentscheduled"}),
            1,
        ),
        &snap(json!({"Name": "Big", "StageName": "Needs Analysis"}), 9),
        None,
    );
    assert_eq!(
        Value::Object(plan.hubspot_writes),
        json!({"dealstage": "qualifiedtobuy"})
    );
}

// ---- Properties ----------------------------------------------------------------------

const DIRECTIONS: [&str; 5] = [
    "prefer_salesforce",
    "prefer_hubspot",
    "two_way",
    "always_salesforce",
    "always_hubspot",
];
const STAGES: [&str; 8] = [
    "",
    "other",
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
];

#[derive(Debug, Clone)]
struct FieldCase {
    direction: usize,
    unless_blank: bool,
    hs: String,
    sf: String,
    /// The last agreed value; `None` for a first sync of the field.
    last: Option<String>,
    hs_at: i64,
    sf_at: i64,
}

fn field_case(values: &'static [&'static str]) -> impl Strategy<Value = FieldCase> {
    let v = prop::sample::select(values);
    (
        0..DIRECTIONS.len(),
        any::<bool>(),
        v.clone(),
        v.clone(),
        prop::option::of(v),
        0i64..4,
        0i64..4,
    )
        .prop_map(
            |(direction, unless_blank, hs, sf, last, hs_at, sf_at)| FieldCase {
                direction,
                unless_blank,
                hs: hs.to_owned(),
                sf: sf.to_owned(),
                last: last.map(str::to_owned),
                hs_at,
                sf_at,
            },
        )
}

const TEXTS: [&str; 5] = ["", "a", "b", "c", " a "];

/// Builds the config and both snapshots for a set of generated fields (`f0`..`fN` on
/// HubSpot, `F0__c`.. on Salesforce; the last field is the lifecycle stage).
fn build(
    cases: &[FieldCase],
    lifecycle: &FieldCase,
) -> (ValidatedConfig, Snapshot, Snapshot, LastSynced) {
    let mut toml = String::new();
    let mut hs = Snapshot::default();
    let mut sf = Snapshot::default();
    let mut last = LastSynced::default();
    let all = cases.iter().chain(std::iter::once(lifecycle));
    for (i, c) in all.enumerate() {
        let (hp, sfield) = if i == cases.len() {
            ("lifecyclestage".to_owned(), "Lifecycle__c".to_owned())
        } else {
            (format!("f{i}"), format!("F{i}__c"))
        };
        let extra = if c.unless_blank {
            "unless_blank = true"
        } else {
            ""
        };
        toml += &field(&hp, &sfield, DIRECTIONS[c.direction], extra);
        hs.values.insert(hp.clone(), json!(c.hs));
        sf.values.insert(sfield.clone(), json!(c.sf));
        hs.field_modified_at.insert(hp.clone(), c.hs_at);
        sf.field_modified_at.insert(sfield, c.sf_at);
        if let Some(l) = &c.last {
            last.insert(
                hp,
                SyncedField {
                    hubspot: json!(l),
                    salesforce: json!(l),
                    held: None,
                },
            );
        }
    }
    (config(&toml), hs, sf, last)
}

fn apply(plan: &MergePlan<'_>, hs: &mut Snapshot, sf: &mut Snapshot) {
    for (k, v) in &plan.hubspot_writes {
        hs.values.insert(k.clone(), v.clone());
    }
    for (k, v) in &plan.salesforce_writes {
        sf.values.insert(k.clone(), v.clone());
    }
}

fn same(a: &Value, b: &Value) -> bool {
    let ty = FieldType::Text;
    matches!((normalize(a, ty), normalize(b, ty)), (Ok(x), Ok(y)) if x == y)
}

proptest! {
    #[test]
    fn merging_the_result_again_writes_nothing(
        cases in prop::collection::vec(field_case(&TEXTS), 1..8),
        lifecycle in field_case(&STAGES),
        first_sync in any::<bool>(),
    ) {
        let (config, mut hs, mut sf, last) = build(&cases, &lifecycle);
        let owners = OwnerDirectory::default();
        let rules = MergeRules::new(&config, "companies", "Account", &PairMeta::default(), &owners).unwrap_or_else(|e| panic!("{e}"));
        let last = (!first_sync).then_some(last);
        let plan = merge_fields(&rules, &hs, &sf, last.as_ref());
        let synced = plan.next_last_synced(last.as_ref());
        let first = plan.clone();
        apply(&first, &mut hs, &mut sf);
        let again = merge_fields(&rules, &hs, &sf, Some(&synced));
        prop_assert!(again.writes_nothing(), "second merge wrote {:?} / {:?}", again.hubspot_writes, again.salesforce_writes);
    }

    #[test]
    fn two_way_fields_end_equal_on_both_sides(
        cases in prop::collection::vec(field_case(&TEXTS), 1..8),
        first_sync in any::<bool>(),
    ) {
        let cases: Vec<FieldCase> = cases.into_iter().map(|c| FieldCase { direction: 2, unless_blank: false, ..c }).collect();
        let lifecycle = FieldCase { direction: 2, unless_blank: false, hs: "lead".into(), sf: "lead".into(), last: None, hs_at: 0, sf_at: 0 };
        let (config, mut hs, mut sf, last) = build(&cases, &lifecycle);
        let owners = OwnerDirectory::default();
        let rules = MergeRules::new(&config, "companies", "Account", &PairMeta::default(), &owners).unwrap_or_else(|e| panic!("{e}"));
        let plan = merge_fields(&rules, &hs, &sf, (!first_sync).then_some(&last));
        let plan = plan.clone();
        apply(&plan, &mut hs, &mut sf);
        for i in 0..cases.len() {
            let (h, s) = (&hs.values[&format!("f{i}")], &sf.values[&format!("F{i}__c")]);
            prop_assert!(same(h, s), "f{i}: {h} vs {s}");
        }
    }

    #[test]
    fn a_one_way_field_is_never_written_against_its_direction(
        cases in prop::collection::vec(field_case(&TEXTS), 1..8),
        first_sync in any::<bool>(),
    ) {
        let lifecycle = FieldCase { direction: 4, unless_blank: false, hs: String::new(), sf: String::new(), last: None, hs_at: 0, sf_at: 0 };
        let (config, hs, sf, last) = build(&cases, &lifecycle);
        let owners = OwnerDirectory::default();
        let rules = MergeRules::new(&config, "companies", "Account", &PairMeta::default(), &owners).unwrap_or_else(|e| panic!("{e}"));
        let plan = merge_fields(&rules, &hs, &sf, (!first_sync).then_some(&last));
        for (i, c) in cases.iter().enumerate() {
            let (hp, sfield) = (format!("f{i}"), format!("F{i}__c"));
            match DIRECTIONS[c.direction] {
                "always_salesforce" => prop_assert!(!plan.salesforce_writes.contains_key(&sfield)),
                "always_hubspot" => prop_assert!(!plan.hubspot_writes.contains_key(&hp)),
                _ => {}
            }
        }
    }

    #[test]
    fn lifecycle_stage_never_decreases(lifecycle in field_case(&STAGES), first_sync in any::<bool>()) {
        let (config, mut hs, mut sf, last) = build(&[], &lifecycle);
        let owners = OwnerDirectory::default();
        let rules = MergeRules::new(&config, "companies", "Account", &PairMeta::default(), &owners).unwrap_or_else(|e| panic!("{e}"));
        let before = lifecycle.hs.clone();
        let plan = merge_fields(&rules, &hs, &sf, (!first_sync).then_some(&last));
        let plan = plan.clone();
        apply(&plan, &mut hs, &mut sf);
        let after = hs.values["lifecyclestage"].as_str().unwrap_or_default().to_owned();
        prop_assert!(crate::domain::lifecycle::may_move(&before, &after), "{before} -> {after}");
    }
}

#[test]
fn a_webhook_value_is_compared_in_hubspot_wire_form() {
    let field = |hubspot: Value| SyncedField {
        hubspot,
        salesforce: Value::Null,
        held: None,
    };
    let last: LastSynced = [
        ("firstname".to_owned(), field(json!("Ada"))),
        ("phone".to_owned(), field(Value::Null)),
        ("amount".to_owned(), field(json!(1200))),
    ]
    .into_iter()
    .collect();
    assert!(last.holds_hubspot("firstname", "Ada"));
    assert!(!last.holds_hubspot("firstname", "ada"));
    assert!(last.holds_hubspot("phone", ""));
    assert!(last.holds_hubspot("amount", "1200"));
    assert!(!last.holds_hubspot("lastname", ""), "never synced");
}

#[test]
fn a_lookups_entry_outlives_the_merges_and_moves_nothing() {
    let case = Case::new(&field("name", "Name", "two_way", ""));
    let mut l = last(&[("name", json!("Acme"), json!("Acme"))]);
    l.set_lookup("AccountId", "001A", "9001");
    let rules = MergeRules::new(
        &case.config,
        "companies",
        "Account",
        &case.meta,
        &case.owners,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let plan = merge_fields(
        &rules,
        &snap(json!({"name": "Acme Ltd"}), 10),
        &snap(json!({"Name": "Acme"}), 5),
        Some(&l),
    );
    assert_eq!(plan.hubspot_writes.len() + plan.salesforce_writes.len(), 1);
    let next = plan.next_last_synced(Some(&l));
    assert_eq!(next.lookup("AccountId"), Some(("001A", "9001")));
    assert_eq!(next.lookup("Account__c"), None);
    let back: LastSynced = serde_json::from_value(serde_json::to_value(&next).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, next, "stored and read back as it was");
}
