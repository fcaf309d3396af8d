//! The in-memory verify cache.
//!
//! - **Positive cache**: id → the record's verify-relevant fields, including the hash, so a
//!   known key is verified with no database round trip. An entry is *fresh* for the
//!   revalidation interval after it was read; a stale entry is re-read before use (or by the
//!   background task, ahead of time, for keys in use). Its size is bounded by the number of
//!   keys in the store (only ids found in the store are cached); entries not used for
//!   [`IDLE_EVICT`] are dropped by the background task.
//! - **Negative cache**: ids the store does not know, for [`NEGATIVE_TTL`], at most
//!   [`NEGATIVE_MAX`] of them, so random ids cannot make every request a database query.
//!   When full, expired entries are purged; if it is still full, new unknown ids are not
//!   remembered (memory stays bounded; the pre-auth rate limit bounds the rest).
//! - **Epoch**: every invalidation bumps a counter under the write lock, and a record read
//!   from the store is only inserted if no invalidation happened since the read began. So a
//!   read racing with a revocation can never put the pre-revocation record back.
//! - **Feed** (PostgreSQL with the background task): while the `LISTEN` connection is down,
//!   notifications may be missed, so no entry is trusted as fresh: every verify reads the
//!   store first (and caches what it read, still stale); on reconnection the cache is
//!   cleared. Only when that read fails (the database itself is down, so nothing can be
//!   revoked in it either) is the cached record used, as long as it was confirmed by the
//!   store within [`STALE_MAX`]; a key never seen, or seen too long ago, fails closed.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, RwLock,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{hashing::KeyHash, store::KeyRecord};

/// How long an unknown id is remembered.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(1);
/// At most this many unknown ids are remembered.
pub const NEGATIVE_MAX: usize = 10_000;
/// Cached keys not used for this long are dropped.
pub const IDLE_EVICT: Duration = Duration::from_secs(600);
/// While the store cannot be read, a cached key is still accepted if the store confirmed it
/// this recently (keys in use are re-read well within it). Past it, the key fails closed: a
/// revocation this instance could not see is not honoured past this bound.
pub const STALE_MAX: Duration = Duration::from_secs(900);

/// What verify needs from a record, shared cheaply with callers.
#[derive(Debug)]
pub(crate) struct CachedKey {
    pub(crate) id: Arc<str>,
    pub(crate) hash: KeyHash,
    pub(crate) subject: Arc<str>,
    pub(crate) roles: Arc<[String]>,
    pub(crate) scopes: Arc<[String]>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
    /// Fingerprint of the pepper that made `hash`, as stored.
    pub(crate) pepper_id: Option<Box<str>>,
}

impl From<KeyRecord> for CachedKey {
    fn from(r: KeyRecord) -> CachedKey {
        CachedKey {
            id: r.id.into(),
            hash: r.hash,
            subject: r.subject.into(),
            roles: r.roles.into(),
            scopes: r.scopes.into(),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            pepper_id: r.pepper_id.map(Into::into),
        }
    }
}

struct Entry {
    key: Arc<CachedKey>,
    fresh_until: Instant,
    /// When the store last returned this record.
    confirmed: Instant,
    /// Milliseconds since `KeyCache::base` of the last lookup.
    last_hit: AtomicU64,
}

/// The state of the revocation feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Feed {
    /// No feed (SQLite, or PostgreSQL without the background task): revalidation only.
    None = 0,
    /// `LISTEN` is connected: cached entries are evicted as keys change.
    Connected = 1,
    /// The feed is expected but down: the cache is bypassed.
    Down = 2,
}

pub(crate) enum Lookup {
    Fresh(Arc<CachedKey>),
    Stale(Arc<CachedKey>),
    /// A recent store lookup found no such id.
    Unknown,
    Miss,
}

