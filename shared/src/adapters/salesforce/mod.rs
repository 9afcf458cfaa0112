//! Salesforce client (next).
