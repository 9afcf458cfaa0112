//! Adapters: the code that talks to the outside world (CRM APIs now; DynamoDB, SQS and
//! SQLite with the state layer). The domain never imports from here.

pub mod dynamodb;
pub mod http;
pub mod hubspot;
pub mod salesforce;
pub mod sqlite;
pub mod sqs;
