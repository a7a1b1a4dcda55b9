//! The Spot throttle: keeps this client under Spot's per-route rate limits instead of
//! running into 429s.
//!
//! Spot limits each combination of organization + API route + request type over a sliding
//! 60 s window and reports it on every response (`X-RateLimit-Limit`, `X-RateLimit-Remaining`,
//! `X-RateLimit-Reset` = seconds until a request is allowed; docs/api-facts.md "Spot rate
//! limits"). The throttle keys its state the same way — method + route template, so
//! `POST /setup/user` and `PUT /setup/user/{userId}/policyMapping` each stay under their own
//! limit — and, per key:
//!
//! - **paces** requests evenly at [`HEADROOM`] of the last `X-RateLimit-Limit` seen (one slot
//!   every `60 s / budget`; concurrent callers reserve successive slots, so a burst of
//!   concurrent writes is spread out instead of emptying the window at once);
//! - **caps** its own requests in any 60 s window at that budget (a sliding window of the
//!   slots it handed out, like Spot's own count);
//! - **stops** the route for `X-RateLimit-Reset` seconds as soon as a response says
//!   `X-RateLimit-Remaining: 0` or is a 429 — every caller on that route waits, not only the
//!   one that got the answer (others in the organization share the window; this is where
//!   their traffic shows).
//!
//! Until a route's limit is known (its first response), requests are not delayed. The
//! throttle never fails a request; it only says how long to wait. Time is tokio's, so tests
//! with a paused clock stay coherent.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use tokio::time::Instant;

use crate::http::Pacer;

/// Share of the advertised limit this client plans to use (the rest absorbs clock skew between
/// our window and Spot's, and leaves a little room to other users of the organization).
pub const HEADROOM: f64 = 0.95;
/// Spot's window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Upper bound of a stop after `Remaining: 0` (the window is 60 s: a longer reset is bogus).
pub const MAX_STOP: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct RouteState {
    /// Requests per window we plan to send (from `X-RateLimit-Limit` × [`HEADROOM`]).
    budget: Option<u32>,
    /// Earliest time of the next slot.
    next_slot: Option<Instant>,
    /// Slots handed out in the last window, oldest first.
    slots: VecDeque<Instant>,
    /// No slot before this (after `Remaining: 0` or a 429).
    stopped_until: Option<Instant>,
}

impl RouteState {
    /// Reserves the next slot at or after `now` and returns it.
    fn reserve(&mut self, now: Instant) -> Instant {
        let mut at = now;
        if let Some(t) = self.next_slot {
            at = at.max(t);
        }
        if let Some(t) = self.stopped_until {
            at = at.max(t);
        }
        if let Some(budget) = self.budget {
            let budget = budget.max(1) as usize;
            while self.slots.front().is_some_and(|t| *t + WINDOW <= at) {
                self.slots.pop_front();
            }
            if self.slots.len() >= budget {
                // The slot that must leave the window before this one may enter it.
                let oldest = self.slots[self.slots.len() - budget];
                at = at.max(oldest + WINDOW);
                while self.slots.front().is_some_and(|t| *t + WINDOW <= at) {
                    self.slots.pop_front();
                }
            }
            self.next_slot = Some(at + WINDOW / budget as u32);
            self.slots.push_back(at);
        }
        at
    }
}

/// Per-route pacing for the Spot API; see the module documentation.
#[derive(Debug, Default)]
pub struct SpotThrottle {
    routes: Mutex<HashMap<(Method, &'static str), RouteState>>,
}

impl SpotThrottle {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_route<T>(
        &self,
        method: &Method,
        route: &'static str,
        f: impl FnOnce(&mut RouteState) -> T,
    ) -> T {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        f(routes.entry((method.clone(), route)).or_default())
    }

