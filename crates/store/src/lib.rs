//! API keys for applications (checklist #2): random, prefixed, hashed at rest, scoped,
//! expiring, revocable, shown once — in SQLite or PostgreSQL behind one trait, with an
//! in-memory cache so verifying a key costs no database round trip.
//!
//! One module per job:
//! - [`keyformat`]: the `pal_<id>_<secret>` format — generation from the OS RNG and strict
//!   parsing;
//! - `hashing`: HMAC-SHA-256 under the pepper (aws-lc-rs), constant-time comparison;
//! - `store`: the `KeyStore` trait and its SQLite and PostgreSQL implementations, with
//!   embedded migrations;
//! - [`cache`]: the positive and negative verify caches and their invalidation rules;
//! - `service`: [`KeyService`], which ties them together, plus the background work
//!   (PostgreSQL `LISTEN` for revocations, batched last-used writes, revalidation).
//!
//! ## What is stored
//! Per key: id, `HMAC-SHA-256(pepper, …secret…)` (32 bytes), name, subject, roles and scopes
//! (JSON arrays of strings, as text), created, expires, revoked, last used (unix seconds),
//! the id of the key it replaced, and the fingerprint of the pepper that made the hash
//! (several peppers may be configured during a rotation; see [`KeyPeppers`]). Never the secret or the full key; the full key exists
//! only in [`IssuedKey::key`], returned once. `Debug` of every type here that holds a hash or
//! a secret prints neither, and [`StoreError`] messages never contain a key or the pepper.
//!
//! ## Guarantees
//! - A key revoked through a [`KeyService`] is rejected by that instance immediately, and
//!   on PostgreSQL by every instance running [`KeyService::spawn_background`] well within a
//!   second (`NOTIFY`). On SQLite, other processes on the same file see it within a second
//!   (cached keys are re-read every 500 ms).
//! - The store being down never lets a request through that the store would refuse: an
//!   uncached key gets [`KeyRejection::StoreUnavailable`]. Already-cached keys keep working
//!   (except on PostgreSQL while the revocation feed is down, when nothing cached is trusted).
//! - Last-used times are written in batches, never per request.

pub mod cache;
mod hashing;
pub mod keyformat;
mod service;
mod store;

use std::{sync::Arc, time::Duration};

pub use hashing::{KeyPeppers, MAX_PEPPERS, MIN_PEPPER_LEN};
pub use keyformat::looks_like_key;
pub use service::{FLUSH_INTERVAL, KeyService, PG_REVALIDATE, SQLITE_REVALIDATE, STORE_TIMEOUT};

/// What a new key carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// A human label (1–128 characters).
    pub name: String,
    /// The application or user the key acts for (1–256 characters).
    pub subject: String,
    /// Role names: printable ASCII, no commas or spaces, at most 64 characters each.
    pub roles: Vec<String>,
    /// Scope names, with the same rules as roles.
    pub scopes: Vec<String>,
    /// Lifetime from now; `None` never expires. Rounded up to the whole second.
    pub expires_in: Option<Duration>,
}

/// A freshly created or rotated key.
#[derive(Debug)]
pub struct IssuedKey {
    pub info: KeyInfo,
    /// The full `pal_…` key. This is the only copy: show it once, never store or log it.
    pub key: secrecy::SecretString,
}

/// A key as listed: everything except its hash. Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub subject: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub state: KeyState,
    /// Which configured pepper hashed the key: `current`, `old:<fingerprint>` (still
    /// configured, not first: re-hashed at the key's next use), `unknown:<fingerprint>` (not
    /// configured: the key can no longer verify) or `unrecorded` (made before fingerprints
    /// were kept; recorded at its next use).
    pub pepper: String,
}

/// The state of a key at the time it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

/// The identity a verified key carries.
#[derive(Debug, Clone)]
pub struct VerifiedKey {
    /// The public key id.
    pub id: Arc<str>,
    pub subject: Arc<str>,
    pub roles: Arc<[String]>,
    pub scopes: Arc<[String]>,
}

/// Why a presented key was refused. The gateway answers each of these with the same 401
/// (503 for `StoreUnavailable` if it likes); the reason is for the log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    /// Not of the form `pal_<12 base62>_<43 base62>`; the store was not consulted.
    Malformed,
    /// No key with this id.
    UnknownKey,
    /// The id exists but the secret does not match.
    WrongSecret,
    Expired,
    Revoked,
    /// The key is not cached and the store could not be reached.
    StoreUnavailable,
}

impl KeyRejection {
    /// A stable, lower-case reason for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            KeyRejection::Malformed => "malformed",
            KeyRejection::UnknownKey => "unknown_key",
            KeyRejection::WrongSecret => "wrong_secret",
            KeyRejection::Expired => "expired",
            KeyRejection::Revoked => "revoked",
            KeyRejection::StoreUnavailable => "store_unavailable",
        }
    }

    /// Whether this failure could be someone guessing a key (counted by the gateway's
    /// failed-authentication lockout), as opposed to a real key that has expired or been
    /// revoked, which a legitimate client may keep sending until it is replaced.
    pub fn is_guess(self) -> bool {
        matches!(
            self,
            KeyRejection::Malformed | KeyRejection::UnknownKey | KeyRejection::WrongSecret
        )
    }
}

impl std::fmt::Display for KeyRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for KeyRejection {}

/// A store operation failed. Messages name key ids at most, never a key, a hash or the
/// pepper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("unsupported store url: expected sqlite:… or postgres://…")]
    UnsupportedUrl,
    #[error("the key pepper must be at least {MIN_PEPPER_LEN} bytes (use 32 random bytes)")]
    WeakPepper,
    #[error("invalid key request: {0}")]
    Invalid(&'static str),
    /// The id, if it was a well-formed key id (anything else is not echoed).
    #[error("no such key: {}", .0.as_deref().unwrap_or("(not a key id)"))]
    NotFound(Option<String>),
    #[error("key {0} is revoked")]
    Revoked(String),
    #[error("the key store did not answer in time")]
    Timeout,
    #[error("corrupt key record: bad {what}")]
    Corrupt { what: &'static str },
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("key store database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("key store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("key store file: {0}")]
    Io(std::io::Error),
}
