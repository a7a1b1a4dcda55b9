//! The daemon's Prometheus metrics: names, help texts, and the [`Metrics`] handle that records
//! them and renders the text format for `GET /metrics`.
//!
//! [`Metrics`] owns its own `metrics-exporter-prometheus` recorder and registry, built but never
//! installed as the process-global recorder: whoever holds a handle records into it, and nothing
//! else does (the `metrics` facade's macros would record nowhere). The daemon makes one at start
//! and passes it to its loop, its `/metrics` server and, as an [`Observer`], the HTTP clients;
//! each test makes its own, so counts are exact. The one-shot commands make none and pay
//! nothing.
//!
//! It must never decide anything: it counts what the daemon and the HTTP layer tell it. Label
//! values are bounded sets (action kinds, guard names, route templates, status codes): never an
//! email, a user id or a URL.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::action::ActionStatus;
use crate::audit::{AuditReport, DriftKind, DriftStatus};
use crate::http::{Observer, RequestRecord};
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
pub const AUDITS: &str = "okta_spot_sync_audits_total";
pub const ACCESS_DRIFT: &str = "okta_spot_sync_access_drift_total";
pub const FULL_CYCLES: &str = "okta_spot_sync_full_cycles_total";
pub const EVENT_POLLS: &str = "okta_spot_sync_event_polls_total";
pub const EVENTS: &str = "okta_spot_sync_events_total";
pub const EVENT_USERS_REREAD: &str = "okta_spot_sync_event_users_reread_total";
pub const PROPAGATION: &str = "okta_spot_sync_propagation_delay_seconds";
pub const POLL_LAG: &str = "okta_spot_sync_event_poll_lag_seconds";
pub const EVENTS_REFUSED: &str = "okta_spot_sync_events_refused";

/// Poll results, the `result` label of [`EVENT_POLLS`].
pub mod poll_result {
    /// Nothing new named a user.
    pub const QUIET: &str = "quiet";
    /// The named users were read again and brought in line.
    pub const BATCH: &str = "batch";
    /// Only a full cycle could answer (its reason is on [`super::FULL_CYCLES`]).
    pub const FULL_CYCLE: &str = "full_cycle";
    /// Okta refused the System Log: full cycles only until a reload or restart.
    pub const REFUSED: &str = "refused";
    /// The poll or its batch failed; the next poll reads the same events again.
    pub const ERROR: &str = "error";
    pub const ALL: [&str; 5] = [QUIET, BATCH, FULL_CYCLE, REFUSED, ERROR];
}

/// Audit results, the `result` label of [`AUDITS`].
pub mod audit_result {
    /// Every managed user's access is what its role gives.
    pub const CLEAN: &str = "clean";
    /// Drift found and left (repair off).
    pub const DRIFT: &str = "drift";
    /// Drift found; every repairable drift was repaired (what cannot be is reported).
    pub const REPAIRED: &str = "repaired";
    /// A repair failed, or a user's access could not be read.
    pub const FAILED: &str = "failed";
    /// Did not complete (state file, user list or policies unreadable); nothing was audited.
    pub const ERROR: &str = "error";
    pub const ALL: [&str; 5] = [CLEAN, DRIFT, REPAIRED, FAILED, ERROR];
}

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

