//! Plumbing shared by both emulators: the simulated clock, random ids, fault knobs and their
//! per-route bookkeeping, request counters and the opt-in request log, query parsing and response bodies that can be
//! slowed down or cut off.
//!
//! This module owns no API semantics: nothing here knows an Okta or Spot route, error code or
//! payload. It must not hold a lock across an `.await` and must not read the wall clock
//! except through [`Clock`], so tests running under `tokio::time::pause()` stay coherent.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Below this, a response's wait is left entirely to tokio's timer.
const PRECISE_TAIL: Duration = Duration::from_millis(2);

/// Holds a response until its [`Fault::latency`] deadline, if it has one (both emulators'
/// entry points end with this).
pub(crate) async fn hold_until(deadline: Option<Instant>) {
    if let Some(at) = deadline {
        sleep_until_precisely(at).await;
    }
}

/// Waits until `at` (a response's [`Fault::latency`] deadline) to within the OS timer's
/// precision. Tokio's timer works in whole milliseconds and fires after the deadline: a
/// 20 ms sleep measured 21.1 ms on the 2-core benchmark machine, which would add 5 % to every
/// injected latency and make the emulator, not the client, the scale benchmark's bottleneck.
/// So tokio's timer waits for all but the last [`PRECISE_TAIL`], and a blocking-pool thread
/// sleeps the rest (`std::thread::sleep`, a high-resolution timer). Under paused time the
/// tail costs at most [`PRECISE_TAIL`] of real time.
async fn sleep_until_precisely(at: Instant) {
    let Some(coarse) = at.checked_sub(PRECISE_TAIL) else {
        return tokio::time::sleep_until(at).await;
    };
    if coarse <= Instant::now() {
        return tokio::time::sleep_until(at).await;
    }
    tokio::time::sleep_until(coarse).await;
    let rest = at.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        // A panic here is impossible (`sleep` does not panic); a failed join only shortens
        // the wait.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// Runs a long synchronous piece of a handler (serialising 100,000 Spot users takes ~100 ms)
/// without stalling the tasks queued behind it on this worker, such as the other
/// emulator's responses: on a multi-thread runtime the worker first hands its queue to
/// another thread (`block_in_place`). Elsewhere (tests' current-thread runtimes) it just runs.
pub(crate) fn run_long<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Wall-clock time derived from tokio's clock: `start_system + (tokio_now + skew -
/// start_instant)`. Under `tokio::time::pause()` the `Date` headers and rate-limit resets move
/// with the paused clock instead of the real one; [`Clock::advance`] moves it ahead by hand
/// (the settable clock: System Log delays and retention, rate-limit windows, `Date`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start_system: SystemTime,
    start_instant: Instant,
    /// Milliseconds added by `advance`; shared by every copy (leaked: one per emulator pair).
    skew_ms: &'static std::sync::atomic::AtomicU64,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            start_system: SystemTime::now(),
            start_instant: Instant::now(),
            skew_ms: Box::leak(Box::new(std::sync::atomic::AtomicU64::new(0))),
        }
    }

    /// Moves this clock (and every copy of it) ahead.
    pub(crate) fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.skew_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn now(&self) -> Instant {
        let skew = self.skew_ms.load(std::sync::atomic::Ordering::SeqCst);
        Instant::now() + Duration::from_millis(skew)
    }

    pub(crate) fn system_at(&self, at: Instant) -> SystemTime {
        let elapsed = at.saturating_duration_since(self.start_instant);
        self.start_system + elapsed
    }

    pub(crate) fn system_now(&self) -> SystemTime {
        self.system_at(self.now())
    }

    /// `2024-01-31T18:25:01.000Z`, the timestamp shape both APIs use.
    pub(crate) fn timestamp(&self) -> String {
        timestamp(self.system_now())
    }

    /// RFC 1123 for the `Date` header.
    pub(crate) fn http_date(&self) -> String {
        httpdate::fmt_http_date(self.system_now())
    }

    /// Epoch seconds (rounded up) of a tokio instant.
    pub(crate) fn epoch_secs_ceil(&self, at: Instant) -> u64 {
        let d = self
            .system_at(at)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }
}

