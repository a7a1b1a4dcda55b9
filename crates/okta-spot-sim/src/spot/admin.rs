//! The Spot emulator's admin API under `/__admin/` (JSON, no auth, loopback only): add
//! personal and programmatic users, remove users, bulk load, faults, rate limits, state and
//! request-count inspection, the list/delete quirks, the request log, and access: accounts
//! added and removed, a user's policies and role edited by hand:
//!
//! | route | body | does |
//! |---|---|---|
//! | `GET /__admin/quirks` | | the quirks in force (`SpotQuirks`) |
//! | `DELETE /__admin/quirks` | | clears them all |
//! | `POST /__admin/quirks/duplicate` | `{"user_id"?: "u-…", "times"?: n}` | list the user (no id: every user) twice, in the next `n` list responses (no `times`: until cleared) |
//! | `POST /__admin/quirks/omit` | `{"user_id": "u-…", "times"?: n}` | leave the user out of the next `n` list responses (default 1) |
//! | `POST /__admin/quirks/lag-after-create` | `{"responses": n}` | users created from now on are not listed for `n` list responses (0: off) |
//! | `POST /__admin/quirks/noop-delete` | `{"user_id"?: "u-…", "times"?: n}` | the next `n` deletes of the user (no id: any user; no `times`: always) answer 200 and delete nothing |
//! | `POST /__admin/request-log` | `{"on": bool}` | turns the request log on or off (off by default) |
//! | `GET /__admin/request-log` | | `[{"method","path","status"}]`, oldest first |
//! | `DELETE /__admin/request-log` | | empties it |
//! | `POST /__admin/quirks/expand-star` | `{"on": bool}` | user details show a `"*"` mapping as the accounts it covers now (off: `["*"]`) |
//! | `GET /__admin/accounts` | | the organization's accounts |
//! | `POST /__admin/accounts` | `{"account_id"?: "act-…", "name"?: "…"}` | adds an account (a fresh id when none is given): `{"account_id"}`; 409 when the id exists |
//! | `DELETE /__admin/accounts/{accountId}` | | removes it; explicit mappings lose it; 404 unknown, 409 the only account |
//! | `POST /__admin/users/{userId}/policies` | `{"policy_id": "3", "account_ids": ["act-…" \| "*"]}` | a grant by hand: adds the accounts to the user's mapping of the policy, keeping the rest; 400 with Spot's code for an unknown policy or account |
//! | `DELETE /__admin/users/{userId}/policies/{policyId}` | | a removal by hand: the whole mapping of that policy; 404 when the user has none |
//! | `DELETE /__admin/users/{userId}/policies/{policyId}/accounts/{accountId}` | | a removal by hand: one account of that mapping (of a `"*"` mapping: the other current accounts stay, explicitly) |
//! | `PUT /__admin/users/{userId}/role` | `{"role": "viewer" \| "editor" \| "admin"}` | the organization role changed by hand; policies unchanged; 409 for a programmatic user |
//!
//! Admin requests are never counted and never faulted. This module must not implement object
//! semantics itself; bad bodies are a 400 and unknown users a 404, never a panic.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::state::SpotRefusal;
use super::{QuirkRule, SpotSim};
use crate::common::{admin_body, admin_error, admin_json, FaultRequest};

#[derive(Deserialize)]
struct AddUserReq {
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default = "viewer")]
    role: String,
}

fn viewer() -> String {
    "viewer".to_string()
}

#[derive(Deserialize)]
struct ProgReq {
    name: String,
}

#[derive(Deserialize)]
struct BulkReq {
    n: usize,
    email_domain: String,
}

