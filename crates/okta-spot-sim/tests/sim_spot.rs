//! Contract tests of the Spot emulator against docs/api-facts.md ("Emulator contract: Spot"),
//! over real HTTP on 127.0.0.1:0.

use std::collections::HashSet;

use okta_spot_sim::{Burst429, Emulators, FailSpec, Fault, Fixture, SpotSim};
use serde_json::{json, Value};

async fn demo() -> Emulators {
    Emulators::start_local(Fixture::demo())
        .await
        .expect("emulators start")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn call(
    s: &SpotSim,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client()
        .request(method, format!("{}{}", s.url(), path))
        .header("Authorization", format!("Bearer {}", s.token()))
        .header("Content-Type", "application/json");
    if let Some(b) = body {
        req = req.body(serde_json::to_vec(&b).unwrap());
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("every Spot response is JSON ({e}): {bytes:?}"));
    (status, headers, v)
}

async fn get(s: &SpotSim, path: &str) -> (u16, Value) {
    let (st, _, v) = call(s, reqwest::Method::GET, path, None).await;
    (st, v)
}

fn assert_envelope(v: &Value, code: u16, kind: &str) {
    assert!(v["request"]["id"].is_string(), "{v}");
    assert!(v["request"]["url"].is_string());
    assert!(v["request"]["method"].is_string());
    assert!(v["request"]["timestamp"].is_string());
    assert_eq!(v["response"]["status"]["code"], code);
    assert!(v["response"]["status"]["message"].is_string());
    assert_eq!(v["response"]["kind"], kind);
    assert!(v["response"]["items"].is_array());
    assert_eq!(
        v["response"]["count"].as_u64().unwrap() as usize,
        v["response"]["items"].as_array().unwrap().len()
    );
}

fn error_code(v: &Value) -> &str {
    v["response"]["errors"][0]["code"].as_str().unwrap_or("")
}

fn new_user(email: &str) -> Value {
    json!({"firstName": "New", "lastName": "User", "email": email, "password": "S3cure!pass", "role": "viewer"})
}

#[tokio::test]
async fn org_user_list_envelope_programmatic_and_mfa_bool() {
    let emu = demo().await;
    let s = &emu.spot;
    let (status, v) = get(s, "/setup/organization/user").await;
    assert_eq!(status, 200);
    assert_envelope(&v, 200, "spotinst:setup:organization:user");
    assert_eq!(v["request"]["url"], "/setup/organization/user");
    assert_eq!(v["request"]["method"], "GET");
    let items = v["response"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    for it in items {
        assert!(it["mfa"].is_boolean(), "mfa must be a JSON bool: {it}");
        assert!(it["groupNames"].is_array());
        assert!(it.get("userName").is_none());
        assert!(it["username"].is_string());
    }
    let prog: Vec<&Value> = items
        .iter()
        .filter(|i| i["type"] == "programmatic")
        .collect();
    assert_eq!(prog.len(), 1);
    assert!(prog[0]["userId"].as_str().unwrap().starts_with("pu-"));
    assert_eq!(prog[0]["username"], "ci-bot");
    let owner = items
        .iter()
        .find(|i| i["email"] == "owner@example.com")
        .unwrap();
    assert_eq!(owner["type"], "personal");
    assert_eq!(owner["username"], "Olive Owner");
}

#[tokio::test]
async fn create_user_then_read_and_delete() {
    let emu = demo().await;
    let s = &emu.spot;
    let (status, _, v) = call(
        s,
        reqwest::Method::POST,
        "/setup/user?generateToken=true",
        Some(new_user("Gina@Example.com")),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_envelope(&v, 200, "spotinst:setup:user");
    let item = &v["response"]["items"][0];
    let id = item["userId"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("u-") && id.len() == 10 && id[2..].chars().all(|c| c.is_ascii_hexdigit())
    );
    assert!(item["id"].is_i64());
    assert!(
        item["organizationId"].is_u64(),
        "organizationId is a number on users"
    );
    assert_eq!(item["displayName"], "New User");
    assert_eq!(item["email"], "Gina@Example.com");
    assert!(item["personalAccessToken"].is_string());

    let (_, _, v) = call(
        s,
        reqwest::Method::POST,
        "/setup/user?generateToken=false",
        Some(new_user("h@example.com")),
    )
    .await;
    assert!(v["response"]["items"][0]
        .get("personalAccessToken")
        .is_none());

    // A viewer is linked to the default account.
    let (status, v) = get(s, &format!("/setup/user/{id}")).await;
    assert_eq!(status, 200);
    assert_envelope(&v, 200, "spotinst:setup:access:user");
    let detail = &v["response"]["items"][0];
    assert!(detail["mfa"].is_boolean());
    assert_eq!(
        detail["policies"],
        json!([{"policyId": "3", "policyName": "Account Viewer", "policyType": "ACCOUNT", "accountIds": ["act-0b18f123"]}])
    );
    assert_eq!(s.user_by_email("gina@example.com").unwrap().user_id, id);

    let (status, _, v) = call(
        s,
        reqwest::Method::DELETE,
        &format!("/setup/user/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "DELETE answers 200 with a JSON body");
    assert_eq!(v["response"]["status"]["code"], 200);
    assert_eq!(v["response"]["count"], 0);
    assert!(s.user_by_email("gina@example.com").is_none());

    let (status, v) = get(s, &format!("/setup/user/{id}")).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&v), "USER_DOESNT_EXIST");
    let (status, _, v) = call(
        s,
        reqwest::Method::DELETE,
        &format!("/setup/user/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&v), "USER_DOESNT_EXIST");
    assert_eq!(s.write_requests(), 4);
}

#[tokio::test]
async fn create_user_validation_errors() {
    let emu = demo().await;
    let s = &emu.spot;
    let cases = [
        (
            json!({"firstName": "A+B", "lastName": "C", "email": "x@example.com", "password": "S3cure!pass", "role": "viewer"}),
            "INVALID_NAME",
            Some("firstName"),
        ),
        (
            json!({"firstName": "A", "lastName": "C=D", "email": "x@example.com", "password": "S3cure!pass", "role": "viewer"}),
            "INVALID_NAME",
            Some("lastName"),
        ),
        (
            json!({"firstName": "A", "lastName": "C", "email": "nope", "password": "S3cure!pass", "role": "viewer"}),
            "INVALID_EMAIL",
            Some("email"),
        ),
        (
            json!({"firstName": "A", "lastName": "C", "email": "x@example.com", "password": "password", "role": "viewer"}),
            "INVALID_PASSWORD",
            Some("password"),
        ),
        (
            json!({"firstName": "A", "lastName": "C", "email": "x@example.com", "password": "Sh0rt!", "role": "viewer"}),
            "INVALID_PASSWORD",
            Some("password"),
        ),
        (
            json!({"firstName": "A", "lastName": "C", "email": "x@example.com", "password": "S3cure!pass", "role": "owner"}),
            "INVALID_ROLE",
            Some("role"),
        ),
        (
            json!({"firstName": null, "lastName": "C", "email": "x@example.com", "password": "S3cure!pass", "role": "viewer"}),
            "INVALID_NAME",
            Some("firstName"),
        ),
        (
            new_user("FRANK@example.com"),
            "USER_ALREADY_EXISTS",
            Some("email"),
        ),
    ];
    for (body, code, field) in cases {
        let (status, _, v) =
            call(s, reqwest::Method::POST, "/setup/user", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(v["response"]["status"]["code"], 400);
        assert_eq!(error_code(&v), code, "{body}");
        assert!(v["response"]["errors"][0]["message"].is_string());
        assert_eq!(v["response"]["errors"][0]["field"].as_str(), field);
    }
    let r = client()
        .post(format!("{}/setup/user", s.url()))
        .header("Authorization", format!("Bearer {}", s.token()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(s.users().len(), 4, "nothing was created");
}

#[tokio::test]
async fn last_admin_cannot_be_deleted() {
    let emu = demo().await;
    let s = &emu.spot;
    let (status, _, v) = call(s, reqwest::Method::DELETE, "/setup/user/u-0a0e1b2c", None).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&v), "CANT_DELETE_LAST_ADMIN");
    s.add_user("second@example.com", "Sec", "Ond", "admin");
    let (status, _, _) = call(s, reqwest::Method::DELETE, "/setup/user/u-0a0e1b2c", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn policy_mapping_replaces_direct_policies() {
    let emu = demo().await;
    let s = &emu.spot;
    let carol = s.user_by_email("carol@example.com").unwrap().user_id;
    let viewer = s.policy_id_by_name("Account Viewer").unwrap();
    let editor = s.policy_id_by_name("Account Editor").unwrap();
    let accounts = s.account_ids();
    let body = json!({"policies": [{"policyId": editor, "accountIds": [accounts[1]]}]});
    let (status, _, v) = call(
        s,
        reqwest::Method::PUT,
        &format!("/setup/user/{carol}/policyMapping"),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["response"]["count"], 0);
    // Java's path casing and a stray accountId are accepted.
    let body = json!({"policies": [{"accountIds": accounts, "policyId": viewer}]});
    let path = format!(
        "/setup/user/{carol}/PolicyMapping?accountId={}",
        accounts[0]
    );
    let (status, _, _) = call(s, reqwest::Method::PUT, &path, Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(
        s.user_by_email("carol@example.com").unwrap().policies,
        vec![(viewer.clone(), accounts.clone())]
    );
    assert_eq!(s.request_count("PUT /setup/user/{userId}/policyMapping"), 2);

    let (status, _, v) = call(
        s,
        reqwest::Method::PUT,
        &format!("/setup/user/{carol}/policyMapping"),
        Some(json!({"policies": [{"policyId": "pol-nope", "accountIds": []}]})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&v), "POLICY_DOESNT_EXIST");
    let (status, _, v) = call(
        s,
        reqwest::Method::PUT,
        &format!("/setup/user/{carol}/policyMapping"),
        Some(json!({"policies": [{"policyId": viewer, "accountIds": ["act-nope"]}]})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&v), "ACCOUNT_DOESNT_EXIST");
    assert_eq!(
        s.user_by_email("carol@example.com").unwrap().policies,
        vec![(viewer, accounts)]
    );
}

#[tokio::test]
async fn accounts_and_policies() {
    let emu = demo().await;
    let s = &emu.spot;
    let (_, v) = get(s, "/setup/account").await;
    assert_envelope(&v, 200, "spotinst:setup:account");
    let accounts = v["response"]["items"].as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(
        accounts[0]["organizationId"], "606079861123",
        "a string on accounts"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(accounts[0]["createdAt"].as_str().unwrap()).is_ok()
    );
    let (_, v) = get(s, "/setup/organization/policy").await;
    assert_envelope(&v, 200, "spotinst:setup:organization:policy");
    let names: HashSet<(&str, &str)> = v["response"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    assert!(names.contains(&("3", "Account Viewer")));
    assert!(names.iter().any(|(_, n)| *n == "Admin"));
    assert!(names.iter().any(|(_, n)| *n == "Account Editor"));
}

#[tokio::test]
async fn unauthorized_is_an_envelope() {
    let emu = demo().await;
    let s = &emu.spot;
    for auth in [None, Some("Bearer wrong".to_string()), Some(s.token())] {
        let mut req = client().get(format!("{}/setup/organization/user", s.url()));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("x-ratelimit-limit"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["response"]["status"]["code"], 401);
        assert_eq!(error_code(&v), "UNAUTHORIZED");
    }
}

#[tokio::test]
async fn rate_limit_sliding_window_and_429_body() {
    let emu = demo().await;
    let s = &emu.spot;
    let (_, h, _) = call(s, reqwest::Method::GET, "/setup/account", None).await;
    assert_eq!(h["x-ratelimit-limit"], "100000");
    assert_eq!(h["x-ratelimit-remaining"], "99999");
    assert_eq!(h["x-ratelimit-reset"], "0");
    s.set_rate_limit("GET /setup/account", 2);
    let (status, h, _) = call(s, reqwest::Method::GET, "/setup/account", None).await;
    assert_eq!(status, 200);
    assert_eq!(h["x-ratelimit-remaining"], "0");
    let (status, h, v) = call(s, reqwest::Method::GET, "/setup/account", None).await;
    assert_eq!(status, 429);
    assert_eq!(h["x-ratelimit-remaining"], "0");
    let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&reset));
    assert_eq!(v["response"]["status"]["code"], 429);
    assert_eq!(v["response"]["data"], "Rate limit exceeded");
    assert!(v["response"].get("errors").is_none());
    // Other routes are not affected.
    assert_eq!(get(s, "/setup/organization/policy").await.0, 200);
}

#[tokio::test]
async fn faults_fail_nth_and_burst() {
    let emu = demo().await;
    let s = &emu.spot;
    s.set_fault(
        "POST /setup/user",
        Fault {
            fail: Some(FailSpec {
                status: 500,
                nth: 2,
                times: Some(1),
            }),
            ..Fault::default()
        },
    );
    let post = |e: &str| call(s, reqwest::Method::POST, "/setup/user", Some(new_user(e)));
    assert_eq!(post("a1@example.com").await.0, 200);
    let (status, _, v) = post("a2@example.com").await;
    assert_eq!(status, 500);
    assert_eq!(error_code(&v), "INTERNAL_ERROR");
    assert!(s.user_by_email("a2@example.com").is_none());
    assert_eq!(post("a3@example.com").await.0, 200);

    s.set_fault(
        "GET /setup/organization/user",
        Fault {
            burst_429: Some(Burst429 {
                after: 0,
                count: 1,
                reset_secs: 9,
            }),
            ..Fault::default()
        },
    );
    let (status, h, v) = call(s, reqwest::Method::GET, "/setup/organization/user", None).await;
    assert_eq!(status, 429);
    assert_eq!(h["x-ratelimit-reset"], "9");
    assert_eq!(v["response"]["data"], "Rate limit exceeded");
    assert_eq!(get(s, "/setup/organization/user").await.0, 200);
    s.clear_faults();
}

#[tokio::test]
async fn admin_api_round_trip() {
    let emu = demo().await;
    let s = &emu.spot;
    let c = client();
    let admin = |p: &str| format!("{}/__admin/{p}", s.url());
    let v: Value = c
        .post(admin("users"))
        .json(&json!({"email": "zed@example.com", "first_name": "Zed", "last_name": "Z", "role": "editor"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let zed = v["user_id"].as_str().unwrap().to_string();
    let v: Value = c
        .post(admin("programmatic"))
        .json(&json!({"name": "deployer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["user_id"].as_str().unwrap().starts_with("pu-"));
    let r = c.delete(admin("users/u-0a0e1b2c")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "out-of-band removal skips the last-admin rule"
    );
    let r = c.delete(admin("users/u-nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let state: Value = c
        .get(admin("state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = state["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&zed.as_str()));
    assert!(!ids.contains(&"u-0a0e1b2c"));
    assert_eq!(s.total_requests(), 0, "admin calls are not counted");
    c.post(admin("rate-limits"))
        .json(&json!({"route": "GET /setup/account", "per_minute": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(get(s, "/setup/account").await.0, 200);
    assert_eq!(get(s, "/setup/account").await.0, 429);
    let counts: Value = c
        .get(admin("requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts, json!({"GET /setup/account": 2}));

    s.bulk_add_users(1000, "bulk.example");
    let (_, v) = get(s, "/setup/organization/user").await;
    assert_eq!(v["response"]["count"], 1000 + 5);
    emu.shutdown().await;
}

fn listed_ids(v: &Value) -> Vec<String> {
    v["response"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userId"].as_str().unwrap().to_string())
        .collect()
}

async fn list_ids(s: &SpotSim) -> Vec<String> {
    let (status, v) = get(s, "/setup/organization/user").await;
    assert_eq!(status, 200);
    assert_envelope(&v, 200, "spotinst:setup:organization:user");
    listed_ids(&v)
}

async fn create(s: &SpotSim, email: &str) -> (u16, Value) {
    let (st, _, v) = call(
        s,
        reqwest::Method::POST,
        "/setup/user",
        Some(new_user(email)),
    )
    .await;
    (st, v)
}

async fn delete(s: &SpotSim, id: &str) -> u16 {
    call(
        s,
        reqwest::Method::DELETE,
        &format!("/setup/user/{id}"),
        None,
    )
    .await
    .0
}

#[tokio::test]
async fn quirk_duplicate_lists_one_user_or_every_user_twice() {
    let emu = demo().await;
    let s = &emu.spot;
    let plain = list_ids(s).await;
    let ann = s.add_user("ann@example.com", "Ann", "A", "viewer");
    s.duplicate_in_list(Some(&ann), Some(1));
    let ids = list_ids(s).await;
    assert_eq!(ids.len(), plain.len() + 2, "count counts entries: {ids:?}");
    assert_eq!(ids.iter().filter(|i| **i == ann).count(), 2);
    assert_eq!(ids.last(), Some(&ann), "the repeat comes at the end");
    assert_eq!(list_ids(s).await.len(), plain.len() + 1, "once only");

    s.duplicate_in_list(None, None);
    for _ in 0..2 {
        let ids = list_ids(s).await;
        assert_eq!(ids.len(), 2 * (plain.len() + 1));
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), plain.len() + 1);
    }
    s.clear_quirks();
    assert_eq!(list_ids(s).await.len(), plain.len() + 1);
}

#[tokio::test]
async fn quirk_omit_leaves_a_user_out_of_the_next_lists_only() {
    let emu = demo().await;
    let s = &emu.spot;
    let ann = s.add_user("ann@example.com", "Ann", "A", "viewer");
    s.omit_from_list(&ann, 2);
    assert!(!list_ids(s).await.contains(&ann));
    assert!(!list_ids(s).await.contains(&ann));
    assert!(list_ids(s).await.contains(&ann));
    // It exists meanwhile.
    s.omit_from_list(&ann, 1);
    let (st, v) = get(s, &format!("/setup/user/{ann}")).await;
    assert_eq!(
        (st, v["response"]["items"][0]["userId"].as_str()),
        (200, Some(ann.as_str()))
    );
    let (st, v) = create(s, "ann@example.com").await;
    assert_eq!((st, error_code(&v)), (400, "USER_ALREADY_EXISTS"));
    assert!(!list_ids(s).await.contains(&ann));
}

#[tokio::test]
async fn quirk_lag_after_create_hides_new_users_that_still_exist() {
    let emu = demo().await;
    let s = &emu.spot;
    let before = s.add_user("before@example.com", "Be", "Fore", "viewer");
    s.set_list_lag_after_create(2);
    let (st, v) = create(s, "new@example.com").await;
    assert_eq!(st, 200);
    let new = v["response"]["items"][0]["userId"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = list_ids(s).await;
    assert!(ids.contains(&before) && !ids.contains(&new), "{ids:?}");
    // The lagging user exists: a second create of its email is refused as a duplicate.
    let (st, v) = create(s, "NEW@example.com").await;
    assert_eq!((st, error_code(&v)), (400, "USER_ALREADY_EXISTS"));
    assert!(s.user_by_email("new@example.com").is_some());
    assert!(!list_ids(s).await.contains(&new));
    assert!(list_ids(s).await.contains(&new), "listed after 2 responses");
    // Off again: the next create is listed at once.
    s.set_list_lag_after_create(0);
    let (_, v) = create(s, "later@example.com").await;
    let later = v["response"]["items"][0]["userId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(list_ids(s).await.contains(&later));
}

#[tokio::test]
async fn quirk_noop_delete_answers_200_and_keeps_the_user() {
    let emu = demo().await;
    let s = &emu.spot;
    let ann = s.add_user("ann@example.com", "Ann", "A", "viewer");
    let bob = s.add_user("bob@example.com", "Bob", "B", "viewer");
    // Once, for one user.
    s.noop_delete(Some(&ann), Some(1));
    assert_eq!(delete(s, &bob).await, 200);
    assert!(s.user(&bob).is_none(), "other users are deleted as usual");
    let (st, _, v) = call(
        s,
        reqwest::Method::DELETE,
        &format!("/setup/user/{ann}"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["response"]["status"]["code"], 200);
    assert!(s.user(&ann).is_some(), "the no-op delete left the user");
    assert!(list_ids(s).await.contains(&ann));
    assert_eq!(delete(s, &ann).await, 200);
    assert!(s.user(&ann).is_none(), "the second delete works");
    // Always, for any user; refusals stay refusals.
    let cid = s.add_user("cid@example.com", "Cid", "C", "viewer");
    s.noop_delete(None, None);
    for _ in 0..3 {
        assert_eq!(delete(s, &cid).await, 200);
    }
    assert!(s.user(&cid).is_some());
    assert_eq!(delete(s, "u-00000000").await, 400);
    s.clear_quirks();
    assert_eq!(delete(s, &cid).await, 200);
    assert!(s.user(&cid).is_none());
}

#[tokio::test]
async fn quirks_and_request_log_over_the_admin_api() {
    let emu = demo().await;
    let s = &emu.spot;
    let c = client();
    let admin = |p: &str| format!("{}/__admin/{p}", s.url());
    let post = |p: &str, body: Value| {
        let req = c.post(admin(p)).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let ann = s.add_user("ann@example.com", "Ann", "A", "viewer");
    let bob = s.add_user("bob@example.com", "Bob", "B", "viewer");
    assert_eq!(post("request-log", json!({"on": true})).await, 200);
    assert_eq!(
        post("quirks/duplicate", json!({"user_id": ann, "times": 1})).await,
        200
    );
    assert_eq!(post("quirks/omit", json!({"user_id": bob})).await, 200);
    assert_eq!(
        post("quirks/lag-after-create", json!({"responses": 1})).await,
        200
    );
    assert_eq!(
        post("quirks/noop-delete", json!({"user_id": ann})).await,
        200
    );
    assert_eq!(
        post("quirks/omit", json!({"times": 1})).await,
        400,
        "user_id is required"
    );
    assert_eq!(post("quirks/duplicate", json!({"bogus": 1})).await, 400);
    let q: Value = c
        .get(admin("quirks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["omit"][&bob], 1);
    assert_eq!(q["lag_after_create"], 1);
    assert_eq!(q["noop_delete"][0]["times"], Value::Null);

    let ids = list_ids(s).await;
    assert_eq!(ids.iter().filter(|i| **i == ann).count(), 2);
    assert!(!ids.contains(&bob));
    assert_eq!(delete(s, &ann).await, 200);
    assert!(s.user(&ann).is_some());

    let log: Value = c
        .get(admin("request-log"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        log,
        json!([
            {"method": "GET", "path": "/setup/organization/user", "status": 200},
            {"method": "DELETE", "path": format!("/setup/user/{ann}"), "status": 200},
        ]),
        "admin calls are not logged"
    );
    assert_eq!(s.request_log().len(), 2);
    assert_eq!(
        c.delete(admin("request-log"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(s.request_log().is_empty());
    assert_eq!(
        c.delete(admin("quirks")).send().await.unwrap().status(),
        200
    );
    assert_eq!(s.quirks(), Default::default());
    assert_eq!(delete(s, &ann).await, 200);
    assert!(s.user(&ann).is_none());
    assert_eq!(s.request_log().len(), 1);
    assert_eq!(post("request-log", json!({"on": false})).await, 200);
    list_ids(s).await;
    assert!(s.request_log().is_empty(), "off drops the log");
}

// ----- access: accounts over time, `"*"`, user details, hand edits -----

const CAROL: &str = "u-c4a701d5";
const FRANK: &str = "u-f7a9b3e1";
const ACT_TEST: &str = "act-0b18f123";
const ACT_PROD: &str = "act-57765123";

async fn admin_call(
    s: &SpotSim,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client().request(method, format!("{}/__admin/{path}", s.url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("admin request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("admin answers JSON"))
}

async fn put_mapping(s: &SpotSim, user_id: &str, policies: Value) -> (u16, Value) {
    let (status, _, v) = call(
        s,
        reqwest::Method::PUT,
        &format!("/setup/user/{user_id}/policyMapping"),
        Some(json!({ "policies": policies })),
    )
    .await;
    (status, v)
}

/// The `policies` of `GET /setup/user/{id}`, as `(policyId, accountIds)`.
async fn detail_policies(s: &SpotSim, user_id: &str) -> Vec<(String, Vec<String>)> {
    let (status, v) = get(s, &format!("/setup/user/{user_id}")).await;
    assert_eq!(status, 200, "{v}");
    v["response"]["items"][0]["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let accounts = p["accountIds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            (p["policyId"].as_str().unwrap().to_string(), accounts)
        })
        .collect()
}

async fn listed_accounts(s: &SpotSim) -> Vec<String> {
    let (status, v) = get(s, "/setup/account").await;
    assert_eq!(status, 200);
    assert_envelope(&v, 200, "spotinst:setup:account");
    v["response"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["accountId"].as_str().unwrap().to_string())
        .collect()
}

fn pair(policy: &str, accounts: &[&str]) -> (String, Vec<String>) {
    (
        policy.to_string(),
        accounts.iter().map(|a| a.to_string()).collect(),
    )
}

#[tokio::test]
async fn accounts_are_added_and_removed_through_the_admin_api() {
    let emu = demo().await;
    let s = &emu.spot;
    assert_eq!(listed_accounts(s).await, [ACT_TEST, ACT_PROD]);

    let (status, v) = admin_call(
        s,
        reqwest::Method::POST,
        "accounts",
        Some(json!({"name": "staging"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let staging = v["account_id"].as_str().unwrap().to_string();
    assert!(
        staging.starts_with("act-") && staging.len() == 12,
        "{staging}"
    );
    let (status, v) = admin_call(
        s,
        reqwest::Method::POST,
        "accounts",
        Some(json!({"account_id": "act-0000beef", "name": "dev"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["account_id"], "act-0000beef");
    assert_eq!(
        listed_accounts(s).await,
        [ACT_TEST, ACT_PROD, &staging, "act-0000beef"]
    );
    let (_, v) = get(s, "/setup/account").await;
    let added = &v["response"]["items"][2];
    assert_eq!(added["name"], "staging");
    assert_eq!(added["organizationId"], "606079861123");
    assert!(chrono::DateTime::parse_from_rfc3339(added["createdAt"].as_str().unwrap()).is_ok());

    let (status, _) = admin_call(
        s,
        reqwest::Method::POST,
        "accounts",
        Some(json!({"account_id": ACT_PROD})),
    )
    .await;
    assert_eq!(status, 409, "an existing id is refused");
    let (status, _) = admin_call(
        s,
        reqwest::Method::POST,
        "accounts",
        Some(json!({"nme": "typo"})),
    )
    .await;
    assert_eq!(status, 400, "unknown fields are refused");

    let (status, _) = admin_call(
        s,
        reqwest::Method::DELETE,
        &format!("accounts/{staging}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        listed_accounts(s).await,
        [ACT_TEST, ACT_PROD, "act-0000beef"]
    );
    let (status, _) = admin_call(s, reqwest::Method::DELETE, "accounts/act-nope", None).await;
    assert_eq!(status, 404);
    let (status, _) = admin_call(s, reqwest::Method::GET, "accounts", None).await;
    assert_eq!(status, 200);

    // The organization keeps one account.
    s.remove_account(ACT_PROD);
    s.remove_account("act-0000beef");
    let (status, v) = admin_call(
        s,
        reqwest::Method::DELETE,
        &format!("accounts/{ACT_TEST}"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(listed_accounts(s).await, [ACT_TEST]);
    assert_eq!(
        s.request_count("GET /setup/account"),
        5,
        "admin calls are not counted"
    );
}

#[tokio::test]
async fn a_star_mapping_covers_accounts_added_later_and_an_explicit_one_does_not() {
    let emu = demo().await;
    let s = &emu.spot;
    let viewer = s.policy_id_by_name("Account Viewer").unwrap();
    let (status, v) =
        put_mapping(s, CAROL, json!([{"policyId": viewer, "accountIds": ["*"]}])).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = put_mapping(
        s,
        FRANK,
        json!([{"policyId": viewer, "accountIds": [ACT_TEST, ACT_PROD]}]),
    )
    .await;
    assert_eq!(status, 200, "{v}");

    let new = s.add_account("onboarded later");
    // What each can see now.
    assert_eq!(
        s.effective_policies(CAROL).unwrap(),
        [pair(&viewer, &[ACT_TEST, ACT_PROD, &new])]
    );
    assert_eq!(
        s.effective_policies(FRANK).unwrap(),
        [pair(&viewer, &[ACT_TEST, ACT_PROD])]
    );
    // What the details show: `"*"` as stored, explicit ids as stored.
    assert_eq!(detail_policies(s, CAROL).await, [pair(&viewer, &["*"])]);
    assert_eq!(
        detail_policies(s, FRANK).await,
        [pair(&viewer, &[ACT_TEST, ACT_PROD])]
    );
    // The other reading, behind a knob: `"*"` shown as the accounts it covers now.
    let (status, _) = admin_call(
        s,
        reqwest::Method::POST,
        "quirks/expand-star",
        Some(json!({"on": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(s.quirks().expand_star_in_details);
    assert_eq!(
        detail_policies(s, CAROL).await,
        [pair(&viewer, &[ACT_TEST, ACT_PROD, &new])]
    );
    s.set_expand_star_in_details(false);
    assert_eq!(detail_policies(s, CAROL).await, [pair(&viewer, &["*"])]);

    // A removed account leaves explicit mappings; `"*"` just covers one account fewer.
    s.remove_account(ACT_PROD);
    assert_eq!(
        s.effective_policies(CAROL).unwrap(),
        [pair(&viewer, &[ACT_TEST, &new])]
    );
    assert_eq!(detail_policies(s, CAROL).await, [pair(&viewer, &["*"])]);
    assert_eq!(
        detail_policies(s, FRANK).await,
        [pair(&viewer, &[ACT_TEST])]
    );
    s.remove_account(ACT_TEST);
    assert_eq!(
        detail_policies(s, FRANK).await,
        [],
        "a mapping left with no account is dropped"
    );
    // A removed account is unknown to the PUT.
    let (status, v) = put_mapping(
        s,
        FRANK,
        json!([{"policyId": viewer, "accountIds": [ACT_TEST]}]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&v), "ACCOUNT_DOESNT_EXIST");
}

#[tokio::test]
async fn user_details_show_role_and_policies_with_the_reference_field_names() {
    let emu = demo().await;
    let s = &emu.spot;
    let viewer = s.policy_id_by_name("Account Viewer").unwrap();
    let admin = s.policy_id_by_name("Admin").unwrap();
    let (status, v) = put_mapping(
        s,
        CAROL,
        json!([{"policyId": viewer, "accountIds": [ACT_PROD]}, {"policyId": admin, "accountIds": []}]),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = get(s, &format!("/setup/user/{CAROL}")).await;
    assert_eq!(status, 200);
    assert_envelope(&v, 200, "spotinst:setup:access:user");
    assert_eq!(v["request"]["url"], format!("/setup/user/{CAROL}"));
    assert_eq!(v["response"]["count"], 1);
    let item = &v["response"]["items"][0];
    let keys: HashSet<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from([
            "userId", "username", "type", "email", "mfa", "role", "groups", "policies", "tokens"
        ])
    );
    assert_eq!(item["userId"], CAROL);
    assert_eq!(item["username"], "Carol Chen");
    assert_eq!(item["type"], "personal");
    assert_eq!(item["email"], "carol@example.com");
    assert_eq!(item["mfa"], false);
    assert_eq!(item["role"], "viewer");
    assert_eq!(
        item["policies"],
        json!([
            {"policyId": viewer, "policyName": "Account Viewer", "policyType": "ACCOUNT", "accountIds": [ACT_PROD]},
            {"policyId": admin, "policyName": "Admin", "policyType": "ORGANIZATION", "accountIds": []}
        ])
    );
    let (_, v) = get(s, "/setup/user/u-0a0e1b2c").await;
    assert_eq!(v["response"]["items"][0]["role"], "admin");
    // A programmatic user has no organization role: the key is absent.
    let (status, v) = get(s, "/setup/user/pu-5d1e2f3a").await;
    assert_eq!(status, 200);
    assert_eq!(v["response"]["items"][0]["type"], "programmatic");
    assert!(v["response"]["items"][0].get("role").is_none(), "{v}");
    // A missing user is the documented 400, never a 200 with someone else's data.
    let (status, v) = get(s, "/setup/user/u-00000000").await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&v), "USER_DOESNT_EXIST");
    assert_eq!(v["response"]["kind"], "spotinst:setup:access:user");
}

#[tokio::test]
async fn the_policy_mapping_put_replaces_the_whole_set_and_validates_every_entry() {
    let emu = demo().await;
    let s = &emu.spot;
    let viewer = s.policy_id_by_name("Account Viewer").unwrap();
    let editor = s.policy_id_by_name("Account Editor").unwrap();
    s.grant_policy(CAROL, &editor, &[ACT_PROD]);
    assert_eq!(
        detail_policies(s, CAROL).await,
        [pair(&viewer, &[ACT_TEST]), pair(&editor, &[ACT_PROD])]
    );
    // Go SDK encoding (alphabetical keys); the editor grant is not in the body: it goes.
    let (status, v) =
        put_mapping(s, CAROL, json!([{"accountIds": ["*"], "policyId": viewer}])).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(detail_policies(s, CAROL).await, [pair(&viewer, &["*"])]);
    // An empty set empties it.
    let (status, _) = put_mapping(s, CAROL, json!([])).await;
    assert_eq!(status, 200);
    assert_eq!(detail_policies(s, CAROL).await, []);

    // One bad entry refuses the whole body and changes nothing.
    let (status, _) = put_mapping(
        s,
        CAROL,
        json!([{"policyId": viewer, "accountIds": [ACT_TEST]}]),
    )
    .await;
    assert_eq!(status, 200);
    let refusals = [
        (
            json!([{"policyId": editor, "accountIds": ["*"]}, {"policyId": "pol-00000000", "accountIds": ["*"]}]),
            "POLICY_DOESNT_EXIST",
            "policyId",
        ),
        (
            json!([{"policyId": editor, "accountIds": ["*", "act-00000000"]}]),
            "ACCOUNT_DOESNT_EXIST",
            "accountIds",
        ),
        (
            json!([{"policyId": editor, "accountIds": "*"}]),
            "INVALID_REQUEST",
            "policies",
        ),
    ];
    for (body, code, field) in refusals {
        let (status, v) = put_mapping(s, CAROL, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_envelope_error(&v, code, field);
    }
    assert_eq!(
        detail_policies(s, CAROL).await,
        [pair(&viewer, &[ACT_TEST])]
    );
    let (status, v) = put_mapping(s, "u-00000000", json!([])).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&v), "USER_DOESNT_EXIST");
}

fn assert_envelope_error(v: &Value, code: &str, field: &str) {
    assert_eq!(v["response"]["status"]["code"], 400, "{v}");
    assert_eq!(error_code(v), code, "{v}");
    assert_eq!(v["response"]["errors"][0]["field"], field, "{v}");
    assert!(v["response"]["errors"][0]["message"].is_string());
}

#[tokio::test]
async fn hand_edits_of_policies_and_role_through_the_admin_api() {
    let emu = demo().await;
    let s = &emu.spot;
    s.set_request_log(true);
    let viewer = s.policy_id_by_name("Account Viewer").unwrap();
    let editor = s.policy_id_by_name("Account Editor").unwrap();
    let (status, _) = put_mapping(
        s,
        CAROL,
        json!([{"policyId": viewer, "accountIds": [ACT_TEST, ACT_PROD]}]),
    )
    .await;
    assert_eq!(status, 200);

    // An extra grant by hand is added to what the user has.
    let (status, v) = admin_call(
        s,
        reqwest::Method::POST,
        &format!("users/{CAROL}/policies"),
        Some(json!({"policy_id": editor, "account_ids": [ACT_PROD]})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        detail_policies(s, CAROL).await,
        [
            pair(&viewer, &[ACT_TEST, ACT_PROD]),
            pair(&editor, &[ACT_PROD])
        ]
    );
    // A grant on a policy the user already has adds the accounts to that mapping.
    let extra = s.add_account("extra");
    let (status, v) = admin_call(
        s,
        reqwest::Method::POST,
        &format!("users/{CAROL}/policies"),
        Some(json!({"policy_id": viewer, "account_ids": [ACT_PROD, extra]})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        detail_policies(s, CAROL).await,
        [
            pair(&viewer, &[ACT_TEST, ACT_PROD, &extra]),
            pair(&editor, &[ACT_PROD])
        ]
    );
    s.remove_account(&extra);
    // One account removed by hand.
    let (status, _) = admin_call(
        s,
        reqwest::Method::DELETE,
        &format!("users/{CAROL}/policies/{viewer}/accounts/{ACT_PROD}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        detail_policies(s, CAROL).await,
        [pair(&viewer, &[ACT_TEST]), pair(&editor, &[ACT_PROD])]
    );
    // A whole policy mapping removed by hand.
    let (status, _) = admin_call(
        s,
        reqwest::Method::DELETE,
        &format!("users/{CAROL}/policies/{viewer}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        detail_policies(s, CAROL).await,
        [pair(&editor, &[ACT_PROD])]
    );
    let (status, _) = admin_call(
        s,
        reqwest::Method::DELETE,
        &format!("users/{CAROL}/policies/{viewer}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "nothing left to remove");

    // One account removed by hand from a `"*"` mapping leaves the others, explicitly.
    s.grant_policy(FRANK, &viewer, &["*"]);
    assert!(s.revoke_policy(FRANK, &viewer, Some(ACT_TEST)));
    assert_eq!(
        detail_policies(s, FRANK).await,
        [pair(&viewer, &[ACT_PROD])]
    );

    // The organization role changed by hand shows in the details; policies stay.
    let (status, v) = admin_call(
        s,
        reqwest::Method::PUT,
        &format!("users/{CAROL}/role"),
        Some(json!({"role": "editor"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = get(s, &format!("/setup/user/{CAROL}")).await;
    assert_eq!(v["response"]["items"][0]["role"], "editor");
    assert_eq!(
        detail_policies(s, CAROL).await,
        [pair(&editor, &[ACT_PROD])]
    );
    assert_eq!(s.user(CAROL).unwrap().role, "editor");

    // Refusals: validated like the API, named.
    let cases = [
        (
            reqwest::Method::POST,
            format!("users/{CAROL}/policies"),
            Some(json!({"policy_id": "pol-00000000", "account_ids": ["*"]})),
            400,
            "POLICY_DOESNT_EXIST",
        ),
        (
            reqwest::Method::POST,
            format!("users/{CAROL}/policies"),
            Some(json!({"policy_id": viewer, "account_ids": ["act-00000000"]})),
            400,
            "ACCOUNT_DOESNT_EXIST",
        ),
        (
            reqwest::Method::POST,
            "users/u-00000000/policies".to_string(),
            Some(json!({"policy_id": viewer, "account_ids": ["*"]})),
            404,
            "USER_DOESNT_EXIST",
        ),
        (
            reqwest::Method::PUT,
            format!("users/{CAROL}/role"),
            Some(json!({"role": "owner"})),
            400,
            "not one of viewer, admin, editor",
        ),
        (
            reqwest::Method::PUT,
            "users/pu-5d1e2f3a/role".to_string(),
            Some(json!({"role": "admin"})),
            409,
            "programmatic",
        ),
        (
            reqwest::Method::PUT,
            "users/u-00000000/role".to_string(),
            Some(json!({"role": "admin"})),
            404,
            "no user",
        ),
        (
            reqwest::Method::DELETE,
            "users/u-00000000/policies/3".to_string(),
            None,
            404,
            "USER_DOESNT_EXIST",
        ),
    ];
    for (method, path, body, want, says) in cases {
        let (status, v) = admin_call(s, method, &path, body).await;
        assert_eq!(status, want, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{path}: {v}");
    }
    assert_eq!(
        detail_policies(s, CAROL).await,
        [pair(&editor, &[ACT_PROD])]
    );
    assert_eq!(s.user(CAROL).unwrap().role, "editor");

    // Hand edits are not API traffic: only the API calls above are counted and logged.
    let routes: HashSet<String> = s
        .request_log()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(routes.iter().all(|r| r.contains("/setup/")), "{routes:?}");
    assert_eq!(s.request_count("PUT /setup/user/{userId}/policyMapping"), 1);
}
