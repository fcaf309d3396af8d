//! The one shared suite, run against every backend by [`store_suite!`].
//!
//! Each case gets a fresh store ([`TestStore`]): a SQLite file in a temporary directory, or
//! a real PostgreSQL server of its own started by `palisade_testkit::postgres`.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use palisade_store::{KeyPeppers, KeyRejection, KeyService, KeyState, NewKey, StoreError};
use palisade_testkit::postgres::PostgresServer;
use secrecy::{ExposeSecret, SecretString};
use tempfile::TempDir;

pub(crate) const PEPPER: &str = "test-pepper-0123456789-abcdefghij";

/// The pepper list `[list…]`, current first.
pub(crate) fn peppers(list: &[&str]) -> KeyPeppers {
    let list: Vec<SecretString> = list.iter().map(|p| SecretString::from(*p)).collect();
    KeyPeppers::new(&list).expect("valid peppers")
}

/// The fingerprint of one pepper, as `KeyInfo::pepper` shows it.
pub(crate) fn fingerprint(pepper: &str) -> String {
    peppers(&[pepper]).fingerprints().next().unwrap().to_owned()
}

/// A fresh store for one test.
pub(crate) enum TestStore {
    /// `_dir` holds the file; it is removed when the store drops.
    Sqlite {
        _dir: TempDir,
        path: PathBuf,
    },
    Postgres {
        server: PostgresServer,
    },
}

impl TestStore {
    pub(crate) fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory that does not exist yet: opening creates it and the file.
        let path = dir.path().join("data").join("palisade.db");
        TestStore::Sqlite { _dir: dir, path }
    }

    pub(crate) fn postgres() -> TestStore {
        TestStore::Postgres {
            server: PostgresServer::start(),
        }
    }

    pub(crate) fn url(&self) -> String {
        match self {
            TestStore::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            TestStore::Postgres { server } => server.url(),
        }
    }

    pub(crate) async fn open(&self) -> KeyService {
        self.open_with(&[PEPPER]).await
    }

    /// The store with these peppers, current first.
    pub(crate) async fn open_with(&self, list: &[&str]) -> KeyService {
        KeyService::open(&self.url(), peppers(list), Duration::from_secs(24 * 3600))
            .await
            .expect("open key store")
    }

    /// Makes the store unreachable for `svc`: SQLite — its pool is closed (a file cannot be
    /// taken away from open connections); PostgreSQL — the server is stopped.
    pub(crate) async fn take_down(&self, svc: &KeyService) {
        match self {
            TestStore::Sqlite { .. } => svc.close().await,
            TestStore::Postgres { server } => server.stop(),
        }
    }

    /// Everything the store holds at rest, as bytes: the SQLite file with its WAL, or the
    /// PostgreSQL data directory after a checkpoint, plus the table rendered as text.
    pub(crate) async fn raw_contents(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            TestStore::Sqlite { path, .. } => {
                let dir = path.parent().expect("parent");
                read_tree(dir, &mut out);
            }
            TestStore::Postgres { server } => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&server.url())
                    .await
                    .expect("connect");
                let text: Option<String> =
                    sqlx::query_scalar("SELECT string_agg(t::text, E'\\n') FROM api_keys t")
                        .fetch_one(&mut conn)
                        .await
                        .expect("dump");
                out.extend_from_slice(text.expect("rows").as_bytes());
                sqlx::query("CHECKPOINT")
                    .execute(&mut conn)
                    .await
                    .expect("checkpoint");
                conn.close().await.expect("close");
                read_tree(&server.data_dir(), &mut out);
            }
        }
        out
    }
}

fn read_tree(dir: &Path, out: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            read_tree(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend_from_slice(&bytes);
        }
    }
}

pub(crate) fn new_key(name: &str) -> NewKey {
    NewKey {
        name: name.into(),
        subject: format!("svc-{name}"),
        roles: vec!["reader".into(), "writer".into()],
        scopes: vec!["orders:read".into(), "orders:write".into()],
        expires_in: None,
    }
}

/// The three parts of a key, checking the format on the way.
pub(crate) fn split(key: &str) -> (&str, &str) {
    assert_eq!(key.len(), 60, "{}", key.len());
    assert!(key.starts_with("pal_"));
    let id = &key[4..16];
    assert_eq!(&key[16..17], "_");
    let secret = &key[17..];
    let b62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    assert!(b62(id) && b62(secret));
    assert_eq!(secret.len(), 43);
    (id, secret)
}

