//! The one HTTP policy layer shared by the Okta and Spot clients.
//!
//! It owns: building the `reqwest` client (rustls, no redirects, connect and request
//! timeouts, User-Agent, the proxy choice of [`proxy_for`]), attaching the API token, retries with exponential backoff and full
//! jitter, the two APIs' rate-limit waits, the response size cap, mapping HTTP failures to
//! [`Error`] values, and the per-request observability hook.
//!
//! It must never:
//! - log, print or return a token: the token is a [`SecretString`], exposed only to build the
//!   `Authorization` header, which is marked sensitive; error texts are scrubbed of it anyway;
//! - follow a redirect (a 3xx is an error: following it could carry the token elsewhere);
//! - send the token to an origin other than the configured base URL's;
//! - send a plain-http request (a loopback emulator) through a proxy, or use a proxy from any
//!   variable but `HTTPS_PROXY`/`https_proxy` (https requests only, tunnelled with `CONNECT`
//!   so TLS stays end to end; `NO_PROXY` honoured);
//! - put a full URL, a query string or a header into an error or a log line: callers pass a
//!   short `what` label and a route template instead.
//!
//! Retry rules (see [`HttpClient::send`]):
//! - connection errors, timeouts and 5xx are retried for idempotent requests (GET, PUT,
//!   DELETE, HEAD) and for POSTs that opt in with [`Retry::Always`];
//! - a POST that did not opt in (e.g. `POST /setup/user`) is **not** retried on those: the
//!   server may have acted before the failure, and a second create could duplicate the user
//!   or fail confusingly; the caller decides from a fresh read of the directory instead;
//! - 429 is retried for every request, POST included: a 429 means the request was refused
//!   before it was processed, so repeating it cannot act twice;
//! - every retry counts against `HttpSettings.max_retries`.
//!
//! Credentials come in one of three ways: a static token ([`HttpClient::new`], `SSWS` or
//! `Bearer`), an [`AuthProvider`] asked for fresh headers on every attempt
//! ([`HttpClient::with_auth_provider`]; Okta OAuth access tokens with DPoP proofs), or none
//! ([`HttpClient::without_auth`]; the OAuth token endpoint, which authenticates in its body).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, USER_AGENT};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::HttpSettings;
use crate::error::{Api, Error};

/// The largest response body this client will read.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Connect timeout for every request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Base of the exponential backoff.
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Upper bound of one backoff sleep.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Upper bound of a wait after an Okta *concurrency* 429 (`X-Rate-Limit-Limit: 0`,
/// `X-Rate-Limit-Remaining: 0`), whose reset value is only a suggestion and can be minutes away.
pub const CONCURRENCY_429_CAP: Duration = Duration::from_secs(30);
/// Upper bound of any rate-limit wait: both APIs use 60 s windows, so a longer reset is a
/// bad header (or a skewed `Date`), not a reason to sleep for hours.
pub const RATE_LIMIT_WAIT_CAP: Duration = Duration::from_secs(120);

/// The `User-Agent` sent on every request.
pub const USER_AGENT_VALUE: &str = concat!("okta-spot-sync/", env!("CARGO_PKG_VERSION"));

/// How a request may be retried. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Idempotent methods retry on every transient failure; other methods (POST, PATCH) only
    /// on 429.
    Auto,
    /// Opt-in: retry on every transient failure even for a non-idempotent method, because the
    /// caller knows repeating it is harmless.
    Always,
}

/// Describes one logical call: what to put in errors and metrics, and how to retry.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Short human label for errors, e.g. `GET /api/v1/apps/{appId}/users page 3`. Never a
    /// full URL with its query, never a header.
    pub what: &'a str,
    /// The route template for metrics, e.g. `/api/v1/apps/{appId}/users`.
    pub route: &'static str,
    pub retry: Retry,
}

/// A successful (2xx) response, fully read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// One HTTP exchange (one attempt), as passed to the observer.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub api: Api,
    pub method: Method,
    /// Route template, never a concrete URL.
    pub route: &'static str,
    /// `None` when no response arrived (connection error, timeout).
    pub status: Option<u16>,
    /// 0 for the first attempt.
    pub attempt: u32,
    pub elapsed: Duration,
    /// The response's rate-limit remaining count (Okta `X-Rate-Limit-Remaining`, Spot
    /// `X-RateLimit-Remaining`), when it sent one.
    pub rate_limit_remaining: Option<u64>,
}

