//! Tests of the Redis store against real servers and clusters: decisions like the memory
//! store's, all-or-nothing calls, failure and recovery, clock offsets and deadlines,
//! cluster key placement, and the pure helpers.

use super::keys::{CLUSTER_TAG, bucket_key, cluster_key};
use super::script::parse_answer;
use super::*;
use crate::quota::gcra::Quota;
use crate::ratelimit::memory::MemoryStore;
use crate::ratelimit::memory::Op;
use palisade_testkit::{RedisCluster, RedisServer};

const TIMEOUT: Duration = Duration::from_secs(2);

fn admitted(decisions: &[Decision]) -> Vec<bool> {
    (decisions.iter())
        .map(|d| matches!(d, Decision::Allow { .. }))
        .collect()
}

/// The script and the memory store decide a burst identically: same admissions, same
/// `remaining`, the same retry time to within Redis's microsecond clock.
#[tokio::test]
async fn the_script_decides_like_the_memory_store() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).unwrap();
    let memory = MemoryStore::new(1000);
    let quota = Quota::new(5, Duration::from_secs(3600), None).unwrap();
    for i in 0..7 {
        let shared = store
            .check_all(&[Check::take("burst", quota)], TIMEOUT)
            .await
            .unwrap();
        let local = memory.check_all(&[Check::take("burst", quota)]);
        match (shared[0], local[0]) {
            (Decision::Allow { remaining: a, .. }, Decision::Allow { remaining: b, .. }) => {
                assert_eq!(a, b, "request {i}")
            }
            (Decision::Deny { retry_after: a, .. }, Decision::Deny { retry_after: b, .. }) => {
                // One request per 720 s: the next is due in just under 720 s.
                assert!(a.abs_diff(b) < Duration::from_secs(1), "{a:?} vs {b:?}");
                assert!(a > Duration::from_secs(715) && a <= Duration::from_secs(720));
            }
            other => panic!("request {i}: the stores disagree: {other:?}"),
        }
    }
    let keys = redis.keys("palisade:rl:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl = redis.ttl_ms(&keys[0]);
    assert!(
        ttl > 0 && ttl <= 3_600_001,
        "the key expires by itself: {ttl}"
    );
}

#[tokio::test]
async fn takes_are_all_or_nothing_peeks_free_and_charges_independent() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).unwrap();
    let two = Quota::new(2, Duration::from_secs(60), None).unwrap();
    let check = |key, op| Check {
        key,
        quota: two,
        op,
    };
    let call = |checks: Vec<Check<'static>>| {
        let store = store.clone();
        async move { admitted(&store.check_all(&checks, TIMEOUT).await.unwrap()) }
    };
    assert_eq!(call(vec![check("lock", Op::Peek)]).await, [true]);
    assert_eq!(call(vec![check("lock", Op::Charge)]).await, [true]);
    assert_eq!(call(vec![check("lock", Op::Charge)]).await, [true]);
    assert_eq!(call(vec![check("lock", Op::Peek)]).await, [false]);
    // The refusing peek blocks the take (not committed); the charge commits.
    assert_eq!(
        call(vec![
            check("other", Op::Charge),
            check("take", Op::Take),
            check("lock", Op::Peek)
        ])
        .await,
        [true, true, false]
    );
    let Decision::Allow { remaining, .. } = store
        .check_all(&[check("take", Op::Take)], TIMEOUT)
        .await
        .unwrap()[0]
    else {
        panic!("`take` was never consumed");
    };
    assert_eq!(remaining, 1);
    assert_eq!(call(vec![check("other", Op::Charge)]).await, [true]);
    assert_eq!(call(vec![check("other", Op::Peek)]).await, [false]);
    // Peeks wrote nothing: exactly three buckets exist.
    assert_eq!(redis.keys("palisade:rl:*").len(), 3);
}

