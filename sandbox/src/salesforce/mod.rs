//! The simulated Salesforce org (in progress): ids and SOQL first.

pub mod error;
pub mod ids;
pub mod schema;
pub mod soql;
pub mod store;
