//! The Spot side: the organization API client (envelope, users, accounts, policies, user
//! create/delete, policy mapping). Role mapping policy lives in configuration and `apply`.

pub mod client;
pub mod throttle;

pub use client::{is_already_exists, is_not_found, SpotCheckInfo, SpotClient};
