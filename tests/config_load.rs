//! Loading and validating the configuration end to end: files on disk (tempfile), environment
//! given as a map (never the process environment, so tests run in parallel).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use okta_spot_sync::config::{self, Loaded, LogFormat, SpotRoleSettings};
use okta_spot_sync::model::{Email, Role};
use okta_spot_sync::Error;
use secrecy::ExposeSecret;
use tempfile::TempDir;

const OKTA_TOKEN: &str = "00okta-SECRET-token-7f3a9c";
const SPOT_TOKEN: &str = "spot-SECRET-token-b41d22";

/// A temp dir with mode-0600 token files and a minimal valid config pointing at them.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        f.secret_file("okta-token", &format!("{OKTA_TOKEN}\n"));
        f.secret_file("spot-token", &format!("  {SPOT_TOKEN}  \n"));
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn secret_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.file(name, content);
        set_mode(&p, 0o600);
        p
    }

    /// The minimal valid config, with `extra` appended (whole sections).
    fn config(&self, extra: &str) -> PathBuf {
        let text = format!(
            "[okta]\norg_url = \"https://example.okta.com\"\napp_id = \"0oa1example\"\n\
             token_file = {:?}\n\n[spot]\ntoken_file = {:?}\n\n{extra}",
            self.path("okta-token"),
            self.path("spot-token"),
        );
        self.file("config.toml", &text)
    }

    /// The minimal config with the `[okta]` lines given (tokens via `[spot]` file only).
    fn config_okta(&self, okta: &str) -> PathBuf {
        let text = format!(
            "[okta]\n{okta}\n\n[spot]\ntoken_file = {:?}\n",
            self.path("spot-token")
        );
        self.file("config.toml", &text)
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn load(path: &Path, vars: &[(&str, &str)]) -> Result<Loaded, Error> {
    config::load_from_env_vars(
        path,
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

fn ok(path: &Path, vars: &[(&str, &str)]) -> Loaded {
    match load(path, vars) {
        Ok(l) => l,
        Err(e) => panic!("expected the config to load, got: {e}"),
    }
}

fn config_err(path: &Path, vars: &[(&str, &str)]) -> String {
    match load(path, vars) {
        Ok(l) => panic!(
            "expected a configuration error, got settings {:?}",
            l.settings
        ),
        Err(Error::Config(msg)) => {
            assert_no_secret(&msg);
            msg
        }
        Err(other) => panic!("expected Error::Config, got {other:?}"),
    }
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(
            haystack.contains(n),
            "expected {n:?} in message:\n{haystack}"
        );
    }
}

fn assert_no_secret(text: &str) {
    for s in [OKTA_TOKEN, SPOT_TOKEN, "SECRET"] {
        assert!(!text.contains(s), "a secret leaked into:\n{text}");
    }
}

#[test]
fn minimal_file_loads_with_every_default() {
    let f = Fixture::new();
    let loaded = ok(&f.config(""), &[]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let s = loaded.settings;

    assert_eq!(s.okta.org_url.as_str(), "https://example.okta.com/");
    assert_eq!(s.okta.app_id, "0oa1example");
    assert_eq!(
        s.okta
            .auth
            .ssws_token()
            .expect("an SSWS token")
            .expose_secret(),
        OKTA_TOKEN
    );
    assert_eq!(s.okta.role_attribute, "role");
    assert_eq!(s.okta.page_size, 500);
    assert_eq!(
        s.okta.provision_statuses,
        [
            "ACTIVE",
            "PROVISIONED",
            "PASSWORD_EXPIRED",
            "RECOVERY",
            "LOCKED_OUT"
        ]
    );
    assert_eq!(s.okta.hold_statuses, ["SUSPENDED", "STAGED"]);
    assert_eq!(s.okta.max_api_capacity_percent, 50);

    assert_eq!(s.spot.base_url.as_str(), "https://api.spotinst.io/");
    assert_eq!(
        s.spot.token.expose_secret(),
        SPOT_TOKEN,
        "token file is trimmed"
    );
    assert_eq!(s.spot.write_concurrency, 4);
    assert_eq!(
        s.spot.roles.get(Role::Viewer),
        &SpotRoleSettings {
            spot_role: "viewer".into(),
            policies: vec!["Account Viewer".into()],
        }
    );
    assert_eq!(
        s.spot.roles.get(Role::Editor),
        &SpotRoleSettings {
            spot_role: "admin".into(),
            policies: vec![],
        }
    );

    // Events mode is on by default: the full cycle is the safety net, every 6 hours; every 10
    // minutes when the System Log cannot be read.
    assert!(s.events.enabled);
    assert_eq!(s.events.poll_interval, Duration::from_secs(15));
    assert_eq!(s.sync.schedule.as_str(), "0 15 */6 * * *");
    assert_eq!(s.sync.fallback_schedule.as_str(), "0 */10 * * * *");
    assert!(s.sync.run_on_start);
    assert_eq!(
        s.sync.state_file,
        PathBuf::from("/var/lib/okta-spot-sync/state.json")
    );
    assert_eq!(s.sync.default_role, Role::Viewer);
    assert!(s.sync.adopt_existing);
    assert!(s.sync.update_roles);
    assert_eq!(s.sync.max_deletes, 10);
    assert_eq!(s.sync.max_delete_percent, 20);
    assert!(s.sync.protected_emails.is_empty());

    assert_eq!(s.http.timeout, Duration::from_secs(30));
    assert_eq!(s.http.max_retries, 5);
    assert!(!s.http.allow_insecure_http);

    assert_eq!(s.daemon.listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(s.log.format, LogFormat::Text);
    assert_eq!(s.log.level, "info");
}

#[test]
fn file_values_replace_defaults() {
    let f = Fixture::new();
    let path = f.config(
        "[spot.roles.editor]\npolicies = [\"Account Editor\"]\n\n\
         [sync]\nschedule = \"0 0 * * * *\"\nrun_on_start = false\ndefault_role = \"Editor\"\n\
         max_deletes = 0\nprotected_emails = [\" Boss@Example.com \"]\n\n\
         [http]\ntimeout = \"2m\"\n\n[daemon]\nlisten = \"\"\n\n[log]\nformat = \"JSON\"\n\
         level = \"info,okta_spot_sync=debug\"\n",
    );
    let s = ok(&path, &[]).settings;
    assert_eq!(s.spot.roles.editor.policies, ["Account Editor"]);
    assert_eq!(s.spot.roles.editor.spot_role, "admin", "default kept");
    assert_eq!(s.sync.schedule.as_str(), "0 0 * * * *");
    assert!(!s.sync.run_on_start);
    assert_eq!(s.sync.default_role, Role::Editor);
    assert_eq!(s.sync.max_deletes, 0);
    assert_eq!(
        s.sync.protected_emails,
        [Email::parse("boss@example.com").unwrap()]
    );
    assert_eq!(s.http.timeout, Duration::from_secs(120));
    assert_eq!(s.daemon.listen, None);
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.log.level, "info,okta_spot_sync=debug");
}

#[test]
fn example_file_is_valid_and_lists_every_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/okta-spot-sync.example.toml");
    let text = std::fs::read_to_string(&example).unwrap();

    // Every key appears (commented out for the inline tokens) under its section header.
    for key in config::KEYS {
        let (section, leaf) = key.rsplit_once('.').unwrap();
        let header = format!("[{section}]");
        let body = text
            .split_once(&format!("\n{header}\n"))
            .unwrap_or_else(|| panic!("no {header} section in the example"))
            .1;
        let body = body.split("\n[").next().unwrap();
        let found = body.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.starts_with(&format!("{leaf} ="))
        });
        assert!(found, "key {key} is missing from the example config");
    }

    // With the token files pointed at real files it loads, and every value equals the default.
    let f = Fixture::new();
    let okta_tf = f.path("okta-token");
    let spot_tf = f.path("spot-token");
    let from_example = ok(
        &example,
        &[
            (
                "OKTA_SPOT_SYNC__OKTA__TOKEN_FILE",
                okta_tf.to_str().unwrap(),
            ),
            (
                "OKTA_SPOT_SYNC__SPOT__TOKEN_FILE",
                spot_tf.to_str().unwrap(),
            ),
        ],
    )
    .settings;
    let from_defaults = ok(&f.config(""), &[]).settings;
    assert_eq!(
        format!("{from_example:?}"),
        format!("{from_defaults:?}"),
        "the example's values must be the defaults"
    );
}

