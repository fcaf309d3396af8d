//! `palisade keys`: manage API keys in the config's `[store]`.
//!
//! A key is printed exactly once, on stdout and alone on its line, so that
//! `KEY=$(palisade keys create --name ci)` captures it; everything else goes to stderr.
//! On SQLite, a revocation made here reaches running gateways at their next cache
//! revalidation; the admin API (`DELETE /keys/{id}`) or PostgreSQL make it immediate.
//! Each change is also a `key_created`/`key_revoked` JSON line on stderr, in the gateway's
//! security-event schema with `actor` `cli`, so no key change escapes the audit trail.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use palisade_gateway::Config;
use palisade_gateway::config::HumanDuration;
use palisade_gateway::observe::security::{KeyEvent, key_event};
use palisade_store::{KeyInfo, KeyPeppers, KeyService, NewKey};
use secrecy::ExposeSecret;

use crate::Failure;

#[derive(clap::Args)]
pub(crate) struct KeysArgs {
    /// The config file whose [store] holds the keys.
    #[arg(short, long, default_value = "palisade.toml", global = true)]
    config: PathBuf,
    /// Also resolve `${env:NAME}` from this file (see `palisade serve --env-file`).
    #[arg(long, global = true)]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it once.
    Create {
        /// A name for people: which application or integration holds the key.
        #[arg(long)]
        name: String,
        /// The subject the key acts for (sent upstream as X-Palisade-Subject). Default: the name.
        #[arg(long)]
        subject: Option<String>,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Comma-separated scopes.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime, such as `90d`. Default: no expiry.
        #[arg(long)]
        expires: Option<HumanDuration>,
    },
    /// List keys (never their secrets).
    List {
        /// `table` or `json`.
        #[arg(long, default_value = "table")]
        format: ListFormat,
    },
    /// Revoke a key by id.
    Revoke { id: String },
    /// Issue a new key for the same subject; the old one keeps working for the overlap.
    Rotate {
        id: String,
        /// How long the old key keeps working, such as `1h`. Default: [store] rotation_overlap.
        #[arg(long)]
        overlap: Option<HumanDuration>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

pub(crate) async fn run(args: KeysArgs) -> Result<(), Failure> {
    let config = Config::load_with_env_file(&args.config, args.env_file.as_deref())
        .map_err(|e| Failure::Config(e.to_string()))?;
    let Some(store) = &config.store else {
        return Err(Failure::Config(format!(
            "{}: no [store] section: API keys need one (see examples/palisade.toml)",
            args.config.display()
        )));
    };
    let peppers = KeyPeppers::new(&store.key_peppers)
        .map_err(|e| Failure::Config(format!("store.key_pepper: {e}")))?;
    let keys = KeyService::open(store.url.expose_secret(), peppers, store.rotation_overlap)
        .await
        .map_err(|e| Failure::Config(format!("cannot open the key store: {e}")))?;
    match args.command {
        KeysCommand::Create {
            name,
            subject,
            roles,
            scopes,
            expires,
        } => {
            let new = NewKey {
                subject: subject.unwrap_or_else(|| name.clone()),
                name,
                roles,
                scopes,
                expires_in: expires.map(|d| d.0),
            };
            let issued = keys.create(new).await.map_err(store_failure)?;
            key_event(
                KeyEvent::Created { rotated: false },
                &issued.info.id,
                Some(&issued.info.subject),
                None,
                "cli",
            );
            eprintln!(
                "created key {} for {}; it is shown only now, store it safely:",
                issued.info.id, issued.info.subject
            );
            println!("{}", issued.key.expose_secret());
        }
        KeysCommand::List { format } => {
            let list = keys.list().await.map_err(store_failure)?;
            match format {
                ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                ),
                ListFormat::Table => print!("{}", table(&list)),
            }
        }
        KeysCommand::Revoke { id } => {
            if keys.revoke(&id).await.map_err(store_failure)? {
                key_event(KeyEvent::Revoked, &id, None, None, "cli");
                eprintln!("revoked key {id}");
            } else {
                return Err(Failure::Config(format!("no active key with id {id}")));
            }
        }
        KeysCommand::Rotate { id, overlap } => {
            let issued = keys
                .rotate(&id, overlap.map(|d| d.0))
                .await
                .map_err(store_failure)?;
            key_event(
                KeyEvent::Created { rotated: true },
                &issued.info.id,
                Some(&issued.info.subject),
                Some(&id),
                "cli",
            );
            let overlap = overlap.map_or(store.rotation_overlap, |d| d.0);
            eprintln!(
                "rotated key {id} → {}; the old key keeps working for {}; the new one is shown only now:",
                issued.info.id,
                human(overlap)
            );
            println!("{}", issued.key.expose_secret());
        }
    }
    keys.flush_last_used().await.map_err(store_failure)?;
    Ok(())
}

fn store_failure(error: palisade_store::StoreError) -> Failure {
    Failure::Config(format!("key store: {error}"))
}

fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A plain-text table: one key per line, columns padded to their widest cell.
fn table(keys: &[KeyInfo]) -> String {
    let mut rows = vec![
        [
            "ID",
            "NAME",
            "SUBJECT",
            "ROLES",
            "SCOPES",
            "CREATED",
            "EXPIRES",
            "LAST USED",
            "STATE",
            "PEPPER",
        ]
        .map(str::to_owned),
    ];
    for key in keys {
        rows.push([
            key.id.clone(),
            key.name.clone(),
            key.subject.clone(),
            key.roles.join(","),
            key.scopes.join(","),
            utc(Some(key.created_at)),
            utc(key.expires_at),
            utc(key.last_used_at),
            serde_json::to_value(key.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            key.pepper.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM` UTC, or `-`.
fn utc(seconds: Option<i64>) -> String {
    let Some(seconds) = seconds else {
        return "-".to_owned();
    };
    let (year, month, day, hour, minute, _) = palisade_gateway::observe::clock::utc_parts(seconds);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(Some(0)), "1970-01-01 00:00");
        assert_eq!(utc(Some(951_782_400)), "2000-02-29 00:00");
        assert_eq!(utc(Some(1_795_833_000)), "2026-11-28 02:30");
        assert_eq!(utc(None), "-");
    }
}
