//! The Okta side: the API client (auth, pagination, rate-limit budget), the parsing of
//! `AppUser` pages and `Link` headers, and the pure classifier of the rows.
//!
//! The client only reads (`GET /api/v1/apps/{appId}/users`); it never changes Okta except
//! through explicit calls made by `import --assign`.

pub mod classify;
pub mod client;
pub mod parse;

pub use client::{CheckInfo, OktaClient};