#[test]
fn env_overrides_keys_with_underscores_and_lists() {
    let f = Fixture::new();
    let path = f.config("[sync]\nmax_deletes = 7\n");
    let s = ok(
        &path,
        &[
            ("OKTA_SPOT_SYNC__SYNC__MAX_DELETES", "3"),
            ("OKTA_SPOT_SYNC__SYNC__MAX_DELETE_PERCENT", "5"),
            ("OKTA_SPOT_SYNC__OKTA__ORG_URL", "https://acme.okta.com/"),
            ("OKTA_SPOT_SYNC__OKTA__APP_ID", "0oaENV"),
            (
                "OKTA_SPOT_SYNC__OKTA__PROVISION_STATUSES",
                "active, provisioned",
            ),
            ("OKTA_SPOT_SYNC__OKTA__HOLD_STATUSES", "SUSPENDED"),
            (
                "OKTA_SPOT_SYNC__SYNC__PROTECTED_EMAILS",
                "a@example.com,B@example.com",
            ),
            ("OKTA_SPOT_SYNC__SYNC__RUN_ON_START", "false"),
            (
                "OKTA_SPOT_SYNC__SPOT__ROLES__VIEWER__POLICIES",
                "Account Viewer,Billing",
            ),
            ("OKTA_SPOT_SYNC__SPOT__ROLES__EDITOR__SPOT_ROLE", "editor"),
            ("OKTA_SPOT_SYNC__HTTP__ALLOW_INSECURE_HTTP", "true"),
            ("OKTA_SPOT_SYNC__SPOT__BASE_URL", "http://127.0.0.1:8081"),
            ("OKTA_SPOT_SYNC__DAEMON__LISTEN", ""),
            ("OKTA_SPOT_SYNC__LOG__LEVEL", "DEBUG"),
            // Not overrides: must be ignored, not taken for keys.
            ("OKTA_SPOT_SYNC_CONFIG", "/somewhere/else.toml"),
            ("PATH", "/usr/bin"),
        ],
    )
    .settings;
    assert_eq!(s.sync.max_deletes, 3, "env beats the file");
    assert_eq!(s.sync.max_delete_percent, 5);
    assert_eq!(s.okta.org_url.as_str(), "https://acme.okta.com/");
    assert_eq!(s.okta.app_id, "0oaENV");
    assert_eq!(s.okta.provision_statuses, ["ACTIVE", "PROVISIONED"]);
    assert_eq!(s.okta.hold_statuses, ["SUSPENDED"]);
    assert_eq!(s.sync.protected_emails.len(), 2);
    assert_eq!(s.sync.protected_emails[1].as_str(), "b@example.com");
    assert!(!s.sync.run_on_start);
    assert_eq!(s.spot.roles.viewer.policies, ["Account Viewer", "Billing"]);
    assert_eq!(s.spot.roles.editor.spot_role, "editor");
    assert_eq!(s.spot.base_url.as_str(), "http://127.0.0.1:8081/");
    assert_eq!(
        s.daemon.listen, None,
        "an empty override turns the server off"
    );
    assert_eq!(s.log.level, "debug");
}