/// Test-side base62 decoding (independent of the crate's) to look for the raw secret bytes.
pub(crate) fn secret_bytes(secret: &str) -> [u8; 32] {
    let mut n = [0u8; 32];
    for c in secret.bytes() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            _ => c - b'a' + 36,
        };
        let mut carry = u32::from(d);
        for byte in n.iter_mut().rev() {
            let v = u32::from(*byte) * 62 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
    }
    n
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Replaces the last secret character with another valid one (same id, wrong secret).
fn flip_last(key: &str) -> String {
    let last = key.as_bytes()[59];
    let other = if last == b'0' { '1' } else { '0' };
    format!("{}{other}", &key[..59])
}

async fn wait_for(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The cases.

pub(crate) async fn create_and_verify(store: &TestStore) {
    let svc = store.open().await;
    let issued = svc.create(new_key("alpha")).await.unwrap();
    let key = issued.key.expose_secret();
    let (id, _) = split(key);
    assert_eq!(id, issued.info.id);
    assert!(palisade_store::looks_like_key(key));
    assert_eq!(issued.info.state, KeyState::Active);
    assert_eq!(issued.info.name, "alpha");
    assert_eq!(issued.info.last_used_at, None);
    assert!(
        !format!("{issued:?}").contains(&key[17..]),
        "Debug shows the secret"
    );

    for _ in 0..2 {
        // The second round comes from the cache.
        let v = svc.verify(key).await.expect("verifies");
        assert_eq!(&*v.id, id);
        assert_eq!(&*v.subject, "svc-alpha");
        assert_eq!(&v.roles[..], ["reader", "writer"]);
        assert_eq!(&v.scopes[..], ["orders:read", "orders:write"]);
    }
    // A second instance (cold cache) verifies it too.
    let other = store.open().await;
    assert!(other.verify(key).await.is_ok());
    assert_eq!(svc.backend(), other.backend());
}

pub(crate) async fn wrong_secret(store: &TestStore) {
    let svc = store.open().await;
    let issued = svc.create(new_key("a")).await.unwrap();
    let key = issued.key.expose_secret();
    let wrong = flip_last(key);
    assert_eq!(
        svc.verify(&wrong).await.unwrap_err(),
        KeyRejection::WrongSecret
    );
    // The id of one key with the secret of another.
    let b = svc.create(new_key("b")).await.unwrap();
    let mixed = format!("{}{}", &key[..17], &b.key.expose_secret()[17..]);
    assert_eq!(
        svc.verify(&mixed).await.unwrap_err(),
        KeyRejection::WrongSecret
    );
    assert!(svc.verify(key).await.is_ok());
    assert_eq!(KeyRejection::WrongSecret.reason(), "wrong_secret");
}

pub(crate) async fn malformed(store: &TestStore) {
    let svc = store.open().await;
    let issued = svc.create(new_key("a")).await.unwrap();
    let k = issued.key.expose_secret();
    let variants = [
        String::new(),
        "pal_".into(),
        k.replacen("pal_", "pat_", 1),
        k.replacen("pal_", "Pal_", 1),
        k[4..].to_owned(),
        format!("{}{}", &k[..15], &k[16..]),    // id too short
        format!("{}X{}", &k[..16], &k[16..59]), // id too long
        k[..59].to_owned(),                     // secret too short
        format!("{k}A"),                        // secret too long
        format!("{}-{}", &k[..30], &k[31..]),   // alphabet
        format!("{}+{}", &k[..8], &k[9..]),     // alphabet in the id
        format!("{}_{}", &k[..30], &k[31..]),   // extra `_`
        format!("{}__{}", &k[..16], &k[17..59]),
        format!("{}{}", &k[..17], "z".repeat(43)), // secret >= 2^256
        format!("Bearer {k}"),
        format!("{k} "),
        k.to_uppercase(),
    ];
    for v in &variants {
        assert_eq!(
            svc.verify(v).await.unwrap_err(),
            KeyRejection::Malformed,
            "{v:?}"
        );
    }
    assert!(svc.verify(k).await.is_ok());
    assert_eq!(KeyRejection::Malformed.reason(), "malformed");
}

pub(crate) async fn unknown_id(store: &TestStore) {
    let svc = store.open().await;
    let issued = svc.create(new_key("a")).await.unwrap();
    let k = issued.key.expose_secret();
    // A well-formed key whose id does not exist.
    let first = if &k[4..5] == "Z" { "Y" } else { "Z" };
    let unknown = format!("pal_{first}{}", &k[5..]);
    for _ in 0..3 {
        // The repeats are answered by the negative cache.
        assert_eq!(
            svc.verify(&unknown).await.unwrap_err(),
            KeyRejection::UnknownKey
        );
    }
    assert!(svc.get(&unknown[4..16]).await.unwrap().is_none());
    assert!(svc.get("not-an-id").await.unwrap().is_none());
    assert_eq!(KeyRejection::UnknownKey.reason(), "unknown_key");
}

pub(crate) async fn expired(store: &TestStore) {
    let svc = store.open().await;
    let mut nk = new_key("short");
    nk.expires_in = Some(Duration::from_secs(1));
    let issued = svc.create(nk).await.unwrap();
    let k = issued.key.expose_secret();
    assert!(issued.info.expires_at.is_some());
    assert!(svc.verify(k).await.is_ok(), "valid before expiry");
    wait_for("expiry", Duration::from_secs(3), async || {
        svc.verify(k).await.err() == Some(KeyRejection::Expired)
    })
    .await;
    // A wrong secret is still reported as such: the state is only revealed to the holder.
    assert_eq!(
        svc.verify(&flip_last(k)).await.unwrap_err(),
        KeyRejection::WrongSecret
    );
    let info = svc.get(&issued.info.id).await.unwrap().unwrap();
    assert_eq!(info.state, KeyState::Expired);
    // A cold instance agrees.
    let other = store.open().await;
    assert_eq!(other.verify(k).await.unwrap_err(), KeyRejection::Expired);
}

pub(crate) async fn revoke(store: &TestStore) {
    let svc = store.open().await;
    let issued = svc.create(new_key("a")).await.unwrap();
    let keep = svc.create(new_key("keep")).await.unwrap();
    let k = issued.key.expose_secret();
    assert!(svc.verify(k).await.is_ok()); // now cached
    assert!(svc.revoke(&issued.info.id).await.unwrap());
    assert_eq!(
        svc.verify(k).await.unwrap_err(),
        KeyRejection::Revoked,
        "immediately"
    );
    assert!(
        !svc.revoke(&issued.info.id).await.unwrap(),
        "already revoked"
    );
    assert!(!svc.revoke("AAAAAAAAAAAA").await.unwrap(), "unknown");
    assert!(!svc.revoke(k).await.unwrap(), "a full key is not an id");
    let info = svc.get(&issued.info.id).await.unwrap().unwrap();
    assert_eq!(info.state, KeyState::Revoked);
    assert!(info.revoked_at.is_some());
    assert!(
        svc.verify(keep.key.expose_secret()).await.is_ok(),
        "others unaffected"
    );
    let other = store.open().await;
    assert_eq!(other.verify(k).await.unwrap_err(), KeyRejection::Revoked);
    assert_eq!(KeyRejection::Revoked.reason(), "revoked");
}

pub(crate) async fn rotate(store: &TestStore) {
    let svc = store.open().await;
    let mut nk = new_key("rot");
    nk.expires_in = Some(Duration::from_secs(3600));
    let old = svc.create(nk).await.unwrap();
    let old_key = old.key.expose_secret();
    assert!(svc.verify(old_key).await.is_ok()); // cached with its old expiry

    let new = svc
        .rotate(&old.info.id, Some(Duration::from_secs(2)))
        .await
        .unwrap();
    let fresh_key = new.key.expose_secret();
    assert_ne!(new.info.id, old.info.id);
    assert_eq!(new.info.name, old.info.name);
    assert_eq!(new.info.subject, old.info.subject);
    assert_eq!(new.info.roles, old.info.roles);
    assert_eq!(new.info.scopes, old.info.scopes);
    let life = new.info.expires_at.unwrap() - new.info.created_at;
    assert!((3599..=3602).contains(&life), "same expiry policy: {life}");

    // Both work during the overlap.
    let v = svc.verify(fresh_key).await.expect("new key works at once");
    assert_eq!(&*v.subject, "svc-rot");
    assert!(
        svc.verify(old_key).await.is_ok(),
        "old key works during the overlap"
    );
    let old_info = svc.get(&old.info.id).await.unwrap().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(old_info.expires_at.unwrap() <= now + 3, "old expiry capped");

    // After the overlap only the new one works (on this instance and on a cold one).
    wait_for("old key expiry", Duration::from_secs(5), async || {
        svc.verify(old_key).await.err() == Some(KeyRejection::Expired)
    })
    .await;
    assert!(svc.verify(fresh_key).await.is_ok());
    let other = store.open().await;
    assert_eq!(
        other.verify(old_key).await.unwrap_err(),
        KeyRejection::Expired
    );
    assert!(other.verify(fresh_key).await.is_ok());

    // Errors: unknown and revoked keys do not rotate.
    assert!(matches!(
        svc.rotate("AAAAAAAAAAAA", None).await,
        Err(StoreError::NotFound(_))
    ));
    let err = svc.rotate(fresh_key, None).await.unwrap_err();
    assert!(
        !err.to_string().contains(&fresh_key[17..]),
        "error echoes the key: {err}"
    );
    assert!(svc.revoke(&new.info.id).await.unwrap());
    assert!(matches!(
        svc.rotate(&new.info.id, None).await,
        Err(StoreError::Revoked(_))
    ));

    // A key without expiry rotates to a key without expiry; default overlap applies.
    let forever = svc.create(new_key("forever")).await.unwrap();
    let next = svc.rotate(&forever.info.id, None).await.unwrap();
    assert_eq!(next.info.expires_at, None);
    let capped = svc.get(&forever.info.id).await.unwrap().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let exp = capped.expires_at.expect("old key now expires");
    assert!(
        exp > now + 23 * 3600 && exp <= now + 24 * 3600 + 1,
        "24 h default overlap"
    );
    assert!(svc.verify(forever.key.expose_secret()).await.is_ok());
}

pub(crate) async fn list_shows_no_secrets(store: &TestStore) {
    let svc = store.open().await;
    let a = svc.create(new_key("first")).await.unwrap();
    let b = svc.create(new_key("second")).await.unwrap();
    let mut nk = new_key("third");
    nk.expires_in = Some(Duration::from_secs(1));
    let c = svc.create(nk).await.unwrap();
    assert!(svc.revoke(&b.info.id).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let list = svc.list().await.unwrap();
    let names: Vec<&str> = list.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["third", "second", "first"], "newest first");
    let states: Vec<KeyState> = list.iter().map(|k| k.state).collect();
    assert_eq!(
        states,
        [KeyState::Expired, KeyState::Revoked, KeyState::Active]
    );

    let json = serde_json::to_string(&list).unwrap();
    for issued in [&a, &b, &c] {
        let key = issued.key.expose_secret();
        assert!(!json.contains(&key[17..]), "secret in list JSON");
        assert!(!json.contains(key));
        assert!(json.contains(&issued.info.id), "ids are listed");
    }
    assert!(!json.contains("hash"), "{json}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let first = &value[2];
    assert_eq!(first["state"], "active");
    assert_eq!(first["pepper"], "current");
    assert_eq!(value[1]["state"], "revoked");
    assert_eq!(value[0]["state"], "expired");
    let mut fields: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "created_at",
            "expires_at",
            "id",
            "last_used_at",
            "name",
            "pepper",
            "revoked_at",
            "roles",
            "scopes",
            "state",
            "subject"
        ]
    );
}

