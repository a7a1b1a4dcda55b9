//! The Spot emulator's HTTP surface: route matching (literal segments case-insensitive, so
//! Java's `/PolicyMapping` works; a trailing slash is ignored), the request pipeline
//! (count → fault → auth → rate limit → handler → request log), the envelope on every
//! response, string error codes, `X-RateLimit-*` headers, and applying the list/delete quirks
//! (`quirks`) to the responses they shape.
//!
//! It must follow docs/api-facts.md ("Spot", "Emulator contract: Spot"), not any client:
//! status 200 with a JSON envelope for every success, `count` always present, 429 with `data`
//! and no `errors`. It must not hold the state lock across an `.await` and must never panic
//! on request input.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::state::{SpotRefusal, SpotState, UserRec};
use super::SpotSim;
use crate::common::{
    faulty_body, is_admin_path, parse_query, query_get, random_hex, read_admin_request,
    PageFaultKind,
};

const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    ListOrgUsers,
    CreateUser,
    GetUser(String),
    DeleteUser(String),
    PolicyMapping(String),
    ListAccounts,
    ListPolicies,
}

impl Route {
    fn key(&self) -> &'static str {
        match self {
            Route::ListOrgUsers => "GET /setup/organization/user",
            Route::CreateUser => "POST /setup/user",
            Route::GetUser(_) => "GET /setup/user/{userId}",
            Route::DeleteUser(_) => "DELETE /setup/user/{userId}",
            Route::PolicyMapping(_) => "PUT /setup/user/{userId}/policyMapping",
            Route::ListAccounts => "GET /setup/account",
            Route::ListPolicies => "GET /setup/organization/policy",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Route::ListOrgUsers => "spotinst:setup:organization:user",
            Route::CreateUser => "spotinst:setup:user",
            Route::GetUser(_) | Route::DeleteUser(_) | Route::PolicyMapping(_) => {
                "spotinst:setup:access:user"
            }
            Route::ListAccounts => "spotinst:setup:account",
            Route::ListPolicies => "spotinst:setup:organization:policy",
        }
    }
}

fn match_route(method: &Method, path: &str) -> Option<Route> {
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (method, l.as_slice()) {
        (&Method::GET, ["", "setup", "organization", "user"]) => Some(Route::ListOrgUsers),
        (&Method::POST, ["", "setup", "user"]) => Some(Route::CreateUser),
        (&Method::GET, ["", "setup", "user", _]) => Some(Route::GetUser(segs[3].to_string())),
        (&Method::DELETE, ["", "setup", "user", _]) => Some(Route::DeleteUser(segs[3].to_string())),
        (&Method::PUT, ["", "setup", "user", _, "policymapping"]) => {
            Some(Route::PolicyMapping(segs[3].to_string()))
        }
        (&Method::GET, ["", "setup", "account"]) => Some(Route::ListAccounts),
        (&Method::GET, ["", "setup", "organization", "policy"]) => Some(Route::ListPolicies),
        _ => None,
    }
}

/// `request` part of the envelope.
#[derive(Serialize)]
struct RequestInfo<'a> {
    id: String,
    url: &'a str,
    method: &'a str,
    timestamp: String,
}

#[derive(Serialize)]
struct Status {
    code: u16,
    message: &'static str,
}

fn status_of(code: StatusCode) -> Status {
    Status {
        code: code.as_u16(),
        message: code.canonical_reason().unwrap_or("Error"),
    }
}

#[derive(Serialize)]
struct OkBody<'a, T: Serialize> {
    status: Status,
    kind: &'a str,
    items: &'a [T],
    count: usize,
}

#[derive(Serialize)]
struct ErrorItem<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrBody<'a> {
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    errors: [ErrorItem<'a>; 1],
    count: usize,
}

#[derive(Serialize)]
struct DataBody {
    status: Status,
    data: &'static str,
}

#[derive(Serialize)]
struct Envelope<'a, R: Serialize> {
    request: RequestInfo<'a>,
    response: R,
}

struct Ctx<'a> {
    url: &'a str,
    method: &'a str,
    timestamp: String,
    query: Vec<(String, String)>,
    body: &'a [u8],
}

