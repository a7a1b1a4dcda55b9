//! The Okta emulator's HTTP surface: route matching (route keys as in docs/api-facts.md), the
//! request pipeline (count → fault → auth → rate limit → handler), the handlers of the API
//! routes (`GET /api/v1/logs` answers from `logs`), `Link`/`X-Rate-Limit-*`/`Date`/`X-Okta-Request-Id` headers and E0000xxx bodies.
//!
//! It must follow docs/api-facts.md ("Emulator contract: Okta"), not any client. It must not
//! hold the state lock across an `.await`, and must never panic or unwrap on request input.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};

use super::state::{OktaState, APP_LABEL, BUCKET_APPS, BUCKET_LOGS, BUCKET_USER, BUCKET_USERS};
use super::OktaSim;
use crate::common::{
    encode_query, faulty_body, is_admin_path, parse_query, plain, query_get, random_alnum,
    read_admin_request, PageFaultKind, RateInfo,
};

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
const KIND_APP_USERS: u64 = 0xA;
const KIND_USERS: u64 = 0x5;
const EVIL_HOST: &str = "http://evil.example.invalid";

/// An Okta error response (docs/api-facts.md "Okta errors"): exactly errorCode,
/// errorSummary, errorLink, errorId, errorCauses.
#[derive(Debug)]
pub(crate) struct OktaErr {
    pub status: StatusCode,
    pub code: &'static str,
    pub summary: String,
    pub causes: Vec<String>,
}

impl OktaErr {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        summary: impl Into<String>,
    ) -> OktaErr {
        OktaErr {
            status,
            code,
            summary: summary.into(),
            causes: Vec::new(),
        }
    }

    pub(crate) fn cause(mut self, c: impl Into<String>) -> OktaErr {
        self.causes.push(c.into());
        self
    }

    pub(crate) fn not_found(id: &str, kind: &str) -> OktaErr {
        OktaErr::new(
            StatusCode::NOT_FOUND,
            "E0000007",
            format!("Not found: Resource not found: {id} ({kind})"),
        )
    }

    fn validation(cause: impl Into<String>) -> OktaErr {
        OktaErr::new(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: request",
        )
        .cause(cause)
    }

    fn bad_cursor() -> OktaErr {
        OktaErr::new(
            StatusCode::BAD_REQUEST,
            "E0000029",
            "Invalid paging request.",
        )
        .cause("Invalid cursor.")
    }

    fn unauthorized() -> OktaErr {
        OktaErr::new(
            StatusCode::UNAUTHORIZED,
            "E0000011",
            "Invalid token provided",
        )
    }

    fn rate_limited() -> OktaErr {
        OktaErr::new(
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        )
    }

    /// The body Okta sends for an injected status.
    fn for_status(status: u16) -> OktaErr {
        let sc = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match status {
            400 => OktaErr::validation("injected fault"),
            401 => OktaErr::unauthorized(),
            403 => OktaErr::new(
                sc,
                "E0000006",
                "You do not have permission to perform the requested action",
            ),
            404 => OktaErr::new(sc, "E0000007", "Not found: Resource not found"),
            429 => OktaErr::rate_limited(),
            503 => OktaErr::new(sc, "E0000010", "Service is in read only mode"),
            _ => OktaErr::new(sc, "E0000009", "Internal Server Error"),
        }
    }

    fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Cause<'a> {
            error_summary: &'a str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            error_code: &'a str,
            error_summary: &'a str,
            error_link: &'a str,
            error_id: String,
            error_causes: Vec<Cause<'a>>,
        }
        serde_json::to_vec(&Body {
            error_code: self.code,
            error_summary: &self.summary,
            error_link: self.code,
            error_id: format!("oae{}", random_alnum(22)),
            error_causes: self
                .causes
                .iter()
                .map(|c| Cause { error_summary: c })
                .collect(),
        })
        .unwrap_or_default()
    }
}

/// A successful reply before headers common to all responses are added.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Option<Vec<u8>>,
    pub links: Vec<String>,
    pub etag: Option<String>,
}

impl Reply {
    fn json(body: Vec<u8>) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
            links: Vec::new(),
            etag: None,
        }
    }
}

/// The API routes: (route key, rate-limit bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    ListAppUsers { app: String },
    GetAppUser { app: String, user: String },
    Assign { app: String },
    Unassign { app: String, user: String },
    ListUsers,
    GetUser { id: String },
    ListLogs,
}

