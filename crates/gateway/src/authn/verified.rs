//! Tokens whose signature was already checked, so that a client sending the same JWT on
//! every request pays for one ECDSA/RSA verification, not one per request.
//!
//! What is remembered is only "this exact token verified under this exact key": the entry
//! is the SHA-256 of the whole token and the key (`Arc`) that verified it. Everything else —
//! header rules, `exp`, `nbf`, `iss`, `aud`, the subject — is checked again on every
//! request, so an entry never lets an expired token through. An entry counts only while the
//! key the token selects *now* is the very key that verified it: a key rotated out of the
//! JWKS (a new key set holds new `Arc`s) makes its tokens verify afresh. The entry holds
//! the key strongly, so its address cannot be reused by another key while the entry lives.
//!
//! A forged token never gets in (entries are added after a successful verification), so
//! an attacker can neither fill the cache with junk nor learn anything from its timing
//! beyond what a valid token already tells its holder. The cache is bounded; at capacity,
//! entries past their token's `exp` are dropped, and if that frees nothing, all are
//! (the cost is one verification per token, once).
//!
//! HMAC tokens are not cached: their check costs about as much as the lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::jwks::VerifyKey;

/// Tokens remembered at most (each entry about 100 bytes).
const CAPACITY: usize = 16 * 1024;

/// The SHA-256 of a whole compact token.
pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &str) -> TokenDigest {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

struct Entry {
    key: Arc<VerifyKey>,
    /// The token's `exp` (seconds since the epoch): past it, the entry is only clutter.
    expires_at: f64,
}

#[derive(Default)]
pub(crate) struct VerifiedSignatures {
    entries: Mutex<HashMap<TokenDigest, Entry>>,
}

impl VerifiedSignatures {
    /// Whether the token with `digest` was verified under `key` (the same key, not an
    /// equal one).
    pub(crate) fn holds(&self, digest: &TokenDigest, key: &Arc<VerifyKey>) -> bool {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(digest)
            .is_some_and(|entry| Arc::ptr_eq(&entry.key, key))
    }

    /// Remembers that the token with `digest` verified under `key` and is valid until
    /// `expires_at`. Call only after the signature and every claim were checked.
    pub(crate) fn insert(
        &self,
        digest: TokenDigest,
        key: &Arc<VerifyKey>,
        expires_at: f64,
        now: f64,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY && !entries.contains_key(&digest) {
            entries.retain(|_, entry| entry.expires_at > now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            digest,
            Entry {
                key: key.clone(),
                expires_at,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::jwks::KeySet;

    fn key_set() -> KeySet {
        // Two public P-256 keys in a JWKS, both the curve's base point (a valid public key
        // whose private half is 1: fine for a cache test, never for signing anything).
        KeySet::parse(
            br#"{"keys":[
            {"kty":"EC","crv":"P-256","kid":"a","use":"sig",
             "x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY","y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"},
            {"kty":"EC","crv":"P-256","kid":"b","use":"sig",
             "x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY","y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}
            ]}"#,
        )
        .unwrap()
    }

    fn select(set: &KeySet, kid: &str) -> Arc<VerifyKey> {
        crate::authn::jwks::settle(set.select(Some(kid), crate::config::JwtAlgorithm::ES256))
            .unwrap()
    }

    #[test]
    fn an_entry_counts_only_for_the_same_token_and_the_same_key() {
        let set = key_set();
        let (a, b) = (select(&set, "a"), select(&set, "b"));
        let cache = VerifiedSignatures::default();
        let token = digest("header.payload.signature");
        assert!(!cache.holds(&token, &a), "nothing before insert");
        cache.insert(token, &a, 2_000.0, 1_000.0);
        assert!(cache.holds(&token, &a));
        assert!(!cache.holds(&token, &b), "another key");
        assert!(
            !cache.holds(&digest("header.payload.signaturf"), &a),
            "another token"
        );
        // The same key parsed again (a refreshed key set) is a different key here.
        let refreshed = key_set();
        assert!(!cache.holds(&token, &select(&refreshed, "a")));
    }

    #[test]
    fn at_capacity_expired_entries_go_first_then_everything() {
        let set = key_set();
        let a = select(&set, "a");
        let cache = VerifiedSignatures::default();
        for n in 0..CAPACITY {
            // Half expired (at 500) by the time of the next insert (now = 1000).
            let expires = if n % 2 == 0 { 500.0 } else { 5_000.0 };
            cache.insert(digest(&n.to_string()), &a, expires, 0.0);
        }
        assert_eq!(cache.entries(), CAPACITY);
        cache.insert(digest("new"), &a, 5_000.0, 1_000.0);
        assert_eq!(
            cache.entries(),
            CAPACITY / 2 + 1,
            "the expired half was dropped"
        );
        assert!(cache.holds(&digest("1"), &a), "a live entry stays");
        assert!(!cache.holds(&digest("0"), &a), "an expired entry went");
        // Full of live entries: the next insert starts afresh.
        for n in 0..CAPACITY {
            cache.insert(digest(&format!("live{n}")), &a, 5_000.0, 1_000.0);
        }
        assert!(cache.entries() <= CAPACITY);
        cache.insert(digest("last"), &a, 5_000.0, 1_000.0);
        assert!(cache.holds(&digest("last"), &a));
        assert!(cache.entries() <= CAPACITY);
    }
}
