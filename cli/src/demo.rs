//! `crmsync demo`: until the sync pipeline and the CRM sandboxes exist, the demo runs the
//! seed scenarios of the mission through the real merge core on the built-in
//! configuration and prints what each would write and why.

use crmsync_shared::domain::config::SyncConfig;
use crmsync_shared::domain::explain::explain;
use serde_json::Value;

use crate::CliError;

/// The scenarios, shared with the CLI tests (`tests/fixtures/explain/`).
const SCENARIOS: [(&str, &str); 5] = [
    (
        "First sync, both sides filled, prefer_salesforce",
        include_str!("../../tests/fixtures/explain/01_first_sync_prefer_salesforce.json"),
    ),
    (
        "A later edit in HubSpot only",
        include_str!("../../tests/fixtures/explain/02_later_hubspot_edit.json"),
    ),
    (
        "The same fields edited on both sides",
        include_str!("../../tests/fixtures/explain/03_edit_on_both_sides.json"),
    ),
    (
        "A HubSpot value blanked under unless_blank",
        include_str!("../../tests/fixtures/explain/04_blank_hubspot_value_unless_blank.json"),
    ),
    (
        "A Salesforce formula field",
        include_str!("../../tests/fixtures/explain/05_formula_field.json"),
    ),
];

pub fn run() -> Result<(), CliError> {
    let config = SyncConfig::builtin();
    for (title, json) in SCENARIOS {
        let out = explain(json, &config)?;
        println!(
            "== {title} ({} / {})",
            out["pair"], out["salesforce_object"]
        );
        print_writes("HubSpot", &out["hubspot_writes"]);
        print_writes("Salesforce", &out["salesforce_writes"]);
        for field in out["fields"].as_array().into_iter().flatten() {
            let reason = field["reason"].as_str().unwrap_or_default();
            if field["action"] == "none" && !matches!(reason, "in_sync" | "not_mapped_for_object") {
                let detail = field["detail"]
                    .as_str()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                println!(
                    "  held   {:<18} {reason}{detail}",
                    field["hubspot"].as_str().unwrap_or_default()
                );
            }
        }
        println!();
    }
    println!(
        "Run `crmsync explain FILE` on any of tests/fixtures/explain/*.json for every field's decision."
    );
    Ok(())
}

fn print_writes(side: &str, writes: &Value) {
    match writes.as_object() {
        Some(w) if !w.is_empty() => {
            for (field, value) in w {
                println!("  write  {side:<10} {field} = {value}");
            }
        }
        _ => println!("  write  {side:<10} nothing"),
    }
}
