//! Okta OAuth 2.0 service-app auth (private_key_jwt + DPoP) end to end, against the bundled
//! emulators on 127.0.0.1: a reconcile through the real binary, token renewal on tokio's
//! paused clock, each way the credentials can be wrong (each its own error, exit 1, no
//! writes), the emulator's checks of proofs on API calls, and that no key or token reaches
//! the output.
//!
//! EC keys are generated per test; the RSA key is a test-only fixture
//! (`tests/fixtures/oauth-test-rsa-2048.pem`).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use okta_spot_sim::{Emulators, Fixture, OAuthClientFixture, OktaSim, Section};
use okta_spot_sync::config::{self, Settings};
use okta_spot_sync::cycle::{run_cycle, CycleOptions};
use okta_spot_sync::http::RequestRecord;
use okta_spot_sync::ledger::LedgerStore;
use okta_spot_sync::okta::client::ROUTE_APP_USERS;
use okta_spot_sync::okta::dpop::DpopKey;
use okta_spot_sync::okta::jwt::ClientKey;
use okta_spot_sync::okta::oauth::ROUTE_TOKEN;
use okta_spot_sync::okta::OktaClient;
use okta_spot_sync::report::Mode;
use okta_spot_sync::spot::client::SpotClient;
use okta_spot_sync::Error;
use p256::pkcs8::EncodePrivateKey as _;
use secrecy::SecretString;
use serde_json::{json, Value};

const CLIENT_ID: &str = "0oaSpotSyncService01";
const KID: &str = "test-key-1";
const TOKEN_ROUTE: &str = OktaSim::TOKEN_ROUTE;
const RSA_PEM: &str = include_str!("fixtures/oauth-test-rsa-2048.pem");

/// A fresh EC P-256 private key (PKCS#8 PEM) and its public JWK.
fn ec_key() -> (String, Value) {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pem = secret
        .to_pkcs8_pem(Default::default())
        .unwrap()
        .as_str()
        .to_string();
    let jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string()).unwrap();
    (pem, jwk)
}

/// The public JWK of the RSA fixture, computed with the `rsa` crate.
fn rsa_jwk() -> Value {
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PEM).unwrap();
    json!({
        "kty": "RSA",
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    })
}

fn with_kid(mut jwk: Value, kid: &str) -> Value {
    jwk["kid"] = Value::String(kid.to_string());
    jwk
}

/// What the test varies.
struct Case {
    /// The PEM the tool is configured with.
    pem: String,
    /// The JWK registered on the emulator's service app.
    registered: Value,
    granted: Vec<&'static str>,
    dpop_required: bool,
    /// `okta.scopes`; `None` keeps the default.
    scopes: Option<Vec<&'static str>>,
    /// `okta.dpop`.
    dpop: bool,
    kid: Option<&'static str>,
}

impl Case {
    fn ec() -> Case {
        let (pem, jwk) = ec_key();
        Case {
            pem,
            registered: with_kid(jwk, KID),
            granted: vec!["okta.apps.read", "okta.users.read", "okta.logs.read"],
            dpop_required: true,
            scopes: None,
            dpop: true,
            kid: Some(KID),
        }
    }
}

struct Env {
    emu: Emulators,
    _dir: tempfile::TempDir,
    config: PathBuf,
    pem: String,
}