pub(crate) struct KeyCache {
    entries: RwLock<HashMap<Arc<str>, Entry>>,
    negative: Mutex<HashMap<Box<str>, Instant>>,
    epoch: AtomicU64,
    feed: AtomicU8,
    base: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeyCache {
    pub(crate) fn new() -> KeyCache {
        KeyCache {
            entries: RwLock::new(HashMap::new()),
            negative: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            feed: AtomicU8::new(Feed::None as u8),
            base: Instant::now(),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn feed(&self) -> Feed {
        match self.feed.load(Ordering::Acquire) {
            1 => Feed::Connected,
            2 => Feed::Down,
            _ => Feed::None,
        }
    }

    pub(crate) fn set_feed(&self, feed: Feed) {
        self.feed.store(feed as u8, Ordering::Release);
        if feed == Feed::Down {
            // Kept for a database outage, but re-read before any use.
            let now = Instant::now();
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            for entry in entries.values_mut() {
                entry.fresh_until = now;
            }
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn lookup(&self, id: &str, now: Instant) -> Lookup {
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = entries.get(id) {
                e.last_hit.store(self.millis(now), Ordering::Relaxed);
                if now < e.fresh_until {
                    return Lookup::Fresh(e.key.clone());
                }
                // Past STALE_MAX it is no fallback: read it as if unknown.
                if now.saturating_duration_since(e.confirmed) < STALE_MAX {
                    return Lookup::Stale(e.key.clone());
                }
            }
        }
        let negative = lock(&self.negative);
        match negative.get(id) {
            Some(&until) if now < until => Lookup::Unknown,
            _ => Lookup::Miss,
        }
    }

    /// Caches `key` as read from the store when `epoch` was current; refused if anything
    /// was invalidated since. While the feed is down it is cached stale (re-read at each
    /// use, kept only as the fallback for a store outage).
    pub(crate) fn insert(&self, key: Arc<CachedKey>, fresh_for: Duration, epoch: u64) -> bool {
        let fresh_for = if self.feed() == Feed::Down {
            Duration::ZERO
        } else {
            fresh_for
        };
        let now = Instant::now();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if self.epoch.load(Ordering::Acquire) != epoch {
            return false;
        }
        let last_hit = entries
            .get(&*key.id)
            .map_or_else(|| self.millis(now), |e| e.last_hit.load(Ordering::Relaxed));
        entries.insert(
            key.id.clone(),
            Entry {
                key,
                fresh_until: now + fresh_for,
                confirmed: now,
                last_hit: AtomicU64::new(last_hit),
            },
        );
        true
    }

    /// Keeps serving a stale entry for `for_` more (the store could not be reached).
    pub(crate) fn extend(&self, id: &str, for_: Duration) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.get_mut(id) {
            e.fresh_until = Instant::now() + for_;
        }
    }

    /// Remembers that the store had no key `id` (when `epoch` was current).
    pub(crate) fn remember_unknown(&self, id: &str, epoch: u64) {
        let now = Instant::now();
        let mut negative = lock(&self.negative);
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if negative.len() >= NEGATIVE_MAX {
            negative.retain(|_, until| *until > now);
            if negative.len() >= NEGATIVE_MAX {
                return;
            }
        }
        negative.insert(id.into(), now + NEGATIVE_TTL);
    }

    /// Forgets everything about `id` (positive and negative); in-flight reads will not
    /// re-insert what they read before this.
    pub(crate) fn invalidate(&self, id: &str) {
        {
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            self.epoch.fetch_add(1, Ordering::AcqRel);
            entries.remove(id);
        }
        lock(&self.negative).remove(id);
    }

    /// Forgets every cached key.
    pub(crate) fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Background housekeeping: drops expired negative entries and idle positive ones, and
    /// returns the ids worth re-reading now (used within `recent`, fresh for less than
    /// `ahead` more).
    pub(crate) fn sweep(&self, now: Instant, ahead: Duration, recent: Duration) -> Vec<Arc<str>> {
        lock(&self.negative).retain(|_, until| *until > now);
        let now_ms = self.millis(now);
        let idle_ms = u64::try_from(IDLE_EVICT.as_millis()).unwrap_or(u64::MAX);
        let recent_ms = u64::try_from(recent.as_millis()).unwrap_or(u64::MAX);
        let mut due = Vec::new();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|id, e| {
            let idle = now_ms.saturating_sub(e.last_hit.load(Ordering::Relaxed));
            if idle > idle_ms {
                return false;
            }
            if idle <= recent_ms && e.fresh_until <= now + ahead {
                due.push(id.clone());
            }
            true
        });
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> Arc<CachedKey> {
        Arc::new(CachedKey {
            id: id.into(),
            hash: KeyHash([0; 32]),
            subject: "s".into(),
            roles: Vec::new().into(),
            scopes: Vec::new().into(),
            expires_at: None,
            revoked_at: None,
            pepper_id: None,
        })
    }

    #[test]
    fn a_read_racing_an_invalidation_is_not_cached() {
        let c = KeyCache::new();
        let epoch = c.epoch();
        c.invalidate("AAAAAAAAAAAA"); // e.g. a revoke lands while the read is in flight
        assert!(!c.insert(key("AAAAAAAAAAAA"), Duration::from_secs(30), epoch));
        assert!(matches!(
            c.lookup("AAAAAAAAAAAA", Instant::now()),
            Lookup::Miss
        ));
        assert!(c.insert(key("AAAAAAAAAAAA"), Duration::from_secs(30), c.epoch()));
        assert!(matches!(
            c.lookup("AAAAAAAAAAAA", Instant::now()),
            Lookup::Fresh(_)
        ));
    }

    #[test]
    fn stale_and_negative_entries() {
        let c = KeyCache::new();
        assert!(c.insert(key("AAAAAAAAAAAA"), Duration::ZERO, c.epoch()));
        assert!(matches!(
            c.lookup("AAAAAAAAAAAA", Instant::now()),
            Lookup::Stale(_)
        ));
        c.remember_unknown("BBBBBBBBBBBB", c.epoch());
        assert!(matches!(
            c.lookup("BBBBBBBBBBBB", Instant::now()),
            Lookup::Unknown
        ));
        let later = Instant::now() + NEGATIVE_TTL + Duration::from_millis(1);
        assert!(matches!(c.lookup("BBBBBBBBBBBB", later), Lookup::Miss));
    }

    #[test]
    fn negative_cache_is_bounded() {
        let c = KeyCache::new();
        for i in 0..NEGATIVE_MAX + 100 {
            c.remember_unknown(&format!("{i:012}"), c.epoch());
        }
        assert_eq!(lock(&c.negative).len(), NEGATIVE_MAX);
    }

    #[test]
    fn feed_down_makes_every_entry_stale_so_it_is_read_again_first() {
        let c = KeyCache::new();
        assert!(c.insert(key("AAAAAAAAAAAA"), Duration::from_secs(30), c.epoch()));
        c.set_feed(Feed::Down);
        assert!(matches!(
            c.lookup("AAAAAAAAAAAA", Instant::now()),
            Lookup::Stale(_)
        ));
        // What is read meanwhile is cached, stale too.
        assert!(c.insert(key("AAAAAAAAAAAA"), Duration::from_secs(30), c.epoch()));
        assert!(matches!(
            c.lookup("AAAAAAAAAAAA", Instant::now()),
            Lookup::Stale(_)
        ));
        c.set_feed(Feed::Connected);
        assert!(c.insert(key("AAAAAAAAAAAA"), Duration::from_secs(30), c.epoch()));
        assert!(matches!(
            c.lookup("AAAAAAAAAAAA", Instant::now()),
            Lookup::Fresh(_)
        ));
    }

    #[test]
    fn an_entry_not_confirmed_within_stale_max_is_no_fallback() {
        let c = KeyCache::new();
        assert!(c.insert(key("AAAAAAAAAAAA"), Duration::ZERO, c.epoch()));
        let later = Instant::now() + STALE_MAX + Duration::from_secs(1);
        assert!(matches!(c.lookup("AAAAAAAAAAAA", later), Lookup::Miss));
    }
}
