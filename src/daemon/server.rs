//! The daemon's HTTP endpoints on `daemon.listen` (loopback by default):
//! - `GET /healthz`: 200 while the process serves requests (liveness);
//! - `GET /readyz`: 200 only while the last complete cycle (or, in events mode, the last
//!   completed poll of the System Log) is younger than `daemon.readiness_max_age` and cycling
//!   is not halted; 503 with the reason otherwise; a second line says how events mode stands;
//! - `GET /metrics`: Prometheus text format, rendered from the daemon's [`Metrics`] handle.
//!
//! Read-only and unauthenticated: it exposes counts and route templates, never a user, an
//! email or a token. Keep it on loopback (or behind a proxy) all the same.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::SharedStatus;
use crate::metrics::Metrics;

/// What the handlers read: the daemon's status and its metrics.
#[derive(Clone)]
struct Served {
    status: SharedStatus,
    metrics: Metrics,
}

/// The router, for tests that call it without a socket.
pub fn router(status: SharedStatus, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Served { status, metrics })
}

/// Serves until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    status: SharedStatus,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let result = axum::serve(listener, router(status, metrics))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!("the health/metrics server stopped: {e}");
    }
}

async fn readyz(State(served): State<Served>) -> impl IntoResponse {
    let (readiness, events) = {
        let status = served.status.lock().unwrap_or_else(|e| e.into_inner());
        (status.readiness(Instant::now()), status.events.clone())
    };
    let events = events.map(|e| format!("events: {e}\n")).unwrap_or_default();
    match readiness {
        Ok(age) => (
            StatusCode::OK,
            format!(
                "ready: last complete cycle or events poll {}s ago\n{events}",
                age.as_secs()
            ),
        ),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n{events}"),
        ),
    }
}

async fn metrics_text(State(served): State<Served>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        served.metrics.render(),
    )
}
