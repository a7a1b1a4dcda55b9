//! The Spot client against purpose-built fake servers reproducing the reference's envelopes,
//! error bodies and rate-limit headers, and (user details and policy mappings, the access
//! calls) against the Spot emulator over real HTTP on 127.0.0.1.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{http_settings, start, Reply};
use okta_spot_sim::{Burst429, Emulators, FailSpec, Fault, Fixture, SpotSim};
use okta_spot_sync::config::SpotSettings;
use okta_spot_sync::model::{NewSpotUser, PolicyGrant, SpotDirectory, SpotUserKind};
use okta_spot_sync::spot::{
    is_already_exists, is_not_found, SpotClient, SpotUserDetails, UserDetails, UserLookup,
};
use okta_spot_sync::Error;
use secrecy::SecretString;

const TOKEN: &str = "spot-secret-token-f872e7b157866a36";

fn client(base: &str, retries: u32) -> SpotClient {
    let settings = SpotSettings {
        base_url: url::Url::parse(base).unwrap(),
        token: SecretString::from(TOKEN.to_string()),
        write_concurrency: 4,
        roles: Default::default(),
    };
    SpotClient::new(&settings, &http_settings(retries)).unwrap()
}

fn envelope(kind: &str, items: &str, count: usize) -> String {
    format!(
        r#"{{"request":{{"id":"3ab3fdf7-3af3-46db-9e63-b88cfdac058c","url":"/x","method":"GET","timestamp":"2018-08-20T15:31:12.730Z"}},
        "response":{{"status":{{"code":200,"message":"OK"}},"kind":"{kind}","items":[{items}],"count":{count}}}}}"#
    )
}

fn error_body(status: u16, message: &str, code: &str, text: &str) -> String {
    format!(
        r#"{{"request":{{"id":"r"}},"response":{{"status":{{"code":{status},"message":"{message}"}},"errors":[{{"code":"{code}","message":"{text}"}}]}}}}"#
    )
}

const OK_BODY: &str = r#"{"request": {"id": "dfd98869-42a7-4871-ba83-cf4326109c37"}, "response": {"status": {"message": "OK", "code": 200}}}"#;

fn new_user() -> NewSpotUser {
    NewSpotUser {
        email: "Jane.Doe@example.com".into(),
        first_name: "Jane".into(),
        last_name: "Doe".into(),
        spot_role: "viewer".into(),
    }
}

fn assert_no_token(err: &Error) {
    assert!(!err.to_string().contains(TOKEN), "token in Display: {err}");
    assert!(
        !format!("{err:?}").contains(TOKEN),
        "token in Debug: {err:?}"
    );
}

#[tokio::test]
async fn lists_users_from_the_spec_envelope_leniently() {
    let items = r#"
      {"userId": "u-a1b2c3d4", "username": "John Doe", "type": "personal", "email": "John.Doe@company.com", "mfa": "false", "groupNames": ["Developers", "DevOps"]},
      {"userId": "u-4d3c2b1a", "userName": "Jane Doe", "type": "personal", "email": "jane.doe@company.com", "mfa": "true", "groupNames": ["DevOps", "IT"]},
      {"userId": "pu-87654321", "username": "ci-bot", "type": "programmatic", "mfa": false},
      {"userId": "u-00000001", "username": "x", "type": "robot", "email": "not-an-email", "mfa": {"weird": 1}, "extra": [1,2]},
      {"userId": "u-00000002", "username": "old", "email": "old@example.com"},
      {"userId": "pu-00000003", "username": "untyped bot"}"#;
    let spot =
        start(move |_, _| Reply::json(200, envelope("spotinst:setup:organization:user", items, 6)))
            .await;
    let client = client(&spot.base, 0);
    let users = client.list_users().await.unwrap();
    assert_eq!(users.len(), 6);
    assert_eq!(
        users[0].email.as_ref().unwrap().as_str(),
        "john.doe@company.com"
    );
    assert_eq!(users[0].kind, SpotUserKind::Personal);
    assert_eq!(users[1].username, "Jane Doe");
    assert_eq!(users[2].kind, SpotUserKind::Programmatic);
    assert_eq!(users[3].kind, SpotUserKind::Unknown);
    assert_eq!(users[3].email, None);
    assert_eq!(users[4].kind, SpotUserKind::Personal, "type missing, u- id");
    assert_eq!(
        users[5].kind,
        SpotUserKind::Programmatic,
        "type missing, pu- id"
    );

    let seen = spot.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/setup/organization/user");
    assert_eq!(seen[0].query, None, "no accountId on org endpoints");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}"))
    );
    assert_eq!(
        seen[0].header("content-type").as_deref(),
        Some("application/json")
    );

    let info = client.check().await.unwrap();
    assert_eq!(info.personal_users, 3);
    assert_eq!(info.programmatic_users, 2);
    assert_eq!(info.unknown_users, 1);
}

