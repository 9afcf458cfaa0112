//! HubSpot's error bodies (`Error` in the specs: `category`, `correlationId`, `message`,
//! optional `status`, `errors`, `context`) and the statuses they come with.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::store::PropertyProblem;

#[derive(Debug, Clone)]
pub struct HsError {
    pub status: StatusCode,
    pub body: Value,
    /// Extra response headers (rate-limit details on a 429).
    pub headers: Vec<(&'static str, String)>,
}

/// A random-looking but deterministic-enough correlation id (uuid form).
pub fn correlation_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0x5eed_0000_0000);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (x >> 32) as u32,
        (x >> 16) as u16,
        (x & 0xfff) as u16,
        (n & 0xfff) as u16,
        x & 0xffff_ffff_ffff
    )
}

impl HsError {
    pub fn new(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        HsError {
            status,
            body: json!({
                "status": "error",
                "message": message.into(),
                "correlationId": correlation_id(),
                "category": category,
            }),
            headers: Vec::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.body[key] = value;
        self
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    pub fn too_many_inputs(max: usize) -> Self {
        Self::validation(format!(
            "The maximum number of inputs supported in a batch is {max}. Please reduce the number of items and try again"
        ))
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    }

    pub fn expired(seconds_ago: i64, expired_at: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            format!("The OAuth token used to make this call expired {seconds_ago} second(s) ago."),
        )
        .with("context", json!({"expire time": [expired_at]}))
    }

    pub fn not_found(upper: &str, id: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("resource not found: {upper} {id} does not exist or was deleted"),
        )
    }

    pub fn unknown_object_type(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Unable to infer object type from: {name}"),
        )
    }

    pub fn conflict(existing: u64, upper: &str) -> Self {
        let noun = match upper {
            "CONTACT" => "Contact".to_owned(),
            other => {
                let lower = other.to_lowercase();
                let mut c = lower.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            }
        };
        Self::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!("{noun} already exists. Existing ID: {existing}"),
        )
    }

    pub fn invalid_properties(problems: &[PropertyProblem]) -> Self {
        let inner: Vec<Value> = problems
            .iter()
            .map(|p| json!({"isValid": false, "message": p.message, "error": p.code, "name": p.name}))
            .collect();
        let errors: Vec<Value> = problems
            .iter()
            .map(|p| json!({"message": p.message, "code": p.code, "context": {"propertyName": [p.name]}}))
            .collect();
        Self::validation(format!(
            "Property values were not valid: {}",
            Value::Array(inner)
        ))
        .with("errors", Value::Array(errors))
    }

    pub fn rate_limited(policy: &str, message: &str) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITS", message);
        e.body["errorType"] = json!("RATE_LIMIT");
        e.body["policyName"] = json!(policy);
        e
    }

    pub fn server_error(status: StatusCode) -> Self {
        Self::new(
            status,
            "INTERNAL_ERROR",
            "internal error (injected by the sandbox's fault control)",
        )
    }
}

impl IntoResponse for HsError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}