pub(crate) fn timestamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` random characters from `[A-Za-z0-9]`.
pub(crate) fn random_alnum(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
        .collect()
}

/// `n` random lower-case hex digits.
pub(crate) fn random_hex(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// A fault injected on one route ("METHOD /template", or `"*"` for every route without its own
/// fault). Every knob is optional; `Fault::default()` injects nothing. Counting for `nth` starts
/// when the fault is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// Response time: the response leaves no sooner than this after the request arrived
    /// (`tokio::time::sleep_until`, so paused time works). The request is handled at once and
    /// the emulator's own work happens within the wait, so it does not add to the injected
    /// latency (the scale benchmark relies on this). JSON: milliseconds.
    #[serde(with = "opt_millis", skip_serializing_if = "Option::is_none")]
    pub latency: Option<Duration>,
    /// Answer with this HTTP status and the API's own error body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail: Option<FailSpec>,
    /// A run of 429s with the API's rate-limit headers and body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_429: Option<Burst429>,
    /// A broken successful response (truncated, malformed, bad links, dropped connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<PageFault>,
    /// The body of every response on the route is sent in 8 chunks spread over this long.
    /// JSON: milliseconds.
    #[serde(with = "opt_millis", skip_serializing_if = "Option::is_none")]
    pub slow_body: Option<Duration>,
}

/// Fail requests `nth ..= nth + times - 1` (1-based, counted on the route from when the fault
/// was set); `times: None` fails every request from `nth` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailSpec {
    pub status: u16,
    #[serde(default = "one")]
    pub nth: u64,
    #[serde(default)]
    pub times: Option<u64>,
}

impl Default for FailSpec {
    fn default() -> FailSpec {
        FailSpec {
            status: 500,
            nth: 1,
            times: None,
        }
    }
}

/// After `after` requests pass, the next `count` requests get 429. `reset_secs` is how far
/// ahead the 429's reset header points.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst429 {
    #[serde(default)]
    pub after: u64,
    pub count: u64,
    #[serde(default = "one")]
    pub reset_secs: u64,
}

/// A broken 2xx response on requests `nth ..= nth + times - 1` of the route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageFault {
    pub kind: PageFaultKind,
    #[serde(default = "one")]
    pub nth: u64,
    #[serde(default)]
    pub times: Option<u64>,
}

/// What is wrong with the broken response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageFaultKind {
    /// The JSON body is cut in half (consistent `Content-Length`, so only parsing fails).
    Truncated,
    /// The body is not JSON at all, still labelled `application/json`.
    MalformedJson,
    /// Okta only: the `next` link points at `http://evil.example.invalid` (added even on the
    /// last page).
    ForeignNextLink,
    /// Okta only: the `next` link equals the current page's URL (added even on the last page).
    RepeatedCursor,
    /// Headers and half the body are sent, then the connection is aborted.
    DropConnection,
}

fn one() -> u64 {
    1
}

pub(crate) fn in_window(k: u64, nth: u64, times: Option<u64>) -> bool {
    let nth = nth.max(1);
    k >= nth && times.is_none_or(|t| k < nth.saturating_add(t))
}

/// Serde for `Option<Duration>` as integer milliseconds.
mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_u64(d.as_millis() as u64),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// What the fault table decided for one request.
#[derive(Debug, Default, Clone)]
pub(crate) struct FaultDecision {
    pub latency: Option<Duration>,
    pub fail: Option<u16>,
    pub burst_reset_secs: Option<u64>,
    pub page: Option<PageFaultKind>,
    pub slow_body: Option<Duration>,
}

/// One request as an emulator answered it, in the request log (see
/// [`Traffic::set_logging`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    /// The path as received (no query).
    pub path: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// Per-route faults plus per-route request counters, and an optional request log.
