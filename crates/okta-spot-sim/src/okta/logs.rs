//! The Okta emulator's System Log: the events admin changes record, and `GET /api/v1/logs`
//! (docs/api-facts.md "Okta System Log").
//!
//! Events are kept in *persistence* order, `(visible_ms, seq)`: an event is persisted (visible
//! to queries) `delay` after it was `published`, so with an ingestion delay a later-published
//! event can be visible first, as Okta warns. A polling request (no `until`, ascending) walks
//! persistence order from its `after` cursor or `since` and always answers a `next` link (the
//! request's own URL when the page is empty); a bounded request (`until` given) or a
//! `DESCENDING` one walks `published` order and ends. Knobs: ingestion delay (a range, drawn
//! per event), duplicate delivery (each event persisted a second time, same `uuid`), dropped
//! event types (never recorded), retention (older events are gone; a cursor or `since` older
//! than that still succeeds with what is retained), and a 403 E0000006 refusal.
//!
//! Choices where the reference is silent are listed in docs/api-facts.md. This module owns no
//! HTTP plumbing (headers, rate limits, auth live in `http`), never panics on request input,
//! and does O(events) work per request (event counts in tests and benches are small).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use rand::Rng;
use serde_json::{json, Value};

use super::http::OktaErr;
use crate::common::{encode_query, query_get, random_alnum};

/// Documented defaults: `limit` 100, at most 1000; `since` defaults to 7 days before `until`;
/// 90-day retention; `since` more than 180 days back is refused.
pub(crate) const DEFAULT_LIMIT: u64 = 100;
pub(crate) const MAX_LIMIT: u64 = 1000;
const DEFAULT_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
pub(crate) const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
const MAX_SINCE_MS: i64 = 180 * 24 * 3600 * 1000;
/// How long after the original a duplicate copy is persisted.
pub(crate) const DUPLICATE_AFTER: Duration = Duration::from_secs(1);

/// An event as the emulator holds it (scripting view; the API shape is `GET /api/v1/logs`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SimLogEvent {
    pub uuid: String,
    pub event_type: String,
    /// RFC 3339, milliseconds, `Z`.
    pub published: String,
    /// When it became (or becomes) visible to queries: `published` + the ingestion delay.
    pub visible_at: String,
    /// `target[].id`, in order.
    pub target_ids: Vec<String>,
}

/// One `target[]` entry.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub id: String,
    pub kind: &'static str,
    pub alternate_id: String,
    pub display_name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct LogEvent {
    seq: u64,
    uuid: String,
    published_ms: i64,
    visible_ms: i64,
    event_type: String,
    job: bool,
    transaction_id: String,
    targets: Vec<Target>,
    request_uri: Option<String>,
}

/// The org's System Log and its knobs.
#[derive(Debug)]
pub(crate) struct SystemLog {
    /// Sorted by `(visible_ms, seq)` (persistence order).
    events: Vec<LogEvent>,
    next_seq: u64,
    /// Ingestion delay, drawn uniformly per event from this range.
    pub delay: (Duration, Duration),
    pub duplicate: bool,
    pub dropped: BTreeSet<String>,
    pub retention: Duration,
    pub forbidden: bool,
    /// Off while the fixture loads (the initial state has no history).
    pub recording: bool,
    actor_id: String,
}

impl Default for SystemLog {
    fn default() -> SystemLog {
        SystemLog {
            events: Vec::new(),
            next_seq: 1,
            delay: (Duration::ZERO, Duration::ZERO),
            duplicate: false,
            dropped: BTreeSet::new(),
            retention: DEFAULT_RETENTION,
            forbidden: false,
            recording: true,
            actor_id: format!("00u{}", random_alnum(17)),
        }
    }
}

fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ms_timestamp(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// `displayMessage` and `legacyEventType` per event type (docs/api-facts.md "Okta System Log").
fn meta(event_type: &str) -> (&'static str, Option<&'static str>) {
    match event_type {
        "application.user_membership.add" => (
            "Add user to application membership",
            Some("app.generic.provision.assign_user_to_app"),
        ),
        "application.user_membership.remove" => (
            "Remove users application membership",
            Some("app.generic.provision.deactivate_user_from_app"),
        ),
        "application.user_membership.update" => (
            "Updated user application property",
            Some("app.generic.config.app_user_property_update"),
        ),
        "user.lifecycle.deactivate" => (
            "Deactivate Okta User",
            Some("core.user.config.user_deactivated"),
        ),
        "user.lifecycle.activate" => (
            "Activate Okta user",
            Some("core.user.config.user_activated"),
        ),
        "user.lifecycle.reactivate" => (
            "Reactivate Okta user",
            Some("core.user.config.user_reactivation.success"),
        ),
        "user.lifecycle.suspend" => (
            "Suspend Okta user",
            Some("core.user.config.user_status.suspended"),
        ),
        "user.lifecycle.unsuspend" => (
            "Unsuspend Okta user",
            Some("core.user.config.user_status.unsuspended"),
        ),
        "user.account.update_profile" => (
            "Update user profile for Okta",
            Some("core.user.config.profile_update.success"),
        ),
        "group.user_membership.add" => (
            "Add user to group membership",
            Some("core.user_group_member.user_add"),
        ),
        "group.user_membership.remove" => (
            "Remove user from group membership",
            Some("core.user_group_member.user_remove"),
        ),
        "group.application_assignment.add" => (
            "Add assigned application to group",
            Some("group.application_assignment.add"),
        ),
        "group.application_assignment.remove" => (
            "Remove assigned application from group",
            Some("group.application_assignment.remove"),
        ),
        "user.lifecycle.delete.initiated" => ("Delete Okta user initiated", None),
        "user.lifecycle.delete.completed" => ("Delete Okta user completed", None),
        _ => ("", None),
    }
}

impl SystemLog {
    /// Records one event published at `now` (unless recording is off or its type is dropped).
    /// `job`: Okta made the change in a background job (e.g. a group's app grant following a
    /// membership), not the admin's request.
    pub(crate) fn record(
        &mut self,
        now: SystemTime,
        event_type: &str,
        targets: Vec<Target>,
        job: bool,
        request_uri: Option<String>,
    ) {
        if !self.recording || self.dropped.contains(event_type) {
            return;
        }
        let published_ms = epoch_ms(now);
        let (lo, hi) = self.delay;
        let delay = if hi > lo {
            rand::thread_rng().gen_range(lo..=hi)
        } else {
            lo
        };
        let ev = LogEvent {
            seq: 0,
            uuid: uuid::Uuid::new_v4().to_string(),
            published_ms,
            visible_ms: published_ms + delay.as_millis() as i64,
            event_type: event_type.to_string(),
            job,
            transaction_id: random_alnum(27),
            targets,
            request_uri,
        };
        if self.duplicate {
            let mut copy = ev.clone();
            copy.visible_ms += DUPLICATE_AFTER.as_millis() as i64;
            self.insert(ev);
            self.insert(copy);
        } else {
            self.insert(ev);
        }
    }

    fn insert(&mut self, mut ev: LogEvent) {
        ev.seq = self.next_seq;
        self.next_seq += 1;
        let key = (ev.visible_ms, ev.seq);
        let at = self
            .events
            .partition_point(|e| (e.visible_ms, e.seq) <= key);
        self.events.insert(at, ev);
    }

    /// Forgets events published before `now − retention`.
    fn purge(&mut self, now_ms: i64) {
        let cutoff = now_ms - self.retention.as_millis().min(i64::MAX as u128) as i64;
        self.events.retain(|e| e.published_ms >= cutoff);
    }

    /// The knobs, for the admin API's state view.
    pub(crate) fn knobs_json(&self) -> Value {
        json!({
            "delay_ms": [self.delay.0.as_millis() as u64, self.delay.1.as_millis() as u64],
            "duplicate": self.duplicate,
            "dropped": self.dropped,
            "retention_secs": self.retention.as_secs(),
            "forbidden": self.forbidden,
            "events": self.events.len(),
        })
    }

    /// Every event recorded so far and not yet purged, visible or not, in persistence order
    /// (for scripting and the admin API).
    pub(crate) fn all(&self) -> Vec<SimLogEvent> {
        self.events
            .iter()
            .map(|e| SimLogEvent {
                uuid: e.uuid.clone(),
                event_type: e.event_type.clone(),
                published: ms_timestamp(e.published_ms),
                visible_at: ms_timestamp(e.visible_ms),
                target_ids: e.targets.iter().map(|t| t.id.clone()).collect(),
            })
            .collect()
    }

    fn event_json(&self, e: &LogEvent, app_label: &str) -> Value {
        let (message, legacy) = meta(&e.event_type);
        let targets: Vec<Value> = e
            .targets
            .iter()
            .map(|t| {
                json!({
                    "id": t.id, "type": t.kind, "alternateId": t.alternate_id,
                    "displayName": t.display_name, "detailEntry": null,
                })
            })
            .collect();
        let web = !e.job;
        json!({
            "actor": {
                "id": self.actor_id, "type": "User", "alternateId": "admin@emulator.okta.invalid",
                "displayName": format!("{app_label} Emulator Admin"), "detailEntry": null,
            },
            "client": if web {
                json!({
                    "userAgent": {"rawUserAgent": "okta-spot-sim", "os": "Unknown", "browser": "UNKNOWN"},
                    "zone": "null", "device": "Unknown", "id": null, "ipAddress": "127.0.0.1",
                    "geographicalContext": null,
                })
            } else {
                json!({"userAgent": null, "zone": null, "device": null, "id": null, "ipAddress": null, "geographicalContext": null})
            },
            "device": null,
            "authenticationContext": {
                "authenticationProvider": null, "credentialProvider": null, "credentialType": null,
                "issuer": null, "interface": null, "authenticationStep": 0,
                "externalSessionId": if web { json!(format!("trs{}", &e.transaction_id[..22])) } else { Value::Null },
            },
            "displayMessage": message,
            "eventType": e.event_type,
            "legacyEventType": legacy,
            "outcome": {"result": "SUCCESS", "reason": null},
            "published": ms_timestamp(e.published_ms),
            "securityContext": {"asNumber": null, "asOrg": null, "isp": null, "domain": null, "isProxy": null},
            "severity": "INFO",
            "debugContext": {"debugData": match &e.request_uri {
                Some(u) => json!({"requestUri": u}),
                None => json!({}),
            }},
            "request": {"ipChain": if web {
                json!([{"ip": "127.0.0.1", "geographicalContext": null, "version": "V4", "source": null}])
            } else {
                json!([])
            }},
            "target": targets,
            "transaction": {"type": if web { "WEB" } else { "JOB" }, "id": e.transaction_id, "detail": {}},
            "uuid": e.uuid,
            "version": "0",
        })
    }

    /// `GET /api/v1/logs`: the page body and its `Link` header values.
    pub(crate) fn list(
        &mut self,
        base: &str,
        query: &[(String, String)],
        now: SystemTime,
        app_label: &str,
    ) -> Result<(Vec<u8>, Vec<String>), OktaErr> {
        if self.forbidden {
            return Err(OktaErr::new(
                StatusCode::FORBIDDEN,
                "E0000006",
                "You do not have permission to perform the requested action",
            ));
        }
        let now_ms = epoch_ms(now);
        let limit = match query_get(query, "limit") {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if (0..=MAX_LIMIT as i64).contains(&n) => n as u64,
                _ => {
                    return Err(OktaErr::new(
                        StatusCode::BAD_REQUEST,
                        "E0000001",
                        "Api validation failed: limit",
                    )
                    .cause(format!("limit: must be between 0 and {MAX_LIMIT}")))
                }
            },
        };
        let descending = match query_get(query, "sortOrder") {
            None => false,
            Some("ASCENDING") => false,
            Some("DESCENDING") => true,
            Some(other) => {
                return Err(OktaErr::new(
                    StatusCode::BAD_REQUEST,
                    "E0000001",
                    "Api validation failed: sortOrder",
                )
                .cause(format!(
                    "sortOrder: '{other}' is not one of ASCENDING, DESCENDING"
                )))
            }
        };
        let until = date_param(query, "until")?;
        let since = date_param(query, "since")?;
        if let Some(s) = since {
            if s < now_ms - MAX_SINCE_MS {
                return Err(OktaErr::new(
                    StatusCode::BAD_REQUEST,
                    "E0000053",
                    "Invalid parameter: The since parameter is over 180 days prior to the current day.",
                ));
            }
        }
        let filter = match query_get(query, "filter") {
            Some(f) => Some(parse_filter(f).map_err(|msg| {
                OktaErr::new(StatusCode::BAD_REQUEST, "E0000053", "Invalid SCIM filter.").cause(msg)
            })?),
            None => None,
        };
        let after = match query_get(query, "after") {
            Some(c) => Some(parse_cursor(c).ok_or_else(|| {
                OktaErr::new(
                    StatusCode::BAD_REQUEST,
                    "E0000029",
                    "Invalid paging request.",
                )
                .cause("Invalid cursor.")
            })?),
            None => None,
        };
        self.purge(now_ms);
        let polling = until.is_none() && !descending;
        let matches = |e: &LogEvent| filter.as_ref().is_none_or(|f| f.eval(e));
        let visible = |e: &LogEvent| e.visible_ms <= now_ms;
        let mut page: Vec<&LogEvent> = Vec::new();
        let mut more = false;
        if polling {
            // Persistence order, from the cursor (exclusive) or `since` (inclusive).
            let since = since.unwrap_or(now_ms - DEFAULT_WINDOW_MS);
            for e in &self.events {
                let past_start = match after {
                    Some(c) => (e.visible_ms, e.seq) > c,
                    None => e.visible_ms >= since,
                };
                if !past_start || !matches(e) {
                    continue;
                }
                if !visible(e) {
                    break;
                }
                if page.len() as u64 == limit {
                    more = true;
                    break;
                }
                page.push(e);
            }
        } else {
            let until = until.unwrap_or(now_ms);
            let since = since.unwrap_or(until - DEFAULT_WINDOW_MS);
            let mut rows: Vec<&LogEvent> = self
                .events
                .iter()
                .filter(|e| visible(e) && e.published_ms >= since && e.published_ms < until)
                .filter(|e| matches(e))
                .filter(|e| match after {
                    None => true,
                    Some(c) if descending => (e.published_ms, e.seq) < c,
                    Some(c) => (e.published_ms, e.seq) > c,
                })
                .collect();
            rows.sort_by_key(|e| (e.published_ms, e.seq));
            if descending {
                rows.reverse();
            }
            more = rows.len() as u64 > limit;
            rows.truncate(limit as usize);
            page = rows;
        }
        let body: Vec<Value> = page.iter().map(|e| self.event_json(e, app_label)).collect();
        let body = serde_json::to_vec(&body).unwrap_or_default();

        let url = |pairs: Vec<(&str, &str)>| {
            if pairs.is_empty() {
                format!("{base}/api/v1/logs")
            } else {
                format!("{base}/api/v1/logs?{}", encode_query(pairs))
            }
        };
        let own: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let self_url = url(own.clone());
        let next_after = |e: &LogEvent| {
            if polling {
                format!("{}_{}", e.visible_ms, e.seq)
            } else {
                format!("{}_{}", e.published_ms, e.seq)
            }
        };
        let next_url = match page.last() {
            // A polling page always has a next link; empty, it repeats the request.
            None if polling => Some(self_url.clone()),
            None => None,
            Some(last) if polling || more => {
                let cursor = next_after(last);
                // Polling next links carry `after` and drop `since`; bounded ones keep it.
                let mut pairs: Vec<(&str, &str)> = own
                    .iter()
                    .copied()
                    .filter(|(k, _)| *k != "after" && !(polling && *k == "since"))
                    .collect();
                pairs.push(("after", &cursor));
                Some(url(pairs))
            }
            Some(_) => None,
        };
        let mut links = vec![format!("<{self_url}>; rel=\"self\"")];
        if let Some(n) = next_url {
            links.push(format!("<{n}>; rel=\"next\""));
        }
        Ok((body, links))
    }
}

