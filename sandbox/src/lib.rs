//! crmsync's CRM sandboxes: local, stateful servers that speak HubSpot's (and, later,
//! Salesforce's) HTTP APIs with their limits, paging, errors and lag, so the engine,
//! its tests, the demo and the benchmarks never need the real services.
//!
//! A library first: tests start a sandbox in-process on a free loopback port
//! ([`HubSpotSandbox::spawn`]); the `crmsync-sandbox` binary serves the same thing.
//! This crate shares no code with the engine's CRM clients: each side is written from
//! the CRMs' documentation on its own, so a misreading in one is caught by the other.

pub mod clock;
pub mod hubspot;
pub mod salesforce;
pub mod scheduled;
pub mod seed;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use clock::Clock;
pub use hubspot::{HubSpot, HubSpotSettings};

/// A HubSpot sandbox running on a loopback port.
#[derive(Debug, Clone)]
pub struct HubSpotSandbox {
    pub addr: SocketAddr,
    pub state: Arc<HubSpot>,
}

impl HubSpotSandbox {
    /// Binds `127.0.0.1:0` and serves a new portal in the background (seeded when a
    /// spec is given).
    pub async fn spawn(
        settings: HubSpotSettings,
        clock: Clock,
        seed: Option<seed::SeedSpec>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener, settings, clock, seed).await
    }

    /// Serves a new portal on an already bound listener.
    pub async fn serve(
        listener: TcpListener,
        settings: HubSpotSettings,
        clock: Clock,
        seed: Option<seed::SeedSpec>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = HubSpot::new(settings, clock);
        if let Some(spec) = seed {
            let now = seed::seeded_at(state.clock.now_ms());
            let world = seed::generate(spec);
            let mut portal = hubspot::lock(&state.portal);
            let mut associations = hubspot::lock(&state.associations);
            hubspot::seed_portal(&mut portal, &mut associations, &world, now)
                .map_err(|e| std::io::Error::other(e.body.to_string()))?;
        }
        tokio::spawn(hubspot::webhooks::run(state.clone()));
        let app = hubspot::router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("hubspot sandbox stopped: {e}");
            }
        });
        Ok(HubSpotSandbox { addr, state })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A Salesforce sandbox running on a loopback port.
#[derive(Debug, Clone)]
pub struct SalesforceSandbox {
    pub addr: SocketAddr,
    pub state: Arc<salesforce::Salesforce>,
}

impl SalesforceSandbox {
    /// Binds `127.0.0.1:0` and serves a new org in the background.
    pub async fn spawn(
        settings: salesforce::SalesforceSettings,
        clock: Clock,
        seed: Option<seed::SeedSpec>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener, settings, clock, seed).await
    }

    pub async fn serve(
        listener: TcpListener,
        settings: salesforce::SalesforceSettings,
        clock: Clock,
        seed: Option<seed::SeedSpec>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = salesforce::Salesforce::new(settings, clock);
        if let Some(spec) = seed {
            let now = seed::seeded_at(state.clock.now_ms());
            let world = seed::generate(spec);
            salesforce::seed::seed(&mut hubspot::lock(&state.org), &world, now);
        }
        tokio::spawn(salesforce::outbound::run(
            state.clone(),
            format!("http://{addr}"),
        ));
        let app = salesforce::router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("salesforce sandbox stopped: {e}");
            }
        });
        Ok(SalesforceSandbox { addr, state })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
