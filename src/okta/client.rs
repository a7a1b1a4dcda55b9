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
//! - a read is bounded (`okta.max_read_pages`, `okta.max_read_rows`, `okta.max_read_time`,
//!   see [`ReadBounds`]): a next link that keeps bringing new users is aborted once it passes
//!   one, with a message naming the bound and the key (and variable) that raises it;
//! - any failed page (non-2xx after retries, transport error, bad JSON, a body that is not an
//!   array, a row without an id) aborts the read. A 401/403 stays an
//!   [`Error::Credentials`] so the daemon knows retrying cannot help.
//!
//! Every row is returned as listed. A user assigned directly and through a group can appear
//! more than once; choosing among such rows is a decision, made by
//! [`crate::okta::classify`] ("the most entitled row wins"), not here.
//!
//! Rate-limit budget: after each page, if `X-Rate-Limit-Remaining` has fallen to the share of
//! the bucket this tool must leave to others (`100 - max_api_capacity_percent` %), the walk
//! waits until `X-Rate-Limit-Reset` (measured against the response's `Date`) before asking
//! for the next page.
//!
//! Events mode reads one user's assignment ([`OktaClient::get_app_user`], a 404 is `None`) and
//! polls the System Log ([`crate::okta::logs`]); both honour the same rate-limit budget after
//! each response.
//!
//! Authentication (`okta.auth`): an SSWS token, or an OAuth 2.0 service app whose access
//! tokens and DPoP proofs come from [`OAuthProvider`] on every request. A caller that needs
//! more than the configured scopes (`import --assign` needs `okta.apps.manage`) asks with
//! [`OktaClient::with_extra_scopes`].
//!
//! It must never log or return the token (see [`crate::http`]).

use std::collections::HashSet;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use rustc_hash::FxHasher;
use url::Url;

use crate::config::{env_var_for_key, HttpSettings, OktaAuth, OktaSettings, ReadBounds};
use crate::error::{Api, Error};
use crate::http::{
    AuthScheme, Call, HttpClient, HttpResponse, Observer, Pacer, Retry, RATE_LIMIT_WAIT_CAP,
};
use crate::model::{AppUserRow, IdentitySource, OktaUserId, Role};
use crate::okta::oauth::OAuthProvider;
use crate::okta::parse;

/// Route template of the list call, for metrics.
pub const ROUTE_APP_USERS: &str = "/api/v1/apps/{appId}/users";

/// Route template of the one-assignment read ([`OktaClient::get_app_user`]), for metrics.
pub const ROUTE_APP_USER: &str = "/api/v1/apps/{appId}/users/{userId}";

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
    pub(super) http: HttpClient,
    pub(super) org_url: Url,
    app_id: String,
    role_attribute: String,
    page_size: u32,
    capacity_percent: u8,
    bounds: ReadBounds,
    pages: AtomicU64,
    /// Set when `okta.auth = "oauth"`.
    oauth: Option<Arc<OAuthProvider>>,
    /// The rate-limit headers of the last answer to [`OktaClient::get_app_user`], a 404
    /// included (which `http` turns into an error without them).
    one_user_headers: Arc<LastHeaders>,
}

/// Keeps the headers of the last answer on one route (a [`Pacer`] that never waits): the
/// budget of the apps bucket must be honoured after a 404 too, and the error carries no
/// headers.
#[derive(Debug, Default)]
struct LastHeaders {
    route: &'static str,
    last: std::sync::Mutex<Option<HeaderMap>>,
}

impl Pacer for LastHeaders {
    fn reserve(&self, _method: &reqwest::Method, _route: &'static str) -> Duration {
        Duration::ZERO
    }

    fn observe(
        &self,
        _method: &reqwest::Method,
        route: &'static str,
        _status: reqwest::StatusCode,
        headers: &HeaderMap,
    ) {
        if route == self.route {
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(headers.clone());
        }
    }
}

