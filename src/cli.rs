//! Command-line definitions (clap). Parsing only: no behaviour lives here, and no flag ever
//! carries a token (tokens come from files, systemd credentials or the environment).
//!
//! `build.rs` includes this file as a module of its own to generate the man page and the
//! shell completions, so it must never use anything of this crate (`crate::…`) or any
//! dependency but `clap` and `std`: `main.rs` maps what is parsed here to library types.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// What `--version` prints after the name: the package version and the git commit the binary
/// was built from, e.g. `0.1.0 (commit 1a2b3c4)` (`OKTA_SPOT_SYNC_VERSION`, set by `build.rs`).
/// The bare version where build.rs did not set it: in build.rs itself, whose man page names the
/// version only.
pub const VERSION: &str = match option_env!("OKTA_SPOT_SYNC_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// Keeps a Spot (Spotinst) organization's users in line with the Okta app that grants access.
#[derive(Debug, Parser)]
#[command(name = "okta-spot-sync", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// Config file [env: OKTA_SPOT_SYNC_CONFIG] [default: /etc/okta-spot-sync/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read both sides and print the plan; writes nothing (exit 0: nothing to do, 2: changes pending, 1: error)
    Plan {
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Run one full cycle and apply it (exit 0: ok, 3: a guard blocked actions, 1: error or a failed action)
    Reconcile {
        /// Plan and guard, but change nothing
        #[arg(long)]
        dry_run: bool,
        /// Let up to N deletes pass the sync.max_deletes / max_delete_percent guards, this run only
        #[arg(long, value_name = "N")]
        allow_deletes: Option<usize>,
        /// Allow deletes although Okta lists no assignments at all, this run only
        #[arg(long)]
        allow_empty_source: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Match the Spot users this tool does not manage to Okta users and adopt them; with
    /// --assign, assign active unassigned Okta users to the app first (exit 0: ok, 1: error or
    /// a failed action, 3: blocked)
    Import {
        /// Assign matching active Okta users who are not assigned to the app (otherwise they
        /// are only listed as "would assign")
        #[arg(long)]
        assign: bool,
        /// Role given to users assigned by --assign [default: sync.default_role]
        #[arg(long, value_enum, ignore_case = true)]
        role: Option<RoleArg>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Explain one person: the Okta rows, the class, the Spot users, the ledger entry, the
    /// planned actions and the guards that block them, and what to do; writes nothing, takes no
    /// lock (exit 0: nothing will change for this person, 2: a change is pending, 3: a guard
    /// blocks it, 1: error)
    Explain {
        /// The person's email (trimmed, ASCII case ignored), or an Okta or Spot user id
        #[arg(value_name = "EMAIL")]
        who: String,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Compare each managed user's Spot access with what its Okta role gives and report every
    /// drift; --repair adds missing grants (exit 0: no drift or all repaired, 2: drift found,
    /// 1: error or a failed repair)
    Audit {
        /// Add the missing grants (a union: nothing is removed); an organization role that
        /// differs is reported and left
        #[arg(long)]
        repair: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// The daemon: cycles on sync.schedule until SIGTERM; SIGHUP reloads the config (exit 0: clean stop)
    Run,
    /// Test both APIs' credentials and settings (exit 0: ok, 1: not)
    Check {
        /// Also read each managed user's Spot access once (as `audit` does, writing nothing)
        /// and report how many lack a grant or an account
        #[arg(long)]
        deep: bool,
    },
    /// Recover from a lost or corrupt state file: adopt the Spot users that match users
    /// currently assigned in Okta into a fresh ledger (the old file is kept aside)
    RebuildLedger {
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
    /// Serve the bundled Okta and Spot emulators on loopback until Ctrl-C
    Emulate {
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
        okta_addr: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
        spot_addr: SocketAddr,
        /// Fixture (JSON) to load instead of the demo story's
        #[arg(long, value_name = "FILE")]
        fixture: Option<PathBuf>,
    },
    /// Start the emulators in-process and run a narrated story against them
    Demo,
}

/// A role named on the command line (`import --role`), ASCII case ignored; `main.rs` maps it to
/// the library's `model::Role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Editor,
}
