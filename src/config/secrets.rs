//! Secrets: where the Okta and Spot tokens and the OAuth private key come from, reading them
//! from files (size-bounded, trimmed, a leading UTF-8 byte-order mark dropped, a warning when
//! group or others can read the file), and redacting tokens that arrived through the
//! environment from any message.
//!
//! Tokens are never read from the command line. For each API the first source present wins:
//! `okta.token` (inline in the file or `OKTA_SPOT_SYNC__OKTA__TOKEN`; allowed but discouraged,
//! it yields a warning), `okta.token_file`, `$CREDENTIALS_DIRECTORY/okta-token` (systemd
//! `LoadCredential=`), then `OKTA_SPOT_SYNC_OKTA_TOKEN` (likewise `spot.*`, `spot-token`,
//! `OKTA_SPOT_SYNC_SPOT_TOKEN`). An empty `token_file` counts as unset (so an override can
//! clear it); a relative one is relative to the working directory. An empty token is an
//! error. The private key comes from `okta.private_key_file`, else
//! `$CREDENTIALS_DIRECTORY/okta-private-key`.
//!
//! Secrets go straight into [`SecretString`]. This file must never log, print or put a
//! secret into a message, a warning or `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::keys::{
    env_var_for_key, key_for_env_var, CREDENTIALS_DIRECTORY_ENV, OKTA_PRIVATE_KEY_CREDENTIAL,
    OKTA_TOKEN_CREDENTIAL, OKTA_TOKEN_ENV, SPOT_TOKEN_CREDENTIAL, SPOT_TOKEN_ENV,
};
use super::raw::RawSecret;

/// Token files larger than this are refused (a token is a few dozen bytes).
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Token values that arrived through the environment, so that an error message that quotes a
/// value (the `config` crate's type errors do) can never show one.
pub(super) struct Secrets(Vec<String>);

impl Secrets {
    pub(super) fn from_env(vars: &BTreeMap<String, String>) -> Secrets {
        let mut found = Vec::new();
        for (name, value) in vars {
            let is_token_var = name == OKTA_TOKEN_ENV
                || name == SPOT_TOKEN_ENV
                || key_for_env_var(name).is_some_and(|k| k == "okta.token" || k == "spot.token");
            let value = value.trim();
            if is_token_var && !value.is_empty() {
                found.push(value.to_string());
            }
        }
        Secrets(found)
    }

    pub(super) fn redact(&self, msg: &str) -> String {
        let mut out = msg.to_string();
        for s in &self.0 {
            out = out.replace(s.as_str(), "[REDACTED]");
        }
        out
    }
}

/// Where one API's token may come from.
pub(super) struct TokenSource {
    /// `okta` or `spot`: the section, so keys are `okta.token`, `okta.token_file`.
    section: &'static str,
    /// What the token is, for messages.
    what: &'static str,
    credential: &'static str,
    env: &'static str,
}

impl TokenSource {
    pub(super) const OKTA: TokenSource = TokenSource {
        section: "okta",
        what: "Okta API token",
        credential: OKTA_TOKEN_CREDENTIAL,
        env: OKTA_TOKEN_ENV,
    };
    pub(super) const SPOT: TokenSource = TokenSource {
        section: "spot",
        what: "Spot API token",
        credential: SPOT_TOKEN_CREDENTIAL,
        env: SPOT_TOKEN_ENV,
    };
}

/// The first token source present wins; see the module docs for the order.
pub(super) fn resolve_token(
    src: &TokenSource,
    inline: Option<RawSecret>,
    token_file: Option<&str>,
    vars: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<SecretString, String> {
    let sec = src.section;
    let token_file = token_file.map(str::trim).filter(|f| !f.is_empty());
    if let Some(RawSecret(secret)) = inline {
        warnings.push(format!(
            "{sec}.token is set inline (in the config file or {}); prefer {sec}.token_file or \
             systemd LoadCredential={}:…, which keep the token out of the config and the \
             environment",
            env_var_for_key(&format!("{sec}.token")),
            src.credential
        ));
        if let Some(f) = token_file {
            warnings.push(format!(
                "{sec}.token_file = {f:?} is ignored because {sec}.token is set; remove one of them"
            ));
        }
        return check_token(secret.expose_secret(), &format!("{sec}.token"), || {
            format!(
                "set it to the {}, or remove it and use {sec}.token_file",
                src.what
            )
        });
    }
    if let Some(f) = token_file {
        let fix = format!(
            "create the file with the {}, or set {sec}.token_file to the right path",
            src.what
        );
        return read_token_file(&format!("{sec}.token_file"), Path::new(f), &fix, warnings);
    }
    if let Some(path) = credential_path(vars, src.credential) {
        let fix = format!(
            "check the LoadCredential={}:… line of the service unit",
            src.credential
        );
        return read_token_file(
            &format!("${CREDENTIALS_DIRECTORY_ENV}/{}", src.credential),
            &path,
            &fix,
            warnings,
        );
    }
    if let Some(v) = vars.get(src.env) {
        return check_token(v, src.env, || {
            format!("put the {} in it, or unset it", src.what)
        });
    }
    Err(format!(
        "no {what}: set {sec}.token_file to a file holding it, or load it with systemd \
         LoadCredential={cred}:/path (read from $CREDENTIALS_DIRECTORY/{cred}), or set {env}",
        what = src.what,
        cred = src.credential,
        env = src.env
    ))
}

/// The PEM text of the client key and the label to name it by: `okta.private_key_file`, else
/// `$CREDENTIALS_DIRECTORY/okta-private-key`.
pub(super) fn resolve_private_key(
    file: Option<&str>,
    vars: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(String, SecretString), String> {
    if let Some(f) = file.map(str::trim).filter(|f| !f.is_empty()) {
        let label = "okta.private_key_file".to_string();
        let fix = "create the file with the service app's private key (PEM), or set \
                   okta.private_key_file to the right path";
        return read_key_file(&label, Path::new(f), fix, warnings).map(|pem| (label, pem));
    }
    if let Some(path) = credential_path(vars, OKTA_PRIVATE_KEY_CREDENTIAL) {
        let label = format!("${CREDENTIALS_DIRECTORY_ENV}/{OKTA_PRIVATE_KEY_CREDENTIAL}");
        let fix = format!(
            "check the LoadCredential={OKTA_PRIVATE_KEY_CREDENTIAL}:… line of the service unit"
        );
        return read_key_file(&label, &path, &fix, warnings).map(|pem| (label, pem));
    }
    Err(format!(
        "okta.auth = \"oauth\" needs the service app's private key: set okta.private_key_file to \
         a PEM file holding it (mode 0600), or load it with systemd \
         LoadCredential={OKTA_PRIVATE_KEY_CREDENTIAL}:/path"
    ))
}

/// `$CREDENTIALS_DIRECTORY/<credential>` when the variable is set and the file exists.
fn credential_path(
    vars: &BTreeMap<String, String>,
    credential: &str,
) -> Option<std::path::PathBuf> {
    let dir = vars
        .get(CREDENTIALS_DIRECTORY_ENV)
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())?;
    let path = Path::new(dir).join(credential);
    path.exists().then_some(path)
}

/// The text without a leading UTF-8 byte-order mark, which editors on Windows (and
/// PowerShell's `Out-File`) put at the start of a file: it is not part of the token, and
/// `trim` does not remove it (U+FEFF is not whitespace). The text is moved, not copied,
/// when there is none.
fn strip_bom(text: String) -> String {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// Trims and checks a token; messages never include it.
fn check_token(raw: &str, label: &str, fix: impl Fn() -> String) -> Result<SecretString, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(format!("{label} is empty; {}", fix()));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{label} contains whitespace or control characters inside the token; it must hold \
             only the token; {}",
            fix()
        ));
    }
    Ok(SecretString::from(t.to_string()))
}

