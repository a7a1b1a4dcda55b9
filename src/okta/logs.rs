//! Polling the Okta System Log (`GET /api/v1/logs`) for events mode: which users changed
//! since the last poll.
//!
//! It owns one *polling request* ([`OktaClient::poll_logs`]: no `until`, ascending, so Okta
//! orders by persistence time and always answers a `next` link) and the parsing of its
//! `LogEvent`s into the few fields events mode reads (docs/api-facts.md "Okta System Log").
//! A page is all or nothing: an event that cannot be read fails the whole page, because a
//! skipped event is a user change nobody re-checks.
//!
//! It does not follow `next` links itself, keep the position between polls, wait for late
//! events, or deduplicate: events arrive late and may be delivered more than once (same
//! `uuid`), so callers overlap their polls and dedupe by `uuid`. Events carry no new values;
//! callers read the changed users again (e.g. [`OktaClient::get_app_user`]).
//!
//! It must never send the token to another origin (a next link elsewhere is refused, not
//! followed: it is only parsed for its cursor), and never log or return the token (see
//! [`crate::http`]).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use url::Url;

use crate::error::{Api, Error};
use crate::http::{Call, Retry};
use crate::okta::client::OktaClient;
use crate::okta::parse;

/// Route template of the System Log, for metrics.
pub const ROUTE_LOGS: &str = "/api/v1/logs";

/// The largest `limit` Okta accepts (docs/api-facts.md "Okta System Log": 0–1000).
pub const MAX_LOGS_LIMIT: u32 = 1000;

/// Where a polling request starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogPosition {
    /// `since=<RFC 3339 ms Z>` (persistence time for polling requests).
    Since(DateTime<Utc>),
    /// `after=<opaque cursor>` taken from a previous page's `next` link.
    After(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub id: String,
    /// The target's `type` (`User`, `AppUser`, `AppInstance`, `UserGroup`, ...).
    pub kind: String,
    pub alternate_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub uuid: String,
    pub published: DateTime<Utc>,
    pub event_type: String,
    pub targets: Vec<LogTarget>,
}

impl LogEvent {
    /// The ids of the targets of type `kind` (find targets by type, never by position:
    /// docs/api-facts.md "Okta System Log").
    pub fn target_ids<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.targets
            .iter()
            .filter(move |t| t.kind == kind)
            .map(|t| t.id.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub events: Vec<LogEvent>,
    /// The `after` value of this page's `rel="next"` link: where the next poll starts.
    ///
    /// Empty in one case only: an empty page answering a [`LogPosition::Since`] poll, whose
    /// next link repeats that request (Okta's empty polling page: next = self) and so carries
    /// no cursor. Poll from [`LogPage::next`] (the same `since`) then.
    pub after: String,
    /// Where the next poll starts: `After(after)`, or the request's own `Since` position when
    /// `after` is empty (above).
    pub next: LogPosition,
}

/// Why a poll failed.
#[derive(Debug)]
pub enum LogsError {
    /// 403 (or 401): the token's admin or the OAuth app may not read the System Log
    /// (`okta.logs.read`). `detail` is Okta's error summary (no token).
    Refused { status: u16, detail: String },
    /// 400 on the position (an `after` cursor Okta no longer accepts, a `since` out of range):
    /// the caller must start over from a full cycle.
    BadPosition(String),
    /// Anything else (transport, 5xx after retries, 429 after retries, an unusable body or Link
    /// header, a next link to another origin or without `after`).
    Failed(Error),
}

impl fmt::Display for LogsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogsError::Refused { status, detail } => write!(
                f,
                "Okta refused to let this client read the System Log (GET {ROUTE_LOGS}, HTTP \
                 {status}: {detail}); events mode needs the okta.logs.read scope granted to the \
                 OAuth service app (Okta Admin Console → Applications → the API Services app → \
                 Okta API Scopes), or an SSWS token whose admin may read the System Log"
            ),
            LogsError::BadPosition(detail) => write!(
                f,
                "Okta refused the position of the System Log poll (GET {ROUTE_LOGS}: {detail}); \
                 the cursor or start time is no longer usable, so polling must start over after \
                 a full cycle"
            ),
            LogsError::Failed(e) => write!(f, "the System Log poll failed: {e}"),
        }
    }
}

