//! The daemon's Prometheus metrics: names, help texts, and the functions that record them.
//!
//! Recording goes through the `metrics` facade; `metrics-exporter-prometheus` renders the text
//! format for `GET /metrics`. The recorder is process-global and installed once by
//! [`handle`]; until then every recording is a no-op, so the one-shot commands pay nothing.
//! Label values are bounded sets (action kinds, guard names, route templates, status codes):
//! never an email, a user id or a URL.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::http::{Observer, RequestRecord};
use crate::plan::ActionStatus;
use crate::report::Report;

pub const CYCLES: &str = "okta_spot_sync_cycles_total";
pub const CYCLE_DURATION: &str = "okta_spot_sync_cycle_duration_seconds";
pub const LAST_SUCCESS: &str = "okta_spot_sync_last_success_timestamp_seconds";
pub const CONSECUTIVE_FAILURES: &str = "okta_spot_sync_consecutive_failures";
pub const TICKS_SKIPPED: &str = "okta_spot_sync_ticks_skipped_total";
pub const ACTIONS: &str = "okta_spot_sync_actions_total";
pub const GUARD_TRIPS: &str = "okta_spot_sync_guard_trips_total";
pub const MANAGED_USERS: &str = "okta_spot_sync_managed_users";
pub const API_REQUESTS: &str = "okta_spot_sync_api_requests_total";
pub const API_REQUEST_DURATION: &str = "okta_spot_sync_api_request_duration_seconds";
pub const RATE_LIMIT_REMAINING: &str = "okta_spot_sync_api_rate_limit_remaining";
pub const CONFIG_RELOADS: &str = "okta_spot_sync_config_reloads_total";
pub const HALTED: &str = "okta_spot_sync_halted";

/// Cycle results, the `result` label of [`CYCLES`].
pub mod result {
    /// Read, planned and applied; no action failed, no guard tripped.
    pub const OK: &str = "ok";
    /// Completed, but a guard blocked actions.
    pub const BLOCKED: &str = "blocked";
    /// Completed, but at least one action failed.
    pub const ACTIONS_FAILED: &str = "actions_failed";
    /// Did not complete (read error, state file error, …); nothing or part was applied.
    pub const ERROR: &str = "error";
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global recorder on first use and returns its handle. `None` when another
/// recorder was installed first (the metrics then go there and `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
            let api_buckets = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(CYCLE_DURATION.into()), &buckets)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(API_REQUEST_DURATION.into()),
                        &api_buckets,
                    )
                })
                .and_then(|b| b.install_recorder())
                .ok()?;
            describe();
            initialise();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_counter!(
        CYCLES,
        "Reconcile cycles by result (ok, blocked, actions_failed, error)."
    );
    describe_histogram!(
        CYCLE_DURATION,
        metrics::Unit::Seconds,
        "Wall time of a reconcile cycle, read to record."
    );
    describe_gauge!(
        LAST_SUCCESS,
        metrics::Unit::Seconds,
        "Unix time of the last cycle that completed (any result but error)."
    );
    describe_gauge!(
        CONSECUTIVE_FAILURES,
        "Cycles in a row that ended in error; 0 after a completed cycle."
    );
    describe_counter!(
        TICKS_SKIPPED,
        "Schedule ticks that started no cycle, by reason (cycle_running, backoff, halted)."
    );
    describe_counter!(
        ACTIONS,
        "Actions by kind and result (applied, failed, blocked, not_started)."
    );
    describe_counter!(GUARD_TRIPS, "Safety-guard trips by guard.");
    describe_gauge!(
        MANAGED_USERS,
        "Spot users this tool manages (created or adopted) after the last cycle."
    );
    describe_counter!(
        API_REQUESTS,
        "HTTP attempts to Okta and Spot by api, route template and status (\"error\": no response)."
    );
    describe_histogram!(
        API_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Duration of one HTTP attempt by api and route template."
    );
    describe_gauge!(
        RATE_LIMIT_REMAINING,
        "Rate-limit remaining count of the last response, by api and route (Okta: X-Rate-Limit-Remaining)."
    );
    describe_counter!(
        CONFIG_RELOADS,
        "Configuration reloads (SIGHUP) by result (applied, rejected)."
    );
    describe_gauge!(
        HALTED,
        "1 while cycling is stopped by a configuration or credential error (fix it, then reload)."
    );
}