impl OktaClient {
    pub fn new(settings: &OktaSettings, http: &HttpSettings) -> Result<Self, Error> {
        if settings.app_id.trim().is_empty() {
            return Err(Error::Config("okta.app_id is empty".into()));
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let (client, oauth) = match &settings.auth {
            OktaAuth::Ssws(token) => (
                HttpClient::new(
                    Api::Okta,
                    &settings.org_url,
                    AuthScheme::Ssws,
                    token.clone(),
                    http,
                    headers,
                )?,
                None,
            ),
            OktaAuth::OAuth(oauth) => {
                let provider = Arc::new(OAuthProvider::new(&settings.org_url, oauth, http)?);
                let client = HttpClient::with_auth_provider(
                    Api::Okta,
                    &settings.org_url,
                    provider.clone(),
                    http,
                    headers,
                )?;
                (client, Some(provider))
            }
        };
        let one_user_headers = Arc::new(LastHeaders {
            route: ROUTE_APP_USER,
            last: Default::default(),
        });
        let client = client.with_pacer(one_user_headers.clone());
        Ok(OktaClient {
            one_user_headers,
            http: client,
            org_url: settings.org_url.clone(),
            app_id: settings.app_id.clone(),
            role_attribute: settings.role_attribute.clone(),
            page_size: settings.page_size.clamp(1, 500),
            capacity_percent: settings.max_api_capacity_percent.clamp(1, 100),
            bounds: settings.read_bounds,
            pages: AtomicU64::new(0),
            oauth,
        })
    }

    /// Requests these OAuth scopes on top of `okta.scopes` (e.g.
    /// [`crate::okta::oauth::SCOPE_APPS_MANAGE`] for `import --assign`); call it before the
    /// first request. No effect with an SSWS token, whose rights are its creator's.
    pub fn with_extra_scopes(self, scopes: &[&str]) -> Self {
        if let Some(p) = &self.oauth {
            p.add_scopes(scopes);
        }
        self
    }

    /// The OAuth provider, when `okta.auth = "oauth"`.
    pub fn oauth(&self) -> Option<&OAuthProvider> {
        self.oauth.as_deref()
    }

    /// One line saying how this client authenticates (no secrets).
    pub fn auth_description(&self) -> String {
        match &self.oauth {
            None => "Okta SSWS API token".to_string(),
            Some(p) => format!(
                "Okta OAuth 2.0 service app {} (private_key_jwt {}{}; requested scopes: {})",
                p.client_id(),
                p.alg(),
                if p.dpop() { ", DPoP" } else { ", no DPoP" },
                p.requested_scopes().join(" ")
            ),
        }
    }

    /// Installs a per-request observer (metrics), on the token endpoint's requests too.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        if let Some(oauth) = &self.oauth {
            oauth.observe_with(observer.clone());
        }
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
    pub async fn read_all(&self) -> Result<Vec<AppUserRow>, Error> {
        let url = self.users_url(self.page_size, true);
        let mut rows: Vec<AppUserRow> = Vec::new();
        // Distinct user ids seen, for loop detection only (a 64-bit hash each: a collision
        // at worst hides one new user from the loop rule, never a row from the result).
        let mut ids: HashSet<u64, BuildHasherDefault<FxHasher>> = HashSet::default();
        let end = self
            .walk(
                url,
                ROUTE_APP_USERS,
                &[("expand", "user")],
                None,
                Error::IncompleteRead,
                |body| {
                    let page_rows =
                        parse::parse_page(body, &self.role_attribute).map_err(|e| e.to_string())?;
                    let before = ids.len();
                    for row in &page_rows {
                        let mut hasher = FxHasher::default();
                        row.okta_user_id.hash(&mut hasher);
                        ids.insert(hasher.finish());
                    }
                    let listed = page_rows.len();
                    rows.extend(page_rows);
                    Ok(PageCount {
                        rows: listed,
                        new: ids.len() - before,
                    })
                },
            )
            .await?;
        tracing::debug!(
            pages = end.pages(),
            rows = rows.len(),
            users = ids.len(),
            "Okta read complete"
        );
        Ok(rows)
    }

