//! [`KeyService`]: the store, the hasher and the cache behind one cheap-to-clone handle.
//!
//! ## Verify (the hot path)
//! 1. strict parse of `pal_<id>_<secret>` → [`KeyRejection::Malformed`], no store access;
//! 2. the id in the memory cache (fresh: no database round trip); in the negative cache →
//!    `UnknownKey`; otherwise (or stale) one `SELECT` by primary key, with a timeout;
//! 3. HMAC of the presented secret under the pepper the record names (or each configured
//!    pepper in turn, current first, if it names none configured), compared in constant
//!    time → `WrongSecret`;
//! 4. only then revoked → `Revoked`, expired → `Expired` (a caller without the secret learns
//!    nothing about the key's state);
//! 5. the last-used time is recorded in memory; [`KeyService::flush_last_used`] writes the
//!    batch (every 10 s from the background task);
//! 6. a key that verified under an older pepper (or whose pepper was never recorded) is
//!    re-hashed under the current one, off the request path: the secret is in hand only
//!    now, so this is the one moment the upgrade can happen. The write is a compare-and-set
//!    on the old hash and touches nothing else (revocation and expiry stay as they are);
//!    the id is then evicted from the cache so the next use reads the new record.
//!
//! ## Pepper rotation
//! [`KeyService::set_peppers`] replaces the pepper list of a running service (a config
//! reload). When the list changes, the cache is cleared: a cached record hashed under a
//! pepper that has just been dropped might since have been upgraded by another instance.
//!
//! If the store cannot be reached, an uncached key is rejected with `StoreUnavailable` (the
//! gateway fails closed) while cached keys keep working: a stale entry is served again for
//! a second at a time until the store answers. The exception is PostgreSQL with the
//! background task running: there the cache is only trusted while the `LISTEN` connection is
//! up (see [`crate::cache`]).
//!
//! ## Revalidation and revocation
//! - PostgreSQL: `revoke` and `rotate` notify every instance (`NOTIFY palisade_keys`); each
//!   instance's background task evicts the id at once (well under a second). Cache entries
//!   are still re-read every [`PG_REVALIDATE`] as a safety net. On loss of the `LISTEN`
//!   connection the whole cache is cleared and bypassed until it is back (reconnect with
//!   exponential backoff, 100 ms to 5 s), then cleared again.
//! - SQLite has no cross-process notification. The instance that revokes (the gateway's
//!   admin API) evicts at once; every other process on the same file (the gateway while the
//!   `palisade keys` CLI revokes) re-reads cached keys every [`SQLITE_REVALIDATE`] (500 ms)
//!   — two indexed local reads per key in use per second, which keeps the one-second bound.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError, Weak},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    IssuedKey, KeyInfo, KeyRejection, KeyState, NewKey, StoreError, VerifiedKey,
    cache::{CachedKey, Feed, KeyCache, Lookup},
    hashing::{KeyHash, KeyPeppers},
    keyformat::{self, ParsedKey},
    store::{Backend, KeyRecord, KeyStore},
};

