//! The config file of an okta-spot-sync client pointed at running emulators, with its token
//! files: the one place the demo, `emulate`, the tests and the benchmarks get it from.
//!
//! It knows the client's config keys only as text (this crate never depends on the client):
//! `[okta]` org_url, app_id, token_file; `[spot]` base_url, token_file; `[sync]` state_file,
//! protected_emails; `[http]` allow_insecure_http (the emulators speak plain http on
//! loopback), max_retries; `[daemon]` listen = "" (no status server). Callers add their own
//! keys to a section or whole sections after them.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::Emulators;

/// A section of the client config that [`ClientConfig::keys`] adds lines to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Okta,
    Spot,
    Sync,
    Http,
    Daemon,
}

const SECTIONS: [Section; 5] = [
    Section::Okta,
    Section::Spot,
    Section::Sync,
    Section::Http,
    Section::Daemon,
];

/// A client config for these emulators, built with the knobs below and written by
/// [`ClientConfig::write`] (or shown by [`ClientConfig::to_toml`]).
///
/// By default: token files `okta-token` and `spot-token` in the directory (mode 0600), the
/// state file `state.json` there, plain http allowed, the client's default `max_retries`, and
/// `[daemon] listen = ""`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    dir: PathBuf,
    okta_url: String,
    app_id: String,
    spot_url: String,
    okta_token: String,
    spot_token: String,
    token_files: bool,
    okta_token_file: bool,
    state_file: Option<PathBuf>,
    protected_emails: Vec<String>,
    max_retries: Option<u32>,
    daemon_listen_off: bool,
    keys: Vec<(Section, String)>,
    appended: String,
}

impl Emulators {
    /// A client config for these emulators, to be written into `dir` (see [`ClientConfig`]).
    pub fn client_config(&self, dir: impl Into<PathBuf>) -> ClientConfig {
        let dir = dir.into();
        ClientConfig {
            state_file: Some(dir.join("state.json")),
            dir,
            okta_url: self.okta.url().to_string(),
            app_id: self.okta.app_id(),
            spot_url: self.spot.url().to_string(),
            okta_token: self.okta.token(),
            spot_token: self.spot.token(),
            token_files: true,
            okta_token_file: true,
            protected_emails: Vec::new(),
            max_retries: None,
            daemon_listen_off: true,
            keys: Vec::new(),
            appended: String::new(),
        }
    }
}

impl ClientConfig {
    /// The state file (default `state.json` in the directory).
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// No `state_file` key (the caller adds `[sync]` itself).
    pub fn without_state_file(mut self) -> Self {
        self.state_file = None;
        self
    }

    /// No token files and no `token_file` keys: the tokens come from the environment
    /// (`OKTA_SPOT_SYNC_OKTA_TOKEN`, `OKTA_SPOT_SYNC_SPOT_TOKEN`).
    pub fn without_token_files(mut self) -> Self {
        self.token_files = false;
        self
    }

    /// No Okta token file and no `okta.token_file`: for a caller that sets up another Okta
    /// authentication with [`ClientConfig::keys`] (e.g. `auth = "oauth"`).
    pub fn without_okta_token(mut self) -> Self {
        self.okta_token_file = false;
        self
    }

    /// `sync.protected_emails`.
    pub fn protected_emails(mut self, emails: &[&str]) -> Self {
        self.protected_emails = emails.iter().map(|e| e.to_string()).collect();
        self
    }

    /// `http.max_retries` (default: not set, the client's default).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// No `[daemon] listen = ""`: the client's default listen address, or the caller's own
    /// `[daemon]` section.
    pub fn without_daemon_listen(mut self) -> Self {
        self.daemon_listen_off = false;
        self
    }

    /// Lines of TOML (`key = value`, one or more) added to the end of `section`; a section
    /// with no key of its own is written when it gets some here.
    pub fn keys(mut self, section: Section, lines: &str) -> Self {
        self.keys.push((section, lines.to_string()));
        self
    }

    /// Text appended after every section, e.g. `[log]` or `[spot.roles.editor]`.
    pub fn append(mut self, toml: &str) -> Self {
        self.appended.push_str(toml);
        self
    }

    /// The directory the files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where [`ClientConfig::write`] puts the config file: `config.toml` in the directory.
    pub fn path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    fn okta_token_path(&self) -> PathBuf {
        self.dir.join("okta-token")
    }

    fn spot_token_path(&self) -> PathBuf {
        self.dir.join("spot-token")
    }