    /// Walks one Okta list from `url`, following `rel="next"` links with the safety rules of
    /// the module documentation (origin check, loop detection, the read bounds, the rate-limit
    /// budget, every failure fatal). `on_page` gets each page's body and returns how many rows
    /// it listed and how many *new* distinct objects it held (for loop detection), or why the
    /// page is unusable. `sticky` query parameters are put back on a next link that dropped
    /// them. With `max_pages`, the walk stops (without error) once that many pages were read
    /// and a next link remains; that stop is the caller's choice and comes before
    /// `okta.max_read_pages`. Failures other than refused credentials become
    /// `incomplete(message)`.
    ///
    /// `okta.max_read_time` covers the whole walk, rate-limit waits and retries included: the
    /// walk is abandoned (its request in flight dropped) when it runs out, on tokio's clock.
    ///
    /// Pipelining: the cursor is in the `Link` header, so the request for page N+1 goes out as
    /// soon as page N's headers arrive, and page N's body is read and handed to `on_page`
    /// while page N+1 is in flight. The walk then costs one round trip per page, not a round
    /// trip plus a body transfer plus a parse. One request may therefore go out before a page
    /// proves unusable; nothing is planned from a walk that fails.
    async fn walk<F>(
        &self,
        url: Url,
        route: &'static str,
        sticky: &[(&str, &str)],
        max_pages: Option<u32>,
        incomplete: fn(String) -> Error,
        on_page: F,
    ) -> Result<WalkEnd, Error>
    where
        F: FnMut(&[u8]) -> Result<PageCount, String>,
    {
        let max_time = self.bounds.max_time;
        let deadline = tokio::time::Instant::now() + max_time;
        let pages_read = AtomicU64::new(0);
        let walk = self.walk_within_bounds(
            url,
            route,
            sticky,
            max_pages,
            incomplete,
            on_page,
            &pages_read,
        );
        match tokio::time::timeout_at(deadline, walk).await {
            Ok(end) => end,
            Err(_) => Err(incomplete(format!(
                "GET {route}: the read took longer than okta.max_read_time ({}) after {} pages \
                 and was stopped; if the list is really that slow to read (a very large app, \
                 a small rate-limit share), raise okta.max_read_time ({})",
                humantime::format_duration(max_time),
                pages_read.load(Ordering::Relaxed),
                env_var_for_key("okta.max_read_time")
            ))),
        }
    }

