//! Contract tests of the Spot emulator against spot-api.md (§3, §4, §6, §7, §10.4), over real
//! HTTP on 127.0.0.1:0.

use std::collections::HashSet;

use okta_spot_sync::sim::{Burst429, Emulators, FailSpec, Fault, Fixture, SpotSim};
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