#[derive(Debug)]
pub(crate) struct Traffic {
    faults: HashMap<String, (Fault, u64)>,
    counts: BTreeMap<String, u64>,
    /// Bumped on every counted request, so tests can wait for traffic instead of polling.
    seen: tokio::sync::watch::Sender<u64>,
    /// Every answered request, in order, while logging is on (off by default: a benchmark's
    /// hundreds of thousands of requests would otherwise pile up).
    log: Option<Vec<LoggedRequest>>,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            faults: HashMap::new(),
            counts: BTreeMap::new(),
            seen: tokio::sync::watch::Sender::new(0),
            log: None,
        }
    }
}

impl Traffic {
    /// Turns the request log on (keeping what it holds) or off (dropping it).
    pub(crate) fn set_logging(&mut self, on: bool) {
        match (on, self.log.is_some()) {
            (true, false) => self.log = Some(Vec::new()),
            (false, _) => self.log = None,
            _ => {}
        }
    }

    /// Records one answered request when logging is on.
    pub(crate) fn log(&mut self, method: &str, path: &str, status: u16) {
        if let Some(log) = &mut self.log {
            log.push(LoggedRequest {
                method: method.to_string(),
                path: path.to_string(),
                status,
            });
        }
    }

    /// The log so far (empty when logging is off).
    pub(crate) fn logged(&self) -> Vec<LoggedRequest> {
        self.log.clone().unwrap_or_default()
    }

    /// Empties the log; logging stays on or off.
    pub(crate) fn clear_log(&mut self) {
        if let Some(log) = &mut self.log {
            log.clear();
        }
    }

    pub(crate) fn count(&mut self, route: &str) {
        *self.counts.entry(route.to_string()).or_default() += 1;
        self.seen.send_modify(|n| *n += 1);
    }

    /// A receiver that wakes on every counted request.
    pub(crate) fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.seen.subscribe()
    }

    pub(crate) fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.clone()
    }

    pub(crate) fn count_of(&self, route: &str) -> u64 {
        self.counts.get(route).copied().unwrap_or(0)
    }

    pub(crate) fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub(crate) fn reset_counts(&mut self) {
        self.counts.clear();
    }

    pub(crate) fn set_fault(&mut self, route: &str, fault: Fault) {
        self.faults.insert(route.to_string(), (fault, 0));
    }

    pub(crate) fn clear_faults(&mut self) {
        self.faults.clear();
    }

    pub(crate) fn faults(&self) -> BTreeMap<String, Fault> {
        self.faults
            .iter()
            .map(|(k, (f, _))| (k.clone(), f.clone()))
            .collect()
    }

    pub(crate) fn decide(&mut self, route: &str) -> FaultDecision {
        let key = if self.faults.contains_key(route) {
            route
        } else {
            "*"
        };
        let Some((fault, seen)) = self.faults.get_mut(key) else {
            return FaultDecision::default();
        };
        *seen += 1;
        let k = *seen;
        let mut d = FaultDecision {
            latency: fault.latency,
            slow_body: fault.slow_body,
            ..FaultDecision::default()
        };
        if let Some(f) = &fault.fail {
            if in_window(k, f.nth, f.times) {
                d.fail = Some(f.status);
            }
        }
        if let Some(b) = &fault.burst_429 {
            if k > b.after && k <= b.after.saturating_add(b.count) {
                d.burst_reset_secs = Some(b.reset_secs);
            }
        }
        if let Some(p) = &fault.page {
            if in_window(k, p.nth, p.times) {
                d.page = Some(p.kind);
            }
        }
        d
    }
}

/// Query string as ordered pairs.
pub(crate) fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    match q {
        Some(q) => url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect(),
        None => Vec::new(),
    }
}