    /// [`OktaClient::walk`] without the time bound.
    #[allow(clippy::too_many_arguments)]
    async fn walk_within_bounds<F>(
        &self,
        url: Url,
        route: &'static str,
        sticky: &[(&str, &str)],
        max_pages: Option<u32>,
        incomplete: fn(String) -> Error,
        mut on_page: F,
        pages_read: &AtomicU64,
    ) -> Result<WalkEnd, Error>
    where
        F: FnMut(&[u8]) -> Result<PageCount, String>,
    {
        let max_read_pages = self.bounds.max_pages.get();
        let max_read_rows = self.bounds.max_rows.get();
        let mut rows_read: u64 = 0;
        let fetch_failed = |e: Error| match e {
            e @ Error::Credentials { .. } => e,
            // The error's `what` already names the page.
            other => incomplete(other.to_string()),
        };
        let mut visited: HashSet<String> = HashSet::from([url.as_str().to_string()]);
        let mut page: u32 = 1;
        let mut seen: usize = 0;
        let mut pages_without_new: u32 = 0;
        let mut current = self.fetch_page(url, route, page, None);
        loop {
            let head = current.head().await.map_err(fetch_failed)?;
            self.pages.fetch_add(1, Ordering::Relaxed);
            let next_target = parse::next_link(&head)
                .map_err(|e| incomplete(format!("page {page}: unusable Link header: {e}")))?;
            let mut following = None;
            let mut stopped = false;
            if let Some(target) = &next_target {
                let next_url =
                    self.next_page_url(&current.url, target, sticky, page, incomplete)?;
                if max_pages.is_some_and(|max| page >= max) {
                    stopped = true;
                } else if page >= max_read_pages {
                    return Err(incomplete(format!(
                        "GET {route}: page {page} still has a next link, and a read may have at \
                         most okta.max_read_pages = {max_read_pages} pages; the read was \
                         stopped. If the list is really that long, raise okta.max_read_pages \
                         ({})",
                        env_var_for_key("okta.max_read_pages")
                    )));
                } else {
                    if !visited.insert(next_url.as_str().to_string()) {
                        return Err(incomplete(format!(
                            "page {}: the next link repeats the URL of an earlier page \
                             (pagination loop) after {seen} users",
                            page + 1
                        )));
                    }
                    let wait = budget_wait(&head, self.capacity_percent, SystemTime::now());
                    if let Some(wait) = wait {
                        tracing::debug!(
                            wait_ms = wait.as_millis() as u64,
                            page,
                            "Okta rate-limit budget reached, pausing the walk"
                        );
                    }
                    following = Some(self.fetch_page(next_url, route, page + 1, wait));
                }
            }
            let response = current
                .finish(following.as_mut())
                .await
                .map_err(fetch_failed)?;
            // A body that failed after its headers arrived was fetched again; the cursor already
            // followed must be the one this copy of the page carries.
            if parse::next_link(&response.headers).ok().flatten() != next_target {
                return Err(incomplete(format!(
                    "{}: the page was fetched again after a failed read and its next link \
                     changed (the assignments changed during the read)",
                    current.what
                )));
            }
            // Tokio runs a task woken by the running one (here the connection task that
            // writes the next page's request) only once the running one yields, and nobody
            // can steal it meanwhile: yield before the CPU-bound `on_page`, or the next
            // request waits for this page's parse.
            tokio::task::yield_now().await;
            let PageCount { rows, new } = on_page(&response.body).map_err(|e| {
                incomplete(format!(
                    "Okta {} returned a response that could not be used: {e}",
                    current.what
                ))
            })?;
            pages_read.store(u64::from(page), Ordering::Relaxed);
            rows_read = rows_read.saturating_add(rows as u64);
            if rows_read > max_read_rows {
                return Err(incomplete(format!(
                    "{}: {rows_read} rows were listed, more than okta.max_read_rows = \
                     {max_read_rows} for one read; the read was stopped. If the list is really \
                     that long, raise okta.max_read_rows ({})",
                    current.what,
                    env_var_for_key("okta.max_read_rows")
                )));
            }
            seen += new;
            pages_without_new = if new == 0 { pages_without_new + 1 } else { 0 };
            let Some(following) = following else {
                return Ok(if stopped {
                    WalkEnd::Stopped { pages: page }
                } else {
                    WalkEnd::Complete { pages: page }
                });
            };
            if pages_without_new >= MAX_PAGES_WITHOUT_NEW_USERS {
                return Err(incomplete(format!(
                    "{}: {pages_without_new} pages in a row added no new user \
                     but still had a next link (pagination loop)",
                    current.what
                )));
            }
            current = following;
            page += 1;
        }
    }

    /// The URL of the page after `page` (whose URL is `base`), from its `rel="next"` target:
    /// refused when it leaves the configured org (before anything is sent there), with the
    /// `sticky` query parameters put back when the link dropped them.
    fn next_page_url(
        &self,
        base: &Url,
        target: &str,
        sticky: &[(&str, &str)],
        page: u32,
        incomplete: fn(String) -> Error,
    ) -> Result<Url, Error> {
        let mut next_url = base.join(target).map_err(|e| {
            incomplete(format!(
                "page {page}: the next link is not a valid URL: {e}"
            ))
        })?;
        if next_url.origin() != self.org_url.origin() {
            return Err(incomplete(format!(
                "page {page}: the next link points to {}, not to the configured Okta org {}; \
                 it was not followed and the token was not sent there",
                next_url.origin().ascii_serialization(),
                self.org_url.origin().ascii_serialization()
            )));
        }
        for (key, value) in sticky {
            if !next_url.query_pairs().any(|(k, _)| k == *key) {
                next_url.query_pairs_mut().append_pair(key, value);
            }
        }
        Ok(next_url)
    }

