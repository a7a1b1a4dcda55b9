//! Test harness shared by the integration tests: starts both emulators on 127.0.0.1:0, writes
//! a real config file, token files (0600) and a state file path into a temp dir, and runs the
//! real `okta-spot-sync` binary against them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use okta_spot_sim::{Emulators, Fixture, OktaSim, OktaUserSpec, SpotSim};
use okta_spot_sync::ledger::{Ledger, LedgerStore};

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Emulators plus a config directory for the binary.
pub struct Env {
    pub emu: Emulators,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
    /// Extra environment for every run (e.g. `OKTA_SPOT_SYNC__SYNC__MAX_DELETES`).
    pub env: Vec<(String, String)>,
}

impl Env {
    /// Emulators with an empty Okta app and a Spot organization holding one admin
    /// (`owner@example.com`, protected) and one programmatic user.
    pub async fn new() -> Env {
        Env::with_fixture(Fixture::default(), "").await
    }

    pub async fn with_fixture(fixture: Fixture, extra_toml: &str) -> Env {
        let emu = Emulators::start_local(fixture)
            .await
            .expect("emulators start");
        emu.spot
            .add_user("owner@example.com", "Olive", "Owner", "admin");
        emu.spot.add_programmatic_user("ci-bot");
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state").join("state.json");
        let config = emu
            .client_config(dir.path())
            .state_file(&state)
            .protected_emails(&["owner@example.com"])
            .max_retries(2)
            .append(extra_toml)
            .write()
            .unwrap();
        Env {
            emu,
            dir,
            config,
            state,
            env: Vec::new(),
        }
    }

    pub fn okta(&self) -> &OktaSim {
        &self.emu.okta
    }

    pub fn spot(&self) -> &SpotSim {
        &self.emu.spot
    }

    /// Adds an active Okta user and assigns it directly with `role`.
    pub fn assigned(&self, email: &str, role: Option<&str>) -> String {
        let id = self.person(email);
        self.okta().assign(&id, role);
        id
    }

    /// Adds an active, unassigned Okta user.
    pub fn person(&self, email: &str) -> String {
        let local = email.split('@').next().unwrap_or("x");
        self.okta().add_user(OktaUserSpec {
            email: email.into(),
            first_name: local.into(),
            last_name: "Test".into(),
            ..OktaUserSpec::default()
        })
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.into(), value.into()));
    }

    /// Runs the binary with `args` after `--config <file>`, with a clean environment.
    pub async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-spot-sync"));
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("RUST_LOG", "okta_spot_sync=debug");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = cmd.output().await.expect("binary runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn ledger(&self) -> Ledger {
        LedgerStore::new(&self.state).load().expect("ledger loads")
    }

    /// Emails of the Spot organization's personal users, sorted.
    pub fn spot_emails(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .spot()
            .users()
            .into_iter()
            .filter(|u| u.kind == "personal")
            .map(|u| u.email.to_lowercase())
            .collect();
        v.sort();
        v
    }
}

pub fn write_secret(path: &Path, content: &str) {
    okta_spot_sync::fsutil::write_owner_only(path, content.as_bytes()).unwrap();
}

/// `(action, email, status)` triples of a JSON report, in report order.
pub fn actions(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["email"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn triple(action: &str, email: &str, status: &str) -> (String, String, String) {
    (action.into(), email.into(), status.into())
}
