//! Contract tests of the Okta emulator against docs/api-facts.md ("Emulator contract: Okta"), over
//! real HTTP on 127.0.0.1:0.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use okta_spot_sim::{
    Burst429, Emulators, FailSpec, Fault, Fixture, OktaSim, OktaUserSpec, PageFault, PageFaultKind,
};
use serde_json::{json, Value};

const LIST: &str = "GET /api/v1/apps/{appId}/users";

async fn start() -> Emulators {
    Emulators::start_local(Fixture::default())
        .await
        .expect("emulators start")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(o: &OktaSim, path_and_query: &str) -> reqwest::Response {
    get_url(o, &format!("{}{}", o.url(), path_and_query)).await
}

async fn get_url(o: &OktaSim, url: &str) -> reqwest::Response {
    client()
        .get(url)
        .header("Authorization", format!("SSWS {}", o.token()))
        .send()
        .await
        .expect("request")
}

fn links(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn next_url(links: &[String]) -> Option<String> {
    links
        .iter()
        .find(|l| l.ends_with("rel=\"next\""))
        .map(|l| l[1..l.find('>').unwrap()].to_string())
}

fn add_assigned(o: &OktaSim, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let id = o.add_user(OktaUserSpec {
                email: format!("u{i}@example.com"),
                first_name: "U".into(),
                last_name: format!("{i}"),
                ..Default::default()
            });
            o.assign(&id, Some("viewer"));
            id
        })
        .collect()
}

fn assert_error_body(v: &Value, code: &str) {
    let obj = v.as_object().expect("error body is an object");
    let keys: HashSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from([
            "errorCode",
            "errorSummary",
            "errorLink",
            "errorId",
            "errorCauses"
        ]),
        "{v}"
    );
    assert_eq!(v["errorCode"], code);
    assert_eq!(v["errorLink"], code);
    assert!(v["errorCauses"].is_array());
}

#[tokio::test]
async fn default_limit_and_link_headers_self_then_next() {
    let emu = start().await;
    let o = &emu.okta;
    let ids = add_assigned(o, 60);
    let app = o.app_id();
    let r = get(o, &format!("/api/v1/apps/{app}/users")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(r.headers().contains_key("x-okta-request-id"));
    let l = links(&r);
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(
        l[0],
        format!(
            "<{}/api/v1/apps/{app}/users?limit=50>; rel=\"self\"",
            o.url()
        )
    );
    let next = next_url(&l).unwrap();
    assert!(next.starts_with(&format!("{}/api/v1/apps/{app}/users?after=", o.url())));
    assert!(next.ends_with("&limit=50"), "{next}");
    let cursor = url::Url::parse(&next)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "after")
        .unwrap()
        .1
        .to_string();
    assert!(!ids.contains(&cursor), "cursor must not be a user id");
    let rows: Vec<Value> = r.json().await.unwrap();
    assert_eq!(rows.len(), 50);
    let row = &rows[0];
    assert_eq!(row["scope"], "USER");
    assert_eq!(row["syncState"], "DISABLED");
    assert!(row["externalId"].is_null());
    assert!(row["passwordChanged"].is_null());
    assert_eq!(row["profile"]["role"], "viewer");
    assert_eq!(row["credentials"]["userName"], "u0@example.com");
    assert!(row.get("_embedded").is_none());
}

