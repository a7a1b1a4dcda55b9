//! The Okta API client: reads every assignment of the app, page by page.
//!
//! It owns the walk of `GET /api/v1/apps/{appId}/users?limit=N&expand=user` and its safety
//! rules. A read is all or nothing ([`Error::IncompleteRead`]) because planning against a
//! partial list would delete users:
//! - only the absence of a `rel="next"` link ends the walk; a short (or empty) page does not,
//!   because the server may cap `limit` below what was asked;
//! - a next link to another origin (scheme, host, port) is refused before anything is sent
//!   there, so the token never leaves the configured org;
//! - a next URL seen before, or a run of pages that add no new user, is a pagination loop;
//! - any failed page (non-2xx after retries, transport error, bad JSON, a body that is not an
//!   array, a row without an id) aborts the read. A 401/403 stays an
//!   [`Error::Credentials`] so the daemon knows retrying cannot help.
//!
//! Rows are deduplicated by Okta user id (a user can be assigned directly and by group): the
//! first row is kept, unless a later row has app-user status `ACTIVE` or `PROVISIONED` and
//! the kept one does not, in which case the later row replaces it (its assignment is the one
//! that grants access).
//!
//! Rate-limit budget: after each page, if `X-Rate-Limit-Remaining` has fallen to the share of
//! the bucket this tool must leave to others (`100 - max_api_capacity_percent` %), the walk
//! waits until `X-Rate-Limit-Reset` (measured against the response's `Date`) before asking
//! for the next page.
//!
//! It must never log or return the token (see [`crate::http`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use rustc_hash::FxHashMap;
use url::Url;

use crate::config::{HttpSettings, OktaSettings};
use crate::error::{Api, Error};
use crate::http::{AuthScheme, Call, HttpClient, Observer, Retry, RATE_LIMIT_WAIT_CAP};
use crate::model::{AppUserRow, IdentitySource};
use crate::okta::parse;

/// Route template of the list call, for metrics.
pub const ROUTE_APP_USERS: &str = "/api/v1/apps/{appId}/users";

/// Consecutive pages that add no new user before the walk is declared a loop.
pub const MAX_PAGES_WITHOUT_NEW_USERS: u32 = 10;

/// What `check` learnt from one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInfo {
    /// `X-Rate-Limit-Limit` of the app-users bucket, when sent.
    pub rate_limit_limit: Option<u64>,
    /// `X-Rate-Limit-Remaining`, when sent.
    pub rate_limit_remaining: Option<u64>,
    /// Rows on the first page (0 or 1).
    pub rows_on_first_page: usize,
    /// Whether the app has more than the rows shown (a `next` link was sent).
    pub has_more: bool,
}

/// Reads the app's assignments from Okta.
#[derive(Debug)]
pub struct OktaClient {
    http: HttpClient,
    org_url: Url,
    app_id: String,
    role_attribute: String,
    page_size: u32,
    capacity_percent: u8,
    pages: AtomicU64,
}

impl OktaClient {
    pub fn new(settings: &OktaSettings, http: &HttpSettings) -> Result<Self, Error> {
        if settings.app_id.trim().is_empty() {
            return Err(Error::Config("okta.app_id is empty".into()));
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let client = HttpClient::new(
            Api::Okta,
            &settings.org_url,
            AuthScheme::Ssws,
            settings.token.clone(),
            http,
            headers,
        )?;
        Ok(OktaClient {
            http: client,
            org_url: settings.org_url.clone(),
            app_id: settings.app_id.clone(),
            role_attribute: settings.role_attribute.clone(),
            page_size: settings.page_size.clamp(1, 500),
            capacity_percent: settings.max_api_capacity_percent.clamp(1, 100),
            pages: AtomicU64::new(0),
        })
    }

    /// Installs a per-request observer (metrics).
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.http = self.http.with_observer(observer);
        self
    }

    /// List pages fetched successfully so far (all reads together).
    pub fn pages_fetched(&self) -> u64 {
        self.pages.load(Ordering::Relaxed)
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.http.requests_sent()
    }