/// How often cached keys are re-read on PostgreSQL (revocations arrive by `NOTIFY`).
pub const PG_REVALIDATE: Duration = Duration::from_secs(30);
/// How often cached keys are re-read on SQLite (no cross-process notification).
pub const SQLITE_REVALIDATE: Duration = Duration::from_millis(500);
/// How often the background task writes last-used times.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// A store call on the verify path gives up after this long (→ `StoreUnavailable`).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);
/// While the store is unreachable, a stale cached key is served again for this long.
const STALE_RETRY: Duration = Duration::from_secs(1);
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(100);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Limits on what a key may carry (names and subjects end up in logs and upstream headers).
const MAX_NAME: usize = 128;
const MAX_SUBJECT: usize = 256;
const MAX_TAG: usize = 64;
const MAX_TAGS: usize = 64;
/// Longest accepted lifetime or overlap (100 years), so time arithmetic cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// API keys: create, list, revoke, rotate and — on every request — verify.
///
/// Cloning is cheap (one `Arc`); all clones share the cache. See the module docs of
/// [`crate`] for the guarantees.
#[derive(Clone)]
pub struct KeyService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Backend,
    /// The runtime that opened the store. Its connections are registered with that
    /// runtime's reactor, so every read and write made on behalf of a request runs there:
    /// a request served on another runtime (a gateway worker) hands the query over, and
    /// no connection is ever driven by a runtime that may stop before the store does.
    runtime: tokio::runtime::Handle,
    /// Current first; replaced whole on reload.
    peppers: ArcSwap<KeyPeppers>,
    /// Ids whose re-hash under the current pepper is in flight (one at a time per key).
    upgrading: Mutex<HashSet<Arc<str>>>,
    rotation_overlap: Duration,
    revalidate_after: Duration,
    cache: KeyCache,
    /// Last-used times recorded by verify, not yet written.
    pending: Mutex<HashMap<Arc<str>, i64>>,
    /// Dropped with the service (or set by `close`): background work stops.
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService")
            .field("backend", &self.backend())
            .field("cached", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Unix seconds, rounded up, of `now_ms + d`: a lifetime is never shorter than asked.
fn ceil_secs(now_ms: i64, d: Duration) -> i64 {
    (now_ms.saturating_add(ms(d)) + 999).div_euclid(1000)
}

fn is_expired(expires_at: Option<i64>, now_ms: i64) -> bool {
    expires_at.is_some_and(|e| now_ms >= e.saturating_mul(1000))
}

fn state(expires_at: Option<i64>, revoked_at: Option<i64>, now_ms: i64) -> KeyState {
    if revoked_at.is_some() {
        KeyState::Revoked
    } else if is_expired(expires_at, now_ms) {
        KeyState::Expired
    } else {
        KeyState::Active
    }
}

fn info(
    r: &KeyRecord,
    now_ms: i64,
    pending_last_used: Option<i64>,
    peppers: &KeyPeppers,
) -> KeyInfo {
    KeyInfo {
        pepper: peppers.describe(r.pepper_id.as_deref()),
        id: r.id.clone(),
        name: r.name.clone(),
        subject: r.subject.clone(),
        roles: r.roles.clone(),
        scopes: r.scopes.clone(),
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
        last_used_at: r.last_used_at.max(pending_last_used),
        state: state(r.expires_at, r.revoked_at, now_ms),
    }
}

fn check_text(s: &str, max: usize, what: &'static str) -> Result<(), StoreError> {
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(StoreError::Invalid(what));
    }
    Ok(())
}

fn check_tags(tags: &[String], what: &'static str) -> Result<(), StoreError> {
    let ok = tags.len() <= MAX_TAGS
        && tags.iter().all(|t| {
            !t.is_empty()
                && t.len() <= MAX_TAG
                && t.bytes().all(|b| b.is_ascii_graphic() && b != b',')
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(what))
    }
}

fn validate(new: &NewKey) -> Result<(), StoreError> {
    check_text(
        &new.name,
        MAX_NAME,
        "name must be 1-128 characters, no control characters",
    )?;
    check_text(
        &new.subject,
        MAX_SUBJECT,
        "subject must be 1-256 characters, no control characters",
    )?;
    check_tags(
        &new.roles,
        "roles must be 1-64 printable ASCII characters each, no commas or spaces",
    )?;
    check_tags(
        &new.scopes,
        "scopes must be 1-64 printable ASCII characters each, no commas or spaces",
    )?;
    if let Some(d) = new.expires_in
        && (d.is_zero() || d > MAX_DURATION)
    {
        return Err(StoreError::Invalid(
            "expires_in must be between 1 s and 100 years",
        ));
    }
    Ok(())
}

impl KeyService {
    /// Opens the store at `url`, applying migrations.
    ///
    /// `url`: `sqlite://path/to/palisade.db` (the file and its directory are created on
    /// first use; WAL mode), `sqlite::memory:` (tests), or `postgres://…`. The peppers key
    /// the HMAC of every secret: new keys use the first, older ones verify keys made before
    /// a rotation (see [`KeyPeppers`]). `rotation_overlap` is the default for
    /// [`KeyService::rotate`].
    pub async fn open(
        url: &str,
        peppers: KeyPeppers,
        rotation_overlap: Duration,
    ) -> Result<KeyService, StoreError> {
        if rotation_overlap > MAX_DURATION {
            return Err(StoreError::Invalid(
                "rotation overlap is longer than 100 years",
            ));
        }
        let store = Backend::open(url).await?;
        let revalidate_after = match store {
            Backend::Sqlite(_) => SQLITE_REVALIDATE,
            Backend::Postgres(_) => PG_REVALIDATE,
        };
        Ok(KeyService {
            inner: Arc::new(Inner {
                store,
                runtime: tokio::runtime::Handle::current(),
                peppers: ArcSwap::from_pointee(peppers),
                upgrading: Mutex::new(HashSet::new()),
                rotation_overlap,
                revalidate_after,
                cache: KeyCache::new(),
                pending: Mutex::new(HashMap::new()),
                shutdown: watch::Sender::new(false),
            }),
        })
    }