    /// Starts fetching one page (after `wait`, the rate-limit budget's pause). Nothing is sent
    /// until the returned [`PageFetch`] is first polled.
    fn fetch_page(
        &self,
        url: Url,
        route: &'static str,
        page: u32,
        wait: Option<Duration>,
    ) -> PageFetch<'_> {
        let what = format!("GET {route} page {page}");
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let request_url = url.clone();
        let label = what.clone();
        let response = Box::pin(async move {
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            let call = Call {
                what: &label,
                route,
                retry: Retry::Auto,
            };
            let mut head_tx = Some(head_tx);
            self.http
                .send_announcing_head(
                    call,
                    |c| c.get(request_url.clone()),
                    move |headers| {
                        if let Some(tx) = head_tx.take() {
                            let _ = tx.send(headers.clone());
                        }
                    },
                )
                .await
        });
        PageFetch {
            url,
            what,
            head: head_rx,
            response,
            finished: None,
        }
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

/// What one page of a [`OktaClient::walk`] held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageCount {
    /// Rows listed on the page, repeats included (they count against `okta.max_read_rows`).
    rows: usize,
    /// Distinct objects not seen on an earlier page (for loop detection).
    new: usize,
}

/// How a [`OktaClient::walk`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WalkEnd {
    /// The last page had no `next` link.
    Complete { pages: u32 },
    /// `max_pages` pages were read and a `next` link remained.
    Stopped { pages: u32 },
}

impl WalkEnd {
    fn pages(self) -> u32 {
        match self {
            WalkEnd::Complete { pages } | WalkEnd::Stopped { pages } => pages,
        }
    }
}

/// One page request of a [`OktaClient::walk`] in flight. Its response headers are announced
/// (on `head`) as soon as they arrive, so the walk can ask for the next page while this
/// page's body is still being read.
struct PageFetch<'a> {
    url: Url,
    /// `GET {route} page N`, for errors.
    what: String,
    head: tokio::sync::oneshot::Receiver<HeaderMap>,
    response: Pin<Box<dyn Future<Output = Result<HttpResponse, Error>> + Send + 'a>>,
    /// The response, once `response` has completed (it must not be polled again).
    finished: Option<Result<HttpResponse, Error>>,
}

impl PageFetch<'_> {
    /// The headers of the page's 2xx response, as soon as they arrive; the error when the
    /// request failed (after its retries) before any arrived.
    async fn head(&mut self) -> Result<HeaderMap, Error> {
        loop {
            if let Some(finished) = &self.finished {
                return match (self.head.try_recv(), finished) {
                    (Ok(head), _) => Ok(head),
                    (Err(_), Ok(response)) => Ok(response.headers.clone()),
                    (Err(_), Err(_)) => Err(self.finished.take().expect("checked").unwrap_err()),
                };
            }
            tokio::select! {
                biased;
                head = &mut self.head => {
                    if let Ok(head) = head {
                        return Ok(head);
                    }
                    // The sender is gone: the request completed; its result is next.
                    self.finished = Some((&mut self.response).await);
                }
                result = &mut self.response => self.finished = Some(result),
            }
        }
    }

    /// The whole response, driving `other` (the next page's request) meanwhile so that it
    /// goes out, and is answered, while this body arrives.
    async fn finish(
        &mut self,
        mut other: Option<&mut PageFetch<'_>>,
    ) -> Result<HttpResponse, Error> {
        loop {
            if let Some(finished) = self.finished.take() {
                return finished;
            }
            match other.as_deref_mut().filter(|o| o.finished.is_none()) {
                None => self.finished = Some((&mut self.response).await),
                // The next page first: its request should be on the wire before this body is
                // awaited.
                Some(other) => tokio::select! {
                    biased;
                    result = &mut other.response => other.finished = Some(result),
                    result = &mut self.response => self.finished = Some(result),
                },
            }
        }
    }
}

