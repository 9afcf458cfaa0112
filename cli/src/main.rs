//! `crmsync`: the operator CLI. Each subcommand parses its arguments here and calls the
//! shared crate; nothing about syncing is decided in this file.

mod backfill;
mod demo;
mod drain;
mod import;
mod ops;
mod run;
mod setup;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use crmsync_shared::domain::config::{
    ConfigErrors, DEFAULT_TOML, EXAMPLE_TOML, SyncConfig, ValidatedConfig,
    validate_against_metadata,
};
use crmsync_shared::domain::explain::explain;
use crmsync_shared::domain::metadata::ObjectMeta;
use serde::Deserialize;

#[derive(Parser)]
#[command(
    name = "crmsync",
    version,
    about = "Two-way HubSpot <-> Salesforce sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start both CRM sandboxes with seeded data, sync them through the local pipeline
    /// with live edits, and print sync health. Needs no credentials.
    Demo,
    /// Run the sync as a long-lived process (intake, poller, workers) on the embedded
    /// store. Connections and secrets come from CRMSYNC_* environment variables.
    Run {
        /// The sync configuration (default: the built-in one).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where webhooks and outbound messages are received (port 0: a free one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The embedded store's file.
        #[arg(long, default_value = "crmsync.db")]
        store: PathBuf,
        /// How often to poll for changes, e.g. 2s, 500ms, 1m (default: sized to stay
        /// under 5% of Salesforce's daily API allowance).
        #[arg(long, value_parser = run::parse_duration)]
        poll_interval: Option<std::time::Duration>,
        /// Concurrent sync workers.
        #[arg(long, default_value_t = crmsync_shared::local::DEFAULT_WORKERS)]
        workers: usize,
    },
    /// The initial sync: everything in scope, matched across sides. With --dry-run,
    /// print what it would create, link and update, and write nothing.
    Backfill {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "crmsync.db")]
        store: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
    /// A one-time import of a Salesforce object's records into HubSpot
    /// (salesforce:Lead, salesforce:Account, a custom salesforce:Machine__c): each
    /// created in HubSpot or linked with the record its key finds. Resumable: run it
    /// again after an interruption and it carries on.
    Import {
        /// salesforce:<sObject>, an object an enabled pair syncs.
        object: String,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "crmsync.db")]
        store: PathBuf,
    },
    /// Prepare both CRMs: create the HubSpot properties crmsync needs, check every mapped
    /// HubSpot property and Salesforce field, and print what is missing and how to fix it.
    Setup {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check, print or explain sync configurations.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Sync health: records synced, skipped and failing per pair and direction, codes,
    /// broken mappings, feed lag, the queue, API use against each CRM's allowance.
    Status {
        #[command(flatten)]
        target: ops::Target,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Failing records grouped by code, each with its field, the CRM's message and a fix.
    Errors {
        #[command(flatten)]
        target: ops::Target,
        /// Only this code (REQUIRED_FIELD_MISSING, waiting_for_related...).
        #[arg(long)]
        code: Option<String>,
        /// Only this object pair's records (contacts, companies, deals, a custom pair).
        #[arg(long)]
        pair: Option<String>,
        /// Records listed per code.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// A record's sync card: its link, last outcomes with their reasons, and field by
    /// field what was written or held back.
    Record {
        #[command(flatten)]
        target: ops::Target,
        /// hubspot:OBJECT:ID or salesforce:SOBJECT:ID (hubspot:contacts:101,
        /// salesforce:Lead:00Q...).
        record: String,
        #[arg(long)]
        json: bool,
    },
    /// Queue records to sync again: by id, a HubSpot list's members, or every record
    /// failing or skipped with a code.
    Resync {
        #[command(flatten)]
        target: ops::Target,
        /// Records as hubspot:OBJECT:ID or salesforce:SOBJECT:ID.
        records: Vec<String>,
        /// Every member of this HubSpot list (contacts).
        #[arg(long)]
        list: Option<String>,
        /// Every record whose last attempt failed or was skipped with this code
        /// (RETRIES_EXHAUSTED, waiting_for_related...).
        #[arg(long)]
        code: Option<String>,
    },
    /// Pause the sync while it runs: nothing syncs, nothing queued is lost.
    Pause {
        #[command(flatten)]
        target: ops::Target,
        /// Why, for whoever reads the status.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a paused sync (catching up from the cursors, or reconciling everything
    /// after a pause longer than 15 days), and check broken fields again.
    Resume {
        #[command(flatten)]
        target: ops::Target,
    },
    /// Explain one record pair: the writes for each side and the reason for every field.
    Explain {
        /// The sync configuration (default: the built-in one).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The record pair, as JSON (format in README.md); `-` reads standard input.
        pair: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file: every problem with its key path; exit 0 only when valid.
    Validate {
        file: PathBuf,
        /// CRM field metadata (JSON: {"hubspot": {object: {property: meta}}, "salesforce": {sobject: {field: meta}}})
        /// to check field existence and types against.
        #[arg(long)]
        metadata: Option<PathBuf>,
    },
    /// Print a commented configuration that enables every object pair.
    Example,
    /// Print the built-in configuration used when no file is given.
    Default,
}

/// A CLI failure: what went wrong, and the exit code it maps to.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("{0}")]
    Explain(#[from] crmsync_shared::domain::explain::ExplainError),
    #[error("metadata file {path} is not valid: {source}")]
    Metadata {
        path: String,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Output(#[from] serde_json::Error),
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => 1,
            _ => 2,
        }
    }
}

/// mimalloc, not glibc's allocator: see the workspace's Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CRMSYNC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crmsync: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Setup(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn config_or_builtin(path: Option<PathBuf>) -> Result<ValidatedConfig, CliError> {
    match path {
        Some(path) => load_config(&path),
        None => Ok(SyncConfig::builtin()),
    }
}

fn execute(command: Command) -> Result<(), CliError> {
    match command {
        Command::Demo => runtime()?.block_on(demo::run()),
        Command::Run {
            config,
            listen,
            store,
            poll_interval,
            workers,
        } => {
            let config = config_or_builtin(config)?;
            let args = run::RunArgs {
                config,
                listen,
                store,
                poll_interval,
                workers,
            };
            runtime()?.block_on(run::run(args))
        }
        Command::Backfill {
            config,
            store,
            dry_run,
        } => {
            let config = config_or_builtin(config)?;
            runtime()?.block_on(backfill::run(config, store, dry_run))
        }
        Command::Import {
            object,
            config,
            store,
        } => {
            let config = config_or_builtin(config)?;
            runtime()?.block_on(import::run(config, store, &object))
        }
        Command::Setup { config } => {
            let config = config_or_builtin(config)?;
            let report = runtime()?.block_on(setup::run(&config))?;
            for c in &report.created {
                println!("created  {c}");
            }
            for p in &report.present {
                println!("ok       {p}");
            }
            for p in &report.problems {
                println!("MISSING  {p}");
            }
            if report.problems.is_empty() {
                println!("setup complete");
                Ok(())
            } else {
                Err(CliError::Setup(format!(
                    "{} problems to fix (listed above)",
                    report.problems.len()
                )))
            }
        }
        Command::Status { target, json } => runtime()?.block_on(ops::status(&target, json)),
        Command::Errors {
            target,
            code,
            pair,
            limit,
            json,
        } => runtime()?.block_on(ops::errors(
            &target,
            code.as_deref(),
            pair.as_deref(),
            limit,
            json,
        )),
        Command::Record {
            target,
            record,
            json,
        } => runtime()?.block_on(ops::record(&target, &record, json)),
        Command::Resync {
            target,
            records,
            list,
            code,
        } => {
            if records.is_empty() && list.is_none() && code.is_none() {
                return Err(CliError::Usage(
                    "give records (hubspot:contacts:ID...), --list ID or --code CODE".into(),
                ));
            }
            let what = ops::Resync {
                records,
                hubspot_list: list,
                code,
            };
            runtime()?.block_on(ops::resync(&target, what))
        }
        Command::Pause { target, reason } => runtime()?.block_on(ops::pause(&target, reason)),
        Command::Resume { target } => runtime()?.block_on(ops::resume(&target)),
        Command::Config(ConfigCommand::Example) => {
            print!("{EXAMPLE_TOML}");
            Ok(())
        }
        Command::Config(ConfigCommand::Default) => {
            print!("{DEFAULT_TOML}");
            Ok(())
        }
        Command::Config(ConfigCommand::Validate { file, metadata }) => {
            let config = load_config(&file)?;
            if let Some(path) = metadata {
                let meta = load_metadata(&path)?;
                let errors = validate_against_metadata(&config, &meta.hubspot, &meta.salesforce);
                if !errors.is_empty() {
                    return Err(ConfigErrors(errors).into());
                }
            }
            println!("{}: valid", file.display());
            Ok(())
        }
        Command::Explain { config, pair } => {
            let config = config_or_builtin(config)?;
            let json = read(&pair)?;
            let out = explain(&json, &config)?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}

pub(crate) fn read(path: &Path) -> Result<String, CliError> {
    let result = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    result.map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn load_config(path: &Path) -> Result<ValidatedConfig, CliError> {
    Ok(SyncConfig::from_toml(&read(path)?)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataFile {
    #[serde(default)]
    hubspot: HashMap<String, ObjectMeta>,
    #[serde(default)]
    salesforce: HashMap<String, ObjectMeta>,
}

fn load_metadata(path: &Path) -> Result<MetadataFile, CliError> {
    serde_json::from_str(&read(path)?).map_err(|source| CliError::Metadata {
        path: path.display().to_string(),
        source,
    })
}
