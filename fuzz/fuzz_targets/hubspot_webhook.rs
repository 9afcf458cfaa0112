//! The `hubspot_webhook` checks of `shared/tests/integration/fuzz_checks.rs`, coverage-guided.
#![no_main]

#[path = "../../shared/tests/integration/fuzz_checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::hubspot_webhook(data));
