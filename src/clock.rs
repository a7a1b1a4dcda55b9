//! The wall clock of events mode and of the rolling hour of deletes: positions in Okta's
//! System Log, event ages (propagation, poll lag), the delete window.
//!
//! In production it is the system clock. With the `testing` feature (the test and bench
//! builds) it follows tokio's clock from the first call on, as the bundled emulators' clock
//! does, so that a test on tokio's paused clock sees virtual time pass on both sides (an event
//! published during a slow read is after the start point taken before it). It must never be
//! used for what outlives a process in a way a test cannot see: entries' `updated_at` and
//! `last_run` keep the system clock.

use chrono::{DateTime, Utc};

/// Now.
pub fn now() -> DateTime<Utc> {
    #[cfg(feature = "testing")]
    {
        use std::sync::OnceLock;
        static BASE: OnceLock<(DateTime<Utc>, tokio::time::Instant)> = OnceLock::new();
        let (wall, at) = BASE.get_or_init(|| (Utc::now(), tokio::time::Instant::now()));
        let elapsed = tokio::time::Instant::now().saturating_duration_since(*at);
        *wall + chrono::TimeDelta::from_std(elapsed).unwrap_or(chrono::TimeDelta::zero())
    }
    #[cfg(not(feature = "testing"))]
    {
        Utc::now()
    }
}