impl Route {
    fn key(&self) -> &'static str {
        match self {
            Route::ListAppUsers { .. } => "GET /api/v1/apps/{appId}/users",
            Route::GetAppUser { .. } => "GET /api/v1/apps/{appId}/users/{userId}",
            Route::Assign { .. } => "POST /api/v1/apps/{appId}/users",
            Route::Unassign { .. } => "DELETE /api/v1/apps/{appId}/users/{userId}",
            Route::ListUsers => "GET /api/v1/users",
            Route::GetUser { .. } => "GET /api/v1/users/{id}",
            Route::ListLogs => "GET /api/v1/logs",
        }
    }

    /// The Okta API scope an OAuth access token needs here (a `manage` scope also covers
    /// `read`).
    fn scope(&self) -> &'static str {
        match self {
            Route::ListAppUsers { .. } | Route::GetAppUser { .. } => "okta.apps.read",
            Route::Assign { .. } | Route::Unassign { .. } => "okta.apps.manage",
            Route::ListUsers | Route::GetUser { .. } => "okta.users.read",
            Route::ListLogs => "okta.logs.read",
        }
    }

    fn bucket(&self) -> &'static str {
        match self {
            Route::ListUsers => BUCKET_USERS,
            Route::GetUser { .. } => BUCKET_USER,
            Route::ListLogs => BUCKET_LOGS,
            _ => BUCKET_APPS,
        }
    }
}

/// Percent-decodes one path segment; `None` on invalid UTF-8.
fn decode_segment(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn match_route(method: &Method, path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let seg = |i: usize| segs.get(i).and_then(|s| decode_segment(s));
    match (method, segs.as_slice()) {
        (&Method::GET, ["", "api", "v1", "apps", _, "users"]) => {
            Some(Route::ListAppUsers { app: seg(4)? })
        }
        (&Method::POST, ["", "api", "v1", "apps", _, "users"]) => {
            Some(Route::Assign { app: seg(4)? })
        }
        (&Method::GET, ["", "api", "v1", "apps", _, "users", _]) => Some(Route::GetAppUser {
            app: seg(4)?,
            user: seg(6)?,
        }),
        (&Method::DELETE, ["", "api", "v1", "apps", _, "users", _]) => Some(Route::Unassign {
            app: seg(4)?,
            user: seg(6)?,
        }),
        (&Method::GET, ["", "api", "v1", "users"]) => Some(Route::ListUsers),
        (&Method::GET, ["", "api", "v1", "logs"]) => Some(Route::ListLogs),
        (&Method::GET, ["", "api", "v1", "users", _]) => Some(Route::GetUser { id: seg(4)? }),
        _ => None,
    }
}

/// Per-request context handed to handlers.
struct Ctx<'a> {
    base: String,
    query: Vec<(String, String)>,
    body: &'a [u8],
    page_fault: Option<PageFaultKind>,
}

/// Entry point for every request to the Okta emulator.
pub(crate) async fn entry(
    State(sim): State<OktaSim>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let mut deadline = None;
    let response = respond(State(sim), ConnectInfo(peer), req, &mut deadline).await;
    crate::common::hold_until(deadline).await;
    response
}