impl Env {
    async fn start(case: Case) -> Env {
        let mut fixture = Fixture::demo();
        fixture.okta.oauth_clients = vec![OAuthClientFixture {
            client_id: CLIENT_ID.into(),
            jwks: vec![case.registered.clone()],
            scopes: case.granted.iter().map(|s| s.to_string()).collect(),
            dpop_required: case.dpop_required,
        }];
        let emu = Emulators::start_local(fixture).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("okta-private-key.pem");
        write_0600(&key_path, &case.pem);
        let scopes = case
            .scopes
            .map(|s| {
                format!(
                    "scopes = [{}]\n",
                    s.iter()
                        .map(|x| format!("{x:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .unwrap_or_default();
        let kid = case
            .kid
            .map(|k| format!("key_id = {k:?}\n"))
            .unwrap_or_default();
        let okta_keys = format!(
            "auth = \"oauth\"\nclient_id = {CLIENT_ID:?}\nprivate_key_file = {:?}\n{kid}{scopes}dpop = {}\n",
            key_path.display().to_string(),
            case.dpop,
        );
        let config = emu
            .client_config(dir.path())
            .without_okta_token()
            .keys(Section::Okta, &okta_keys)
            .max_retries(1)
            .append("[log]\nlevel = \"trace\"\n")
            .write()
            .unwrap();
        Env {
            emu,
            _dir: dir,
            config,
            pem: case.pem,
        }
    }

    fn settings(&self) -> Settings {
        config::load(&self.config, &|_| None).unwrap().settings
    }

    fn okta(&self) -> OktaClient {
        let s = self.settings();
        OktaClient::new(&s.okta, &s.http).unwrap()
    }

    /// Runs the binary (at `RUST_LOG=trace`) off the runtime thread, so the emulators keep
    /// serving.
    async fn run(&self, args: &[&str]) -> Output {
        let config = self.config.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_okta-spot-sync"))
                .arg("--config")
                .arg(&config)
                .args(&args)
                .env("RUST_LOG", "trace")
                .env_remove("OKTA_SPOT_SYNC_CONFIG")
                .env_remove("OKTA_SPOT_SYNC_OKTA_TOKEN")
                .env_remove("OKTA_SPOT_SYNC_SPOT_TOKEN")
                .env_remove("CREDENTIALS_DIRECTORY")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        self.assert_no_secrets(&out);
        out
    }

    /// Neither the private key, nor an access token, nor any JWT (assertion, proof, token)
    /// appears in the output.
    fn assert_no_secrets(&self, out: &Output) {
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("PRIVATE KEY"), "key marker in output");
        for line in self.pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(
                !text.contains(line),
                "a line of the private key is in the output"
            );
        }
        for token in self.emu.okta.issued_access_tokens() {
            assert!(!text.contains(&token), "an access token is in the output");
        }
        // Every JWT (and the emulator's access tokens) starts with a base64url `{"`.
        assert!(!text.contains("eyJ"), "a JWT or token is in the output");
        assert!(!text.contains("\"d\":"), "a private JWK is in the output");
    }
}

fn write_0600(path: &Path, content: &str) {
    okta_spot_sync::fsutil::write_owner_only(path, content.as_bytes()).unwrap();
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The binary's failure: exit 1, the error line names every needle, nothing written to Spot.
async fn expect_failure(env: &Env, needles: &[&str]) -> String {
    let out = env.run(&["reconcile", "--output", "json"]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {err}"))
        .to_string();
    eprintln!("{line}");
    assert!(err.lines().count() > 5, "trace logging was on: {err}");
    for n in needles {
        assert!(line.contains(n), "{n:?} missing from: {line}");
    }
    assert_eq!(env.emu.spot.write_requests(), 0);
    assert_eq!(
        env.emu.okta.request_count("GET /api/v1/apps/{appId}/users") > 0,
        line.contains("GET /api/v1/apps")
    );
    line
}

#[tokio::test]
async fn reconcile_and_check_over_oauth_with_dpop_through_the_binary() {
    let env = Env::start(Case::ec()).await;
    assert!(env.emu.spot.user_by_email("alice@example.com").is_none());

    let out = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    for email in ["alice@example.com", "bob@example.com", "dave@example.com"] {
        assert!(
            env.emu.spot.user_by_email(email).is_some(),
            "{email} was not created"
        );
    }
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["create"], 3);
    assert_eq!(report["summary"]["adopt"], 1);
    // The nonce dance: a first request answered `use_dpop_nonce`, then the token.
    assert_eq!(env.emu.okta.request_count(TOKEN_ROUTE), 2);
    assert!(env.emu.okta.request_count("GET /api/v1/apps/{appId}/users") >= 1);

    let out = env.run(&["check"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.contains("OAuth 2.0 service app"), "{text}");
    assert!(text.contains("ES256, DPoP"), "{text}");
    assert!(
        text.contains("granted scopes okta.apps.read okta.users.read"),
        "{text}"
    );
}

/// Events mode asks for `okta.logs.read` with a client of its own: an app not granted it
/// fails only `check`'s System Log line (the token endpoint's `invalid_scope`), which names
/// the scope and the fallback; the other lines still pass.
#[tokio::test]
async fn check_over_oauth_names_a_missing_logs_scope() {
    let mut case = Case::ec();
    case.granted = vec!["okta.apps.read", "okta.users.read"];
    let env = Env::start(case).await;
    let out = env.run(&["check"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(text.contains("ok   Okta "), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("FAIL Okta System Log"))
        .unwrap_or_else(|| panic!("no System Log line in {text}"));
    assert!(
        line.contains("invalid_scope") && line.contains("okta.logs.read"),
        "{line}"
    );
    assert_eq!(env.emu.okta.request_count("GET /api/v1/logs"), 0);
}

#[tokio::test]
async fn rsa_key_with_bearer_tokens_when_dpop_is_off_in_process() {
    let env = Env::start(Case {
        pem: RSA_PEM.to_string(),
        registered: rsa_jwk(),
        granted: vec!["okta.apps.read", "okta.users.read"],
        dpop_required: false,
        scopes: None,
        dpop: false,
        kid: None,
    })
    .await;
    let settings = env.settings();
    let okta = OktaClient::new(&settings.okta, &settings.http).unwrap();
    let spot = SpotClient::new(&settings.spot, &settings.http).unwrap();
    let store = LedgerStore::new(&settings.sync.state_file);
    let report = run_cycle(
        &settings,
        &okta,
        &spot,
        &store,
        Mode::Apply,
        &CycleOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.exit_code(), 0);
    assert!(env.emu.spot.user_by_email("bob@example.com").is_some());
    // No DPoP: no nonce dance, one token request.
    assert_eq!(env.emu.okta.request_count(TOKEN_ROUTE), 1);
    assert!(okta.auth_description().contains("RS256, no DPoP"));
}

#[tokio::test]
async fn the_token_is_renewed_once_after_expiry_on_paused_time() {
    let env = Env::start(Case::ec()).await;
    tokio::time::pause();
    let okta = env.okta();
    okta.read_all().await.unwrap();
    okta.read_all().await.unwrap();
    assert_eq!(env.emu.okta.request_count(TOKEN_ROUTE), 2, "nonce + token");

    // Still valid 50 minutes later (renewal is 5 minutes before expiry).
    tokio::time::advance(Duration::from_secs(50 * 60)).await;
    okta.read_all().await.unwrap();
    assert_eq!(env.emu.okta.request_count(TOKEN_ROUTE), 2);

    // Past the renewal point: concurrent reads share one renewal, and the remembered nonce
    // makes it a single request.
    tokio::time::advance(Duration::from_secs(10 * 60)).await;
    let (a, b, c) = tokio::join!(okta.read_all(), okta.read_all(), okta.read_all());
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(env.emu.okta.request_count(TOKEN_ROUTE), 3);

    // Past a full hour too.
    tokio::time::advance(Duration::from_secs(3600)).await;
    okta.read_all().await.unwrap();
    assert_eq!(env.emu.okta.request_count(TOKEN_ROUTE), 4);
}

#[tokio::test]
async fn token_requests_reach_the_metrics_observer_like_api_calls() {
    let env = Env::start(Case::ec()).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let okta = env
        .okta()
        .with_observer(std::sync::Arc::new(move |r: &RequestRecord| {
            record.lock().unwrap().push((r.route, r.status));
        }));
    okta.read_all().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let tokens: Vec<_> = seen
        .iter()
        .filter(|(route, _)| *route == ROUTE_TOKEN)
        .collect();
    // The DPoP nonce dance: a 400 use_dpop_nonce, then the token.
    assert_eq!(
        tokens,
        [&(ROUTE_TOKEN, Some(400)), &(ROUTE_TOKEN, Some(200))],
        "{seen:?}"
    );
    assert_eq!(
        tokens.len() as u64,
        env.emu.okta.request_count(TOKEN_ROUTE),
        "every token request is observed"
    );
    assert!(seen
        .iter()
        .any(|(route, status)| *route == ROUTE_APP_USERS && *status == Some(200)));
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once() {
    let env = Env::start(Case::ec()).await;
    let okta = env.okta();
    okta.read_all().await.unwrap();
    let before = env.emu.okta.request_count(TOKEN_ROUTE);
    env.emu.okta.revoke_access_tokens();
    okta.read_all().await.unwrap();
    assert_eq!(env.emu.okta.request_count(TOKEN_ROUTE), before + 1);
}

#[tokio::test]
async fn extra_scopes_are_requested_for_import_assign() {
    let mut case = Case::ec();
    case.granted = vec!["okta.apps.manage", "okta.users.read"];
    let env = Env::start(case).await;
    let okta = env
        .okta()
        .with_extra_scopes(&[okta_spot_sync::okta::oauth::SCOPE_APPS_MANAGE]);
    okta.read_all().await.unwrap();
    let granted = okta.oauth().unwrap().granted_scopes().unwrap();
    assert!(
        granted.contains(&"okta.apps.manage".to_string()),
        "{granted:?}"
    );

    // Without the grant, asking for it fails at the token endpoint.
    let env = Env::start(Case::ec()).await;
    let okta = env
        .okta()
        .with_extra_scopes(&[okta_spot_sync::okta::oauth::SCOPE_APPS_MANAGE]);
    let err = okta.read_all().await.unwrap_err();
    assert!(
        matches!(&err, Error::Credentials { .. }) && err.to_string().contains("okta.apps.manage"),
        "{err}"
    );
}

#[tokio::test]
async fn import_assign_requests_apps_manage_through_the_binary() {
    let mut case = Case::ec();
    case.granted = vec!["okta.apps.manage", "okta.users.read"];
    let env = Env::start(case).await;
    env.emu.okta.add_user(okta_spot_sim::OktaUserSpec {
        email: "frank@example.com".into(),
        first_name: "Frank".into(),
        last_name: "Fischer".into(),
        ..Default::default()
    });
    let out = env.run(&["import", "--assign", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        env.emu
            .okta
            .request_count("POST /api/v1/apps/{appId}/users"),
        1
    );

    // Without the grant, `import --assign` fails at the token endpoint and changes nothing.
    let env = Env::start(Case::ec()).await;
    let out = env.run(&["import", "--assign", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid_scope"), "{}", stderr(&out));
    assert_eq!(
        env.emu
            .okta
            .request_count("POST /api/v1/apps/{appId}/users"),
        0
    );
    assert_eq!(env.emu.spot.write_requests(), 0);
}

#[tokio::test]
async fn a_wrong_key_is_invalid_client() {
    let mut case = Case::ec();
    case.registered = with_kid(ec_key().1, KID); // another key is registered
    let env = Env::start(case).await;
    let line = expect_failure(
        &env,
        &[
            "POST /oauth2/v1/token",
            "invalid_client",
            "signature is invalid",
            "public key",
            "okta.private_key_file",
            CLIENT_ID,
        ],
    )
    .await;
    assert!(!line.contains("clock is probably wrong"), "{line}");
}

#[tokio::test]
async fn an_expired_assertion_points_at_the_clock() {
    let env = Env::start(Case::ec()).await;
    // The server's clock is two hours ahead of this host's: the 5-minute assertion is expired.
    env.emu
        .okta
        .set_oauth_clock_offset(Duration::from_secs(2 * 3600));
    let line = expect_failure(
        &env,
        &[
            "POST /oauth2/v1/token",
            "invalid_client",
            "expired",
            "clock",
            "NTP",
        ],
    )
    .await;
    assert!(!line.contains("registered on that app"), "{line}");
}

#[tokio::test]
async fn a_scope_not_granted_is_invalid_scope() {
    let mut case = Case::ec();
    case.granted = vec!["okta.users.read"];
    let env = Env::start(case).await;
    expect_failure(
        &env,
        &[
            "POST /oauth2/v1/token",
            "invalid_scope",
            "okta.apps.read",
            "Okta API Scopes",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_scope_not_requested_is_insufficient_scope_from_the_api() {
    let mut case = Case::ec();
    case.scopes = Some(vec!["okta.users.read"]);
    let env = Env::start(case).await;
    expect_failure(
        &env,
        &[
            "GET /api/v1/apps/{appId}/users",
            "HTTP 403",
            "insufficient_scope",
            "lacks the scope okta.apps.read",
            "Okta API Scopes",
            "okta.scopes",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_missing_dpop_proof_says_to_turn_dpop_on() {
    let mut case = Case::ec();
    case.dpop = false;
    let env = Env::start(case).await;
    expect_failure(
        &env,
        &[
            "POST /oauth2/v1/token",
            "invalid_dpop_proof",
            "proof JWT header is missing",
            "requires DPoP",
            "okta.dpop = true",
        ],
    )
    .await;
}

/// A DPoP token from the emulator, obtained by hand (independent of the provider).
async fn dpop_token(env: &Env, key: &DpopKey) -> String {
    let url = url::Url::parse(&format!("{}/oauth2/v1/token", env.emu.okta.url())).unwrap();
    let client_key =
        ClientKey::from_pem(SecretString::from(env.pem.clone()), Some(KID.into())).unwrap();
    let http = reqwest::Client::new();
    let mut nonce: Option<String> = None;
    for _ in 0..2 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let assertion = client_key
            .sign(
                &json!({"typ": "JWT"}),
                &json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": url.as_str(),
                        "iat": now, "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string()}),
            )
            .unwrap();
        let proof = key
            .proof("POST", &url, now, nonce.as_deref(), None)
            .unwrap();
        let resp = http
            .post(url.clone())
            .header("DPoP", proof)
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "okta.apps.read okta.users.read"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .await
            .unwrap();
        if resp.status() == 400 {
            nonce = resp
                .headers()
                .get("dpop-nonce")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "use_dpop_nonce");
            continue;
        }
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP");
        assert_eq!(body["expires_in"], 3600);
        return body["access_token"].as_str().unwrap().to_string();
    }
    panic!("no token after the nonce dance");
}

#[tokio::test]
async fn the_emulator_checks_proofs_on_api_calls() {
    let env = Env::start(Case::ec()).await;
    let key = DpopKey::generate();
    let token = dpop_token(&env, &key).await;
    let url = url::Url::parse(&format!(
        "{}/api/v1/apps/{}/users?limit=2",
        env.emu.okta.url(),
        env.emu.okta.app_id()
    ))
    .unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let http = reqwest::Client::new();
    let get = |proof: Option<String>, scheme: &str| {
        let mut rb = http
            .get(url.clone())
            .header("Authorization", format!("{scheme} {token}"));
        if let Some(p) = proof {
            rb = rb.header("DPoP", p);
        }
        rb.send()
    };
    let challenge = |r: &reqwest::Response| {
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };

    // A good proof (htu without the query).
    let ok = get(
        Some(key.proof("GET", &url, now(), None, Some(&token)).unwrap()),
        "DPoP",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);

    // No proof: 401, invalid_dpop_proof, no body.
    let r = get(None, "DPoP").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("error=\"invalid_dpop_proof\""));
    assert!(r.bytes().await.unwrap().is_empty());

    // A proof whose ath is for another token.
    let r = get(
        Some(key.proof("GET", &url, now(), None, Some("other")).unwrap()),
        "DPoP",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("'ath'"), "{}", challenge(&r));

    // A proof from another key.
    let other = DpopKey::generate();
    let r = get(
        Some(other.proof("GET", &url, now(), None, Some(&token)).unwrap()),
        "DPoP",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);

    // The wrong method in the proof, and a stale proof.
    let r = get(
        Some(key.proof("POST", &url, now(), None, Some(&token)).unwrap()),
        "DPoP",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    let r = get(
        Some(
            key.proof("GET", &url, now() - 3600, None, Some(&token))
                .unwrap(),
        ),
        "DPoP",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);

    // A DPoP-bound token presented as a bearer token.
    let r = get(None, "Bearer").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("invalid_token"));

    // The SSWS token still works.
    let r = http
        .get(url.clone())
        .header("Authorization", format!("SSWS {}", env.emu.okta.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn oauth_config_errors_name_the_key_and_never_the_key_material() {
    let env = Env::start(Case::ec()).await;
    let settings = env.settings();
    let shown = format!("{settings:?}");
    for line in env.pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!shown.contains(line), "Debug of the settings shows the key");
    }

    let text = std::fs::read_to_string(&env.config).unwrap();
    let bad = env.config.with_file_name("bad.toml");

    // No client id, no key.
    let stripped: String = text
        .lines()
        .filter(|l| !l.starts_with("client_id") && !l.starts_with("private_key_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&bad, stripped).unwrap();
    let err = config::load(&bad, &|_| None).unwrap_err().to_string();
    assert!(err.contains("okta.client_id is not set"), "{err}");
    assert!(err.contains("okta.private_key_file"), "{err}");

    // A key file that is not a key; an unknown auth.
    let not_a_key = env.config.with_file_name("not-a-key.pem");
    write_0600(
        &not_a_key,
        "-----BEGIN PRIVATE KEY-----\nSGVsbG8=\n-----END PRIVATE KEY-----\n",
    );
    let swapped = text.replace(
        &format!(
            "private_key_file = {:?}",
            env.config
                .with_file_name("okta-private-key.pem")
                .display()
                .to_string()
        ),
        &format!("private_key_file = {:?}", not_a_key.display().to_string()),
    );
    std::fs::write(&bad, swapped).unwrap();
    let err = config::load(&bad, &|_| None).unwrap_err().to_string();
    assert!(
        err.contains("okta.private_key_file") && err.contains("not a valid"),
        "{err}"
    );
    assert!(!err.contains("SGVsbG8"), "{err}");

    std::fs::write(&bad, text.replace("auth = \"oauth\"", "auth = \"saml\"")).unwrap();
    let err = config::load(&bad, &|_| None).unwrap_err().to_string();
    assert!(err.contains("okta.auth = \"saml\""), "{err}");

    // Missing scopes the sync needs draw a warning.
    std::fs::write(
        &bad,
        text.replace("dpop = true", "dpop = true\nscopes = [\"okta.users.read\"]"),
    )
    .unwrap();
    let loaded = config::load(&bad, &|_| None).unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("does not include okta.apps.read")),
        "{:?}",
        loaded.warnings
    );
}