/// Gives the bounded label sets their zero series, so dashboards and alerts see them before
/// the first event.
fn initialise() {
    for r in [
        result::OK,
        result::BLOCKED,
        result::ACTIONS_FAILED,
        result::ERROR,
    ] {
        counter!(CYCLES, "result" => r).increment(0);
    }
    for reason in ["cycle_running", "backoff", "halted"] {
        counter!(TICKS_SKIPPED, "reason" => reason).increment(0);
    }
    for guard in [
        "empty_source",
        "max_deletes",
        "max_delete_percent",
        "last_personal_user",
        "never_touch",
    ] {
        counter!(GUARD_TRIPS, "guard" => guard).increment(0);
    }
    for r in ["applied", "rejected"] {
        counter!(CONFIG_RELOADS, "result" => r).increment(0);
    }
    gauge!(CONSECUTIVE_FAILURES).set(0.0);
    gauge!(HALTED).set(0.0);
}

/// The result label of a completed cycle.
pub fn cycle_result(report: &Report) -> &'static str {
    if report.summary.failed > 0 {
        result::ACTIONS_FAILED
    } else if !report.blocked_by.is_empty() {
        result::BLOCKED
    } else {
        result::OK
    }
}

/// Records one finished cycle. `report` is `None` when the cycle ended in error.
pub fn record_cycle(report: Option<&Report>, duration: Duration) {
    let result = report.map(cycle_result).unwrap_or(result::ERROR);
    counter!(CYCLES, "result" => result).increment(1);
    histogram!(CYCLE_DURATION).record(duration.as_secs_f64());
    let Some(report) = report else { return };
    gauge!(LAST_SUCCESS).set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    for action in &report.actions {
        let status = match action.status {
            ActionStatus::Planned => "not_started",
            other => other.as_str(),
        };
        counter!(ACTIONS, "action" => action.action.as_str(), "result" => status).increment(1);
    }
    for trip in &report.blocked_by {
        counter!(GUARD_TRIPS, "guard" => trip.guard.clone()).increment(1);
    }
}

pub fn set_managed_users(n: usize) {
    gauge!(MANAGED_USERS).set(n as f64);
}

pub fn set_consecutive_failures(n: u32) {
    gauge!(CONSECUTIVE_FAILURES).set(f64::from(n));
}

pub fn tick_skipped(reason: &'static str) {
    counter!(TICKS_SKIPPED, "reason" => reason).increment(1);
}

pub fn config_reload(applied: bool) {
    let r = if applied { "applied" } else { "rejected" };
    counter!(CONFIG_RELOADS, "result" => r).increment(1);
}

pub fn set_halted(halted: bool) {
    gauge!(HALTED).set(if halted { 1.0 } else { 0.0 });
}

/// A route template as a label: `/api/v1/apps/{appId}/users` -> `/api/v1/apps/:appId/users`.
/// Braces are legal in label values, but some exposition parsers and shell tools choke on a
/// `}` inside a label, and `:param` is the usual route-label style.
pub fn route_label(route: &str) -> String {
    let mut out = String::with_capacity(route.len());
    for c in route.chars() {
        match c {
            '{' => out.push(':'),
            '}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The HTTP observer that counts every attempt and keeps the rate-limit gauges.
pub fn observer() -> Observer {
    Arc::new(|r: &RequestRecord| {
        let api = match r.api {
            crate::Api::Okta => "okta",
            crate::Api::Spot => "spot",
        };
        let status = r
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "error".into());
        let route = route_label(r.route);
        counter!(API_REQUESTS, "api" => api, "route" => route.clone(), "status" => status)
            .increment(1);
        histogram!(API_REQUEST_DURATION, "api" => api, "route" => route.clone())
            .record(r.elapsed.as_secs_f64());
        if let Some(remaining) = r.rate_limit_remaining {
            gauge!(RATE_LIMIT_REMAINING, "api" => api, "route" => route).set(remaining as f64);
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_labels_use_colon_parameters() {
        assert_eq!(
            super::route_label("/setup/user/{userId}/policyMapping"),
            "/setup/user/:userId/policyMapping"
        );
    }
}