async fn respond(
    State(sim): State<OktaSim>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    deadline: &mut Option<tokio::time::Instant>,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query());
    if is_admin_path(&path) {
        let bytes = match read_admin_request(peer, body).await {
            Ok(b) => b,
            Err(refusal) => return refusal,
        };
        return super::admin::handle(&sim, &parts.method, &path, &query, &bytes);
    }

    let route = match_route(&parts.method, &path);
    let key = route
        .as_ref()
        .map(|r| r.key().to_string())
        .unwrap_or_else(|| format!("{} {}", parts.method, path));
    let decision = {
        let mut st = sim.lock();
        st.traffic.count(&key);
        st.traffic.decide(&key)
    };
    // The response leaves no sooner than `latency` after arrival (see `Fault::latency`).
    *deadline = decision.latency.map(|d| tokio::time::Instant::now() + d);
    let bucket = route.as_ref().map(Route::bucket);
    let peek = |sim: &OktaSim| -> Option<RateInfo> {
        let st = sim.lock();
        bucket.map(|b| {
            let limit = st.limits.get(b).copied().unwrap_or(u32::MAX);
            st.windows.peek(b, limit, sim.clock().now())
        })
    };
    if let Some(status) = decision.fail {
        let rate = peek(&sim);
        return error_response(&sim, OktaErr::for_status(status), rate);
    }
    if let Some(secs) = decision.burst_reset_secs {
        let now = sim.clock().now();
        let limit = peek(&sim).map_or(0, |r| r.limit);
        let rate = RateInfo {
            limit,
            remaining: 0,
            reset_at: now + std::time::Duration::from_secs(secs),
            allowed: false,
        };
        return error_response(&sim, OktaErr::rate_limited(), Some(rate));
    }

    if parts.method == Method::POST && path == super::oauth::TOKEN_PATH {
        let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "cannot read the request body"),
        };
        let base = base_url(&sim, &parts.headers);
        let mut resp = super::oauth::token_endpoint(&sim, &parts.headers, &bytes, &base);
        common_headers(&sim, resp.headers_mut(), None);
        return resp;
    }

    let credential = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    let (scheme, value) = credential.split_once(' ').unwrap_or((credential, ""));
    let scheme = scheme.to_ascii_lowercase();
    let authorized = match scheme.as_str() {
        "ssws" => {
            let st = sim.lock();
            value.trim() == st.token
        }
        "dpop" | "bearer" => {
            let base = base_url(&sim, &parts.headers);
            match super::oauth::check_api_call(
                &sim,
                scheme == "dpop",
                value.trim(),
                &parts.headers,
                &parts.method,
                &path,
                &base,
                route.as_ref().map(Route::scope),
            ) {
                Ok(()) => true,
                Err(e) => {
                    let rate = peek(&sim);
                    let challenge = e.challenge();
                    let mut resp = match e {
                        super::oauth::ApiAuthError::InvalidToken { .. } => {
                            error_response(&sim, OktaErr::unauthorized(), rate)
                        }
                        super::oauth::ApiAuthError::InvalidProof { .. } => {
                            let mut r = super::oauth::challenge_response(
                                StatusCode::UNAUTHORIZED,
                                &challenge,
                            );
                            common_headers(&sim, r.headers_mut(), rate);
                            r
                        }
                        super::oauth::ApiAuthError::InsufficientScope { .. } => {
                            let mut r =
                                super::oauth::challenge_response(StatusCode::FORBIDDEN, &challenge);
                            common_headers(&sim, r.headers_mut(), rate);
                            r
                        }
                    };
                    if let Ok(v) = HeaderValue::from_str(&challenge) {
                        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                    }
                    return resp;
                }
            }
        }
        _ => false,
    };
    if !authorized {
        let rate = peek(&sim);
        return error_response(&sim, OktaErr::unauthorized(), rate);
    }
    let Some(route) = route else {
        let err = OktaErr::new(
            StatusCode::NOT_FOUND,
            "E0000008",
            "The requested path was not found",
        );
        return error_response(&sim, err, None);
    };

    let rate = {
        let mut st = sim.lock();
        let b = route.bucket();
        let limit = st.limits.get(b).copied().unwrap_or(u32::MAX);
        let enforce = st.enforce;
        st.windows.hit(b, limit, enforce, sim.clock().now())
    };
    if !rate.allowed {
        return error_response(&sim, OktaErr::rate_limited(), Some(rate));
    }

    let body = if parts.method == Method::POST {
        match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b.to_vec(),
            Err(_) => {
                let err = OktaErr::new(
                    StatusCode::BAD_REQUEST,
                    "E0000003",
                    "The request body was not well-formed.",
                );
                return error_response(&sim, err, Some(rate));
            }
        }
    } else {
        Vec::new()
    };
    let ctx = Ctx {
        base: base_url(&sim, &parts.headers),
        query,
        body: &body,
        page_fault: decision.page,
    };
    let result = {
        let mut st = sim.lock();
        handle(&mut st, &sim, &route, &ctx)
    };
    match result {
        Ok(reply) => finish(&sim, reply, Some(rate), decision.page, decision.slow_body),
        Err(e) => error_response(&sim, e, Some(rate)),
    }
}

/// `http://host:port` of this server as the client addressed it (Host header), falling back
/// to the bound address.
fn base_url(sim: &OktaSim, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
    match host {
        Some(h) => format!("http://{h}"),
        None => sim.url(),
    }
}

