//! The key store: one trait, [`KeyStore`], with a SQLite and a PostgreSQL implementation.
//!
//! Both backends share the same table layout (`migrations/<backend>/`), differing only in
//! column types (`BLOB`/`BYTEA`, `INTEGER`/`BIGINT`), and the same SQL text: every query is a
//! `&'static str` with `$n` placeholders, every value is a bound parameter. Nothing is ever
//! formatted into SQL.
//!
//! Stored per key: `id`, `secret_hash` (HMAC-SHA-256, 32 bytes), `name`, `subject`, `roles`
//! and `scopes` (JSON arrays of strings, as text), `created_at`, `expires_at`, `revoked_at`,
//! `last_used_at` (unix seconds), `rotated_from` (the id of the key this one replaced),
//! `pepper_id` (the fingerprint of the pepper that made `secret_hash`; NULL for keys made
//! before migration 2), plus an internal `seq` used only to order keys created in the same
//! second. Never the secret or the full key.

use std::{borrow::Cow, future::Future, sync::Arc};

use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};

use crate::{StoreError, hashing::KeyHash};

mod postgres;
mod sqlite;

pub(crate) use postgres::PgStore;
pub(crate) use sqlite::SqliteStore;

/// One key as stored.
#[derive(Debug, Clone)]
pub(crate) struct KeyRecord {
    pub(crate) id: String,
    /// Redacted in `Debug` by [`KeyHash`].
    pub(crate) hash: KeyHash,
    pub(crate) name: String,
    pub(crate) subject: String,
    pub(crate) roles: Vec<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) rotated_from: Option<String>,
    /// Fingerprint of the pepper that made `hash` (16 hex digits); `None` before it was
    /// recorded.
    pub(crate) pepper_id: Option<String>,
}

/// The column list every `SELECT` uses, in the order of [`Row`].
macro_rules! select_columns {
    () => {
        "SELECT id, secret_hash, name, subject, roles, scopes, created_at, expires_at, \
         revoked_at, last_used_at, rotated_from, pepper_id FROM api_keys"
    };
}

/// The `INSERT` of one [`KeyRecord`], as a query with every column bound.
macro_rules! insert_query {
    ($r:expr) => {{
        let r: &$crate::store::KeyRecord = $r;
        sqlx::query($crate::store::sql::INSERT)
            .bind(r.id.as_str())
            .bind(&r.hash.0[..])
            .bind(r.name.as_str())
            .bind(r.subject.as_str())
            .bind(r.roles_json())
            .bind(r.scopes_json())
            .bind(r.created_at)
            .bind(r.expires_at)
            .bind(r.revoked_at)
            .bind(r.last_used_at)
            .bind(r.rotated_from.as_deref())
            .bind(r.pepper_id.as_deref())
    }};
}
pub(crate) use insert_query;

/// SQL shared by both backends (SQLite accepts `$n` placeholders too).
pub(crate) mod sql {
    pub(crate) const INSERT: &str = "INSERT INTO api_keys (id, secret_hash, name, subject, roles, \
        scopes, created_at, expires_at, revoked_at, last_used_at, rotated_from, pepper_id) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    pub(crate) const GET: &str = concat!(select_columns!(), " WHERE id = $1");
    pub(crate) const LIST: &str = concat!(select_columns!(), " ORDER BY created_at DESC, seq DESC");
    pub(crate) const REVOKE: &str =
        "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
    /// Shortens (never extends) the expiry of a key that is not revoked.
    pub(crate) const CAP_EXPIRY: &str = "UPDATE api_keys SET expires_at = CASE \
        WHEN expires_at IS NULL OR expires_at > $2 THEN $2 ELSE expires_at END \
        WHERE id = $1 AND revoked_at IS NULL";
    /// Moves `last_used_at` forward only.
    pub(crate) const TOUCH: &str = "UPDATE api_keys SET last_used_at = $2 \
        WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
    /// Replaces a key's hash and pepper fingerprint, only if the hash is still `$4` (so two
    /// instances upgrading at once, or an upgrade racing anything else, write at most once).
    /// Revocation and expiry are untouched.
    pub(crate) const REHASH: &str = "UPDATE api_keys SET secret_hash = $2, pepper_id = $3 \
        WHERE id = $1 AND secret_hash = $4";
}

