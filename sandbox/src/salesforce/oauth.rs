//! `POST /services/oauth2/token`: the refresh-token grant and the JWT bearer grant (an
//! RS256 assertion signed with the connected app's certificate key, `iss` the consumer
//! key, `aud` the login host, `exp` at most 3 minutes ahead) issue sessions that expire
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
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            if let Err((error, description)) =
                check_jwt(field("assertion"), &settings, sf.clock.now_ms())
            {
                return refused(error, description);
            }
        }
        _ => return refused("unsupported_grant_type", "grant type not supported"),
    }
    let jwt = field("grant_type") != "refresh_token";
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let instance_url = format!("http://{host}");
    let access = sf.issue_session();
    let scope = if jwt { "api" } else { "refresh_token api id" };
    Json(json!({
        "access_token": access,
        "signature": "c2FuZGJveC1zaWduYXR1cmU=",
        "scope": scope,
        "instance_url": instance_url,
        "id": format!("{instance_url}/id/{}/{}", settings.org_id, INTEGRATION_USER.as_str()),
        "token_type": "Bearer",
        "issued_at": sf.clock.now_ms().to_string(),
    }))
    .into_response()
}

/// Accepted `aud` values: Salesforce's login hosts.
const AUDIENCES: [&str; 2] = [
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];
/// How far ahead `exp` may be.
const EXP_MAX_AHEAD_S: i64 = 180;

fn b64(part: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()
}

/// Checks a JWT bearer assertion; the error is Salesforce's (`error`, `error_description`).
fn check_jwt(
    assertion: &str,
    settings: &super::SalesforceSettings,
    now_ms: i64,
) -> Result<(), (&'static str, &'static str)> {
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let invalid = ("invalid_grant", "invalid assertion");
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(invalid);
    };
    let header: serde_json::Value = b64(header)
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(invalid)?;
    if header["alg"] != "RS256" {
        return Err(invalid);
    }
    let pem = settings
        .jwt_public_key
        .as_deref()
        .ok_or(("invalid_client", "invalid client credentials"))?;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem)
        .map_err(|_| ("invalid_client", "invalid client credentials"))?;
    let signature = b64(signature)
        .and_then(|s| Signature::try_from(s.as_slice()).ok())
        .ok_or(invalid)?;
    VerifyingKey::<sha2::Sha256>::new(key)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| invalid)?;
    let claims: serde_json::Value = b64(payload)
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(invalid)?;
    if claims["iss"] != settings.client_id.as_str() {
        return Err(("invalid_client_id", "client identifier invalid"));
    }
    if claims["sub"].as_str().is_none_or(str::is_empty) {
        return Err(("invalid_grant", "user hasn't approved this consumer"));
    }
    if !claims["aud"]
        .as_str()
        .is_some_and(|a| AUDIENCES.contains(&a.trim_end_matches('/')))
    {
        return Err(("invalid_grant", "audience is invalid"));
    }
    let now_s = now_ms / 1000;
    match claims["exp"].as_i64() {
        Some(exp) if exp > now_s && exp <= now_s + EXP_MAX_AHEAD_S => Ok(()),
        _ => Err(("invalid_grant", "expired authorization code")),
    }
}
