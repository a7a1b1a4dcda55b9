//! Files that only the service user may read: the state file, its lock, and token files
//! written by `demo` and the tests.
//!
//! It owns the one place that opens such files with mode 0600, so none of them is ever
//! created world-readable, even for an instant, by a caller that forgot the mode. It must not
//! decide where files live or what goes in them.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// Options that create a file for writing with mode 0600 (on Unix; elsewhere the platform's
/// default). Callers add `read`, `truncate` and the like.
pub fn owner_only() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Writes `content` to `path` (created with mode 0600, or truncated). The mode applies only
/// when the file is created: an existing file keeps its mode.
pub fn write_owner_only(path: &Path, content: &[u8]) -> std::io::Result<()> {
    owner_only().truncate(true).open(path)?.write_all(content)
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
}
