//! Okta OAuth 2.0 for a service app: `private_key_jwt` client credentials with DPoP, as an
//! [`AuthProvider`] of the shared HTTP layer (docs/api-facts.md "Okta OAuth").
//!
//! It owns:
//! - the client assertion (`iss` = `sub` = client ID, `aud` = `{org}/oauth2/v1/token`, `iat`,
//!   `exp` = `iat` + 5 min, a fresh `jti`), signed RS256 or ES256 with the configured key;
//! - the token request `POST /oauth2/v1/token` (`grant_type=client_credentials`, `scope`,
//!   `client_assertion_type`, `client_assertion`), with a DPoP proof when `okta.dpop` is on,
//!   and the `use_dpop_nonce` dance (up to two retries with the `dpop-nonce` the server sent;
//!   the nonce is remembered for later token requests);
//! - the token cache: one access token, renewed 5 minutes (at most half its lifetime) before
//!   it expires. Concurrent requests share one renewal: the first takes the refresh gate, the
//!   others wait for it and reuse its token;
//! - per-request headers: `Authorization: DPoP <token>` (or `Bearer` if Okta issued a bearer
//!   token) and a fresh DPoP proof with `ath` and `htu` = the URL without query;
//! - turning OAuth failures into [`Error::Credentials`] that say what to do: token-endpoint
//!   errors (`invalid_client`, `invalid_scope`, `invalid_dpop_proof`, …) and API rejections
//!   that carry only a `WWW-Authenticate` header (`insufficient_scope`, `invalid_dpop_proof`,
//!   `invalid_token`).
//!
//! Scopes: `okta.scopes` (default `okta.apps.read okta.users.read`). A caller that needs more,
//! such as `import --assign` (`okta.apps.manage`), asks with [`OAuthProvider::add_scopes`]
//! (through `OktaClient::with_extra_scopes`) before its first request.
//!
//! Times: expiry is measured on tokio's clock, and the wall-clock `iat`/`exp` values come from
//! [`wall_now`], which equals `SystemTime::now()` in a normal runtime and moves with tokio's
//! clock when a test pauses and advances it.
//!
//! It must never log, print or return the access token, the client key or the DPoP key: they
//! are held in `secrecy` types, header values are marked sensitive, `Debug` is redacted and
//! error texts are scrubbed of the current token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::time::Instant;
use url::Url;

use super::dpop::DpopKey;
use super::jwt::ClientKey;
use crate::config::{HttpSettings, OAuthSettings};
use crate::error::{Api, Error};
use crate::http::{
    backoff, parse_error_body, rate_limit_wait, AuthProvider, Call, HttpClient, Observer, Rejected,
    Rejection, Retry,
};

/// Route template of the token endpoint (the org authorization server: only it mints Okta
/// API scopes).
pub const ROUTE_TOKEN: &str = "/oauth2/v1/token";
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a client assertion (Okta allows at most 1 h).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// How long before expiry the access token is renewed (at most half its lifetime).
pub const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// `use_dpop_nonce` answers followed per token request.
pub const MAX_NONCE_RETRIES: u32 = 2;
/// Used when the token response has no `expires_in` (Okta's tokens live 1 h).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The scope `import --assign` needs on top of the defaults.
pub const SCOPE_APPS_MANAGE: &str = "okta.apps.manage";
/// The scope events mode needs on top of the defaults, to poll the System Log
/// (`GET /api/v1/logs`, docs/api-facts.md "Okta System Log").
pub const SCOPE_LOGS_READ: &str = "okta.logs.read";

const ADMIN_CONSOLE_SCOPES: &str = "Okta Admin Console → Applications → Applications → the API \
                                    Services app → Okta API Scopes → Grant";

/// The wall clock used for JWT times: `SystemTime::now()`, shifted by how far tokio's clock is
/// ahead of the real monotonic clock (zero unless a test paused and advanced it).
pub fn wall_now() -> SystemTime {
    let tokio_now = Instant::now().into_std();
    let real_now = std::time::Instant::now();
    let now = SystemTime::now();
    if tokio_now >= real_now {
        now + (tokio_now - real_now)
    } else {
        now - (real_now - tokio_now)
    }
}

