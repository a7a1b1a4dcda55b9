//! The Okta client against purpose-built fake servers reproducing the reference's responses:
//! Link headers (separate lines and comma-joined), capped pages, 5xx, 429 waits, foreign
//! next links, pagination loops, bad rows and bodies, credentials errors. The System Log polls
//! (`poll_logs`) and the one-assignment read (`get_app_user`) also run against the Okta
//! emulator on 127.0.0.1:0.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{http_settings, start, Reply, Seen};
use okta_spot_sim::{Emulators, Fixture, OktaSim, OktaUserSpec};
use okta_spot_sync::config::OktaSettings;
use okta_spot_sync::http::RequestRecord;
use okta_spot_sync::model::{IdentitySource, OktaUserId};
use okta_spot_sync::okta::logs::{LogEvent, LogPosition, LogsError};
use okta_spot_sync::okta::OktaClient;
use okta_spot_sync::Error;
use secrecy::SecretString;

const TOKEN: &str = "00okta-secret-token-XYZ987";
const APP: &str = "0oa1example";
/// The recorded 429 (cassette in the reference): Date 1757607710, reset 48 s later.
const DATE: &str = "Thu, 11 Sep 2025 16:21:50 GMT";
const DATE_EPOCH: u64 = 1_757_607_710;

fn settings(base: &str, page_size: u32) -> OktaSettings {
    OktaSettings {
        org_url: url::Url::parse(base).unwrap(),
        app_id: APP.into(),
        auth: okta_spot_sync::config::OktaAuth::Ssws(SecretString::from(TOKEN.to_string())),
        role_attribute: "role".into(),
        page_size,
        provision_statuses: vec!["ACTIVE".into()],
        hold_statuses: vec!["SUSPENDED".into()],
        max_api_capacity_percent: 50,
        read_bounds: Default::default(),
    }
}

fn client(base: &str, page_size: u32, retries: u32) -> OktaClient {
    OktaClient::new(&settings(base, page_size), &http_settings(retries)).unwrap()
}

fn row(id: &str, status: &str, email: &str) -> String {
    format!(
        r#"{{"id":"{id}","externalId":null,"scope":"USER","status":"{status}","syncState":"DISABLED",
        "credentials":{{"userName":"{email}"}},"profile":{{"role":"viewer","salesforceGroups":[]}},
        "_links":{{"app":{{"href":"https://x/api/v1/apps/{APP}"}}}},
        "_embedded":{{"user":{{"id":"{id}","status":"ACTIVE","profile":{{"firstName":"F","lastName":"L","mobilePhone":null,"email":"{email}","login":"{email}"}}}}}}}}"#
    )
}

fn page(rows: &[String]) -> String {
    format!("[{}]", rows.join(","))
}

/// Which page a request asks for: no `after` = 0, `after=cN` = N.
fn page_index(seen: &Seen) -> usize {
    seen.param("after")
        .map(|a| a.trim_start_matches('c').parse().unwrap())
        .unwrap_or(0)
}

/// Link headers as Okta sends them: one line per relation (self, then next), or one
/// comma-joined line when `joined`.
fn paged(seen: &Seen, pages: &[String], joined: bool) -> Reply {
    let n = page_index(seen);
    let host = seen.header("host").unwrap();
    let limit = seen.param("limit").unwrap();
    let base = format!("http://{host}{}", seen.path);
    let self_link = format!("<{base}?{}>; rel=\"self\"", seen.query.clone().unwrap());
    let next_link = (n + 1 < pages.len()).then(|| {
        format!(
            "<{base}?limit={limit}&after=c{}&expand=user>; rel=\"next\"",
            n + 1
        )
    });
    let mut reply = Reply::json(200, pages[n].clone())
        .header("x-rate-limit-limit", "600")
        .header("x-rate-limit-remaining", "599")
        .header("x-rate-limit-reset", (DATE_EPOCH + 60).to_string())
        .header("date", DATE);
    match (joined, next_link) {
        (_, None) => reply = reply.header("link", self_link),
        (false, Some(next)) => reply = reply.header("link", self_link).header("link", next),
        (true, Some(next)) => reply = reply.header("link", format!("{self_link}, {next}")),
    }
    reply
}

/// Three pages of two rows each (the server caps `limit` at 2 whatever is asked).
fn three_pages() -> Vec<String> {
    (0..3)
        .map(|p| {
            page(&[
                row(&format!("00u{p}a"), "ACTIVE", &format!("a{p}@example.com")),
                row(
                    &format!("00u{p}b"),
                    "PROVISIONED",
                    &format!("b{p}@example.com"),
                ),
            ])
        })
        .collect()
}

fn assert_no_token(err: &Error) {
    assert!(!err.to_string().contains(TOKEN), "token in Display: {err}");
    assert!(
        !format!("{err:?}").contains(TOKEN),
        "token in Debug: {err:?}"
    );
}