impl Ctx<'_> {
    fn request(&self) -> RequestInfo<'_> {
        RequestInfo {
            id: uuid::Uuid::new_v4().to_string(),
            url: self.url,
            method: self.method,
            timestamp: self.timestamp.clone(),
        }
    }

    fn ok<T: Serialize>(&self, kind: &str, items: &[T]) -> Vec<u8> {
        serde_json::to_vec(&Envelope {
            request: self.request(),
            response: OkBody {
                status: status_of(StatusCode::OK),
                kind,
                items,
                count: items.len(),
            },
        })
        .unwrap_or_default()
    }

    fn err(
        &self,
        status: StatusCode,
        kind: Option<&str>,
        code: &str,
        message: &str,
        field: Option<&str>,
    ) -> Vec<u8> {
        serde_json::to_vec(&Envelope {
            request: self.request(),
            response: ErrBody {
                status: status_of(status),
                kind,
                errors: [ErrorItem {
                    code,
                    message,
                    field,
                }],
                count: 0,
            },
        })
        .unwrap_or_default()
    }

    /// The 429 body, verbatim shape (docs/api-facts.md "Spot envelope and errors"): `data`,
    /// no `errors`.
    fn too_many(&self) -> Vec<u8> {
        serde_json::to_vec(&Envelope {
            request: self.request(),
            response: DataBody {
                status: status_of(StatusCode::TOO_MANY_REQUESTS),
                data: "Rate limit exceeded",
            },
        })
        .unwrap_or_default()
    }
}

/// What the handler produced: status and complete JSON body.
type Out = (StatusCode, Vec<u8>);

/// Rate headers: limit, remaining, seconds until a request is allowed.
type Rate = (u32, u32, u64);

fn injected_code(status: u16) -> &'static str {
    match status {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        500 => "INTERNAL_ERROR",
        502 => "BAD_GATEWAY",
        503 => "SERVICE_UNAVAILABLE",
        504 => "GATEWAY_TIMEOUT",
        _ => "ERROR",
    }
}

/// Entry point for every request to the Spot emulator.
pub(crate) async fn entry(
    State(sim): State<SpotSim>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let mut deadline = None;
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let response = respond(State(sim.clone()), ConnectInfo(peer), req, &mut deadline).await;
    if !is_admin_path(&path) {
        sim.lock()
            .traffic
            .log(&method, &path, response.status().as_u16());
    }
    crate::common::hold_until(deadline).await;
    response
}

