//! The local runner: the whole pipeline in one process on the embedded store (intake
//! over HTTP, the poller, the workers), for `crmsync run`, the demo and the end-to-end
//! tests. The Lambda functions wire the same pipeline to API Gateway, SQS and DynamoDB.

pub mod env;
mod runner;
mod server;

pub use runner::{DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, LocalRunner, RunOptions, Served};
