//! okta-spot-sync: keeps a Spot organization's users in line with the users assigned to an
//! Okta app. The library holds everything; `main.rs` only parses arguments and maps errors to
//! exit codes.
//!
//! Layout: a pure core (`model`, `plan`, `guard`, `okta::classify`, `import::decide`) that
//! decides, a thin shell (`okta`, `spot`, `http`, `ledger`, `apply`, `import`) that talks to
//! the world (docs/architecture.md). The bundled emulators
//! of both APIs, used by the tests, the demo and the benchmarks, are the `okta-spot-sim` crate
//! (`crates/okta-spot-sim`), which cannot import this one.

pub mod access;
pub mod action;
pub mod apply;
pub mod audit;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod cycle;
pub mod daemon;
pub mod error;
pub mod events;
pub mod explain;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod fsutil;
pub mod guard;
pub mod http;
pub mod import;
pub mod ledger;
pub mod lock;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod okta;
pub mod output;
pub mod plan;
pub mod report;
pub mod sim_commands;
pub mod spot;

pub use error::{Api, Error, Result};