async fn respond(
    State(sim): State<SpotSim>,
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
        return super::admin::handle(&sim, &parts.method, &path, &bytes);
    }
    let url = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let method = parts.method.to_string();
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
    let mut ctx = Ctx {
        url: &url,
        method: &method,
        timestamp: String::new(),
        query,
        body: &[],
    };
    ctx.timestamp = sim.clock().timestamp();
    let kind = route.as_ref().map(Route::kind);
    let peek = |sim: &SpotSim| -> Rate {
        let st = sim.lock();
        let limit = st.limit_of(&key);
        let (remaining, reset) = st.windows.peek(&key, limit, sim.clock().now());
        (limit, remaining, reset)
    };

    if let Some(status) = decision.fail {
        let sc = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let rate = peek(&sim);
        let body = if sc == StatusCode::TOO_MANY_REQUESTS {
            ctx.too_many()
        } else {
            ctx.err(sc, kind, injected_code(status), "Injected failure", None)
        };
        return finish(&sim, (sc, body), rate, None, None);
    }
    if let Some(secs) = decision.burst_reset_secs {
        let (limit, _, _) = peek(&sim);
        return finish(
            &sim,
            (StatusCode::TOO_MANY_REQUESTS, ctx.too_many()),
            (limit, 0, secs),
            None,
            None,
        );
    }

    let authorized = {
        let st = sim.lock();
        let expected = format!("Bearer {}", st.token);
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == expected)
    };
    if !authorized {
        let rate = peek(&sim);
        let body = ctx.err(
            StatusCode::UNAUTHORIZED,
            kind,
            "UNAUTHORIZED",
            "Authentication failed: missing or invalid token",
            None,
        );
        return finish(&sim, (StatusCode::UNAUTHORIZED, body), rate, None, None);
    }
    let Some(route) = route else {
        let rate = peek(&sim);
        let body = ctx.err(
            StatusCode::NOT_FOUND,
            None,
            "NOT_FOUND",
            &format!("No route for {method} {path}"),
            None,
        );
        return finish(&sim, (StatusCode::NOT_FOUND, body), rate, None, None);
    };

    let rate = {
        let mut st = sim.lock();
        let limit = st.limit_of(&key);
        let (allowed, remaining, reset) = st.windows.hit(&key, limit, sim.clock().now());
        if !allowed {
            drop(st);
            let body = ctx.too_many();
            return finish(
                &sim,
                (StatusCode::TOO_MANY_REQUESTS, body),
                (limit, 0, reset),
                None,
                None,
            );
        }
        (limit, remaining, reset)
    };

    let bytes = if matches!(parts.method, Method::POST | Method::PUT) {
        match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b.to_vec(),
            Err(_) => {
                let body = ctx.err(
                    StatusCode::BAD_REQUEST,
                    Some(route.kind()),
                    "INVALID_REQUEST",
                    "The request body could not be read",
                    None,
                );
                return finish(&sim, (StatusCode::BAD_REQUEST, body), rate, None, None);
            }
        }
    } else {
        Vec::new()
    };
    ctx.body = &bytes;
    let run = || handle(&mut sim.lock(), &route, &ctx);
    let out = if matches!(route, Route::ListOrgUsers) {
        crate::common::run_long(run)
    } else {
        run()
    };
    let page = if out.0 == StatusCode::OK {
        decision.page
    } else {
        None
    };
    finish(&sim, out, rate, page, decision.slow_body)
}

