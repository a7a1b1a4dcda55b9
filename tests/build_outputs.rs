//! What `build.rs` produces, checked on the binary and files of this build: `--version` names
//! the commit the binary was built from, and the man pages and shell completions generated
//! from the clap definitions are where `cargo deb` takes them from (`target/<profile>/
//! okta-spot-sync-assets/`), one page per subcommand.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_okta-spot-sync");
const SUBCOMMANDS: [&str; 10] = [
    "plan",
    "reconcile",
    "import",
    "explain",
    "audit",
    "run",
    "check",
    "rebuild-ledger",
    "emulate",
    "demo",
];

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit build.rs should have found: `$OKTA_SPOT_SYNC_COMMIT`, else HEAD of this checkout
/// (when the checkout's top level is this crate), else "unknown".
fn expected_commit() -> String {
    if let Some(c) = option_env!("OKTA_SPOT_SYNC_COMMIT").filter(|c| !c.trim().is_empty()) {
        return c.trim().to_string();
    }
    let here = std::fs::canonicalize(env!("CARGO_MANIFEST_DIR")).unwrap();
    match git(&["rev-parse", "--show-toplevel"]) {
        Some(top) if std::fs::canonicalize(&top).ok() == Some(here) => {
            git(&["rev-parse", "--short", "HEAD"]).expect("HEAD of this checkout")
        }
        _ => "unknown".to_string(),
    }
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim_end(),
        format!(
            "okta-spot-sync {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            expected_commit()
        )
    );
}

fn assets() -> PathBuf {
    Path::new(BIN)
        .parent()
        .expect("the binary's directory")
        .join("okta-spot-sync-assets")
}

fn gunzip(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text
}

#[test]
fn man_pages_are_generated_for_the_command_and_each_subcommand() {
    let man = assets().join("man");
    let main = gunzip(&man.join("okta-spot-sync.1.gz"));
    assert!(main.contains(".TH okta-spot-sync 1"), "{main}");
    for sub in SUBCOMMANDS {
        let page = gunzip(&man.join(format!("okta-spot-sync-{sub}.1.gz")));
        assert!(
            page.contains(&format!(".TH okta-spot-sync-{sub} 1")),
            "{page}"
        );
        assert!(
            main.contains(&format!(
                "okta\\-spot\\-sync\\-{}(1)",
                sub.replace('-', "\\-")
            )),
            "{main}"
        );
    }
    let pages = std::fs::read_dir(&man).unwrap().count();
    assert_eq!(
        pages,
        SUBCOMMANDS.len() + 1,
        "no page of a subcommand that does not exist"
    );
}

#[test]
fn completions_know_every_subcommand_and_the_role_values() {
    let dir = assets().join("completions");
    for file in [
        "okta-spot-sync.bash",
        "_okta-spot-sync",
        "okta-spot-sync.fish",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for sub in SUBCOMMANDS {
            assert!(text.contains(sub), "{file} lacks {sub}");
        }
        assert!(text.contains("viewer") && text.contains("editor"), "{file}");
    }
}
