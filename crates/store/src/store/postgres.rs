//! PostgreSQL backend (`postgres://…`), shared by many gateway instances.
//!
//! `revoke` and `rotate` send `NOTIFY palisade_keys, '<id>'` (as `pg_notify($1, $2)`, in the
//! same transaction as the change, so it is delivered exactly when the change commits); every
//! instance holds a dedicated `LISTEN palisade_keys` connection (see `service`) and evicts
//! the id from its cache.

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};

use super::{KeyRecord, KeyStore, Row, insert_query, migrator, rehash_query, sql};
use crate::{StoreError, hashing::KeyHash};

/// The notification channel for key changes; the payload is a key id.
pub(crate) const CHANNEL: &str = "palisade_keys";

const NOTIFY: &str = "SELECT pg_notify($1, $2)";

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "api_keys",
        include_str!("../../migrations/postgres/0001_api_keys.sql"),
    ),
    (
        2,
        "pepper_id",
        include_str!("../../migrations/postgres/0002_pepper_id.sql"),
    ),
];

/// The PostgreSQL implementation of [`KeyStore`].
pub(crate) struct PgStore {
    pool: PgPool,
    /// Kept to open the LISTEN connection; may hold a password, so never printed.
    options: Box<PgConnectOptions>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    pub(crate) async fn open(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options.clone())
            .await?;
        migrator(MIGRATIONS).run(&pool).await?;
        Ok(PgStore {
            pool,
            options: Box::new(options),
        })
    }

    /// A fresh, dedicated connection listening on [`CHANNEL`]. It does not reconnect by
    /// itself in a way the caller could miss: the caller drops it on any loss and calls this
    /// again, clearing its cache in between.
    pub(crate) async fn listener(&self) -> Result<PgListener, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with((*self.options).clone())
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }
}

impl KeyStore for PgStore {
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
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(sql::REVOKE)
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(NOTIFY)
            .bind(CHANNEL)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
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
        sqlx::query(NOTIFY)
            .bind(CHANNEL)
            .bind(old_id)
            .execute(&mut *tx)
            .await?;
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

    /// A database made before migration 2 gains `pepper_id` (NULL for its keys).
    #[tokio::test]
    async fn migration_2_upgrades_an_existing_database() {
        let server = palisade_testkit::postgres::PostgresServer::start();
        let url = server.url();
        let pool = PgPool::connect(&url).await.unwrap();
        migrator(&MIGRATIONS[..1]).run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO api_keys (id, secret_hash, name, subject, roles, scopes, created_at) \
             VALUES ('AAAAAAAAAAAA', decode(repeat('00', 32), 'hex'), 'n', 's', '[]', '[]', 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = PgStore::open(&url).await.unwrap();
        let record = store.get("AAAAAAAAAAAA").await.unwrap().unwrap();
        assert_eq!(record.pepper_id, None);
        let (zero, one) = (KeyHash([0; 32]), KeyHash([1; 32]));
        assert!(
            store
                .rehash("AAAAAAAAAAAA", &zero, &one, "0123456789abcdef")
                .await
                .unwrap()
        );
        let record = store.get("AAAAAAAAAAAA").await.unwrap().unwrap();
        assert_eq!(record.pepper_id.as_deref(), Some("0123456789abcdef"));
        assert_eq!(record.hash, one);
        assert!(
            !store
                .rehash("AAAAAAAAAAAA", &zero, &one, "0123456789abcdef")
                .await
                .unwrap()
        );
    }
}