fn wall_secs() -> u64 {
    wall_now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One access token.
struct CachedToken {
    token: SecretString,
    /// `token_type: DPoP`: each request needs a proof.
    dpop_bound: bool,
    renew_at: Instant,
    /// The `scope` of the token response.
    scopes: Vec<String>,
}

/// The OAuth side of the Okta client. Shared (in an `Arc`) by the HTTP layer and the client.
pub struct OAuthProvider {
    http: HttpClient,
    token_url: Url,
    client_id: String,
    key: ClientKey,
    dpop: Option<DpopKey>,
    scopes: Mutex<Vec<String>>,
    max_retries: u32,
    cache: Mutex<Option<Arc<CachedToken>>>,
    /// Single-flight renewal: held while a token request is in flight.
    refresh: tokio::sync::Mutex<()>,
    nonce: Mutex<Option<String>>,
    granted: Mutex<Option<Vec<String>>>,
    token_requests: AtomicU64,
}

impl std::fmt::Debug for OAuthProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthProvider")
            .field("client_id", &self.client_id)
            .field("alg", &self.key.alg())
            .field("dpop", &self.dpop.is_some())
            .field("scopes", &*lock(&self.scopes))
            .field("token", &"[redacted]")
            .finish()
    }
}

/// An OAuth error body: `{"error": "...", "error_description": "..."}`.
#[derive(Debug, Default, serde::Deserialize)]
struct OAuthErrorBody {
    error: Option<String>,
    error_description: Option<String>,
}

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 300 {
        let mut t: String = s.chars().take(300).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

impl OAuthProvider {
    /// Builds the provider; no request is sent until the first API call.
    pub fn new(
        org_url: &Url,
        settings: &OAuthSettings,
        http: &HttpSettings,
    ) -> Result<Self, Error> {
        let token_url = org_url
            .join(ROUTE_TOKEN.trim_start_matches('/'))
            .map_err(|e| Error::Config(format!("okta.org_url: cannot build the token URL: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let client = HttpClient::without_auth(Api::Okta, org_url, http, headers)?;
        Ok(OAuthProvider {
            http: client,
            token_url,
            client_id: settings.client_id.clone(),
            key: settings.key.clone(),
            dpop: settings.dpop.then(DpopKey::generate),
            scopes: Mutex::new(settings.scopes.clone()),
            max_retries: http.max_retries,
            cache: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            nonce: Mutex::new(None),
            granted: Mutex::new(None),
            token_requests: AtomicU64::new(0),
        })
    }

    /// Reports every token-endpoint request to `observer` (metrics), like the API calls.
    pub fn observe_with(&self, observer: Observer) {
        self.http.observe_with(observer);
    }

    /// Adds scopes to request (e.g. [`SCOPE_APPS_MANAGE`] for `import --assign`). A cached
    /// token without them is dropped, so the next request gets one that has them.
    pub fn add_scopes(&self, extra: &[&str]) {
        let mut scopes = lock(&self.scopes);
        let mut changed = false;
        for s in extra {
            if !scopes.iter().any(|have| have == s) {
                scopes.push((*s).to_string());
                changed = true;
            }
        }
        if changed {
            *lock(&self.cache) = None;
        }
    }

    /// The scopes requested.
    pub fn requested_scopes(&self) -> Vec<String> {
        lock(&self.scopes).clone()
    }

    /// The scopes Okta granted in the last token response (`None` before the first token).
    pub fn granted_scopes(&self) -> Option<Vec<String>> {
        lock(&self.granted).clone()
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `RS256` or `ES256`.
    pub fn alg(&self) -> &'static str {
        self.key.alg()
    }

    pub fn dpop(&self) -> bool {
        self.dpop.is_some()
    }

    /// The public JWK of the client key, to register on the service app (public data).
    pub fn public_jwk(&self) -> serde_json::Value {
        self.key.public_jwk()
    }

    /// Token requests sent so far (nonce retries included).
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// Drops the cached token (the next request fetches a new one).
    pub fn invalidate(&self) {
        *lock(&self.cache) = None;
    }

    fn fresh_cached(&self) -> Option<Arc<CachedToken>> {
        lock(&self.cache)
            .as_ref()
            .filter(|t| Instant::now() < t.renew_at)
            .cloned()
    }

    /// The current access token, fetching a new one (once, for all waiting callers) when
    /// there is none or it is due for renewal.
    async fn current_token(&self) -> Result<Arc<CachedToken>, Error> {
        if let Some(t) = self.fresh_cached() {
            return Ok(t);
        }
        let _gate = self.refresh.lock().await;
        if let Some(t) = self.fresh_cached() {
            return Ok(t);
        }
        let token = Arc::new(self.fetch_token().await?);
        *lock(&self.cache) = Some(token.clone());
        Ok(token)
    }

    /// Fetches a token now (what `check` uses to show the granted scopes early).
    pub async fn ensure_token(&self) -> Result<(), Error> {
        self.current_token().await.map(|_| ())
    }

    fn client_assertion(&self) -> Result<String, Error> {
        let iat = wall_secs();
        let claims = json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url.as_str(),
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs(),
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        self.key
            .sign(&json!({"typ": "JWT"}), &claims)
            .map_err(|e| Error::Config(format!("cannot sign the Okta client assertion: {e}")))
    }

    async fn fetch_token(&self) -> Result<CachedToken, Error> {
        let scopes = self.requested_scopes();
        let scope = scopes.join(" ");
        let what = format!("POST {ROUTE_TOKEN}");
        let call = Call {
            what: &what,
            route: ROUTE_TOKEN,
            retry: Retry::Always,
        };
        let mut nonce = lock(&self.nonce).clone();
        let mut attempt: u32 = 0;
        let mut nonce_retries: u32 = 0;
        loop {
            let assertion = self.client_assertion()?;
            let proof = match &self.dpop {
                Some(key) => Some(
                    key.proof("POST", &self.token_url, wall_secs(), nonce.as_deref(), None)
                        .map_err(|e| Error::Config(format!("cannot build a DPoP proof: {e}")))?,
                ),
                None => None,
            };
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", &scope)
                .append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
                .append_pair("client_assertion", &assertion)
                .finish();
            let url = self.token_url.clone();
            self.token_requests.fetch_add(1, Ordering::Relaxed);
            let sent = self
                .http
                .send_once(call, attempt, move |c| {
                    let mut rb = c
                        .post(url)
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(body);
                    if let Some(p) = proof {
                        rb = rb.header("DPoP", p);
                    }
                    rb
                })
                .await;
            let can_retry = attempt < self.max_retries;
            let response = match sent {
                Ok(r) => r,
                Err(Error::Transport { .. }) if can_retry => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let server_nonce = response
                .headers
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            if let Some(n) = &server_nonce {
                *lock(&self.nonce) = Some(n.clone());
            }
            let status = response.status;
            if status.is_success() {
                return self.parse_token(&what, &response.body);
            }
            let err: OAuthErrorBody = serde_json::from_slice(&response.body).unwrap_or_default();
            let code = err.error.as_deref().unwrap_or("");
            if code == "use_dpop_nonce" && self.dpop.is_some() && nonce_retries < MAX_NONCE_RETRIES
            {
                if let Some(n) = server_nonce {
                    tracing::debug!("Okta asked for a DPoP nonce; retrying the token request");
                    nonce = Some(n);
                    nonce_retries += 1;
                    continue;
                }
            }
            if status == StatusCode::TOO_MANY_REQUESTS && can_retry {
                let wait = rate_limit_wait(Api::Okta, &response.headers, SystemTime::now())
                    .unwrap_or_else(|| backoff(attempt));
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            if status.is_server_error() && can_retry {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            return Err(self.token_error(&what, status, &err, &response.body));
        }
    }

    fn parse_token(&self, what: &str, body: &[u8]) -> Result<CachedToken, Error> {
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token_type: Option<String>,
            expires_in: Option<u64>,
            access_token: Option<String>,
            scope: Option<String>,
        }
        let malformed = |detail: &str| Error::Malformed {
            api: Api::Okta,
            what: what.to_string(),
            detail: detail.to_string(),
        };
        let parsed: TokenResponse = crate::http::from_json_object(
            std::str::from_utf8(body).map_err(|_| malformed("the body is not UTF-8"))?,
        )
        .map_err(|_| malformed("the token response is not the documented JSON object"))?;
        let token = match parsed.access_token {
            Some(t) if !t.trim().is_empty() => SecretString::from(t),
            _ => return Err(malformed("the token response has no access_token")),
        };
        if HeaderValue::from_str(token.expose_secret()).is_err() {
            return Err(malformed(
                "the access token has characters that cannot be sent in a header",
            ));
        }
        let dpop_bound = match parsed.token_type.as_deref().map(str::to_ascii_lowercase) {
            Some(t) if t == "dpop" => {
                if self.dpop.is_none() {
                    return Err(malformed(
                        "Okta issued a DPoP-bound token to a request without a DPoP proof",
                    ));
                }
                true
            }
            Some(t) if t == "bearer" => false,
            _ => return Err(malformed("the token response has no known token_type")),
        };
        let lifetime = parsed
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let margin = RENEW_BEFORE.min(lifetime / 2);
        let scopes: Vec<String> = parsed
            .scope
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        *lock(&self.granted) = Some(scopes.clone());
        tracing::debug!(
            token_type = if dpop_bound { "DPoP" } else { "Bearer" },
            expires_in = lifetime.as_secs(),
            scopes = %scopes.join(" "),
            "got an Okta access token"
        );
        Ok(CachedToken {
            token,
            dpop_bound,
            renew_at: Instant::now() + (lifetime - margin),
            scopes,
        })
    }

    /// An error from the token endpoint, with what to do about it.
    fn token_error(
        &self,
        what: &str,
        status: StatusCode,
        err: &OAuthErrorBody,
        body: &[u8],
    ) -> Error {
        let code = err.error.as_deref().unwrap_or("");
        let desc = err
            .error_description
            .as_deref()
            .map(|d| format!(" ({})", clip(d)))
            .unwrap_or_default();
        let scopes = self.requested_scopes().join(" ");
        let kid = self
            .key
            .kid()
            .map(|k| format!(" with key ID {k:?}"))
            .unwrap_or_default();
        let detail = match code {
            "invalid_client" if desc.to_ascii_lowercase().contains("expir") => format!(
                "invalid_client{desc}: Okta considers the client assertion expired; this host's \
                 clock is probably wrong (it must be within a few minutes of real time): check \
                 NTP (e.g. `timedatectl`)"
            ),
            "invalid_client" => format!(
                "invalid_client{desc}: the client assertion was refused; check that okta.client_id \
                 ({}) is the API Services app's client ID and that the public key of \
                 okta.private_key_file ({}{kid}) is registered on that app (General → Client \
                 Credentials → Public key / Private key), and that this host's clock is right",
                self.client_id,
                self.key.alg()
            ),
            "invalid_scope" => format!(
                "invalid_scope{desc}: the service app is not granted every scope requested \
                 ({scopes}); grant them in the {ADMIN_CONSOLE_SCOPES}, or remove the extra ones \
                 from okta.scopes"
            ),
            "invalid_dpop_proof" if self.dpop.is_none() => format!(
                "invalid_dpop_proof{desc}: the service app requires DPoP (\"Require \
                 Demonstrating Proof of Possession (DPoP) header in token requests\"); set \
                 okta.dpop = true (the default)"
            ),
            "invalid_dpop_proof" => format!(
                "invalid_dpop_proof{desc}: Okta refused the DPoP proof; check this host's clock \
                 (the proof's iat must be current)"
            ),
            "use_dpop_nonce" => format!(
                "use_dpop_nonce{desc}: Okta still asked for a new DPoP nonce after \
                 {MAX_NONCE_RETRIES} retries"
            ),
            "unauthorized_client" => format!(
                "unauthorized_client{desc}: the app may not use the client credentials grant; \
                 use an API Services app (Applications → Create App Integration → API \
                 Services) and put its client ID in okta.client_id"
            ),
            "" => {
                // Not an OAuth error body: maybe an Okta E0000xxx body or a proxy's page.
                let parsed = parse_error_body(Api::Okta, body);
                match (parsed.code, parsed.message) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c,
                    (None, Some(m)) => m,
                    (None, None) => format!(
                        "{} ({} bytes of unrecognised body)",
                        status.canonical_reason().unwrap_or("error"),
                        body.len()
                    ),
                }
            }
            other => format!("{}{desc}", clip(other)),
        };
        Error::Credentials {
            api: Api::Okta,
            what: what.to_string(),
            status: status.as_u16(),
            detail: self.redact(&detail),
        }
    }
}

/// The Okta API scope a route needs (docs/api-facts.md "Okta OAuth"; spec
/// `securitySchemes.oauth2`).
pub fn required_scope(method: &Method, route: &str) -> Option<&'static str> {
    let read = *method == Method::GET || *method == Method::HEAD;
    if route.starts_with("/api/v1/apps") {
        Some(if read {
            "okta.apps.read"
        } else {
            SCOPE_APPS_MANAGE
        })
    } else if route.starts_with("/api/v1/users") {
        Some(if read {
            "okta.users.read"
        } else {
            "okta.users.manage"
        })
    } else if route.starts_with("/api/v1/groups") {
        Some(if read {
            "okta.groups.read"
        } else {
            "okta.groups.manage"
        })
    } else if route.starts_with("/api/v1/logs") {
        read.then_some(SCOPE_LOGS_READ)
    } else {
        None
    }
}

/// The parameters of a `WWW-Authenticate` challenge (`DPoP error="…", scope="…"`), names
/// lower-cased. Only the first challenge is read.
pub fn challenge_params(value: &str) -> Vec<(String, String)> {
    let rest = value.trim();
    // Skip the scheme.
    let rest = match rest.find(char::is_whitespace) {
        Some(i) => &rest[i..],
        None => return Vec::new(),
    };
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            // A new scheme (second challenge) or garbage: stop.
            break;
        }
        chars.next();
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name.to_ascii_lowercase(), value));
    }
    out
}

