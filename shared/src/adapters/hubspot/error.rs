//! HubSpot's errors, with the CRM's own category and message, classified once.

use serde_json::Value;

use crate::adapters::http::ErrorClass;

/// An error body HubSpot answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub category: String,
    pub message: String,
    /// `context` of the body (ids, property names...).
    pub context: Value,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HubSpotError {
    /// HubSpot answered with an error body.
    #[error("HubSpot {} {}: {}", .0.status, .0.category, .0.message)]
    Api(Box<ApiError>),
    /// No answer: connection refused or reset, timeout.
    #[error("HubSpot unreachable: {0}")]
    Transport(String),
    /// An answer that is not what the API documents.
    #[error("HubSpot answered something unexpected: {0}")]
    Decode(String),
    /// The OAuth token endpoint refused the refresh.
    #[error("HubSpot refused the OAuth refresh: {0}")]
    Auth(String),
}

impl HubSpotError {
    pub fn from_body(status: u16, body: &Value) -> Self {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        HubSpotError::Api(Box::new(ApiError {
            status,
            category: text("category").unwrap_or_else(|| format!("HTTP_{status}")),
            message: text("message").unwrap_or_default(),
            context: body.get("context").cloned().unwrap_or(Value::Null),
            correlation_id: text("correlationId"),
        }))
    }

    /// The HTTP status of an error body, if HubSpot answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HubSpotError::Api(e) => Some(e.status),
            _ => None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            HubSpotError::Api(e) => match e.status {
                429 | 423 | 477 | 500..=599 => ErrorClass::Retryable,
                401 | 403 => ErrorClass::Fatal,
                _ => ErrorClass::RecordLevel,
            },
            HubSpotError::Transport(_) => ErrorClass::Retryable,
            HubSpotError::Decode(_) => ErrorClass::Retryable,
            HubSpotError::Auth(_) => ErrorClass::Fatal,
        }
    }

    /// The CRM's own code for per-record reasons (`CONFLICT`, `VALIDATION_ERROR`...).
    pub fn code(&self) -> &str {
        match self {
            HubSpotError::Api(e) => &e.category,
            HubSpotError::Transport(_) => "TRANSPORT",
            HubSpotError::Decode(_) => "DECODE",
            HubSpotError::Auth(_) => "AUTH",
        }
    }
}
