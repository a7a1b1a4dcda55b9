//! Okta side: the app-assignment reader and the pure classifier of its rows.
pub mod classify;