fn handle(st: &mut SpotState, route: &Route, ctx: &Ctx) -> Out {
    let kind = route.kind();
    let refused = |r: SpotRefusal| {
        (
            StatusCode::BAD_REQUEST,
            ctx.err(
                StatusCode::BAD_REQUEST,
                Some(kind),
                r.code,
                &r.message,
                r.field,
            ),
        )
    };
    match route {
        Route::ListOrgUsers => {
            let shape = st.quirks.next_list();
            let items: Vec<OrgUserItem> = if shape.is_plain() {
                st.users.values().map(org_user_item).collect()
            } else {
                let shown: Vec<&UserRec> = st
                    .users
                    .values()
                    .filter(|r| !shape.hides(&r.user.user_id))
                    .collect();
                let repeats = shown
                    .iter()
                    .filter(|r| shape.repeats(&r.user.user_id))
                    .copied()
                    .collect::<Vec<_>>();
                shown
                    .into_iter()
                    .chain(repeats)
                    .map(org_user_item)
                    .collect()
            };
            (StatusCode::OK, ctx.ok(kind, &items))
        }
        Route::ListAccounts => {
            let org = st.organization_id.to_string();
            let items: Vec<AccountItem> = st
                .accounts
                .iter()
                .map(|a| AccountItem {
                    account_id: &a.account_id,
                    organization_id: &org,
                    name: &a.name,
                    created_at: &a.created_at,
                })
                .collect();
            (StatusCode::OK, ctx.ok(kind, &items))
        }
        Route::ListPolicies => {
            let items: Vec<PolicyItem> = st
                .policies
                .iter()
                .map(|p| PolicyItem {
                    id: &p.id,
                    name: &p.name,
                    description: &p.description,
                    kind: &p.kind,
                    policy_content: PolicyContent {
                        statements: [Statement {
                            effect: "ALLOW",
                            actions: ["*"],
                            resources: ["*"],
                        }],
                    },
                    created_at: &p.created_at,
                    updated_at: &p.created_at,
                })
                .collect();
            (StatusCode::OK, ctx.ok(kind, &items))
        }
        Route::GetUser(id) => match st.get(id) {
            Some(rec) => {
                let item = user_detail(st, rec);
                (StatusCode::OK, ctx.ok(kind, &[item]))
            }
            None => refused(super::state::user_doesnt_exist(id)),
        },
        Route::DeleteUser(id) => {
            // A no-op delete still answers as the real one would, refusals included.
            let outcome = match st.check_delete(id) {
                Ok(()) if st.quirks.delete_is_noop(id) => Ok(()),
                Ok(()) => st.delete_user(id),
                Err(r) => Err(r),
            };
            match outcome {
                Ok(()) => (StatusCode::OK, ctx.ok::<Value>(kind, &[])),
                Err(r) => refused(r),
            }
        }
        Route::PolicyMapping(id) => {
            let policies = match parse_policy_mapping(ctx.body) {
                Ok(p) => p,
                Err(msg) => {
                    return refused(SpotRefusal {
                        code: "INVALID_REQUEST",
                        message: msg,
                        field: Some("policies"),
                    })
                }
            };
            match st.set_policies(id, policies) {
                Ok(()) => (StatusCode::OK, ctx.ok::<Value>(kind, &[])),
                Err(r) => refused(r),
            }
        }
        Route::CreateUser => {
            let v: Value = match serde_json::from_slice(ctx.body) {
                Ok(v) => v,
                Err(e) => {
                    return refused(SpotRefusal {
                        code: "INVALID_REQUEST",
                        message: format!("The request body is not valid JSON: {e}"),
                        field: None,
                    })
                }
            };
            let Some(obj) = v.as_object() else {
                return refused(SpotRefusal {
                    code: "INVALID_REQUEST",
                    message: "The request body must be a JSON object".into(),
                    field: None,
                });
            };
            let s = |k: &str| obj.get(k).and_then(Value::as_str);
            let generate = query_get(&ctx.query, "generateToken")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let org = st.organization_id;
            if let Some(password) = s("password") {
                st.received_passwords.push(password.to_string());
            }
            match st.create_user(
                s("firstName"),
                s("lastName"),
                s("email"),
                s("password"),
                s("role"),
            ) {
                Ok(rec) => {
                    let created = rec.user.user_id.clone();
                    st.quirks.created(&created);
                    let Some(rec) = st.get(&created) else {
                        return refused(SpotRefusal {
                            code: "INTERNAL_ERROR",
                            message: "created user vanished".into(),
                            field: None,
                        });
                    };
                    let u = &rec.user;
                    let item = CreatedItem {
                        user_id: &u.user_id,
                        id: rec.legacy_id,
                        first_name: &u.first_name,
                        last_name: &u.last_name,
                        display_name: format!("{} {}", u.first_name, u.last_name),
                        email: &u.email,
                        organization_id: org,
                        personal_access_token: generate.then(|| random_hex(64)),
                    };
                    (StatusCode::OK, ctx.ok(kind, &[item]))
                }
                Err(r) => refused(r),
            }
        }
    }
}

fn parse_policy_mapping(body: &[u8]) -> Result<Vec<(String, Vec<String>)>, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("The request body is not valid JSON: {e}"))?;
    let list = v
        .get("policies")
        .and_then(Value::as_array)
        .ok_or("policies must be an array")?;
    let mut out = Vec::with_capacity(list.len());
    for p in list {
        let id = p
            .get("policyId")
            .and_then(Value::as_str)
            .ok_or("every policy needs a string policyId")?;
        let accounts = match p.get("accountIds") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or("accountIds must be strings")
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err("accountIds must be an array".into()),
        };
        out.push((id.to_string(), accounts));
    }
    Ok(out)
}

/// `GET /setup/organization/user` item. Programmatic users have no email: the emulator sends
/// an empty string (undocumented; the reference only says the list includes them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgUserItem<'a> {
    user_id: &'a str,
    username: String,
    #[serde(rename = "type")]
    kind: &'a str,
    email: &'a str,
    mfa: bool,
    group_names: [&'a str; 0],
}

fn username(rec: &UserRec) -> String {
    let u = &rec.user;
    if u.kind == "programmatic" || u.last_name.is_empty() {
        u.first_name.clone()
    } else {
        format!("{} {}", u.first_name, u.last_name)
    }
}

