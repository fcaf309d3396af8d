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

use super::{KeyRecord, KeyStore, Row, insert_query, migrator, sql};
use crate::StoreError;

/// The notification channel for key changes; the payload is a key id.
pub(crate) const CHANNEL: &str = "palisade_keys";

const NOTIFY: &str = "SELECT pg_notify($1, $2)";

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "api_keys",
    include_str!("../../migrations/postgres/0001_api_keys.sql"),
)];

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
