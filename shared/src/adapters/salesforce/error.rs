//! Salesforce's errors, with the org's own codes and fields, classified once.

use serde_json::Value;

use crate::ports::crm::ErrorClass;

pub use crate::ports::crm::SfErrorItem;

impl SfErrorItem {
    pub fn from_json(v: &Value) -> Self {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        // A blank code is no code (found by fuzzing): status and health group by it.
        let code = |k: &str| text(k).filter(|c| !c.trim().is_empty());
        let code = code("errorCode")
            .or_else(|| code("statusCode"))
            .unwrap_or_else(|| "UNKNOWN_ERROR".into());
        SfErrorItem {
            class: code_class(&code),
            code,
            message: text("message").unwrap_or_default(),
            fields: v
                .get("fields")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The class of one Salesforce error code.
pub fn code_class(code: &str) -> ErrorClass {
    match code {
        "UNABLE_TO_LOCK_ROW"
        | "SERVER_UNAVAILABLE"
        | "QUERY_TIMEOUT"
        | "REQUEST_RUNNING_TOO_LONG" => ErrorClass::Retryable,
        "REQUEST_LIMIT_EXCEEDED" => ErrorClass::Budget,
        "INVALID_SESSION_ID"
        | "API_DISABLED_FOR_ORG"
        | "API_CURRENTLY_DISABLED"
        | "INVALID_AUTH_HEADER" => ErrorClass::Fatal,
        _ => ErrorClass::RecordLevel,
    }
}

/// An error answer: its status and items.
#[derive(Debug, Clone, PartialEq)]
pub struct SfApiError {
    pub status: u16,
    pub errors: Vec<SfErrorItem>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SalesforceError {
    #[error("Salesforce {}: {}", .0.status, .0.errors.first().map(|e| format!("{} {}", e.code, e.message)).unwrap_or_default())]
    Api(Box<SfApiError>),
    #[error("Salesforce unreachable: {0}")]
    Transport(String),
    #[error("Salesforce answered something unexpected: {0}")]
    Decode(String),
    #[error("Salesforce refused the OAuth grant: {0}")]
    Auth(String),
    #[error("the Salesforce API budget is spent: {used} of {max} daily calls (ceiling {ceiling})")]
    Budget { used: u64, max: u64, ceiling: u64 },
}

impl SalesforceError {
    pub fn from_body(status: u16, body: &Value) -> Self {
        let errors = match body {
            Value::Array(items) => items.iter().map(SfErrorItem::from_json).collect(),
            other => vec![SfErrorItem::from_json(other)],
        };
        SalesforceError::Api(Box::new(SfApiError { status, errors }))
    }

    /// The first error code, as the org wrote it.
    pub fn code(&self) -> &str {
        match self {
            SalesforceError::Api(e) => e
                .errors
                .first()
                .map_or("UNKNOWN_ERROR", |i| i.code.as_str()),
            SalesforceError::Transport(_) => "TRANSPORT",
            SalesforceError::Decode(_) => "DECODE",
            SalesforceError::Auth(_) => "AUTH",
            SalesforceError::Budget { .. } => "REQUEST_LIMIT_EXCEEDED",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            SalesforceError::Api(e) => Some(e.status),
            _ => None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            SalesforceError::Api(e) => match e.status {
                500..=599 => ErrorClass::Retryable,
                401 => ErrorClass::Fatal,
                _ => code_class(self.code()),
            },
            SalesforceError::Transport(_) | SalesforceError::Decode(_) => ErrorClass::Retryable,
            SalesforceError::Auth(_) => ErrorClass::Fatal,
            SalesforceError::Budget { .. } => ErrorClass::Budget,
        }
    }
}
