//! The bundled emulators of the Okta Management API and the Spot organization API, used by
//! the integration tests, the `demo` and `emulate` commands and the benchmarks.
//!
//! This crate owns the public surface (`Emulators`, `OktaSim`, `SpotSim`, `Fixture`, the
//! fault and quirk knobs, the request log, the client config) and server start/stop. It must be
//! faithful to the APIs of docs/api-facts.md, never to this project's client, and must never
//! depend on the reconciler (it is a crate of its own so that the compiler enforces it). Where a fact is unconfirmed, the choice is stated where it is made.

mod client_config;
mod common;
mod fixture;
mod okta;
mod spot;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use client_config::{ClientConfig, Section};
pub use common::{Burst429, FailSpec, Fault, LoggedRequest, PageFault, PageFaultKind};
pub use fixture::{
    AssignmentFixture, Fixture, OAuthClientFixture, OktaFixture, OktaUserFixture,
    SpotAccountFixture, SpotFixture, SpotPolicyFixture, SpotProgrammaticFixture, SpotUserFixture,
};
pub use okta::{OktaSim, OktaUserSpec, SimLogEvent};
pub use spot::{QuirkRule, SimSpotUser, SpotQuirks, SpotSim};

/// Both emulators, served on tokio tasks until `shutdown` or drop.
#[derive(Debug)]
pub struct Emulators {
    pub okta: OktaSim,
    pub spot: SpotSim,
    servers: Vec<Server>,
}

#[derive(Debug)]
struct Server {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn spawn(listener: TcpListener, router: axum::Router) -> Server {
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Server {
        stop: Some(tx),
        task: Some(task),
    }
}

fn invalid(e: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
}

impl Emulators {
    /// Binds both servers (use `127.0.0.1:0` for ephemeral ports) and serves them on tokio
    /// tasks until `shutdown` or drop. A fixture that refers to unknown users or buckets is an
    /// `InvalidInput` error.
    pub async fn start(
        fixture: Fixture,
        okta_addr: SocketAddr,
        spot_addr: SocketAddr,
    ) -> std::io::Result<Emulators> {
        let clock = common::Clock::new();
        let okta_listener = TcpListener::bind(okta_addr).await?;
        let spot_listener = TcpListener::bind(spot_addr).await?;
        let okta =
            OktaSim::new(&fixture.okta, clock, okta_listener.local_addr()?).map_err(invalid)?;
        let spot =
            SpotSim::new(&fixture.spot, clock, spot_listener.local_addr()?).map_err(invalid)?;
        let servers = vec![
            spawn(okta_listener, okta.router()),
            spawn(spot_listener, spot.router()),
        ];
        Ok(Emulators {
            okta,
            spot,
            servers,
        })
    }

    /// Both on `127.0.0.1:0`.
    pub async fn start_local(fixture: Fixture) -> std::io::Result<Emulators> {
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        Emulators::start(fixture, local, local).await
    }

    /// Stops accepting, lets in-flight requests finish (at most 2 s), then stops.
    pub async fn shutdown(mut self) {
        for s in &mut self.servers {
            if let Some(tx) = s.stop.take() {
                let _ = tx.send(());
            }
        }
        for s in &mut self.servers {
            if let Some(t) = s.task.take() {
                let abort = t.abort_handle();
                if tokio::time::timeout(std::time::Duration::from_secs(2), t)
                    .await
                    .is_err()
                {
                    abort.abort();
                }
            }
        }
    }
}