/// Buckets of [`CYCLE_DURATION`], in seconds.
const CYCLE_BUCKETS: [f64; 10] = [0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// Buckets of [`PROPAGATION`], in seconds (the target is a minute).
const PROPAGATION_BUCKETS: [f64; 11] = [
    1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0,
];
/// Buckets of [`API_REQUEST_DURATION`], in seconds.
const API_BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Recorders may use it to filter; this one ignores it.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The daemon's metrics: a handle to one registry of its own. Cheap to clone; clones record
/// into the same registry.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A new registry with every metric described and the bounded label sets at zero.
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(CYCLE_DURATION.into()), &CYCLE_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(API_REQUEST_DURATION.into()), &API_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(PROPAGATION.into()), &PROPAGATION_BUCKETS)
            })
            .expect("the bucket lists are constant and not empty")
            .build_recorder();
        let metrics = Metrics {
            recorder: Arc::new(recorder),
        };
        metrics.describe();
        metrics.initialise();
        metrics
    }

    /// The Prometheus text exposition of everything recorded so far (`GET /metrics`).
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    fn describe(&self) {
        let r = &self.recorder;
        let counter = |name: &'static str, help: &'static str| {
            r.describe_counter(KeyName::from_const_str(name), None, help.into())
        };
        let gauge = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            r.describe_gauge(KeyName::from_const_str(name), unit, help.into())
        };
        let histogram = |name: &'static str, help: &'static str| {
            r.describe_histogram(
                KeyName::from_const_str(name),
                Some(Unit::Seconds),
                help.into(),
            )
        };
        counter(
            CYCLES,
            "Reconcile cycles by result (ok, blocked, actions_failed, error).",
        );
        histogram(
            CYCLE_DURATION,
            "Wall time of a reconcile cycle, read to record.",
        );
        gauge(
            LAST_SUCCESS,
            Some(Unit::Seconds),
            "Unix time of the last cycle (any result but error) or events poll that completed.",
        );
        gauge(
            CONSECUTIVE_FAILURES,
            None,
            "Cycles in a row that ended in error; 0 after a completed cycle.",
        );
        counter(
            TICKS_SKIPPED,
            "Schedule ticks that started no cycle, by reason (cycle_running, backoff, halted).",
        );
        counter(
            ACTIONS,
            "Actions by kind and result (applied, failed, blocked, not_started).",
        );
        counter(GUARD_TRIPS, "Safety-guard trips by guard.");
        gauge(
            MANAGED_USERS,
            None,
            "Spot users this tool manages (created or adopted) after the last cycle.",
        );
        counter(
            API_REQUESTS,
            "HTTP attempts to Okta and Spot by api, route template and status (\"error\": no response).",
        );
        histogram(
            API_REQUEST_DURATION,
            "Duration of one HTTP attempt by api and route template.",
        );
        gauge(
            RATE_LIMIT_REMAINING,
            None,
            "Rate-limit remaining count of the last response, by api and route (Okta: X-Rate-Limit-Remaining).",
        );
        counter(
            CONFIG_RELOADS,
            "Configuration reloads (SIGHUP) by result (applied, rejected).",
        );
        gauge(
            HALTED,
            None,
            "1 while cycling is stopped by a configuration or credential error (fix it, then reload).",
        );
        counter(
            AUDITS,
            "Access audits (sync.audit_schedule) by result (clean, drift, repaired, failed, error).",
        );
        counter(
            ACCESS_DRIFT,
            "Access drift found by audits, each drift once per audit, by kind and status (found, repaired, failed, not_repairable).",
        );
        counter(
            FULL_CYCLES,
            "Full cycles (every assignment read) by why they ran (start, schedule, group_assignment, too_many_users, cursor_too_old, cursor_rejected, unresolved_event, events_off, other).",
        );
        counter(
            EVENT_POLLS,
            "Events mode: System Log polls by result (quiet, batch, full_cycle, refused, error).",
        );
        counter(
            EVENTS,
            "Events mode: System Log events read, by event type.",
        );
        counter(
            EVENT_USERS_REREAD,
            "Events mode: Okta users whose assignment was read again because an event named them.",
        );
        histogram(
            PROPAGATION,
            "Events mode: from an event's published time to its Spot change applied.",
        );
        gauge(
            POLL_LAG,
            Some(Unit::Seconds),
            "Events mode: age of the newest event the last poll read (0 when it read none).",
        );
        gauge(
            EVENTS_REFUSED,
            None,
            "1 while Okta refuses the System Log (okta.logs.read): full cycles only until a reload or restart.",
        );
    }

    /// Gives the bounded label sets their zero series, so dashboards and alerts see them before
    /// the first event.
    fn initialise(&self) {
        for r in [
            result::OK,
            result::BLOCKED,
            result::ACTIONS_FAILED,
            result::ERROR,
        ] {
            self.counter(CYCLES, &[("result", r)]).increment(0);
        }
        for reason in ["cycle_running", "backoff", "halted"] {
            self.counter(TICKS_SKIPPED, &[("reason", reason)])
                .increment(0);
        }
        for guard in [
            "empty_source",
            "max_deletes",
            "max_delete_percent",
            "last_personal_user",
            "never_touch",
        ] {
            self.counter(GUARD_TRIPS, &[("guard", guard)]).increment(0);
        }
        for r in ["applied", "rejected"] {
            self.counter(CONFIG_RELOADS, &[("result", r)]).increment(0);
        }
        for r in audit_result::ALL {
            self.counter(AUDITS, &[("result", r)]).increment(0);
        }
        // Only the statuses each kind can have: found everywhere; repaired and failed for what
        // a union repairs; not_repairable for the rest.
        for kind in DriftKind::ALL {
            for status in DriftStatus::ALL {
                let possible = match status {
                    DriftStatus::Found => true,
                    DriftStatus::Repaired | DriftStatus::Failed => kind.repairable(),
                    DriftStatus::NotRepairable => !kind.repairable(),
                };
                if possible {
                    self.counter(
                        ACCESS_DRIFT,
                        &[("kind", kind.as_str()), ("status", status.as_str())],
                    )
                    .increment(0);
                }
            }
        }
        for reason in crate::events::FullCycleReason::ALL {
            self.counter(FULL_CYCLES, &[("reason", reason.as_str())])
                .increment(0);
        }
        for r in poll_result::ALL {
            self.counter(EVENT_POLLS, &[("result", r)]).increment(0);
        }
        self.counter(EVENT_USERS_REREAD, &[]).increment(0);
        {
            use crate::events::decide::{GROUP_EVENT_TYPES, USER_EVENT_TYPES};
            for kind in USER_EVENT_TYPES
                .iter()
                .chain(GROUP_EVENT_TYPES.iter())
                .chain(["other"].iter())
            {
                self.counter(EVENTS, &[("type", kind)]).increment(0);
            }
        }
        // Registered, so the series exists before the first change.
        let _ = self.histogram(PROPAGATION, &[]);
        self.gauge(POLL_LAG, &[]).set(0.0);
        self.set_consecutive_failures(0);
        self.set_halted(false);
        self.set_events_refused(false);
    }

    /// A full cycle starts, for `reason`.
    pub fn full_cycle(&self, reason: crate::events::FullCycleReason) {
        self.counter(FULL_CYCLES, &[("reason", reason.as_str())])
            .increment(1);
    }

    pub fn set_events_refused(&self, refused: bool) {
        self.gauge(EVENTS_REFUSED, &[])
            .set(if refused { 1.0 } else { 0.0 });
    }

    /// Records one System Log poll: its `result` ([`poll_result`]) and what it saw.
    pub fn record_poll(&self, result: &'static str, stats: &crate::events::PollStats) {
        self.counter(EVENT_POLLS, &[("result", result)])
            .increment(1);
        for (kind, n) in &stats.events_by_type {
            let kind = known_event_type(kind);
            self.counter(EVENTS, &[("type", kind)]).increment(*n);
        }
        self.counter(EVENT_USERS_REREAD, &[])
            .increment(stats.users_reread as u64);
        for delay in &stats.propagation {
            self.histogram(PROPAGATION, &[]).record(delay.as_secs_f64());
        }
        let lag = stats.newest.map_or(0.0, |newest| {
            (crate::clock::now() - newest)
                .to_std()
                .unwrap_or_default()
                .as_secs_f64()
        });
        self.gauge(POLL_LAG, &[]).set(lag);
    }

    /// Records one finished cycle. `report` is `None` when the cycle ended in error.
    pub fn record_cycle(&self, report: Option<&Report>, duration: Duration) {
        let result = report.map(cycle_result).unwrap_or(result::ERROR);
        self.counter(CYCLES, &[("result", result)]).increment(1);
        self.histogram(CYCLE_DURATION, &[])
            .record(duration.as_secs_f64());
        let Some(report) = report else { return };
        self.mark_success();
        self.record_actions(report);
    }

    /// Now is the last time the daemon was known in line with Okta: a completed cycle, or an
    /// events poll that completed.
    pub fn mark_success(&self) {
        self.gauge(LAST_SUCCESS, &[])
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }

    /// Records the actions, guard trips and managed users of a cycle or an events batch.
    pub fn record_actions(&self, report: &Report) {
        for action in &report.actions {
            let status = match action.status {
                ActionStatus::Planned => "not_started",
                other => other.as_str(),
            };
            self.counter(
                ACTIONS,
                &[("action", action.action.as_str()), ("result", status)],
            )
            .increment(1);
        }
        for trip in &report.blocked_by {
            self.counter(GUARD_TRIPS, &[("guard", trip.guard.as_str())])
                .increment(1);
        }
        if let Some(managed) = report.managed_users {
            self.gauge(MANAGED_USERS, &[]).set(managed as f64);
        }
    }

    /// Records one audit. `report` is `None` when it did not complete.
    pub fn record_audit(&self, report: Option<&AuditReport>) {
        let result = match report {
            None => audit_result::ERROR,
            Some(r) if r.summary.failed > 0 || r.summary.unread > 0 => audit_result::FAILED,
            Some(r) if r.summary.found > 0 => audit_result::DRIFT,
            Some(r) if r.summary.drift > 0 => audit_result::REPAIRED,
            Some(_) => audit_result::CLEAN,
        };
        self.counter(AUDITS, &[("result", result)]).increment(1);
        for d in report.map(|r| r.drift.as_slice()).unwrap_or_default() {
            self.counter(
                ACCESS_DRIFT,
                &[("kind", d.kind.as_str()), ("status", d.status.as_str())],
            )
            .increment(1);
        }
    }

    pub fn set_consecutive_failures(&self, n: u32) {
        self.gauge(CONSECUTIVE_FAILURES, &[]).set(f64::from(n));
    }

    pub fn tick_skipped(&self, reason: &'static str) {
        self.counter(TICKS_SKIPPED, &[("reason", reason)])
            .increment(1);
    }

    pub fn config_reload(&self, applied: bool) {
        let r = if applied { "applied" } else { "rejected" };
        self.counter(CONFIG_RELOADS, &[("result", r)]).increment(1);
    }

    pub fn set_halted(&self, halted: bool) {
        self.gauge(HALTED, &[]).set(if halted { 1.0 } else { 0.0 });
    }

    /// The HTTP observer (for `with_observer` on the Okta and Spot clients) that counts every
    /// attempt and keeps the rate-limit gauges, in this registry.
    pub fn observer(&self) -> Observer {
        let metrics = self.clone();
        Arc::new(move |r: &RequestRecord| metrics.record_request(r))
    }

    fn record_request(&self, r: &RequestRecord) {
        let api = match r.api {
            crate::Api::Okta => "okta",
            crate::Api::Spot => "spot",
        };
        let status = r
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "error".into());
        let route = route_label(r.route);
        self.counter(
            API_REQUESTS,
            &[("api", api), ("route", &route), ("status", &status)],
        )
        .increment(1);
        self.histogram(API_REQUEST_DURATION, &[("api", api), ("route", &route)])
            .record(r.elapsed.as_secs_f64());
        if let Some(remaining) = r.rate_limit_remaining {
            self.gauge(RATE_LIMIT_REMAINING, &[("api", api), ("route", &route)])
                .set(remaining as f64);
        }
    }
}