/// A row as read: the column types both drivers decode.
pub(crate) type Row = (
    String,
    Vec<u8>,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl KeyRecord {
    pub(crate) fn from_row(row: Row) -> Result<KeyRecord, StoreError> {
        let (
            id,
            hash,
            name,
            subject,
            roles,
            scopes,
            created_at,
            expires_at,
            revoked_at,
            last_used_at,
            rotated_from,
            pepper_id,
        ) = row;
        let corrupt = |what: &'static str| StoreError::Corrupt { what };
        if pepper_id
            .as_deref()
            .is_some_and(|fp| fp.len() != 16 || !fp.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(corrupt("pepper_id"));
        }
        Ok(KeyRecord {
            pepper_id,
            hash: KeyHash::from_slice(&hash).ok_or_else(|| corrupt("secret_hash length"))?,
            roles: serde_json::from_str(&roles).map_err(|_| corrupt("roles"))?,
            scopes: serde_json::from_str(&scopes).map_err(|_| corrupt("scopes"))?,
            id,
            name,
            subject,
            created_at,
            expires_at,
            revoked_at,
            last_used_at,
            rotated_from,
        })
    }

    pub(crate) fn roles_json(&self) -> String {
        serde_json::to_string(&self.roles).unwrap_or_else(|_| "[]".into())
    }

    pub(crate) fn scopes_json(&self) -> String {
        serde_json::to_string(&self.scopes).unwrap_or_else(|_| "[]".into())
    }
}

/// The operations the service needs from a backend.
///
/// Implemented by [`SqliteStore`] and [`PgStore`]; [`Backend`] dispatches between them
/// statically (an enum, no boxing, no `async-trait`).
pub(crate) trait KeyStore {
    /// Inserts a new key; fails on a duplicate id.
    fn insert(&self, rec: &KeyRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// One key by id.
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;
    /// All keys, newest first.
    fn list(&self) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;
    /// Marks a key revoked at `at`; false if unknown or already revoked. On PostgreSQL this
    /// also notifies every listening instance, in the same transaction.
    fn revoke(&self, id: &str, at: i64) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// In one transaction: caps the old key's expiry at `old_expires_at` and inserts `new`.
    /// False (and nothing changed) if the old key is unknown or revoked. On PostgreSQL this
    /// also notifies every instance to re-read the old key.
    fn rotate(
        &self,
        old_id: &str,
        old_expires_at: i64,
        new: &KeyRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Replaces the hash of key `id` by `new` (made with the pepper `pepper_id`) if it is
    /// still `old`; false if it was not (changed meanwhile, or no such key).
    fn rehash(
        &self,
        id: &str,
        old: &KeyHash,
        new: &KeyHash,
        pepper_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Writes a batch of last-used times in one transaction.
    fn touch(
        &self,
        batch: &[(Arc<str>, i64)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Closes the connection pool.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// The configured backend.
#[derive(Debug)]
pub(crate) enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Backend::Sqlite($s) => $e,
            Backend::Postgres($s) => $e,
        }
    };
}

impl Backend {
    pub(crate) async fn open(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite(SqliteStore::open(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres(PgStore::open(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub(crate) fn postgres(&self) -> Option<&PgStore> {
        match self {
            Backend::Postgres(p) => Some(p),
            Backend::Sqlite(_) => None,
        }
    }
}

impl KeyStore for Backend {
    async fn insert(&self, rec: &KeyRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert(rec).await)
    }
    async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        dispatch!(self, s => s.get(id).await)
    }
    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        dispatch!(self, s => s.list().await)
    }
    async fn revoke(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.revoke(id, at).await)
    }
    async fn rotate(
        &self,
        old_id: &str,
        old_expires_at: i64,
        new: &KeyRecord,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.rotate(old_id, old_expires_at, new).await)
    }
    async fn rehash(
        &self,
        id: &str,
        old: &KeyHash,
        new: &KeyHash,
        pepper_id: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.rehash(id, old, new, pepper_id).await)
    }
    async fn touch(&self, batch: &[(Arc<str>, i64)]) -> Result<(), StoreError> {
        dispatch!(self, s => s.touch(batch).await)
    }
    async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }
}

/// The `REHASH` query with its parameters bound.
macro_rules! rehash_query {
    ($id:expr, $old:expr, $new:expr, $pepper_id:expr) => {
        sqlx::query($crate::store::sql::REHASH)
            .bind($id)
            .bind(&$new.0[..])
            .bind($pepper_id)
            .bind(&$old.0[..])
    };
}
pub(crate) use rehash_query;

/// Builds the migrator for one backend from SQL embedded at compile time.
pub(crate) fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
