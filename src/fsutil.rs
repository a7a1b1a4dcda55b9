//! Files the tool writes: the state file, its temp file, journal and lock, and key and token
//! files written by the tests (the emulators' crate writes the demo's and tests' client config
//! and token files itself, with the same mode).
//!
//! It owns the one place that opens such files: with mode 0600, so none of them is ever
//! created world-readable, even for an instant, by a caller that forgot the mode; and with
//! `O_NOFOLLOW`, so a symbolic link planted at one of these paths is refused with an error
//! naming it instead of having its target overwritten. It must not decide where files live or
//! what goes in them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Options that create a file for writing with mode 0600, never through a symbolic link (on
/// Unix; elsewhere the platform's default). Callers add `read`, `truncate` and the like, and
/// open with [`open`] for an error that explains a refused link.
pub fn owner_only() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options
}

/// Options that open an existing file for reading, never through a symbolic link: for the
/// files [`owner_only`] writes, so that what is read is what a save would replace.
pub fn read_only() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options
}

/// Opens `path` with `options` (from [`owner_only`] or [`read_only`]). A symbolic link at
/// `path` is refused with an error that names it and says to remove it; its target is not
/// touched.
pub fn open(options: &OpenOptions, path: &Path) -> std::io::Result<File> {
    options.open(path).map_err(|e| explain_link(path, e))
}

/// Turns the error `O_NOFOLLOW` gives for a symbolic link (`ELOOP`) into one that names the
/// path and the way out; other errors are returned as they are.
pub fn explain_link(path: &Path, e: std::io::Error) -> std::io::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP)
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    {
        return std::io::Error::new(
            e.kind(),
            format!(
                "{} is a symbolic link, and okta-spot-sync never reads or writes its files \
                 through one (its target was left untouched); remove the link (`rm {}`) and \
                 run the command again",
                path.display(),
                path.display()
            ),
        );
    }
    e
}

/// Writes `content` to `path` (created with mode 0600, or truncated; never through a symbolic
/// link). The mode applies only when the file is created: an existing file keeps its mode.
pub fn write_owner_only(path: &Path, content: &[u8]) -> std::io::Result<()> {
    open(owner_only().truncate(true), path)?.write_all(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn new_files_are_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_owner_only(&path, b"first").unwrap();
        write_owner_only(&path, b"2nd").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "2nd");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        let link = dir.path().join("token");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = write_owner_only(&link, b"overwritten")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&link.display().to_string()), "{err}");
        assert!(
            err.contains("symbolic link") && err.contains("rm "),
            "{err}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        let err = open(&read_only(), &link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }
}