fn parse_cursor(s: &str) -> Option<(i64, u64)> {
    let (a, b) = s.split_once('_')?;
    if a.is_empty() || b.is_empty() || !a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// An ISO 8601 (RFC 3339) date parameter as epoch ms; a bad one is `400 E0000001`.
fn date_param(query: &[(String, String)], name: &str) -> Result<Option<i64>, OktaErr> {
    let Some(raw) = query_get(query, name) else {
        return Ok(None);
    };
    parse_date(raw).map(Some).ok_or_else(|| {
        OktaErr::new(
            StatusCode::BAD_REQUEST,
            "E0000001",
            format!("'{name}': The date format in your query is not recognized. Please enter dates using ISO 8601 string format.."),
        )
        .cause(format!("'{name}': The date format in your query is not recognized."))
        .cause("Please enter dates using ISO 8601 string format.")
    })
}

fn parse_date(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Some(d.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|d| d.and_utc().timestamp_millis())
}

// ----- filter -----

/// A parsed `filter` expression.
#[derive(Debug)]
enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Cmp {
        attr: String,
        op: String,
        value: String,
    },
    Present(String),
}

const ATTRS: &[&str] = &[
    "eventType",
    "event_type",
    "uuid",
    "displayMessage",
    "legacyEventType",
    "severity",
    "version",
    "actor.id",
    "actor.type",
    "actor.alternateId",
    "actor.displayName",
    "target.id",
    "target.type",
    "target.alternateId",
    "target.displayName",
    "outcome.result",
    "transaction.id",
    "transaction.type",
];

