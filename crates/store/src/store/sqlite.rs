//! SQLite backend: a local file (`sqlite://path/to/palisade.db`), created on first use with
//! the migrations applied, in WAL mode with a busy timeout so the gateway and the `palisade
//! keys` CLI can use the same file at once. `sqlite::memory:` is accepted for tests.
//!
//! SQLite has no cross-process notification: the process that revokes a key (the gateway's
//! admin API) drops it from its own cache at once, and other processes on the same file
//! (say, a gateway while `palisade keys revoke` runs) see it at their next revalidation,
//! which is every 500 ms for SQLite (see `service`).

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::{KeyRecord, KeyStore, Row, insert_query, migrator, rehash_query, sql};
use crate::{StoreError, hashing::KeyHash};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "api_keys",
        include_str!("../../migrations/sqlite/0001_api_keys.sql"),
    ),
    (
        2,
        "pepper_id",
        include_str!("../../migrations/sqlite/0002_pepper_id.sql"),
    ),
];

/// The SQLite implementation of [`KeyStore`].
#[derive(Debug)]
pub(crate) struct SqliteStore {
    pool: SqlitePool,
}

fn is_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    rest == ":memory:" || rest.starts_with(":memory:?") || rest.contains("mode=memory")
}

impl SqliteStore {
    pub(crate) async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?.foreign_keys(true);
        let pool = if is_memory(url) {
            // One connection that never closes: the in-memory database lives as long as it.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(Duration::from_secs(2))
                .connect_with(options)
                .await?
        } else {
            let path = options.get_filename().to_path_buf();
            prepare_file(&path)?;
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5));
            SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(2))
                .connect_with(options)
                .await?
        };
        migrator(MIGRATIONS).run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

/// Creates the parent directory and, on Unix, an empty database file readable by its owner
/// only (SQLite gives the `-wal` and `-shm` files the same permissions).
fn prepare_file(path: &std::path::Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(StoreError::Io)?;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Io(e)),
    }
}

impl KeyStore for SqliteStore {
    async fn insert(&self, r: &KeyRecord) -> Result<(), StoreError> {
        insert_query!(r).execute(&self.pool).await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        sqlx::query_as::<_, Row>(sql::GET)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(KeyRecord::from_row)
            .transpose()
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        sqlx::query_as::<_, Row>(sql::LIST)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(KeyRecord::from_row)
            .collect()
    }

    async fn revoke(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::REVOKE)
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn rotate(
        &self,
        old_id: &str,
        old_expires_at: i64,
        new: &KeyRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let capped = sqlx::query(sql::CAP_EXPIRY)
            .bind(old_id)
            .bind(old_expires_at)
            .execute(&mut *tx)
            .await?;
        if capped.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_query!(new).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rehash(
        &self,
        id: &str,
        old: &KeyHash,
        new: &KeyHash,
        pepper_id: &str,
    ) -> Result<bool, StoreError> {
        let done = rehash_query!(id, old, new, pepper_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch(&self, batch: &[(Arc<str>, i64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (id, at) in batch {
            sqlx::query(sql::TOUCH)
                .bind(&**id)
                .bind(*at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database made before migration 2 gains `pepper_id` (NULL for its keys), and
    /// `rehash` is a compare-and-set on the old hash.
    #[tokio::test]
    async fn migration_2_upgrades_an_existing_database() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        migrator(&MIGRATIONS[..1]).run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO api_keys (id, secret_hash, name, subject, roles, scopes, created_at) \
             VALUES ('AAAAAAAAAAAA', zeroblob(32), 'n', 's', '[]', '[]', 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = SqliteStore::open(&url).await.unwrap();
        let record = store.get("AAAAAAAAAAAA").await.unwrap().unwrap();
        assert_eq!(record.pepper_id, None);
        let (zero, one) = (KeyHash([0; 32]), KeyHash([1; 32]));
        let fp = "0123456789abcdef";
        assert!(store.rehash("AAAAAAAAAAAA", &zero, &one, fp).await.unwrap());
        let record = store.get("AAAAAAAAAAAA").await.unwrap().unwrap();
        assert_eq!(record.pepper_id.as_deref(), Some(fp));
        assert_eq!(record.hash, one);
        // The hash changed meanwhile: nothing is written.
        let two = KeyHash([2; 32]);
        assert!(!store.rehash("AAAAAAAAAAAA", &zero, &two, fp).await.unwrap());
        assert_eq!(store.get("AAAAAAAAAAAA").await.unwrap().unwrap().hash, one);
    }

    #[test]
    fn memory_urls() {
        assert!(is_memory("sqlite::memory:"));
        assert!(is_memory("sqlite://:memory:"));
        assert!(is_memory("sqlite://file.db?mode=memory"));
        assert!(!is_memory("sqlite://palisade.db"));
        assert!(!is_memory("sqlite:data/palisade.db"));
    }
}