#[test]
fn injected_lookup_function_is_used() {
    let f = Fixture::new();
    let path = f.config("");
    let vars: BTreeMap<&str, &str> = [
        ("OKTA_SPOT_SYNC__SYNC__MAX_DELETES", "4"),
        ("OKTA_SPOT_SYNC__OKTA__PAGE_SIZE", "200"),
        ("OKTA_SPOT_SYNC_CONFIG", "/ignored.toml"),
    ]
    .into_iter()
    .collect();
    let lookup = |name: &str| vars.get(name).map(|v| v.to_string());
    let s = config::load(&path, &lookup).unwrap().settings;
    assert_eq!(s.sync.max_deletes, 4);
    assert_eq!(s.okta.page_size, 200);

    let bad = |name: &str| (name == "OKTA_SPOT_SYNC__OKTA__PAGE_SIZE").then(|| "0".to_string());
    let err = config::load(&path, &bad).unwrap_err().to_string();
    assert_contains(&err, &["okta.page_size = 0", "1..=500"]);
}

#[test]
fn default_config_path_comes_from_the_environment() {
    let none = |_: &str| None;
    assert_eq!(
        config::default_config_path(&none),
        PathBuf::from("/etc/okta-spot-sync/config.toml")
    );
    let set = |k: &str| (k == "OKTA_SPOT_SYNC_CONFIG").then(|| "/tmp/x.toml".to_string());
    assert_eq!(
        config::default_config_path(&set),
        PathBuf::from("/tmp/x.toml")
    );
    let empty = |k: &str| (k == "OKTA_SPOT_SYNC_CONFIG").then(String::new);
    assert_eq!(
        config::default_config_path(&empty),
        PathBuf::from("/etc/okta-spot-sync/config.toml")
    );
}