/// A cheap hook called once per attempt, e.g. to count requests per (api, route, status).
pub type Observer = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// Client-side pacing of one API (the Spot throttle, `crate::spot::throttle`): asked before
/// every attempt how long to wait, and shown every response's status and headers.
pub trait Pacer: Send + Sync + std::fmt::Debug {
    /// Reserves a slot for one request on `route` and returns how long to wait for it.
    fn reserve(&self, method: &Method, route: &'static str) -> Duration;
    /// Learns from a response (429s included).
    fn observe(
        &self,
        method: &Method,
        route: &'static str,
        status: StatusCode,
        headers: &HeaderMap,
    );
}

/// The rate-limit remaining count of a response: Okta's `X-Rate-Limit-Remaining` or Spot's
/// `X-RateLimit-Remaining`.
fn rate_limit_remaining(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("x-rate-limit-remaining")
        .or_else(|| headers.get("x-ratelimit-remaining"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// How the token is presented in the `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// Okta API token: `Authorization: SSWS <token>`.
    Ssws,
    /// Spot token: `Authorization: Bearer <token>`.
    Bearer,
}

impl AuthScheme {
    fn prefix(self) -> &'static str {
        match self {
            AuthScheme::Ssws => "SSWS ",
            AuthScheme::Bearer => "Bearer ",
        }
    }
}

/// What an [`AuthProvider`] wants done with a 401/403 answer.
#[derive(Debug)]
pub enum Rejection {
    /// The provider dropped the credentials it used (e.g. an access token Okta no longer
    /// accepts); try again with fresh ones. Counts as a retry.
    Retry,
    /// Fail with this error (it explains the rejection, e.g. a missing OAuth scope).
    Fail(Error),
    /// Use the default mapping ([`Error::Credentials`] from the body).
    Default,
}

/// Supplies the credentials of each attempt, for APIs whose credentials change over time
/// (Okta OAuth 2.0 access tokens, with a fresh DPoP proof per request).
///
/// Implementations must never put a secret in an error, a log line or `Debug` output.
pub trait AuthProvider: Send + Sync {
    /// The headers (e.g. `Authorization`, `DPoP`) for one attempt of `method url`. Called
    /// once per attempt, so a retry gets fresh ones. Values holding secrets should be marked
    /// sensitive.
    fn authorize<'a>(
        &'a self,
        method: &'a Method,
        url: &'a Url,
    ) -> BoxFuture<'a, Result<Vec<(HeaderName, HeaderValue)>, Error>>;

    /// Called on a final-or-retryable 401/403 answer to a request this provider authorized.
    /// `can_retry` says whether the retry budget allows [`Rejection::Retry`].
    fn on_rejected(&self, rejected: &Rejected<'_>, can_retry: bool) -> Rejection;

    /// Replaces any secret this provider holds in `text` (defense in depth for error texts).
    fn redact(&self, text: &str) -> String;
}

/// A 401/403 answer, as shown to [`AuthProvider::on_rejected`].
#[derive(Debug)]
pub struct Rejected<'a> {
    pub what: &'a str,
    /// The route template of the call (e.g. `/api/v1/apps/{appId}/users`).
    pub route: &'static str,
    pub method: &'a Method,
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// How a client presents its credentials.
enum Auth {
    /// A fixed token with a scheme prefix.
    Static {
        scheme: AuthScheme,
        token: SecretString,
    },
    /// Fresh headers per attempt.
    Provider(std::sync::Arc<dyn AuthProvider>),
    /// No credentials at all.
    None,
}

/// The shared HTTP client of one API: one base URL, one way to authenticate.
pub struct HttpClient {
    client: reqwest::Client,
    api: Api,
    base: Url,
    auth: Auth,
    max_retries: u32,
    /// Set once, possibly after the client was shared (the OAuth provider's client is
    /// behind an `Arc` by the time the metrics observer is installed).
    observer: std::sync::OnceLock<Observer>,
    pacer: Option<Arc<dyn Pacer>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("api", &self.api)
            .field("base", &self.base.origin().ascii_serialization())
            .field("token", &"[redacted]")
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl HttpClient {
    /// Builds the client. `default_headers` are sent on every request (e.g. `Accept`);
    /// the token is added per request, only to requests for `base`'s origin.
    pub fn new(
        api: Api,
        base: &Url,
        scheme: AuthScheme,
        token: SecretString,
        settings: &HttpSettings,
        default_headers: HeaderMap,
    ) -> Result<Self, Error> {
        if token.expose_secret().trim().is_empty() {
            return Err(Error::Config(format!("{api} token is empty")));
        }
        if HeaderValue::from_str(&format!("{}{}", scheme.prefix(), token.expose_secret())).is_err()
        {
            return Err(Error::Config(format!(
                "{api} token contains characters that cannot be sent in an HTTP header"
            )));
        }
        Self::build(
            api,
            base,
            Auth::Static { scheme, token },
            settings,
            default_headers,
        )
    }

    /// Like [`HttpClient::new`], but every attempt asks `provider` for its credential headers.
    pub fn with_auth_provider(
        api: Api,
        base: &Url,
        provider: Arc<dyn AuthProvider>,
        settings: &HttpSettings,
        default_headers: HeaderMap,
    ) -> Result<Self, Error> {
        Self::build(
            api,
            base,
            Auth::Provider(provider),
            settings,
            default_headers,
        )
    }

    /// A client that sends no credentials (the caller authenticates in the request body, as
    /// the OAuth token endpoint requires).
    pub fn without_auth(
        api: Api,
        base: &Url,
        settings: &HttpSettings,
        default_headers: HeaderMap,
    ) -> Result<Self, Error> {
        Self::build(api, base, Auth::None, settings, default_headers)
    }

    fn build(
        api: Api,
        base: &Url,
        auth: Auth,
        settings: &HttpSettings,
        default_headers: HeaderMap,
    ) -> Result<Self, Error> {
        if base.cannot_be_a_base() || base.host_str().is_none() {
            return Err(Error::Config(format!("{api} base URL {base} has no host")));
        }
        let mut headers = default_headers;
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        // `no_proxy()` first: reqwest would otherwise read HTTP_PROXY, ALL_PROXY and the rest
        // of the environment on its own and send a plain-http request, token and all, to the
        // proxy. Only the proxy chosen by `proxy_for` is ever used.
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(settings.timeout)
            .https_only(!settings.allow_insecure_http)
            .default_headers(headers)
            .no_proxy();
        if let Some(choice) = proxy_for(api, base, &|name| std::env::var(name).ok())? {
            tracing::debug!(
                api = %api,
                variable = choice.variable,
                proxy = %choice.shown(),
                "HTTPS requests go through this CONNECT proxy unless NO_PROXY names the host"
            );
            builder = builder.proxy(choice.into_reqwest(api)?);
        }
        let client = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot build the {api} HTTP client: {e}")))?;
        Ok(HttpClient {
            client,
            api,
            base: base.clone(),
            auth,
            max_retries: settings.max_retries,
            observer: std::sync::OnceLock::new(),
            pacer: None,
            requests: AtomicU64::new(0),
        })
    }

    /// Installs the per-attempt observer on a shared client, unless one is installed already.
    pub fn observe_with(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    /// Installs the per-attempt observer.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = std::sync::OnceLock::from(observer);
        self
    }

    /// Installs the client-side pacer (see [`Pacer`]).
    pub fn with_pacer(mut self, pacer: Arc<dyn Pacer>) -> Self {
        self.pacer = Some(pacer);
        self
    }

    pub fn api(&self) -> Api {
        self.api
    }

    /// The configured base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Whether `url` has the same origin (scheme, host, port) as the base URL.
    pub fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// Replaces any occurrence of the token in `text` (defense in depth for error texts).
    pub fn redact(&self, text: &str) -> String {
        match &self.auth {
            Auth::Static { token, .. } => redact_secret(text, token.expose_secret()),
            Auth::Provider(p) => p.redact(text),
            Auth::None => text.to_string(),
        }
    }

    /// Adds this client's credentials to one attempt.
    async fn attach_auth(&self, what: &str, request: &mut reqwest::Request) -> Result<(), Error> {
        match &self.auth {
            Auth::Static { scheme, token } => {
                let mut auth =
                    HeaderValue::from_str(&format!("{}{}", scheme.prefix(), token.expose_secret()))
                        .map_err(|_| {
                            Error::Config(format!("{} token is not a valid header value", self.api))
                        })?;
                auth.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, auth);
            }
            Auth::Provider(provider) => {
                let method = request.method().clone();
                let url = request.url().clone();
                let headers = provider
                    .authorize(&method, &url)
                    .await
                    .map_err(|e| match e {
                        // Name the call that needed the credentials in transport-level failures.
                        Error::Transport {
                            api,
                            what: w,
                            detail,
                        } => Error::Transport {
                            api,
                            what: format!("{w} (for {what})"),
                            detail,
                        },
                        other => other,
                    })?;
                for (name, value) in headers {
                    request.headers_mut().insert(name, value);
                }
            }
            Auth::None => {}
        }
        Ok(())
    }

    /// Builds the request and refuses one to any origin but the configured one, before any
    /// credential is attached.
    fn prepare(
        &self,
        call: &Call<'_>,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Request, Error> {
        let request = builder.build().map_err(|e| {
            Error::Config(format!(
                "{} {}: cannot build the request: {}",
                self.api,
                call.what,
                self.redact(&error_chain(&e.without_url()))
            ))
        })?;
        if !self.same_origin(request.url()) {
            return Err(Error::Config(format!(
                "{} {}: refusing to send the {} token to {}, which is not the configured {}",
                self.api,
                call.what,
                self.api,
                request.url().origin().ascii_serialization(),
                self.base.origin().ascii_serialization()
            )));
        }
        Ok(request)
    }

    /// Sends one prepared request, counts it and reports it to the observer.
    async fn attempt(
        &self,
        call: &Call<'_>,
        method: &Method,
        request: reqwest::Request,
        attempt: u32,
        on_head: &mut (dyn FnMut(&HeaderMap) + Send),
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), Attempt> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let outcome = self.execute(request, on_head).await;
        let elapsed = started.elapsed();
        let (status, remaining) = match &outcome {
            Ok((status, headers, _)) => (Some(status.as_u16()), rate_limit_remaining(headers)),
            Err(Attempt::Transport(_)) => (None, None),
            Err(Attempt::TooLarge(status, _)) => (Some(status.as_u16()), None),
        };
        self.record(method, call.route, status, attempt, elapsed, remaining);
        outcome
    }

    /// One attempt, no retries: sends the request (with this client's credentials, if any)
    /// and returns the response **whatever its status**, fully read. For callers whose
    /// non-2xx answers carry data they act on, such as the OAuth token endpoint (`400
    /// use_dpop_nonce` with a `dpop-nonce` header); they run their own retry loop with
    /// [`backoff`] and [`rate_limit_wait`]. `attempt` is passed to the observer.
    pub async fn send_once<F>(
        &self,
        call: Call<'_>,
        attempt: u32,
        make: F,
    ) -> Result<HttpResponse, Error>
    where
        F: FnOnce(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let mut request = self.prepare(&call, make(&self.client))?;
        self.attach_auth(call.what, &mut request).await?;
        let method = request.method().clone();
        let outcome = self
            .attempt(&call, &method, request, attempt, &mut |_| {})
            .await;
        match outcome {
            Ok((status, headers, body)) => Ok(HttpResponse {
                status,
                headers,
                body,
            }),
            Err(Attempt::TooLarge(_, limit)) => Err(Error::Malformed {
                api: self.api,
                what: call.what.to_string(),
                detail: format!("response body larger than {limit} bytes"),
            }),
            Err(Attempt::Transport(e)) => Err(Error::Transport {
                api: self.api,
                what: call.what.to_string(),
                detail: self.redact(&error_chain(&e)),
            }),
        }
    }

    /// Sends one logical request, retrying per the module rules, and returns the 2xx response.
    ///
    /// `make` builds the request from the shared `reqwest::Client`; it is called once per
    /// attempt so a retry is a fresh request. The token is added here, never by `make`.
    pub async fn send<F>(&self, call: Call<'_>, make: F) -> Result<HttpResponse, Error>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        self.send_announcing_head(call, make, |_| {}).await
    }

    /// [`HttpClient::send`], calling `on_head` with the headers of every 2xx response as soon
    /// as they arrive, before its body is read. A cursor walk uses it to ask for the next page
    /// (whose URL is in the `Link` header) while this page's body is still on the wire. The
    /// body can still fail after `on_head` ran; the request is then retried like any other,
    /// so `on_head` may see the headers of more than one attempt.
    pub async fn send_announcing_head<F, H>(
        &self,
        call: Call<'_>,
        make: F,
        mut on_head: H,
    ) -> Result<HttpResponse, Error>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        H: FnMut(&HeaderMap) + Send,
    {
        let mut attempt: u32 = 0;
        loop {
            let mut request = self.prepare(&call, make(&self.client))?;
            let method = request.method().clone();
            let idempotent = matches!(
                method,
                Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
            );
            let retry_transient = idempotent || call.retry == Retry::Always;
            // Wait for the slot first, so credentials (e.g. a DPoP proof) are fresh when sent.
            if let Some(pacer) = &self.pacer {
                let wait = pacer.reserve(&method, call.route);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            self.attach_auth(call.what, &mut request).await?;
            let outcome = self
                .attempt(&call, &method, request, attempt, &mut on_head)
                .await;
            if let (Some(pacer), Ok((status, headers, _))) = (&self.pacer, &outcome) {
                pacer.observe(&method, call.route, *status, headers);
            }

            let can_retry = attempt < self.max_retries;
            match outcome {
                Err(Attempt::TooLarge(_, limit)) => {
                    return Err(Error::Malformed {
                        api: self.api,
                        what: call.what.to_string(),
                        detail: format!("response body larger than {limit} bytes"),
                    })
                }
                Err(Attempt::Transport(e)) => {
                    if can_retry && retry_transient {
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    let mut detail = self.redact(&error_chain(&e));
                    if attempt > 0 {
                        detail.push_str(&format!(" (after {} attempts)", attempt + 1));
                    }
                    return Err(Error::Transport {
                        api: self.api,
                        what: call.what.to_string(),
                        detail,
                    });
                }
                Ok((status, headers, body)) => {
                    if status.is_success() {
                        return Ok(HttpResponse {
                            status,
                            headers,
                            body,
                        });
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS && can_retry {
                        let wait = rate_limit_wait(self.api, &headers, SystemTime::now())
                            .unwrap_or_else(|| backoff(attempt));
                        tracing::debug!(
                            api = %self.api,
                            route = call.route,
                            wait_ms = wait.as_millis() as u64,
                            "rate limited, waiting"
                        );
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    if status.is_server_error() && can_retry && retry_transient {
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    if let (Auth::Provider(provider), true) = (
                        &self.auth,
                        status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
                    ) {
                        let rejected = Rejected {
                            what: call.what,
                            route: call.route,
                            method: &method,
                            status,
                            headers: &headers,
                            body: &body,
                        };
                        match provider.on_rejected(&rejected, can_retry) {
                            Rejection::Retry if can_retry => {
                                attempt += 1;
                                continue;
                            }
                            Rejection::Fail(e) => return Err(e),
                            Rejection::Retry | Rejection::Default => {}
                        }
                    }
                    return Err(self.status_error(call.what, status, &body, attempt));
                }
            }
        }
    }

    /// One attempt: send, announce a 2xx response's headers, then read the body in chunks up
    /// to the cap.
    async fn execute(
        &self,
        request: reqwest::Request,
        on_head: &mut (dyn FnMut(&HeaderMap) + Send),
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), Attempt> {
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|e| Attempt::Transport(e.without_url()))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        if let Some(len) = response.content_length() {
            if len > MAX_BODY_BYTES as u64 {
                return Err(Attempt::TooLarge(status, MAX_BODY_BYTES));
            }
        }
        if status.is_success() {
            on_head(&headers);
        }
        let mut body = Vec::with_capacity(
            response
                .content_length()
                .map(|l| l as usize)
                .unwrap_or(8 * 1024)
                .min(MAX_BODY_BYTES),
        );
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Attempt::Transport(e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Attempt::TooLarge(status, MAX_BODY_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }

    fn record(
        &self,
        method: &Method,
        route: &'static str,
        status: Option<u16>,
        attempt: u32,
        elapsed: Duration,
        rate_limit_remaining: Option<u64>,
    ) {
        tracing::debug!(
            api = %self.api,
            method = %method,
            route,
            status = status.map(i64::from).unwrap_or(-1),
            attempt,
            elapsed_ms = elapsed.as_millis() as u64,
            "http request"
        );
        if let Some(observer) = self.observer.get() {
            observer(&RequestRecord {
                api: self.api,
                method: method.clone(),
                route,
                status,
                attempt,
                elapsed,
                rate_limit_remaining,
            });
        }
    }

    /// Maps a final non-2xx response to an error. 401/403 → `Credentials`; others → `Status`.
    fn status_error(&self, what: &str, status: StatusCode, body: &[u8], attempt: u32) -> Error {
        let parsed = parse_error_body(self.api, body);
        let mut detail = match (&parsed.code, &parsed.message) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.clone(),
            (None, Some(msg)) => msg.clone(),
            (None, None) => {
                let reason = status.canonical_reason().unwrap_or("no reason");
                if body.is_empty() {
                    format!("{reason} (empty body)")
                } else {
                    format!("{reason} (unrecognised body of {} bytes)", body.len())
                }
            }
        };
        if status.is_redirection() {
            detail.push_str(" (redirects are never followed; check the configured base URL)");
        }
        if attempt > 0 {
            detail.push_str(&format!(" (after {} attempts)", attempt + 1));
        }
        let detail = self.redact(&detail);
        let code = parsed.code.map(|c| self.redact(&c));
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Error::Credentials {
                api: self.api,
                what: what.to_string(),
                status: status.as_u16(),
                detail,
            };
        }
        Error::Status {
            api: self.api,
            what: what.to_string(),
            status: status.as_u16(),
            code,
            detail,
        }
    }
}

enum Attempt {
    Transport(reqwest::Error),
    TooLarge(StatusCode, usize),
}

/// The environment variables naming the HTTPS proxy, in the order they are looked up.
pub const HTTPS_PROXY_VARS: &[&str] = &["HTTPS_PROXY", "https_proxy"];
/// The environment variables listing hosts that bypass the proxy, in the order they are
/// looked up.
pub const NO_PROXY_VARS: &[&str] = &["NO_PROXY", "no_proxy"];

/// The proxy one API's client uses, from the environment (see [`proxy_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyChoice {
    /// The variable it came from (`HTTPS_PROXY` or `https_proxy`).
    pub variable: &'static str,
    /// The proxy's URL (`http://` or `https://`; it may carry the proxy's own credentials,
    /// so it is only ever shown through [`ProxyChoice::shown`]).
    pub url: Url,
    /// The `NO_PROXY` list, as given.
    pub no_proxy: Option<String>,
}

impl ProxyChoice {
    /// The proxy's scheme, host and port, never its credentials.
    pub fn shown(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    fn into_reqwest(self, api: Api) -> Result<reqwest::Proxy, Error> {
        let proxy = reqwest::Proxy::https(self.url.as_str()).map_err(|e| {
            Error::Config(format!(
                "{} = {}: cannot use it as the {api} proxy ({}); fix or unset it",
                self.variable,
                self.shown(),
                error_chain(&e.without_url())
            ))
        })?;
        Ok(proxy.no_proxy(
            self.no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string),
        ))
    }
}

/// Which proxy the client for `base` uses, looking variables up through `env`:
///
/// - a plain-http base (a loopback emulator with `http.allow_insecure_http`) never uses one:
///   the request, token included, would reach the proxy in clear text;
/// - an https base uses the proxy in `HTTPS_PROXY` (else `https_proxy`), unless `NO_PROXY`
///   (else `no_proxy`) names the host. The request goes through a `CONNECT` tunnel, so TLS
///   runs end to end with the API and the proxy sees only the host and port;
/// - `HTTP_PROXY`, `ALL_PROXY` and their lower-case forms are never used.
///
/// A proxy URL without a scheme is taken as `http://`; a scheme other than `http` or `https`
/// (e.g. `socks5`) is an error naming the variable. Errors never show the proxy's credentials.
pub fn proxy_for(
    api: Api,
    base: &Url,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ProxyChoice>, Error> {
    if base.scheme() != "https" {
        return Ok(None);
    }
    let Some((variable, raw)) = HTTPS_PROXY_VARS.iter().find_map(|name| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(|v| (*name, v))
    }) else {
        return Ok(None);
    };
    let shown = if raw.contains('@') {
        "(value not shown: it contains credentials)".to_string()
    } else {
        format!("{raw:?}")
    };
    let with_scheme = if raw.contains("://") {
        raw.clone()
    } else {
        format!("http://{raw}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| {
        Error::Config(format!(
            "{variable} = {shown} is not a proxy URL ({e}); set it to e.g. \
             http://proxy.example.com:3128, or unset it"
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" || url.host_str().is_none() {
        return Err(Error::Config(format!(
            "{variable} = {shown}: the {api} client can use only an http:// or https:// proxy \
             (it tunnels with CONNECT); set it to e.g. http://proxy.example.com:3128, or unset it"
        )));
    }
    let no_proxy = NO_PROXY_VARS
        .iter()
        .find_map(|name| env(name).filter(|v| !v.trim().is_empty()));
    Ok(Some(ProxyChoice {
        variable,
        url,
        no_proxy,
    }))
}

/// Runs `parse` (the parse of one large response body) on tokio's blocking pool. A parse of
/// 100,000 Spot users takes ~100 ms of CPU; on an async worker it would hold up every task
/// queued behind it there, including the Okta walk, which must answer each page's headers
/// at once to stay on its latency floor.
pub async fn parse_off_worker<T: Send + 'static>(parse: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(parse).await {
        Ok(parsed) => parsed,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime shutting down cancels a blocking task, and nothing awaits this then.
        Err(e) => panic!("a response parse was cancelled: {e}"),
    }
}

/// Exponential backoff with full jitter: uniform in `[0, min(cap, base · 2^attempt)]`.
pub fn backoff(attempt: u32) -> Duration {
    crate::backoff::full_jitter(crate::backoff::exponential(
        BACKOFF_BASE,
        BACKOFF_CAP,
        attempt,
    ))
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64)
}

/// How long to wait after a 429, from the API's own headers; `None` when they say nothing
/// usable (the caller then uses the exponential backoff).
///
/// - Okta: `X-Rate-Limit-Reset` is a UTC epoch second; the wait is `reset - Date + 1 s`,
///   measured against the response's `Date` header (the server's clock, as Okta's SDKs do),
///   falling back to `now` when `Date` is missing. When `X-Rate-Limit-Limit` and
///   `X-Rate-Limit-Remaining` are both 0 (a concurrency 429, whose reset is only a
///   suggestion) the wait is capped at 30 s.
/// - Spot: `X-RateLimit-Reset` is the number of seconds until a request is allowed; the wait
///   is that (at least 1 s).
/// - Either: a `Retry-After` in seconds is used when the API's own header is missing.
/// - Every wait is capped at [`RATE_LIMIT_WAIT_CAP`].
pub fn rate_limit_wait(api: Api, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let wait = match api {
        Api::Okta => match header_u64(headers, "x-rate-limit-reset") {
            Some(reset) => {
                let server_now = headers
                    .get(reqwest::header::DATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| httpdate::parse_http_date(v).ok())
                    .unwrap_or(now);
                let now_secs = server_now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let wait = Duration::from_secs(reset.saturating_sub(now_secs) + 1);
                let concurrency = header_u64(headers, "x-rate-limit-limit") == Some(0)
                    && header_u64(headers, "x-rate-limit-remaining") == Some(0);
                if concurrency {
                    wait.min(CONCURRENCY_429_CAP)
                } else {
                    wait
                }
            }
            None => Duration::from_secs(header_u64(headers, "retry-after")?),
        },
        Api::Spot => {
            let secs = header_u64(headers, "x-ratelimit-reset")
                .or_else(|| header_u64(headers, "retry-after"))?;
            Duration::from_secs(secs.max(1))
        }
    };
    Some(wait.min(RATE_LIMIT_WAIT_CAP))
}

/// The error code and message an API put in an error body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApiErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Parses an error body: Okta `{errorCode, errorSummary, errorCauses[{errorSummary}]}`;
/// Spot `{response:{errors:[{code,message}], status:{message}, data}}`. Never fails.
pub fn parse_error_body(api: Api, body: &[u8]) -> ApiErrorBody {
    #[derive(serde::Deserialize)]
    struct OktaCause {
        #[serde(rename = "errorSummary")]
        summary: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct OktaError {
        #[serde(rename = "errorCode")]
        code: Option<String>,
        #[serde(rename = "errorSummary")]
        summary: Option<String>,
        #[serde(rename = "errorCauses", default)]
        causes: Option<serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct SpotErrorItem {
        code: Option<serde_json::Value>,
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct SpotStatus {
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct SpotResponse {
        errors: Option<Vec<SpotErrorItem>>,
        status: Option<SpotStatus>,
        data: Option<serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct SpotError {
        response: Option<SpotResponse>,
    }

    let clip = |s: String| -> String {
        let s = s.trim().to_string();
        if s.chars().count() > 300 {
            let mut t: String = s.chars().take(300).collect();
            t.push('…');
            t
        } else {
            s
        }
    };
    match api {
        Api::Okta => {
            let Ok(err) = std::str::from_utf8(body)
                .map_err(|e| e.to_string())
                .and_then(from_json_object::<OktaError>)
            else {
                return ApiErrorBody::default();
            };
            let cause = match err.causes {
                Some(serde_json::Value::Array(items)) => items
                    .into_iter()
                    .find_map(|c| serde_json::from_value::<OktaCause>(c).ok()?.summary),
                Some(v @ serde_json::Value::Object(_)) => serde_json::from_value::<OktaCause>(v)
                    .ok()
                    .and_then(|c| c.summary),
                _ => None,
            };
            let message = match (err.summary, cause) {
                (Some(s), Some(c)) => Some(format!("{s} ({c})")),
                (Some(s), None) => Some(s),
                (None, c) => c,
            };
            ApiErrorBody {
                code: err.code.map(clip),
                message: message.map(clip),
            }
        }
        Api::Spot => {
            let Some(resp) = std::str::from_utf8(body)
                .map_err(|e| e.to_string())
                .and_then(from_json_object::<SpotError>)
                .ok()
                .and_then(|e| e.response)
            else {
                return ApiErrorBody::default();
            };
            if let Some(first) = resp.errors.and_then(|e| e.into_iter().next()) {
                let code = match first.code {
                    Some(serde_json::Value::String(s)) => Some(s),
                    Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                return ApiErrorBody {
                    code: code.map(clip),
                    message: first.message.map(clip),
                };
            }
            let data = match resp.data {
                Some(serde_json::Value::String(s)) => Some(s),
                _ => None,
            };
            let message = match (resp.status.and_then(|s| s.message), data) {
                (Some(s), Some(d)) => Some(format!("{s}: {d}")),
                (s, d) => s.or(d),
            };
            ApiErrorBody {
                code: None,
                message: message.map(clip),
            }
        }
    }
}

/// Deserializes `text` into `T` only when it is a JSON object. serde's derived structs also
/// accept a JSON array (fields by position), which would read `["x"]` as `{"id":"x"}`.
pub(crate) fn from_json_object<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, String> {
    if !text.trim_start().starts_with('{') {
        return Err("not a JSON object".to_string());
    }
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// `Display` of an error and its sources, joined by `: `.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn redact_secret(text: &str, secret: &str) -> String {
    if secret.len() >= 4 && text.contains(secret) {
        text.replace(secret, "[redacted]")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn okta_wait_uses_the_date_header() {
        // The recorded 429: Date 1757607710, reset 1757607758 → 48 s + 1 s.
        let h = headers(&[
            ("date", "Thu, 11 Sep 2025 16:21:50 GMT"),
            ("x-rate-limit-limit", "10"),
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "1757607758"),
        ]);
        let far_future = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        assert_eq!(
            rate_limit_wait(Api::Okta, &h, far_future),
            Some(Duration::from_secs(49))
        );
    }

    #[test]
    fn okta_concurrency_wait_is_capped() {
        let h = headers(&[
            ("date", "Thu, 11 Sep 2025 16:21:50 GMT"),
            ("x-rate-limit-limit", "0"),
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "1757607824"),
        ]);
        assert_eq!(
            rate_limit_wait(Api::Okta, &h, SystemTime::now()),
            Some(CONCURRENCY_429_CAP)
        );
    }

    #[test]
    fn spot_wait_is_relative_seconds() {
        let h = headers(&[("x-ratelimit-reset", "7")]);
        assert_eq!(
            rate_limit_wait(Api::Spot, &h, SystemTime::now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            rate_limit_wait(Api::Spot, &HeaderMap::new(), SystemTime::now()),
            None
        );
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        for attempt in 0..40 {
            let b = backoff(attempt);
            assert!(b <= BACKOFF_CAP);
            assert!(b <= BACKOFF_BASE * 2u32.pow(attempt.min(20)));
        }
    }

    #[test]
    fn error_bodies_are_parsed() {
        let okta = br#"{"errorCode":"E0000011","errorSummary":"Invalid token provided","errorLink":"E0000011","errorId":"x","errorCauses":[]}"#;
        let parsed = parse_error_body(Api::Okta, okta);
        assert_eq!(parsed.code.as_deref(), Some("E0000011"));
        assert_eq!(parsed.message.as_deref(), Some("Invalid token provided"));

        let spot = br#"{"request":{},"response":{"status":{"code":400,"message":"Bad Request"},"errors":[{"code":"USER_ALREADY_EXISTS","message":"exists"}]}}"#;
        let parsed = parse_error_body(Api::Spot, spot);
        assert_eq!(parsed.code.as_deref(), Some("USER_ALREADY_EXISTS"));

        let spot429 = br#"{"request":{},"response":{"status":{"code":429,"message":"Too Many Requests"},"data":"Rate limit exceeded"}}"#;
        let parsed = parse_error_body(Api::Spot, spot429);
        assert_eq!(parsed.code, None);
        assert_eq!(
            parsed.message.as_deref(),
            Some("Too Many Requests: Rate limit exceeded")
        );
        assert_eq!(
            parse_error_body(Api::Spot, b"<html>"),
            ApiErrorBody::default()
        );
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    const EVERY_PROXY_VAR: &[(&str, &str)] = &[
        ("HTTP_PROXY", "http://127.0.0.1:3128"),
        ("http_proxy", "http://127.0.0.1:3128"),
        ("ALL_PROXY", "http://127.0.0.1:3128"),
        ("all_proxy", "http://127.0.0.1:3128"),
        ("HTTPS_PROXY", "http://127.0.0.1:3128"),
        ("https_proxy", "http://127.0.0.1:3128"),
    ];

    #[test]
    fn plain_http_never_uses_a_proxy() {
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            proxy_for(Api::Okta, &base, &env_of(EVERY_PROXY_VAR)).unwrap(),
            None
        );
    }

    #[test]
    fn https_uses_only_https_proxy() {
        let base = Url::parse("https://example.okta.com").unwrap();
        let only_others: &[(&str, &str)] = &[
            ("HTTP_PROXY", "http://127.0.0.1:3128"),
            ("http_proxy", "http://127.0.0.1:3128"),
            ("ALL_PROXY", "http://127.0.0.1:3128"),
            ("all_proxy", "http://127.0.0.1:3128"),
        ];
        assert_eq!(
            proxy_for(Api::Okta, &base, &env_of(only_others)).unwrap(),
            None
        );

        let chosen = proxy_for(Api::Okta, &base, &env_of(EVERY_PROXY_VAR))
            .unwrap()
            .unwrap();
        assert_eq!(chosen.variable, "HTTPS_PROXY");
        assert_eq!(chosen.shown(), "http://127.0.0.1:3128");

        let lower_no_scheme: &[(&str, &str)] = &[
            ("https_proxy", "proxy.example.com:3128"),
            ("no_proxy", "internal.example.com"),
        ];
        let chosen = proxy_for(Api::Spot, &base, &env_of(lower_no_scheme))
            .unwrap()
            .unwrap();
        assert_eq!(chosen.variable, "https_proxy");
        assert_eq!(chosen.shown(), "http://proxy.example.com:3128");
        assert_eq!(chosen.no_proxy.as_deref(), Some("internal.example.com"));
    }

    #[test]
    fn unusable_proxies_are_errors_that_hide_credentials() {
        let base = Url::parse("https://example.okta.com").unwrap();
        let socks: &[(&str, &str)] = &[("HTTPS_PROXY", "socks5://user:s3cret@127.0.0.1:1080")];
        let err = proxy_for(Api::Okta, &base, &env_of(socks))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HTTPS_PROXY") && err.contains("http://"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
        let chosen = proxy_for(
            Api::Okta,
            &base,
            &env_of(&[("HTTPS_PROXY", "http://user:s3cret@proxy.example.com:3128")]),
        )
        .unwrap()
        .unwrap();
        assert!(!chosen.shown().contains("s3cret"), "{}", chosen.shown());
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact_secret("a tok-123 b", "tok-123"), "a [redacted] b");
    }
}