fn handle(st: &mut OktaState, sim: &OktaSim, route: &Route, ctx: &Ctx) -> Result<Reply, OktaErr> {
    match route {
        Route::ListAppUsers { app } => list_app_users(st, ctx, app),
        Route::GetAppUser { app, user } => get_app_user(st, ctx, app, user),
        Route::Assign { app } => assign(st, sim, ctx, app),
        Route::Unassign { app, user } => unassign(st, sim, app, user),
        Route::ListUsers => list_users(st, ctx),
        Route::GetUser { id } => get_user(st, ctx, id),
        Route::ListLogs => {
            let now = sim.clock().system_now();
            let (body, links) = st.log.list(&ctx.base, &ctx.query, now, APP_LABEL)?;
            let mut reply = Reply::json(body);
            reply.links = links;
            Ok(reply)
        }
    }
}

fn check_app(st: &OktaState, app: &str) -> Result<(), OktaErr> {
    if app == st.app_id {
        Ok(())
    } else {
        Err(OktaErr::not_found(app, "AppInstance"))
    }
}

/// `limit` within `min..=max` (default when absent); out of range or not a number → 400.
fn parse_limit(q: &[(String, String)], default: u32, max: u32, cap: bool) -> Result<u32, OktaErr> {
    let Some(raw) = query_get(q, "limit") else {
        return Ok(default);
    };
    let n: i64 = raw
        .trim()
        .parse()
        .map_err(|_| OktaErr::validation(format!("limit: '{raw}' is not a number")))?;
    if n < 1 {
        return Err(OktaErr::validation(format!(
            "limit: must be between 1 and {max}"
        )));
    }
    if n > i64::from(max) {
        if cap {
            return Ok(max);
        }
        return Err(OktaErr::validation(format!(
            "limit: must be between 1 and {max}"
        )));
    }
    Ok(n as u32)
}

/// `Link` header values: `self` first, then `next` (docs/api-facts.md "Okta pagination").
/// Links carry the request's query parameters with `after` first and `limit` always present.
fn page_links(ctx: &Ctx, path: &str, limit: u32, next_cursor: Option<String>) -> Vec<String> {
    let limit_s = limit.to_string();
    let others: Vec<(&str, &str)> = ctx
        .query
        .iter()
        .filter(|(k, _)| k != "after" && k != "limit")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let build = |base: &str, after: Option<&str>| {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = after {
            pairs.push(("after", a));
        }
        pairs.push(("limit", &limit_s));
        pairs.extend(others.iter().copied());
        format!("{base}{path}?{}", encode_query(pairs))
    };
    let self_url = build(&ctx.base, query_get(&ctx.query, "after"));
    let next_url = match ctx.page_fault {
        Some(PageFaultKind::RepeatedCursor) => Some(self_url.clone()),
        Some(PageFaultKind::ForeignNextLink) => Some(build(
            EVIL_HOST,
            Some(next_cursor.as_deref().unwrap_or("evil")),
        )),
        _ => next_cursor.map(|c| build(&ctx.base, Some(&c))),
    };
    let mut links = vec![format!("<{self_url}>; rel=\"self\"")];
    if let Some(n) = next_url {
        links.push(format!("<{n}>; rel=\"next\""));
    }
    links
}

/// One row per grant: a user with a direct and a group grant yields two rows (`USER` and
/// `GROUP`). The row count for that case is unconfirmed (docs/api-facts.md "Okta app users");
/// this is the pessimistic reading, so a client's dedup by user id gets exercised.
fn list_app_users(st: &OktaState, ctx: &Ctx, app: &str) -> Result<Reply, OktaErr> {
    check_app(st, app)?;
    let limit = parse_limit(&ctx.query, 50, 500, false)?;
    let effective = st.max_limit.map_or(limit, |m| limit.min(m.max(1))) as usize;
    let after = match query_get(&ctx.query, "after") {
        Some(c) => Some(
            st.parse_cursor(KIND_APP_USERS, c)
                .ok_or_else(OktaErr::bad_cursor)?,
        ),
        None => None,
    };
    let expand = query_get(&ctx.query, "expand").is_some_and(|e| e.split(',').any(|x| x == "user"));
    let q = query_get(&ctx.query, "q").map(str::to_lowercase);
    let mut rows = Vec::with_capacity(effective.min(500));
    let mut last = None;
    let mut more = false;
    for (seq, g) in st.grants_after(after) {
        if let Some(q) = &q {
            let u = &st.users[g.user];
            let hit = [&g.user_name, &u.first_name, &u.last_name, &u.email]
                .iter()
                .any(|f| f.to_lowercase().starts_with(q.as_str()));
            if !hit {
                continue;
            }
        }
        if rows.len() == effective {
            more = true;
            break;
        }
        rows.push(st.app_user_out(&ctx.base, g, expand));
        last = Some(*seq);
    }
    let body = serde_json::to_vec(&rows).unwrap_or_default();
    let next = if more {
        last.map(|s| st.cursor(KIND_APP_USERS, s))
    } else {
        None
    };
    let mut reply = Reply::json(body);
    reply.links = page_links(ctx, &format!("/api/v1/apps/{app}/users"), limit, next);
    Ok(reply)
}