#[tokio::test]
async fn an_item_without_user_id_or_a_bad_envelope_is_malformed() {
    let spot = start(|_, _| {
        Reply::json(
            200,
            envelope(
                "k",
                r#"{"userId":"u-1","type":"personal"},{"username":"ghost","type":"personal"}"#,
                2,
            ),
        )
    })
    .await;
    let err = client(&spot.base, 0).list_users().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("item 1"), "{err}");

    for body in [
        r#"{"request":{"id":"r"}}"#,
        r#"{"request":{"id":"r"},"response":{"status":{"code":200},"items":{"userId":"u-1"}}}"#,
        r#"{"request":{"id":"r"},"response":{"status":{"code":200},"count":0}}"#,
        r#"[{"userId":"u-1"}]"#,
        "not json",
    ] {
        let spot = start(move |_, _| Reply::json(200, body)).await;
        let err = client(&spot.base, 0).list_users().await.unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{body}: {err:?}");
    }
}

#[tokio::test]
async fn lists_accounts_and_policies() {
    let spot = start(|seen, _| match seen.path.as_str() {
        "/setup/account" => Reply::json(
            200,
            envelope(
                "spotinst:setup:account",
                r#"{"accountId":"act-0b18f123","organizationId":"606079861123","name":"test","createdAt":"2017-06-04T16:32:58.000Z"},
                   {"accountId":"act-57765123","organizationId":"606079861123","name":"prod","createdAt":"2017-04-16T09:58:24.000Z"}"#,
                2,
            ),
        ),
        "/setup/organization/policy" => Reply::json(
            200,
            envelope(
                "spotinst:setup:organization:policy",
                r#"{"id":"pol-12345678","name":"Custom","type":"ACCOUNT"},{"id":3,"name":"Account Viewer","type":"ACCOUNT"}"#,
                2,
            ),
        ),
        _ => Reply::json(404, "{}"),
    })
    .await;
    let client = client(&spot.base, 0);
    assert_eq!(
        client.list_account_ids().await.unwrap(),
        ["act-0b18f123", "act-57765123"]
    );
    let policies = client.list_policies().await.unwrap();
    assert_eq!(policies[1].id, "3");
    assert_eq!(policies[1].name, "Account Viewer");
}

