//! The Spot side: the organization API client (envelope, users, accounts, policies, user
//! create/delete, user details, policy mapping) and the shape of a user's access (`access`). Role mapping policy lives in configuration and `apply`.

pub mod access;
pub mod client;
pub mod throttle;

pub use access::{SpotUserDetails, UserDetails, UserLookup, UserPolicy, ALL_ACCOUNTS};
pub use client::{is_already_exists, is_not_found, SpotCheckInfo, SpotClient};
