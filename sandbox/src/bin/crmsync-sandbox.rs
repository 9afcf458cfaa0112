//! `crmsync-sandbox`: serves the CRM sandboxes on loopback until killed.

use std::net::SocketAddr;

use clap::Parser;
use crmsync_sandbox::hubspot::limits::RateLimits;
use crmsync_sandbox::hubspot::oauth::OAuthApp;
use crmsync_sandbox::hubspot::webhooks::WebhookSettings;
use crmsync_sandbox::salesforce::SalesforceSettings;
use crmsync_sandbox::salesforce::outbound::OutboundSettings;
use crmsync_sandbox::seed::SeedSpec;
use crmsync_sandbox::{Clock, HubSpotSandbox, HubSpotSettings, SalesforceSandbox};

#[derive(Parser)]
#[command(
    name = "crmsync-sandbox",
    about = "Local HubSpot and Salesforce sandboxes for crmsync"
)]
struct Args {
    /// Where the HubSpot sandbox listens (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    hubspot_addr: SocketAddr,
    /// Where the Salesforce sandbox listens (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    salesforce_addr: SocketAddr,
    /// An access token (session id) Salesforce accepts (repeatable). The first is the
    /// integration user's; changes made with any other count as a person's.
    #[arg(
        long = "salesforce-token",
        default_value = "salesforce-integration-token"
    )]
    salesforce_tokens: Vec<String>,
    /// The org id (outbound messages carry it).
    #[arg(long, default_value = "00D8M0000000001AAA")]
    salesforce_org_id: String,
    /// The client id Salesforce's token endpoint accepts.
    #[arg(long, default_value = "salesforce-client-id")]
    salesforce_client_id: String,
    /// The client secret Salesforce's token endpoint accepts.
    #[arg(long, default_value = "salesforce-client-secret")]
    salesforce_client_secret: String,
    /// The refresh token Salesforce's token endpoint accepts.
    #[arg(long, default_value = "salesforce-refresh-token")]
    salesforce_refresh_token: String,
    /// Salesforce API calls the integration may make per rolling 24 hours.
    #[arg(long, default_value_t = 100_000)]
    salesforce_daily_limit: u64,
    /// The connected app's certificate public key (PEM file) that Salesforce's JWT
    /// bearer grant checks assertions against.
    #[arg(long)]
    salesforce_jwt_public_key: Option<std::path::PathBuf>,
    /// Where Salesforce outbound messages go (none when absent; settable at run time
    /// through the control API).
    #[arg(long)]
    salesforce_outbound_url: Option<String>,
    /// Minutes an OAuth-issued Salesforce session lives.
    #[arg(long, default_value_t = 120)]
    salesforce_session_minutes: i64,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many people (contacts/leads) to generate; companies are a fifth, deals a tenth.
    #[arg(long, default_value_t = 100)]
    records: usize,
    /// Share of records present on both sides.
    #[arg(long, default_value_t = 0.5)]
    overlap: f64,
    /// A Bearer token HubSpot accepts (repeatable). The first is the integration's;
    /// changes made with any other count as a human user's.
    #[arg(long = "hubspot-token", default_value = "hubspot-integration-token")]
    hubspot_tokens: Vec<String>,
    /// Milliseconds added to every response, to stand in for the network.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Switch HubSpot's rate limits off (benchmarks only).
    #[arg(long)]
    no_limits: bool,
    /// Calls per rolling 10 seconds allowed to the integration.
    #[arg(long, default_value_t = RateLimits::default().per_ten_seconds)]
    hubspot_burst: u32,
    /// Calls per day allowed to the integration.
    #[arg(long, default_value_t = RateLimits::default().daily)]
    hubspot_daily: u64,
    /// The HubSpot app's client secret, which signs webhooks.
    #[arg(long, default_value = "hubspot-app-secret")]
    hubspot_app_secret: String,
    /// Where HubSpot webhooks go (none when absent; settable at run time through the
    /// control API).
    #[arg(long)]
    hubspot_webhook_url: Option<String>,
    /// Deliver webhooks exactly once and in order (HubSpot does not promise either).
    #[arg(long)]
    perfect_webhooks: bool,
    /// The OAuth app's client id, client secret and refresh token that HubSpot's token
    /// endpoint accepts (its access tokens act as the integration and expire after 30
    /// minutes).
    #[arg(long, default_value = "hubspot-client-id")]
    hubspot_client_id: String,
    #[arg(long, default_value = "hubspot-client-secret")]
    hubspot_client_secret: String,
    #[arg(long, default_value = "hubspot-refresh-token")]
    hubspot_refresh_token: String,
    /// Milliseconds before a write shows in search (0 switches search lag off).
    #[arg(long, default_value_t = 2_000)]
    search_lag_ms: i64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let settings = HubSpotSettings {
        tokens: args.hubspot_tokens,
        limits: (!args.no_limits).then_some(RateLimits {
            per_ten_seconds: args.hubspot_burst,
            daily: args.hubspot_daily,
            ..RateLimits::default()
        }),
        search_lag_ms: args.search_lag_ms,
        latency_ms: args.latency_ms,
        webhooks: WebhookSettings {
            target_url: args.hubspot_webhook_url,
            app_secret: args.hubspot_app_secret,
            imperfect: !args.perfect_webhooks,
            seed: args.seed,
            ..WebhookSettings::default()
        },
        oauth: OAuthApp {
            client_id: args.hubspot_client_id,
            client_secret: args.hubspot_client_secret,
            refresh_token: args.hubspot_refresh_token,
        },
    };
    let jwt_public_key = match &args.salesforce_jwt_public_key {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(pem) => Some(pem),
            Err(e) => {
                eprintln!(
                    "crmsync-sandbox: cannot read --salesforce-jwt-public-key {}: {e}",
                    path.display()
                );
                return std::process::ExitCode::from(2);
            }
        },
    };
    let sf_settings = SalesforceSettings {
        jwt_public_key,
        tokens: args.salesforce_tokens,
        org_id: args.salesforce_org_id,
        daily_api_limit: (!args.no_limits).then_some(args.salesforce_daily_limit),
        session_ttl_ms: args.salesforce_session_minutes * 60_000,
        latency_ms: args.latency_ms,
        client_id: args.salesforce_client_id,
        client_secret: args.salesforce_client_secret,
        refresh_token: args.salesforce_refresh_token,
        outbound: OutboundSettings {
            url: args.salesforce_outbound_url,
            ..OutboundSettings::default()
        },
        ..SalesforceSettings::default()
    };
    let (hubspot_listener, salesforce_listener) = match (
        tokio::net::TcpListener::bind(args.hubspot_addr).await,
        tokio::net::TcpListener::bind(args.salesforce_addr).await,
    ) {
        (Ok(h), Ok(s)) => (h, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("crmsync-sandbox: cannot listen: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let seed = SeedSpec {
        seed: args.seed,
        records: args.records,
        overlap: args.overlap,
        deals: None,
    };
    // One clock for both sandboxes.
    let clock = Clock::running();
    let hubspot =
        HubSpotSandbox::serve(hubspot_listener, settings, clock.clone(), Some(seed)).await;
    let salesforce =
        SalesforceSandbox::serve(salesforce_listener, sf_settings, clock, Some(seed)).await;
    let (hubspot, salesforce) = match (hubspot, salesforce) {
        (Ok(h), Ok(s)) => (h, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("crmsync-sandbox: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!("hubspot {}", hubspot.url());
    println!("salesforce {}", salesforce.url());
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    std::process::ExitCode::SUCCESS
}