const OPS: &[&str] = &["eq", "ne", "co", "sw", "ew", "pr", "gt", "ge", "lt", "le"];

impl Node {
    fn eval(&self, e: &LogEvent) -> bool {
        match self {
            Node::Or(v) => v.iter().any(|n| n.eval(e)),
            Node::And(v) => v.iter().all(|n| n.eval(e)),
            Node::Present(attr) => !values(e, attr).is_empty(),
            Node::Cmp { attr, op, value } => {
                let vals = values(e, attr);
                let v = value.as_str();
                if op == "ne" {
                    return vals.iter().all(|a| *a != v);
                }
                vals.iter().any(|a| match op.as_str() {
                    "eq" => *a == v,
                    "co" => a.contains(v),
                    "sw" => a.starts_with(v),
                    "ew" => a.ends_with(v),
                    "gt" => *a > v,
                    "ge" => *a >= v,
                    "lt" => *a < v,
                    "le" => *a <= v,
                    _ => false,
                })
            }
        }
    }
}

/// The values of one attribute on an event (targets give one per target).
fn values<'a>(e: &'a LogEvent, attr: &str) -> Vec<&'a str> {
    let (message, legacy) = meta(&e.event_type);
    match attr {
        "eventType" | "event_type" => vec![&e.event_type],
        "uuid" => vec![&e.uuid],
        "displayMessage" => vec![message],
        "legacyEventType" => legacy.into_iter().collect(),
        "severity" => vec!["INFO"],
        "version" => vec!["0"],
        "actor.type" => vec!["User"],
        "outcome.result" => vec!["SUCCESS"],
        "transaction.id" => vec![&e.transaction_id],
        "transaction.type" => vec![if e.job { "JOB" } else { "WEB" }],
        "target.id" => e.targets.iter().map(|t| t.id.as_str()).collect(),
        "target.type" => e.targets.iter().map(|t| t.kind).collect(),
        "target.alternateId" => e.targets.iter().map(|t| t.alternate_id.as_str()).collect(),
        "target.displayName" => e.targets.iter().map(|t| t.display_name.as_str()).collect(),
        // The actor is the same admin for every event; its id is not matched here.
        _ => Vec::new(),
    }
}

