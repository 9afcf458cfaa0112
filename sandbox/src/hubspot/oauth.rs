//! OAuth: the token endpoint (`POST /oauth/v1/token`, and the paths HubSpot's current
//! docs use, `/oauth/v3/token`, `/oauth/2026-03/token`, `/oauth/2026-09/token`): the
//! refresh-token grant issues access tokens that live 30 minutes on the sandbox clock
//! and act as the integration. `GET /oauth/v1/access-tokens/{token}` tells what an
//! issued token is (hub, app, user, scopes, seconds left).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::{HubSpot, lock};

/// HubSpot's access token lifetime.
pub const ACCESS_TOKEN_TTL_MS: i64 = 30 * 60 * 1000;

/// The OAuth app the token endpoint accepts.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
}

impl Default for OAuthApp {
    fn default() -> Self {
        OAuthApp {
            client_id: "hubspot-client-id".into(),
            client_secret: "hubspot-client-secret".into(),
            refresh_token: "hubspot-refresh-token".into(),
        }
    }
}

/// Issued access tokens -> when they expire.
#[derive(Debug, Default)]
pub struct IssuedTokens {
    expiry: HashMap<String, i64>,
    issued: u64,
}

/// What a presented token is.
pub enum TokenState {
    Valid,
    /// Expired at this time (epoch ms).
    Expired(i64),
    Unknown,
}

impl IssuedTokens {
    pub fn check(&self, token: &str, now: i64) -> TokenState {
        match self.expiry.get(token) {
            Some(at) if *at > now => TokenState::Valid,
            Some(at) => TokenState::Expired(*at),
            None => TokenState::Unknown,
        }
    }
}

/// What the sandbox's OAuth app was installed with.
const SCOPES: [&str; 8] = [
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.schemas.custom.read",
];
const APP_ID: u64 = 4_242_001;
const USER_ID: u64 = 9_001;

pub fn routes() -> Router<Arc<HubSpot>> {
    Router::new()
        .route("/oauth/v1/token", post(token))
        .route("/oauth/v3/token", post(token))
        .route("/oauth/2026-03/token", post(token))
        .route("/oauth/2026-09/token", post(token))
        .route("/oauth/v1/access-tokens/{token}", get(token_info))
}

/// An access token's metadata (`AccessTokenInfoResponse`). A private app's token is no
/// OAuth token (HubSpot answers 400); an unknown or expired one is not found.
async fn token_info(State(hs): State<Arc<HubSpot>>, Path(token): Path<String>) -> Response {
    let now = hs.clock.now_ms();
    let state = lock(&hs.issued).check(&token, now);
    match state {
        TokenState::Valid => {
            let expires_at = lock(&hs.issued).expiry.get(&token).copied().unwrap_or(now);
            Json(json!({
                "token": token,
                "user": "integration@sandbox.example",
                "hub_domain": "sandbox.example",
                "scopes": SCOPES,
                "hub_id": super::webhooks::PORTAL_ID,
                "app_id": APP_ID,
                "expires_in": (expires_at - now) / 1000,
                "user_id": USER_ID,
                "token_type": "access",
            }))
            .into_response()
        }
        _ if lock(&hs.settings).tokens.contains(&token) => {
            bad("error", "The access token must have the correct format")
        }
        TokenState::Expired(_) | TokenState::Unknown => super::error::HsError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "access token not found or expired",
        )
        .into_response(),
    }
}

fn bad(status: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": status, "message": message, "correlationId": super::error::correlation_id()})),
    )
        .into_response()
}

async fn token(State(hs): State<Arc<HubSpot>>, bytes: Bytes) -> Response {
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&bytes) {
        Ok(f) => f,
        Err(_) => return bad("BAD_REQUEST", "the body must be form-encoded"),
    };
    let app = lock(&hs.settings).oauth.clone();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "refresh_token" {
        return bad("UNSUPPORTED_GRANT_TYPE", "grant_type must be refresh_token");
    }
    if field("client_id") != app.client_id || field("client_secret") != app.client_secret {
        return bad(
            "BAD_CLIENT_ID",
            "missing or invalid client_id / client_secret",
        );
    }
    if field("refresh_token") != app.refresh_token {
        return bad("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
    }
    let now = hs.clock.now_ms();
    let access = {
        let mut tokens = lock(&hs.issued);
        tokens.issued += 1;
        let access = format!("CIrT{:016x}{:08x}", now, tokens.issued);
        tokens
            .expiry
            .insert(access.clone(), now + ACCESS_TOKEN_TTL_MS);
        access
    };
    Json(json!({
        "token_type": "bearer",
        "token_use": "access_token",
        "refresh_token": app.refresh_token,
        "access_token": access,
        "expires_in": ACCESS_TOKEN_TTL_MS / 1000,
        "hub_id": super::webhooks::PORTAL_ID,
        "scopes": SCOPES,
    }))
    .into_response()
}