#[test]
fn unknown_override_variable_is_rejected() {
    let f = Fixture::new();
    let msg = config_err(&f.config(""), &[("OKTA_SPOT_SYNC__SYNC__MAX_DELETE", "3")]);
    assert_contains(
        &msg,
        &[
            "OKTA_SPOT_SYNC__SYNC__MAX_DELETE",
            "sync.max_delete",
            "OKTA_SPOT_SYNC__SYNC__MAX_DELETES",
        ],
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_full_name() {
    let f = Fixture::new();
    let cases = [
        ("verbose = true\n", "unknown key `verbose`"),
        ("[sync]\nmax_delete = 3\n", "unknown key `sync.max_delete`"),
        ("[metrics]\nport = 1\n", "unknown key `metrics`"),
        (
            "[spot.roles.admin]\nspot_role = \"admin\"\n",
            "unknown key `spot.roles.admin`",
        ),
        (
            "[spot.roles.viewer]\npolicy = []\n",
            "unknown key `spot.roles.viewer.policy`",
        ),
    ];
    for (extra, expected) in cases {
        // Top-level keys must come before the first table.
        let path = if extra.starts_with('[') {
            f.config(extra)
        } else {
            let text = std::fs::read_to_string(f.config("")).unwrap();
            f.file("config.toml", &format!("{extra}{text}"))
        };
        let msg = config_err(&path, &[]);
        assert_contains(&msg, &[expected, "config.toml"]);
    }
}

#[test]
fn type_errors_name_the_key() {
    let f = Fixture::new();
    let msg = config_err(&f.config("[sync]\nmax_deletes = \"ten\"\n"), &[]);
    assert_contains(&msg, &["sync.max_deletes", "\"ten\"", "config.toml"]);

    let msg = config_err(
        &f.config(""),
        &[("OKTA_SPOT_SYNC__SYNC__MAX_DELETES", "ten")],
    );
    assert_contains(
        &msg,
        &[
            "sync.max_deletes",
            "OKTA_SPOT_SYNC__SYNC__MAX_DELETES",
            "\"ten\"",
        ],
    );

    let msg = config_err(&f.config("[sync]\nrun_on_start = \"maybe\"\n"), &[]);
    assert_contains(&msg, &["sync.run_on_start"]);

    let msg = config_err(&f.config("[sync]\nprotected_emails = 5\n"), &[]);
    assert_contains(&msg, &["sync.protected_emails"]);
}

#[test]
fn missing_config_file_names_the_path_and_the_fix() {
    let f = Fixture::new();
    let msg = config_err(&f.path("nope.toml"), &[]);
    assert_contains(&msg, &["nope.toml", "--config", "OKTA_SPOT_SYNC_CONFIG"]);
}

#[test]
fn toml_syntax_error_names_file_and_line_without_quoting_it() {
    let f = Fixture::new();
    let path = f.file(
        "config.toml",
        &format!("[okta]\norg_url = \"https://example.okta.com\"\ntoken = \"{OKTA_TOKEN}\n"),
    );
    let msg = config_err(&path, &[]);
    assert_contains(&msg, &["config.toml", "not valid TOML", "line 3"]);
}

/// Each invalid value yields an error naming the key and saying what to do.
#[test]
fn each_validation_error_names_the_key() {
    let f = Fixture::new();
    let path = f.config("");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "OKTA__ORG_URL",
            "",
            &["okta.org_url is not set", "OKTA_SPOT_SYNC__OKTA__ORG_URL"],
        ),
        (
            "OKTA__ORG_URL",
            "example.okta.com",
            &["okta.org_url", "not an absolute URL"],
        ),
        (
            "OKTA__ORG_URL",
            "ftp://example.okta.com",
            &["okta.org_url", "https://"],
        ),
        (
            "OKTA__ORG_URL",
            "http://example.okta.com",
            &["okta.org_url", "\"http://example.okta.com\"", "not https"],
        ),
        (
            "OKTA__ORG_URL",
            "http://127.0.0.1:8080",
            &[
                "okta.org_url",
                "not https",
                "http.allow_insecure_http = true",
            ],
        ),
        (
            "OKTA__ORG_URL",
            "https://example.okta.com/oauth2",
            &["okta.org_url", "scheme and host only"],
        ),
        (
            "OKTA__ORG_URL",
            "https://example.okta.com/?x=1",
            &["okta.org_url", "scheme and host only"],
        ),
        ("OKTA__APP_ID", "", &["okta.app_id is not set"]),
        (
            "OKTA__APP_ID",
            "0oa-1/x",
            &["okta.app_id", "\"0oa-1/x\"", "letters and digits"],
        ),
        ("OKTA__ROLE_ATTRIBUTE", " ", &["okta.role_attribute"]),
        ("OKTA__PAGE_SIZE", "0", &["okta.page_size = 0", "1..=500"]),
        (
            "OKTA__PAGE_SIZE",
            "501",
            &["okta.page_size = 501", "1..=500"],
        ),
        (
            "OKTA__MAX_API_CAPACITY_PERCENT",
            "0",
            &["okta.max_api_capacity_percent = 0", "1..=100"],
        ),
        (
            "OKTA__MAX_API_CAPACITY_PERCENT",
            "101",
            &["okta.max_api_capacity_percent = 101"],
        ),
        (
            "OKTA__PROVISION_STATUSES",
            "ACTIVE,BOGUS",
            &["okta.provision_statuses", "\"BOGUS\"", "DEPROVISIONED"],
        ),
        (
            "OKTA__PROVISION_STATUSES",
            "",
            &["okta.provision_statuses is empty"],
        ),
        (
            "OKTA__HOLD_STATUSES",
            "staged,Gone",
            &["okta.hold_statuses", "\"Gone\""],
        ),
        (
            "OKTA__HOLD_STATUSES",
            "SUSPENDED,active",
            &["okta.provision_statuses and okta.hold_statuses", "ACTIVE"],
        ),
        (
            "SPOT__BASE_URL",
            "http://api.spotinst.io",
            &["spot.base_url", "not https"],
        ),
        (
            "SPOT__BASE_URL",
            "https://api.spotinst.io/setup",
            &["spot.base_url", "scheme and host only"],
        ),
        (
            "SPOT__WRITE_CONCURRENCY",
            "0",
            &["spot.write_concurrency = 0", "1..=64"],
        ),
        (
            "SPOT__WRITE_CONCURRENCY",
            "65",
            &["spot.write_concurrency = 65"],
        ),
        (
            "SPOT__ROLES__VIEWER__SPOT_ROLE",
            "",
            &["spot.roles.viewer.spot_role", "\"viewer\""],
        ),
        (
            "SYNC__SCHEDULE",
            "*/10 * * * *",
            &["sync.schedule", "5 fields", "6 or 7"],
        ),
        (
            "SYNC__SCHEDULE",
            "0 */10 * * * * * *",
            &["sync.schedule", "8 fields"],
        ),
        (
            "SYNC__SCHEDULE",
            "0 */10 * * * $",
            &["sync.schedule", "\"$\""],
        ),
        ("SYNC__STATE_FILE", "", &["sync.state_file is empty"]),
        (
            "SYNC__DEFAULT_ROLE",
            "admin",
            &["sync.default_role", "\"admin\"", "\"viewer\" or \"editor\""],
        ),
        ("SYNC__MAX_DELETES", "-1", &["sync.max_deletes = -1"]),
        (
            "SYNC__MAX_DELETE_PERCENT",
            "101",
            &["sync.max_delete_percent = 101", "0..=100"],
        ),
        (
            "SYNC__PROTECTED_EMAILS",
            "ok@example.com,nope",
            &["sync.protected_emails[1]", "\"nope\"", "email"],
        ),
        (
            "HTTP__TIMEOUT",
            "30",
            &["http.timeout", "\"30\"", "\"30s\""],
        ),
        (
            "HTTP__TIMEOUT",
            "0s",
            &["http.timeout", "greater than zero"],
        ),
        (
            "HTTP__MAX_RETRIES",
            "21",
            &["http.max_retries = 21", "0..=20"],
        ),
        (
            "DAEMON__LISTEN",
            "localhost:9464",
            &["daemon.listen", "\"localhost:9464\"", "127.0.0.1:9464"],
        ),
        ("LOG__FORMAT", "xml", &["log.format", "\"xml\"", "\"json\""]),
        (
            "LOG__LEVEL",
            "verbose",
            &["log.level", "\"verbose\"", "debug"],
        ),
        (
            "LOG__LEVEL",
            "info,foo=loud",
            &["log.level", "not a valid filter"],
        ),
    ];
    for (suffix, value, expected) in cases {
        let var = format!("OKTA_SPOT_SYNC__{suffix}");
        let msg = config_err(&path, &[(var.as_str(), value)]);
        assert_contains(&msg, expected);
    }
}