/// Tokens with their character position: `(pos, quoted, text)`.
fn tokenize(s: &str) -> Result<Vec<(usize, bool, String)>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            out.push((i, false, c.to_string()));
            i += 1;
        } else if c == '"' {
            let start = i;
            i += 1;
            let mut v = String::new();
            let mut closed = false;
            while i < chars.len() {
                match chars[i] {
                    '\\' if i + 1 < chars.len() => {
                        v.push(chars[i + 1]);
                        i += 2;
                    }
                    '"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    ch => {
                        v.push(ch);
                        i += 1;
                    }
                }
            }
            if !closed {
                return Err(format!(
                    "Invalid filter '{s}': Unterminated string at position {start}."
                ));
            }
            out.push((start, true, v));
        } else {
            let start = i;
            let mut w = String::new();
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '(' && chars[i] != ')'
            {
                w.push(chars[i]);
                i += 1;
            }
            out.push((start, false, w));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(usize, bool, String)>,
    i: usize,
}

impl Parser<'_> {
    fn word(&self, w: &str) -> bool {
        self.toks
            .get(self.i)
            .is_some_and(|(_, q, t)| !q && t.eq_ignore_ascii_case(w))
    }

    fn err_at(&self, what: &str) -> String {
        let pos = self.toks.get(self.i).map_or(self.src.len(), |t| t.0);
        format!("Invalid filter '{}': {what} at position {pos}.", self.src)
    }

    fn or(&mut self) -> Result<Node, String> {
        let mut v = vec![self.and()?];
        while self.word("or") {
            self.i += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Node::Or(v)
        })
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut v = vec![self.atom()?];
        while self.word("and") {
            self.i += 1;
            v.push(self.atom()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Node::And(v)
        })
    }

    fn atom(&mut self) -> Result<Node, String> {
        if self.word("(") {
            self.i += 1;
            let n = self.or()?;
            if !self.word(")") {
                return Err(self.err_at("Expected ')'"));
            }
            self.i += 1;
            return Ok(n);
        }
        let Some((_, quoted, attr)) = self.toks.get(self.i).cloned() else {
            return Err(self.err_at("Expected an attribute"));
        };
        if quoted || attr == ")" {
            return Err(self.err_at("Expected an attribute"));
        }
        if !ATTRS.contains(&attr.as_str()) {
            return Err(format!("field is not valid: {attr}"));
        }
        self.i += 1;
        let Some((_, oq, op)) = self.toks.get(self.i).cloned() else {
            return Err(self.err_at("Expected an operator"));
        };
        let op_l = op.to_ascii_lowercase();
        if oq || !OPS.contains(&op_l.as_str()) {
            let pos = self.toks.get(self.i).map_or(0, |t| t.0);
            return Err(format!(
                "Invalid filter '{}': Unrecognized attribute operator '{op}' at position {pos}. Expected: eq,co,sw,pr,gt,ge,lt,le",
                self.src
            ));
        }
        self.i += 1;
        if op_l == "pr" {
            return Ok(Node::Present(attr));
        }
        match self.toks.get(self.i).cloned() {
            Some((_, true, value)) => {
                self.i += 1;
                Ok(Node::Cmp {
                    attr,
                    op: op_l,
                    value,
                })
            }
            _ => Err(self.err_at("Expected a quoted value")),
        }
    }
}