impl std::error::Error for LogsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogsError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// `since` as Okta documents it: RFC 3339, milliseconds, `Z`.
fn since_param(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `t` as sent in `since` (whole milliseconds).
fn truncate_ms(t: &DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(*t)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl OktaClient {
    fn logs_url(&self, position: &LogPosition, filter: Option<&str>, limit: u32) -> Url {
        let mut url = self.org_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().extend(["api", "v1", "logs"]);
        }
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &limit.to_string());
            if let Some(filter) = filter {
                query.append_pair("filter", filter);
            }
            match position {
                LogPosition::Since(t) => query.append_pair("since", &since_param(t)),
                LogPosition::After(cursor) => query.append_pair("after", cursor),
            };
        }
        url
    }

    /// One polling request: `GET /api/v1/logs?limit=<limit>&filter=<filter>&(since|after)=…`
    /// (no `until`, ascending: a polling request). Parses every event (all or nothing: an entry
    /// that is not an object or lacks uuid/published/eventType makes the page `Failed` with
    /// `Error::Malformed`); the `next` link is required, must be same-origin and must carry
    /// `after`. After the response, honours the rate-limit budget like the walk does
    /// (`budget_wait` with `okta.max_api_capacity_percent`): sleeps before returning.
    ///
    /// `limit` is clamped to 1–1000 (Okta's maximum; 0 would never move on). An empty `After`
    /// cursor is refused as [`LogsError::BadPosition`] without a request. The one next link
    /// without `after` that is accepted is the repeat of a `since` request on an empty page
    /// (see [`LogPage::after`]). A 400 that names the filter is `Failed` (a bad filter is this
    /// program's bug; starting over would not help), any other 400 is `BadPosition`.
    pub async fn poll_logs(
        &self,
        position: &LogPosition,
        filter: Option<&str>,
        limit: u32,
    ) -> Result<LogPage, LogsError> {
        if matches!(position, LogPosition::After(c) if c.trim().is_empty()) {
            return Err(LogsError::BadPosition(
                "the after cursor is empty (no cursor was given by Okta)".to_string(),
            ));
        }
        let limit = limit.clamp(1, MAX_LOGS_LIMIT);
        let url = self.logs_url(position, filter, limit);
        let what = format!("GET {ROUTE_LOGS}");
        let call = Call {
            what: &what,
            route: ROUTE_LOGS,
            retry: Retry::Auto,
        };
        let response = match self.http.send(call, |c| c.get(url.clone())).await {
            Ok(response) => response,
            Err(Error::Credentials { status, detail, .. }) => {
                return Err(LogsError::Refused { status, detail })
            }
            Err(Error::Status {
                status: 400,
                code,
                detail,
                ..
            }) if !(filter.is_some() && detail.to_ascii_lowercase().contains("filter")) => {
                return Err(LogsError::BadPosition(format!(
                    "HTTP 400{}: {detail}",
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                )))
            }
            Err(e) => return Err(LogsError::Failed(e)),
        };
        let malformed = |detail: String| {
            LogsError::Failed(Error::Malformed {
                api: Api::Okta,
                what: what.clone(),
                detail,
            })
        };
        let events = parse_events(&response.body).map_err(malformed)?;
        let target = parse::next_link(&response.headers)
            .map_err(|e| malformed(format!("unusable Link header: {e}")))?
            .ok_or_else(|| {
                malformed(
                    "the response has no rel=\"next\" link, which every polling page carries"
                        .to_string(),
                )
            })?;
        let next_url = url
            .join(&target)
            .map_err(|e| malformed(format!("the next link is not a valid URL: {e}")))?;
        if next_url.origin() != self.org_url.origin() {
            return Err(malformed(format!(
                "the next link points to {}, not to the configured Okta org {}; its cursor was \
                 not used",
                next_url.origin().ascii_serialization(),
                self.org_url.origin().ascii_serialization()
            )));
        }
        let param = |name: &str| {
            next_url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let (after, next) = match (param("after").filter(|a| !a.is_empty()), position) {
            (Some(after), _) => (after.clone(), LogPosition::After(after)),
            // An empty page of a `since` poll: the next link repeats the request.
            (None, LogPosition::Since(t))
                if events.is_empty()
                    && param("since").as_deref().and_then(parse_time) == Some(truncate_ms(t)) =>
            {
                (String::new(), position.clone())
            }
            (None, _) => {
                return Err(malformed(
                    "the next link carries no after cursor".to_string(),
                ))
            }
        };
        self.pause_for_budget(&response.headers, "the System Log polls")
            .await;
        Ok(LogPage {
            events,
            after,
            next,
        })
    }
}

