//! Contract tests of the Okta emulator's System Log (`GET /api/v1/logs`, docs/api-facts.md
//! "Okta System Log") over real HTTP on 127.0.0.1:0: polling and the `after` cursor, bounded
//! queries, `limit`/`filter`/`sortOrder`, the LogEvent shape, an event per admin change, and
//! the knobs (ingestion delay, duplicates, dropped types, retention, 403). Time moves with
//! the emulators' settable clock (`OktaSim::advance_clock`), never with sleeps.

use std::collections::HashSet;
use std::time::Duration;

use okta_spot_sim::{Emulators, Fixture, OktaSim, OktaUserSpec};
use serde_json::{json, Value};

async fn start() -> Emulators {
    Emulators::start_local(Fixture::default())
        .await
        .expect("emulators start")
}

struct Page {
    status: u16,
    body: Value,
    links: Vec<String>,
    headers: reqwest::header::HeaderMap,
}

impl Page {
    fn events(&self) -> &Vec<Value> {
        self.body.as_array().expect("a JSON array of events")
    }

    fn types(&self) -> Vec<&str> {
        self.events()
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect()
    }

    fn link(&self, rel: &str) -> Option<String> {
        let tail = format!("rel=\"{rel}\"");
        self.links
            .iter()
            .find(|l| l.ends_with(&tail))
            .map(|l| l[1..l.find('>').unwrap()].to_string())
    }

    fn next(&self) -> String {
        self.link("next").expect("a next link")
    }
}

async fn get_url(o: &OktaSim, url: &str) -> Page {
    let r = reqwest::Client::new()
        .get(url)
        .header("Authorization", format!("SSWS {}", o.token()))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let links = headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = r.json().await.expect("JSON body");
    Page {
        status,
        body,
        links,
        headers,
    }
}

async fn logs(o: &OktaSim, query: &str) -> Page {
    get_url(o, &format!("{}/api/v1/logs{query}", o.url())).await
}

fn q(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    format!("?{}", s.finish())
}

fn user(o: &OktaSim, name: &str) -> String {
    o.add_user(OktaUserSpec {
        email: format!("{name}@example.com"),
        first_name: name.to_string(),
        last_name: "Doe".into(),
        ..Default::default()
    })
}

fn assert_error(p: &Page, status: u16, code: &str) {
    assert_eq!(p.status, status, "{}", p.body);
    let keys: HashSet<&str> = p
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from([
            "errorCode",
            "errorSummary",
            "errorLink",
            "errorId",
            "errorCauses"
        ])
    );
    assert_eq!(p.body["errorCode"], code, "{}", p.body);
}

fn target<'a>(e: &'a Value, kind: &str) -> &'a Value {
    e["target"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} target in {e}"))
}

#[tokio::test]
async fn polling_follows_the_cursor_and_always_has_a_next_link() {
    let emu = start().await;
    let o = &emu.okta;
    let a = user(o, "alice");
    // The fixture and scripted setup before any change: no history yet.
    let p = logs(o, "").await;
    assert_eq!(p.status, 200);
    assert!(p.events().is_empty());
    assert_eq!(p.link("self").unwrap(), format!("{}/api/v1/logs", o.url()));
    assert_eq!(
        p.next(),
        p.link("self").unwrap(),
        "empty page: next repeats the request"
    );
    assert_eq!(p.headers["x-rate-limit-limit"], "120");

    o.assign(&a, Some("viewer"));
    let p = get_url(o, &p.next()).await;
    assert_eq!(p.types(), ["application.user_membership.add"]);
    let next = p.next();
    let u = url::Url::parse(&next).unwrap();
    let after = u.query_pairs().find(|(k, _)| k == "after").unwrap().1;
    assert!(!after.is_empty() && after != a);

    // Nothing new: an empty page whose next link repeats the position.
    let p2 = get_url(o, &next).await;
    assert!(p2.events().is_empty());
    assert_eq!(p2.next(), next);

    o.unassign(&a);
    let p3 = get_url(o, &p2.next()).await;
    assert_eq!(p3.types(), ["application.user_membership.remove"]);
    // Polling next links drop `since` and keep the other parameters.
    let since = p.events()[0]["published"].as_str().unwrap().to_string();
    let p4 = logs(o, &q(&[("since", &since), ("limit", "1")])).await;
    assert_eq!(p4.types(), ["application.user_membership.add"]);
    let n4 = p4.next();
    assert!(!n4.contains("since="), "{n4}");
    assert!(n4.contains("limit=1"), "{n4}");
    let p5 = get_url(o, &n4).await;
    assert_eq!(p5.types(), ["application.user_membership.remove"]);
}