#[tokio::test]
async fn a_dead_store_fails_fast_rests_and_recovers() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).unwrap();
    let quota = Quota::new(10, Duration::from_secs(60), None).unwrap();
    let take = [Check::take("k", quota)];
    assert!(store.check_all(&take, TIMEOUT).await.is_ok());
    redis.stop();
    let error = store.check_all(&take, TIMEOUT).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Failed(_) | StoreError::Timeout),
        "{error:?}"
    );
    assert_eq!(
        store.check_all(&take, TIMEOUT).await.unwrap_err(),
        StoreError::Resting,
        "right after a failure the store is not tried"
    );
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(RETRY_INTERVAL).await;
        match store.check_all(&take, TIMEOUT).await {
            Ok(decisions) => {
                assert_eq!(admitted(&decisions), [true]);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e:?}"),
        }
    }
    assert_eq!(redis.keys("palisade:rl:*").len(), 1);
}

/// A wrong offset (10 s too small: the deadline placed 10 s early on Redis's clock, as
/// a worker stalled after a reply would make it) makes the script answer "expired"
/// within the budget: the store re-learns the offset from that answer and retries, the
/// call is decided, and the store does not rest.
#[tokio::test]
async fn an_expired_answer_within_the_budget_relearns_the_offset_and_retries() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).unwrap();
    let quota = Quota::new(10, Duration::from_secs(3600), None).unwrap();
    let take = [Check::take("skewed", quota)];
    assert!(store.check_all(&take, TIMEOUT).await.is_ok());
    let learned = store.offsets();
    assert_eq!(learned.len(), 1, "{learned:?}");
    store.skew_offsets(-10_000_000);
    let decisions = store.check_all(&take, TIMEOUT).await.unwrap();
    let Decision::Allow { remaining, .. } = decisions[0] else {
        panic!("{decisions:?}");
    };
    assert_eq!(
        remaining, 8,
        "charged once: the expired attempt wrote nothing"
    );
    let relearned = store.offsets()[0];
    assert!(
        relearned.abs_diff(learned[0]) < 1_000_000,
        "{relearned} vs {}",
        learned[0]
    );
    assert!(!store.health.failing.load(Ordering::Relaxed));
    assert_eq!(store.health.resting_until_ms.load(Ordering::Relaxed), 0);
    assert!(store.check_all(&take, TIMEOUT).await.is_ok(), "not resting");
}

/// Samples: a long round trip (a worker stalled after the reply arrived) does not move
/// the offset; a short one does; once the offset is old, any in-time sample does.
#[test]
fn the_offset_comes_from_the_shortest_round_trips() {
    let mut clock = ClockSync::UNKNOWN;
    // Redis is 5 000 µs ahead; a 200 µs round trip.
    clock.sample(5_100 + 1_000, 1_000, 1_200, 50_000);
    assert_eq!(clock.offset, 5_000);
    // Stalled 40 ms after the reply: received late, the midpoint 20 ms late.
    clock.sample(5_100 + 2_000, 2_000, 42_200, 50_000);
    assert_eq!(clock.offset, 5_000, "a stalled sample is ignored");
    // Over the timeout: ignored even when the offset is old.
    clock.sample(20_000_000, 19_000_000, 19_060_000, 50_000);
    assert_eq!(clock.offset, 5_000);
    // A short one (Redis drifted by 30 µs): taken.
    clock.sample(5_130 + 3_000 + 150, 3_000, 3_300, 50_000);
    assert_eq!(clock.offset, 5_130);
    // 10 s later a slower but in-time sample replaces it.
    clock.sample(5_200 + 20_000_000 + 5_000, 20_000_000, 20_010_000, 50_000);
    assert_eq!(clock.offset, 5_200);
    assert_eq!(clock.rtt, 10_000);
}