    /// Replaces the pepper list (a config reload): new keys and upgrades use the new first
    /// pepper from now on. Clears the cache when the list changed (see the module docs).
    pub fn set_peppers(&self, peppers: KeyPeppers) {
        let old = self.inner.peppers.swap(Arc::new(peppers));
        if !old
            .fingerprints()
            .eq(self.inner.peppers.load().fingerprints())
        {
            self.inner.cache.clear();
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.inner.store.name()
    }

    /// Creates a key. The returned [`IssuedKey::key`] is the only copy of the full key.
    pub async fn create(&self, new: NewKey) -> Result<IssuedKey, StoreError> {
        validate(&new)?;
        let now_ms = unix_ms();
        let expires_at = new.expires_in.map(|d| ceil_secs(now_ms, d));
        self.issue(
            new.name,
            new.subject,
            new.roles,
            new.scopes,
            now_ms,
            expires_at,
            None,
        )
        .await
    }

    /// Generates a key and stores it (or, with `rotate_from`, rotates in one transaction).
    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &self,
        name: String,
        subject: String,
        roles: Vec<String>,
        scopes: Vec<String>,
        now_ms: i64,
        expires_at: Option<i64>,
        rotate_from: Option<(&str, i64)>,
    ) -> Result<IssuedKey, StoreError> {
        let generated = keyformat::generate_key()?;
        let peppers = self.inner.peppers.load();
        let current = peppers.current();
        let record = KeyRecord {
            hash: current.hash(&generated.id, generated.secret.expose_secret()),
            pepper_id: Some(current.fingerprint().to_owned()),
            id: generated.id,
            name,
            subject,
            roles,
            scopes,
            created_at: now_ms.div_euclid(1000),
            expires_at,
            revoked_at: None,
            last_used_at: None,
            rotated_from: rotate_from.map(|(old, _)| old.to_owned()),
        };
        match rotate_from {
            None => self.inner.store.insert(&record).await?,
            Some((old, old_expires_at)) => {
                let done = self.inner.store.rotate(old, old_expires_at, &record).await;
                // Whatever happened, re-read the old key before trusting it again.
                self.inner.cache.invalidate(old);
                if !done? {
                    return Err(StoreError::Revoked(old.to_owned()));
                }
            }
        }
        // Clears a negative-cache entry, should anyone have guessed the id.
        self.inner.cache.invalidate(&record.id);
        Ok(IssuedKey {
            info: info(&record, now_ms, None, &peppers),
            key: generated.full,
        })
    }