    fn users_url(&self, limit: u32, expand: bool) -> Url {
        let mut url = self.org_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .clear()
                .extend(["api", "v1", "apps", self.app_id.as_str(), "users"]);
        }
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &limit.to_string());
            if expand {
                query.append_pair("expand", "user");
            }
        }
        url
    }

    /// The whole walk; see the module documentation for its rules.
    ///
    /// Pages are pipelined: page N is parsed while the request for page N+1 is in flight (its
    /// URL comes from page N's `Link` header, not its body), so parsing adds nothing to the
    /// walk's time. A page that turns out unusable still aborts the read.
    pub async fn read_all(&self) -> Result<Vec<AppUserRow>, Error> {
        let mut url = self.users_url(self.page_size, true);
        let mut visited: HashSet<String> = HashSet::new();
        let mut rows: Vec<AppUserRow> = Vec::new();
        let mut index: FxHashMap<String, usize> = FxHashMap::default();
        let mut page: u32 = 0;
        let mut pages_without_new_users: u32 = 0;
        // The previous page's body, fetched but not parsed yet.
        let mut unparsed: Option<(u32, Vec<u8>)> = None;
        loop {
            page += 1;
            if !visited.insert(url.as_str().to_string()) {
                return Err(Error::IncompleteRead(format!(
                    "page {page}: the next link repeats the URL of an earlier page \
                     (pagination loop) after {} users",
                    rows.len()
                )));
            }
            let what = format!("GET {ROUTE_APP_USERS} page {page}");
            let call = Call {
                what: &what,
                route: ROUTE_APP_USERS,
                retry: Retry::Auto,
            };
            let request_url = url.clone();
            let fetch = self.http.send(call, |c| c.get(request_url.clone()));
            let response = match unparsed.take() {
                None => fetch.await,
                Some((previous, body)) => {
                    // On a blocking thread: parsing on this task would also hold back the
                    // connection task that sends the request (tokio runs a task woken by this
                    // one on this worker, after it yields).
                    let role_attribute = self.role_attribute.clone();
                    let parsing = tokio::task::spawn_blocking(move || {
                        parse::parse_page(&body, &role_attribute)
                    });
                    let (response, parsed) = tokio::join!(fetch, parsing);
                    let parsed = parsed
                        .map_err(|e| {
                            Error::IncompleteRead(format!("page {previous}: parsing stopped: {e}"))
                        })?
                        .map_err(|e| self.page_error(previous, e));
                    // The earlier page's problem is the one to report.
                    let new_users = self.merge_page(parsed?, &mut rows, &mut index);
                    pages_without_new_users = if new_users {
                        0
                    } else {
                        pages_without_new_users + 1
                    };
                    if pages_without_new_users >= MAX_PAGES_WITHOUT_NEW_USERS {
                        return Err(Error::IncompleteRead(format!(
                            "page {previous}: {pages_without_new_users} pages in a row added no new user \
                             but still had a next link (pagination loop)"
                        )));
                    }
                    response
                }
            };
            let response = response.map_err(|e| match e {
                e @ Error::Credentials { .. } => e,
                // `what` already names the page.
                other => Error::IncompleteRead(other.to_string()),
            })?;
            self.pages.fetch_add(1, Ordering::Relaxed);

            let next = parse::next_link(&response.headers).map_err(|e| {
                Error::IncompleteRead(format!("page {page}: unusable Link header: {e}"))
            })?;
            unparsed = Some((page, response.body));
            let Some(target) = next else {
                break;
            };
            let mut next_url = url.join(&target).map_err(|e| {
                Error::IncompleteRead(format!(
                    "page {page}: the next link is not a valid URL: {e}"
                ))
            })?;
            if next_url.origin() != self.org_url.origin() {
                return Err(Error::IncompleteRead(format!(
                    "page {page}: the next link points to {}, not to the configured Okta org {}; \
                     it was not followed and the token was not sent there",
                    next_url.origin().ascii_serialization(),
                    self.org_url.origin().ascii_serialization()
                )));
            }
            if !next_url.query_pairs().any(|(k, _)| k == "expand") {
                next_url.query_pairs_mut().append_pair("expand", "user");
            }
            if let Some(wait) =
                budget_wait(&response.headers, self.capacity_percent, SystemTime::now())
            {
                tracing::debug!(
                    wait_ms = wait.as_millis() as u64,
                    page,
                    "Okta rate-limit budget reached, pausing the walk"
                );
                tokio::time::sleep(wait).await;
            }
            url = next_url;
        }
        if let Some((last, body)) = unparsed {
            let parsed = self.parse_page(last, &body)?;
            self.merge_page(parsed, &mut rows, &mut index);
        }
        tracing::debug!(pages = page, users = rows.len(), "Okta read complete");
        Ok(rows)
    }

    fn parse_page(&self, page: u32, body: &[u8]) -> Result<Vec<AppUserRow>, Error> {
        parse::parse_page(body, &self.role_attribute).map_err(|e| self.page_error(page, e))
    }

    fn page_error(&self, page: u32, e: parse::PageError) -> Error {
        Error::IncompleteRead(format!(
            "Okta GET {ROUTE_APP_USERS} page {page} returned a response that could not be used: {e}"
        ))
    }

    /// Adds a page's rows; `true` when it brought a user not seen before.
    fn merge_page(
        &self,
        page_rows: Vec<AppUserRow>,
        rows: &mut Vec<AppUserRow>,
        index: &mut FxHashMap<String, usize>,
    ) -> bool {
        let before = index.len();
        for row in page_rows {
            merge_row(rows, index, row);
        }
        index.len() > before
    }

    /// Proves the token and the app id work with one `GET …/users?limit=1`.
    pub async fn check(&self) -> Result<CheckInfo, Error> {
        let url = self.users_url(1, false);
        let what = format!("GET {ROUTE_APP_USERS}?limit=1");
        let call = Call {
            what: &what,
            route: ROUTE_APP_USERS,
            retry: Retry::Auto,
        };
        let response = self
            .http
            .send(call, |c| c.get(url.clone()))
            .await
            .map_err(|e| match e {
                Error::Status {
                    status: 404,
                    code,
                    detail,
                    ..
                } => Error::Config(format!(
                    "okta.app_id {:?} was not found in {} (HTTP 404{}: {detail}); check okta.app_id",
                    self.app_id,
                    self.org_url.origin().ascii_serialization(),
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                )),
                other => other,
            })?;
        let rows = parse::parse_page(&response.body, &self.role_attribute).map_err(|e| {
            Error::Malformed {
                api: Api::Okta,
                what: what.clone(),
                detail: e.to_string(),
            }
        })?;
        let header = |name: &str| {
            response
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Ok(CheckInfo {
            rate_limit_limit: header("x-rate-limit-limit"),
            rate_limit_remaining: header("x-rate-limit-remaining"),
            rows_on_first_page: rows.len(),
            has_more: matches!(parse::next_link(&response.headers), Ok(Some(_))),
        })
    }
}