#[test]
fn plain_http_is_allowed_only_for_loopback_with_the_switch() {
    let f = Fixture::new();
    let path = f.config("[http]\nallow_insecure_http = true\n");
    for (url, expected) in [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("http://127.1.2.3", "http://127.1.2.3/"),
        ("http://[::1]:9000/", "http://[::1]:9000/"),
        ("http://LOCALHOST:9000", "http://localhost:9000/"),
        (
            "https://example.okta.com:8443/",
            "https://example.okta.com:8443/",
        ),
    ] {
        let s = ok(&path, &[("OKTA_SPOT_SYNC__OKTA__ORG_URL", url)]).settings;
        assert_eq!(s.okta.org_url.as_str(), expected);
    }
    for url in [
        "http://example.okta.com",
        "http://10.0.0.1:8080",
        "http://localhost.example.com",
    ] {
        let msg = config_err(&path, &[("OKTA_SPOT_SYNC__OKTA__ORG_URL", url)]);
        assert_contains(&msg, &["okta.org_url", "not https", "loopback"]);
    }
}

#[test]
fn all_problems_are_reported_together() {
    let f = Fixture::new();
    let msg = config_err(
        &f.config(""),
        &[
            ("OKTA_SPOT_SYNC__OKTA__PAGE_SIZE", "0"),
            ("OKTA_SPOT_SYNC__HTTP__MAX_RETRIES", "99"),
            ("OKTA_SPOT_SYNC__LOG__FORMAT", "xml"),
        ],
    );
    assert_contains(
        &msg,
        &[
            "3 problems",
            "okta.page_size",
            "http.max_retries",
            "log.format",
        ],
    );
}

#[test]
fn url_credentials_are_refused_and_not_echoed() {
    let f = Fixture::new();
    let msg = config_err(
        &f.config(""),
        &[(
            "OKTA_SPOT_SYNC__OKTA__ORG_URL",
            "https://me:hunter2@example.okta.com",
        )],
    );
    assert_contains(&msg, &["okta.org_url", "credentials"]);
    assert!(!msg.contains("hunter2"), "{msg}");
}

// ------------------------------------------------------------------------------------------
// Tokens.

#[test]
fn missing_token_file_names_key_path_and_fix() {
    let f = Fixture::new();
    let missing = f.path("no-such-token");
    let path = f.config_okta(&format!(
        "org_url = \"https://example.okta.com\"\napp_id = \"0oa1\"\ntoken_file = {missing:?}"
    ));
    let msg = config_err(&path, &[]);
    assert_contains(
        &msg,
        &[
            &format!("okta.token_file: cannot read {}: ", missing.display()),
            "No such file or directory",
            "create the file with the Okta API token, or set okta.token_file to the right path",
        ],
    );
}

#[test]
fn empty_token_file_is_an_error() {
    let f = Fixture::new();
    f.secret_file("okta-token", " \n\n");
    let msg = config_err(&f.config(""), &[]);
    assert_contains(&msg, &["okta.token_file", "okta-token", "is empty"]);
}

#[test]
fn unreadable_token_file_is_an_error() {
    // A directory cannot be read as a file, even by root (a chmod 000 file can).
    let f = Fixture::new();
    let dir = f.path("token-dir");
    std::fs::create_dir(&dir).unwrap();
    let msg = config_err(
        &f.config(""),
        &[("OKTA_SPOT_SYNC__SPOT__TOKEN_FILE", dir.to_str().unwrap())],
    );
    assert_contains(
        &msg,
        &[
            "spot.token_file: cannot read",
            "token-dir",
            "Spot API token",
        ],
    );
}

