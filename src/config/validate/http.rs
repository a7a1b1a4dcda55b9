//! `[http]`: the per-request timeout, the retry budget and whether plain http to a loopback
//! host is allowed (the base URLs are checked against it by their own sections).
//!
//! Returns [`HttpSettings`] or every problem found. Must never log.

use std::time::Duration;

use super::super::raw::RawHttp;
use super::super::settings::HttpSettings;
use super::{in_range, Problems};

/// The `[http]` section.
pub(super) fn settings(raw: RawHttp) -> Result<HttpSettings, Vec<String>> {
    let mut p = Problems::default();
    let timeout = p.check(validate_timeout(&raw.timeout));
    let max_retries = p.check(in_range("http.max_retries", raw.max_retries, 0, 20));
    match (timeout, max_retries) {
        (Some(timeout), Some(max_retries)) if p.is_empty() => Ok(HttpSettings {
            timeout,
            max_retries,
            allow_insecure_http: raw.allow_insecure_http,
        }),
        _ => Err(p.into_problems("an [http] setting")),
    }
}

fn validate_timeout(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw.trim()).map_err(|e| {
        format!(
            "http.timeout = {raw:?} is not a duration ({e}); use a number with a unit, e.g. \
             \"30s\" or \"2m\""
        )
    })?;
    if d.is_zero() {
        return Err(format!(
            "http.timeout = {raw:?} must be greater than zero; use e.g. \"30s\""
        ));
    }
    Ok(d)
}