#[tokio::test]
async fn walks_separate_link_lines_and_short_pages() {
    let pages = three_pages();
    let okta = start(move |seen, _| paged(seen, &pages, false)).await;
    let records: Arc<Mutex<Vec<RequestRecord>>> = Arc::default();
    let sink = records.clone();
    let client = client(&okta.base, 500, 0).with_observer(Arc::new(move |r: &RequestRecord| {
        sink.lock().unwrap().push(r.clone())
    }));

    let rows = client.read_assignments().await.unwrap();

    let ids: Vec<&str> = rows.iter().map(|r| r.okta_user_id.as_str()).collect();
    assert_eq!(ids, ["00u0a", "00u0b", "00u1a", "00u1b", "00u2a", "00u2b"]);
    assert_eq!(rows[1].email.as_deref(), Some("b0@example.com"));
    assert_eq!(rows[1].app_user_status.as_deref(), Some("PROVISIONED"));
    assert_eq!(rows[1].user_status.as_deref(), Some("ACTIVE"));
    assert_eq!(rows[1].role.as_deref(), Some("viewer"));
    assert_eq!(client.pages_fetched(), 3);
    assert_eq!(client.requests_sent(), 3);

    let seen = okta.seen();
    assert_eq!(seen.len(), 3);
    let first = &seen[0];
    assert_eq!(first.path, format!("/api/v1/apps/{APP}/users"));
    assert_eq!(first.param("limit").as_deref(), Some("500"));
    assert_eq!(first.param("expand").as_deref(), Some("user"));
    assert_eq!(first.header("authorization"), Some(format!("SSWS {TOKEN}")));
    assert_eq!(first.header("accept").as_deref(), Some("application/json"));
    assert!(first
        .header("user-agent")
        .unwrap()
        .starts_with("okta-spot-sync/"));
    assert_eq!(seen[2].param("after").as_deref(), Some("c2"));

    let records = records.lock().unwrap();
    assert_eq!(records.len(), 3);
    assert!(records
        .iter()
        .all(|r| r.route == "/api/v1/apps/{appId}/users" && r.status == Some(200)));
}

#[tokio::test]
async fn walks_a_comma_joined_link_header() {
    let pages = three_pages();
    let okta = start(move |seen, _| paged(seen, &pages, true)).await;
    let client = client(&okta.base, 2, 0);
    let rows = client.read_assignments().await.unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(okta.count(), 3);
}