#[tokio::test]
async fn log_event_shape() {
    let emu = start().await;
    let o = &emu.okta;
    let a = user(o, "alice");
    o.assign(&a, Some("admin"));
    let p = logs(o, "").await;
    let e = &p.events()[0];
    assert_eq!(e["eventType"], "application.user_membership.add");
    assert_eq!(e["displayMessage"], "Add user to application membership");
    assert_eq!(
        e["legacyEventType"],
        "app.generic.provision.assign_user_to_app"
    );
    assert_eq!(e["version"], "0");
    assert_eq!(e["severity"], "INFO");
    assert_eq!(e["outcome"]["result"], "SUCCESS");
    assert_eq!(e["transaction"]["type"], "WEB");
    assert_eq!(e["actor"]["type"], "User");
    assert!(e["actor"]["id"].as_str().unwrap().starts_with("00u"));
    let uuid = e["uuid"].as_str().unwrap();
    assert_eq!(uuid.len(), 36, "{uuid}");
    let published = e["published"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_rfc3339(published).unwrap();
    assert!(
        published.ends_with('Z') && published.len() == 24,
        "{published}"
    );
    assert_eq!(parsed.timestamp_subsec_nanos() % 1_000_000, 0);
    let u = target(e, "User");
    assert_eq!(u["id"], a);
    assert_eq!(u["alternateId"], "alice@example.com");
    assert_eq!(u["displayName"], "alice Doe");
    let app = target(e, "AppInstance");
    assert_eq!(app["id"], o.app_id());
    let au = target(e, "AppUser");
    assert!(au["id"].as_str().unwrap().starts_with("0ua"));
    assert_ne!(au["id"], a);
}

/// Every scripted admin change, its event types in order, and the ids they name.
#[tokio::test]
async fn every_admin_change_records_its_event() {
    let emu = start().await;
    let o = &emu.okta;
    let a = user(o, "alice");
    let b = user(o, "bob");
    let app = o.app_id();
    let mut p = logs(o, "").await;

    async fn expect(o: &OktaSim, p: &mut Page, want: &[(&str, &[&str])], user: &str) {
        let next = get_url(o, &p.next()).await;
        assert_eq!(next.status, 200);
        let got = next.types();
        let want_types: Vec<&str> = want.iter().map(|(t, _)| *t).collect();
        assert_eq!(got, want_types);
        for (e, (_, kinds)) in next.events().iter().zip(want) {
            let k: Vec<&str> = e["target"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["type"].as_str().unwrap())
                .collect();
            assert_eq!(&k, kinds, "{e}");
            if kinds.contains(&"User") {
                assert_eq!(target(e, "User")["id"], user);
            }
        }
        *p = next;
    }
    const APP_USER: &[&str] = &["AppUser", "AppInstance", "User"];
    const USER: &[&str] = &["User"];

    o.assign(&a, Some("viewer"));
    expect(
        o,
        &mut p,
        &[("application.user_membership.add", APP_USER)],
        &a,
    )
    .await;
    o.assign(&a, Some("admin"));
    expect(
        o,
        &mut p,
        &[("application.user_membership.update", APP_USER)],
        &a,
    )
    .await;
    o.set_role(&a, Some("editor"));
    expect(
        o,
        &mut p,
        &[("application.user_membership.update", APP_USER)],
        &a,
    )
    .await;
    o.set_email(&a, "alice2@example.com");
    expect(o, &mut p, &[("user.account.update_profile", USER)], &a).await;
    o.set_login(&a, "alice.login@example.com");
    expect(o, &mut p, &[("user.account.update_profile", USER)], &a).await;
    let e = &p.events()[0];
    assert_eq!(target(e, "User")["alternateId"], "alice.login@example.com");
    o.suspend(&a);
    expect(o, &mut p, &[("user.lifecycle.suspend", USER)], &a).await;
    o.unsuspend(&a);
    expect(o, &mut p, &[("user.lifecycle.unsuspend", USER)], &a).await;
    o.deactivate(&a);
    expect(o, &mut p, &[("user.lifecycle.deactivate", USER)], &a).await;
    // A returning (DEPROVISIONED) user is *activated*.
    o.reactivate(&a);
    expect(o, &mut p, &[("user.lifecycle.activate", USER)], &a).await;
    o.set_status(&a, "RECOVERY");
    expect(o, &mut p, &[], &a).await;
    o.reactivate(&a);
    expect(o, &mut p, &[("user.lifecycle.reactivate", USER)], &a).await;
    o.assign(&a, None);
    expect(
        o,
        &mut p,
        &[("application.user_membership.add", APP_USER)],
        &a,
    )
    .await;
    o.unassign(&a);
    expect(
        o,
        &mut p,
        &[("application.user_membership.remove", APP_USER)],
        &a,
    )
    .await;

    // Groups: the group assigned to the app, the membership, Okta's JOB grant.
    o.assign_via_group(&b, "Engineering", Some("viewer"));
    expect(
        o,
        &mut p,
        &[
            (
                "group.application_assignment.add",
                &["UserGroup", "AppInstance"],
            ),
            ("group.user_membership.add", &["User", "UserGroup"]),
            ("application.user_membership.add", APP_USER),
        ],
        &b,
    )
    .await;
    assert_eq!(p.events()[2]["transaction"]["type"], "JOB");
    assert_eq!(target(&p.events()[0], "AppInstance")["id"], app);
    assert!(target(&p.events()[0], "UserGroup")["id"]
        .as_str()
        .unwrap()
        .starts_with("00g"));
    assert!(o.remove_from_group(&b, "Engineering"));
    expect(
        o,
        &mut p,
        &[
            ("group.user_membership.remove", &["User", "UserGroup"]),
            ("application.user_membership.remove", APP_USER),
        ],
        &b,
    )
    .await;
    o.assign_via_group(&b, "Sales", None);
    expect(
        o,
        &mut p,
        &[
            (
                "group.application_assignment.add",
                &["UserGroup", "AppInstance"],
            ),
            ("group.user_membership.add", &["User", "UserGroup"]),
            ("application.user_membership.add", APP_USER),
        ],
        &b,
    )
    .await;
    assert!(o.unassign_group("Sales"));
    expect(
        o,
        &mut p,
        &[(
            "group.application_assignment.remove",
            &["UserGroup", "AppInstance"],
        )],
        &b,
    )
    .await;

    // Over the API: assign and unassign record the same events.
    let c = reqwest::Client::new();
    let auth = format!("SSWS {}", o.token());
    let r = c
        .post(format!("{}/api/v1/apps/{app}/users", o.url()))
        .header("Authorization", &auth)
        .json(&json!({"id": b, "scope": "USER", "profile": {"role": "viewer"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expect(
        o,
        &mut p,
        &[("application.user_membership.add", APP_USER)],
        &b,
    )
    .await;
    let r = c
        .delete(format!("{}/api/v1/apps/{app}/users/{b}", o.url()))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    expect(
        o,
        &mut p,
        &[("application.user_membership.remove", APP_USER)],
        &b,
    )
    .await;

    // Deletion of an active user: deactivated first, then deleted; then gone (404).
    o.delete_user(&b);
    expect(
        o,
        &mut p,
        &[
            ("user.lifecycle.deactivate", USER),
            ("user.lifecycle.delete.initiated", USER),
            ("user.lifecycle.delete.completed", USER),
        ],
        &b,
    )
    .await;
    let r = c
        .get(format!("{}/api/v1/users/{b}", o.url()))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(o.user_id(&b), None);
    let listed: Vec<Value> = c
        .get(format!(
            "{}/api/v1/users?search=id%20eq%20%22{b}%22",
            o.url()
        ))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty());
}

#[tokio::test]
async fn bounded_queries_limit_sort_and_parameter_errors() {
    let emu = start().await;
    let o = &emu.okta;
    let ids: Vec<String> = (0..5).map(|i| user(o, &format!("u{i}"))).collect();
    for id in &ids {
        o.assign(id, Some("viewer"));
        o.advance_clock(Duration::from_secs(10));
    }
    let ev = o.log_events();
    assert_eq!(ev.len(), 5);
    // [since, until): events 1..=3.
    let since = ev[1].published.clone();
    let until = ev[4].published.clone();
    let p = logs(o, &q(&[("since", &since), ("until", &until)])).await;
    assert_eq!(p.status, 200);
    let got: Vec<&str> = p
        .events()
        .iter()
        .map(|e| e["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(got, [&ev[1].uuid, &ev[2].uuid, &ev[3].uuid]);
    assert!(p.link("next").is_none(), "a bounded query ends");
    // Paged: the next link keeps since/until; the last page has none.
    let p = logs(
        o,
        &q(&[("since", &since), ("until", &until), ("limit", "2")]),
    )
    .await;
    assert_eq!(p.events().len(), 2);
    let n = p.next();
    assert!(n.contains("since=") && n.contains("until="), "{n}");
    let p2 = get_url(o, &n).await;
    assert_eq!(p2.events().len(), 1);
    assert_eq!(p2.events()[0]["uuid"], ev[3].uuid.as_str());
    assert!(p2.link("next").is_none());
    // DESCENDING: newest first, finite.
    let p = logs(o, &q(&[("sortOrder", "DESCENDING"), ("limit", "2")])).await;
    assert_eq!(p.events()[0]["uuid"], ev[4].uuid.as_str());
    assert_eq!(p.events()[1]["uuid"], ev[3].uuid.as_str());
    let p = get_url(o, &p.next()).await;
    assert_eq!(p.events().len(), 2);
    assert_eq!(p.events()[0]["uuid"], ev[2].uuid.as_str());
    // Polling with since: only what was persisted at or after it.
    let p = logs(o, &q(&[("since", &ev[3].published)])).await;
    assert_eq!(p.events().len(), 2);
    assert!(p.link("next").is_some());
    // limit: default 100, up to 1000, more is refused.
    for i in 0..120 {
        o.set_role(&ids[i % 5], Some("viewer"));
    }
    assert_eq!(logs(o, "").await.events().len(), 100);
    assert_eq!(logs(o, "?limit=1000").await.events().len(), 125);
    assert_error(&logs(o, "?limit=1001").await, 400, "E0000001");
    assert_error(&logs(o, "?limit=ten").await, 400, "E0000001");
    assert_error(&logs(o, "?sortOrder=UP").await, 400, "E0000001");
    assert_error(&logs(o, "?since=yesterday").await, 400, "E0000001");
    assert_error(&logs(o, "?until=2024-13-01").await, 400, "E0000001");
    let old = (chrono::Utc::now() - chrono::Duration::days(181)).to_rfc3339();
    let p = logs(o, &q(&[("since", &old)])).await;
    assert_error(&p, 400, "E0000053");
    let ok = (chrono::Utc::now() - chrono::Duration::days(100)).to_rfc3339();
    assert_eq!(logs(o, &q(&[("since", &ok)])).await.status, 200);
    assert_error(&logs(o, "?after=00u123").await, 400, "E0000029");
}

#[tokio::test]
async fn filter_on_event_type_with_or() {
    let emu = start().await;
    let o = &emu.okta;
    let a = user(o, "alice");
    o.assign(&a, Some("viewer"));
    o.suspend(&a);
    o.unsuspend(&a);
    o.deactivate(&a);
    let f = r#"eventType eq "user.lifecycle.deactivate" or eventType eq "application.user_membership.add""#;
    let p = logs(o, &q(&[("filter", f)])).await;
    assert_eq!(
        p.types(),
        [
            "application.user_membership.add",
            "user.lifecycle.deactivate"
        ]
    );
    // The filter stays on the next link; later matches only.
    o.reactivate(&a);
    o.assign(&a, None);
    let n = p.next();
    assert!(n.contains("filter="), "{n}");
    assert_eq!(
        get_url(o, &n).await.types(),
        ["application.user_membership.add"]
    );
    let f = format!(r#"(eventType sw "user.lifecycle.") and target.id eq "{a}""#);
    assert_eq!(
        logs(o, &q(&[("filter", &f)])).await.types(),
        [
            "user.lifecycle.suspend",
            "user.lifecycle.unsuspend",
            "user.lifecycle.deactivate",
            "user.lifecycle.activate"
        ]
    );
    // Any target matches: the app is the second target of membership events.
    let f = format!(r#"target.id eq "{}""#, o.app_id());
    assert_eq!(
        logs(o, &q(&[("filter", &f)])).await.types(),
        [
            "application.user_membership.add",
            "application.user_membership.add"
        ]
    );
    let p = logs(o, &q(&[("filter", r#"eventType eqq "x""#)])).await;
    assert_error(&p, 400, "E0000053");
    let cause = p.body["errorCauses"][0]["errorSummary"].as_str().unwrap();
    assert!(
        cause.contains("Unrecognized attribute operator 'eqq'"),
        "{cause}"
    );
    let p = logs(o, &q(&[("filter", r#"published gt "2020-01-01""#)])).await;
    assert_error(&p, 400, "E0000053");
    let p = logs(o, &q(&[("filter", r#"eventType eq"#)])).await;
    assert_error(&p, 400, "E0000053");
}

#[tokio::test]
async fn ingestion_delay_makes_events_late_and_out_of_order_but_never_skipped() {
    let emu = start().await;
    let o = &emu.okta;
    let a = user(o, "alice");
    let b = user(o, "bob");
    let start = logs(o, "").await.next();
    o.set_log_ingestion_delay(Duration::from_secs(5), Duration::from_secs(5));
    o.assign(&a, None); // published first, visible 5 s later
    o.set_log_ingestion_delay(Duration::ZERO, Duration::ZERO);
    o.advance_clock(Duration::from_secs(1));
    o.assign(&b, None); // published 1 s later, visible at once
    let p = get_url(o, &start).await;
    assert_eq!(p.events().len(), 1);
    assert_eq!(target(&p.events()[0], "User")["id"], b);
    o.advance_clock(Duration::from_secs(3));
    let p2 = get_url(o, &p.next()).await;
    assert!(p2.events().is_empty(), "still in flight");
    o.advance_clock(Duration::from_secs(2));
    let p3 = get_url(o, &p2.next()).await;
    assert_eq!(p3.events().len(), 1, "the late event is not skipped");
    let late = &p3.events()[0];
    assert_eq!(target(late, "User")["id"], a);
    assert!(
        late["published"].as_str().unwrap() < p.events()[0]["published"].as_str().unwrap(),
        "visible later, published earlier"
    );
    // A bounded query orders by published.
    let ev = o.log_events();
    assert_eq!(ev.len(), 2);
    let first = ev.iter().map(|e| e.published.clone()).min().unwrap();
    let until = chrono::Utc::now() + chrono::Duration::days(1);
    let p = logs(o, &q(&[("since", &first), ("until", &until.to_rfc3339())])).await;
    let order: Vec<&Value> = p
        .events()
        .iter()
        .map(|e| &target(e, "User")["id"])
        .collect();
    assert_eq!(order, [&json!(a), &json!(b)]);
}

#[tokio::test]
async fn duplicates_and_dropped_types() {
    let emu = start().await;
    let o = &emu.okta;
    let a = user(o, "alice");
    let start = logs(o, "").await.next();
    o.set_log_duplicates(true);
    o.assign(&a, None);
    o.set_log_duplicates(false);
    let p = get_url(o, &start).await;
    assert_eq!(p.events().len(), 1);
    o.advance_clock(Duration::from_secs(1));
    let p2 = get_url(o, &p.next()).await;
    assert_eq!(p2.events().len(), 1, "the copy arrives later");
    assert_eq!(p2.events()[0]["uuid"], p.events()[0]["uuid"]);

    o.drop_log_event_type("user.lifecycle.deactivate", true);
    o.deactivate(&a);
    o.drop_log_event_type("user.lifecycle.deactivate", false);
    o.reactivate(&a);
    let p3 = get_url(o, &p2.next()).await;
    assert_eq!(p3.types(), ["user.lifecycle.activate"]);
}

#[tokio::test]
async fn retention_forgets_old_events_and_old_positions_still_work() {
    let emu = start().await;
    let o = &emu.okta;
    let a = user(o, "alice");
    o.set_log_retention(Duration::from_secs(3600));
    o.assign(&a, None);
    let first = logs(o, "").await;
    assert_eq!(first.events().len(), 1);
    let old_since = first.events()[0]["published"].as_str().unwrap().to_string();
    o.advance_clock(Duration::from_secs(2 * 3600));
    let p = logs(o, &q(&[("since", &old_since)])).await;
    assert_eq!(p.status, 200);
    assert!(p.events().is_empty(), "the event is gone");
    assert!(o.log_events().is_empty());
    // A cursor older than retention still answers, with what is retained.
    o.unassign(&a);
    let p = get_url(o, &first.link("self").unwrap()).await;
    assert_eq!(p.types(), ["application.user_membership.remove"]);
    let p = get_url(o, &first.next()).await;
    assert_eq!(p.status, 200);
    assert_eq!(p.types(), ["application.user_membership.remove"]);
}

#[tokio::test]
async fn refused_and_rate_limited() {
    let emu = start().await;
    let o = &emu.okta;
    o.set_logs_forbidden(true);
    let p = logs(o, "").await;
    assert_error(&p, 403, "E0000006");
    assert_eq!(
        p.body["errorSummary"],
        "You do not have permission to perform the requested action"
    );
    o.set_logs_forbidden(false);
    assert_eq!(logs(o, "").await.status, 200);
    // Unauthenticated: 401 like every route.
    let r = reqwest::get(format!("{}/api/v1/logs", o.url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    o.set_rate_limit("/api/v1/logs", 3);
    assert_eq!(logs(o, "").await.status, 200);
    let p = logs(o, "").await;
    assert_eq!(p.headers["x-rate-limit-remaining"], "0");
    assert_error(&logs(o, "").await, 429, "E0000047");
    // Other buckets are separate; the window resets a minute later.
    assert_eq!(o.request_count("GET /api/v1/logs"), 6);
    o.advance_clock(Duration::from_secs(61));
    assert_eq!(logs(o, "").await.status, 200);
}

#[tokio::test]
async fn admin_api_knobs() {
    let emu = start().await;
    let o = &emu.okta;
    let a = user(o, "alice");
    let c = reqwest::Client::new();
    let admin = |p: &str| format!("{}/__admin/{p}", o.url());
    let r = c
        .post(admin("logs"))
        .json(&json!({"forbidden": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_error(&logs(o, "").await, 403, "E0000006");
    let r = c
        .post(admin("logs"))
        .json(&json!({"forbidden": false, "delay_ms": [2000, 2000], "drop": ["user.lifecycle.suspend"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for op in ["suspend", "unsuspend"] {
        let r = c
            .post(admin(&format!("users/{a}/{op}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c
        .post(admin(&format!("users/{a}/login")))
        .json(&json!({"login": "al@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(logs(o, "").await.events().is_empty(), "delayed 2 s");
    o.advance_clock(Duration::from_secs(2));
    assert_eq!(
        logs(o, "").await.types(),
        ["user.lifecycle.unsuspend", "user.account.update_profile"]
    );
    let all: Vec<Value> = c
        .get(admin("logs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["target_ids"][0], a);
    let state: Value = c
        .get(admin("state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["system_log"]["delay_ms"], json!([2000, 2000]));
    assert_eq!(
        state["system_log"]["dropped"],
        json!(["user.lifecycle.suspend"])
    );
    assert_eq!(state["rate_limits"]["/api/v1/logs"], 120);
    let r = c
        .post(admin("logs"))
        .json(&json!({"bogus": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
