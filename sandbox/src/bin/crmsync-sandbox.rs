//! `crmsync-sandbox`: serves the CRM sandboxes on loopback until killed.

use std::net::SocketAddr;

use clap::Parser;
use crmsync_sandbox::hubspot::limits::RateLimits;
use crmsync_sandbox::hubspot::oauth::OAuthApp;
use crmsync_sandbox::hubspot::webhooks::WebhookSettings;
use crmsync_sandbox::seed::SeedSpec;
use crmsync_sandbox::{Clock, HubSpotSandbox, HubSpotSettings};

#[derive(Parser)]
#[command(
    name = "crmsync-sandbox",
    about = "Local HubSpot (and Salesforce) sandboxes for crmsync"
)]
struct Args {
    /// Where the HubSpot sandbox listens (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    hubspot_addr: SocketAddr,
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
        },
        oauth: OAuthApp {
            client_id: args.hubspot_client_id,
            client_secret: args.hubspot_client_secret,
            refresh_token: args.hubspot_refresh_token,
        },
    };
    let listener = match tokio::net::TcpListener::bind(args.hubspot_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "crmsync-sandbox: cannot listen on {}: {e}",
                args.hubspot_addr
            );
            return std::process::ExitCode::from(2);
        }
    };
    let seed = SeedSpec {
        seed: args.seed,
        records: args.records,
        overlap: args.overlap,
    };
    let hubspot =
        match HubSpotSandbox::serve(listener, settings, Clock::running(), Some(seed)).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("crmsync-sandbox: {e}");
                return std::process::ExitCode::from(2);
            }
        };
    println!("hubspot {}", hubspot.url());
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    std::process::ExitCode::SUCCESS
}
