//! The `crmsync` binary as an admin runs it: the seed scenarios through `explain`,
//! configuration checks and their exit codes, the demo, and `crmsync run` as a process
//! against a `crmsync-sandbox` process.

#[path = "cli/ops.rs"]
mod ops;
#[path = "cli/run.rs"]
mod run;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn crmsync(args: &[&str]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("cannot run crmsync: {e}"),
    }
}

fn fixture(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "fixtures",
        "explain",
        name,
    ]
    .iter()
    .collect();
    path.display().to_string()
}

fn explain(name: &str) -> Value {
    let out = crmsync(&["explain", &fixture(name)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("explain printed no JSON: {e}"))
}

fn reason(out: &Value, hubspot: &str) -> String {
    out["fields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["hubspot"] == hubspot))
        .map(|f| f["reason"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[test]
fn first_sync_with_both_sides_filled_takes_salesforces_values() {
    let out = explain("01_first_sync_prefer_salesforce.json");
    assert_eq!(out["first_sync"], true);
    assert_eq!(
        out["hubspot_writes"],
        json!({"lastname": "Silva-Costa", "phone": "+1 555 0199", "company": "Acme Inc."})
    );
    // Salesforce's title was blank: HubSpot's fills it whatever the preference.
    assert_eq!(out["salesforce_writes"], json!({"Title": "VP Marketing"}));
    assert_eq!(reason(&out, "phone"), "first_sync_preferred");
    assert_eq!(reason(&out, "jobtitle"), "first_sync_fills_blank");
    // The same email in another case is the same email.
    assert_eq!(reason(&out, "email"), "in_sync");
}

#[test]
fn a_later_hubspot_edit_moves_to_salesforce_only() {
    let out = explain("02_later_hubspot_edit.json");
    assert_eq!(out["hubspot_writes"], json!({}));
    assert_eq!(out["salesforce_writes"], json!({"Phone": "+1 555 0123"}));
    assert_eq!(reason(&out, "phone"), "changed_in_hubspot");
    assert_eq!(
        out["last_synced"]["phone"],
        json!({"hubspot": "+1 555 0123", "salesforce": "+1 555 0123"})
    );
}

#[test]
fn an_edit_on_both_sides_goes_to_the_most_recent_per_field() {
    let out = explain("03_edit_on_both_sides.json");
    assert_eq!(out["salesforce_writes"], json!({"Phone": "+1 555 0123"}));
    assert_eq!(
        out["hubspot_writes"],
        json!({"jobtitle": "Chief Marketing Officer"})
    );
    assert_eq!(reason(&out, "phone"), "conflict_most_recent");
    assert_eq!(reason(&out, "jobtitle"), "conflict_most_recent");
}

#[test]
fn a_blank_hubspot_value_does_not_wipe_salesforce_under_unless_blank() {
    let out = explain("04_blank_hubspot_value_unless_blank.json");
    assert_eq!(out["hubspot_writes"], json!({}));
    assert_eq!(out["salesforce_writes"], json!({}));
    assert_eq!(reason(&out, "phone"), "blank_protected");
    assert_eq!(reason(&out, "city"), "blank_protected");
    // Company is a Lead-only mapping; this is a Contact.
    assert_eq!(reason(&out, "company"), "not_mapped_for_object");
}

#[test]
fn a_formula_field_change_alone_writes_nothing() {
    let out = explain("05_formula_field.json");
    assert_eq!(out["hubspot_writes"], json!({}));
    assert_eq!(out["salesforce_writes"], json!({}));
    assert_eq!(reason(&out, "annualrevenue"), "formula_change_alone");
    assert_eq!(reason(&out, "domain"), "in_sync");
}

#[test]
fn a_hubspot_edit_never_writes_a_formula_field() {
    let mut pair: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("05_formula_field.json")).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    pair["hubspot"]["values"]["annualrevenue"] = json!("3000000");
    pair["hubspot"]["modified_at"] = json!("2024-06-01T00:00:00Z");
    let dir = tempdir();
    let file = dir.join("pair.json");
    std::fs::write(&file, pair.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let out = crmsync(&["explain", &file.display().to_string()]);
    let out: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out["salesforce_writes"], json!({}));
    assert_eq!(reason(&out, "annualrevenue"), "formula_field");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "crmsync-cli-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

#[test]
fn the_example_config_prints_and_validates() {
    let out = crmsync(&["config", "example"]);
    assert!(out.status.success());
    let dir = tempdir();
    let file = write(&dir, "example.toml", &String::from_utf8_lossy(&out.stdout));
    let out = crmsync(&["config", "validate", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

#[test]
fn a_broken_config_prints_every_problem_with_its_key_path_and_fails() {
    let dir = tempdir();
    let file = write(
        &dir,
        "broken.toml",
        r#"
[contacts]
create_salesforce_as = "lead"
surprise = 1
[[contacts.fields]]
hubspot = "phone"
salesforce = "Phone"
direction = "sideways"
[[deals.fields]]
hubspot = "dealstage"
salesforce = "StageName"
transform = "deal_stage"
[deals.pipelines.default.to_salesforce]
appointmentscheduled = "Prospecting"
qualifiedtobuy = "Qualification"
presentationscheduled = "Proposal/Price Quote"
decisionmakerboughtin = "Id. Decision Makers"
contractsent = "Negotiation/Review"
closedwon = "Closed Won"
[deals.pipelines.default.to_hubspot]
"Prospecting" = "appointmentscheduled"
"Qualification" = "qualifiedtobuy"
"Proposal/Price Quote" = "presentationscheduled"
"Id. Decision Makers" = "decisionmakerboughtin"
"Negotiation/Review" = "contractsent"
"Closed Won" = "closedwon"
"#,
    );
    let out = crmsync(&["config", "validate", &file]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("contacts.surprise: unknown key"), "{err}");
    assert!(
        err.contains("contacts.fields[0].direction: expected one of"),
        "{err}"
    );
    assert!(err.contains("got \"sideways\""), "{err}");
    assert!(
        err.contains("deals.pipelines.default.to_salesforce: HubSpot stage \"closedlost\" of the default pipeline has no Salesforce stage"),
        "{err}"
    );
}

#[test]
fn metadata_turns_a_type_mismatch_into_a_validation_error() {
    let dir = tempdir();
    let config = write(
        &dir,
        "c.toml",
        "[deals]\nenabled = false\n[[companies.fields]]\nhubspot = \"name\"\nsalesforce = \"NumberOfEmployees\"\n",
    );
    let meta = write(
        &dir,
        "meta.json",
        r#"{"hubspot": {"companies": {"name": {"type": "text"}}}, "salesforce": {"Account": {"NumberOfEmployees": {"type": "number"}}}}"#,
    );
    let out = crmsync(&["config", "validate", &config, "--metadata", &meta]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("companies.fields[0]: a text property mapped to a number field (Account.NumberOfEmployees)"), "{err}");
}

#[test]
fn a_malformed_pair_document_is_a_clear_error() {
    let dir = tempdir();
    let file = write(
        &dir,
        "bad.json",
        r#"{"pair": "contacts", "hubspot": {"values": {}}, "salesforce": {"values": {}}, "colour": 1}"#,
    );
    let out = crmsync(&["explain", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `colour`"));
    let file = write(
        &dir,
        "pair.json",
        r#"{"pair": "widgets", "hubspot": {}, "salesforce": {}}"#,
    );
    let out = crmsync(&["explain", &file]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no object pair \"widgets\""));
}

#[test]
fn the_demo_syncs_two_sandboxes_and_prints_health() {
    let out = crmsync(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "== Initial sync",
        "synced in",
        "== Sync health",
        "skipped, by code:",
        "no_email",
        "failing, by code:",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "held back, by code:",
        "field Title",
        "API calls by crmsync",
        "edit-to-sync latency",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    assert!(!text.contains("NOT synced"), "{text}");
}
