//! The Okta client against purpose-built fake servers reproducing the reference's responses:
//! Link headers (separate lines and comma-joined), capped pages, 5xx, 429 waits, foreign
//! next links, pagination loops, bad rows and bodies, credentials errors.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{http_settings, start, Reply, Seen};
use okta_spot_sync::config::OktaSettings;
use okta_spot_sync::http::RequestRecord;
use okta_spot_sync::model::IdentitySource;
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
