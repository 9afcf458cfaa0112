//! `crmsync`: the operator CLI. Each subcommand parses its arguments here and calls the
//! shared crate; nothing about syncing is decided in this file.

mod demo;

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
    /// Run the built-in seed scenarios through the merge core and print what would sync.
    Demo,
    /// Check, print or explain sync configurations.
    #[command(subcommand)]
    Config(ConfigCommand),
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
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => 1,
            _ => 2,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crmsync: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Demo => demo::run(),
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
            let config = match config {
                Some(path) => load_config(&path)?,
                None => SyncConfig::builtin(),
            };
            let json = read(&pair)?;
            let out = explain(&json, &config)?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}

fn read(path: &Path) -> Result<String, CliError> {
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