fn get_app_user(st: &OktaState, ctx: &Ctx, app: &str, user: &str) -> Result<Reply, OktaErr> {
    check_app(st, app)?;
    let idx = st
        .user_by_id(user)
        .ok_or_else(|| OktaErr::not_found(user, "User"))?;
    let seq = st
        .direct_grant(idx)
        .or_else(|| st.users[idx].grants.first().copied())
        .ok_or_else(|| OktaErr::not_found(user, "AppUser"))?;
    let g = st
        .grants
        .get(&seq)
        .ok_or_else(|| OktaErr::not_found(user, "AppUser"))?;
    let expand = query_get(&ctx.query, "expand") == Some("user");
    let body = serde_json::to_vec(&st.app_user_out(&ctx.base, g, expand)).unwrap_or_default();
    Ok(Reply::json(body))
}

/// `POST /api/v1/apps/{appId}/users` (docs/api-facts.md "Okta assignment"): 200 with the AppUser.
fn assign(st: &mut OktaState, sim: &OktaSim, ctx: &Ctx, app: &str) -> Result<Reply, OktaErr> {
    check_app(st, app)?;
    let v: Value = serde_json::from_slice(ctx.body).map_err(|e| {
        OktaErr::new(
            StatusCode::BAD_REQUEST,
            "E0000003",
            "The request body was not well-formed.",
        )
        .cause(e.to_string())
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| OktaErr::validation("body: must be an AppUser object"))?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OktaErr::validation("id: The field cannot be left blank"))?;
    if let Some(scope) = obj.get("scope") {
        if scope.as_str() != Some("USER") {
            return Err(OktaErr::validation(
                "scope: only USER can be assigned directly",
            ));
        }
    }
    let user_name = match obj.get("credentials") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => match c.get("userName") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(OktaErr::validation(
                    "credentials.userName: must be a string",
                ))
            }
        },
        Some(_) => return Err(OktaErr::validation("credentials: must be an object")),
    };
    let profile: Option<Map<String, Value>> = match obj.get("profile") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p.clone()),
        Some(_) => return Err(OktaErr::validation("profile: must be an object")),
    };
    let idx = st
        .user_by_id(id)
        .ok_or_else(|| OktaErr::not_found(id, "User"))?;
    if st.users[idx].status == "DEPROVISIONED" {
        // The support article says deactivated users cannot be assigned apps; the exact
        // error code for the API call is unconfirmed. E0000038 is Okta's code for operations
        // not allowed in the user's current status.
        return Err(OktaErr::new(
            StatusCode::FORBIDDEN,
            "E0000038",
            "This operation is not allowed in the user's current status.",
        ));
    }
    let seq = st.assign_direct_profile(idx, profile, user_name, sim.clock());
    let g = st
        .grants
        .get(&seq)
        .ok_or_else(|| OktaErr::for_status(500))?;
    let body = serde_json::to_vec(&st.app_user_out(&ctx.base, g, false)).unwrap_or_default();
    Ok(Reply::json(body))
}

/// `DELETE /api/v1/apps/{appId}/users/{userId}`: 204 empty; GROUP-only → 403 E0000046.
fn unassign(st: &mut OktaState, sim: &OktaSim, app: &str, user: &str) -> Result<Reply, OktaErr> {
    check_app(st, app)?;
    let idx = st
        .user_by_id(user)
        .ok_or_else(|| OktaErr::not_found(user, "User"))?;
    if st.unassign(idx, sim.clock()) {
        return Ok(Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
            links: Vec::new(),
            etag: None,
        });
    }
    if !st.users[idx].grants.is_empty() {
        return Err(OktaErr::new(
            StatusCode::FORBIDDEN,
            "E0000046",
            "Deactivate application for user forbidden.",
        )
        .cause("The application cannot be unassigned from the user while their group memberships grant them access"));
    }
    Err(OktaErr::not_found(user, "AppUser"))
}