    /// Every key, newest first. Never includes a hash or a secret.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let records = self.inner.store.list().await?;
        let now_ms = unix_ms();
        let peppers = self.inner.peppers.load();
        let pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(records
            .iter()
            .map(|r| info(r, now_ms, pending.get(r.id.as_str()).copied(), &peppers))
            .collect())
    }

    /// One key by id.
    pub async fn get(&self, id: &str) -> Result<Option<KeyInfo>, StoreError> {
        if !keyformat::is_valid_id(id) {
            return Ok(None);
        }
        let record = self.inner.store.get(id).await?;
        let pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let peppers = self.inner.peppers.load();
        Ok(record.map(|r| info(&r, unix_ms(), pending.get(id).copied(), &peppers)))
    }

    /// Revokes a key; false if it is unknown or already revoked. This instance stops
    /// accepting it at once; on PostgreSQL every other instance is notified.
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        if !keyformat::is_valid_id(id) {
            return Ok(false);
        }
        let result = self
            .inner
            .store
            .revoke(id, unix_ms().div_euclid(1000))
            .await;
        // Evict even if the store call failed: re-reading is always safe.
        self.inner.cache.invalidate(id);
        result
    }

    /// Issues a new key with the same name, subject, roles, scopes and lifetime (counted
    /// from now), and lets the old key expire at `min(its expiry, now + overlap)` (rounded up
    /// to the second), so both work during the overlap. `overlap` defaults to the service's
    /// `rotation_overlap`. Fails if the old key is unknown or revoked.
    pub async fn rotate(
        &self,
        id: &str,
        overlap: Option<Duration>,
    ) -> Result<IssuedKey, StoreError> {
        let not_found = || StoreError::NotFound(keyformat::is_valid_id(id).then(|| id.to_owned()));
        if !keyformat::is_valid_id(id) {
            return Err(not_found());
        }
        let overlap = overlap.unwrap_or(self.inner.rotation_overlap);
        if overlap > MAX_DURATION {
            return Err(StoreError::Invalid(
                "rotation overlap is longer than 100 years",
            ));
        }
        let old = self.inner.store.get(id).await?.ok_or_else(not_found)?;
        if old.revoked_at.is_some() {
            return Err(StoreError::Revoked(old.id));
        }
        let now_ms = unix_ms();
        let now_s = now_ms.div_euclid(1000);
        let old_expires_at = ceil_secs(now_ms, overlap);
        // Same expiry policy: the new key lives as long as the old one was meant to.
        let expires_at = old.expires_at.map(|e| now_s + (e - old.created_at).max(1));
        self.issue(
            old.name,
            old.subject,
            old.roles,
            old.scopes,
            now_ms,
            expires_at,
            Some((id, old_expires_at)),
        )
        .await
    }

    /// Verifies a presented key. Never logs it; the caller logs [`KeyRejection::reason`]
    /// and, where useful, the key id.
    pub async fn verify(&self, presented: &str) -> Result<VerifiedKey, KeyRejection> {
        let parsed = ParsedKey::parse(presented).ok_or(KeyRejection::Malformed)?;
        let id = parsed.id;
        let inner = &*self.inner;
        let key = match inner.cache.lookup(id, Instant::now()) {
            Lookup::Fresh(key) => key,
            Lookup::Unknown => return Err(KeyRejection::UnknownKey),
            Lookup::Stale(stale) => match self.fetch(id).await {
                Ok(Some(key)) => key,
                Ok(None) => {
                    inner.cache.invalidate(id);
                    return Err(KeyRejection::UnknownKey);
                }
                Err(e) => {
                    tracing::warn!(key_id = id, error = %e, "key store unreachable; serving the cached key");
                    inner.cache.extend(id, STALE_RETRY);
                    stale
                }
            },
            Lookup::Miss => match self.fetch(id).await {
                Ok(Some(key)) => key,
                Ok(None) => return Err(KeyRejection::UnknownKey),
                Err(e) => {
                    tracing::warn!(key_id = id, error = %e, "key store unreachable");

                    return Err(KeyRejection::StoreUnavailable);
                }
            },
        };
        let peppers = inner.peppers.load();
        let secret = parsed.secret.expose_secret();
        let Some(pepper) = peppers.verify(id, secret, &key.hash, key.pepper_id.as_deref()) else {
            return Err(KeyRejection::WrongSecret);
        };
        if key.revoked_at.is_some() {
            return Err(KeyRejection::Revoked);
        }
        let now_ms = unix_ms();
        if is_expired(key.expires_at, now_ms) {
            return Err(KeyRejection::Expired);
        }
        if pepper != 0 || key.pepper_id.is_none() {
            // Only live keys are upgraded: the rest will never verify again anyway.
            let current = peppers.current();
            self.upgrade(&key, current.hash(id, secret), current.fingerprint());
        }
        inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.id.clone(), now_ms.div_euclid(1000));
        Ok(VerifiedKey {
            id: key.id.clone(),
            subject: key.subject.clone(),
            roles: key.roles.clone(),
            scopes: key.scopes.clone(),
        })
    }

    /// Re-hashes `key` under the current pepper (`new`, made with `pepper_id`) in the
    /// background, at most one attempt per key at a time. A failed attempt is logged and
    /// retried at the key's next use. Never blocks the request that triggered it.
    fn upgrade(&self, key: &Arc<CachedKey>, new: KeyHash, pepper_id: &str) {
        let inner = &*self.inner;
        {
            let mut upgrading = inner
                .upgrading
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !upgrading.insert(key.id.clone()) {
                return;
            }
        }
        let service = self.clone();
        let key = key.clone();
        let pepper_id = pepper_id.to_owned();
        inner.runtime.spawn(async move {
            let inner = &*service.inner;
            let write = inner.store.rehash(&key.id, &key.hash, &new, &pepper_id);
            match tokio::time::timeout(STORE_TIMEOUT, write).await {
                Ok(Ok(done)) => tracing::info!(
                    event = "key_rehashed",
                    key_id = &*key.id,
                    pepper = %pepper_id,
                    changed = done,
                    "key re-hashed under the current pepper"
                ),
                Ok(Err(e)) => {
                    tracing::warn!(key_id = &*key.id, error = %e, "could not re-hash a key under the current pepper; will retry at its next use");
                }
                Err(_) => tracing::warn!(
                    key_id = &*key.id,
                    "timed out re-hashing a key under the current pepper; will retry at its next use"
                ),
            }
            // Whatever happened, the next use reads the record as it now is.
            inner.cache.invalidate(&key.id);
            inner
                .upgrading
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key.id);
        });
    }

    /// Reads one key from the store and caches it (or remembers that it does not exist).
    async fn fetch(&self, id: &str) -> Result<Option<Arc<CachedKey>>, StoreError> {
        let inner = &*self.inner;
        let epoch = inner.cache.epoch();
        let service = self.clone();
        let owned_id = id.to_owned();
        let read = inner
            .runtime
            .spawn(async move { service.inner.store.get(&owned_id).await });
        let record = match tokio::time::timeout(STORE_TIMEOUT, read).await {
            Ok(Ok(record)) => record?,
            // The store's runtime is shutting down: as good as no answer.
            Ok(Err(_)) | Err(_) => return Err(StoreError::Timeout),
        };
        Ok(match record {
            Some(record) => {
                let key = Arc::new(CachedKey::from(record));
                inner
                    .cache
                    .insert(key.clone(), inner.revalidate_after, epoch);
                Some(key)
            }
            None => {
                inner.cache.remember_unknown(id, epoch);
                None
            }
        })
    }

    /// Writes the last-used times recorded since the previous flush, in one transaction.
    /// On failure they are kept for the next attempt.
    pub async fn flush_last_used(&self) -> Result<(), StoreError> {
        let batch: Vec<(Arc<str>, i64)> = {
            let mut pending = self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.inner.store.touch(&batch).await;
        if result.is_err() {
            let mut pending = self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (id, at) in batch {
                let slot = pending.entry(id).or_insert(at);
                *slot = (*slot).max(at);
            }
        }
        result
    }

    /// True while this instance's PostgreSQL `LISTEN` connection is up (always false on
    /// SQLite or before [`KeyService::spawn_background`]).
    pub fn is_listening(&self) -> bool {
        self.inner.cache.feed() == Feed::Connected
    }

    /// Flushes last-used times, stops background work and closes the connection pool.
    /// Afterwards cached keys still verify; everything else fails.
    pub async fn close(&self) {
        if let Err(e) = self.flush_last_used().await {
            tracing::warn!(error = %e, "could not write last-used times on close");
        }
        self.inner.shutdown.send_replace(true);
        self.inner.store.close().await;
    }

    /// Starts the background work and returns its handle (abort it, drop every clone of the
    /// service, or call [`KeyService::close`] to stop it). Must be called within a Tokio
    /// runtime.
    ///
    /// - PostgreSQL: `LISTEN palisade_keys`, evicting each notified id. On connection loss
    ///   the whole cache is cleared and bypassed until the connection is back (reconnect
    ///   with backoff from 100 ms to 5 s) — fail safe, at the price of one query per
    ///   request meanwhile.
    /// - Every second: re-read cached keys that are in use and about to need revalidation,
    ///   drop idle ones and expired negative entries.
    /// - Every 10 s: [`KeyService::flush_last_used`].
    pub fn spawn_background(&self) -> JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let shutdown = self.inner.shutdown.subscribe();
        let listen = self.inner.store.postgres().is_some();
        if listen && self.inner.cache.feed() != Feed::Connected {
            // Until LISTEN is up, revocations could be missed: do not trust the cache.
            self.inner.cache.set_feed(Feed::Down);
            self.inner.cache.clear();
        }
        tokio::spawn(async move {
            if listen {
                tokio::join!(
                    maintenance(weak.clone(), shutdown.clone()),
                    listen_loop(weak, shutdown)
                );
            } else {
                maintenance(weak, shutdown).await;
            }
        })
    }
}

