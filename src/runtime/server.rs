//! `/metrics` on one address, `/healthz` and `/readyz` on another.

use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Ready once the controllers' caches are synced.
#[derive(Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

async fn metrics(State(metrics): State<Arc<Metrics>>) -> ([(&'static str, &'static str); 1], String) {
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.encode())
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> (StatusCode, &'static str) {
    if readiness.is_ready() { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "caches not synced") }
}

/// Binds both listeners (so a taken port fails at start) and serves them in the background.
pub async fn serve(
    metrics_addr: SocketAddr,
    health_addr: SocketAddr,
    metrics_state: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let metrics_app = Router::new().route("/metrics", get(metrics)).with_state(metrics_state);
    let health_app =
        Router::new().route("/healthz", get(|| async { "ok" })).route("/readyz", get(readyz)).with_state(readiness);
    let metrics_listener = tokio::net::TcpListener::bind(metrics_addr).await?;
    let health_listener = tokio::net::TcpListener::bind(health_addr).await?;
    let bound = (metrics_listener.local_addr()?, health_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(metrics_listener, metrics_app).await });
    tokio::spawn(async move { axum::serve(health_listener, health_app).await });
    Ok(bound)
}
