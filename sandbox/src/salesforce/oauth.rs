//! `POST /services/oauth2/token`: the refresh-token grant issues sessions that expire
//! after the org's session timeout (then: 401 INVALID_SESSION_ID). Issued sessions act
//! as the integration user.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::Salesforce;
use super::store::INTEGRATION_USER;
use crate::hubspot::lock;

pub fn routes() -> Router<Arc<Salesforce>> {
    Router::new().route("/services/oauth2/token", post(token))
}

fn refused(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(sf): State<Arc<Salesforce>>, headers: HeaderMap, bytes: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<HashMap<String, String>>(&bytes) else {
        return refused("invalid_request", "the body must be form-encoded");
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let settings = lock(&sf.settings).clone();
    match field("grant_type") {
        "refresh_token" => {
            if field("client_id") != settings.client_id
                || field("client_secret") != settings.client_secret
            {
                return refused("invalid_client", "invalid client credentials");
            }
            if field("refresh_token") != settings.refresh_token {
                return refused("invalid_grant", "expired access/refresh token");
            }
        }
        _ => return refused("unsupported_grant_type", "grant type not supported"),
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let instance_url = format!("http://{host}");
    let access = sf.issue_session();
    Json(json!({
        "access_token": access,
        "signature": "c2FuZGJveC1zaWduYXR1cmU=",
        "scope": "refresh_token api id",
        "instance_url": instance_url,
        "id": format!("{instance_url}/id/{}/{}", settings.org_id, INTEGRATION_USER.as_str()),
        "token_type": "Bearer",
        "issued_at": sf.clock.now_ms().to_string(),
    }))
    .into_response()
}