impl AuthProvider for OAuthProvider {
    fn authorize<'a>(
        &'a self,
        method: &'a Method,
        url: &'a Url,
    ) -> BoxFuture<'a, Result<Vec<(HeaderName, HeaderValue)>, Error>> {
        Box::pin(async move {
            let token = self.current_token().await?;
            let scheme = if token.dpop_bound { "DPoP" } else { "Bearer" };
            let mut auth =
                HeaderValue::from_str(&format!("{scheme} {}", token.token.expose_secret()))
                    .map_err(|_| {
                        Error::Config("the Okta access token is not a valid header value".into())
                    })?;
            auth.set_sensitive(true);
            let mut headers = vec![(AUTHORIZATION, auth)];
            if token.dpop_bound {
                let key = self.dpop.as_ref().ok_or_else(|| {
                    Error::Config("internal error: a DPoP-bound token without a DPoP key".into())
                })?;
                let proof = key
                    .proof(
                        method.as_str(),
                        url,
                        wall_secs(),
                        None,
                        Some(token.token.expose_secret()),
                    )
                    .map_err(|e| Error::Config(format!("cannot build a DPoP proof: {e}")))?;
                let value = HeaderValue::from_str(&proof)
                    .map_err(|_| Error::Config("a DPoP proof is not a valid header".into()))?;
                headers.push((HeaderName::from_static("dpop"), value));
            }
            Ok(headers)
        })
    }

    fn on_rejected(&self, r: &Rejected<'_>, can_retry: bool) -> Rejection {
        let params = r
            .headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(challenge_params)
            .find(|p| p.iter().any(|(k, _)| k == "error"))
            .unwrap_or_default();
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| clip(v));
        let desc = param("error_description")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let fail = |detail: String| {
            Rejection::Fail(Error::Credentials {
                api: Api::Okta,
                what: r.what.to_string(),
                status: r.status.as_u16(),
                detail: self.redact(&detail),
            })
        };
        let requested = self.requested_scopes().join(" ");
        match param("error").as_deref() {
            Some("insufficient_scope") => {
                let scope = param("scope")
                    .filter(|s| !s.is_empty())
                    .or_else(|| required_scope(r.method, r.route).map(str::to_string))
                    .unwrap_or_else(|| "(not named by Okta)".to_string());
                let granted = lock(&self.cache)
                    .as_ref()
                    .map(|t| t.scopes.join(" "))
                    .unwrap_or_default();
                fail(format!(
                    "insufficient_scope{desc}: the access token lacks the scope {scope}; grant \
                     {scope} to the service app in the {ADMIN_CONSOLE_SCOPES}, and list it in \
                     okta.scopes (requested: {requested}; granted: {})",
                    if granted.is_empty() { "none" } else { &granted }
                ))
            }
            Some("invalid_dpop_proof") => fail(format!(
                "invalid_dpop_proof{desc}: Okta refused the DPoP proof of the request; check \
                 this host's clock (the proof's iat must be current)"
            )),
            Some("invalid_token") if can_retry => {
                tracing::debug!("Okta rejected the access token; fetching a new one");
                self.invalidate();
                Rejection::Retry
            }
            Some("invalid_token") => fail(format!(
                "invalid_token{desc}: Okta rejected the access token, also a freshly issued one"
            )),
            Some(other) => fail(format!("{}{desc}", clip(other))),
            None => {
                let parsed = parse_error_body(Api::Okta, r.body);
                if r.status == StatusCode::FORBIDDEN && parsed.code.as_deref() == Some("E0000006") {
                    fail(format!(
                        "E0000006: {}; the service app has the scopes but no admin role that \
                         allows this: assign it one (Okta Admin Console → the API Services app \
                         → Admin roles → Edit assignments), e.g. Read-only Administrator, or an \
                         App Administrator for the Spot app for `import --assign`",
                        parsed
                            .message
                            .unwrap_or_else(|| "permission denied".to_string())
                    ))
                } else {
                    Rejection::Default
                }
            }
        }
    }

    fn redact(&self, text: &str) -> String {
        let current = lock(&self.cache).clone();
        match current {
            Some(t) if t.token.expose_secret().len() >= 4 => {
                text.replace(t.token.expose_secret(), "[redacted]")
            }
            _ => text.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed() {
        let p = challenge_params(
            r#"DPoP algs="RS256 ES256", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", scope="okta.apps.read""#,
        );
        assert_eq!(
            p,
            vec![
                ("algs".to_string(), "RS256 ES256".to_string()),
                ("error".to_string(), "insufficient_scope".to_string()),
                (
                    "error_description".to_string(),
                    "The access token provided does not contain the required scopes.".to_string()
                ),
                ("scope".to_string(), "okta.apps.read".to_string()),
            ]
        );
        assert_eq!(
            challenge_params(r#"Bearer error=invalid_token, x="a\"b""#),
            vec![
                ("error".to_string(), "invalid_token".to_string()),
                ("x".to_string(), "a\"b".to_string())
            ]
        );
        assert!(challenge_params("DPoP").is_empty());
    }

    #[test]
    fn routes_map_to_scopes() {
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/apps/{appId}/users"),
            Some("okta.apps.read")
        );
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/apps/{appId}/users"),
            Some("okta.apps.manage")
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/users/{id}"),
            Some("okta.users.read")
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/apps/{appId}/users/{userId}"),
            Some("okta.apps.read")
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/logs"),
            Some(SCOPE_LOGS_READ)
        );
        assert_eq!(required_scope(&Method::GET, "/other"), None);
    }

    #[test]
    fn wall_clock_is_the_system_clock_in_a_normal_runtime() {
        let a = SystemTime::now();
        let w = wall_now();
        let b = SystemTime::now();
        assert!(w + Duration::from_secs(1) >= a && w <= b + Duration::from_secs(1));
    }
}
