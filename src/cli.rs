//! Command-line interface: the clap types, and the little terminal I/O the commands share
//! (printing to a standard output that may be a closed pipe, reading a password).
//!
//! Must never: panic on what the operator types or on where the output goes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "coconnect",
    version,
    about = "Gateway for electronic Certificates of Origin (WCO Interconnectivity Framework)"
)]
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
    /// Hash a password for a partner's inbound_auth.password_hash (asks for it on a terminal,
    /// else reads one line from stdin).
    HashPassword,
    /// Manual intervention on a running gateway, through its domestic API (every action is
    /// attributed to the token's name).
    Ops {
        /// Base URL of the gateway's domestic API, e.g. http://127.0.0.1:8081
        #[arg(long)]
        api: String,
        /// Environment variable holding the API bearer token.
        #[arg(long, default_value = "COCONNECT_API_TOKEN")]
        token_env: String,
        #[command(subcommand)]
        command: OpsCommand,
    },
    /// Purge message contents (personal data) older than the retention; digests, IDs,
    /// signatures' evidence and the audit chain stay. On SQLite, stop the gateway first.
    Purge {
        #[arg(long)]
        config: PathBuf,
        /// Override `[retention] message_contents_days` (0 to 36500; 0 purges every closed message).
        #[arg(long, value_parser = clap::value_parser!(i64).range(PURGE_DAYS_MIN..=PURGE_DAYS_MAX))]
        older_than_days: Option<i64>,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check a configuration file and print what it loads.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Conformance check of a partner's endpoint (or ours) with a security profile: fetch the
    /// WSDL, send a signed (and encrypted) look-up that finds nothing, verify the signed answer;
    /// each step is printed, with what did not match. Exit status 0 only if the exchange worked.
    Probe {
        /// Our configuration: keys, and the partner's certificates and credentials.
        #[arg(long)]
        config: PathBuf,
        /// The configured partner to probe.
        #[arg(long)]
        partner: String,
        /// The profile to try (strict, wss4j-defaults, cxf, wcf-basic256sha256, wcf-basic256,
        /// zeep, node-soap); default: the partner's configured profile.
        #[arg(long)]
        preset: Option<String>,
        /// Another endpoint than the configured one.
        #[arg(long)]
        endpoint: Option<String>,
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
        /// The signing keys' kind: `rsa-2048`, or `ec-p256` for partner profiles with
        /// `signature_algorithm = "ecdsa-sha256"` (encryption and TLS keys stay RSA-2048).
        #[arg(long, value_enum, default_value = "rsa-2048")]
        signing_key: SigningKeyArg,
    },
}

/// `pki init --signing-key`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningKeyArg {
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "ec-p256")]
    EcP256,
}

impl From<SigningKeyArg> for crate::dev_pki::SigningKeyKind {
    fn from(arg: SigningKeyArg) -> Self {
        match arg {
            SigningKeyArg::Rsa2048 => crate::dev_pki::SigningKeyKind::Rsa2048,
            SigningKeyArg::EcP256 => crate::dev_pki::SigningKeyKind::EcP256,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum OpsCommand {
    /// List the outbox, optionally by state (pending, delivered, rejected, failed, cancelled) and partner.
    Outbox {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        partner: Option<String>,
    },
    /// Retry a failed message now, with a fresh retry schedule.
    Retry { message_id: String },
    /// Cancel a pending or failed message.
    Cancel { message_id: String },
    /// Show partners' delivery status.
    Partners,
    /// Pause delivery to a partner (announced downtime; paused time does not use up retries).
    Pause { partner: String },
    /// Resume delivery to a partner.
    Resume { partner: String },
    /// List alerts (unacknowledged only unless --all).
    Alerts {
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge an alert.
    AckAlert { id: i64 },
    /// Look at the back-end event feed: the events after --after (in order), optionally of
    /// some kinds and partners (comma-separated).
    Events {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        partner: Option<String>,
        /// Only the events no back-end acknowledged yet.
        #[arg(long)]
        unacknowledged: bool,
    },
    /// The push subscribers (webhook, AMQP): position, backlog, failures.
    Subscribers,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the audit chain: exit 0 if every record is intact and none is missing.
    Verify {
        #[arg(long)]
        config: PathBuf,
    },
}

/// Range of `purge --older-than-days` (100 years at most, so the cutoff is a valid time).
pub const PURGE_DAYS_MIN: i64 = 0;
pub const PURGE_DAYS_MAX: i64 = 36_500;

/// Prints `text` and a newline on standard output. A reader that went away (`coconnect ops
/// outbox | head`) is not an error: the rest is dropped and the command ends as it would have.
pub fn say(text: impl std::fmt::Display) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The password for `hash-password`: asked twice without echo when stdin is a terminal, else
/// the first line of stdin (its line end dropped).
pub fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing_key(args: &[&str]) -> Result<SigningKeyArg, clap::Error> {
        let base = ["coconnect", "pki", "init", "--out", "dev", "--parties", "KR,ID"];
        match Cli::try_parse_from(base.iter().chain(args))?.command {
            Command::Pki { command: PkiCommand::Init { signing_key, .. } } => Ok(signing_key),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pki_init_makes_rsa_signing_keys_unless_ec_p256_is_asked_for() {
        assert_eq!(signing_key(&[]).expect("default"), SigningKeyArg::Rsa2048);
        assert_eq!(signing_key(&["--signing-key", "ec-p256"]).expect("ec"), SigningKeyArg::EcP256);
        assert!(signing_key(&["--signing-key", "dsa"]).is_err());
    }
}