fn org_user_item(rec: &UserRec) -> OrgUserItem<'_> {
    OrgUserItem {
        user_id: &rec.user.user_id,
        username: username(rec),
        kind: &rec.user.kind,
        email: &rec.user.email,
        mfa: rec.mfa,
        group_names: [],
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountItem<'a> {
    account_id: &'a str,
    /// A string on accounts (Go SDK type), unlike on users.
    organization_id: &'a str,
    name: &'a str,
    created_at: &'a str,
}

#[derive(Serialize)]
struct Statement {
    effect: &'static str,
    actions: [&'static str; 1],
    resources: [&'static str; 1],
}

#[derive(Serialize)]
struct PolicyContent {
    statements: [Statement; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyItem<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    policy_content: PolicyContent,
    created_at: &'a str,
    updated_at: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedItem<'a> {
    user_id: &'a str,
    /// Legacy integer id (deprecated).
    id: i64,
    first_name: &'a str,
    last_name: &'a str,
    display_name: String,
    email: &'a str,
    /// A JSON number on users.
    organization_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    personal_access_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyRef<'a> {
    policy_id: &'a str,
    policy_name: &'a str,
    policy_type: &'a str,
    account_ids: Vec<String>,
}

/// `GET /setup/user/{userId}` item: the OAS `getUserDetails.yaml` fields, plus `role` (the
/// organization role; not in the OAS schema but a key of the Go SDK's `User`, which decodes
/// this response; inferred). Programmatic users have no role: the key is left out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserDetail<'a> {
    user_id: &'a str,
    username: String,
    #[serde(rename = "type")]
    kind: &'a str,
    email: &'a str,
    mfa: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    role: &'a str,
    groups: [Value; 0],
    policies: Vec<PolicyRef<'a>>,
    tokens: [Value; 0],
}

/// A `"*"` mapping is shown as stored (`["*"]`), or, with the `expand_star_in_details`
/// quirk, as the accounts it covers now (docs/api-facts.md "Spot access").
fn user_detail<'a>(st: &'a SpotState, rec: &'a UserRec) -> UserDetail<'a> {
    let expand = st.quirks.expand_star_in_details;
    UserDetail {
        user_id: &rec.user.user_id,
        username: username(rec),
        kind: &rec.user.kind,
        email: &rec.user.email,
        mfa: rec.mfa,
        role: &rec.user.role,
        groups: [],
        policies: rec
            .user
            .policies
            .iter()
            .map(|(pid, accounts)| {
                let p = st.policy(pid);
                PolicyRef {
                    policy_id: pid,
                    policy_name: p.map_or("", |p| p.name.as_str()),
                    policy_type: p.map_or("ACCOUNT", |p| p.kind.as_str()),
                    account_ids: if expand {
                        st.effective_accounts(accounts)
                    } else {
                        accounts.clone()
                    },
                }
            })
            .collect(),
        tokens: [],
    }
}

fn finish(
    sim: &SpotSim,
    out: Out,
    rate: Rate,
    page: Option<PageFaultKind>,
    slow: Option<std::time::Duration>,
) -> Response {
    let (status, body) = out;
    let mut resp = Response::new(faulty_body(body, page, slow));
    *resp.status_mut() = status;
    let h: &mut HeaderMap = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&sim.clock().http_date()) {
        h.insert(header::DATE, v);
    }
    h.insert("x-ratelimit-limit", HeaderValue::from(rate.0));
    h.insert("x-ratelimit-remaining", HeaderValue::from(rate.1));
    h.insert("x-ratelimit-reset", HeaderValue::from(rate.2));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_case_insensitively() {
        assert_eq!(
            match_route(&Method::PUT, "/setup/user/u-1234abcd/PolicyMapping"),
            Some(Route::PolicyMapping("u-1234abcd".into()))
        );
        assert_eq!(
            match_route(&Method::POST, "/setup/user/"),
            Some(Route::CreateUser)
        );
        assert!(match_route(&Method::PATCH, "/setup/user/u-1").is_none());
    }
}
