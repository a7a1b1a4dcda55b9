//! The Okta side: the API client (auth, pagination, rate-limit budget), the parsing of
//! `AppUser` pages and `Link` headers, the System Log polls of events mode (`logs`), and the
//! pure classifier of the rows.
//!
//! The client only reads (`GET /api/v1/apps/{appId}/users`, one assignment, the System Log);
//! it never changes Okta except through explicit calls made by `import --assign`.
//!
//! Authentication is an SSWS API token or an OAuth 2.0 service app (`oauth`, with `jwt` for
//! the client key and `dpop` for the proofs).

pub mod classify;
pub mod client;
pub mod dpop;
pub mod jwt;
pub mod logs;
pub mod oauth;
pub mod parse;

pub use client::{CheckInfo, OktaClient};