/// Resolves when the service is closed or dropped.
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    // Err: the sender (the service) is gone.
    let _ = shutdown.wait_for(|closed| *closed).await;
}

async fn maintenance(weak: Weak<Inner>, shutdown: watch::Receiver<bool>) {
    let work = async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = Instant::now();
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            let service = KeyService { inner };
            let now = Instant::now();
            let revalidate = service.inner.revalidate_after;
            let due = service.inner.cache.sweep(now, revalidate / 2, revalidate);
            for id in due {
                if let Err(e) = service.fetch(&id).await {
                    tracing::debug!(key_id = &*id, error = %e, "background revalidation failed");
                    break;
                }
            }
            if last_flush.elapsed() >= FLUSH_INTERVAL {
                last_flush = Instant::now();
                if let Err(e) = service.flush_last_used().await {
                    tracing::warn!(error = %e, "could not write last-used times; will retry");
                }
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = stopped(shutdown) => {}
    }
}

async fn listen_loop(weak: Weak<Inner>, shutdown: watch::Receiver<bool>) {
    let work = async {
        let mut backoff = LISTEN_BACKOFF_MIN;
        loop {
            let Some(inner) = weak.upgrade() else { return };
            let Some(pg) = inner.store.postgres() else {
                return;
            };
            let connected = tokio::time::timeout(LISTEN_BACKOFF_MAX, pg.listener()).await;
            match connected {
                Ok(Ok(mut listener)) => {
                    // Anything may have changed while we were not listening.
                    inner.cache.clear();
                    inner.cache.set_feed(Feed::Connected);
                    backoff = LISTEN_BACKOFF_MIN;
                    tracing::info!("listening for key revocations");
                    drop(inner);
                    loop {
                        let message = listener.try_recv().await;
                        let Some(inner) = weak.upgrade() else { return };
                        match message {
                            Ok(Some(notification)) => {
                                let id = notification.payload();
                                if keyformat::is_valid_id(id) {
                                    inner.cache.invalidate(id);
                                } else {
                                    inner.cache.clear();
                                }
                            }
                            Ok(None) | Err(_) => {
                                inner.cache.set_feed(Feed::Down);
                                tracing::warn!(
                                    "lost the key revocation feed; every key is read again before use until it is back"
                                );
                                break;
                            }
                        }
                    }
                }
                Ok(Err(e)) => {
                    inner.cache.set_feed(Feed::Down);
                    drop(inner);
                    tracing::warn!(error = %e, "cannot listen for key revocations; retrying");
                }
                Err(_) => {
                    inner.cache.set_feed(Feed::Down);
                    drop(inner);
                    tracing::warn!("timed out connecting the key revocation feed; retrying");
                }
            }
            // No strong reference is held while waiting: dropping the service ends the task.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
        }
    };
    tokio::select! {
        () = work => {}
        () = stopped(shutdown) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_round_up_to_the_second() {
        assert_eq!(ceil_secs(10_000, Duration::from_secs(1)), 11);
        assert_eq!(ceil_secs(10_001, Duration::from_secs(1)), 12);
        assert_eq!(ceil_secs(10_999, Duration::ZERO), 11);
        assert!(!is_expired(Some(11), 10_999));
        assert!(is_expired(Some(11), 11_000));
        assert!(!is_expired(None, i64::MAX));
    }

    #[test]
    fn validation() {
        let ok = NewKey {
            name: "ci".into(),
            subject: "svc".into(),
            roles: vec!["admin".into()],
            scopes: vec!["orders:read".into()],
            expires_in: None,
        };
        assert!(validate(&ok).is_ok());
        for bad in [
            NewKey {
                name: String::new(),
                ..ok.clone()
            },
            NewKey {
                subject: "a\nb".into(),
                ..ok.clone()
            },
            NewKey {
                roles: vec!["a,b".into()],
                ..ok.clone()
            },
            NewKey {
                scopes: vec!["a b".into()],
                ..ok.clone()
            },
            NewKey {
                scopes: vec![String::new()],
                ..ok.clone()
            },
            NewKey {
                expires_in: Some(Duration::ZERO),
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(validate(&bad), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