fn read_token_file(
    label: &str,
    path: &Path,
    fix: &str,
    warnings: &mut Vec<String>,
) -> Result<SecretString, String> {
    let text = read_small_secret_file(label, path, "the token", fix, warnings)?;
    check_token(&text, &format!("{label} ({})", path.display()), || {
        fix.to_string()
    })
}

/// Reads a PEM key whole; only an empty file is refused here (the key is parsed by the
/// caller).
fn read_key_file(
    label: &str,
    path: &Path,
    fix: &str,
    warnings: &mut Vec<String>,
) -> Result<SecretString, String> {
    let text = read_small_secret_file(label, path, "the private key", fix, warnings)?;
    if text.trim().is_empty() {
        return Err(format!("{label}: {} is empty; {fix}", path.display()));
    }
    Ok(SecretString::from(text))
}

/// Reads a small secret file as UTF-8 text without a leading byte-order mark, warning when
/// group or others can read it. `holds` says what it must hold, for messages; messages never
/// include the content.
fn read_small_secret_file(
    label: &str,
    path: &Path,
    holds: &str,
    fix: &str,
    warnings: &mut Vec<String>,
) -> Result<String, String> {
    let shown = path.display();
    let cannot = |e: &dyn fmt::Display| format!("{label}: cannot read {shown}: {e}; {fix}");
    let file = std::fs::File::open(path).map_err(|e| cannot(&e))?;
    let meta = file.metadata().map_err(|e| cannot(&e))?;
    if !meta.is_file() {
        return Err(cannot(&"not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{label}: {shown} is accessible by group or others (mode {mode:04o}); restrict \
                 it with chmod 600 {shown}"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = warnings;
    let mut buf = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| cannot(&e))?;
    if buf.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "{label}: {shown} is larger than {MAX_TOKEN_FILE_BYTES} bytes; it must hold only \
             {holds}; {fix}"
        ));
    }
    let text =
        String::from_utf8(buf).map_err(|_| format!("{label}: {shown} is not UTF-8 text; {fix}"))?;
    Ok(strip_bom(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_from_the_environment_are_redacted() {
        let vars: BTreeMap<String, String> = [
            (OKTA_TOKEN_ENV, " tok-a \n"),
            ("OKTA_SPOT_SYNC__SPOT__TOKEN", "tok-b"),
            ("OKTA_SPOT_SYNC__SPOT__TOKEN_FILE", "/run/file"),
            ("OKTA_SPOT_SYNC__LOG__LEVEL", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = Secrets::from_env(&vars);
        assert_eq!(
            s.redact("x tok-a y tok-b /run/file info"),
            "x [REDACTED] y [REDACTED] /run/file info"
        );
    }

    #[test]
    fn a_bom_is_not_part_of_a_token() {
        assert_eq!(strip_bom("\u{feff}tok\n".into()), "tok\n");
        assert_eq!(strip_bom("tok".into()), "tok");
        assert_eq!(strip_bom("t\u{feff}k".into()), "t\u{feff}k");
    }

    #[test]
    fn tokens_are_trimmed_and_checked() {
        let fix = || "fix".to_string();
        assert_eq!(
            check_token("  abc\n", "k", fix).unwrap().expose_secret(),
            "abc"
        );
        let err = check_token(" \n", "k", fix).unwrap_err();
        assert!(err.starts_with("k is empty"), "{err}");
        let err = check_token("ab cd", "k", fix).unwrap_err();
        assert!(!err.contains("ab") && !err.contains("cd"), "{err}");
    }
}