#[test]
fn token_with_inner_whitespace_is_an_error() {
    let f = Fixture::new();
    f.secret_file("okta-token", "SECRET part\nSECRET other\n");
    let msg = config_err(&f.config(""), &[]);
    assert_contains(&msg, &["okta.token_file", "whitespace"]);
}

#[test]
fn group_or_world_readable_token_file_warns() {
    let f = Fixture::new();
    set_mode(&f.path("okta-token"), 0o644);
    let loaded = ok(&f.config(""), &[]);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_contains(
        &loaded.warnings[0],
        &["okta.token_file", "okta-token", "0644", "chmod 600"],
    );
    set_mode(&f.path("okta-token"), 0o640);
    assert_eq!(ok(&f.config(""), &[]).warnings.len(), 1);
    set_mode(&f.path("okta-token"), 0o400);
    assert!(ok(&f.config(""), &[]).warnings.is_empty());
}

#[test]
fn tokens_come_from_credentials_directory() {
    let f = Fixture::new();
    let creds = f.path("creds");
    std::fs::create_dir(&creds).unwrap();
    for (name, tok) in [
        ("okta-token", "okta-from-creds"),
        ("spot-token", "spot-from-creds"),
    ] {
        let p = creds.join(name);
        std::fs::write(&p, format!("{tok}\n")).unwrap();
        set_mode(&p, 0o400);
    }
    let path = f.config_okta("org_url = \"https://example.okta.com\"\napp_id = \"0oa1\"");
    let creds_s = creds.to_str().unwrap();

    // The Spot token_file in the file beats the credential; Okta has none so it is used.
    let s = ok(
        &path,
        &[
            ("CREDENTIALS_DIRECTORY", creds_s),
            ("OKTA_SPOT_SYNC_OKTA_TOKEN", "okta-from-env"),
        ],
    )
    .settings;
    assert_eq!(
        s.okta
            .auth
            .ssws_token()
            .expect("an SSWS token")
            .expose_secret(),
        "okta-from-creds"
    );
    assert_eq!(s.spot.token.expose_secret(), SPOT_TOKEN);

    // Without any file source, both come from the credentials directory.
    let no_files = f.file(
        "bare.toml",
        "[okta]\norg_url = \"https://example.okta.com\"\napp_id = \"0oa1\"\n",
    );
    let s = ok(&no_files, &[("CREDENTIALS_DIRECTORY", creds_s)]).settings;
    assert_eq!(s.spot.token.expose_secret(), "spot-from-creds");

    // An empty credential is an error naming it.
    std::fs::write(creds.join("spot-token"), "\n").unwrap();
    let msg = config_err(&no_files, &[("CREDENTIALS_DIRECTORY", creds_s)]);
    assert_contains(
        &msg,
        &[
            "$CREDENTIALS_DIRECTORY/spot-token",
            "is empty",
            "LoadCredential",
        ],
    );
}

#[test]
fn tokens_come_from_the_environment_last() {
    let f = Fixture::new();
    let bare = f.file(
        "bare.toml",
        "[okta]\norg_url = \"https://example.okta.com\"\napp_id = \"0oa1\"\n",
    );
    let empty_creds = f.path("empty-creds");
    std::fs::create_dir(&empty_creds).unwrap();
    let loaded = ok(
        &bare,
        &[
            ("CREDENTIALS_DIRECTORY", empty_creds.to_str().unwrap()),
            ("OKTA_SPOT_SYNC_OKTA_TOKEN", " okta-env\n"),
            ("OKTA_SPOT_SYNC_SPOT_TOKEN", "spot-env"),
        ],
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded
            .settings
            .okta
            .auth
            .ssws_token()
            .expect("an SSWS token")
            .expose_secret(),
        "okta-env"
    );
    assert_eq!(loaded.settings.spot.token.expose_secret(), "spot-env");

    let msg = config_err(
        &bare,
        &[
            ("OKTA_SPOT_SYNC_OKTA_TOKEN", ""),
            ("OKTA_SPOT_SYNC_SPOT_TOKEN", "x"),
        ],
    );
    assert_contains(&msg, &["OKTA_SPOT_SYNC_OKTA_TOKEN is empty"]);

    let msg = config_err(&bare, &[]);
    assert_contains(
        &msg,
        &[
            "2 problems",
            "no Okta API token",
            "okta.token_file",
            "LoadCredential=okta-token",
            "OKTA_SPOT_SYNC_OKTA_TOKEN",
            "no Spot API token",
            "OKTA_SPOT_SYNC_SPOT_TOKEN",
        ],
    );
}

#[test]
fn inline_tokens_work_but_warn() {
    let f = Fixture::new();
    let path = f.config_okta(&format!(
        "org_url = \"https://example.okta.com\"\napp_id = \"0oa1\"\ntoken = \"{OKTA_TOKEN}\"\n\
         token_file = \"/does/not/matter\""
    ));
    let loaded = ok(
        &path,
        &[
            ("OKTA_SPOT_SYNC__SPOT__TOKEN", SPOT_TOKEN),
            ("OKTA_SPOT_SYNC__SPOT__TOKEN_FILE", ""),
        ],
    );
    assert_eq!(
        loaded
            .settings
            .okta
            .auth
            .ssws_token()
            .expect("an SSWS token")
            .expose_secret(),
        OKTA_TOKEN
    );
    assert_eq!(loaded.settings.spot.token.expose_secret(), SPOT_TOKEN);
    let all = loaded.warnings.join("\n");
    assert_eq!(loaded.warnings.len(), 3, "{all}");
    assert_contains(
        &all,
        &[
            "okta.token is set inline",
            "spot.token is set inline",
            "okta.token_file = \"/does/not/matter\" is ignored",
        ],
    );
    assert_no_secret(&all);
    assert_no_secret(&format!("{loaded:?}"));
}

