//! The commands behind the CLI: each builds its clients from validated settings, runs, prints
//! its result on stdout, and returns the exit code of DESIGN.md's contract.
//!
//! This is the edge: it may print. It never prints a token; errors bubble up as
//! [`crate::Error`] for `main` to render on stderr.

use tracing::{info, warn};

use crate::apply::RoleResolver;
use crate::cli::Output;
use crate::config::Settings;
use crate::cycle::{run_cycle, CycleOptions};
use crate::ledger::LedgerStore;
use crate::lock::InstanceLock;
use crate::model::Role;
use crate::okta::client::OktaClient;
use crate::report::{exit, Mode, Report};
use crate::spot::client::SpotClient;
use crate::Error;

/// Builds both clients from settings.
pub fn clients(settings: &Settings) -> Result<(OktaClient, SpotClient), Error> {
    Ok((
        OktaClient::new(&settings.okta, &settings.http)?,
        SpotClient::new(&settings.spot, &settings.http)?,
    ))
}

/// Prints a report in the requested format on stdout.
pub fn print_report(report: &Report, output: Output) {
    match output {
        Output::Json => println!("{}", report.to_json()),
        Output::Text => print!("{}", report.to_text()),
    }
}

/// `plan` and `reconcile [--dry-run]`.
pub async fn cycle(
    settings: &Settings,
    mode: Mode,
    options: &CycleOptions,
    output: Output,
) -> Result<i32, Error> {
    // Applying runs under the instance lock, so it never overlaps the daemon; `plan` and
    // `--dry-run` write nothing and read an atomically replaced file, so they need none.
    let _lock = match mode {
        Mode::Apply | Mode::Import => Some(InstanceLock::acquire(
            &settings.sync.state_file,
            "reconcile",
        )?),
        Mode::Plan | Mode::DryRun => None,
    };
    let (okta, spot) = clients(settings)?;
    let store = LedgerStore::new(&settings.sync.state_file);
    let report = run_cycle(settings, &okta, &spot, &store, mode, options).await?;
    info!(mode = ?mode, "{}", report.one_line());
    print_report(&report, output);
    Ok(report.exit_code())
}

/// `check`: the "Test API Credentials" button. Reads one page from Okta, the user list, the
/// accounts and the policies from Spot, and resolves the configured roles.
pub async fn check(settings: &Settings) -> Result<i32, Error> {
    let (okta, spot) = clients(settings)?;
    let mut ok = true;
    println!("okta-spot-sync check");
    println!("  auth: Okta SSWS API token; Spot bearer token");
    match okta.check().await {
        Ok(info) => {
            let limit = match (info.rate_limit_remaining, info.rate_limit_limit) {
                (Some(r), Some(l)) => format!(", rate limit {r}/{l} remaining"),
                _ => String::new(),
            };
            println!(
                "  ok   Okta {}: app {} readable ({}{limit})",
                settings.okta.org_url.as_str().trim_end_matches('/'),
                settings.okta.app_id,
                if info.rows_on_first_page == 0 {
                    "no assignments yet"
                } else {
                    "has assignments"
                },
            );
        }
        Err(e) => {
            ok = false;
            println!("  FAIL Okta: {e}");
        }
    }
    match spot.check().await {
        Ok(info) => {
            println!(
                "  ok   Spot {}: {} personal and {} programmatic users",
                settings.spot.base_url.as_str().trim_end_matches('/'),
                info.personal_users,
                info.programmatic_users
            );
            if info.personal_users <= 1 {
                println!(
                    "  warn Spot: the organization has {} personal user(s); okta-spot-sync never deletes the last one, \
                     and Spot's own Okta integration requires more than one",
                    info.personal_users
                );
            }
        }
        Err(e) => {
            ok = false;
            println!("  FAIL Spot: {e}");
        }
    }
    if ok {
        let roles = RoleResolver::new(&spot, &settings.spot.roles);
        for role in [Role::Viewer, Role::Editor] {
            match roles.grants(role).await {
                Ok(grants) => {
                    let spot_role = roles.spot_role(role).unwrap_or_default();
                    let policies: Vec<String> = grants
                        .iter()
                        .map(|g| {
                            format!("policy {} on {} accounts", g.policy_id, g.account_ids.len())
                        })
                        .collect();
                    println!(
                        "  ok   role {role}: Spot role {spot_role:?}{}",
                        if policies.is_empty() {
                            String::new()
                        } else {
                            format!(", {}", policies.join(", "))
                        }
                    );
                }
                Err(e) => {
                    ok = false;
                    println!("  FAIL role {role}: {e}");
                }
            }
        }
    }
    let store = LedgerStore::new(&settings.sync.state_file);
    match store.load() {
        Ok(ledger) => println!(
            "  ok   state file {}: {} users managed",
            store.path().display(),
            ledger.managed_count()
        ),
        Err(e) => {
            ok = false;
            println!("  FAIL {e}");
        }
    }
    if ok {
        Ok(exit::OK)
    } else {
        warn!("check failed");
        Ok(exit::ERROR)
    }
}