#[derive(Deserialize)]
struct RateReq {
    route: String,
    per_minute: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OmitReq {
    user_id: String,
    #[serde(default = "one")]
    times: u64,
}

fn one() -> u64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LagReq {
    responses: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogReq {
    on: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountReq {
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantReq {
    policy_id: String,
    #[serde(default)]
    account_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleReq {
    role: String,
}

/// A refusal of a hand edit: 404 for an unknown user, otherwise 400 naming Spot's code.
fn refused(r: SpotRefusal) -> Response {
    let status = if r.code == "USER_DOESNT_EXIST" {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::BAD_REQUEST
    };
    admin_error(status, &format!("{}: {}", r.code, r.message))
}

fn ok() -> Response {
    admin_json(StatusCode::OK, &json!({"ok": true}))
}

pub(crate) fn handle(sim: &SpotSim, method: &Method, path: &str, body: &[u8]) -> Response {
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
        (&Method::GET, ["state"]) => admin_json(StatusCode::OK, &state_json(sim)),
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
        (&Method::POST, ["rate-limits"]) => {
            let req = body!(RateReq);
            sim.set_rate_limit(&req.route, req.per_minute);
            ok()
        }
        (&Method::GET, ["quirks"]) => admin_json(StatusCode::OK, &sim.quirks()),
        (&Method::DELETE, ["quirks"]) => {
            sim.clear_quirks();
            ok()
        }
        (&Method::POST, ["quirks", "duplicate"]) => {
            let req = body!(QuirkRule);
            sim.duplicate_in_list(req.user_id.as_deref(), req.times);
            ok()
        }
        (&Method::POST, ["quirks", "omit"]) => {
            let req = body!(OmitReq);
            sim.omit_from_list(&req.user_id, req.times);
            ok()
        }
        (&Method::POST, ["quirks", "lag-after-create"]) => {
            let req = body!(LagReq);
            sim.set_list_lag_after_create(req.responses);
            ok()
        }
        (&Method::POST, ["quirks", "noop-delete"]) => {
            let req = body!(QuirkRule);
            sim.noop_delete(req.user_id.as_deref(), req.times);
            ok()
        }
        (&Method::GET, ["request-log"]) => admin_json(StatusCode::OK, &sim.request_log()),
        (&Method::POST, ["request-log"]) => {
            let req = body!(LogReq);
            sim.set_request_log(req.on);
            ok()
        }
        (&Method::DELETE, ["request-log"]) => {
            sim.clear_request_log();
            ok()
        }
        (&Method::POST, ["quirks", "expand-star"]) => {
            let req = body!(LogReq);
            sim.set_expand_star_in_details(req.on);
            ok()
        }
        (&Method::GET, ["accounts"]) => admin_json(StatusCode::OK, &sim.lock().accounts),
        (&Method::POST, ["accounts"]) => {
            let req = body!(AccountReq);
            let now = sim.clock().timestamp();
            let res = sim.lock().add_account(req.account_id, &req.name, now);
            match res {
                Ok(id) => admin_json(StatusCode::OK, &json!({ "account_id": id })),
                Err(e) => admin_error(StatusCode::CONFLICT, &e),
            }
        }
        (&Method::DELETE, ["accounts", id]) => {
            let mut st = sim.lock();
            if !st.accounts.iter().any(|a| a.account_id == *id) {
                return admin_error(StatusCode::NOT_FOUND, &format!("no account {id:?}"));
            }
            match st.remove_account(id) {
                Ok(()) => ok(),
                Err(e) => admin_error(StatusCode::CONFLICT, &e),
            }
        }
        (&Method::POST, ["users", id, "policies"]) => {
            let req = body!(GrantReq);
            let res = sim.lock().grant(id, &req.policy_id, &req.account_ids);
            match res {
                Ok(()) => ok(),
                Err(r) => refused(r),
            }
        }
        (&Method::DELETE, ["users", id, "policies", policy]) => {
            revoked(sim.lock().revoke(id, policy, None), id, policy)
        }
        (&Method::DELETE, ["users", id, "policies", policy, "accounts", account]) => {
            revoked(sim.lock().revoke(id, policy, Some(account)), id, policy)
        }
        (&Method::PUT, ["users", id, "role"]) => {
            let req = body!(RoleReq);
            let res = sim.lock().set_role(id, &req.role);
            match res {
                Ok(()) => ok(),
                Err(e) if e.starts_with("no user") => admin_error(StatusCode::NOT_FOUND, &e),
                Err(e) if e.contains("programmatic") => admin_error(StatusCode::CONFLICT, &e),
                Err(e) => admin_error(StatusCode::BAD_REQUEST, &e),
            }
        }
        (&Method::GET, ["users"]) => admin_json(StatusCode::OK, &sim.users()),
        (&Method::POST, ["users"]) => {
            let req = body!(AddUserReq);
            let res = sim.lock().add_personal(
                None,
                &req.email,
                &req.first_name,
                &req.last_name,
                &req.role,
            );
            match res {
                Ok(id) => admin_json(StatusCode::OK, &json!({ "user_id": id })),
                Err(e) => admin_error(StatusCode::CONFLICT, &e),
            }
        }
        (&Method::POST, ["programmatic"]) => {
            let req = body!(ProgReq);
            let res = sim.lock().add_programmatic(&req.name, None);
            match res {
                Ok(id) => admin_json(StatusCode::OK, &json!({ "user_id": id })),
                Err(e) => admin_error(StatusCode::CONFLICT, &e),
            }
        }
        (&Method::POST, ["bulk"]) => {
            let req = body!(BulkReq);
            sim.bulk_add_users(req.n, &req.email_domain);
            ok()
        }
        (&Method::DELETE, ["users", id]) => {
            if sim.lock().remove(id) {
                ok()
            } else {
                admin_error(StatusCode::NOT_FOUND, &format!("no user {id:?}"))
            }
        }
        _ => admin_error(
            StatusCode::NOT_FOUND,
            &format!("unknown admin route {method} {path}"),
        ),
    }
}

fn revoked(res: Result<bool, SpotRefusal>, user_id: &str, policy_id: &str) -> Response {
    match res {
        Ok(true) => ok(),
        Ok(false) => admin_error(
            StatusCode::NOT_FOUND,
            &format!("user {user_id:?} has no such mapping of policy {policy_id:?}"),
        ),
        Err(r) => refused(r),
    }
}

fn state_json(sim: &SpotSim) -> Value {
    let st = sim.lock();
    json!({
        "organization_id": st.organization_id,
        "accounts": st.accounts,
        "policies": st.policies,
        "users": st.users.values().map(|r| &r.user).collect::<Vec<_>>(),
        "rate_limits": st.limits,
        "faults": st.traffic.faults(),
        "quirks": st.quirks,
        "requests": st.traffic.counts(),
    })
}