#[test]
fn secrets_never_appear_in_debug_output_or_errors() {
    let f = Fixture::new();
    // Debug of fully loaded settings (tokens from files and from inline/env).
    let loaded = ok(&f.config(""), &[]);
    let debug = format!("{loaded:?} {:#?}", loaded.settings);
    assert_no_secret(&debug);
    assert!(debug.contains("REDACTED"), "{debug}");

    let inline = f.config_okta(&format!(
        "org_url = \"https://example.okta.com\"\napp_id = \"0oa1\"\ntoken = \"{OKTA_TOKEN}\""
    ));
    let loaded = ok(&inline, &[("OKTA_SPOT_SYNC_SPOT_TOKEN", SPOT_TOKEN)]);
    assert_no_secret(&format!("{loaded:?} {:?}", loaded.warnings));

    // Errors raised while tokens are loaded or nearby.
    let scenarios: Vec<(PathBuf, Vec<(&str, String)>)> = vec![
        // Another setting is bad while inline tokens are set.
        (
            inline.clone(),
            vec![
                ("OKTA_SPOT_SYNC__OKTA__PAGE_SIZE", "ten".into()),
                ("OKTA_SPOT_SYNC__SPOT__TOKEN", SPOT_TOKEN.into()),
            ],
        ),
        // A token given where a section is expected.
        (
            f.config(""),
            vec![(
                "OKTA_SPOT_SYNC__OKTA__TOKEN",
                format!("{OKTA_TOKEN} {SPOT_TOKEN}"),
            )],
        ),
        (
            f.config(""),
            vec![
                ("OKTA_SPOT_SYNC_OKTA_TOKEN", OKTA_TOKEN.into()),
                ("OKTA_SPOT_SYNC__OKTA", OKTA_TOKEN.into()),
            ],
        ),
        // A token where a list is expected.
        (
            f.file(
                "list.toml",
                &format!("[okta]\ntoken = [\"{OKTA_TOKEN}\"]\n"),
            ),
            vec![],
        ),
        // A syntax error on the token line.
        (
            f.file(
                "broken.toml",
                &format!("[okta]\ntoken = \"{OKTA_TOKEN}\nx = 1\n"),
            ),
            vec![],
        ),
        (
            f.file("broken2.toml", &format!("[okta]\ntoken = {OKTA_TOKEN}\n")),
            vec![],
        ),
        // A token file whose content is wrong.
        (
            f.config(""),
            vec![(
                "OKTA_SPOT_SYNC__OKTA__TOKEN_FILE",
                f.secret_file("two-lines", &format!("{OKTA_TOKEN}\n{SPOT_TOKEN}\n"))
                    .to_string_lossy()
                    .into_owned(),
            )],
        ),
        // A token in the URL.
        (
            f.config(""),
            vec![(
                "OKTA_SPOT_SYNC__SPOT__BASE_URL",
                format!("https://{SPOT_TOKEN}@api.spotinst.io"),
            )],
        ),
        (
            f.config(""),
            vec![(
                "OKTA_SPOT_SYNC__SPOT__BASE_URL",
                format!("https://api.spotinst.io/?token={SPOT_TOKEN}"),
            )],
        ),
    ];
    for (path, vars) in scenarios {
        let vars: Vec<(String, String)> =
            vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let err = config::load_from_env_vars(&path, vars.clone()).expect_err(&format!(
            "scenario {path:?} {:?} should fail",
            vars.iter().map(|v| &v.0).collect::<Vec<_>>()
        ));
        let text = format!("{err} {err:?}");
        assert_no_secret(&text);
    }
}

