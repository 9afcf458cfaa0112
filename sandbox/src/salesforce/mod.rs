//! The simulated Salesforce org (in progress): ids and SOQL first.

pub mod ids;
pub mod schema;
pub mod soql;
