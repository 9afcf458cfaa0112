//! Salesforce's error bodies: a JSON array of `{message, errorCode, fields}` for REST
//! calls, and `{statusCode, message, fields}` per record inside Collections results.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One error about one record or request.
#[derive(Debug, Clone, PartialEq)]
pub struct SfError {
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
    /// `duplicateResult` of DUPLICATES_DETECTED.
    pub extra: Option<Box<(String, Value)>>,
}

impl SfError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        SfError {
            code: code.into(),
            message: message.into(),
            fields: Vec::new(),
            extra: None,
        }
    }

    pub fn on(mut self, fields: &[&str]) -> Self {
        self.fields = fields.iter().map(|f| (*f).to_owned()).collect();
        self
    }

    /// As a REST error array item.
    pub fn rest(&self) -> Value {
        let mut v = json!({"message": self.message, "errorCode": self.code});
        if !self.fields.is_empty() {
            v["fields"] = json!(self.fields);
        }
        if let Some(extra) = &self.extra {
            v[extra.0.as_str()] = extra.1.clone();
        }
        v
    }

    /// As an error inside a Collections / create result.
    pub fn result(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }
}

/// An HTTP error answer: a status and the errors of the body.
#[derive(Debug, Clone)]
pub struct SfFailure {
    pub status: StatusCode,
    pub errors: Vec<SfError>,
    pub headers: Vec<(&'static str, String)>,
}

impl SfFailure {
    pub fn new(status: StatusCode, error: SfError) -> Self {
        SfFailure {
            status,
            errors: vec![error],
            headers: Vec::new(),
        }
    }

    pub fn bad_request(errors: Vec<SfError>) -> Self {
        SfFailure {
            status: StatusCode::BAD_REQUEST,
            errors,
            headers: Vec::new(),
        }
    }

    pub fn invalid_session() -> Self {
        let mut f = Self::new(
            StatusCode::UNAUTHORIZED,
            SfError::new("INVALID_SESSION_ID", "Session expired or invalid"),
        );
        f.headers.push(("www-authenticate", "Token".into()));
        f
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            SfError::new("NOT_FOUND", "The requested resource does not exist"),
        )
    }

    pub fn malformed_query(message: impl Into<String>) -> Self {
        Self::bad_request(vec![SfError::new("MALFORMED_QUERY", message)])
    }

    pub fn limit_exceeded() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            SfError::new("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        )
    }
}

impl From<SfError> for SfFailure {
    fn from(e: SfError) -> Self {
        let status = match e.code.as_str() {
            "ENTITY_IS_DELETED" | "NOT_FOUND" => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        SfFailure::new(status, e)
    }
}

impl IntoResponse for SfFailure {
    fn into_response(self) -> Response {
        let body: Vec<Value> = self.errors.iter().map(SfError::rest).collect();
        let mut response = (self.status, axum::Json(Value::Array(body))).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}
