//! The `okta-spot-sync` binary: parses arguments, loads settings, runs one command and maps
//! the outcome to the exit codes of README "Exit codes". Everything else is in the library.

use std::process::ExitCode;

use clap::Parser;
use okta_spot_sync::cli::{Cli, Command, RoleArg};
use okta_spot_sync::config::{self, LogFormat, LogSettings, Settings};
use okta_spot_sync::cycle::CycleOptions;
use okta_spot_sync::import::ImportOptions;
use okta_spot_sync::model::Role;
use okta_spot_sync::report::{exit, Mode};
use okta_spot_sync::{commands, daemon, logging, sim_commands};

fn main() -> ExitCode {
    // Before anything large is allocated (see the module).
    okta_spot_sync::memory::fix_mmap_threshold();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            okta_spot_sync::errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR as u8);
        }
    };
    let code = okta_spot_sync::output::exit_code(runtime.block_on(run(cli)));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Emulate {
            okta_addr,
            spot_addr,
            fixture,
        } => {
            logging::init(&LogSettings {
                format: LogFormat::Text,
                level: "info".into(),
            });
            return report_error(
                sim_commands::emulate(okta_addr, spot_addr, fixture.as_deref()).await,
            );
        }
        Command::Demo => {
            logging::init(&LogSettings {
                format: LogFormat::Text,
                level: "warn".into(),
            });
            return report_error(sim_commands::demo().await);
        }
        _ => {}
    }
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| config::default_config_path(&|k| std::env::var(k).ok()));
    let settings = match load_settings(Some(config_path.clone())) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Plan { output } => {
            commands::cycle(&settings, Mode::Plan, &CycleOptions::default(), output).await
        }
        Command::Reconcile {
            dry_run,
            allow_deletes,
            allow_empty_source,
            output,
        } => {
            let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
            let options = CycleOptions {
                allow_deletes,
                allow_empty_source,
            };
            commands::cycle(&settings, mode, &options, output).await
        }
        Command::Import {
            assign,
            role,
            output,
        } => {
            let role = role.map(|r| match r {
                RoleArg::Viewer => Role::Viewer,
                RoleArg::Editor => Role::Editor,
            });
            commands::import(&settings, &ImportOptions { assign, role }, output).await
        }
        Command::Explain { who, output } => commands::explain(&settings, &who, output).await,
        Command::Check { deep } => commands::check(&settings, deep).await,
        Command::Audit { repair, output } => {
            okta_spot_sync::audit::command(&settings, repair, output).await
        }
        Command::RebuildLedger { yes } => commands::rebuild_ledger(&settings, yes).await,
        Command::Run => daemon::service(settings, config_path).await,
        Command::Emulate { .. } | Command::Demo => unreachable!("handled above"),
    };
    report_error(result)
}

fn load_settings(path: Option<std::path::PathBuf>) -> Result<Settings, i32> {
    let path = path.unwrap_or_else(|| config::default_config_path(&|k| std::env::var(k).ok()));
    match config::load_from_process_env(&path) {
        Ok(loaded) => {
            logging::init(&loaded.settings.log);
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            Ok(loaded.settings)
        }
        Err(e) => {
            okta_spot_sync::errln!("error: {e}");
            Err(exit::ERROR)
        }
    }
}

fn report_error(result: Result<i32, okta_spot_sync::Error>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            okta_spot_sync::errln!("error: {e}");
            exit::ERROR
        }
    }
}
