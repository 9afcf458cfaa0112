//! The trigger intake behind API Gateway (HTTP API, payload v2): HubSpot webhooks,
//! Salesforce outbound messages, manual sync requests and sync health. The rules live
//! in `crmsync_shared::pipeline::intake`; this maps the API Gateway event to them.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use base64::Engine;
use crmsync_shared::aws::{Deployment, cold_start};
use crmsync_shared::pipeline::intake::IntakeRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// The route without the stage prefix API Gateway adds to `rawPath` on named stages.
fn route(event: &ApiGatewayV2httpRequest) -> String {
    let path = event.raw_path.clone().unwrap_or_else(|| "/".into());
    match event.request_context.stage.as_deref() {
        Some(stage) if stage != "$default" => {
            let prefix = format!("/{stage}");
            match path.strip_prefix(&prefix) {
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => path,
            }
        }
        _ => path,
    }
}

fn request(event: &ApiGatewayV2httpRequest) -> Result<IntakeRequest, String> {
    let body = match (&event.body, event.is_base64_encoded) {
        (None, _) => Vec::new(),
        (Some(b), false) => b.as_bytes().to_vec(),
        (Some(b), true) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| format!("the body is not valid base64: {e}"))?,
    };
    Ok(IntakeRequest {
        method: event.request_context.http.method.as_str().to_owned(),
        path: route(event),
        query: event.raw_query_string.clone().filter(|q| !q.is_empty()),
        headers: event
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body,
    })
}

fn response(
    status: u16,
    content_type: &'static str,
    body: String,
    extra: Vec<(&'static str, String)>,
) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    // The event types are non-exhaustive in 1.x: built from the default.
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body));
    response.is_base64_encoded = false;
    response
}

async fn handle(
    deployment: &Deployment,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    let request = match request(&event.payload) {
        Ok(r) => r,
        Err(e) => {
            return Ok(response(
                400,
                "application/json",
                serde_json::json!({"error": e}).to_string(),
                Vec::new(),
            ));
        }
    };
    let answer = deployment.intake.handle(&request).await;
    Ok(response(
        answer.status,
        answer.content_type,
        answer.body,
        answer.headers,
    ))
}

/// mimalloc, not glibc's allocator: see the workspace's Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deployment = cold_start("intake").await?;
    lambda_runtime::run(service_fn(|event| handle(&deployment, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stage: &str, path: &str, body: Option<&str>, base64: bool) -> ApiGatewayV2httpRequest {
        let json = serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "token=abc",
            "headers": {"x-hubspot-signature-v3": "sig"},
            "requestContext": {
                "accountId": "123", "apiId": "api", "domainName": "x", "domainPrefix": "x",
                "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "t"},
                "requestId": "r", "routeKey": "$default", "stage": stage, "time": "t", "timeEpoch": 0
            },
            "body": body,
            "isBase64Encoded": base64
        });
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_stage_prefix_goes_and_bodies_decode() {
        let r = request(&event(
            "prod",
            "/prod/webhooks/salesforce",
            Some("PGE+"),
            true,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.path, "/webhooks/salesforce");
        assert_eq!(r.method, "POST");
        assert_eq!(r.query.as_deref(), Some("token=abc"));
        assert_eq!(r.body, b"<a>");
        assert_eq!(
            r.headers,
            vec![("x-hubspot-signature-v3".to_owned(), "sig".to_owned())]
        );
        let r =
            request(&event("$default", "/health", None, false)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.path, "/health");
        assert!(request(&event("$default", "/sync", Some("!!"), true)).is_err());
    }
}