/// Route template of the org's user list, for metrics (`import`).
pub const ROUTE_USERS: &str = "/api/v1/users";

/// Page size of `GET /api/v1/users`: Okta's documented default and maximum
/// (docs/api-facts.md "Okta user search").
pub const USERS_PAGE_SIZE: u32 = 200;

/// `import`'s calls: finding Okta users by email and assigning them to the app. `assign_user`
/// is the only call of this client that changes Okta.
impl OktaClient {
    fn org_users_url(&self) -> Url {
        let mut url = self.org_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().extend(["api", "v1", "users"]);
        }
        url.query_pairs_mut()
            .append_pair("limit", &USERS_PAGE_SIZE.to_string());
        url
    }

    /// Walks `GET /api/v1/users` from `url` with the assignment walk's safety rules, collecting
    /// users deduplicated by id. `None` when `max_pages` stopped the walk before its end.
    async fn collect_users(
        &self,
        url: Url,
        sticky: &[(&str, &str)],
        max_pages: Option<u32>,
    ) -> Result<Option<Vec<parse::OktaUser>>, Error> {
        let mut users: Vec<parse::OktaUser> = Vec::new();
        let mut ids: HashSet<OktaUserId> = HashSet::new();
        let end = self
            .walk(
                url,
                ROUTE_USERS,
                sticky,
                max_pages,
                Error::IncompleteUserRead,
                |body| {
                    let before = ids.len();
                    let page = parse::parse_users_page(body).map_err(|e| e.to_string())?;
                    let listed = page.len();
                    for user in page {
                        if ids.insert(user.id.clone()) {
                            users.push(user);
                        }
                    }
                    Ok(PageCount {
                        rows: listed,
                        new: ids.len() - before,
                    })
                },
            )
            .await?;
        Ok(match end {
            WalkEnd::Complete { .. } => Some(users),
            WalkEnd::Stopped { .. } => None,
        })
    }

    /// Every Okta user whose `profile.email` equals `email`:
    /// `GET /api/v1/users?search=profile.email eq "…"` (every page). `search` compares string
    /// values case-insensitively and includes `DEPROVISIONED` users, but it is served from an
    /// eventually consistent index: a user created or changed in the last moments may be
    /// missing (docs/api-facts.md "Okta user search").
    pub async fn search_users_by_email(&self, email: &str) -> Result<Vec<parse::OktaUser>, Error> {
        let escaped = email.replace('\\', "\\\\").replace('"', "\\\"");
        let expression = format!("profile.email eq \"{escaped}\"");
        let mut url = self.org_users_url();
        url.query_pairs_mut().append_pair("search", &expression);
        let users = self
            .collect_users(url, &[("search", expression.as_str())], None)
            .await?;
        Ok(users.unwrap_or_default())
    }

    /// The org's users, one walk of `GET /api/v1/users?limit=200`. Without a query Okta omits
    /// `DEPROVISIONED` users (docs/api-facts.md "Okta user search"). With `max_pages`, gives up
    /// (returns `None`) once that many pages were read and more remain.
    pub async fn list_org_users(
        &self,
        max_pages: Option<u32>,
    ) -> Result<Option<Vec<parse::OktaUser>>, Error> {
        self.collect_users(self.org_users_url(), &[], max_pages)
            .await
    }

    /// Assigns the user to the app directly (`POST /api/v1/apps/{appId}/users`, scope `USER`)
    /// with `role` in the app-user profile's role attribute (docs/api-facts.md "Okta assignment").
    /// Repeating it is harmless (it sets the same profile again), so transient failures are
    /// retried. Afterwards the rate-limit budget of the apps bucket is honoured like the walk's.
    pub async fn assign_user(&self, okta_user_id: &str, role: Role) -> Result<(), Error> {
        let mut url = self.org_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .clear()
                .extend(["api", "v1", "apps", self.app_id.as_str(), "users"]);
        }
        let mut profile = serde_json::Map::new();
        profile.insert(
            self.role_attribute.clone(),
            serde_json::Value::String(role.as_str().to_string()),
        );
        let body = serde_json::json!({
            "id": okta_user_id,
            "scope": "USER",
            "profile": profile,
        });
        let what = format!("POST {ROUTE_APP_USERS} (assign {okta_user_id})");
        let call = Call {
            what: &what,
            route: ROUTE_APP_USERS,
            retry: Retry::Always,
        };
        let response = self
            .http
            .send(call, |c| c.post(url.clone()).json(&body))
            .await?;
        self.pause_for_budget(&response.headers, "the assignments")
            .await;
        Ok(())
    }

    /// Sleeps until the bucket's reset when `headers` (a response's) show this tool has used
    /// its share (`okta.max_api_capacity_percent`), like the walk between pages; `pausing`
    /// names what waits, for the debug line.
    pub(super) async fn pause_for_budget(&self, headers: &HeaderMap, pausing: &str) {
        if let Some(wait) = budget_wait(headers, self.capacity_percent, SystemTime::now()) {
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "Okta rate-limit budget reached, pausing {pausing}"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// The read of one assignment, for callers that learnt (from the System Log, see
/// [`crate::okta::logs`]) that one user changed and need that user's row, not the whole list.
impl OktaClient {
    /// The user's assignment to the app, `GET /api/v1/apps/{appId}/users/{userId}?expand=user`,
    /// parsed like a row of the list (the same parser, the same role attribute).
    ///
    /// `Ok(None)` on 404: the user is not assigned to the app (directly or through a group), or
    /// does not exist; a deactivated user has no assignment left (docs/api-facts.md "Okta app
    /// users", "Okta lifecycle"). A body that is not a row, or a row of another user, is
    /// [`Error::Malformed`]; 401/403 stay [`Error::Credentials`]. Afterwards the rate-limit
    /// budget of the apps bucket is honoured like the walk's, so callers reading many users
    /// leave Okta's other clients their share.
    pub async fn get_app_user(
        &self,
        okta_user_id: &OktaUserId,
    ) -> Result<Option<AppUserRow>, Error> {
        let mut url = self.org_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().extend([
                "api",
                "v1",
                "apps",
                self.app_id.as_str(),
                "users",
                okta_user_id.as_str(),
            ]);
        }
        url.query_pairs_mut().append_pair("expand", "user");
        let what = format!("GET {ROUTE_APP_USER} ({okta_user_id})");
        let call = Call {
            what: &what,
            route: ROUTE_APP_USER,
            retry: Retry::Auto,
        };
        let response = match self.http.send(call, |c| c.get(url.clone())).await {
            Ok(response) => response,
            Err(Error::Status { status: 404, .. }) => {
                let headers = self
                    .one_user_headers
                    .last
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(headers) = headers {
                    self.pause_for_budget(&headers, "the assignment reads")
                        .await;
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let malformed = |detail: String| Error::Malformed {
            api: Api::Okta,
            what: what.clone(),
            detail,
        };
        let row = std::str::from_utf8(&response.body)
            .map_err(|e| format!("the body is not valid UTF-8 ({e})"))
            .and_then(|text| {
                serde_json::from_str::<&serde_json::value::RawValue>(text)
                    .map_err(|e| format!("the body is not valid JSON: {e}"))
            })
            .and_then(|raw| parse::parse_row(raw, &self.role_attribute))
            .map_err(malformed)?;
        if row.okta_user_id != *okta_user_id {
            return Err(malformed(format!(
                "the answer is the assignment of user {:?}, not of the user asked for",
                row.okta_user_id.as_str()
            )));
        }
        self.pause_for_budget(&response.headers, "the assignment reads")
            .await;
        Ok(Some(row))
    }
}

impl IdentitySource for OktaClient {
    async fn read_assignments(&self) -> Result<Vec<AppUserRow>, Error> {
        self.read_all().await
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
