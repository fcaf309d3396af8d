//! Hashing key secrets: HMAC-SHA-256 under the pepper, compared in constant time.
//!
//! The store keeps only `HMAC-SHA-256(pepper, message)` (32 bytes) where
//!
//! ```text
//! message = "palisade-api-key-v1" 0x00 || id (12 ASCII bytes) || secret (32 raw bytes)
//! ```
//!
//! Every part has a fixed length, so the message is unambiguous. Binding the public id into
//! the MAC means a hash copied from one row to another (by someone who can write the database
//! but does not know the pepper) does not turn one key's secret into another key's
//! credential. The pepper comes from the config (`[store] key_pepper`), never from the
//! database, so a leaked database alone yields neither keys nor a way to test guesses.
//!
//! A fast MAC, not a password hash, is right here: the secret is 256 random bits, so there is
//! nothing to brute-force, and verification runs on every request.

use aws_lc_rs::{constant_time, hmac};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    StoreError,
    keyformat::{ID_LEN, SECRET_BYTES},
};

const DOMAIN: &[u8] = b"palisade-api-key-v1\0";

/// The minimum pepper length, in bytes.
pub const MIN_PEPPER_LEN: usize = 16;

/// Length of a stored hash.
pub const HASH_LEN: usize = 32;

/// A stored secret hash. Its `Debug` never prints the bytes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeyHash(pub(crate) [u8; HASH_LEN]);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHash([REDACTED])")
    }
}

impl KeyHash {
    /// From the bytes read from the store; `None` unless exactly 32 bytes.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<KeyHash> {
        bytes.try_into().ok().map(KeyHash)
    }
}

/// The keyed hasher built from the pepper. aws-lc's `hmac::Key` does not print its key.
pub(crate) struct Hasher {
    key: hmac::Key,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher(HMAC-SHA-256, [REDACTED])")
    }
}

impl Hasher {
    pub(crate) fn new(pepper: &SecretString) -> Result<Hasher, StoreError> {
        let bytes = pepper.expose_secret().as_bytes();
        if bytes.len() < MIN_PEPPER_LEN {
            return Err(StoreError::WeakPepper);
        }
        Ok(Hasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// The hash to store for the key `id` with `secret`.
    pub(crate) fn hash(&self, id: &str, secret: &[u8; SECRET_BYTES]) -> KeyHash {
        debug_assert_eq!(id.len(), ID_LEN);
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(DOMAIN);
        ctx.update(id.as_bytes());
        ctx.update(secret);
        let tag = ctx.sign();
        let mut out = [0u8; HASH_LEN];
        out.copy_from_slice(tag.as_ref());
        KeyHash(out)
    }

    /// Whether `secret` matches `stored`, compared in constant time (the whole tag is always
    /// computed and compared; nothing returns early on a partial match).
    pub(crate) fn verify(&self, id: &str, secret: &[u8; SECRET_BYTES], stored: &KeyHash) -> bool {
        let computed = self.hash(id, secret);
        constant_time::verify_slices_are_equal(&computed.0, &stored.0).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(p: &str) -> Hasher {
        Hasher::new(&SecretString::from(p)).unwrap()
    }

    #[test]
    fn hmac_matches_a_reference_computation() {
        // Independent reference: one-shot HMAC over the concatenated message.
        let pepper = "pepper-pepper-pepper-pepper";
        let id = "AbCdEf012345";
        let secret = [7u8; 32];
        let mut msg = Vec::new();
        msg.extend_from_slice(b"palisade-api-key-v1\0");
        msg.extend_from_slice(id.as_bytes());
        msg.extend_from_slice(&secret);
        let reference = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, pepper.as_bytes()), &msg);
        assert_eq!(hasher(pepper).hash(id, &secret).0, reference.as_ref());
    }

    #[test]
    fn hmac_is_keyed_and_bound_to_the_id() {
        let a = hasher("0123456789abcdef-a");
        let b = hasher("0123456789abcdef-b");
        let s = [1u8; 32];
        let h = a.hash("AAAAAAAAAAAA", &s);
        assert!(a.verify("AAAAAAAAAAAA", &s, &h));
        assert!(!b.verify("AAAAAAAAAAAA", &s, &h), "other pepper");
        assert!(!a.verify("AAAAAAAAAAAB", &s, &h), "other id");
        let mut s2 = s;
        s2[31] ^= 1;
        assert!(!a.verify("AAAAAAAAAAAA", &s2, &h), "one bit of secret");
    }

    #[test]
    fn short_pepper_is_refused_and_debug_is_redacted() {
        assert!(matches!(
            Hasher::new(&SecretString::from("short")),
            Err(StoreError::WeakPepper)
        ));
        let h = hasher("a-very-secret-pepper-value");
        assert!(!format!("{h:?}").contains("a-very-secret"));
        let kh = h.hash("AAAAAAAAAAAA", &[0; 32]);
        let dbg = format!("{kh:?}");
        assert_eq!(dbg, "KeyHash([REDACTED])");
    }
}