pub(crate) async fn last_used_is_batched(store: &TestStore) {
    let svc = store.open().await;
    let issued = svc.create(new_key("busy")).await.unwrap();
    let k = issued.key.expose_secret();
    for _ in 0..3 {
        svc.verify(k).await.unwrap();
    }
    // Nothing written per request: a second instance reads the store directly.
    let observer = store.open().await;
    let before = observer.get(&issued.info.id).await.unwrap().unwrap();
    assert_eq!(before.last_used_at, None, "written per request");
    // This instance already shows what it has recorded.
    assert!(
        svc.get(&issued.info.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_some()
    );

    svc.flush_last_used().await.unwrap();
    let after = observer.get(&issued.info.id).await.unwrap().unwrap();
    let used = after.last_used_at.expect("flushed");
    assert!(used >= issued.info.created_at);
    svc.flush_last_used().await.unwrap(); // nothing pending: a no-op
    let listed = observer.list().await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(used));
}

pub(crate) async fn secret_never_at_rest(store: &TestStore) {
    let svc = store.open().await;
    let a = svc.create(new_key("a")).await.unwrap();
    svc.verify(a.key.expose_secret()).await.unwrap();
    let b = svc
        .rotate(&a.info.id, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    svc.verify(b.key.expose_secret()).await.unwrap();
    let c = svc.create(new_key("c")).await.unwrap();
    svc.revoke(&c.info.id).await.unwrap();
    svc.flush_last_used().await.unwrap();

    let raw = store.raw_contents().await;
    assert!(!raw.is_empty());
    for issued in [&a, &b, &c] {
        let key = issued.key.expose_secret();
        let (id, secret) = split(key);
        assert!(
            contains(&raw, id.as_bytes()),
            "the id is stored (sanity check of the scan)"
        );
        assert!(!contains(&raw, secret.as_bytes()), "secret found at rest");
        assert!(
            !contains(&raw, &secret_bytes(secret)),
            "raw secret bytes found at rest"
        );
    }
}

pub(crate) async fn store_down(store: &TestStore) {
    let svc = store.open().await;
    let cached = svc.create(new_key("cached")).await.unwrap();
    let uncached = svc.create(new_key("uncached")).await.unwrap();
    svc.verify(cached.key.expose_secret()).await.unwrap();

    store.take_down(&svc).await;

    assert!(
        svc.verify(cached.key.expose_secret()).await.is_ok(),
        "cached key keeps working"
    );
    assert_eq!(
        svc.verify(uncached.key.expose_secret()).await.unwrap_err(),
        KeyRejection::StoreUnavailable,
        "uncached key fails closed"
    );
    assert_eq!(KeyRejection::StoreUnavailable.reason(), "store_unavailable");
    // Parsing happens before any store access.
    assert_eq!(
        svc.verify("pal_nope").await.unwrap_err(),
        KeyRejection::Malformed
    );
    // Past the revalidation interval (500 ms on SQLite) the stale entry is still served.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(svc.verify(cached.key.expose_secret()).await.is_ok());
    // A wrong secret for the cached id is still refused.
    assert_eq!(
        svc.verify(&flip_last(cached.key.expose_secret()))
            .await
            .unwrap_err(),
        KeyRejection::WrongSecret
    );
    // Management calls report the failure.
    assert!(svc.list().await.is_err());
    assert!(svc.create(new_key("x")).await.is_err());
}

/// Revoke on one instance, a second instance on the same store stops accepting the key
/// within `bound`.
pub(crate) async fn cross_instance_revocation(store: &TestStore, bound: Duration) {
    let a = store.open().await;
    let b = store.open().await;
    let _bg_a = a.spawn_background();
    let _bg_b = b.spawn_background();
    if a.backend() == "postgres" {
        wait_for("LISTEN", Duration::from_secs(10), async || {
            a.is_listening() && b.is_listening()
        })
        .await;
    }
    let issued = a.create(new_key("shared")).await.unwrap();
    let k = issued.key.expose_secret();
    assert!(a.verify(k).await.is_ok());
    assert!(b.verify(k).await.is_ok());
    assert!(b.verify(k).await.is_ok()); // cached on B

    assert!(a.revoke(&issued.info.id).await.unwrap());
    assert_eq!(a.verify(k).await.unwrap_err(), KeyRejection::Revoked);
    let took = wait_for("revocation on instance B", bound, async || {
        b.verify(k).await.err() == Some(KeyRejection::Revoked)
    })
    .await;
    eprintln!(
        "{}: instance B rejected the revoked key after {took:?}",
        a.backend()
    );
}

/// Waits until key `id` is listed with `pepper` (the upgrade runs in the background).
pub(crate) async fn wait_for_pepper(svc: &KeyService, id: &str, pepper: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = svc.get(id).await.unwrap().unwrap().pepper;
        if now == pepper {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "key {id}: pepper {now}, expected {pepper}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pepper rotation: a key hashed under pepper A still verifies under `[B, A]`, is then
/// re-hashed under B by its use, and so verifies under `[B]` alone; A alone or an unknown
/// pepper verify nothing; revocation works throughout; a running service takes a new list.
pub(crate) async fn pepper_rotation(store: &TestStore) {
    const A: &str = "rotation-pepper-A-0123456789abcdef";
    const B: &str = "rotation-pepper-B-0123456789abcdef";
    const C: &str = "rotation-pepper-C-0123456789abcdef";
    let (fa, fb) = (fingerprint(A), fingerprint(B));
    let before = store.open_with(&[A]).await;
    let old = before.create(new_key("old")).await.unwrap();
    let old_key = old.key.expose_secret();
    let doomed = before.create(new_key("doomed")).await.unwrap();
    assert_eq!(old.info.pepper, "current");
    assert!(before.verify(old_key).await.is_ok());

    let during = store.open_with(&[B, A]).await;
    let listed = during.get(&old.info.id).await.unwrap().unwrap();
    assert_eq!(listed.pepper, format!("old:{fa}"));
    // A revoked key made with A is refused as revoked, and not re-hashed.
    assert!(during.revoke(&doomed.info.id).await.unwrap());
    assert_eq!(
        during.verify(doomed.key.expose_secret()).await.unwrap_err(),
        KeyRejection::Revoked
    );
    // The old key verifies under the old pepper, and its use moves it to the current one.
    let verified = during.verify(old_key).await.unwrap();
    assert_eq!(&*verified.id, old.info.id);
    wait_for_pepper(&during, &old.info.id, "current").await;
    assert!(during.verify(old_key).await.is_ok(), "after the upgrade");
    let new = during.create(new_key("new")).await.unwrap();
    assert_eq!(new.info.pepper, "current");
    assert_eq!(
        during.get(&doomed.info.id).await.unwrap().unwrap().pepper,
        format!("old:{fa}")
    );

    // Old pepper dropped: both keys still verify; a wrong secret does not.
    let after = store.open_with(&[B]).await;
    assert!(after.verify(old_key).await.is_ok());
    assert!(after.verify(new.key.expose_secret()).await.is_ok());
    let mut forged = old_key.to_owned();
    forged.replace_range(forged.len() - 3.., "AAA");
    if forged != old_key {
        assert_eq!(
            after.verify(&forged).await.unwrap_err(),
            KeyRejection::WrongSecret
        );
    }
    assert_eq!(
        after.get(&doomed.info.id).await.unwrap().unwrap().pepper,
        format!("unknown:{fa}")
    );
    // The keys are now B's: A alone, or a pepper never used, verifies neither.
    for list in [&[A][..], &[C]] {
        let other = store.open_with(list).await;
        for key in [old_key, new.key.expose_secret()] {
            assert_eq!(
                other.verify(key).await.unwrap_err(),
                KeyRejection::WrongSecret
            );
        }
    }
    assert_eq!(
        after.get(&new.info.id).await.unwrap().unwrap().pepper,
        "current"
    );

    // A running service takes a new list (reload) and drops what it had cached.
    let running = store.open_with(&[A]).await;
    let fresh = running.create(new_key("fresh")).await.unwrap();
    assert!(running.verify(fresh.key.expose_secret()).await.is_ok());
    running.set_peppers(peppers(&[B, A]));
    assert!(running.verify(fresh.key.expose_secret()).await.is_ok());
    wait_for_pepper(&running, &fresh.info.id, "current").await;
    running.set_peppers(peppers(&[B]));
    assert!(running.verify(fresh.key.expose_secret()).await.is_ok());
    assert_eq!(
        running.get(&fresh.info.id).await.unwrap().unwrap().pepper,
        "current"
    );
    running.set_peppers(peppers(&[A]));
    assert_eq!(
        running.verify(fresh.key.expose_secret()).await.unwrap_err(),
        KeyRejection::WrongSecret,
        "a cached record must not outlive its pepper"
    );
    // Revocation still works on an upgraded key.
    running.set_peppers(peppers(&[B]));
    assert!(running.revoke(&old.info.id).await.unwrap());
    assert_eq!(
        running.verify(old_key).await.unwrap_err(),
        KeyRejection::Revoked
    );
    assert!(!fb.is_empty());
}

/// Declares one `#[tokio::test]` per shared case for a backend.
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store_suite!(@case $make;
            create_and_verify, wrong_secret, malformed, unknown_id, expired, revoke, rotate,
            list_shows_no_secrets, last_used_is_batched, secret_never_at_rest, store_down,
            pepper_rotation);
    };
    (@case $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make;
                common::$case(&store).await;
            }
        )*
    };
}
