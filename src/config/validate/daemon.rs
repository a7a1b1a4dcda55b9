//! `[daemon]`: the health/metrics address (a non-loopback one draws a warning, at start and
//! in `check`: [`listen_warning`]) and the readiness age.
//!
//! Returns [`DaemonSettings`] or every problem found. Must never log (the warning is
//! returned) and never bind the address.

use std::net::SocketAddr;

use super::super::raw::RawDaemon;
use super::super::settings::DaemonSettings;
use super::{validate_duration, Problems};

/// The `[daemon]` section.
pub(super) fn settings(
    raw: RawDaemon,
    warnings: &mut Vec<String>,
) -> Result<DaemonSettings, Vec<String>> {
    let mut p = Problems::default();
    let listen = p.check(validate_listen(&raw.listen));
    if let Some(warning) = listen.flatten().as_ref().and_then(listen_warning) {
        warnings.push(warning);
    }
    let readiness_max_age = p.check(validate_duration(
        "daemon.readiness_max_age",
        &raw.readiness_max_age,
        "\"30m\" (keep it above the schedule's interval)",
    ));
    match (listen, readiness_max_age) {
        (Some(listen), Some(readiness_max_age)) if p.is_empty() => Ok(DaemonSettings {
            listen,
            readiness_max_age,
        }),
        _ => Err(p.into_problems("a [daemon] setting")),
    }
}

fn validate_listen(raw: &str) -> Result<Option<SocketAddr>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!(
            "daemon.listen = {raw:?} is not an IP address and port; use e.g. \
             \"127.0.0.1:9464\", or \"\" to turn the health/metrics server off"
        )
    })
}

/// The warning a `daemon.listen` address draws: any address but loopback serves `/metrics`
/// (user counts, API routes, rate limits) and the health endpoints to the network, without
/// authentication.
pub fn listen_warning(addr: &SocketAddr) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "daemon.listen = \"{addr}\" is not a loopback address: /metrics, /healthz and /readyz \
         are served without authentication to whoever can reach it; use \"127.0.0.1:{}\" \
         (scrape through a local agent or an authenticating proxy), or \"\" to turn the \
         server off",
        addr.port()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_listen_addresses_are_quiet() {
        for quiet in ["127.0.0.1:9464", "[::1]:9464", "127.0.0.2:1"] {
            assert_eq!(listen_warning(&quiet.parse().unwrap()), None, "{quiet}");
        }
        for loud in ["0.0.0.0:9464", "[::]:9464", "10.0.0.5:9464"] {
            let w = listen_warning(&loud.parse().unwrap()).unwrap();
            assert!(w.contains("daemon.listen") && w.contains("loopback"), "{w}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(validate_listen(""), Ok(None));
        assert_eq!(validate_listen("  "), Ok(None));
        assert_eq!(
            validate_listen("[::1]:9464"),
            Ok(Some("[::1]:9464".parse().unwrap()))
        );
        assert!(validate_listen("127.0.0.1").is_err());
        assert!(validate_listen("localhost:9464").is_err());
    }
}