/// Parses a SCIM-like filter: `attr op "value"`, `attr pr`, `and` (tighter), `or`,
/// parentheses. Errors are the `errorCauses` text of a `400 E0000053`.
fn parse_filter(s: &str) -> Result<Node, String> {
    let mut p = Parser {
        src: s,
        toks: tokenize(s)?,
        i: 0,
    };
    let n = p.or()?;
    if p.i != p.toks.len() {
        return Err(p.err_at("Expected 'and' or 'or'"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: &str, target: &str) -> LogEvent {
        LogEvent {
            seq: 1,
            uuid: "u".into(),
            published_ms: 0,
            visible_ms: 0,
            event_type: t.into(),
            job: false,
            transaction_id: "x".repeat(27),
            targets: vec![Target {
                id: target.into(),
                kind: "User",
                alternate_id: "a@x.com".into(),
                display_name: "A".into(),
            }],
            request_uri: None,
        }
    }

    #[test]
    fn filters_parse_and_match() {
        let f = parse_filter(
            r#"(eventType eq "user.lifecycle.deactivate" or eventType eq "user.lifecycle.activate") and target.id eq "00u1""#,
        )
        .unwrap();
        assert!(f.eval(&ev("user.lifecycle.activate", "00u1")));
        assert!(!f.eval(&ev("user.lifecycle.activate", "00u2")));
        assert!(!f.eval(&ev("user.lifecycle.suspend", "00u1")));
        let f = parse_filter(r#"event_type sw "user.""#).unwrap();
        assert!(f.eval(&ev("user.lifecycle.suspend", "00u1")));
        assert!(parse_filter(r#"eventType eqq "x""#)
            .unwrap_err()
            .contains("Unrecognized attribute operator 'eqq' at position 10"));
        assert_eq!(
            parse_filter(r#"published gt "2024""#).unwrap_err(),
            "field is not valid: published"
        );
        assert!(parse_filter(r#"eventType eq "x" or"#).is_err());
        assert!(parse_filter(r#"eventType eq "x"#).is_err());
    }

    #[test]
    fn cursors_and_dates() {
        assert_eq!(parse_cursor("1627500044869_1"), Some((1627500044869, 1)));
        assert!(parse_cursor("00u123").is_none());
        assert!(parse_cursor("_1").is_none());
        assert_eq!(parse_date("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(parse_date("1970-01-01T00:00:01"), Some(1000));
        assert!(parse_date("yesterday").is_none());
    }
}
