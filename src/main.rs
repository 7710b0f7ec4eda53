//! `coconnect` binary: parses the command line, sets up logging, dispatches. No logic here;
//! everything printed goes through `cli::say`, which survives a closed pipe.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use coconnect::cli::{say, AuditCommand, Cli, Command, PkiCommand};

/// mimalloc for the whole process: with its `override` feature it is also the `malloc` of
/// libxml2, libxmlsec1 and OpenSSL (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    coconnect::telemetry::init();
    // Twice as many async workers as cores (at least 4): the XML security work runs on
    // threads of its own and keeps the cores busy, and a database round trip inside a
    // transaction must not wait for a free async worker while the store's connection is held
    // (measured: two gateways at 121 COs/s with one worker per core, 143 with six).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // The XML security work has threads of its own, one a core, that keep the keys they parsed
    // (`wssec::threads`). Tokio's blocking threads run the rest of the blocking work (password
    // checks, DNS look-ups of partner hosts), at most 16 a core (32 at least) so that a burst
    // of it leaves no more than that behind.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads((2 * cores).max(4))
        .max_blocking_threads((16 * cores).max(32))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<ExitCode> = runtime.block_on(async {
        match cli.command {
            Command::Serve { config } => {
                let settings = coconnect::config::load(&config)?;
                let app = coconnect::app::App::start(settings).await?;
                app.run_until_signal().await;
                Ok(ExitCode::SUCCESS)
            }
            Command::Pki { command: PkiCommand::Init { out, parties, force, signing_key } } => {
                let pki = coconnect::dev_pki::init_dev_pki_with(&out, &parties, force, signing_key.into())?;
                say(format!("development CA: {}", pki.ca_cert.display()))?;
                for p in &pki.parties {
                    say(format!(
                        "{}: {} {} {}",
                        p.party,
                        p.signing_cert.display(),
                        p.encryption_cert.display(),
                        p.tls_cert.display()
                    ))?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Demo { keep } => {
                Ok(if coconnect::dev::demo::run(keep).await? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Command::HashPassword => {
                let password = coconnect::cli::read_password()?;
                say(coconnect::config::hash_password(&password)?)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Ops { api, token_env, command } => {
                let token = std::env::var(&token_env)
                    .map_err(|_| anyhow::anyhow!("set the API token in the environment variable {token_env}"))?;
                Ok(if coconnect::ops::run(&api, &token, &command).await? {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            Command::Purge { config, older_than_days } => {
                let settings = coconnect::config::load(&config)?;
                let keep = match older_than_days {
                    Some(days) => Some(coconnect::config::CheckedDuration::days(
                        "--older-than-days",
                        days,
                        coconnect::cli::PURGE_DAYS_MIN..=coconnect::cli::PURGE_DAYS_MAX,
                    )?),
                    None => settings.retention.message_contents,
                }
                .ok_or_else(|| anyhow::anyhow!("give --older-than-days or [retention] message_contents_days"))?;
                let store = coconnect::store::Store::connect(&settings.database_url).await?;
                let now = chrono::Utc::now();
                let actor = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
                let r = coconnect::store::retention::purge(
                    &store,
                    now - keep.chrono(),
                    &actor,
                    now,
                    coconnect::soap::evidence::without_body_content,
                )
                .await?;
                say(format!(
                    "purged before {}: {} messages, {} certificates, {} outbox bodies",
                    r.cutoff, r.messages_purged, r.certificates_purged, r.outbox_purged
                ))?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Audit { command: AuditCommand::Verify { config } } => {
                let settings = coconnect::config::load(&config)?;
                let store = coconnect::store::Store::connect_for_inspection(&settings.database_url).await?;
                let result = coconnect::store::audit::verify(&store).await?;
                match &result.broken_at {
                    None => {
                        say(format!("audit chain intact: {} records", result.records))?;
                        Ok(ExitCode::SUCCESS)
                    }
                    Some((seq, why)) => {
                        say(format!("audit chain BROKEN at record {seq}: {why} ({} records)", result.records))?;
                        Ok(ExitCode::FAILURE)
                    }
                }
            }
            Command::Probe { config, partner, preset, endpoint } => {
                let settings = coconnect::config::load(&config)?;
                let preset = match preset {
                    Some(name) => Some(coconnect::wssec::profile::Preset::from_name(&name).ok_or_else(|| {
                        let names: Vec<&str> =
                            coconnect::wssec::profile::Preset::ALL.iter().map(|p| p.name()).collect();
                        anyhow::anyhow!("--preset {name:?} is not one of {}", names.join(", "))
                    })?),
                    None => None,
                };
                let probe = coconnect::probe::Probe { settings, partner: &partner, endpoint, preset };
                Ok(if coconnect::probe::run(probe).await? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Command::CheckConfig { config } => {
                let settings = coconnect::config::load(&config)?;
                say(format!("{}: loaded and checked", config.display()))?;
                say(settings.summary().trim_end())?;
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // Not eprintln!: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