pub(crate) fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Encodes pairs as a query string.
pub(crate) fn encode_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Builds the response body, applying the body-level faults.
pub(crate) fn faulty_body(
    bytes: Vec<u8>,
    page: Option<PageFaultKind>,
    slow: Option<Duration>,
) -> Body {
    let bytes = match page {
        Some(PageFaultKind::Truncated) => {
            let mut b = bytes;
            b.truncate(b.len() / 2);
            b
        }
        Some(PageFaultKind::MalformedJson) => {
            b"<html><body>502 Bad Gateway</body></html> {\"".to_vec()
        }
        _ => bytes,
    };
    if page == Some(PageFaultKind::DropConnection) {
        let half = bytes[..bytes.len() / 2].to_vec();
        let stream = futures::stream::iter(vec![
            Ok::<Bytes, std::io::Error>(Bytes::from(half)),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "emulated connection reset",
            )),
        ]);
        return Body::from_stream(stream);
    }
    match slow {
        Some(total) if !bytes.is_empty() => {
            let chunks: Vec<Bytes> = bytes
                .chunks(bytes.len().div_ceil(8))
                .map(Bytes::copy_from_slice)
                .collect();
            let pause = total / (chunks.len() as u32).max(1);
            let stream = futures::stream::unfold(chunks.into_iter(), move |mut it| async move {
                let next = it.next()?;
                tokio::time::sleep(pause).await;
                Some((Ok::<Bytes, std::io::Error>(next), it))
            });
            Body::from_stream(stream)
        }
        _ => Body::from(bytes),
    }
}

/// A fixed-window (Okta) or sliding-window (Spot) counter keyed by bucket or route.
#[derive(Debug, Default)]
pub(crate) struct FixedWindows {
    windows: HashMap<String, (Instant, u32)>,
}

/// The outcome of a rate-limit check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// When the window resets.
    pub reset_at: Instant,
    pub allowed: bool,
}

impl FixedWindows {
    /// Counts one request in `bucket`'s 60 s window. When `enforce` is off the request is
    /// always allowed (remaining stays at 0 once exhausted).
    pub(crate) fn hit(
        &mut self,
        bucket: &str,
        limit: u32,
        enforce: bool,
        now: Instant,
    ) -> RateInfo {
        let w = self.windows.entry(bucket.to_string()).or_insert((now, 0));
        if now >= w.0 + Duration::from_secs(60) {
            *w = (now, 0);
        }
        let reset_at = w.0 + Duration::from_secs(60);
        if enforce && w.1 >= limit {
            return RateInfo {
                limit,
                remaining: 0,
                reset_at,
                allowed: false,
            };
        }
        w.1 = w.1.saturating_add(1);
        RateInfo {
            limit,
            remaining: limit.saturating_sub(w.1),
            reset_at,
            allowed: true,
        }
    }

    /// The current state of a bucket without counting.
    pub(crate) fn peek(&self, bucket: &str, limit: u32, now: Instant) -> RateInfo {
        match self.windows.get(bucket) {
            Some(&(start, n)) if now < start + Duration::from_secs(60) => RateInfo {
                limit,
                remaining: limit.saturating_sub(n),
                reset_at: start + Duration::from_secs(60),
                allowed: n < limit,
            },
            _ => RateInfo {
                limit,
                remaining: limit,
                reset_at: now + Duration::from_secs(60),
                allowed: true,
            },
        }
    }
}

/// Spot's sliding 60 s window: the timestamps of accepted requests per route.
#[derive(Debug, Default)]
pub(crate) struct SlidingWindows {
    windows: HashMap<String, std::collections::VecDeque<Instant>>,
}

impl SlidingWindows {
    /// `(remaining, seconds until a request is allowed)` without counting.
    pub(crate) fn peek(&self, route: &str, limit: u32, now: Instant) -> (u32, u64) {
        let Some(q) = self.windows.get(route) else {
            return (limit, 0);
        };
        let live: Vec<&Instant> = q
            .iter()
            .filter(|t| now < **t + Duration::from_secs(60))
            .collect();
        let remaining = limit.saturating_sub(live.len() as u32);
        let reset = if remaining == 0 {
            live.first().map_or(0, |t| {
                let d = (**t + Duration::from_secs(60)).saturating_duration_since(now);
                d.as_secs() + u64::from(d.subsec_nanos() > 0)
            })
        } else {
            0
        };
        (remaining, reset)
    }

