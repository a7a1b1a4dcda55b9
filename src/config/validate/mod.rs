//! Validation: raw input -> [`Settings`], one function per section (`okta`, `spot`, `sync`,
//! `http`, `daemon`, `log`), each returning that section's validated type or every problem it
//! found. All problems of all sections are reported together in one message; non-fatal
//! findings become warnings. The helpers shared by sections (ranges, durations, base URLs)
//! live here.
//!
//! Every message names the full key, the bad value (unless it may hold a secret) and the fix.
//! This module must never log or print (warnings are returned), and never read the
//! environment except through the `vars` it is given; secrets are read by `secrets`.

mod daemon;
mod events;
mod http;
mod log;
mod okta;
mod spot;
mod sync;

use std::collections::BTreeMap;
use std::time::Duration;

use url::{Host, Url};

use super::raw::RawConfig;
use super::{Loaded, Settings};

pub use daemon::listen_warning;

/// Checks every section of `raw`; `vars` is the environment (token sources and overrides).
pub(super) fn validate(raw: RawConfig, vars: &BTreeMap<String, String>) -> Result<Loaded, String> {
    let mut p = Problems::default();
    let mut warnings = Vec::new();
    let insecure = raw.http.allow_insecure_http;
    let okta = p.section(okta::settings(raw.okta, insecure, vars, &mut warnings));
    let spot = p.section(spot::settings(raw.spot, insecure, vars, &mut warnings));
    let events = p.section(events::settings(raw.events));
    let events_on = events.as_ref().is_none_or(|e| e.enabled);
    let sync = p.section(sync::settings(raw.sync, vars, events_on));
    let http = p.section(http::settings(raw.http));
    let daemon = p.section(daemon::settings(raw.daemon, &mut warnings));
    let log = p.section(log::settings(raw.log));
    match (okta, spot, sync, http, daemon, log, events) {
        (Some(okta), Some(spot), Some(sync), Some(http), Some(daemon), Some(log), Some(events))
            if p.is_empty() =>
        {
            let settings = Settings {
                okta,
                spot,
                sync,
                http,
                daemon,
                log,
                events,
            };
            Ok(Loaded { settings, warnings })
        }
        _ => Err(join_problems(p.into_problems("a setting"))),
    }
}

/// One problem as is; several as a counted list.
pub(super) fn join_problems(mut problems: Vec<String>) -> String {
    if problems.len() == 1 {
        return problems.remove(0);
    }
    let mut out = format!("{} problems:", problems.len());
    for p in problems {
        out.push_str("\n  - ");
        out.push_str(&p);
    }
    out
}