#[tokio::test]
async fn a_500_on_page_3_without_retries_is_an_incomplete_read() {
    let pages = three_pages();
    let okta = start(move |seen, _| {
        if page_index(seen) == 2 {
            Reply::json(
                500,
                r#"{"errorCode":"E0000009","errorSummary":"Internal Server Error","errorLink":"E0000009","errorId":"x","errorCauses":[]}"#,
            )
        } else {
            paged(seen, &pages, false)
        }
    })
    .await;
    let err = client(&okta.base, 2, 0)
        .read_assignments()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::IncompleteRead(_)), "{err:?}");
    assert!(text.contains("page 3"), "{text}");
    assert!(text.contains("500"), "{text}");
    assert!(text.contains("E0000009"), "{text}");
    assert_no_token(&err);
    assert_eq!(okta.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_transient_500_is_retried() {
    let pages = three_pages();
    let failed = Arc::new(Mutex::new(false));
    let okta = start(move |seen, _| {
        let mut failed = failed.lock().unwrap();
        if page_index(seen) == 2 && !*failed {
            *failed = true;
            Reply::json(503, "{}")
        } else {
            paged(seen, &pages, false)
        }
    })
    .await;
    let client = client(&okta.base, 2, 3);
    let rows = client.read_assignments().await.unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(client.requests_sent(), 4);
    assert_eq!(client.pages_fetched(), 3);
    assert_eq!(okta.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_next_page_is_requested_as_soon_as_a_page_s_headers_arrive() {
    // Page 1's body comes 5 s after its headers; the request for page 2 must not wait for
    // it (its URL is in page 1's Link header), so the walk costs one round trip per page.
    let pages = three_pages();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen_at = arrivals.clone();
    let okta = start(move |seen, _| {
        seen_at
            .lock()
            .unwrap()
            .push((page_index(seen), tokio::time::Instant::now()));
        let reply = paged(seen, &pages, false);
        if page_index(seen) == 0 {
            reply.body_after(Duration::from_secs(5))
        } else {
            reply
        }
    })
    .await;
    let rows = client(&okta.base, 2, 0).read_assignments().await.unwrap();
    assert_eq!(rows.len(), 6);
    let arrivals = arrivals.lock().unwrap().clone();
    let at = |page: usize| arrivals.iter().find(|(p, _)| *p == page).unwrap().1;
    assert!(
        at(1) - at(0) < Duration::from_secs(5),
        "page 2 was requested {:?} after page 1, i.e. after page 1's body",
        at(1) - at(0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_cut_after_its_headers_is_fetched_again() {
    let pages = three_pages();
    let cut = Arc::new(Mutex::new(false));
    let okta = start(move |seen, _| {
        let reply = paged(seen, &pages, false);
        let mut cut = cut.lock().unwrap();
        if page_index(seen) == 1 && !*cut {
            *cut = true;
            reply.truncated()
        } else {
            reply
        }
    })
    .await;
    let client = client(&okta.base, 2, 3);
    let rows = client.read_assignments().await.unwrap();
    assert_eq!(rows.len(), 6);
    // Page 2 twice; page 3 once, although it was requested before page 2 was fetched again.
    assert_eq!(okta.count(), 4);
    assert_eq!(client.pages_fetched(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_page_whose_next_link_changes_when_fetched_again_fails_the_read() {
    // Page 2's first copy is cut short after its headers (next: page 3, already requested);
    // the copy fetched again points elsewhere: the walk cannot know which list it read.
    let pages = three_pages();
    let cut = Arc::new(Mutex::new(false));
    let okta = start(move |seen, _| {
        let mut cut = cut.lock().unwrap();
        if page_index(seen) != 1 {
            return paged(seen, &pages, false);
        }
        if !*cut {
            *cut = true;
            return paged(seen, &pages, false).truncated();
        }
        let host = seen.header("host").unwrap();
        Reply::json(200, pages[1].clone()).header(
            "link",
            format!(
                "<http://{host}{}?limit=2&after=c9>; rel=\"next\"",
                seen.path
            ),
        )
    })
    .await;
    let err = client(&okta.base, 2, 3)
        .read_assignments()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IncompleteRead(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("page 2") && text.contains("next link changed"),
        "{text}"
    );
    assert_no_token(&err);
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_until_the_reset_measured_against_date() {
    let pages = three_pages();
    let okta = start(move |seen, nth| {
        if nth == 1 {
            Reply::json(
                429,
                r#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests.","errorLink":"E0000047","errorId":"oae","errorCauses":[]}"#,
            )
            .header("date", DATE)
            .header("x-rate-limit-limit", "10")
            .header("x-rate-limit-remaining", "0")
            .header("x-rate-limit-reset", (DATE_EPOCH + 48).to_string())
        } else {
            paged(seen, &pages, false)
        }
    })
    .await;
    let client = client(&okta.base, 2, 2);
    let started = tokio::time::Instant::now();
    let rows = client.read_assignments().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(rows.len(), 6);
    assert_eq!(okta.count(), 4);
    // reset - Date + 1 s = 49 s on tokio's (paused, auto-advancing) clock.
    assert!(
        waited >= Duration::from_secs(49) && waited < Duration::from_secs(50),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_429_wait_is_capped() {
    let pages = three_pages();
    let okta = start(move |seen, nth| {
        if nth == 0 {
            Reply::json(429, "{}")
                .header("date", DATE)
                .header("x-rate-limit-limit", "0")
                .header("x-rate-limit-remaining", "0")
                .header("x-rate-limit-reset", (DATE_EPOCH + 114).to_string())
        } else {
            paged(seen, &pages, false)
        }
    })
    .await;
    let client = client(&okta.base, 2, 1);
    let started = tokio::time::Instant::now();
    client.read_assignments().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_after_the_last_retry_is_an_error() {
    let okta = start(|_, _| Reply::json(429, "{}").header("x-rate-limit-reset", "1")).await;
    let err = client(&okta.base, 2, 1)
        .read_assignments()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("429"), "{err}");
    assert_eq!(okta.count(), 2);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused_and_never_contacted() {
    let foreign = start(|_, _| Reply::json(200, "[]")).await;
    let foreign_base = foreign.base.clone();
    let okta = start(move |seen, _| {
        Reply::json(200, page(&[row("00u1", "ACTIVE", "a@example.com")]))
            .header(
                "link",
                format!(
                    "<http://{}{}?limit=2>; rel=\"self\"",
                    seen.header("host").unwrap(),
                    seen.path
                ),
            )
            .header(
                "link",
                format!("<{foreign_base}/api/v1/apps/{APP}/users?after=x&limit=2>; rel=\"next\""),
            )
    })
    .await;
    let err = client(&okta.base, 2, 3)
        .read_assignments()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::IncompleteRead(_)), "{err:?}");
    assert!(text.contains(&foreign.base), "{text}");
    assert!(text.contains("page 1"), "{text}");
    assert_eq!(foreign.count(), 0);
    assert_eq!(okta.count(), 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let foreign = start(|_, _| Reply::json(200, "[]")).await;
    let location = format!("{}/api/v1/apps/{APP}/users", foreign.base);
    let okta = start(move |_, _| Reply::json(302, "").header("location", location.clone())).await;
    let err = client(&okta.base, 2, 3)
        .read_assignments()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("302"), "{err}");
    assert_eq!(foreign.count(), 0);
    assert_eq!(okta.count(), 1);
}

#[tokio::test]
async fn a_repeated_cursor_is_an_incomplete_read() {
    // Page 1 links to c1, c1 links to c1 again.
    let okta = start(|seen, _| {
        let host = seen.header("host").unwrap();
        Reply::json(
            200,
            page(&[row(
                &format!("00u{}", page_index(seen)),
                "ACTIVE",
                "a@example.com",
            )]),
        )
        .header(
            "link",
            format!(
                "<http://{host}{}?limit=2&after=c1&expand=user>; rel=\"next\"",
                seen.path
            ),
        )
    })
    .await;
    let err = client(&okta.base, 2, 0)
        .read_assignments()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("page 3") && text.contains("pagination loop"),
        "{text}"
    );
    assert_eq!(okta.count(), 2);
}

#[tokio::test]
async fn empty_pages_with_next_links_are_followed_but_not_forever() {
    // An empty page in the middle is followed (Okta can send a next link before an empty
    // page); the walk ends at the page without a next link.
    let pages = vec![
        page(&[row("00u1", "ACTIVE", "a@example.com")]),
        "[]".to_string(),
        page(&[row("00u2", "ACTIVE", "b@example.com")]),
    ];
    let okta = start(move |seen, _| paged(seen, &pages, false)).await;
    let rows = client(&okta.base, 2, 0).read_assignments().await.unwrap();
    assert_eq!(rows.len(), 2);

    // Endless empty pages with fresh cursors: a loop.
    let okta = start(|seen, _| {
        let host = seen.header("host").unwrap();
        let next = page_index(seen) + 1;
        Reply::json(200, "[]").header(
            "link",
            format!(
                "<http://{host}{}?limit=2&after=c{next}>; rel=\"next\"",
                seen.path
            ),
        )
    })
    .await;
    let err = client(&okta.base, 2, 0)
        .read_assignments()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pagination loop"), "{err}");
    // 10 pages without a new user, plus perhaps the 11th: it is requested as soon as the
    // 10th page's headers arrive (pages are pipelined), and dropped when the 10th proves
    // the loop.
    let requests = okta.count();
    assert!((10..=11).contains(&requests), "{requests} requests");
}

#[tokio::test]
async fn users_listed_twice_come_back_as_listed_for_classify_to_choose() {
    // A user assigned directly and through a group is listed twice. The client keeps both
    // rows: picking the one that grants access is `classify`'s decision ("the most entitled
    // row wins"), which it can only make if it sees them all.
    let pages = vec![
        page(&[
            row("00u1", "INACTIVE", "a@example.com"),
            row("00u2", "ACTIVE", "b@example.com"),
        ]),
        page(&[
            row("00u1", "ACTIVE", "a@example.com"),
            row("00u2", "INACTIVE", "b@example.com"),
        ]),
    ];
    let okta = start(move |seen, _| paged(seen, &pages, false)).await;
    let rows = client(&okta.base, 2, 0).read_assignments().await.unwrap();
    let listed: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r.okta_user_id.as_str(),
                r.app_user_status.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("00u1", "INACTIVE"),
            ("00u2", "ACTIVE"),
            ("00u1", "ACTIVE"),
            ("00u2", "INACTIVE")
        ]
    );
}

#[tokio::test]
async fn a_row_without_an_id_aborts_the_read() {
    let pages = vec![
        page(&[row("00u1", "ACTIVE", "a@example.com")]),
        format!(
            r#"[{}, {{"scope":"USER","status":"ACTIVE"}}]"#,
            row("00u2", "ACTIVE", "b@example.com")
        ),
    ];
    let okta = start(move |seen, _| paged(seen, &pages, false)).await;
    let err = client(&okta.base, 2, 0)
        .read_assignments()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::IncompleteRead(_)));
    assert!(
        text.contains("page 2") && text.contains("row 1") && text.contains("no \"id\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_numeric_role_marks_the_row_not_the_read() {
    let pages = vec![page(&[
        r#"{"id":"00u1","status":"ACTIVE","profile":{"role":5},"_embedded":{"user":{"status":"ACTIVE","profile":{"email":"a@example.com"}}}}"#.to_string(),
        row("00u2", "ACTIVE", "b@example.com"),
    ])];
    let okta = start(move |seen, _| paged(seen, &pages, false)).await;
    let rows = client(&okta.base, 2, 0).read_assignments().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].malformed.as_deref(),
        Some("role attribute \"role\" is a number, expected a string")
    );
    assert_eq!(rows[0].email.as_deref(), Some("a@example.com"));
    assert_eq!(rows[1].malformed, None);
}

#[tokio::test]
async fn bodies_that_are_not_arrays_or_not_utf8_abort() {
    let okta = start(|_, _| Reply::json(200, r#"{"errorCode":"E0000001"}"#)).await;
    let err = client(&okta.base, 2, 0)
        .read_assignments()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("page 1") && err.to_string().contains("not a JSON array"),
        "{err}"
    );

    let okta = start(|_, _| Reply {
        status: 200,
        headers: vec![],
        body: b"[{\"id\":\"00u\xff\"}]".to_vec(),
        ..Reply::json(200, "")
    })
    .await;
    let err = client(&okta.base, 2, 0)
        .read_assignments()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");

    let okta = start(|_, _| Reply::json(200, r#"[{"id":"00u1"},"#)).await;
    let err = client(&okta.base, 2, 0)
        .read_assignments()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let okta = start(|_, _| Reply {
        status: 200,
        headers: vec![],
        body: vec![b' '; okta_spot_sync::http::MAX_BODY_BYTES + 1],
        ..Reply::json(200, "")
    })
    .await;
    let err = client(&okta.base, 2, 0)
        .read_assignments()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IncompleteRead(_)));
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[tokio::test]
async fn a_401_is_a_credentials_error_without_the_token() {
    let okta = start(|_, _| {
        Reply::json(
            401,
            r#"{"errorCode":"E0000011","errorSummary":"Invalid token provided","errorLink":"E0000011","errorId":"sample","errorCauses":[]}"#,
        )
    })
    .await;
    let client = client(&okta.base, 2, 3);
    let err = client.read_assignments().await.unwrap_err();
    assert!(
        matches!(err, Error::Credentials { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert!(err.to_string().contains("E0000011"), "{err}");
    assert_no_token(&err);
    assert_eq!(okta.count(), 1, "a 401 is not retried");
    assert!(!format!("{client:?}").contains(TOKEN));

    let err = client.check().await.unwrap_err();
    assert!(matches!(err, Error::Credentials { .. }));
    assert_no_token(&err);
}

#[tokio::test]
async fn check_reports_a_wrong_app_id_and_rate_limits() {
    let okta = start(|_, _| {
        Reply::json(
            404,
            r#"{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: 0oa1example (AppInstance)","errorLink":"E0000007","errorId":"x","errorCauses":[]}"#,
        )
    })
    .await;
    let err = client(&okta.base, 2, 0).check().await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(
        err.to_string().contains("okta.app_id") && err.to_string().contains(APP),
        "{err}"
    );

    let pages = three_pages();
    let okta = start(move |seen, _| paged(seen, &pages, false)).await;
    let info = client(&okta.base, 2, 0).check().await.unwrap();
    assert_eq!(info.rate_limit_limit, Some(600));
    assert_eq!(info.rate_limit_remaining, Some(599));
    assert!(info.has_more);
    assert_eq!(okta.seen()[0].param("limit").as_deref(), Some("1"));
}

#[tokio::test]
async fn a_connection_error_is_a_transport_error_without_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client(&base, 2, 0).read_assignments().await.unwrap_err();
    assert!(err.to_string().contains("could not be completed"), "{err}");
    assert!(
        !err.to_string().contains("limit="),
        "no URL query in errors: {err}"
    );
    assert_no_token(&err);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_retried_for_reads() {
    let pages = three_pages();
    let okta = start(move |seen, nth| {
        let reply = paged(seen, &pages, false);
        if nth == 0 {
            reply.delayed(Duration::from_secs(3600))
        } else {
            reply
        }
    })
    .await;
    let started = tokio::time::Instant::now();
    let client = client(&okta.base, 2, 1);
    assert_eq!(client.read_assignments().await.unwrap().len(), 6);
    assert_eq!(client.requests_sent(), 4);
    // The 30 s request timeout, then at most one backoff (≤ 200 ms · 2⁰).
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited <= Duration::from_millis(30_200),
        "{waited:?}"
    );
}

#[tokio::test]
async fn the_budget_pauses_the_walk_when_the_reserve_is_reached() {
    // Remaining 40 of 100 with 50 % capacity: wait for the reset before the next page.
    let pages = three_pages();
    let okta = start(move |seen, _| {
        let mut reply = paged(seen, &pages, false);
        reply
            .headers
            .retain(|(k, _)| k != "x-rate-limit-remaining" && k != "x-rate-limit-limit");
        reply
            .header("x-rate-limit-limit", "100")
            .header("x-rate-limit-remaining", "40")
    })
    .await;
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let rows = client(&okta.base, 2, 0).read_assignments().await.unwrap();
    assert_eq!(rows.len(), 6);
    // Two pauses (after pages 1 and 2) of reset - Date + 1 = 61 s each.
    assert_eq!(started.elapsed().as_secs(), 122);
}

// ---------------------------------------------------------------------------------------------
// The System Log polls and the one-assignment read, against the Okta emulator (127.0.0.1:0)
// ---------------------------------------------------------------------------------------------

const DEACTIVATE_FILTER: &str = r#"eventType eq "user.lifecycle.deactivate""#;

/// The emulators with an SSWS client for their Okta org (no retries, so a 429 would fail).
async fn emulated() -> (Emulators, OktaClient) {
    let emulators = Emulators::start_local(Fixture::default()).await.unwrap();
    let okta = &emulators.okta;
    let settings = OktaSettings {
        org_url: url::Url::parse(&okta.url()).unwrap(),
        app_id: okta.app_id(),
        auth: okta_spot_sync::config::OktaAuth::Ssws(SecretString::from(okta.token())),
        role_attribute: okta.role_attribute(),
        ..settings("http://unused.invalid", 500)
    };
    let client = OktaClient::new(&settings, &http_settings(0)).unwrap();
    (emulators, client)
}

fn add_user(okta: &OktaSim, email: &str) -> String {
    okta.add_user(OktaUserSpec {
        email: email.into(),
        first_name: "First".into(),
        last_name: "Last".into(),
        ..Default::default()
    })
}

/// A start position after every event recorded so far: the last one's `published` + 1 ms,
/// with the emulator's clock moved 1 s on so that later events are published after it.
fn position_after_setup(okta: &OktaSim) -> chrono::DateTime<chrono::Utc> {
    let last = okta.log_events().last().map(|e| e.published.clone());
    let t = match last {
        Some(p) => chrono::DateTime::parse_from_rfc3339(&p).unwrap().to_utc(),
        None => chrono::Utc::now(),
    } + chrono::Duration::milliseconds(1);
    okta.advance_clock(Duration::from_secs(1));
    t
}

/// `(eventType, the User targets' ids)` of each event.
fn summary(events: &[LogEvent]) -> Vec<(String, Vec<String>)> {
    events
        .iter()
        .map(|e| {
            (
                e.event_type.clone(),
                e.target_ids("User").map(str::to_string).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn poll_logs_returns_the_events_after_since_in_order_then_resumes_after_them() {
    let (emulators, client) = emulated().await;
    let okta = &emulators.okta;
    let a = add_user(okta, "a@example.com");
    let b = add_user(okta, "b@example.com");
    let c = add_user(okta, "c@example.com");
    for id in [&a, &b, &c] {
        okta.assign(id, Some("viewer"));
    }
    let t = position_after_setup(okta);

    // Nothing yet: Okta's empty polling page repeats the request (no cursor).
    let empty = client
        .poll_logs(&LogPosition::Since(t), None, 100)
        .await
        .unwrap();
    assert!(empty.events.is_empty());
    assert_eq!(empty.after, "");
    assert_eq!(empty.next, LogPosition::Since(t));

    okta.unassign(&a);
    okta.deactivate(&b);
    okta.set_role(&c, Some("admin"));
    let page = client
        .poll_logs(&LogPosition::Since(t), None, 100)
        .await
        .unwrap();
    assert_eq!(
        summary(&page.events),
        [
            ("application.user_membership.remove".into(), vec![a.clone()]),
            ("user.lifecycle.deactivate".into(), vec![b.clone()]),
            ("application.user_membership.update".into(), vec![c.clone()]),
        ]
    );
    let membership = &page.events[0];
    assert!(membership.targets.iter().any(|t| t.kind == "AppInstance"));
    assert_eq!(
        membership
            .targets
            .iter()
            .find(|t| t.kind == "User")
            .and_then(|t| t.alternate_id.as_deref()),
        Some("a@example.com")
    );
    assert!(!page.after.is_empty());
    assert_eq!(page.next, LogPosition::After(page.after.clone()));

    // From the cursor: nothing new yet, and the same cursor back (next = self).
    let again = client
        .poll_logs(&LogPosition::After(page.after.clone()), None, 100)
        .await
        .unwrap();
    assert!(again.events.is_empty());
    assert_eq!(again.after, page.after);

    // Only what happened since.
    okta.suspend(&c);
    let newer = client
        .poll_logs(&LogPosition::After(page.after.clone()), None, 100)
        .await
        .unwrap();
    assert_eq!(
        summary(&newer.events),
        [("user.lifecycle.suspend".into(), vec![c.clone()])]
    );
    assert_ne!(newer.after, page.after);

    // A small limit pages through the same events.
    let first_two = client
        .poll_logs(&LogPosition::Since(t), None, 2)
        .await
        .unwrap();
    assert_eq!(summary(&first_two.events), summary(&page.events)[..2]);
    let rest = client
        .poll_logs(&LogPosition::After(first_two.after), None, 2)
        .await
        .unwrap();
    assert_eq!(
        summary(&rest.events),
        [
            summary(&page.events)[2].clone(),
            summary(&newer.events)[0].clone()
        ]
    );
    assert_eq!(rest.after, newer.after);
}

#[tokio::test]
async fn poll_logs_sends_the_filter() {
    let (emulators, client) = emulated().await;
    let okta = &emulators.okta;
    let a = add_user(okta, "a@example.com");
    let b = add_user(okta, "b@example.com");
    okta.assign(&a, Some("viewer"));
    okta.assign(&b, Some("viewer"));
    let t = position_after_setup(okta);
    okta.unassign(&a);
    okta.deactivate(&b);
    okta.set_role(&a, Some("admin"));

    let page = client
        .poll_logs(&LogPosition::Since(t), Some(DEACTIVATE_FILTER), 100)
        .await
        .unwrap();
    assert_eq!(
        summary(&page.events),
        [("user.lifecycle.deactivate".into(), vec![b.clone()])]
    );

    // A filter Okta refuses is this program's bug, not a position to start over from.
    let err = client
        .poll_logs(&LogPosition::Since(t), Some(r#"eventType eqq "x""#), 100)
        .await
        .unwrap_err();
    match &err {
        LogsError::Failed(Error::Status { status: 400, .. }) => {}
        other => panic!("expected Failed(400): {other:?}"),
    }
}

#[tokio::test]
async fn poll_logs_without_the_right_to_read_the_log_is_refused() {
    let (emulators, client) = emulated().await;
    let okta = &emulators.okta;
    okta.set_logs_forbidden(true);
    let err = client
        .poll_logs(&LogPosition::Since(chrono::Utc::now()), None, 100)
        .await
        .unwrap_err();
    match &err {
        LogsError::Refused {
            status: 403,
            detail,
        } => {
            assert!(detail.contains("E0000006"), "{detail}")
        }
        other => panic!("expected Refused(403): {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("okta.logs.read"), "{text}");
    assert!(!text.contains(&okta.token()) && !format!("{err:?}").contains(&okta.token()));
}

#[tokio::test]
async fn poll_logs_from_a_position_okta_refuses_must_start_over() {
    let (emulators, client) = emulated().await;
    let _ = &emulators;
    for position in [
        LogPosition::After("garbage".into()),
        LogPosition::After(String::new()),
        LogPosition::Since(chrono::Utc::now() - chrono::Duration::days(200)),
    ] {
        let err = client.poll_logs(&position, None, 100).await.unwrap_err();
        assert!(
            matches!(err, LogsError::BadPosition(_)),
            "{position:?}: {err:?}"
        );
        assert!(err.to_string().contains("full cycle"), "{err}");
    }
}

#[tokio::test]
async fn poll_logs_sees_a_late_event_once_it_is_persisted() {
    let (emulators, client) = emulated().await;
    let okta = &emulators.okta;
    let a = add_user(okta, "a@example.com");
    okta.assign(&a, Some("viewer"));
    let t = position_after_setup(okta);
    okta.set_log_ingestion_delay(Duration::from_secs(30), Duration::from_secs(30));
    okta.deactivate(&a);

    let page = client
        .poll_logs(&LogPosition::Since(t), None, 100)
        .await
        .unwrap();
    assert!(page.events.is_empty(), "{:?}", page.events);
    okta.advance_clock(Duration::from_secs(31));
    let page = client.poll_logs(&page.next, None, 100).await.unwrap();
    assert_eq!(
        summary(&page.events),
        [("user.lifecycle.deactivate".into(), vec![a.clone()])]
    );
}

/// One `GET /api/v1/logs` answer of a fake server: `body` with `links` as Link lines.
fn logs_reply(body: &str, links: &[String]) -> Reply {
    let mut reply = Reply::json(200, body.to_string());
    for link in links {
        reply = reply.header("link", link.clone());
    }
    reply
}

#[tokio::test]
async fn poll_logs_refuses_pages_without_a_usable_next_link() {
    const EVENT: &str = r#"[{"uuid":"u1","published":"2025-09-11T16:21:50.123Z","eventType":"user.lifecycle.deactivate","target":[{"id":"00u1","type":"User"}]}]"#;
    /// The Link lines of the answer, from the server's own base URL.
    type Links = fn(&str) -> Vec<String>;
    let cases: Vec<(&str, Links, &str)> = vec![
        (
            "no next link",
            (|base| vec![format!("<{base}/api/v1/logs>; rel=\"self\"")]),
            "no rel=\"next\"",
        ),
        (
            "another origin",
            (|_| {
                vec!["<http://elsewhere.invalid/api/v1/logs?after=1_2>; rel=\"next\"".to_string()]
            }),
            "not to the configured Okta org",
        ),
        (
            "no cursor",
            (|base| vec![format!("<{base}/api/v1/logs?limit=100>; rel=\"next\"")]),
            "no after cursor",
        ),
    ];
    for (name, links, expected) in cases {
        let okta = start(move |seen, _| {
            let base = format!("http://{}", seen.header("host").unwrap());
            logs_reply(EVENT, &links(&base))
        })
        .await;
        let err = client(&okta.base, 2, 0)
            .poll_logs(&LogPosition::After("1_1".into()), None, 100)
            .await
            .unwrap_err();
        match &err {
            LogsError::Failed(e @ Error::Malformed { .. }) => {
                assert!(e.to_string().contains(expected), "{name}: {e}")
            }
            other => panic!("{name}: expected Failed(Malformed): {other:?}"),
        }
        assert_eq!(okta.count(), 1, "{name}: the next link is never followed");
        let seen = &okta.seen()[0];
        assert_eq!(seen.path, "/api/v1/logs");
        assert_eq!(seen.param("after").as_deref(), Some("1_1"));
        assert_eq!(seen.param("until"), None);
    }

    // A page with one unreadable event is not used at all.
    let okta = start(|seen, _| {
        let base = format!("http://{}", seen.header("host").unwrap());
        logs_reply(
            r#"[{"uuid":"u1","published":"2025-09-11T16:21:50.123Z","eventType":"x"},{"uuid":"u2"}]"#,
            &[format!("<{base}/api/v1/logs?after=1_2>; rel=\"next\"")],
        )
    })
    .await;
    let err = client(&okta.base, 2, 0)
        .poll_logs(&LogPosition::After("1_1".into()), None, 100)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LogsError::Failed(Error::Malformed { detail, .. }) if detail.contains("event 1")),
        "{err:?}"
    );
}

#[tokio::test]
async fn get_app_user_reads_one_assignment_or_none() {
    let (emulators, client) = emulated().await;
    let okta = &emulators.okta;
    let a = add_user(okta, "a@example.com");
    let unassigned = add_user(okta, "u@example.com");
    let gone = add_user(okta, "gone@example.com");
    let suspended = add_user(okta, "s@example.com");
    let grouped = add_user(okta, "g@example.com");
    okta.assign(&a, Some("admin"));
    okta.assign(&gone, Some("viewer"));
    okta.assign(&suspended, Some("viewer"));
    okta.assign_via_group(&grouped, "Spot users", Some("editor"));
    okta.deactivate(&gone);
    okta.suspend(&suspended);

    let row = client
        .get_app_user(&OktaUserId::new(a.clone()))
        .await
        .unwrap()
        .expect("assigned");
    assert_eq!(row.okta_user_id, a.as_str());
    assert_eq!(row.email.as_deref(), Some("a@example.com"));
    assert_eq!(row.user_status.as_deref(), Some("ACTIVE"));
    assert_eq!(row.app_user_status.as_deref(), Some("ACTIVE"));
    assert_eq!(row.scope.as_deref(), Some("USER"));
    assert_eq!(row.role.as_deref(), Some("admin"));
    assert_eq!(row.malformed, None);

    let row = client
        .get_app_user(&OktaUserId::new(grouped.clone()))
        .await
        .unwrap()
        .expect("assigned through a group");
    assert_eq!(row.scope.as_deref(), Some("GROUP"));
    assert_eq!(row.role.as_deref(), Some("editor"));

    // Suspension keeps the assignment (docs/api-facts.md "Okta statuses").
    let row = client
        .get_app_user(&OktaUserId::new(suspended.clone()))
        .await
        .unwrap()
        .expect("still assigned");
    assert_eq!(row.user_status.as_deref(), Some("SUSPENDED"));

    // Deactivation removes the assignments (docs/api-facts.md "Okta lifecycle"); a
    // never-assigned or unknown user has none either; an id is one path segment.
    for id in [
        gone.as_str(),
        unassigned.as_str(),
        "00unknown",
        "../../../users",
    ] {
        assert_eq!(
            client.get_app_user(&OktaUserId::new(id)).await.unwrap(),
            None,
            "{id}"
        );
    }

    // A DEPROVISIONED user still listed (odd data) comes back as listed.
    okta.set_status(&a, "DEPROVISIONED");
    let row = client
        .get_app_user(&OktaUserId::new(a.clone()))
        .await
        .unwrap()
        .expect("still listed");
    assert_eq!(row.user_status.as_deref(), Some("DEPROVISIONED"));
}

#[tokio::test]
async fn get_app_user_refuses_another_user_s_row_and_keeps_credentials_errors() {
    let okta = start(|seen, _| {
        if seen.path.ends_with("/00u403") {
            return Reply::json(
                403,
                r#"{"errorCode":"E0000006","errorSummary":"You do not have permission to perform the requested action","errorCauses":[]}"#,
            );
        }
        Reply::json(200, row("00uOTHER", "ACTIVE", "o@example.com"))
    })
    .await;
    let client = client(&okta.base, 2, 0);
    let err = client
        .get_app_user(&OktaUserId::new("00uASKED"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { detail, .. } if detail.contains("00uOTHER")),
        "{err:?}"
    );
    let seen = &okta.seen()[0];
    assert_eq!(seen.path, format!("/api/v1/apps/{APP}/users/00uASKED"));
    assert_eq!(seen.param("expand").as_deref(), Some("user"));

    let err = client
        .get_app_user(&OktaUserId::new("00u403"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Credentials { status: 403, .. }),
        "{err:?}"
    );
    assert_no_token(&err);
}

/// Ten reads of one assignment each, the apps bucket at 4 a minute (enforced): at 50 % this
/// client may use 2 before each reset, so it never gets a 429 and every second read waits for
/// the next window (5 waits of up to 61 s each, on tokio's paused clock). With `assigned`
/// false every answer is a 404, which must honour the budget too (a batch of leavers reads
/// nothing else).
async fn ten_reads_within_the_budget(assigned: bool) {
    let (emulators, client) = emulated().await;
    let okta = &emulators.okta;
    let ids: Vec<String> = (0..10)
        .map(|i| add_user(okta, &format!("user{i}@example.com")))
        .collect();
    if assigned {
        for id in &ids {
            okta.assign(id, Some("viewer"));
        }
    }
    okta.set_rate_limit("/api/v1/apps/*", 4);
    let statuses: Arc<Mutex<Vec<Option<u16>>>> = Arc::default();
    let sink = statuses.clone();
    let client = client.with_observer(Arc::new(move |r: &RequestRecord| {
        sink.lock().unwrap().push(r.status)
    }));
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    for id in &ids {
        let row = client
            .get_app_user(&OktaUserId::new(id.clone()))
            .await
            .unwrap();
        assert_eq!(row.is_some(), assigned);
    }
    let statuses = statuses.lock().unwrap().clone();
    let status = if assigned { 200 } else { 404 };
    assert_eq!(statuses, vec![Some(status); 10], "never a 429");
    assert!(
        started.elapsed() >= Duration::from_secs(4 * 59),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn get_app_user_leaves_half_the_bucket_to_others() {
    ten_reads_within_the_budget(true).await;
}

#[tokio::test]
async fn get_app_user_leaves_half_the_bucket_to_others_after_404s() {
    ten_reads_within_the_budget(false).await;
}

#[tokio::test]
async fn poll_logs_leaves_half_the_bucket_to_others() {
    let (emulators, client) = emulated().await;
    let okta = &emulators.okta;
    okta.set_rate_limit("/api/v1/logs", 4);
    let statuses: Arc<Mutex<Vec<Option<u16>>>> = Arc::default();
    let sink = statuses.clone();
    let client = client.with_observer(Arc::new(move |r: &RequestRecord| {
        sink.lock().unwrap().push(r.status)
    }));
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let mut position = LogPosition::Since(chrono::Utc::now());
    for _ in 0..6 {
        position = client.poll_logs(&position, None, 100).await.unwrap().next;
    }
    let statuses = statuses.lock().unwrap().clone();
    assert_eq!(statuses, vec![Some(200); 6], "never a 429");
    assert!(
        started.elapsed() >= Duration::from_secs(2 * 59),
        "{:?}",
        started.elapsed()
    );
}