#[tokio::test]
async fn cursor_walk_follows_next_links_to_the_end() {
    let emu = start().await;
    let o = &emu.okta;
    let ids = add_assigned(o, 120);
    let mut url = format!(
        "{}/api/v1/apps/{}/users?limit=50&expand=user",
        o.url(),
        o.app_id()
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = get_url(o, &url).await;
        assert_eq!(r.status(), 200);
        let l = links(&r);
        assert!(l[0].ends_with("rel=\"self\""));
        let rows: Vec<Value> = r.json().await.unwrap();
        pages += 1;
        for row in &rows {
            assert_eq!(row["_embedded"]["user"]["id"], row["id"]);
            assert_eq!(row["_embedded"]["user"]["status"], "ACTIVE");
            assert!(row["_embedded"]["user"]["profile"]["email"].is_string());
            seen.push(row["id"].as_str().unwrap().to_string());
        }
        match next_url(&l) {
            Some(n) => {
                assert!(n.contains("expand=user") && n.contains("limit=50"), "{n}");
                url = n;
            }
            None => {
                assert_eq!(l.len(), 1, "last page has only self");
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    assert_eq!(o.request_count(LIST), 3);
}

#[tokio::test]
async fn limit_range_and_server_cap() {
    let emu = start().await;
    let o = &emu.okta;
    add_assigned(o, 30);
    let app = o.app_id();
    for bad in ["0", "501", "abc"] {
        let r = get(o, &format!("/api/v1/apps/{app}/users?limit={bad}")).await;
        assert_eq!(r.status(), 400, "limit={bad}");
        assert_error_body(&r.json().await.unwrap(), "E0000001");
    }
    let r = get(o, &format!("/api/v1/apps/{app}/users?limit=500")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(links(&r).len(), 1);
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 30);

    o.set_max_limit(20);
    let r = get(o, &format!("/api/v1/apps/{app}/users?limit=500")).await;
    let next = next_url(&links(&r)).expect("capped page has a next link");
    assert!(next.contains("limit=500"));
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 20);
    let r = get_url(o, &next).await;
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 10);
}

#[tokio::test]
async fn bad_cursor_is_e0000029() {
    let emu = start().await;
    let o = &emu.okta;
    let ids = add_assigned(o, 3);
    for cursor in ["garbage", ids[0].as_str(), "1a2b3c4d5e"] {
        let r = get(
            o,
            &format!("/api/v1/apps/{}/users?after={cursor}", o.app_id()),
        )
        .await;
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_error_body(&v, "E0000029");
        assert_eq!(v["errorSummary"], "Invalid paging request.");
        assert_eq!(
            v["errorCauses"],
            json!([{"errorSummary": "Invalid cursor."}])
        );
    }
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_e0000011() {
    let emu = start().await;
    let o = &emu.okta;
    let url = format!("{}/api/v1/apps/{}/users", o.url(), o.app_id());
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("date"));
    assert_error_body(&r.json().await.unwrap(), "E0000011");
    let r = client()
        .get(&url)
        .header("Authorization", "SSWS nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(&url)
        .header("Authorization", format!("Bearer {}", o.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn not_found_bodies_name_the_resource() {
    let emu = start().await;
    let o = &emu.okta;
    let r = get(o, "/api/v1/apps/0oaNope/users").await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_error_body(&v, "E0000007");
    assert_eq!(
        v["errorSummary"],
        "Not found: Resource not found: 0oaNope (AppInstance)"
    );
    let r = get(o, "/api/v1/users/00uNope").await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["errorSummary"],
        "Not found: Resource not found: 00uNope (User)"
    );
}

#[tokio::test]
async fn rate_limit_headers_and_429_when_exhausted() {
    let emu = start().await;
    let o = &emu.okta;
    add_assigned(o, 1);
    let path = format!("/api/v1/apps/{}/users", o.app_id());
    let r = get(o, &path).await;
    let h = r.headers();
    assert_eq!(h["x-rate-limit-limit"], "100");
    assert_eq!(h["x-rate-limit-remaining"], "99");
    let reset: u64 = h["x-rate-limit-reset"].to_str().unwrap().parse().unwrap();
    let date = httpdate::parse_http_date(h["date"].to_str().unwrap()).unwrap();
    let date_s = date
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        reset > date_s && reset <= date_s + 61,
        "reset {reset} date {date_s}"
    );
    // Users buckets are separate.
    let r = get(o, "/api/v1/users").await;
    assert_eq!(r.headers()["x-rate-limit-limit"], "600");

    o.set_rate_limit("/api/v1/apps/*", 3);
    assert_eq!(get(o, &path).await.status(), 200);
    assert_eq!(get(o, &path).await.status(), 200);
    let r = get(o, &path).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-rate-limit-remaining"], "0");
    assert!(r.headers().contains_key("date"));
    assert_error_body(&r.json().await.unwrap(), "E0000047");

    o.set_rate_limit_enforced(false);
    assert_eq!(get(o, &path).await.status(), 200);
}

#[tokio::test]
async fn burst_429_then_recovery() {
    let emu = start().await;
    let o = &emu.okta;
    let path = format!("/api/v1/apps/{}/users", o.app_id());
    o.set_fault(
        LIST,
        Fault {
            burst_429: Some(Burst429 {
                after: 1,
                count: 2,
                reset_secs: 7,
            }),
            ..Fault::default()
        },
    );
    assert_eq!(get(o, &path).await.status(), 200);
    for _ in 0..2 {
        let r = get(o, &path).await;
        assert_eq!(r.status(), 429);
        let date = httpdate::parse_http_date(r.headers()["date"].to_str().unwrap()).unwrap();
        let date_s = date
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let reset: u64 = r.headers()["x-rate-limit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((date_s + 7..=date_s + 8).contains(&reset));
        assert_eq!(r.headers()["x-rate-limit-remaining"], "0");
        assert_error_body(&r.json().await.unwrap(), "E0000047");
    }
    assert_eq!(get(o, &path).await.status(), 200);
    assert_eq!(o.request_count(LIST), 4);
}

#[tokio::test]
async fn fail_spec_hits_the_nth_request_only() {
    let emu = start().await;
    let o = &emu.okta;
    let path = format!("/api/v1/apps/{}/users", o.app_id());
    o.set_fault(
        LIST,
        Fault {
            fail: Some(FailSpec {
                status: 500,
                nth: 2,
                times: Some(1),
            }),
            ..Fault::default()
        },
    );
    assert_eq!(get(o, &path).await.status(), 200);
    let r = get(o, &path).await;
    assert_eq!(r.status(), 500);
    assert_error_body(&r.json().await.unwrap(), "E0000009");
    assert_eq!(get(o, &path).await.status(), 200);
    o.clear_faults();
}

#[tokio::test]
async fn direct_and_group_grants_are_separate_rows() {
    let emu = start().await;
    let o = &emu.okta;
    let both = add_assigned(o, 1).remove(0);
    o.assign_via_group(&both, "Spot Users", Some("editor"));
    let group_only = o.add_user(OktaUserSpec {
        email: "g@example.com".into(),
        first_name: "G".into(),
        last_name: "Only".into(),
        ..Default::default()
    });
    o.assign_via_group(&group_only, "Spot Users", None);
    let app = o.app_id();
    let rows: Vec<Value> = get(o, &format!("/api/v1/apps/{app}/users"))
        .await
        .json()
        .await
        .unwrap();
    let scopes: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["scope"].as_str().unwrap()))
        .collect();
    assert_eq!(
        scopes,
        vec![
            (both.as_str(), "USER"),
            (both.as_str(), "GROUP"),
            (group_only.as_str(), "GROUP")
        ]
    );
    assert!(rows[1]["_links"]["group"]["href"].is_string());

    let del = |id: String| {
        let url = format!("{}/api/v1/apps/{app}/users/{id}", o.url());
        let token = o.token();
        async move {
            client()
                .delete(url)
                .header("Authorization", format!("SSWS {token}"))
                .send()
                .await
                .unwrap()
        }
    };
    let r = del(group_only.clone()).await;
    assert_eq!(r.status(), 403);
    assert_error_body(&r.json().await.unwrap(), "E0000046");
    let r = del(both.clone()).await;
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    let rows: Vec<Value> = get(o, &format!("/api/v1/apps/{app}/users"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["scope"] == "GROUP"));
}

#[tokio::test]
async fn lifecycle_deactivate_reactivate() {
    let emu = start().await;
    let o = &emu.okta;
    let a = add_assigned(o, 1).remove(0);
    o.assign_via_group(&a, "Eng", Some("viewer"));
    let list = || async {
        get(o, &format!("/api/v1/apps/{}/users?expand=user", o.app_id()))
            .await
            .json::<Vec<Value>>()
            .await
            .unwrap()
    };
    o.suspend(&a);
    let rows = list().await;
    assert_eq!(rows.len(), 2, "suspension keeps assignments");
    assert_eq!(rows[0]["_embedded"]["user"]["status"], "SUSPENDED");
    o.unsuspend(&a);
    o.deactivate(&a);
    assert!(list().await.is_empty());
    o.reactivate(&a);
    let rows = list().await;
    assert_eq!(rows.len(), 1, "only the group grant returns");
    assert_eq!(rows[0]["scope"], "GROUP");
    assert_eq!(rows[0]["profile"]["role"], "viewer");

    o.set_role(&a, Some("editor"));
    o.set_app_user_status(&a, "INACTIVE");
    o.set_app_profile_value(&a, "role", json!(42));
    let rows = list().await;
    assert_eq!(rows[0]["status"], "INACTIVE");
    assert_eq!(rows[0]["profile"]["role"], 42);
}

#[tokio::test]
async fn assign_over_http() {
    let emu = start().await;
    let o = &emu.okta;
    let id = o.add_user(OktaUserSpec {
        email: "new@example.com".into(),
        first_name: "N".into(),
        last_name: "U".into(),
        ..Default::default()
    });
    let url = format!("{}/api/v1/apps/{}/users", o.url(), o.app_id());
    let post = |body: Value| {
        let url = url.clone();
        let token = o.token();
        async move {
            client()
                .post(url)
                .header("Authorization", format!("SSWS {token}"))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = post(json!({"id": id, "scope": "USER", "profile": {"role": "viewer"}})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["scope"], "USER");
    assert_eq!(v["profile"]["role"], "viewer");
    let r = post(json!({"id": id, "scope": "USER", "profile": {"role": "editor"}})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["profile"]["role"],
        "editor"
    );
    assert_eq!(o.request_count("POST /api/v1/apps/{appId}/users"), 2);

    let r = post(json!({"id": "00uMissing"})).await;
    assert_eq!(r.status(), 404);
    assert_error_body(&r.json().await.unwrap(), "E0000007");
    let r = post(json!({"scope": "USER"})).await;
    assert_eq!(r.status(), 400);
    o.deactivate(&id);
    let r = post(json!({"id": id, "scope": "USER"})).await;
    assert_eq!(r.status(), 403);
    assert_error_body(&r.json().await.unwrap(), "E0000038");
}

#[tokio::test]
async fn users_list_search_filter_and_get() {
    let emu = start().await;
    let o = &emu.okta;
    let alice = o.add_user(OktaUserSpec {
        email: "Alice@Example.com".into(),
        first_name: "Alice".into(),
        last_name: "A".into(),
        ..Default::default()
    });
    let gone = o.add_user(OktaUserSpec {
        email: "gone@example.com".into(),
        first_name: "Gone".into(),
        last_name: "G".into(),
        ..Default::default()
    });
    o.deactivate(&gone);
    let ids = |v: Vec<Value>| -> Vec<String> {
        v.iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all: Vec<Value> = get(o, "/api/v1/users").await.json().await.unwrap();
    assert_eq!(
        ids(all),
        vec![alice.clone()],
        "no query omits DEPROVISIONED"
    );
    let q = url::form_urlencoded::byte_serialize(br#"profile.email eq "alice@example.COM""#)
        .collect::<String>();
    let v: Vec<Value> = get(o, &format!("/api/v1/users?search={q}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(v), vec![alice.clone()]);
    let v: Vec<Value> = get(o, &format!("/api/v1/users?filter={q}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(v.is_empty(), "filter values are case-sensitive");
    let q =
        url::form_urlencoded::byte_serialize(br#"status eq "DEPROVISIONED""#).collect::<String>();
    let v: Vec<Value> = get(o, &format!("/api/v1/users?search={q}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(v), vec![gone]);

    let r = get(o, "/api/v1/users/alice%40example.com").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("etag"));
    assert_eq!(r.headers()["x-rate-limit-limit"], "2000");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], alice.as_str());
    assert_eq!(v["profile"]["login"], "Alice@Example.com");
    assert_eq!(o.request_count("GET /api/v1/users/{id}"), 1);
    assert_eq!(o.request_count("GET /api/v1/users"), 4);
}

#[tokio::test]
async fn users_list_paginates_at_200() {
    let emu = start().await;
    let o = &emu.okta;
    o.bulk_add_assigned_users(250, "bulk.example");
    let r = get(o, "/api/v1/users?limit=1000").await;
    let next = next_url(&links(&r)).expect("next");
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 200);
    let r = get_url(o, &next).await;
    assert!(next_url(&links(&r)).is_none());
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 50);
}

#[tokio::test]
async fn page_faults_break_pages() {
    let emu = start().await;
    let o = &emu.okta;
    add_assigned(o, 5);
    let path = format!("/api/v1/apps/{}/users?limit=2", o.app_id());
    let page = |kind| Fault {
        page: Some(PageFault {
            kind,
            nth: 1,
            times: Some(1),
        }),
        ..Fault::default()
    };

    o.set_fault(LIST, page(PageFaultKind::RepeatedCursor));
    let r = get(o, &path).await;
    let l = links(&r);
    assert_eq!(
        l[0].replace("rel=\"self\"", ""),
        l[1].replace("rel=\"next\"", "")
    );

    o.set_fault(LIST, page(PageFaultKind::ForeignNextLink));
    let r = get(o, &path).await;
    assert!(next_url(&links(&r))
        .unwrap()
        .starts_with("http://evil.example.invalid/"));

    o.set_fault(LIST, page(PageFaultKind::Truncated));
    let r = get(o, &path).await;
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());

    o.set_fault(LIST, page(PageFaultKind::MalformedJson));
    let r = get(o, &path).await;
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());

    o.set_fault(LIST, page(PageFaultKind::DropConnection));
    // Hyper may abort before or after the headers; either way the read fails.
    let res = client()
        .get(format!("{}{path}", o.url()))
        .header("Authorization", format!("SSWS {}", o.token()))
        .send()
        .await;
    if let Ok(r) = res {
        assert!(r.bytes().await.is_err(), "body must fail mid-stream");
    }

    o.set_fault(
        LIST,
        Fault {
            slow_body: Some(Duration::from_millis(40)),
            latency: Some(Duration::from_millis(10)),
            ..Fault::default()
        },
    );
    let t = std::time::Instant::now();
    let rows: Vec<Value> = get(o, &path).await.json().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(t.elapsed() >= Duration::from_millis(40));
}

#[tokio::test]
async fn admin_api_round_trip_is_not_counted() {
    let emu = start().await;
    let o = &emu.okta;
    let c = client();
    let admin = |p: &str| format!("{}/__admin/{p}", o.url());
    let v: Value = c
        .post(admin("users"))
        .json(&json!({"email": "adm@example.com", "first_name": "Ad", "last_name": "Min"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("00u") && id.len() == 20);
    let r = c
        .post(admin("assign"))
        .json(&json!({"user_id": "adm@example.com", "role": "editor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(admin(&format!("users/{id}/suspend")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(admin("assign"))
        .json(&json!({"user_id": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    c.post(admin("faults"))
        .json(&json!({"route": LIST, "fault": {"fail": {"status": 503, "nth": 1}}}))
        .send()
        .await
        .unwrap();
    let r = get(o, &format!("/api/v1/apps/{}/users", o.app_id())).await;
    assert_eq!(r.status(), 503);
    c.delete(admin("faults")).send().await.unwrap();
    let rows: Vec<Value> = get(o, &format!("/api/v1/apps/{}/users?expand=user", o.app_id()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rows[0]["profile"]["role"], "editor");
    assert_eq!(rows[0]["_embedded"]["user"]["status"], "SUSPENDED");
    let state: Value = c
        .get(admin("state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["users"][0]["status"], "SUSPENDED");
    let counts: Value = c
        .get(admin("requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts, json!({ LIST: 2 }));
    assert_eq!(o.total_requests(), 2);
    c.post(admin("reset-counts")).send().await.unwrap();
    assert_eq!(o.total_requests(), 0);
}

#[tokio::test]
async fn demo_fixture_and_bulk_scale() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let o = &emu.okta;
    let rows: Vec<Value> = get(o, &format!("/api/v1/apps/{}/users?expand=user", o.app_id()))
        .await
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = rows
        .iter()
        .map(|r| r["_embedded"]["user"]["profile"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        [
            "alice@example.com",
            "bob@example.com",
            "Carol@Example.com",
            "dave@example.com"
        ]
    );
    assert_eq!(rows[1]["profile"]["role"], "editor");

    o.bulk_add_assigned_users(100_000, "scale.example");
    o.set_rate_limit_enforced(false);
    let r = get(
        o,
        &format!("/api/v1/apps/{}/users?limit=500&expand=user", o.app_id()),
    )
    .await;
    assert!(next_url(&links(&r)).is_some());
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 500);
    emu.shutdown().await;
}

async fn expanded_rows(o: &OktaSim) -> Vec<Value> {
    let r = get(o, &format!("/api/v1/apps/{}/users?expand=user", o.app_id())).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn embedded_user_status_can_be_empty_or_undocumented() {
    let emu = start().await;
    let o = &emu.okta;
    let ids = add_assigned(o, 2);
    o.set_status(&ids[0], "ARCHIVED_FUTURE");
    let admin = format!("{}/__admin/users/{}/status", o.url(), ids[1]);
    let r = client()
        .post(admin)
        .json(&json!({"status": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rows = expanded_rows(o).await;
    let status: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap(),
                r["_embedded"]["user"]["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        status,
        vec![(ids[0].as_str(), "ARCHIVED_FUTURE"), (ids[1].as_str(), "")]
    );
    assert!(
        rows.iter().all(|r| r["status"] == "ACTIVE"),
        "the assignments stay active"
    );
}

#[tokio::test]
async fn one_user_id_can_have_two_rows_with_conflicting_emails() {
    let emu = start().await;
    let o = &emu.okta;
    let ann = add_assigned(o, 1).remove(0);
    o.assign_via_group(&ann, "Spot Users", Some("viewer"));
    o.set_row_email(&ann, Some("Spot Users"), Some("someone.else@example.com"));
    let rows = expanded_rows(o).await;
    let seen: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            let u = &r["_embedded"]["user"];
            (
                r["id"].as_str().unwrap(),
                r["scope"].as_str().unwrap(),
                u["profile"]["email"].as_str().unwrap(),
                u["credentials"]["emails"][0]["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (ann.as_str(), "USER", "u0@example.com", "u0@example.com"),
            (
                ann.as_str(),
                "GROUP",
                "someone.else@example.com",
                "someone.else@example.com"
            ),
        ]
    );
    // The user itself is unchanged.
    let r = get(o, &format!("/api/v1/users/{ann}")).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["profile"]["email"], "u0@example.com");

    // Over the admin API: the direct row this time, then back to the user's own email.
    let c = client();
    let url = format!("{}/__admin/users/{ann}/row-email", o.url());
    let r = c
        .post(&url)
        .json(&json!({"email": "x@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(&url)
        .json(&json!({"group": "Spot Users", "email": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let emails: Vec<String> = expanded_rows(o)
        .await
        .iter()
        .map(|r| {
            r["_embedded"]["user"]["profile"]["email"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(emails, vec!["x@example.com", "u0@example.com"]);
    let r = c
        .post(&url)
        .json(&json!({"group": "No Such Group", "email": "y@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .post(format!("{}/__admin/users/00unobody/row-email", o.url()))
        .json(&json!({"email": "y@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
