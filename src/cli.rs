//! Command-line interface (clap derive types only; no I/O here).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "coconnect", version, about = "Gateway for electronic Certificates of Origin (WCO Interconnectivity Framework)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (SOAP endpoint, domestic API, delivery workers).
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Development PKI tools.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Two gateways on loopback (KR and ID) exchange examples/co.xml, printing each step.
    Demo {
        /// Keep the generated keys, configurations and databases in this folder.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Hash a password for a partner's inbound_auth.password_hash (reads it from stdin).
    HashPassword,
    /// Check a configuration file and print what it loads.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create a development CA and per-party signing, encryption and TLS certificates.
    Init {
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated party codes, e.g. KR,ID.
        #[arg(long, value_delimiter = ',')]
        parties: Vec<String>,
        /// Replace existing party keys.
        #[arg(long)]
        force: bool,
    },
}