#[tokio::test]
async fn create_sends_the_body_and_returns_the_user_id() {
    let spot = start(|_, _| {
        Reply::json(
            200,
            envelope(
                "spotinst:setup:user",
                r#"{"userId":"u-1a2b3c4d","id":9056,"firstName":"Jane","lastName":"Doe","email":"Jane.Doe@example.com","organizationId":606079860000}"#,
                1,
            ),
        )
    })
    .await;
    let client = client(&spot.base, 3);
    let id = client.create_user(&new_user()).await.unwrap();
    assert_eq!(id, "u-1a2b3c4d");

    let seen = spot.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/setup/user");
    assert_eq!(seen[0].query, None);
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["email"], "Jane.Doe@example.com");
    assert_eq!(body["firstName"], "Jane");
    assert_eq!(body["lastName"], "Doe");
    assert_eq!(body["role"], "viewer");
    let password = body["password"].as_str().unwrap();
    assert!(password.len() >= 20);
    assert!(password.bytes().any(|b| b.is_ascii_uppercase()));
    assert!(password.bytes().any(|b| b.is_ascii_lowercase()));
    assert!(password.bytes().any(|b| b.is_ascii_digit()));
    assert!(password.bytes().any(|b| !b.is_ascii_alphanumeric()));
    assert!(!password.contains(['+', '=', '@']));
}

#[tokio::test]
async fn create_without_user_id_is_malformed() {
    // The PySDK fixture (verbatim values): no userId in the item.
    let spot = start(|_, _| {
        Reply::json(
            200,
            envelope(
                "spotinst:setup:user",
                r#"{"id": 9056, "firstName": "Test", "lastName": "Test", "displayName": "Test Test", "email": "test@gmail.com", "organizationId": 606079860000}"#,
                1,
            ),
        )
    })
    .await;
    let err = client(&spot.base, 0)
        .create_user(&new_user())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("userId"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn create_is_not_retried_after_a_5xx_but_is_after_a_429() {
    let spot = start(|_, _| Reply::json(502, "{}")).await;
    let err = client(&spot.base, 3)
        .create_user(&new_user())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert_eq!(
        spot.count(),
        1,
        "a create that may have happened is not repeated"
    );

    let spot = start(|_, nth| {
        if nth == 0 {
            Reply::json(
                429,
                r#"{"request":{"id":"546eeaef"},"response":{"status":{"code":429,"message":"Too Many Requests"},"data":"Rate limit exceeded"}}"#,
            )
            .header("x-ratelimit-limit", "100")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", "7")
        } else {
            Reply::json(200, envelope("spotinst:setup:user", r#"{"userId":"u-1"}"#, 1))
        }
    })
    .await;
    let started = tokio::time::Instant::now();
    let id = client(&spot.base, 3)
        .create_user(&new_user())
        .await
        .unwrap();
    assert_eq!(id, "u-1");
    assert_eq!(spot.count(), 2);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(7) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    let seen = spot.seen();
    assert_eq!(
        seen[0].body, seen[1].body,
        "the retry repeats the same request"
    );
}

#[tokio::test(start_paused = true)]
async fn create_is_not_retried_after_a_timeout() {
    let spot = start(|_, _| {
        Reply::json(
            200,
            envelope("spotinst:setup:user", r#"{"userId":"u-1"}"#, 1),
        )
        .delayed(Duration::from_secs(3600))
    })
    .await;
    let err = client(&spot.base, 3)
        .create_user(&new_user())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("POST /setup/user"), "{err}");
    assert_eq!(spot.count(), 1);
}

#[tokio::test]
async fn already_exists_is_recognisable() {
    let spot = start(|_, _| {
        Reply::json(
            400,
            error_body(
                400,
                "Bad Request",
                "USER_ALREADY_EXISTS",
                "User with this email already exists",
            ),
        )
    })
    .await;
    let err = client(&spot.base, 0)
        .create_user(&new_user())
        .await
        .unwrap_err();
    assert!(is_already_exists(&err), "{err:?}");
    assert_eq!(err.api_code(), Some("USER_ALREADY_EXISTS"));
    let other =
        start(|_, _| Reply::json(400, error_body(400, "Bad Request", "INVALID_NAME", "bad"))).await;
    let err = client(&other.base, 0)
        .create_user(&new_user())
        .await
        .unwrap_err();
    assert!(!is_already_exists(&err));
}

#[tokio::test]
async fn delete_treats_already_gone_as_success() {
    let deleted: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = deleted.clone();
    let spot = start(move |seen, _| {
        log.lock()
            .unwrap()
            .push(format!("{} {}", seen.method, seen.path));
        match seen.path.as_str() {
            "/setup/user/u-1234abcd" => Reply::json(200, OK_BODY),
            "/setup/user/u-gone0000" => Reply::json(
                400,
                error_body(
                    400,
                    "Bad Request",
                    "USER_DOESNT_EXIST",
                    "User does not exist",
                ),
            ),
            "/setup/user/u-gone0404" => {
                Reply::json(404, error_body(404, "Not Found", "USER_NOT_FOUND", "no"))
            }
            _ => Reply::json(
                400,
                error_body(400, "Bad Request", "CANT_DELETE_LAST_ADMIN", "no"),
            ),
        }
    })
    .await;
    let client = client(&spot.base, 0);
    client.delete_user(&"u-1234abcd".into()).await.unwrap();
    client.delete_user(&"u-gone0000".into()).await.unwrap();
    client.delete_user(&"u-gone0404".into()).await.unwrap();
    let err = client.delete_user(&"u-admin000".into()).await.unwrap_err();
    assert_eq!(err.api_code(), Some("CANT_DELETE_LAST_ADMIN"));
    assert_eq!(
        *deleted.lock().unwrap(),
        [
            "DELETE /setup/user/u-1234abcd",
            "DELETE /setup/user/u-gone0000",
            "DELETE /setup/user/u-gone0404",
            "DELETE /setup/user/u-admin000"
        ]
    );
}

#[tokio::test]
async fn programmatic_users_are_refused_without_a_request() {
    let spot = start(|_, _| Reply::json(200, OK_BODY)).await;
    let client = client(&spot.base, 0);
    let err = client.delete_user(&"pu-87654321".into()).await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("programmatic"), "{err}");
    let err = client
        .set_policy_mapping(&"pu-87654321".into(), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)));
    assert_eq!(spot.count(), 0);
}

#[tokio::test]
async fn policy_mapping_puts_the_grants() {
    let spot = start(|_, _| Reply::json(200, OK_BODY)).await;
    let client = client(&spot.base, 0);
    client
        .set_policy_mapping(
            &"u-1234abcd".into(),
            &[PolicyGrant {
                policy_id: "3".into(),
                account_ids: vec!["act-0b18f123".into(), "act-57765123".into()],
            }],
        )
        .await
        .unwrap();
    let seen = spot.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].path, "/setup/user/u-1234abcd/policyMapping");
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"policies":[{"policyId":"3","accountIds":["act-0b18f123","act-57765123"]}]})
    );
}