/// Parses a `GET /api/v1/logs` body: a JSON array of `LogEvent` objects, each with a
/// non-empty string `uuid`, an RFC 3339 `published` and a non-empty string `eventType`;
/// anything else fails the page (the message names the entry). `target` may be absent or
/// `null` (no targets); otherwise it must be an array of objects, and a target without a
/// string `id` or `type` is skipped. Unknown fields are ignored.
pub fn parse_events(body: &[u8]) -> Result<Vec<LogEvent>, String> {
    let text = std::str::from_utf8(body).map_err(|e| {
        format!(
            "the body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Array(entries) = value else {
        return Err("the body is not a JSON array".to_string());
    };
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| parse_event(entry).map_err(|e| format!("event {index}: {e}")))
        .collect()
}

fn parse_event(entry: &Value) -> Result<LogEvent, String> {
    let Value::Object(event) = entry else {
        return Err("not a JSON object".to_string());
    };
    let text = |name: &str| -> Result<String, String> {
        match event.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(format!("\"{name}\" is empty")),
            None | Some(Value::Null) => Err(format!("no \"{name}\"")),
            Some(_) => Err(format!("\"{name}\" is not a string")),
        }
    };
    let uuid = text("uuid")?;
    let event_type = text("eventType")?;
    let published = text("published")?;
    let published = DateTime::parse_from_rfc3339(&published)
        .map_err(|e| format!("\"published\" {published:?} is not an RFC 3339 time: {e}"))?
        .with_timezone(&Utc);
    let targets = match event.get("target") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| match t {
                Value::Object(t) => Ok(t),
                _ => Err("a \"target\" entry is not a JSON object".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter_map(|t| {
                let string = |name: &str| match t.get(name) {
                    Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                };
                Some(LogTarget {
                    id: string("id")?,
                    kind: string("type")?,
                    alternate_id: string("alternateId"),
                })
            })
            .collect(),
        Some(_) => return Err("\"target\" is not an array".to_string()),
    };
    Ok(LogEvent {
        uuid,
        published,
        event_type,
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `user.lifecycle.deactivate` event in Okta's shape (docs/api-facts.md "Okta System
    /// Log": the fields of a recorded LogEvent), with fields this module ignores.
    const DEACTIVATE: &str = r#"{
        "actor": {"id": "00u1adminXYZ", "type": "User", "alternateId": "admin@example.com",
                  "displayName": "Admin", "detailEntry": null},
        "client": {"userAgent": {"rawUserAgent": "Mozilla/5.0", "os": "Mac OS X",
                   "browser": "CHROME"}, "zone": "null", "device": "Computer", "id": null,
                   "ipAddress": "203.0.113.7", "geographicalContext": null},
        "device": null,
        "authenticationContext": {"authenticationProvider": null, "credentialProvider": null,
                   "credentialType": null, "issuer": null, "interface": null,
                   "authenticationStep": 0, "externalSessionId": "trsAbCdEf"},
        "displayMessage": "Deactivate Okta User",
        "eventType": "user.lifecycle.deactivate",
        "legacyEventType": "core.user.config.user_deactivated",
        "outcome": {"result": "SUCCESS", "reason": null},
        "published": "2025-09-11T16:21:50.123Z",
        "securityContext": {"asNumber": null, "asOrg": null, "isp": null, "domain": null,
                   "isProxy": null},
        "severity": "INFO",
        "debugContext": {"debugData": {"requestUri": "/api/v1/users/00u1abc/lifecycle/deactivate"}},
        "request": {"ipChain": [{"ip": "203.0.113.7", "geographicalContext": null,
                   "version": "V4", "source": null}]},
        "target": [
            {"id": "00u1abc", "type": "User", "alternateId": "jane@example.com",
             "displayName": "Jane Doe", "detailEntry": null},
            {"id": "0ua9xyz", "type": "AppUser", "alternateId": null, "displayName": "x"},
            {"type": "AppInstance", "alternateId": "Spot"},
            {"id": "0oa1app", "alternateId": "Spot"}
        ],
        "transaction": {"type": "WEB", "id": "YwAbCdEf", "detail": {}},
        "uuid": "9f5e3c1e-8f0a-11f0-9d3e-5b1c2f6a7e10",
        "version": "0"
    }"#;

    #[test]
    fn a_recorded_event_keeps_its_targets_with_an_id_and_a_type() {
        let events = parse_events(format!("[{DEACTIVATE}]").as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.uuid, "9f5e3c1e-8f0a-11f0-9d3e-5b1c2f6a7e10");
        assert_eq!(e.event_type, "user.lifecycle.deactivate");
        assert_eq!(
            e.published,
            DateTime::parse_from_rfc3339("2025-09-11T16:21:50.123Z").unwrap()
        );
        assert_eq!(
            e.targets,
            vec![
                LogTarget {
                    id: "00u1abc".into(),
                    kind: "User".into(),
                    alternate_id: Some("jane@example.com".into()),
                },
                LogTarget {
                    id: "0ua9xyz".into(),
                    kind: "AppUser".into(),
                    alternate_id: None,
                },
            ]
        );
        assert_eq!(e.target_ids("User").collect::<Vec<_>>(), ["00u1abc"]);
    }

    #[test]
    fn a_null_or_absent_target_is_no_target() {
        let null =
            r#"{"uuid":"u1","published":"2025-09-11T16:21:50Z","eventType":"x","target":null}"#;
        let absent = r#"{"uuid":"u2","published":"2025-09-11T18:21:50.5+02:00","eventType":"x"}"#;
        let events = parse_events(format!("[{null},{absent}]").as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.targets.is_empty()));
        assert_eq!(
            events[1].published,
            events[0].published + chrono::Duration::milliseconds(500)
        );
        assert_eq!(parse_events(b"[]").unwrap(), Vec::new());
    }

    #[test]
    fn a_malformed_event_fails_the_page() {
        let good = r#"{"uuid":"u1","published":"2025-09-11T16:21:50Z","eventType":"x"}"#;
        let cases = [
            ("{}".to_string(), "not a JSON array"),
            (format!("[{good}, 42]"), "event 1: not a JSON object"),
            (r#"[{"published":"2025-09-11T16:21:50Z","eventType":"x"}]"#.into(), "no \"uuid\""),
            (r#"[{"uuid":"u","published":"2025-09-11T16:21:50Z"}]"#.into(), "no \"eventType\""),
            (r#"[{"uuid":"u","eventType":"x"}]"#.into(), "no \"published\""),
            (
                r#"[{"uuid":"u","eventType":"x","published":"yesterday"}]"#.into(),
                "not an RFC 3339 time",
            ),
            (r#"[{"uuid":7,"eventType":"x","published":"2025-09-11T16:21:50Z"}]"#.into(), "\"uuid\" is not a string"),
            (
                r#"[{"uuid":"u","eventType":"x","published":"2025-09-11T16:21:50Z","target":{}}]"#
                    .into(),
                "\"target\" is not an array",
            ),
            (
                r#"[{"uuid":"u","eventType":"x","published":"2025-09-11T16:21:50Z","target":["00u1"]}]"#
                    .into(),
                "not a JSON object",
            ),
            (format!("[{good}"), "not valid JSON"),
        ];
        for (body, expected) in cases {
            let err = parse_events(body.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
        assert!(parse_events(b"[\xff]").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn since_is_sent_as_rfc_3339_milliseconds_z() {
        let t = DateTime::parse_from_rfc3339("2025-09-11T18:21:50.1234+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(since_param(&t), "2025-09-11T16:21:50.123Z");
    }
}
