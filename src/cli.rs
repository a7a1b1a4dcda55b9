//! Command-line definitions (clap). Parsing only: no behaviour lives here, and no flag ever
//! carries a token (tokens come from files, systemd credentials or the environment).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::model::Role;

/// Keeps a Spot (Spotinst) organization's users in line with the Okta app that grants access.
#[derive(Debug, Parser)]
#[command(name = "okta-spot-sync", version, about, long_about = None)]
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
        #[arg(long, value_parser = parse_role, value_name = "viewer|editor")]
        role: Option<Role>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// The daemon: cycles on sync.schedule until SIGTERM; SIGHUP reloads the config (exit 0: clean stop)
    Run,
    /// Test both APIs' credentials and settings (exit 0: ok, 1: not)
    Check,
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

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw).ok_or_else(|| format!("{raw:?} is not a role; use viewer or editor"))
}