#[tokio::test(start_paused = true)]
async fn reads_are_retried_on_5xx() {
    let spot = start(|_, nth| {
        if nth < 2 {
            Reply::json(503, "")
        } else {
            Reply::json(200, envelope("k", r#"{"accountId":"act-1"}"#, 1))
        }
    })
    .await;
    let client = client(&spot.base, 2);
    assert_eq!(client.list_account_ids().await.unwrap(), ["act-1"]);
    assert_eq!(client.requests_sent(), 3);
}

#[tokio::test]
async fn a_401_is_a_credentials_error_and_no_error_carries_the_token() {
    let spot = start(|_, _| {
        Reply::json(
            401,
            format!(
                r#"{{"request":{{"id":"r"}},"response":{{"status":{{"code":401,"message":"Unauthorized"}},"errors":[{{"code":"UNAUTHORIZED","message":"bad token {TOKEN}"}}]}}}}"#
            ),
        )
    })
    .await;
    let client = client(&spot.base, 3);
    let err = client.list_users().await.unwrap_err();
    assert!(
        matches!(err, Error::Credentials { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("UNAUTHORIZED"), "{err}");
    assert_no_token(&err);
    assert_eq!(spot.count(), 1);
    for err in [
        client.create_user(&new_user()).await.unwrap_err(),
        client.delete_user(&"u-1".into()).await.unwrap_err(),
        client.check().await.unwrap_err(),
    ] {
        assert_no_token(&err);
    }
    assert!(!format!("{client:?}").contains(TOKEN));

    // A 403 is a credentials error too; a 400 echoing the token is scrubbed.
    let spot = start(|_, nth| {
        if nth == 0 {
            Reply::json(403, "")
        } else {
            Reply::json(400, error_body(400, "Bad Request", TOKEN, TOKEN))
        }
    })
    .await;
    let client = self::client(&spot.base, 0);
    let err = client.list_users().await.unwrap_err();
    assert!(
        matches!(err, Error::Credentials { status: 403, .. }),
        "{err:?}"
    );
    let err = client.list_users().await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 400, .. }), "{err:?}");
    assert_no_token(&err);
}

// ----- access: user details and policy mappings against the emulator -----

const CAROL: &str = "u-c4a701d5";
const ACT_TEST: &str = "act-0b18f123";
const ACT_PROD: &str = "act-57765123";

async fn emulated() -> (Emulators, SpotClient) {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let settings = SpotSettings {
        base_url: url::Url::parse(&emu.spot.url()).unwrap(),
        token: SecretString::from(emu.spot.token()),
        write_concurrency: 4,
        roles: Default::default(),
    };
    let client = SpotClient::new(&settings, &http_settings(3)).unwrap();
    (emu, client)
}

async fn details(client: &SpotClient, user_id: &str) -> UserDetails {
    match client.get_user_details(&user_id.into()).await.unwrap() {
        UserLookup::Found(d) => d,
        UserLookup::Gone => panic!("{user_id} is gone"),
    }
}

fn grant(policy_id: &str, accounts: &[&str]) -> PolicyGrant {
    PolicyGrant {
        policy_id: policy_id.into(),
        account_ids: accounts.iter().map(|a| a.to_string()).collect(),
    }
}

fn fail(status: u16, times: u64) -> Fault {
    Fault {
        fail: Some(FailSpec {
            status,
            nth: 1,
            times: Some(times),
        }),
        ..Fault::default()
    }
}

const DETAILS_ROUTE: &str = "GET /setup/user/{userId}";

#[tokio::test]
async fn user_details_read_role_and_policies_from_the_emulator() {
    let (emu, client) = emulated().await;
    let s: &SpotSim = &emu.spot;
    let viewer = s.policy_id_by_name("Account Viewer").unwrap();
    let d = details(&client, CAROL).await;
    assert_eq!(d.user_id, CAROL);
    assert_eq!(d.email.as_ref().unwrap().as_str(), "carol@example.com");
    assert_eq!(d.kind, SpotUserKind::Personal);
    assert_eq!(d.role.as_deref(), Some("viewer"));
    assert_eq!(d.grants(), [grant(&viewer, &[ACT_TEST])]);
    assert_eq!(d.policies[0].policy_name.as_deref(), Some("Account Viewer"));
    assert_eq!(d.policies[0].policy_type.as_deref(), Some("ACCOUNT"));

    // A hand-made role change and extra grant are what the next read shows.
    s.set_role(CAROL, "editor");
    let editor = s.policy_id_by_name("Account Editor").unwrap();
    s.grant_policy(CAROL, &editor, &[ACT_PROD]);
    let d = details(&client, CAROL).await;
    assert_eq!(d.role.as_deref(), Some("editor"));
    assert_eq!(
        d.grants(),
        [grant(&viewer, &[ACT_TEST]), grant(&editor, &[ACT_PROD])]
    );

    // A programmatic user can be read (never written): no role.
    let d = details(&client, "pu-5d1e2f3a").await;
    assert_eq!(d.kind, SpotUserKind::Programmatic);
    assert_eq!(d.role, None);
    assert_eq!(s.request_count(DETAILS_ROUTE), 3);
    assert_eq!(s.write_requests(), 0, "reading details writes nothing");
}

#[tokio::test]
async fn a_missing_user_is_gone_not_an_error() {
    let (emu, client) = emulated().await;
    let s = &emu.spot;
    // The emulator answers the documented 400 USER_DOESNT_EXIST.
    assert_eq!(
        client.get_user_details(&"u-00000000".into()).await.unwrap(),
        UserLookup::Gone
    );
    s.remove_user(CAROL);
    assert_eq!(
        client.get_user_details(&CAROL.into()).await.unwrap(),
        UserLookup::Gone
    );
    // A 404 (undocumented, possible) with a not-found code is gone too, and not retried.
    s.set_fault(DETAILS_ROUTE, fail(404, 1));
    s.reset_counts();
    assert_eq!(
        client.get_user_details(&"u-f7a9b3e1".into()).await.unwrap(),
        UserLookup::Gone
    );
    assert_eq!(s.request_count(DETAILS_ROUTE), 1);
    // Any other refusal is an error, never "gone".
    s.set_fault(DETAILS_ROUTE, fail(400, 1));
    let err = client
        .get_user_details(&"u-f7a9b3e1".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 400, .. }), "{err:?}");
    assert!(!is_not_found(&err));
    assert!(
        err.to_string().contains("GET /setup/user/u-f7a9b3e1"),
        "{err}"
    );
    assert_no_token(&err);
    let err = client.get_user_details(&" ".into()).await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn a_bare_404_is_gone_and_a_404_with_another_code_is_an_error() {
    let spot = start(|seen, _| {
        if seen.path.ends_with("u-bare") {
            Reply::json(404, "")
        } else {
            Reply::json(
                404,
                error_body(404, "Not Found", "ROUTE_UNKNOWN", "no such route"),
            )
        }
    })
    .await;
    let client = client(&spot.base, 0);
    assert_eq!(
        client.get_user_details(&"u-bare".into()).await.unwrap(),
        UserLookup::Gone
    );
    let err = client
        .get_user_details(&"u-other".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 404, .. }), "{err:?}");
    // A 200 with no item is gone; an item for another user is malformed.
    let spot = start(|seen, _| {
        if seen.path.ends_with("u-empty") {
            Reply::json(200, OK_BODY)
        } else {
            Reply::json(
                200,
                envelope(
                    "spotinst:setup:access:user",
                    r#"{"userId":"u-someone-else","policies":[]}"#,
                    1,
                ),
            )
        }
    })
    .await;
    let client = self::client(&spot.base, 0);
    assert_eq!(
        client.get_user_details(&"u-empty".into()).await.unwrap(),
        UserLookup::Gone
    );
    let err = client
        .get_user_details(&"u-asked".into())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn user_details_absorb_429_and_5xx_like_other_reads() {
    let (emu, client) = emulated().await;
    let s = &emu.spot;
    s.set_fault(
        DETAILS_ROUTE,
        Fault {
            burst_429: Some(Burst429 {
                after: 0,
                count: 2,
                reset_secs: 3,
            }),
            ..Fault::default()
        },
    );
    let started = tokio::time::Instant::now();
    let d = details(&client, CAROL).await;
    assert_eq!(d.role.as_deref(), Some("viewer"));
    assert_eq!(
        s.request_count(DETAILS_ROUTE),
        3,
        "two 429s, then the answer"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "waited X-RateLimit-Reset each time: {:?}",
        started.elapsed()
    );
    s.clear_faults();
    s.set_fault(DETAILS_ROUTE, fail(503, 2));
    s.reset_counts();
    let d = details(&client, CAROL).await;
    assert_eq!(d.user_id, CAROL);
    assert_eq!(
        s.request_count(DETAILS_ROUTE),
        3,
        "two 503s, then the answer"
    );
}

