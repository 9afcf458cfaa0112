//! Ports: the small traits the pipeline talks through. Adapters implement them (the
//! reqwest CRM clients now; DynamoDB, SQS and SQLite with the state layer), and the
//! pipeline can run against any implementation, a fake in a unit test included.

pub mod crm;

pub use crm::{HubSpotApi, SalesforceApi};
