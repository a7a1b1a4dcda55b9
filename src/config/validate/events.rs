//! `[events]`: whether `run` follows Okta's System Log between full cycles, and how often it
//! polls it (README "Events mode").
//!
//! Returns [`EventsSettings`] or every problem found. Must never log, and never talk to Okta
//! (whether the System Log is readable is `check`'s and the daemon's business).

use std::time::Duration;

use super::super::raw::RawEvents;
use super::super::settings::EventsSettings;
use super::{validate_duration, Problems};

/// The shortest and longest `events.poll_interval`: Okta's System Log bucket is 120 requests a
/// minute on Workforce (50 on Enterprise), and a leaver should lose Spot within minutes.
const POLL_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));

/// The `[events]` section.
pub(super) fn settings(raw: RawEvents) -> Result<EventsSettings, Vec<String>> {
    let mut p = Problems::default();
    let poll_interval = p
        .check(validate_duration(
            "events.poll_interval",
            &raw.poll_interval,
            "\"15s\"",
        ))
        .and_then(|d| {
            let (min, max) = POLL_INTERVAL_RANGE;
            p.check(if (min..=max).contains(&d) {
                Ok(d)
            } else {
                Err(format!(
                    "events.poll_interval = {:?} is outside 1s..1h; use e.g. \"15s\" (each poll \
                     is one request of Okta's System Log bucket, 120 a minute on Workforce)",
                    raw.poll_interval
                ))
            })
        });
    match poll_interval {
        Some(poll_interval) if p.is_empty() => Ok(EventsSettings {
            enabled: raw.enabled,
            poll_interval,
        }),
        _ => Err(p.into_problems("an [events] setting")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_interval_defaults_to_15s_and_is_bounded() {
        let s = settings(RawEvents::default()).unwrap();
        assert_eq!(
            s,
            EventsSettings {
                enabled: true,
                poll_interval: Duration::from_secs(15)
            }
        );
        for bad in ["0s", "500ms", "2h", "soon"] {
            let raw = RawEvents {
                poll_interval: bad.into(),
                ..RawEvents::default()
            };
            let err = settings(raw).unwrap_err().join("\n");
            assert!(err.contains("events.poll_interval"), "{bad}: {err}");
        }
    }
}
