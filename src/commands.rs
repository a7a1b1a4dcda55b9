//! The commands behind the CLI: each builds its clients from validated settings, runs, prints
//! its result on stdout, and returns the exit code of README "Commands and exit codes".
//!
//! This is the edge: it may print. It never prints a token; errors bubble up as
//! [`crate::Error`] for `main` to render on stderr.

use crate::{errln, out, outln};
use tracing::{info, warn};

use crate::apply::RoleResolver;
use crate::cli::Output;
use crate::config::Settings;
use crate::cycle::{run_cycle, CycleOptions};
use crate::error::Api;
use crate::import::{run_import, ImportOptions};
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
        Output::Json => outln!("{}", report.to_json()),
        Output::Text => out!("{}", report.to_text()),
    }
}

/// Prints the report of a run that changed Spot or Okta but could not save the state file
/// afterwards ([`Error::NotRecorded`]): what was done is printed, as after a success, and
/// `main` prints the error after it.
fn print_unrecorded(e: &Error, output: Output) {
    if let Some(report) = e.unrecorded_report() {
        print_report(report, output);
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
    // `--dry-run` write nothing and load the file and its journal as one consistent state
    // even while the daemon saves (`LedgerStore::load`), so they need none.
    let _lock = match mode {
        Mode::Apply | Mode::Import => Some(InstanceLock::acquire(
            &settings.sync.state_file,
            "reconcile",
        )?),
        Mode::Plan | Mode::DryRun => None,
    };
    let (okta, spot) = clients(settings)?;
    let store = LedgerStore::new(&settings.sync.state_file);
    let report = run_cycle(settings, &okta, &spot, &store, mode, options)
        .await
        .inspect_err(|e| print_unrecorded(e, output))?;
    info!(mode = mode.as_str(), "{}", report.one_line());
    print_report(&report, output);
    Ok(report.exit_code())
}

/// `explain <email>`: one person through one cycle's steps (see [`crate::explain`]). Reads
/// like `plan`: both APIs and the state file, then the real classifier, planner and guards on
/// the whole snapshot; writes nothing and takes no lock.
pub async fn explain(settings: &Settings, who: &str, output: Output) -> Result<i32, Error> {
    use crate::explain::{explain, rows_for, ExplainSettings, Inputs, Query};
    use crate::guard::guard;
    use crate::model::{IdentitySource, SpotDirectory};
    use crate::okta::classify::classify;
    use crate::plan::plan;

    let (okta, spot) = clients(settings)?;
    let store = LedgerStore::new(&settings.sync.state_file);
    let loading = tokio::task::spawn_blocking(move || store.load());
    let reads = tokio::try_join!(okta.read_assignments(), spot.list_users());
    let ledger = loading.await.map_err(|e| Error::Ledger {
        path: settings.sync.state_file.clone(),
        detail: format!("loading it was interrupted: {e}"),
    })??;
    let (rows, spot_users) = reads?;
    let query = Query::new(who);
    let mine = rows_for(&query, &rows);
    let snapshot = classify(rows, &settings.classify_rules());
    let the_plan = plan(&snapshot, &spot_users, &ledger, &settings.plan_options());
    let verdicts = guard(
        &the_plan,
        &spot_users,
        &ledger,
        &settings.guard_limits(&CycleOptions::default()),
    );
    let explained = explain(
        &query,
        &Inputs {
            rows: &mine,
            snapshot: &snapshot,
            spot_users: &spot_users,
            ledger: &ledger,
            plan: &the_plan,
            verdicts: &verdicts,
            settings: &ExplainSettings::from_settings(settings),
        },
    );
    match output {
        Output::Json => outln!("{}", explained.to_json()),
        Output::Text => out!("{}", explained.to_text()),
    }
    Ok(explained.exit_code())
}

/// `import [--assign] [--role R]`: adopts unmanaged Spot users that match Okta users (see
/// [`crate::import`]).
pub async fn import(
    settings: &Settings,
    options: &ImportOptions,
    output: Output,
) -> Result<i32, Error> {
    let (okta, spot) = clients(settings)?;
    // Assigning needs okta.apps.manage on top of the configured OAuth scopes.
    let okta = if options.assign {
        okta.with_extra_scopes(&[crate::okta::oauth::SCOPE_APPS_MANAGE])
    } else {
        okta
    };
    let store = LedgerStore::new(&settings.sync.state_file);
    // Import writes the ledger (and Okta assignments): never at the same time as a reconcile.
    let _lock = InstanceLock::acquire(&settings.sync.state_file, "import")?;
    let report = run_import(settings, &okta, &spot, &store, options)
        .await
        .inspect_err(|e| print_unrecorded(e, output))?;
    info!(mode = "import", "{}", report.one_line());
    print_report(&report, output);
    Ok(report.exit_code())
}

/// `check`: the "Test API Credentials" button. Reads one page from Okta, the user list, the
/// accounts and the policies from Spot, and resolves the configured roles.
pub async fn check(settings: &Settings, deep: bool) -> Result<i32, Error> {
    let (okta, spot) = clients(settings)?;
    let mut ok = true;
    outln!("okta-spot-sync check");
    outln!("  auth: {}; Spot bearer token", okta.auth_description());
    for (api, base) in [
        (Api::Okta, &settings.okta.org_url),
        (Api::Spot, &settings.spot.base_url),
    ] {
        if let Ok(Some(proxy)) = crate::http::proxy_for(api, base, &|k| std::env::var(k).ok()) {
            outln!(
                "  info {api}: through the proxy {} from {} (a CONNECT tunnel{})",
                proxy.shown(),
                proxy.variable,
                if proxy.no_proxy.is_some() {
                    ", unless NO_PROXY names the host"
                } else {
                    ""
                }
            );
        }
    }
    if let Some(warning) = settings
        .daemon
        .listen
        .as_ref()
        .and_then(crate::config::listen_warning)
    {
        outln!("  warn {warning}");
    }
    match okta.check().await {
        Ok(info) => {
            if let Some(granted) = okta.oauth().and_then(|p| p.granted_scopes()) {
                outln!(
                    "  ok   Okta OAuth token: granted scopes {}",
                    granted.join(" ")
                );
            }
            let limit = match (info.rate_limit_remaining, info.rate_limit_limit) {
                (Some(r), Some(l)) => format!(", rate limit {r}/{l} remaining"),
                _ => String::new(),
            };
            outln!(
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
            outln!("  FAIL Okta: {e}");
        }
    }
    ok &= check_system_log(settings).await;
    match spot.check().await {
        Ok(info) => {
            outln!(
                "  ok   Spot {}: {} personal and {} programmatic users",
                settings.spot.base_url.as_str().trim_end_matches('/'),
                info.personal_users,
                info.programmatic_users
            );
            if info.personal_users <= 1 {
                outln!(
                    "  warn Spot: the organization has {} personal user(s); okta-spot-sync never deletes the last one, \
                     and Spot's own Okta integration requires more than one",
                    info.personal_users
                );
            }
        }
        Err(e) => {
            ok = false;
            outln!("  FAIL Spot: {e}");
        }
    }
    if ok {
        let roles = RoleResolver::new(&spot, &settings.spot.roles);
        for role in [Role::Viewer, Role::Editor] {
            match roles.grants(role).await {
                Ok(grants) => {
                    let spot_role = roles.spot_role(role);
                    let policies: Vec<String> = grants
                        .iter()
                        .map(|g| format!("policy {} on every account", g.policy_id))
                        .collect();
                    outln!(
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
                    outln!("  FAIL role {role}: {e}");
                }
            }
        }
    }
    let store = LedgerStore::new(&settings.sync.state_file);
    match store.load_counting_journal() {
        Ok((ledger, journal_records)) => {
            let journal = match journal_records {
                0 => String::new(),
                n => format!(
                    " and {n} journal record(s) in {} since it was last saved whole (a cycle \
                     is running or was interrupted; the next cycle that changes something \
                     folds them in)",
                    store.journal_path().display()
                ),
            };
            outln!(
                "  ok   state file {}: {} users managed{journal}",
                store.path().display(),
                ledger.managed_count()
            );
            let has_policies = |role| !settings.spot.roles.get(role).policies.is_empty();
            match crate::access::coverage(&ledger, has_policies) {
                (users, 0) => outln!(
                    "  ok   access: {users} managed users of roles with policies, each known to have them on every account (\"*\")"
                ),
                (users, behind) => outln!(
                    "  note access: {behind} of {users} managed users of roles with policies are not known to see every account \
                     (mapped by an older version, adopted by `import`, or not mapped yet); the next reconcile adds their missing grants"
                ),
            }
        }
        Err(e) => {
            ok = false;
            outln!("  FAIL {e}");
        }
    }
    if ok && deep {
        let stop = tokio_util::sync::CancellationToken::new();
        match crate::audit::run_with_api(settings, false, None, &stop).await {
            Ok(report) => {
                let s = &report.summary;
                if s.drift == 0 && s.unread == 0 {
                    outln!(
                        "  ok   access (deep): {} managed users read, none lacks a grant or an account",
                        s.users_checked
                    );
                } else {
                    let kinds: Vec<String> =
                        s.by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
                    outln!(
                        "  note access (deep): {} managed users read; {} drift in {} users ({}), {} unread; \
                         `okta-spot-sync audit` lists them, `audit --repair` adds missing grants",
                        s.users_checked,
                        s.drift,
                        s.users_with_drift,
                        kinds.join(", "),
                        s.unread
                    );
                }
            }
            Err(e) => {
                ok = false;
                outln!("  FAIL access (deep): {e}");
            }
        }
    }
    if ok {
        Ok(exit::OK)
    } else {
        warn!("check failed");
        Ok(exit::ERROR)
    }
}

/// `check`'s line on the System Log: with events mode on, one polling request of one event
/// (a client of its own, so that an OAuth app without `okta.logs.read` fails here and nowhere
/// else). `false` when events mode is on and the log cannot be read.
async fn check_system_log(settings: &Settings) -> bool {
    use crate::okta::logs::LogPosition;
    if !settings.events.enabled {
        outln!(
            "  info events mode is off (events.enabled = false): full cycles on {}",
            settings.sync.schedule
        );
        return true;
    }
    let okta = match OktaClient::new(&settings.okta, &settings.http) {
        Ok(okta) => okta.with_extra_scopes(&[crate::okta::oauth::SCOPE_LOGS_READ]),
        Err(e) => {
            outln!("  FAIL Okta System Log: {e}");
            return false;
        }
    };
    let since = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    let filter = crate::events::decide::filter_expression();
    match okta
        .poll_logs(&LogPosition::Since(since), Some(&filter), 1)
        .await
    {
        Ok(_) => {
            outln!(
                "  ok   Okta System Log readable: `run` follows it every {} (events mode), full cycles on {}",
                humantime::format_duration(settings.events.poll_interval),
                settings.sync.schedule
            );
            true
        }
        Err(e) => {
            outln!(
                "  FAIL Okta System Log: {e}. Until it is readable, `run` falls back to full cycles on {}; \
                 or set [events] enabled = false to run on full cycles on purpose",
                settings.sync.fallback_schedule
            );
            false
        }
    }
}

/// `rebuild-ledger`: a fresh ledger that owns exactly the Spot users matching users assigned in
/// Okta now (what `reconcile` would adopt with an empty ledger). Users unassigned since the
/// old ledger was lost are not owned by the new one, so they are never deleted: the safe side.
/// The old file, if any, is renamed aside, never overwritten.
pub async fn rebuild_ledger(settings: &Settings, yes: bool) -> Result<i32, Error> {
    use std::io::{BufRead, IsTerminal};

    use crate::action::Change;
    use crate::ledger::{EntryState, Ledger, LedgerEntry, LedgerWriter};
    use crate::model::{IdentitySource, SpotDirectory};
    use crate::okta::classify::classify;
    use crate::plan::plan;

    let (okta, spot) = clients(settings)?;
    let store = LedgerStore::new(&settings.sync.state_file);
    let _lock = InstanceLock::acquire(&settings.sync.state_file, "rebuild-ledger")?;
    let (rows, spot_users) = tokio::try_join!(okta.read_assignments(), spot.list_users())?;
    let snapshot = classify(rows, &settings.classify_rules());
    let mut options = settings.plan_options();
    options.adopt_existing = true;
    let mut fresh = plan(&snapshot, &spot_users, &Ledger::default(), &options);
    fresh
        .actions
        .retain(|a| matches!(a.change, Change::Adopt(_)));
    fresh.forget.clear();
    outln!(
        "A new ledger would own these {} Spot users (they match users assigned in Okta now):",
        fresh.actions.len()
    );
    for a in &fresh.actions {
        outln!(
            "  {}  {}  {}  Okta user {}",
            a.spot_user_id().map_or("-", |id| id.as_str()),
            a.email,
            a.role().map(|r| r.as_str()).unwrap_or("-"),
            a.okta_user_id
        );
    }
    outln!(
        "Spot users that are not listed stay unmanaged: okta-spot-sync will never delete them. \
         Run `okta-spot-sync plan` afterwards to see the creates still needed."
    );
    if !yes {
        if !std::io::stdin().is_terminal() {
            errln!("error: not confirmed; run again with --yes to write the new ledger");
            return Ok(exit::ERROR);
        }
        out!(
            "Write the new ledger to {}? Type yes to continue: ",
            store.path().display()
        );
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            outln!("Nothing written.");
            return Ok(exit::ERROR);
        }
    }
    let suffix = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    if let Some(aside) = store.move_aside(&suffix)? {
        outln!("The old state file was moved to {}.", aside.display());
    }
    // Ledger only, like `import`: nothing is written to Spot here. Each entry's access is
    // recorded as not yet in line, so the next cycle adds the role's missing grants.
    let writer = LedgerWriter::new(store.clone(), Ledger::default());
    writer.update(|l| {
        for action in &fresh.actions {
            let Change::Adopt(adoption) = &action.change else {
                continue;
            };
            let mut entry = LedgerEntry::new(
                &action.email,
                Some(adoption.spot_user_id.clone()),
                Some(adoption.role),
                adoption.origin,
                EntryState::Managed,
            );
            entry.access = 0;
            l.put(&action.okta_user_id, entry);
        }
    })?;
    outln!(
        "Wrote {} with {} managed users.",
        store.path().display(),
        writer.snapshot().managed_count()
    );
    Ok(exit::OK)
}