/// One condition of a `search`/`filter` expression.
#[derive(Debug)]
struct Cond {
    attr: String,
    op: String,
    value: String,
}

/// `a op "v" [and|or a op "v"]…` with `and` binding tighter than `or`; no parentheses.
fn parse_expr(s: &str, filter: bool) -> Result<Vec<Vec<Cond>>, String> {
    let mut tokens: Vec<(bool, String)> = Vec::new(); // (quoted, text)
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut v = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    _ => v.push(c),
                }
            }
            if !closed {
                return Err("unterminated string".into());
            }
            tokens.push((true, v));
        } else if c == '(' || c == ')' {
            return Err("parentheses are not supported by the emulator".into());
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
            tokens.push((false, w));
        }
    }
    let mut ors = vec![Vec::new()];
    let mut i = 0;
    loop {
        let (Some(a), Some(o), Some(v)) = (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2))
        else {
            return Err("expected `attribute operator value`".into());
        };
        if a.0 || o.0 {
            return Err("attribute and operator must not be quoted".into());
        }
        let op = o.1.to_ascii_lowercase();
        let allowed: &[&str] = if filter {
            &["eq", "gt", "ge", "lt", "le"]
        } else {
            &["eq", "sw", "co", "gt", "ge", "lt", "le"]
        };
        if !allowed.contains(&op.as_str()) {
            return Err(format!("operator {op:?} is not supported"));
        }
        if let Some(last) = ors.last_mut() {
            last.push(Cond {
                attr: a.1.clone(),
                op,
                value: v.1.clone(),
            });
        }
        i += 3;
        match tokens.get(i) {
            None => break,
            Some((false, w)) if w.eq_ignore_ascii_case("and") => {}
            Some((false, w)) if w.eq_ignore_ascii_case("or") => ors.push(Vec::new()),
            Some(_) => return Err("expected `and` or `or`".into()),
        }
        i += 1;
    }
    Ok(ors)
}

fn user_attr<'a>(u: &'a super::state::User, attr: &str) -> Option<&'a str> {
    Some(match attr {
        "id" => &u.id,
        "status" => &u.status,
        "created" => &u.created,
        "lastUpdated" => &u.last_updated,
        "profile.login" => &u.login,
        "profile.email" => &u.email,
        "profile.firstName" => &u.first_name,
        "profile.lastName" => &u.last_name,
        _ => return None,
    })
}

fn cond_matches(u: &super::state::User, c: &Cond, case_insensitive: bool) -> bool {
    let Some(actual) = user_attr(u, &c.attr) else {
        return false;
    };
    let (a, v) = if case_insensitive {
        (actual.to_lowercase(), c.value.to_lowercase())
    } else {
        (actual.to_string(), c.value.clone())
    };
    match c.op.as_str() {
        "eq" => a == v,
        "sw" => a.starts_with(&v),
        "co" => a.contains(&v),
        "gt" => a > v,
        "ge" => a >= v,
        "lt" => a < v,
        "le" => a <= v,
        _ => false,
    }
}

/// `GET /api/v1/users` (docs/api-facts.md "Okta user search"): no query omits DEPROVISIONED;
/// `search` (values case-insensitive) and `filter` (case-sensitive) include them. Limit
/// default 200, capped at 200.
fn list_users(st: &OktaState, ctx: &Ctx) -> Result<Reply, OktaErr> {
    let limit = parse_limit(&ctx.query, 200, 200, true)?;
    let after = match query_get(&ctx.query, "after") {
        Some(c) => Some(
            st.parse_cursor(KIND_USERS, c)
                .ok_or_else(OktaErr::bad_cursor)?,
        ),
        None => None,
    };
    let search = match query_get(&ctx.query, "search") {
        Some(s) => {
            Some(parse_expr(s, false).map_err(|e| OktaErr::validation(format!("search: {e}")))?)
        }
        None => None,
    };
    let filter = match query_get(&ctx.query, "filter") {
        Some(s) => {
            Some(parse_expr(s, true).map_err(|e| OktaErr::validation(format!("filter: {e}")))?)
        }
        None => None,
    };
    let any_query = search.is_some() || filter.is_some();
    let matches = |u: &super::state::User| -> bool {
        if !any_query && u.status == "DEPROVISIONED" {
            return false;
        }
        let ok = |expr: &Option<Vec<Vec<Cond>>>, ci: bool| {
            expr.as_ref().is_none_or(|ors| {
                ors.iter()
                    .any(|ands| ands.iter().all(|c| cond_matches(u, c, ci)))
            })
        };
        ok(&search, true) && ok(&filter, false)
    };
    let start = after.map_or(0, |a| a as usize + 1);
    let mut rows = Vec::new();
    let mut last = None;
    let mut more = false;
    for (i, u) in st.users.iter().enumerate().skip(start) {
        if u.deleted || !matches(u) {
            continue;
        }
        if rows.len() == limit as usize {
            more = true;
            break;
        }
        rows.push(st.user_out(&ctx.base, u, false));
        last = Some(i as u64);
    }
    let body = serde_json::to_vec(&rows).unwrap_or_default();
    let next = if more {
        last.map(|i| st.cursor(KIND_USERS, i))
    } else {
        None
    };
    let mut reply = Reply::json(body);
    reply.links = page_links(ctx, "/api/v1/users", limit, next);
    Ok(reply)
}

