//! The Okta emulator's admin API under `/__admin/` (JSON, no auth, loopback only): every
//! scripting operation of `OktaSim`, plus state and request-count inspection. Among them, for
//! odd data: `POST /__admin/users/{id}/status {"status": "…"}` takes any string (`""`, an
//! undocumented status such as `"ARCHIVED_FUTURE"`), and `POST /__admin/users/{id}/row-email
//! {"group"?: "name", "email": "…" | null}` makes the user's direct row (no `group`) or its row
//! through `group` embed another email, so one user id has two rows with conflicting emails.
//!
//! System Log knobs: `POST /__admin/logs {"delay_ms"?: [min, max], "duplicate"?: bool,
//! "drop"?: ["type", …], "keep"?: ["type", …], "retention_secs"?: n, "forbidden"?: bool}` (each
//! field optional, applied from then on), `GET /__admin/logs` (every retained event). More
//! changes that record events: `POST /__admin/users/{id}/activate`, `POST
//! /__admin/users/{id}/delete`, `POST
//! /__admin/users/{id}/login {"login"}`, `POST /__admin/users/{id}/leave-group {"group"}`,
//! `DELETE /__admin/groups/{name}` (the group unassigned from the app).
//!
//! Admin requests are never counted and never faulted. This module must not implement
//! object semantics itself: it parses the request and calls the same `OktaState` operations
//! the in-process scripting API uses. Unknown users are a 404, bad bodies a 400, never a panic.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::state::{OktaState, OktaUserSpec};
use super::OktaSim;
use crate::common::{admin_body, admin_error, admin_json, FaultRequest};

