//! crmsync's common crate: everything the Lambda functions, the local runner and the CLI
//! share.
//!
//! `domain` is the pure heart (configuration, field types, the three-way merge, dedup
//! keys, lifecycle and geography rules): no AWS, no HTTP, no clock, so it is tested in
//! milliseconds. Ports, adapters and the pipeline are built around it.

pub mod adapters;
pub mod aws;
pub mod contract;
pub mod domain;
pub mod local;
pub mod metrics;
pub mod pipeline;
pub mod ports;
pub mod secret;