/// An event type as a label: one of the types events mode asks for, or `other` (the label set
/// stays bounded whatever Okta sends).
fn known_event_type(kind: &str) -> &str {
    use crate::events::decide::{GROUP_EVENT_TYPES, USER_EVENT_TYPES};
    USER_EVENT_TYPES
        .iter()
        .chain(GROUP_EVENT_TYPES.iter())
        .find(|t| **t == kind)
        .copied()
        .unwrap_or("other")
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.to_string()))
        .collect();
    Key::from_parts(name, labels)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_use_colon_parameters() {
        assert_eq!(
            route_label("/setup/user/{userId}/policyMapping"),
            "/setup/user/:userId/policyMapping"
        );
    }

    /// Every metric has its help text; the bounded label sets start at zero.
    #[test]
    fn a_new_handle_describes_its_metrics_and_zeroes_the_bounded_series() {
        let text = Metrics::new().render();
        // The histograms and the gauges without a value yet are not rendered.
        for name in [
            CYCLES,
            CONSECUTIVE_FAILURES,
            TICKS_SKIPPED,
            GUARD_TRIPS,
            CONFIG_RELOADS,
            HALTED,
            AUDITS,
            ACCESS_DRIFT,
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        for series in [
            "okta_spot_sync_cycles_total{result=\"error\"} 0",
            "okta_spot_sync_ticks_skipped_total{reason=\"halted\"} 0",
            "okta_spot_sync_guard_trips_total{guard=\"never_touch\"} 0",
            "okta_spot_sync_config_reloads_total{result=\"rejected\"} 0",
            "okta_spot_sync_consecutive_failures 0",
            "okta_spot_sync_halted 0",
            "okta_spot_sync_audits_total{result=\"clean\"} 0",
            "okta_spot_sync_access_drift_total{kind=\"role_differs\",status=\"not_repairable\"} 0",
        ] {
            assert!(text.contains(series), "{series}\n{text}");
        }
    }

    /// Two handles share nothing: what one records, the other does not see.
    #[test]
    fn handles_are_independent_and_clones_share() {
        let a = Metrics::new();
        let b = Metrics::new();
        let a2 = a.clone();
        a2.tick_skipped("backoff");
        a.set_halted(true);
        let observe = a.observer();
        observe(&RequestRecord {
            api: crate::Api::Okta,
            method: reqwest::Method::GET,
            route: "/api/v1/apps/{appId}/users",
            status: Some(200),
            attempt: 0,
            elapsed: Duration::from_millis(30),
            rate_limit_remaining: Some(99),
        });
        let a = a.render();
        assert!(a.contains("okta_spot_sync_ticks_skipped_total{reason=\"backoff\"} 1"));
        assert!(a.contains("okta_spot_sync_halted 1"));
        assert!(a.contains(
            "okta_spot_sync_api_requests_total{api=\"okta\",route=\"/api/v1/apps/:appId/users\",status=\"200\"} 1"
        ));
        assert!(a.contains(
            "okta_spot_sync_api_rate_limit_remaining{api=\"okta\",route=\"/api/v1/apps/:appId/users\"} 99"
        ));
        assert!(a.contains(
            "okta_spot_sync_api_request_duration_seconds_bucket{api=\"okta\",route=\"/api/v1/apps/:appId/users\",le=\"0.05\"} 1"
        ));
        let b = b.render();
        assert!(b.contains("okta_spot_sync_ticks_skipped_total{reason=\"backoff\"} 0"));
        assert!(b.contains("okta_spot_sync_halted 0"));
        assert!(!b.contains(API_REQUESTS), "{b}");
    }
}
