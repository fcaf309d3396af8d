//! The shared suite against a SQLite file, plus SQLite specifics.

use crate::common;

use std::time::Duration;

use common::TestStore;
use palisade_store::{KeyPeppers, KeyRejection, KeyService, StoreError};
use secrecy::{ExposeSecret, SecretString};

crate::store_suite!(TestStore::sqlite());

/// No cross-process notification on SQLite: another instance on the same file sees a
/// revocation at its next revalidation (500 ms), so within the same 1 s bound as PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_instance_revocation_by_revalidation() {
    let store = TestStore::sqlite();
    common::cross_instance_revocation(&store, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn file_is_created_owner_only_with_wal() {
    let store = TestStore::sqlite();
    let TestStore::Sqlite { path, .. } = &store else {
        unreachable!()
    };
    assert!(!path.exists());
    let svc = store.open().await;
    assert_eq!(svc.backend(), "sqlite");
    assert!(path.exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    svc.create(common::new_key("a")).await.unwrap();
    assert!(path.with_extension("db-wal").exists(), "WAL mode");
    // Reopening applies no migration twice and keeps the data.
    drop(svc);
    let again = store.open().await;
    assert_eq!(again.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn in_memory_store_works() {
    let svc = KeyService::open(
        "sqlite::memory:",
        common::peppers(&[common::PEPPER]),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let issued = svc.create(common::new_key("mem")).await.unwrap();
    assert!(svc.verify(issued.key.expose_secret()).await.is_ok());
    assert_eq!(svc.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn another_pepper_verifies_nothing() {
    let store = TestStore::sqlite();
    let svc = store.open().await;
    let issued = svc.create(common::new_key("a")).await.unwrap();
    let other = KeyService::open(
        &store.url(),
        common::peppers(&["a-different-pepper-of-enough-length"]),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(
        other.verify(issued.key.expose_secret()).await.unwrap_err(),
        KeyRejection::WrongSecret
    );
}

#[tokio::test]
async fn open_rejects_bad_input_without_echoing_secrets() {
    let err = KeyPeppers::new(&[SecretString::from("pepper")]).unwrap_err();
    assert!(matches!(err, StoreError::WeakPepper));
    assert!(!err.to_string().contains("pepper\""));
    let url = KeyService::open(
        "mysql://user:hunter2@db/x",
        common::peppers(&[common::PEPPER]),
        Duration::ZERO,
    )
    .await
    .unwrap_err();
    assert!(matches!(url, StoreError::UnsupportedUrl));
    assert!(!url.to_string().contains("hunter2"));
    let store = TestStore::sqlite();
    let debug = format!("{:?}", store.open().await);
    assert!(!debug.contains(common::PEPPER), "{debug}");
}

#[tokio::test]
async fn invalid_new_keys_are_refused() {
    let store = TestStore::sqlite();
    let svc = store.open().await;
    let mut nk = common::new_key("a");
    nk.roles = vec!["admin, root".into()];
    assert!(matches!(svc.create(nk).await, Err(StoreError::Invalid(_))));
    let mut nk = common::new_key("a");
    nk.subject = "x\r\nX-Injected: 1".into();
    assert!(matches!(svc.create(nk).await, Err(StoreError::Invalid(_))));
    assert!(svc.list().await.unwrap().is_empty());
}

/// Keys made before pepper fingerprints were recorded (migration 2 leaves them NULL) are
/// listed as `unrecorded` and get the current fingerprint at their next use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_a_recorded_pepper_gets_one_at_its_next_use() {
    let store = TestStore::sqlite();
    let svc = store.open().await;
    let issued = svc.create(common::new_key("legacy")).await.unwrap();
    svc.close().await;
    let pool = sqlx::SqlitePool::connect(&store.url()).await.unwrap();
    sqlx::query("UPDATE api_keys SET pepper_id = NULL")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let svc = store.open().await;
    let id = &issued.info.id;
    assert_eq!(svc.get(id).await.unwrap().unwrap().pepper, "unrecorded");
    assert!(svc.verify(issued.key.expose_secret()).await.is_ok());
    common::wait_for_pepper(&svc, id, "current").await;
}