/// A call the gateway gave up on, queued in a stalled Redis, writes nothing when Redis
/// runs it later: the script is past its deadline on Redis's clock.
#[tokio::test]
async fn a_call_that_timed_out_is_not_charged_when_redis_runs_it_later() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).unwrap();
    let quota = Quota::new(10, Duration::from_secs(3600), None).unwrap();
    let take = [Check::take("late", quota)];
    let remaining = |d: &[Decision]| match d[0] {
        Decision::Allow { remaining, .. } => remaining,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        remaining(&store.check_all(&take, TIMEOUT).await.unwrap()),
        9
    );
    redis.pause();
    let started = Instant::now();
    for _ in 0..3 {
        // `call` ignores the rest after a failure, so every script reaches the socket.
        let error = store.call(&take, Duration::from_millis(50)).await;
        assert_eq!(error, Err(StoreError::Timeout));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    // Long enough that the queued scripts run well past their deadlines.
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    let decisions = loop {
        match store.call(&take, TIMEOUT).await {
            Ok(decisions) => break decisions,
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        remaining(&decisions),
        8,
        "only the answered calls were charged"
    );
}

/// Pointed at one node of a 3-primary cluster, the store detects the cluster, keeps
/// every key in the one slot of `{palisade}` (on the node owning it, whichever node the
/// URL names), and decides all-or-nothing across keys exactly as with one server.
#[tokio::test]
async fn a_cluster_keeps_every_key_in_one_slot_and_decides_atomically() {
    let cluster = RedisCluster::start(3);
    let owner = cluster.owner_of(CLUSTER_TAG);
    // Seed with a node that does NOT own the slot: the client must follow the map.
    let seed = (cluster.nodes().iter())
        .find(|n| n.port() != owner.port())
        .unwrap();
    let store = RedisStore::connect(&seed.url()).unwrap();
    assert_eq!(store.check_supported(TIMEOUT).await, Ok(()));
    assert!(store.is_cluster(), "INFO cluster was not detected at load");
    let two = Quota::new(2, Duration::from_secs(60), None).unwrap();
    let take = |key| Check::take(key, two);
    let peek = |key| Check {
        key,
        quota: two,
        op: Op::Peek,
    };
    for _ in 0..2 {
        let d = store
            .check_all(&[take("a"), take("b")], TIMEOUT)
            .await
            .unwrap();
        assert_eq!(admitted(&d), [true, true]);
    }
    // `a` is exhausted: a call taking `a` and `c` admits neither (nothing written).
    let d = store
        .check_all(&[take("c"), take("a")], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(admitted(&d), [true, false]);
    let d = store.check_all(&[peek("c")], TIMEOUT).await.unwrap();
    let Decision::Allow { remaining, .. } = d[0] else {
        panic!("{d:?}");
    };
    assert_eq!(remaining, 1, "the refused call charged `c`");
    let keys = cluster.keys_by_node("palisade:rl:*");
    for (node, keys) in cluster.nodes().iter().zip(&keys) {
        if node.port() == owner.port() {
            assert_eq!(keys.len(), 2, "{keys:?}");
            assert!(
                keys.iter()
                    .all(|k| k.starts_with("palisade:rl:{palisade}:"))
            );
            assert!(keys.iter().all(|k| k.len() == 55), "{keys:?}");
            assert!(owner.ttl_ms(&keys[0]) > 0, "the key expires by itself");
        } else {
            assert!(keys.is_empty(), "keys outside the slot owner: {keys:?}");
        }
    }
}

/// The node owning the slot dies: calls fail fast (no hang, the store rests), and once
/// it is back the same store decides again, with no new connection made by us: the
/// cluster client reconnects by itself.
#[tokio::test]
async fn a_cluster_store_recovers_when_the_slot_owner_comes_back() {
    let cluster = RedisCluster::start(3);
    let owner = cluster.owner_of(CLUSTER_TAG);
    let seed = (cluster.nodes().iter())
        .find(|n| n.port() != owner.port())
        .unwrap();
    let store = RedisStore::connect(&seed.url()).unwrap();
    let quota = Quota::new(10, Duration::from_secs(3600), None).unwrap();
    let take = [Check::take("k", quota)];
    assert!(store.check_all(&take, TIMEOUT).await.is_ok());
    owner.stop();
    let started = Instant::now();
    let error = store.check_all(&take, TIMEOUT).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Failed(_) | StoreError::Timeout),
        "{error:?}"
    );
    assert!(started.elapsed() <= TIMEOUT + Duration::from_millis(100));
    owner.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(RETRY_INTERVAL).await;
        match store.check_all(&take, TIMEOUT).await {
            Ok(decisions) => {
                assert_eq!(admitted(&decisions), [true]);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e:?}"),
        }
    }
    // The restarted owner came back empty and holds the new state.
    assert_eq!(owner.keys("palisade:rl:{palisade}:*").len(), 1);
}