    /// Returns `(allowed, remaining, seconds until a request is allowed)`.
    pub(crate) fn hit(&mut self, route: &str, limit: u32, now: Instant) -> (bool, u32, u64) {
        let q = self.windows.entry(route.to_string()).or_default();
        while q
            .front()
            .is_some_and(|t| now >= *t + Duration::from_secs(60))
        {
            q.pop_front();
        }
        let secs_until = |q: &std::collections::VecDeque<Instant>| -> u64 {
            q.front().map_or(0, |t| {
                let d = (*t + Duration::from_secs(60)).saturating_duration_since(now);
                d.as_secs() + u64::from(d.subsec_nanos() > 0)
            })
        };
        if q.len() >= limit as usize {
            return (false, 0, secs_until(q).max(1));
        }
        q.push_back(now);
        let remaining = limit.saturating_sub(q.len() as u32);
        let reset = if remaining == 0 { secs_until(q) } else { 0 };
        (true, remaining, reset)
    }
}

/// A JSON admin-API response.
pub(crate) fn admin_json(
    status: axum::http::StatusCode,
    v: &impl Serialize,
) -> axum::response::Response {
    let mut r =
        axum::response::Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r
}

/// A JSON admin-API error `{"error": msg}`.
pub(crate) fn admin_error(status: axum::http::StatusCode, msg: &str) -> axum::response::Response {
    admin_json(status, &serde_json::json!({ "error": msg }))
}

/// Parses an admin request body; the error is a ready 400 response.
#[allow(clippy::result_large_err)]
pub(crate) fn admin_body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, axum::response::Response> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        admin_error(
            axum::http::StatusCode::BAD_REQUEST,
            &format!("bad admin request body: {e}"),
        )
    })
}

/// Body of `POST /__admin/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRequest {
    pub route: String,
    #[serde(default)]
    pub fault: Fault,
}

/// A plain-text response, for the admin API and refusals outside either API's contract.
pub(crate) fn plain(status: axum::http::StatusCode, msg: &str) -> axum::response::Response {
    let mut r = axum::response::Response::new(Body::from(msg.to_string()));
    *r.status_mut() = status;
    r
}

/// Is this a request for the admin API (`/__admin/…`) rather than the emulated one?
pub(crate) fn is_admin_path(path: &str) -> bool {
    path == "/__admin" || path.starts_with("/__admin/")
}

/// The body of an admin request, or the answer refusing it: the admin API is for loopback
/// peers only.
pub(crate) async fn read_admin_request(
    peer: std::net::SocketAddr,
    body: Body,
) -> Result<Bytes, axum::response::Response> {
    use axum::http::StatusCode;
    if !peer.ip().is_loopback() {
        return Err(plain(StatusCode::FORBIDDEN, "admin API is loopback-only"));
    }
    axum::body::to_bytes(body, 64 << 20)
        .await
        .map_err(|e| plain(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_window_is_one_based_and_bounded() {
        assert!(!in_window(1, 2, Some(1)));
        assert!(in_window(2, 2, Some(1)));
        assert!(!in_window(3, 2, Some(1)));
        assert!(in_window(99, 2, None));
        assert!(in_window(1, 0, Some(1)));
    }

    #[test]
    fn fault_json_round_trips_with_millis() {
        let f: Fault = serde_json::from_str(
            r#"{"latency":20,"fail":{"status":500,"nth":3},"page":{"kind":"repeated_cursor"}}"#,
        )
        .unwrap();
        assert_eq!(f.latency, Some(Duration::from_millis(20)));
        assert_eq!(f.fail.as_ref().unwrap().times, None);
        assert_eq!(f.page.as_ref().unwrap().nth, 1);
        let back: Fault = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