#[tokio::test]
async fn a_policy_mapping_replaces_the_set_and_star_covers_accounts_added_later() {
    let (emu, client) = emulated().await;
    let s = &emu.spot;
    let viewer = s.policy_id_by_name("Account Viewer").unwrap();
    let editor = s.policy_id_by_name("Account Editor").unwrap();
    s.grant_policy(CAROL, &editor, &[ACT_PROD]);

    // The caller's union: what the user has, plus `"*"` on the viewer policy.
    let mut grants = details(&client, CAROL).await.grants();
    grants.retain(|g| g.policy_id != viewer);
    grants.push(grant(&viewer, &["*"]));
    client
        .set_policy_mapping(&CAROL.into(), &grants)
        .await
        .unwrap();
    let d = details(&client, CAROL).await;
    assert_eq!(
        d.grants(),
        [grant(&editor, &[ACT_PROD]), grant(&viewer, &["*"])]
    );
    let later = s.add_account("added later");
    let d = details(&client, CAROL).await;
    assert!(d.policy(&viewer).any(|p| p.covers(&later)));
    assert!(!d.policy(&editor).any(|p| p.covers(&later)));
    assert_eq!(
        s.effective_policies(CAROL).unwrap()[1],
        (
            viewer.clone(),
            vec![ACT_TEST.into(), ACT_PROD.into(), later.clone()]
        )
    );

    // The PUT replaces: a set without the editor grant removes it.
    client
        .set_policy_mapping(&CAROL.into(), &[grant(&viewer, &["*"])])
        .await
        .unwrap();
    assert_eq!(
        details(&client, CAROL).await.grants(),
        [grant(&viewer, &["*"])]
    );

    // Refusals are errors naming the route, the user is unchanged.
    let err = client
        .set_policy_mapping(&CAROL.into(), &[grant("pol-00000000", &["*"])])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Status { status: 400, code: Some(c), .. } if c == "POLICY_DOESNT_EXIST"),
        "{err:?}"
    );
    assert!(err.to_string().contains("policyMapping"), "{err}");
    let err = client
        .set_policy_mapping(&CAROL.into(), &[grant(&viewer, &["act-00000000"])])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Status { code: Some(c), .. } if c == "ACCOUNT_DOESNT_EXIST"),
        "{err:?}"
    );
    let err = client
        .set_policy_mapping(&"u-00000000".into(), &[grant(&viewer, &["*"])])
        .await
        .unwrap_err();
    assert!(is_not_found(&err), "{err:?}");
    assert_eq!(
        details(&client, CAROL).await.grants(),
        [grant(&viewer, &["*"])]
    );
    let err = client
        .set_policy_mapping(&"pu-5d1e2f3a".into(), &[grant(&viewer, &["*"])])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_eq!(s.request_count("PUT /setup/user/{userId}/policyMapping"), 5);
}

#[tokio::test(start_paused = true)]
async fn a_policy_mapping_is_retried_after_429_and_5xx() {
    let (emu, client) = emulated().await;
    let s = &emu.spot;
    let viewer = s.policy_id_by_name("Account Viewer").unwrap();
    let route = "PUT /setup/user/{userId}/policyMapping";
    s.set_fault(
        route,
        Fault {
            burst_429: Some(Burst429 {
                after: 0,
                count: 1,
                reset_secs: 2,
            }),
            ..Fault::default()
        },
    );
    client
        .set_policy_mapping(&CAROL.into(), &[grant(&viewer, &[ACT_TEST, ACT_PROD])])
        .await
        .unwrap();
    assert_eq!(s.request_count(route), 2);
    s.clear_faults();
    s.set_fault(route, fail(500, 1));
    client
        .set_policy_mapping(&CAROL.into(), &[grant(&viewer, &["*"])])
        .await
        .unwrap();
    assert_eq!(
        s.request_count(route),
        4,
        "a PUT is idempotent: retried after a 5xx"
    );
    assert_eq!(
        s.user(CAROL).unwrap().policies,
        [(viewer, vec!["*".to_string()])]
    );
}