/// A cluster discovered only on the first call (it was down at load) is used as one.
#[tokio::test]
async fn a_cluster_found_on_the_first_call_is_used_as_one() {
    let cluster = RedisCluster::start(3);
    let store = RedisStore::connect(&cluster.nodes()[0].url()).unwrap();
    assert!(!store.is_cluster());
    let quota = Quota::new(10, Duration::from_secs(3600), None).unwrap();
    let decisions = store
        .check_all(&[Check::take("k", quota), Check::take("l", quota)], TIMEOUT)
        .await
        .unwrap();
    assert_eq!(admitted(&decisions), [true, true]);
    assert!(store.is_cluster());
    let keys: usize = cluster
        .keys_by_node("palisade:rl:*")
        .iter()
        .map(Vec::len)
        .sum();
    assert_eq!(keys, 2);
    let owner = cluster.owner_of(CLUSTER_TAG);
    assert_eq!(owner.keys("palisade:rl:{palisade}:*").len(), 2);
}

/// A cluster URL naming a database other than 0 (a cluster has only 0) stops the load
/// with a message saying so; a standalone server passes, and so does one that cannot
/// be reached (yet).
#[tokio::test]
async fn load_checks_say_what_is_wrong_with_a_cluster_url() {
    let cluster = RedisCluster::start(3);
    let url = format!("redis://127.0.0.1:{}/2", cluster.nodes()[0].port());
    let store = RedisStore::connect(&url).unwrap();
    let error = store.check_supported(TIMEOUT).await.unwrap_err();
    assert!(error.contains("only database 0"), "{error}");
    assert!(!store.is_cluster());
    let plain = RedisServer::start();
    let store = RedisStore::connect(&plain.url()).unwrap();
    assert_eq!(store.check_supported(TIMEOUT).await, Ok(()));
    assert!(!store.is_cluster());
    plain.stop();
    assert_eq!(store.check_supported(TIMEOUT).await, Ok(()));
}

#[test]
fn cluster_keys_share_one_hash_tag() {
    let key = cluster_key("login|login-ip|ip|203.0.113.7");
    let standalone = bucket_key("login|login-ip|ip|203.0.113.7");
    assert_eq!(
        key,
        format!("palisade:rl:{{palisade}}:{}", &standalone[13..45])
    );
    assert_eq!(
        redis::cluster_routing::Slot::for_key(&key),
        redis::cluster_routing::Slot::for_key(cluster_key("other"))
    );
}

#[test]
fn bucket_keys_are_fixed_length_hash_tags_without_the_value() {
    let key = bucket_key("login|login-ip|ip|203.0.113.7");
    assert_eq!(key.len(), 46);
    assert!(key.starts_with("palisade:rl:{") && key.ends_with('}'));
    assert!(!key.contains("203.0.113.7"));
    assert_ne!(key, bucket_key("login|login-ip|ip|203.0.113.8"));
    assert_eq!(key, bucket_key("login|login-ip|ip|203.0.113.7"));
}

#[test]
fn credentials_never_reach_the_display_form() {
    assert_eq!(
        without_credentials("redis://:hunter2@cache:6379/0"),
        "redis://***@cache:6379/0"
    );
    assert_eq!(
        without_credentials("redis://127.0.0.1:6379/"),
        "redis://127.0.0.1:6379/"
    );
}

#[test]
fn malformed_answers_are_failures_not_decisions() {
    assert!(matches!(
        parse_answer(&[1, 7, 1, 2], 1),
        Err(StoreError::Failed(_))
    ));
    assert_eq!(parse_answer(&[0, 7], 1), Err(StoreError::Timeout));
    assert_eq!(
        parse_answer(&[1, 7, 1, 4, 1_000, 0, 2_000_000, 5_000_000], 2).unwrap(),
        [
            Decision::Allow {
                remaining: 4,
                reset: Duration::from_millis(1)
            },
            Decision::Deny {
                retry_after: Duration::from_secs(2),
                reset: Duration::from_secs(5)
            }
        ]
    );
}