    /// The config file's text.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for section in SECTIONS {
            let mut lines = String::new();
            let mut key = |k: &str, v: String| {
                let _ = writeln!(lines, "{k} = {v}");
            };
            match section {
                Section::Okta => {
                    key("org_url", quote(&self.okta_url));
                    key("app_id", quote(&self.app_id));
                    if self.token_files && self.okta_token_file {
                        key("token_file", quote_path(&self.okta_token_path()));
                    }
                }
                Section::Spot => {
                    key("base_url", quote(&self.spot_url));
                    if self.token_files {
                        key("token_file", quote_path(&self.spot_token_path()));
                    }
                }
                Section::Sync => {
                    if let Some(state) = &self.state_file {
                        key("state_file", quote_path(state));
                    }
                    if !self.protected_emails.is_empty() {
                        let list: Vec<String> =
                            self.protected_emails.iter().map(|e| quote(e)).collect();
                        key("protected_emails", format!("[{}]", list.join(", ")));
                    }
                }
                Section::Http => {
                    key("allow_insecure_http", "true".into());
                    if let Some(n) = self.max_retries {
                        key("max_retries", n.to_string());
                    }
                }
                Section::Daemon => {
                    if self.daemon_listen_off {
                        key("listen", quote(""));
                    }
                }
            }
            for (_, extra) in self
                .keys
                .iter()
                .filter(|(s, l)| *s == section && !l.is_empty())
            {
                lines.push_str(extra);
                if !extra.ends_with('\n') {
                    lines.push('\n');
                }
            }
            if lines.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            let _ = write!(out, "[{}]\n{lines}", section.name());
        }
        if !self.appended.is_empty() {
            out.push('\n');
            out.push_str(&self.appended);
            if !self.appended.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    /// Creates the directory if needed and writes the token files (unless turned off) and
    /// `config.toml` into it, each with mode 0600 (on Unix) and each a new file: an existing
    /// file or a symbolic link at one of these paths is an error, never overwritten or
    /// followed. Returns the config file's path.
    pub fn write(&self) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        if self.token_files {
            if self.okta_token_file {
                write_new_owner_only(&self.okta_token_path(), &self.okta_token)?;
            }
            write_new_owner_only(&self.spot_token_path(), &self.spot_token)?;
        }
        let path = self.path();
        write_new_owner_only(&path, &self.to_toml())?;
        Ok(path)
    }
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Section::Okta => "okta",
            Section::Spot => "spot",
            Section::Sync => "sync",
            Section::Http => "http",
            Section::Daemon => "daemon",
        }
    }
}

fn write_new_owner_only(path: &Path, content: &str) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    file.write_all(content.as_bytes())
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote_path(path: &Path) -> String {
    quote(&path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &str) -> ClientConfig {
        ClientConfig {
            dir: PathBuf::from(dir),
            okta_url: "http://127.0.0.1:1".into(),
            app_id: "0oa1".into(),
            spot_url: "http://127.0.0.1:2".into(),
            okta_token: "o".into(),
            spot_token: "s".into(),
            token_files: true,
            okta_token_file: true,
            state_file: Some(PathBuf::from(dir).join("state.json")),
            protected_emails: Vec::new(),
            max_retries: None,
            daemon_listen_off: true,
            keys: Vec::new(),
            appended: String::new(),
        }
    }

    #[test]
    fn the_default_config_has_every_section_once() {
        assert_eq!(
            config("/d").to_toml(),
            "[okta]\norg_url = \"http://127.0.0.1:1\"\napp_id = \"0oa1\"\n\
             token_file = \"/d/okta-token\"\n\n\
             [spot]\nbase_url = \"http://127.0.0.1:2\"\ntoken_file = \"/d/spot-token\"\n\n\
             [sync]\nstate_file = \"/d/state.json\"\n\n\
             [http]\nallow_insecure_http = true\n\n[daemon]\nlisten = \"\"\n"
        );
    }

    #[test]
    fn knobs_add_keys_and_drop_sections() {
        let text = config("/d")
            .without_okta_token()
            .keys(Section::Okta, "auth = \"oauth\"")
            .keys(Section::Spot, "")
            .without_state_file()
            .without_daemon_listen()
            .max_retries(0)
            .protected_emails(&["a@example.com", "b@example.com"])
            .append("[log]\nlevel = \"warn\"\n")
            .to_toml();
        assert_eq!(
            text,
            "[okta]\norg_url = \"http://127.0.0.1:1\"\napp_id = \"0oa1\"\nauth = \"oauth\"\n\n\
             [spot]\nbase_url = \"http://127.0.0.1:2\"\ntoken_file = \"/d/spot-token\"\n\n\
             [sync]\nprotected_emails = [\"a@example.com\", \"b@example.com\"]\n\n\
             [http]\nallow_insecure_http = true\nmax_retries = 0\n\n[log]\nlevel = \"warn\"\n"
        );
        let no_tokens = config(".").without_token_files().to_toml();
        assert!(!no_tokens.contains("token_file"), "{no_tokens}");
    }

    #[test]
    fn write_makes_owner_only_files_and_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("okta-spot-sim-{}", uuid::Uuid::new_v4()));
        let c = config(dir.to_str().unwrap());
        let path = c.write().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), c.to_toml());
        assert_eq!(
            std::fs::read_to_string(dir.join("okta-token")).unwrap(),
            "o"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("spot-token")).unwrap(),
            "s"
        );
        #[cfg(unix)]
        for name in ["okta-token", "spot-token", "config.toml"] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let again = c.write().unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn quote_escapes_what_toml_needs() {
        assert_eq!(quote("/tmp/a b"), "\"/tmp/a b\"");
        assert_eq!(quote("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    }
}
