//! okta-spot-sync: keeps a Spot organization's users in line with the users assigned to an
//! Okta app. The library holds everything; `main.rs` only parses arguments and maps errors to
//! exit codes.
//!
//! Layout: a pure core (`model`, `plan`, `guard`) that decides, a thin shell (`okta`, `spot`,
//! `http`, `ledger`, `apply`) that talks to the world, and `sim` — the bundled emulators of
//! both APIs used by the tests, the demo and the benchmarks.

pub mod config;
pub mod error;
pub mod model;
pub mod sim;

pub use error::{Api, Error, Result};
