//! The shared suite against a real PostgreSQL server (one per test), plus cross-instance
//! revocation over LISTEN/NOTIFY and the behaviour when that feed is lost.

use crate::common;

use std::time::{Duration, Instant};

use common::TestStore;
use palisade_store::KeyRejection;
use secrecy::ExposeSecret;

crate::store_suite!(TestStore::postgres());

/// The bound: revoke on instance A, instance B (same PostgreSQL) rejects within 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_instance_revocation_within_one_second() {
    let store = TestStore::postgres();
    common::cross_instance_revocation(&store, Duration::from_secs(1)).await;
}

/// Losing the LISTEN connection clears and bypasses the cache (fail safe); when the server
/// is back the feed reconnects and revocations propagate again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_database_keeps_confirmed_keys_fails_closed_for_others_then_recovers() {
    let store = TestStore::postgres();
    let TestStore::Postgres { server } = &store else {
        unreachable!()
    };
    let a = store.open().await;
    let b = store.open().await;
    let _bg = b.spawn_background();
    let issued = a.create(common::new_key("k")).await.unwrap();
    let k = issued.key.expose_secret();
    let other = a.create(common::new_key("other")).await.unwrap();
    let never_seen = other.key.expose_secret();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.is_listening() {
        assert!(Instant::now() < deadline, "B never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.verify(k).await.is_ok()); // cached on B

    server.stop();
    // B notices the lost feed: no cached entry is fresh any more, each is read again first.
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.is_listening() {
        assert!(Instant::now() < deadline, "B never noticed the lost feed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The read fails (the database is down, so nothing can be revoked in it): the key the
    // store confirmed before keeps working; a key B never verified fails closed.
    assert!(
        b.verify(k).await.is_ok(),
        "a confirmed key during the outage"
    );
    assert_eq!(
        b.verify(never_seen).await.err(),
        Some(KeyRejection::StoreUnavailable)
    );

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !b.is_listening() {
        assert!(Instant::now() < deadline, "B never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = b.verify(k).await;
    assert!(again.is_ok(), "works again: {:?}", again.err());
    // The pool of A reconnects on its own; the feed of B carries the next revocation.
    assert!(a.revoke(&issued.info.id).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(1);
    while b.verify(k).await.err() != Some(KeyRejection::Revoked) {
        assert!(
            Instant::now() < deadline,
            "revocation not seen within 1 s after reconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Dropping every handle stops the background task (no leaked LISTEN connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_stops_with_the_service() {
    let store = TestStore::postgres();
    let svc = store.open().await;
    let handle = svc.spawn_background();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !svc.is_listening() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(svc.backend(), "postgres");
    drop(svc);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("background task ended")
        .unwrap();
}