/// Collects problems so one run reports all of them.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    /// The value, or `None` with the problem recorded.
    fn check<T>(&mut self, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    /// A section's value, or `None` with its problems recorded.
    fn section<T>(&mut self, r: Result<T, Vec<String>>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e);
                None
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, once `what` could not be built; never empty (every `None` a check
    /// returned was recorded, so the fallback cannot happen).
    fn into_problems(self, what: &str) -> Vec<String> {
        if self.0.is_empty() {
            return vec![format!(
                "internal error: {what} was neither valid nor reported"
            )];
        }
        self.0
    }
}

/// `lo..=hi`, converted to the target type.
fn in_range<T: TryFrom<i64>>(key: &str, v: i64, lo: i64, hi: i64) -> Result<T, String> {
    let range = if hi == i64::MAX {
        format!("a whole number of at least {lo}")
    } else {
        format!("a whole number in {lo}..={hi}")
    };
    if v < lo || v > hi {
        return Err(format!("{key} = {v} is out of range; use {range}"));
    }
    T::try_from(v).map_err(|_| format!("{key} = {v} is too large on this platform; use {range}"))
}

/// A positive humantime duration for `key`; `example` is the fix offered.
fn validate_duration(key: &str, raw: &str, example: &str) -> Result<Duration, String> {
    match humantime::parse_duration(raw.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!(
            "{key} = {raw:?} must be greater than zero; use e.g. {example}"
        )),
        Err(e) => Err(format!(
            "{key} = {raw:?} is not a duration ({e}); use a number with a unit, e.g. {example}"
        )),
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.');
            d.eq_ignore_ascii_case("localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// An API base URL: http(s), scheme + host (+ port) only, https unless
/// `http.allow_insecure_http` and the host is loopback.
fn validate_base_url(key: &str, raw: &str, allow_insecure: bool) -> Result<Url, String> {
    let example = if key.starts_with("okta") {
        "https://<your-org>.okta.com"
    } else {
        "https://api.spotinst.io"
    };
    // Never echo a value that may carry credentials (userinfo, a query or fragment).
    let shown = if raw.contains(['@', '?', '#']) {
        "(value not shown: it contains '@', '?' or '#')".to_string()
    } else {
        format!("{raw:?}")
    };
    if raw.is_empty() {
        return Err(format!("{key} is empty; set it to a URL such as {example}"));
    }
    let url = Url::parse(raw).map_err(|e| {
        format!("{key} = {shown} is not an absolute URL ({e}); use a URL such as {example}")
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!(
            "{key} = {shown} has scheme {:?}; use an https:// URL such as {example}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{key} = {shown} contains credentials; remove them (tokens go in {}.token_file)",
            key.split('.').next().unwrap_or("okta")
        ));
    }
    let Some(host) = url.host() else {
        return Err(format!(
            "{key} = {shown} has no host; use a URL such as {example}"
        ));
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{key} = {shown} must be scheme and host only (no path, query or fragment); use a \
             URL such as {example}"
        ));
    }
    if url.scheme() == "http" {
        if !is_loopback(&host) {
            return Err(format!(
                "{key} = {shown} is not https; plain http is only allowed for a loopback host \
                 (127.0.0.1, ::1, localhost) with http.allow_insecure_http = true; use https://"
            ));
        }
        if !allow_insecure {
            return Err(format!(
                "{key} = {shown} is not https; set http.allow_insecure_http = true to allow \
                 plain http to this loopback host (emulators only), or use https://"
            ));
        }
    }
    let mut origin = format!("{}://{}", url.scheme(), host);
    if let Some(port) = url.port() {
        origin.push_str(&format!(":{port}"));
    }
    Url::parse(&origin).map_err(|e| format!("{key} = {shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_reduced_to_scheme_host_port() {
        let ok = |raw: &str, insecure: bool| validate_base_url("okta.org_url", raw, insecure);
        assert_eq!(
            ok("https://Example.Okta.com/", false).unwrap().as_str(),
            "https://example.okta.com/"
        );
        assert_eq!(
            ok("https://example.okta.com:443", false).unwrap().as_str(),
            "https://example.okta.com/"
        );
        assert_eq!(
            ok("https://example.okta.com:8443", false).unwrap().port(),
            Some(8443)
        );
        assert!(ok("http://127.0.0.1:1", true).is_ok());
        assert!(ok("http://127.0.0.1:1", false).is_err());
        assert!(ok("http://192.168.1.1", true).is_err());
        assert!(ok("https://example.okta.com//", false).is_err());
        assert!(ok("https://example.okta.com/#x", false).is_err());
        assert!(ok("mailto:a@b.com", false).is_err());
        assert!(ok("", false).is_err());
    }

    #[test]
    fn loopback_hosts() {
        for (url, expected) in [
            ("http://localhost", true),
            ("http://localhost.", true),
            ("http://127.0.0.1", true),
            ("http://127.255.0.9", true),
            ("http://[::1]", true),
            ("http://[::2]", false),
            ("http://128.0.0.1", false),
            ("http://mylocalhost", false),
        ] {
            let u = Url::parse(url).unwrap();
            assert_eq!(is_loopback(&u.host().unwrap()), expected, "{url}");
        }
    }

    #[test]
    fn ranges_are_inclusive() {
        assert_eq!(in_range::<u32>("k", 1, 1, 500), Ok(1));
        assert_eq!(in_range::<u32>("k", 500, 1, 500), Ok(500));
        assert!(in_range::<u32>("k", 0, 1, 500).is_err());
        assert!(in_range::<u32>("k", 501, 1, 500).is_err());
        assert!(in_range::<usize>("k", -1, 0, i64::MAX)
            .unwrap_err()
            .contains("at least 0"));
    }
}
