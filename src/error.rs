//! The library's error type. Every variant says which API or file it is about and, where an
//! operator can act, what to do. Errors never carry tokens: request URLs and bodies are
//! summarised, and headers are never included.

use std::path::PathBuf;

/// Which remote API an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Okta,
    Spot,
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Api::Okta => "Okta",
            Api::Spot => "Spot",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad or missing setting; retrying cannot help.
    #[error("configuration error: {0}")]
    Config(String),

    /// The API refused the credentials (401/403); retrying cannot help.
    #[error("{api} refused the credentials on {what} (HTTP {status}): {detail}")]
    Credentials {
        api: Api,
        what: String,
        status: u16,
        detail: String,
    },

    /// A non-success HTTP status after retries.
    #[error("{api} {what} failed with HTTP {status}: {detail}")]
    Status {
        api: Api,
        what: String,
        status: u16,
        /// The API's own error code (`E0000007`, `USER_ALREADY_EXISTS`, …) when it sent one.
        code: Option<String>,
        detail: String,
    },

    /// No response: connection refused or reset, timeout, TLS failure.
    #[error("{api} {what} could not be completed: {detail}")]
    Transport {
        api: Api,
        what: String,
        detail: String,
    },

    /// A response that does not have the shape the API documents.
    #[error("{api} {what} returned a response that could not be understood: {detail}")]
    Malformed {
        api: Api,
        what: String,
        detail: String,
    },

    /// The Okta walk did not reach the end of the list cleanly; nothing may be planned.
    #[error("incomplete read of the Okta app's assignments, nothing was changed: {0}")]
    IncompleteRead(String),

    /// `import`'s read of the Okta user list did not complete cleanly; nothing was changed.
    #[error("incomplete read of the Okta user list, nothing was changed: {0}")]
    IncompleteUserRead(String),

    /// The state file could not be read, parsed or written.
    #[error("state file {path}: {detail}")]
    Ledger { path: PathBuf, detail: String },

    /// Another process holds the lock.
    #[error("{0}")]
    Locked(String),

    /// A run changed Spot (or Okta) but could not save the state file afterwards (a full
    /// disk): `report` says what was done, and callers print it before the error.
    #[error(
        "{error}. What the run applied before that is in its report ({}); the next cycle \
         re-derives from Spot what the state file and its journal lack. Fix the cause (free \
         disk space, for a full disk), then run `okta-spot-sync check` and \
         `okta-spot-sync reconcile`",
        .report.one_line()
    )]
    NotRecorded {
        report: Box<crate::report::Report>,
        error: Box<Error>,
    },
}

impl Error {
    /// Errors that will not go away by waiting: a daemon stops retrying on these.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::NotRecorded { error, .. } => error.is_permanent(),
            _ => matches!(
                self,
                Error::Config(_) | Error::Credentials { .. } | Error::Ledger { .. }
            ),
        }
    }

    /// The report of a run whose results could not be saved ([`Error::NotRecorded`]).
    pub fn unrecorded_report(&self) -> Option<&crate::report::Report> {
        match self {
            Error::NotRecorded { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The API's error code, if the error came from an API response that carried one.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            Error::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } | Error::Credentials { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
