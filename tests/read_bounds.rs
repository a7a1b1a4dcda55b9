//! Bounded reads: a next link that always brings new users is stopped by
//! `okta.max_read_pages`, `okta.max_read_rows` or `okta.max_read_time`, as an incomplete read
//! (nothing is planned from it) whose message names the bound and the key that raises it.
//!
//! The fake Okta serves pages of fresh users with a next link for `ENDLESS` pages, far past
//! every bound of these tests, then ends the list: without the bounds the read would succeed
//! (the tests would fail), with them it stops early. Time runs on tokio's paused clock.

mod common;

use std::time::Duration;

use common::{http_settings, start, Reply, Seen};
use okta_spot_sync::config::{OktaSettings, ReadBounds};
use okta_spot_sync::import::OktaUserDirectory;
use okta_spot_sync::model::IdentitySource;
use okta_spot_sync::okta::OktaClient;
use okta_spot_sync::Error;
use secrecy::SecretString;

const TOKEN: &str = "00okta-secret-token-bounds";
const APP: &str = "0oa1example";
/// Pages the fake serves before its list ends.
const ENDLESS: usize = 1_000;
const ROWS_PER_PAGE: usize = 2;

fn client(base: &str, bounds: ReadBounds) -> OktaClient {
    let settings = OktaSettings {
        org_url: url::Url::parse(base).unwrap(),
        app_id: APP.into(),
        auth: okta_spot_sync::config::OktaAuth::Ssws(SecretString::from(TOKEN.to_string())),
        role_attribute: "role".into(),
        page_size: 500,
        provision_statuses: vec!["ACTIVE".into()],
        hold_statuses: vec!["SUSPENDED".into()],
        max_api_capacity_percent: 50,
        read_bounds: bounds,
    };
    OktaClient::new(&settings, &http_settings(0)).unwrap()
}

fn bounds(pages: u32, rows: u64, time: Duration) -> ReadBounds {
    ReadBounds::new(pages, rows, time).unwrap()
}

/// An app-user row (`expand=user`) or, for `/api/v1/users`, a user.
fn row(id: &str, users_list: bool) -> String {
    let email = format!("{id}@example.com");
    let user = format!(
        r#"{{"id":"{id}","status":"ACTIVE","profile":{{"firstName":"F","lastName":"L","email":"{email}","login":"{email}"}}}}"#
    );
    if users_list {
        return user;
    }
    format!(
        r#"{{"id":"{id}","scope":"USER","status":"ACTIVE","credentials":{{"userName":"{email}"}},"profile":{{"role":"viewer"}},"_embedded":{{"user":{user}}}}}"#
    )
}

/// Page `after=N` (none = 0) of an endless list of new users.
fn endless(seen: &Seen) -> Reply {
    let n: usize = seen.param("after").map(|a| a.parse().unwrap()).unwrap_or(0);
    let users_list = seen.path == "/api/v1/users";
    let rows: Vec<String> = (0..ROWS_PER_PAGE)
        .map(|i| row(&format!("00u{n}x{i}"), users_list))
        .collect();
    let mut reply = Reply::json(200, format!("[{}]", rows.join(",")));
    if n + 1 < ENDLESS {
        let host = seen.header("host").unwrap();
        let mut next = url::Url::parse(&format!("http://{host}{}", seen.path)).unwrap();
        next.set_query(seen.query.as_deref());
        let kept: Vec<(String, String)> = next
            .query_pairs()
            .filter(|(k, _)| k != "after")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        next.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("after", &(n + 1).to_string());
        reply = reply.header("link", format!("<{next}>; rel=\"next\""));
    }
    reply
}

fn assert_names(err: &Error, needles: &[&str]) {
    let text = err.to_string();
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    assert!(!text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn the_page_bound_stops_an_endless_next_link() {
    let okta = start(|seen, _| endless(seen)).await;
    let client = client(&okta.base, bounds(5, 1_000_000, Duration::from_secs(3600)));
    let err = client.read_assignments().await.unwrap_err();
    assert!(matches!(err, Error::IncompleteRead(_)), "{err:?}");
    assert_names(
        &err,
        &[
            "okta.max_read_pages = 5",
            "raise okta.max_read_pages",
            "OKTA_SPOT_SYNC__OKTA__MAX_READ_PAGES",
            "nothing was changed",
        ],
    );
    assert_eq!(client.pages_fetched(), 5);
    // At most the next page was asked for while page 5 arrived.
    assert!(okta.count() <= 6, "{}", okta.count());
}

#[tokio::test]
async fn the_row_bound_stops_an_endless_next_link() {
    let okta = start(|seen, _| endless(seen)).await;
    let client = client(&okta.base, bounds(10_000, 7, Duration::from_secs(3600)));
    let err = client.read_assignments().await.unwrap_err();
    assert!(matches!(err, Error::IncompleteRead(_)), "{err:?}");
    assert_names(
        &err,
        &[
            "8 rows",
            "okta.max_read_rows = 7",
            "raise okta.max_read_rows",
            "OKTA_SPOT_SYNC__OKTA__MAX_READ_ROWS",
        ],
    );
    assert_eq!(client.pages_fetched(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_time_bound_stops_a_slow_endless_next_link() {
    // Each page takes 20 s (under http.timeout): the read passes one minute at page 3.
    let okta = start(|seen, _| endless(seen).delayed(Duration::from_secs(20))).await;
    let client = client(
        &okta.base,
        bounds(10_000, 1_000_000, Duration::from_secs(60)),
    );
    let err = client.read_assignments().await.unwrap_err();
    assert!(matches!(err, Error::IncompleteRead(_)), "{err:?}");
    assert_names(
        &err,
        &[
            "okta.max_read_time (1m)",
            "raise okta.max_read_time",
            "OKTA_SPOT_SYNC__OKTA__MAX_READ_TIME",
        ],
    );
    assert!(okta.count() < 10, "{}", okta.count());
}

#[tokio::test]
async fn import_s_walk_of_the_org_s_users_is_bounded_too() {
    let okta = start(|seen, _| endless(seen)).await;
    let client = client(&okta.base, bounds(3, 1_000_000, Duration::from_secs(3600)));
    let err = OktaUserDirectory::list_org_users(&client, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IncompleteUserRead(_)), "{err:?}");
    assert_names(&err, &["okta.max_read_pages = 3", "/api/v1/users"]);

    // `import`'s own stop after k pages comes first and is not an error.
    let stopped = OktaUserDirectory::list_org_users(&client, Some(2))
        .await
        .unwrap();
    assert!(stopped.is_none());

    // A search (one walk per user) is bounded the same way.
    let err = OktaUserDirectory::search_users_by_email(&client, "a@example.com")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IncompleteUserRead(_)), "{err:?}");
    assert_names(&err, &["okta.max_read_pages = 3"]);
}