#[derive(Deserialize)]
struct AssignReq {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

#[derive(Deserialize)]
struct UserReq {
    user_id: String,
}

#[derive(Deserialize)]
struct RoleReq {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
struct StatusReq {
    status: String,
}

#[derive(Deserialize)]
struct EmailReq {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowEmailReq {
    #[serde(default)]
    group: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct ProfileReq {
    key: String,
    value: Value,
}

#[derive(Deserialize)]
struct LoginReq {
    login: String,
}

#[derive(Deserialize)]
struct GroupReq {
    group: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsReq {
    #[serde(default)]
    delay_ms: Option<[u64; 2]>,
    #[serde(default)]
    duplicate: Option<bool>,
    #[serde(default)]
    drop: Vec<String>,
    #[serde(default)]
    keep: Vec<String>,
    #[serde(default)]
    retention_secs: Option<u64>,
    #[serde(default)]
    forbidden: Option<bool>,
}

#[derive(Deserialize)]
struct MaxLimitReq {
    max: u32,
}

#[derive(Deserialize)]
struct BulkReq {
    n: usize,
    email_domain: String,
}

#[derive(Deserialize)]
struct RateReq {
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    per_minute: Option<u32>,
    #[serde(default)]
    enforce: Option<bool>,
}

fn ok() -> Response {
    admin_json(StatusCode::OK, &json!({"ok": true}))
}

fn no_user(key: &str) -> Response {
    admin_error(StatusCode::NOT_FOUND, &format!("no user {key:?}"))
}

/// Runs `f` on the resolved user, or answers 404.
fn on_user(sim: &OktaSim, key: &str, f: impl FnOnce(&mut OktaState, usize)) -> Response {
    let mut st = sim.lock();
    match st.resolve(key) {
        Some(i) => {
            f(&mut st, i);
            ok()
        }
        None => no_user(key),
    }
}

pub(crate) fn handle(
    sim: &OktaSim,
    method: &Method,
    path: &str,
    _query: &[(String, String)],
    body: &[u8],
) -> Response {
    let clock = *sim.clock();
    let rest = path.trim_start_matches("/__admin").trim_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    macro_rules! body {
        ($t:ty) => {
            match admin_body::<$t>(body) {
                Ok(v) => v,
                Err(r) => return r,
            }
        };
    }
    match (method, segs.as_slice()) {
        (&Method::GET, ["state"]) => admin_json(StatusCode::OK, &state_json(&sim.lock())),
        (&Method::GET, ["requests"]) => admin_json(StatusCode::OK, &sim.request_counts()),
        (&Method::POST, ["reset-counts"]) => {
            sim.reset_counts();
            ok()
        }
        (&Method::GET, ["faults"]) => admin_json(StatusCode::OK, &sim.lock().traffic.faults()),
        (&Method::POST, ["faults"]) => {
            let req = body!(FaultRequest);
            sim.set_fault(&req.route, req.fault);
            ok()
        }
        (&Method::DELETE, ["faults"]) => {
            sim.clear_faults();
            ok()
        }
        (&Method::POST, ["users"]) => {
            let spec = body!(OktaUserSpec);
            let res = sim.lock().add_user(spec, &clock);
            match res {
                Ok(id) => admin_json(StatusCode::OK, &json!({ "id": id })),
                Err(e) => admin_error(StatusCode::CONFLICT, &e),
            }
        }
        (&Method::POST, ["bulk"]) => {
            let req = body!(BulkReq);
            sim.bulk_add_assigned_users(req.n, &req.email_domain);
            ok()
        }
        (&Method::POST, ["assign"]) => {
            let req = body!(AssignReq);
            on_user(sim, &req.user_id, |st, i| match &req.group {
                Some(g) => {
                    st.assign_group(i, g, req.role.as_deref(), &clock);
                }
                None => {
                    st.assign_direct(i, req.role.as_deref(), None, &clock);
                }
            })
        }
        (&Method::POST, ["unassign"]) => {
            let req = body!(UserReq);
            on_user(sim, &req.user_id, |st, i| {
                st.unassign(i, &clock);
            })
        }
        (&Method::POST, ["role"]) => {
            let req = body!(RoleReq);
            on_user(sim, &req.user_id, |st, i| {
                let attr = st.role_attribute.clone();
                let v = req.role.map(Value::String);
                st.set_app_profile(i, &attr, v, &clock);
            })
        }
        (&Method::GET, ["logs"]) => admin_json(StatusCode::OK, &sim.log_events()),
        (&Method::POST, ["logs"]) => {
            let req = body!(LogsReq);
            let mut st = sim.lock();
            if let Some([lo, hi]) = req.delay_ms {
                st.log.delay = (Duration::from_millis(lo), Duration::from_millis(hi.max(lo)));
            }
            if let Some(d) = req.duplicate {
                st.log.duplicate = d;
            }
            for t in req.drop {
                st.log.dropped.insert(t);
            }
            for t in req.keep {
                st.log.dropped.remove(&t);
            }
            if let Some(s) = req.retention_secs {
                st.log.retention = Duration::from_secs(s);
            }
            if let Some(f) = req.forbidden {
                st.log.forbidden = f;
            }
            ok()
        }
        (&Method::DELETE, ["groups", name]) => {
            if sim.lock().unassign_group(name, &clock) {
                ok()
            } else {
                admin_error(StatusCode::NOT_FOUND, &format!("no group {name:?}"))
            }
        }
        (&Method::POST, ["max-limit"]) => {
            let req = body!(MaxLimitReq);
            sim.set_max_limit(req.max);
            ok()
        }
        (&Method::POST, ["rate-limits"]) => {
            let req = body!(RateReq);
            let mut st = sim.lock();
            if let Some(e) = req.enforce {
                st.enforce = e;
            }
            if let (Some(b), Some(n)) = (req.bucket.as_deref(), req.per_minute) {
                match st.limits.get_mut(b) {
                    Some(l) => *l = n,
                    None => {
                        return admin_error(
                            StatusCode::BAD_REQUEST,
                            &format!("unknown bucket {b:?}"),
                        )
                    }
                }
            }
            ok()
        }
        (&Method::POST, ["users", id, op]) => match *op {
            "deactivate" => on_user(sim, id, |st, i| st.deactivate(i, &clock)),
            "reactivate" | "activate" => on_user(sim, id, |st, i| st.reactivate(i, &clock)),
            "suspend" => on_user(sim, id, |st, i| st.suspend(i, &clock)),
            "delete" => on_user(sim, id, |st, i| st.delete_user(i, &clock)),
            "unsuspend" => on_user(sim, id, |st, i| st.unsuspend(i, &clock)),
            "login" => {
                let req = body!(LoginReq);
                let mut st = sim.lock();
                let Some(i) = st.resolve(id) else {
                    return no_user(id);
                };
                match st.set_login(i, &req.login, &clock) {
                    Ok(()) => ok(),
                    Err(e) => admin_error(StatusCode::CONFLICT, &e),
                }
            }
            "leave-group" => {
                let req = body!(GroupReq);
                let mut st = sim.lock();
                let Some(i) = st.resolve(id) else {
                    return no_user(id);
                };
                if st.remove_from_group(i, &req.group, &clock) {
                    ok()
                } else {
                    admin_error(
                        StatusCode::NOT_FOUND,
                        &format!("user {id:?} is not a member of {:?}", req.group),
                    )
                }
            }
            "status" => {
                let req = body!(StatusReq);
                on_user(sim, id, |st, i| st.set_status(i, &req.status, &clock))
            }
            "app-status" => {
                let req = body!(StatusReq);
                on_user(sim, id, |st, i| {
                    st.set_app_user_status(i, &req.status, &clock)
                })
            }
            "email" => {
                let req = body!(EmailReq);
                on_user(sim, id, |st, i| st.set_email(i, &req.email, &clock))
            }
            "row-email" => {
                let req = body!(RowEmailReq);
                let mut st = sim.lock();
                let Some(i) = st.resolve(id) else {
                    return no_user(id);
                };
                if st.set_row_email(i, req.group.as_deref(), req.email.as_deref()) {
                    ok()
                } else {
                    admin_error(
                        StatusCode::NOT_FOUND,
                        &format!("user {id:?} has no such app-user row"),
                    )
                }
            }
            "app-profile" => {
                let req = body!(ProfileReq);
                on_user(sim, id, |st, i| {
                    st.set_app_profile(i, &req.key, Some(req.value), &clock)
                })
            }
            _ => admin_error(
                StatusCode::NOT_FOUND,
                &format!("unknown user operation {op:?}"),
            ),
        },
        _ => admin_error(
            StatusCode::NOT_FOUND,
            &format!("unknown admin route {method} {path}"),
        ),
    }
}

fn state_json(st: &OktaState) -> Value {
    let users: Vec<Value> = st
        .users
        .iter()
        .filter(|u| !u.deleted)
        .map(|u| {
            json!({
                "id": u.id, "status": u.status, "login": u.login, "email": u.email,
                "first_name": u.first_name, "last_name": u.last_name,
                "groups": u.memberships.iter().map(|(g, _)| g).collect::<Vec<_>>(),
            })
        })
        .collect();
    let grants: Vec<Value> = st
        .grants
        .values()
        .map(|g| {
            json!({
                "user_id": st.users[g.user].id, "scope": g.scope, "group": g.group,
                "status": g.status, "profile": g.profile, "embedded_email": g.embedded_email,
            })
        })
        .collect();
    json!({
        "org_name": st.org_name,
        "app_id": st.app_id,
        "role_attribute": st.role_attribute,
        "users": users,
        "assignments": grants,
        "groups": st.groups,
        "max_limit": st.max_limit,
        "rate_limits": st.limits,
        "enforce_rate_limits": st.enforce,
        "faults": st.traffic.faults(),
        "system_log": st.log.knobs_json(),
        "requests": st.traffic.counts(),
    })
}