#[test]
fn read_bounds_have_generous_defaults_overrides_and_no_zero() {
    let f = Fixture::new();
    let s = ok(&f.config(""), &[]).settings;
    assert_eq!(s.okta.read_bounds.max_pages.get(), 10_000);
    assert_eq!(s.okta.read_bounds.max_rows.get(), 2_000_000);
    assert_eq!(s.okta.read_bounds.max_time, Duration::from_secs(2 * 3600));

    let path = f.config("");
    let path = {
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "[okta]\n",
            "[okta]\nmax_read_pages = 50\nmax_read_rows = 100\nmax_read_time = \"10m\"\n",
        );
        f.file("config.toml", &text)
    };
    let s = ok(&path, &[("OKTA_SPOT_SYNC__OKTA__MAX_READ_ROWS", "7")]).settings;
    assert_eq!(s.okta.read_bounds.max_pages.get(), 50);
    assert_eq!(s.okta.read_bounds.max_rows.get(), 7, "env beats the file");
    assert_eq!(s.okta.read_bounds.max_time, Duration::from_secs(600));

    for (var, value, expected) in [
        (
            "OKTA_SPOT_SYNC__OKTA__MAX_READ_PAGES",
            "0",
            &["okta.max_read_pages = 0", "1..="][..],
        ),
        (
            "OKTA_SPOT_SYNC__OKTA__MAX_READ_PAGES",
            "4294967296",
            &["okta.max_read_pages = 4294967296"][..],
        ),
        (
            "OKTA_SPOT_SYNC__OKTA__MAX_READ_ROWS",
            "0",
            &["okta.max_read_rows = 0", "at least 1"][..],
        ),
        (
            "OKTA_SPOT_SYNC__OKTA__MAX_READ_TIME",
            "0s",
            &["okta.max_read_time", "greater than zero", "\"2h\""][..],
        ),
        (
            "OKTA_SPOT_SYNC__OKTA__MAX_READ_TIME",
            "forever",
            &["okta.max_read_time", "not a duration"][..],
        ),
    ] {
        let msg = config_err(&f.config(""), &[(var, value)]);
        assert_contains(&msg, expected);
    }
}

#[test]
fn a_schedule_that_never_fires_is_an_error() {
    let f = Fixture::new();
    for (file, vars) in [
        ("[sync]\nschedule = \"0 0 0 30 2 *\"\n", vec![]),
        (
            "",
            vec![("OKTA_SPOT_SYNC__SYNC__SCHEDULE", "0 0 12 31 4 *")],
        ),
        ("[sync]\nschedule = \"0 0 0 1 1 * 2020\"\n", vec![]),
    ] {
        let msg = config_err(&f.config(file), &vars);
        assert_contains(
            &msg,
            &["sync.schedule", "never fires", "\"0 */10 * * * *\""],
        );
    }
}

#[test]
fn an_unknown_spot_role_is_an_error() {
    let f = Fixture::new();
    let msg = config_err(
        &f.config("[spot.roles.editor]\nspot_role = \"superuser\"\n"),
        &[],
    );
    assert_contains(
        &msg,
        &[
            "spot.roles.editor.spot_role",
            "\"superuser\"",
            "\"viewer\", \"editor\", \"admin\"",
        ],
    );
    let msg = config_err(
        &f.config(""),
        &[("OKTA_SPOT_SYNC__SPOT__ROLES__VIEWER__SPOT_ROLE", "veiwer")],
    );
    assert_contains(&msg, &["spot.roles.viewer.spot_role", "\"veiwer\""]);
}

#[test]
fn an_override_that_empties_protected_emails_is_an_error() {
    let f = Fixture::new();
    let path = f.config("[sync]\nprotected_emails = [\"boss@example.com\"]\n");
    for empty in ["", " ", ",", " , ,"] {
        let msg = config_err(&path, &[("OKTA_SPOT_SYNC__SYNC__PROTECTED_EMAILS", empty)]);
        assert_contains(
            &msg,
            &[
                "OKTA_SPOT_SYNC__SYNC__PROTECTED_EMAILS",
                "sync.protected_emails",
                "lists no address",
                "=[]",
            ],
        );
    }
    // Saying it explicitly works, and so does the file.
    let s = ok(&path, &[("OKTA_SPOT_SYNC__SYNC__PROTECTED_EMAILS", " [] ")]).settings;
    assert!(s.sync.protected_emails.is_empty());
    let s = ok(&f.config("[sync]\nprotected_emails = []\n"), &[]).settings;
    assert!(s.sync.protected_emails.is_empty());
    let s = ok(
        &path,
        &[("OKTA_SPOT_SYNC__SYNC__PROTECTED_EMAILS", ",a@example.com,")],
    )
    .settings;
    assert_eq!(s.sync.protected_emails.len(), 1);
}

#[test]
fn a_token_file_with_a_utf8_bom_is_read_without_it() {
    let f = Fixture::new();
    f.secret_file("okta-token", &format!("\u{feff}{OKTA_TOKEN}\r\n"));
    f.secret_file("spot-token", &format!("\u{feff}{SPOT_TOKEN}"));
    let s = ok(&f.config(""), &[]).settings;
    assert_eq!(
        s.okta
            .auth
            .ssws_token()
            .expect("an SSWS token")
            .expose_secret(),
        OKTA_TOKEN
    );
    assert_eq!(s.spot.token.expose_secret(), SPOT_TOKEN);
}

#[test]
fn a_non_loopback_listen_address_warns() {
    let f = Fixture::new();
    let loaded = ok(&f.config("[daemon]\nlisten = \"0.0.0.0:9464\"\n"), &[]);
    assert_eq!(
        loaded.settings.daemon.listen,
        Some("0.0.0.0:9464".parse().unwrap())
    );
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("daemon.listen = \"0.0.0.0:9464\"") && w.contains("loopback")),
        "{:?}",
        loaded.warnings
    );
    for quiet in ["127.0.0.1:9464", "[::1]:9464", ""] {
        let loaded = ok(&f.config(""), &[("OKTA_SPOT_SYNC__DAEMON__LISTEN", quiet)]);
        assert!(loaded.warnings.is_empty(), "{quiet}: {:?}", loaded.warnings);
    }
}
