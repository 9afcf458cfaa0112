//! Getting a session: the refresh-token grant, or the JWT bearer grant with an RS256
//! assertion signed by the connected app's key. Both go to the login URL; the answer
//! names the instance URL to use.

use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};

use super::{SalesforceAuth, SalesforceClient, SalesforceError, Session};
use crate::adapters::http::Secret;

/// How far ahead a JWT assertion expires (Salesforce accepts at most 3 minutes).
const JWT_LIFETIME_S: i64 = 150;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signed assertion for the JWT bearer flow.
pub fn jwt_assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key_pem: &str,
    now_s: i64,
) -> Result<String, SalesforceError> {
    let header = json!({"alg": "RS256"});
    let claims =
        json!({"iss": client_id, "sub": username, "aud": audience, "exp": now_s + JWT_LIFETIME_S});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_key_pem).map_err(|_| {
        SalesforceError::Auth("the JWT private key is not a PKCS#8 PEM RSA key".into())
    })?;
    let signature = SigningKey::<sha2::Sha256>::new(key).sign(input.as_bytes());
    Ok(format!("{input}.{}", b64(&signature.to_bytes())))
}

impl SalesforceClient {
    pub(super) async fn authenticate(&self) -> Result<Session, SalesforceError> {
        let login = self.config.login_url.trim_end_matches('/');
        let form: Vec<(&str, String)> = match &self.config.auth {
            SalesforceAuth::AccessToken(_) => {
                return Err(SalesforceError::Auth(
                    "an access token cannot be renewed".into(),
                ));
            }
            SalesforceAuth::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => vec![
                ("grant_type", "refresh_token".into()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.expose().to_owned()),
                ("refresh_token", refresh_token.expose().to_owned()),
            ],
            SalesforceAuth::Jwt {
                client_id,
                username,
                private_key,
            } => {
                // The audience is Salesforce's login host, whatever URL the grant goes to
                // (a sandbox org uses test.salesforce.com).
                let audience = if login.contains("test.salesforce.com") {
                    "https://test.salesforce.com"
                } else {
                    "https://login.salesforce.com"
                };
                let now_s = chrono::Utc::now().timestamp();
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                    ),
                    (
                        "assertion",
                        jwt_assertion(client_id, username, audience, private_key.expose(), now_s)?,
                    ),
                ]
            }
        };
        self.counter.add("POST /services/oauth2/token");
        let resp = self
            .http
            .post(format!("{login}/services/oauth2/token"))
            .form(&form)
            .send()
            .await
            .map_err(|e| SalesforceError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status != 200 {
            let error = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("refused");
            let description = body
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(SalesforceError::Auth(format!("{error}: {description}")));
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| SalesforceError::Decode("token answer without access_token".into()))?;
        let instance_url = body
            .get("instance_url")
            .and_then(Value::as_str)
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| self.config.instance_url.clone());
        Ok(Session {
            token: Secret::new(token),
            instance_url,
        })
    }
}
