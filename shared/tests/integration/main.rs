//! The shared crate against real parts over loopback: the CRM clients against the
//! CRM sandboxes. One test binary, a module per part.

mod fuzz;
mod fuzz_checks;
mod harness;
mod hubspot_client;
mod pipeline;
mod salesforce_client;
mod state_aws;
mod state_sqlite;