/// `GET /api/v1/users/{id}` by id or login, with an `ETag`.
fn get_user(st: &OktaState, ctx: &Ctx, id: &str) -> Result<Reply, OktaErr> {
    let idx = st
        .user_by_id_or_login(id)
        .ok_or_else(|| OktaErr::not_found(id, "User"))?;
    let body =
        serde_json::to_vec(&st.user_out(&ctx.base, &st.users[idx], true)).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in &body {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    let mut reply = Reply::json(body);
    reply.etag = Some(format!("W/\"{hash:016x}\""));
    Ok(reply)
}

fn common_headers(sim: &OktaSim, h: &mut HeaderMap, rate: Option<RateInfo>) {
    if let Ok(v) = HeaderValue::from_str(&sim.clock().http_date()) {
        h.insert(header::DATE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&random_alnum(27)) {
        h.insert("x-okta-request-id", v);
    }
    if let Some(r) = rate {
        h.insert("x-rate-limit-limit", HeaderValue::from(r.limit));
        h.insert("x-rate-limit-remaining", HeaderValue::from(r.remaining));
        h.insert(
            "x-rate-limit-reset",
            HeaderValue::from(sim.clock().epoch_secs_ceil(r.reset_at)),
        );
    }
}

fn finish(
    sim: &OktaSim,
    reply: Reply,
    rate: Option<RateInfo>,
    page: Option<PageFaultKind>,
    slow: Option<std::time::Duration>,
) -> Response {
    let mut resp = match reply.body {
        Some(b) => Response::new(faulty_body(b, page, slow)),
        None => Response::new(Body::empty()),
    };
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    if reply.status != StatusCode::NO_CONTENT {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
    }
    common_headers(sim, h, rate);
    for l in reply.links {
        if let Ok(v) = HeaderValue::from_str(&l) {
            h.append(header::LINK, v);
        }
    }
    if let Some(e) = reply.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        h.insert(header::ETAG, e);
    }
    resp
}

pub(crate) fn error_response(sim: &OktaSim, err: OktaErr, rate: Option<RateInfo>) -> Response {
    let reply = Reply {
        status: err.status,
        body: Some(err.body()),
        links: Vec::new(),
        etag: None,
    };
    finish(sim, reply, rate, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_templates() {
        assert_eq!(
            match_route(&Method::GET, "/api/v1/apps/0oa1/users").map(|r| r.key()),
            Some("GET /api/v1/apps/{appId}/users")
        );
        assert_eq!(
            match_route(&Method::GET, "/api/v1/users/alice%40example.com"),
            Some(Route::GetUser {
                id: "alice@example.com".into()
            })
        );
        assert!(match_route(&Method::PUT, "/api/v1/users").is_none());
        let logs = match_route(&Method::GET, "/api/v1/logs").unwrap();
        assert_eq!(logs.key(), "GET /api/v1/logs");
        assert_eq!(logs.scope(), "okta.logs.read");
        assert_eq!(logs.bucket(), BUCKET_LOGS);
        assert!(match_route(&Method::POST, "/api/v1/logs").is_none());
    }

    #[test]
    fn expressions_parse() {
        let e = parse_expr(
            r#"profile.email eq "A@x.com" or status eq "ACTIVE" and id sw "00u""#,
            false,
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].len(), 2);
        assert!(parse_expr("profile.email eq", false).is_err());
        assert!(parse_expr(r#"profile.email co "x""#, true).is_err());
    }
}
