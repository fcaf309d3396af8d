//! The in-memory store for rate-limit state: sharded, lock-light and bounded.
//!
//! Each key's state is one `u64` (its GCRA TAT). Keys are spread over 64 shards by a
//! per-process random hash (so nobody can aim every key at one lock), each a `Mutex` over
//! a `HashMap`. A request's checks lock the shards they need in ascending order (no
//! deadlock) and are decided all-or-nothing.
//!
//! Bound: at most `max_keys` keys (each shard holds `max_keys / 64`, rounded up). A key
//! whose TAT has passed holds no information (it decides exactly like a key never seen),
//! so a full shard first drops those; only when every key in it is still constrained does
//! it drop the least constrained eighth (smallest TATs), which is the one place where the
//! bound can cost accuracy. Memory is about `max_keys × (key length + ~50 bytes)` of map
//! entries and boxed keys (`approx_bytes` reports it).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::quota::gcra::{Decision, Quota, decide};

const SHARDS: usize = 64;

/// A monotonic clock in nanoseconds.
pub trait Clock: Send + Sync {
    fn now_ns(&self) -> u64;
}

/// The process's monotonic clock.
pub(crate) struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock(Instant::now())
    }
}

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

type Shard = HashMap<Box<str>, u64>;

/// What a check commits when it admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Consumes one request, only if every `Take` and `Peek` check of the call admits: a
    /// refused request costs nothing anywhere.
    Take,
    /// Consumes nothing: asks whether a request would be admitted (is a lockout in force?).
    Peek,
    /// Consumes one, on its own, whatever the other checks decide (records a failure).
    Charge,
    /// Gives one back, if the key has state (an attempt charged in advance that did not
    /// fail). Its decision is meaningless.
    Refund,
}

/// One key's check within a call.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub key: &'a str,
    pub quota: Quota,
    pub op: Op,
}

impl<'a> Check<'a> {
    pub fn take(key: &'a str, quota: Quota) -> Self {
        Check {
            key,
            quota,
            op: Op::Take,
        }
    }
}

pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    pub fn new(max_keys: usize) -> Self {
        Self::with_clock(max_keys, Arc::new(SystemClock::default()))
    }

    pub fn with_clock(max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            clock,
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding a shard leaves plain numbers behind: still usable.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides every check of one request at once (see [`Op`] for what each one commits).
    /// Decisions come back in the order of `checks`.
    pub fn check_all(&self, checks: &[Check<'_>]) -> Vec<Decision> {
        let now = self.clock.now_ns();
        let indexes: Vec<usize> = checks.iter().map(|c| self.shard_of(c.key)).collect();
        let mut order = indexes.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> =
            order.into_iter().map(|i| (i, self.lock(i))).collect();
        let guard_of = |guards: &mut Vec<(usize, MutexGuard<'_, Shard>)>, index: usize| {
            guards.iter().position(|(i, _)| *i == index).unwrap_or(0)
        };

        let mut outcomes = Vec::with_capacity(checks.len());
        for (check, &index) in checks.iter().zip(&indexes) {
            let g = guard_of(&mut guards, index);
            let tat = guards[g].1.get(check.key).copied();
            outcomes.push(decide(tat, now, &check.quota));
        }
        let all_admit = checks.iter().zip(&outcomes).all(|(check, (_, new_tat))| {
            matches!(check.op, Op::Charge | Op::Refund) || new_tat.is_some()
        });
        for ((check, &index), (_, new_tat)) in checks.iter().zip(&indexes).zip(&outcomes) {
            if check.op == Op::Refund {
                let g = guard_of(&mut guards, index);
                if let Some(tat) = guards[g].1.get_mut(check.key) {
                    *tat = tat
                        .saturating_sub(check.quota.emission_interval_ns())
                        .max(now);
                }
                continue;
            }
            let commit = match check.op {
                Op::Take => all_admit,
                Op::Peek | Op::Refund => false,
                Op::Charge => true,
            };
            let Some(new_tat) = new_tat.filter(|_| commit) else {
                continue;
            };
            let g = guard_of(&mut guards, index);
            let shard = &mut guards[g].1;
            if let Some(tat) = shard.get_mut(check.key) {
                *tat = new_tat;
            } else {
                make_room(shard, self.per_shard, now);
                shard.insert(check.key.into(), new_tat);
            }
        }
        outcomes.into_iter().map(|(decision, _)| decision).collect()
    }

    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.lock(i).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes held: map slots (key pointer, length, TAT, control byte) and keys.
    pub fn approx_bytes(&self) -> usize {
        (0..SHARDS)
            .map(|i| {
                let shard = self.lock(i);
                shard.capacity() * (size_of::<(Box<str>, u64)>() + 1)
                    + shard.keys().map(|k| k.len()).sum::<usize>()
            })
            .sum()
    }
}

/// Frees a slot in a full shard: first every key whose TAT has passed (it holds no state),
/// then, if all are still constrained, the least constrained eighth at once (so a flood
/// of new keys pays for eviction once per many inserts, not on every one).
fn make_room(shard: &mut Shard, capacity: usize, now: u64) {
    if shard.len() < capacity {
        return;
    }
    shard.retain(|_, tat| *tat > now);
    if shard.len() < capacity {
        return;
    }
    let mut tats: Vec<u64> = shard.values().copied().collect();
    let cut = (capacity / 8).max(1).min(tats.len() - 1);
    let (_, threshold, _) = tats.select_nth_unstable(cut);
    let threshold = *threshold;
    let mut to_drop = cut + 1;
    shard.retain(|_, tat| {
        if to_drop > 0 && *tat <= threshold {
            to_drop -= 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// A clock that moves only when told.
    #[derive(Default)]
    struct ManualClock(AtomicU64);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            self.0.fetch_add(by, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now_ns(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn store(max_keys: usize) -> (MemoryStore, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (MemoryStore::with_clock(max_keys, clock.clone()), clock)
    }

    fn allowed(decisions: &[Decision]) -> Vec<bool> {
        decisions
            .iter()
            .map(|d| matches!(d, Decision::Allow { .. }))
            .collect()
    }

    #[test]
    fn all_or_nothing_across_keys() {
        let (store, _) = store(1000);
        let tight = Quota::new(1, Duration::from_secs(60), None).unwrap();
        let loose = Quota::new(100, Duration::from_secs(60), None).unwrap();
        assert_eq!(
            allowed(&store.check_all(&[Check::take("a", loose), Check::take("b", tight)])),
            [true, true]
        );
        // `b` refuses, so `a` must not be charged for this attempt.
        assert_eq!(
            allowed(&store.check_all(&[Check::take("a", loose), Check::take("b", tight)])),
            [true, false]
        );
        let Decision::Allow { remaining, .. } = store.check_all(&[Check::take("a", loose)])[0]
        else {
            panic!("a is far from its limit");
        };
        assert_eq!(remaining, 98, "only the two admitted requests were counted");
    }

    #[test]
    fn peek_consumes_nothing_and_charge_ignores_the_others() {
        let (store, _) = store(1000);
        let two = Quota::new(2, Duration::from_secs(60), None).unwrap();
        let peek = |key| Check {
            key,
            quota: two,
            op: Op::Peek,
        };
        let charge = |key| Check {
            key,
            quota: two,
            op: Op::Charge,
        };
        for _ in 0..5 {
            assert_eq!(allowed(&store.check_all(&[peek("locked")])), [true]);
        }
        store.check_all(&[charge("locked")]);
        store.check_all(&[charge("locked")]);
        assert_eq!(allowed(&store.check_all(&[peek("locked")])), [false]);
        // The refusing peek stops the take of its call; the charge commits regardless.
        assert_eq!(
            allowed(&store.check_all(&[charge("other"), Check::take("t", two), peek("locked")])),
            [true, true, false]
        );
        let Decision::Allow { remaining, .. } = store.check_all(&[Check::take("t", two)])[0] else {
            panic!("t was never charged");
        };
        assert_eq!(remaining, 1);
        store.check_all(&[charge("other")]);
        assert_eq!(allowed(&store.check_all(&[peek("other")])), [false]);
    }

    #[test]
    fn concurrent_hammering_admits_exactly_the_limit() {
        let (store, _) = store(1000);
        let store = Arc::new(store);
        let quota = Quota::new(50, Duration::from_secs(60), None).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| {
                            matches!(
                                store.check_all(&[Check::take("k", quota)])[0],
                                Decision::Allow { .. }
                            )
                        })
                        .count()
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 50);
    }

    #[test]
    fn idle_keys_are_evicted_first() {
        let (store, clock) = store(64 * 8); // eight slots per shard
        let short = Quota::new(1, Duration::from_secs(1), None).unwrap();
        let long = Quota::new(1, Duration::from_secs(3600), None).unwrap();
        let refuses = |key| {
            matches!(
                store.check_all(&[Check::take(key, long)])[0],
                Decision::Deny { .. }
            )
        };
        // One key constrained for an hour, among a flood whose state decays in a second.
        store.check_all(&[Check::take("keep", long)]);
        for i in 0..1000 {
            store.check_all(&[Check::take(&format!("old-{i}"), short)]);
        }
        assert!(
            refuses("keep"),
            "a full shard first drops the least constrained"
        );
        clock.advance(Duration::from_secs(2));
        // Every shard is full of decayed keys, then of new ones constrained for a second.
        for i in 0..1000 {
            store.check_all(&[Check::take(&format!("new-{i}"), short)]);
        }
        assert!(store.len() <= 64 * 8);
        assert!(
            refuses("keep"),
            "the constrained key outlived the decayed and the less constrained ones"
        );
    }

    #[test]
    fn a_million_distinct_keys_stay_within_the_bound() {
        let (store, _) = store(100_000);
        let quota = Quota::new(10, Duration::from_secs(3600), None).unwrap();
        let started = Instant::now();
        for i in 0..1_000_000u32 {
            store.check_all(&[Check::take(&format!("ip|{i}"), quota)]);
        }
        let len = store.len();
        assert!(len <= 100_000 + SHARDS, "{len} keys");
        let bytes = store.approx_bytes();
        // ~100k keys × (slot + short key): comfortably under 16 MiB.
        assert!(bytes < 16 << 20, "{bytes} bytes");
        eprintln!(
            "1M keys: {len} kept, ~{} KiB, {:?}",
            bytes >> 10,
            started.elapsed()
        );
    }
}