    /// The requests per window this throttle currently plans on `route` (for tests and logs).
    pub fn budget(&self, method: &Method, route: &'static str) -> Option<u32> {
        self.with_route(method, route, |s| s.budget)
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok()
}

impl Pacer for SpotThrottle {
    fn reserve(&self, method: &Method, route: &'static str) -> Duration {
        let now = Instant::now();
        let at = self.with_route(method, route, |s| s.reserve(now));
        at.saturating_duration_since(now)
    }

    fn observe(
        &self,
        method: &Method,
        route: &'static str,
        status: StatusCode,
        headers: &HeaderMap,
    ) {
        let limit = header_u64(headers, "x-ratelimit-limit").filter(|l| *l > 0);
        let remaining = header_u64(headers, "x-ratelimit-remaining");
        let reset = header_u64(headers, "x-ratelimit-reset");
        let exhausted = status == StatusCode::TOO_MANY_REQUESTS || remaining == Some(0);
        if limit.is_none() && !exhausted {
            return;
        }
        let now = Instant::now();
        self.with_route(method, route, |s| {
            if let Some(limit) = limit {
                let budget = ((limit as f64 * HEADROOM).floor() as u32).max(1);
                if s.budget != Some(budget) {
                    tracing::debug!(route, %method, limit, budget, "Spot rate limit learnt");
                    s.budget = Some(budget);
                }
            }
            if exhausted {
                let stop = Duration::from_secs(reset.unwrap_or(1).max(1)).min(MAX_STOP);
                let until = now + stop;
                if s.stopped_until.is_none_or(|t| t < until) {
                    tracing::debug!(
                        route,
                        %method,
                        stop_ms = stop.as_millis() as u64,
                        "Spot says the route's window is full; holding it"
                    );
                    s.stopped_until = Some(until);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const ROUTE: &str = "/setup/user";

    fn headers(limit: u64, remaining: u64, reset: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit", HeaderValue::from(limit));
        h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        h.insert("x-ratelimit-reset", HeaderValue::from(reset));
        h
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_limit_does_not_delay() {
        let t = SpotThrottle::new();
        for _ in 0..10 {
            assert_eq!(t.reserve(&Method::POST, ROUTE), Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn paces_at_the_budget_and_never_exceeds_it_in_a_window() {
        let t = SpotThrottle::new();
        t.observe(&Method::POST, ROUTE, StatusCode::OK, &headers(600, 599, 0));
        assert_eq!(t.budget(&Method::POST, ROUTE), Some(570));
        // Reserve 2 windows' worth at once (as many concurrent callers would).
        let waits: Vec<Duration> = (0..1140).map(|_| t.reserve(&Method::POST, ROUTE)).collect();
        let interval = WINDOW / 570;
        assert_eq!(waits[0], Duration::ZERO);
        assert_eq!(waits[1], interval);
        // No 60 s window holds more than the budget.
        for (i, w) in waits.iter().enumerate().skip(570) {
            assert!(*w >= waits[i - 570] + WINDOW, "slot {i}");
        }
        // Another route is independent.
        assert_eq!(
            t.reserve(&Method::PUT, "/setup/user/{userId}/policyMapping"),
            Duration::ZERO
        );
    }

    #[tokio::test(start_paused = true)]
    async fn remaining_zero_or_429_holds_the_route_until_reset() {
        let t = SpotThrottle::new();
        t.observe(
            &Method::POST,
            ROUTE,
            StatusCode::OK,
            &headers(100_000, 0, 7),
        );
        let wait = t.reserve(&Method::POST, ROUTE);
        assert_eq!(wait, Duration::from_secs(7));
        tokio::time::advance(Duration::from_secs(8)).await;
        t.observe(
            &Method::POST,
            ROUTE,
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
        );
        assert_eq!(t.reserve(&Method::POST, ROUTE), Duration::from_secs(1));
        // A bogus reset is capped at the window.
        t.observe(&Method::GET, ROUTE, StatusCode::OK, &headers(5, 0, 86_400));
        assert_eq!(t.reserve(&Method::GET, ROUTE), MAX_STOP);
    }
}