impl IdentitySource for OktaClient {
    async fn read_assignments(&self) -> Result<Vec<AppUserRow>, Error> {
        self.read_all().await
    }
}

fn preferred(row: &AppUserRow) -> bool {
    matches!(
        row.app_user_status
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref(),
        Some("ACTIVE") | Some("PROVISIONED")
    )
}

/// Adds `row`, deduplicating by user id (rule in the module documentation).
fn merge_row(rows: &mut Vec<AppUserRow>, index: &mut FxHashMap<String, usize>, row: AppUserRow) {
    match index.get(&row.okta_user_id) {
        Some(&at) => {
            if preferred(&row) && !preferred(&rows[at]) {
                rows[at] = row;
            }
        }
        None => {
            index.insert(row.okta_user_id.clone(), rows.len());
            rows.push(row);
        }
    }
}

/// How long to pause before the next page so this tool uses at most `capacity_percent` of
/// the bucket: `None` while `X-Rate-Limit-Remaining` is above the share left to others.
pub fn budget_wait(headers: &HeaderMap, capacity_percent: u8, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let limit = get("x-rate-limit-limit")?;
    let remaining = get("x-rate-limit-remaining")?;
    if limit == 0 {
        return None; // a concurrency signal, handled on 429 by the http layer
    }
    let reserve = limit * u64::from(100 - capacity_percent.min(100)) / 100;
    if remaining > reserve {
        return None;
    }
    let reset = get("x-rate-limit-reset")?;
    let server_now = headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or(now);
    let now_secs = server_now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Some(Duration::from_secs(reset.saturating_sub(now_secs) + 1).min(RATE_LIMIT_WAIT_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, status: &str) -> AppUserRow {
        AppUserRow {
            okta_user_id: id.into(),
            app_user_status: Some(status.into()),
            ..AppUserRow::default()
        }
    }

    #[test]
    fn dedup_keeps_first_unless_a_later_row_is_active() {
        let mut rows = Vec::new();
        let mut index = FxHashMap::default();
        merge_row(&mut rows, &mut index, row("a", "INACTIVE"));
        merge_row(&mut rows, &mut index, row("b", "ACTIVE"));
        merge_row(&mut rows, &mut index, row("a", "PROVISIONED"));
        merge_row(&mut rows, &mut index, row("b", "SUSPENDED"));
        merge_row(&mut rows, &mut index, row("a", "ACTIVE"));
        assert_eq!(rows, vec![row("a", "PROVISIONED"), row("b", "ACTIVE")]);
    }

    #[test]
    fn budget_waits_only_when_the_reserve_is_reached() {
        let mut h = HeaderMap::new();
        h.insert(
            "date",
            HeaderValue::from_static("Thu, 11 Sep 2025 16:21:50 GMT"),
        );
        h.insert("x-rate-limit-limit", HeaderValue::from_static("100"));
        h.insert("x-rate-limit-reset", HeaderValue::from_static("1757607758"));
        h.insert("x-rate-limit-remaining", HeaderValue::from_static("51"));
        assert_eq!(budget_wait(&h, 50, SystemTime::now()), None);
        h.insert("x-rate-limit-remaining", HeaderValue::from_static("50"));
        assert_eq!(
            budget_wait(&h, 50, SystemTime::now()),
            Some(Duration::from_secs(49))
        );
        h.insert("x-rate-limit-remaining", HeaderValue::from_static("1"));
        assert_eq!(budget_wait(&h, 100, SystemTime::now()), None);
        h.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
        assert_eq!(
            budget_wait(&h, 100, SystemTime::now()),
            Some(Duration::from_secs(49))
        );
    }
}
