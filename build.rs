//! Build script: stamps the binary with the git commit it is built from, and generates the
//! man pages and the bash, zsh and fish completions from the clap definitions.
//!
//! Owns: the `OKTA_SPOT_SYNC_VERSION` compile-time variable (`0.1.0 (commit 1a2b3c4)`, read by
//! `cli::VERSION` for `--version`), and the generated files: `$OUT_DIR/assets/`, copied to
//! `<target dir>/<profile>/okta-spot-sync-assets/` where `cargo deb` takes them from (its
//! `target/release/` asset prefix; see `[package.metadata.deb]` in Cargo.toml):
//! `man/okta-spot-sync*.1.gz`, `completions/okta-spot-sync.bash`, `_okta-spot-sync`,
//! `okta-spot-sync.fish`.
//!
//! Must never: fail the build because git is missing, the source is not a git checkout or
//! git refuses it (the commit is then "unknown", or `$OKTA_SPOT_SYNC_COMMIT` when set, e.g. for
//! a build from a source tarball); take the commit of another repository that happens to
//! contain this source; read any source but `src/cli.rs` (included below, which therefore
//! uses nothing of the crate); write outside the target directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use clap_complete::Shell;

#[path = "src/cli.rs"]
#[allow(dead_code)]
mod cli;

const NAME: &str = "okta-spot-sync";

fn main() {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cli.rs");
    println!("cargo:rerun-if-env-changed=OKTA_SPOT_SYNC_COMMIT");

    let commit = std::env::var("OKTA_SPOT_SYNC_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.trim().to_string())
        .or_else(|| git_commit(&manifest_dir))
        .unwrap_or_else(|| "unknown".to_string());
    println!(
        "cargo:rustc-env=OKTA_SPOT_SYNC_VERSION={} (commit {commit})",
        env!("CARGO_PKG_VERSION")
    );

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let assets = out_dir.join("assets");
    if let Err(e) = generate(&assets) {
        panic!("generating the man pages and completions: {e}");
    }
    // OUT_DIR is <target dir>/<profile>/build/<package>-<hash>/out: the profile directory is
    // where `cargo deb` looks for built files, under a name that does not change with the hash.
    match out_dir.ancestors().nth(3) {
        Some(profile_dir) if out_dir.ancestors().nth(2).and_then(Path::file_name) == Some("build".as_ref()) => {
            if let Err(e) = copy_dir(&assets, &profile_dir.join(format!("{NAME}-assets"))) {
                panic!("copying the generated assets to {}: {e}", profile_dir.display());
            }
        }
        _ => println!(
            "cargo:warning=OUT_DIR {} is not <target>/<profile>/build/<pkg>/out: the man pages and completions stay there",
            out_dir.display()
        ),
    }
}

/// `git rev-parse --short HEAD` of the checkout whose top level is `dir`, and the files whose
/// change means another commit (HEAD and the branch it points to) for cargo to watch.
fn git_commit(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    let commit = git(dir, &["rev-parse", "--short", "HEAD"])?;
    let mut watched = vec![git(dir, &["rev-parse", "--git-path", "HEAD"])?];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(dir, &["rev-parse", "--git-path", &branch]));
    }
    watched.extend(git(dir, &["rev-parse", "--git-path", "packed-refs"]));
    for path in watched {
        let path = dir.join(path);
        // A missing file would make cargo run this script on every build.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn generate(assets: &Path) -> std::io::Result<()> {
    let man = assets.join("man");
    let completions = assets.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;

    let cmd = cli::Cli::command();
    // One page for the command and one per subcommand (okta-spot-sync-plan.1, …), gzipped as
    // Debian policy wants them; gzip's header carries no time, so the bytes are reproducible.
    let plain = assets.join("man-plain");
    std::fs::create_dir_all(&plain)?;
    prune(&plain, &[])?;
    clap_mangen::generate_to(cmd.clone(), &plain)?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(&plain)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let page = std::fs::read(&path)?;
        let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
        gz.write_all(&page)?;
        write_if_changed(&man.join(format!("{name}.gz")), &gz.finish()?)?;
        pages.push(std::ffi::OsString::from(format!("{name}.gz")));
    }
    // A page of a subcommand that no longer exists must not be packaged.
    prune(&man, &pages)?;

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), NAME, &mut text);
        let file = match shell {
            Shell::Bash => format!("{NAME}.bash"),
            Shell::Zsh => format!("_{NAME}"),
            _ => format!("{NAME}.fish"),
        };
        write_if_changed(&completions.join(file), &text)?;
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so a concurrent build never sees half a file;
/// an unchanged file is left alone.
fn write_if_changed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Makes `to/man` and `to/completions` hold exactly the files of `from/man` and
/// `from/completions`.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    for sub in ["man", "completions"] {
        std::fs::create_dir_all(to.join(sub))?;
        let mut names = Vec::new();
        for entry in std::fs::read_dir(from.join(sub))? {
            let path = entry?.path();
            if let Some(name) = path.file_name() {
                write_if_changed(&to.join(sub).join(name), &std::fs::read(&path)?)?;
                names.push(name.to_os_string());
            }
        }
        prune(&to.join(sub), &names)?;
    }
    Ok(())
}

/// Removes the files of `dir` not named in `keep`.
fn prune(dir: &Path, keep: &[std::ffi::OsString]) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !keep.contains(&entry.file_name()) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
