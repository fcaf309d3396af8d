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
//! database, so a leaked database alone yields no key and no cheap way to test guesses of
//! the pepper (see the fingerprint below).
//!
//! A fast MAC, not a password hash, is right here: the secret is 256 random bits, so there is
//! nothing to brute-force, and verification runs on every request.
//!
//! ## Several peppers (rotation)
//! [`KeyPeppers`] is the configured list, current first. New keys are hashed with the
//! current pepper; a key is verified with the pepper its record names (by fingerprint), or
//! by trying each in order when the record names none that is configured. Each record keeps
//! the [fingerprint](Hasher::fingerprint) of the pepper that hashed it, so an operator can
//! see when no key needs an old pepper any more. The fingerprint is derived with PBKDF2
//! (100 000 iterations), not one HMAC: it is stored beside the hashes, and a cheap
//! fingerprint would let someone holding only the database test pepper guesses quickly.

use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, hmac, pbkdf2};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    StoreError,
    keyformat::{ID_LEN, SECRET_BYTES},
};

const DOMAIN: &[u8] = b"palisade-api-key-v1\0";

/// The minimum pepper length, in bytes.
pub const MIN_PEPPER_LEN: usize = 16;

/// Length of a stored hash.
pub(crate) const HASH_LEN: usize = 32;

/// At most this many peppers at once: a rotation needs two, and every extra one may cost a
/// MAC per verification.
pub const MAX_PEPPERS: usize = 4;

const FINGERPRINT_SALT: &[u8] = b"palisade-pepper-id";
const FINGERPRINT_ROUNDS: u32 = 100_000;
/// Bytes of the PBKDF2 output kept as the fingerprint (hex-encoded: 16 characters).
const FINGERPRINT_BYTES: usize = 8;

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
    /// Non-secret id of the pepper (see [`Hasher::fingerprint`]).
    fingerprint: String,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hasher(HMAC-SHA-256, pepper {})", self.fingerprint)
    }
}

impl Hasher {
    pub(crate) fn new(pepper: &SecretString) -> Result<Hasher, StoreError> {
        let bytes = pepper.expose_secret().as_bytes();
        if bytes.len() < MIN_PEPPER_LEN {
            return Err(StoreError::WeakPepper);
        }
        let mut id = [0u8; FINGERPRINT_BYTES];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(FINGERPRINT_ROUNDS).unwrap_or(NonZeroU32::MIN),
            FINGERPRINT_SALT,
            bytes,
            &mut id,
        );
        Ok(Hasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            fingerprint: id.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// The pepper's fingerprint: 16 hex digits, the first 8 bytes of
    /// `PBKDF2-HMAC-SHA-256(pepper, "palisade-pepper-id", 100 000)`. Safe to store, list
    /// and log; it tells peppers apart without revealing them.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
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

/// The configured peppers, current first; at least one, at most [`MAX_PEPPERS`], no two
/// alike.
///
/// Built from the config with [`KeyPeppers::new`] and handed to
/// [`KeyService::open`](crate::KeyService::open) or
/// [`KeyService::set_peppers`](crate::KeyService::set_peppers) (on reload). `Debug` shows
/// fingerprints only.
pub struct KeyPeppers {
    hashers: Vec<Hasher>,
}

impl std::fmt::Debug for KeyPeppers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.hashers.iter().map(Hasher::fingerprint))
            .finish()
    }
}

impl KeyPeppers {
    /// Fails with [`StoreError::WeakPepper`] if one is shorter than [`MIN_PEPPER_LEN`], and
    /// with [`StoreError::Invalid`] if the list is empty, too long, or names a pepper twice.
    /// Messages never contain a pepper.
    pub fn new(peppers: &[SecretString]) -> Result<KeyPeppers, StoreError> {
        if peppers.is_empty() {
            return Err(StoreError::Invalid("at least one key pepper is required"));
        }
        if peppers.len() > MAX_PEPPERS {
            return Err(StoreError::Invalid("at most 4 key peppers at once"));
        }
        let hashers = peppers
            .iter()
            .map(Hasher::new)
            .collect::<Result<Vec<_>, _>>()?;
        for (i, h) in hashers.iter().enumerate() {
            if hashers[..i].iter().any(|o| o.fingerprint == h.fingerprint) {
                return Err(StoreError::Invalid("the same key pepper is listed twice"));
            }
        }
        Ok(KeyPeppers { hashers })
    }

    /// The pepper new keys are hashed with.
    pub(crate) fn current(&self) -> &Hasher {
        &self.hashers[0]
    }

    /// The fingerprints, current first.
    pub fn fingerprints(&self) -> impl Iterator<Item = &str> {
        self.hashers.iter().map(Hasher::fingerprint)
    }

    /// Which configured pepper `stored` was made with, if `secret` matches it: the one
    /// `pepper_id` names when that one is configured (one MAC), else each in order, current
    /// first (a record without a fingerprint, from before they were recorded). The index is
    /// 0 for the current pepper.
    pub(crate) fn verify(
        &self,
        id: &str,
        secret: &[u8; SECRET_BYTES],
        stored: &KeyHash,
        pepper_id: Option<&str>,
    ) -> Option<usize> {
        let named = pepper_id.and_then(|fp| self.hashers.iter().position(|h| h.fingerprint == fp));
        match named {
            Some(i) => self.hashers[i].verify(id, secret, stored).then_some(i),
            None => self
                .hashers
                .iter()
                .position(|h| h.verify(id, secret, stored)),
        }
    }

    /// How a record's pepper stands: `current`, `old:<fp>` (configured, not first),
    /// `unknown:<fp>` (not configured: the key can no longer verify) or `unrecorded`
    /// (hashed before fingerprints were kept; recorded at the key's next use).
    pub(crate) fn describe(&self, pepper_id: Option<&str>) -> String {
        match pepper_id {
            None => "unrecorded".to_owned(),
            Some(fp) if fp == self.current().fingerprint => "current".to_owned(),
            Some(fp) if self.hashers.iter().any(|h| h.fingerprint == fp) => format!("old:{fp}"),
            Some(fp) => format!("unknown:{fp}"),
        }
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
        assert!(format!("{h:?}").contains(h.fingerprint()));
        let kh = h.hash("AAAAAAAAAAAA", &[0; 32]);
        let dbg = format!("{kh:?}");
        assert_eq!(dbg, "KeyHash([REDACTED])");
    }

    fn peppers(list: &[&str]) -> KeyPeppers {
        let list: Vec<SecretString> = list.iter().map(|p| SecretString::from(*p)).collect();
        KeyPeppers::new(&list).unwrap()
    }

    #[test]
    fn fingerprints_are_stable_distinct_and_reveal_nothing() {
        let a = hasher("0123456789abcdef-pepper-a");
        let b = hasher("0123456789abcdef-pepper-b");
        assert_eq!(
            a.fingerprint(),
            hasher("0123456789abcdef-pepper-a").fingerprint()
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        assert!(a.fingerprint().bytes().all(|c| c.is_ascii_hexdigit()));
        // Not the cheap HMAC of the salt: a leaked database must not make guesses cheap.
        let cheap = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef-pepper-a"),
            FINGERPRINT_SALT,
        );
        let cheap: String = cheap.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_ne!(a.fingerprint(), cheap);
    }

    #[test]
    fn a_key_hashed_with_an_old_pepper_verifies_under_new_and_old() {
        let (new, old) = ("0123456789abcdef-pepper-new", "0123456789abcdef-pepper-old");
        let s = [9u8; 32];
        let stored = hasher(old).hash("AAAAAAAAAAAA", &s);
        let old_fp = hasher(old).fingerprint().to_owned();
        let list = peppers(&[new, old]);
        // By its recorded fingerprint, and by trial when none is recorded.
        assert_eq!(
            list.verify("AAAAAAAAAAAA", &s, &stored, Some(&old_fp)),
            Some(1)
        );
        assert_eq!(list.verify("AAAAAAAAAAAA", &s, &stored, None), Some(1));
        assert_eq!(list.describe(Some(&old_fp)), format!("old:{old_fp}"));
        // Re-hashed under the current pepper, it carries the current fingerprint.
        let upgraded = list.current().hash("AAAAAAAAAAAA", &s);
        let new_fp = list.current().fingerprint().to_owned();
        assert_eq!(
            list.verify("AAAAAAAAAAAA", &s, &upgraded, Some(&new_fp)),
            Some(0)
        );
        assert_eq!(list.describe(Some(&new_fp)), "current");
        // Without the old pepper the old hash verifies under nothing.
        let only_new = peppers(&[new]);
        assert_eq!(
            only_new.verify("AAAAAAAAAAAA", &s, &stored, Some(&old_fp)),
            None
        );
        assert_eq!(only_new.verify("AAAAAAAAAAAA", &s, &stored, None), None);
        assert_eq!(
            only_new.describe(Some(&old_fp)),
            format!("unknown:{old_fp}")
        );
        assert_eq!(only_new.describe(None), "unrecorded");
        // A wrong secret fails under every pepper.
        assert_eq!(list.verify("AAAAAAAAAAAA", &[8u8; 32], &stored, None), None);
        // A fingerprint naming the wrong configured pepper is not a way around the MAC.
        assert_eq!(
            list.verify("AAAAAAAAAAAA", &s, &stored, Some(&new_fp)),
            None
        );
    }

    #[test]
    fn pepper_lists_are_checked_without_echoing_secrets() {
        let err = |list: &[&str]| {
            let list: Vec<SecretString> = list.iter().map(|p| SecretString::from(*p)).collect();
            KeyPeppers::new(&list).unwrap_err()
        };
        let dup = err(&["0123456789abcdef-dup", "0123456789abcdef-dup"]);
        assert!(matches!(dup, StoreError::Invalid(_)));
        assert!(!dup.to_string().contains("0123456789abcdef"));
        assert!(matches!(err(&[]), StoreError::Invalid(_)));
        assert!(matches!(
            err(&["0123456789abcdef-ok", "short"]),
            StoreError::WeakPepper
        ));
        let five = [
            "0123456789abcdef-1",
            "0123456789abcdef-2",
            "0123456789abcdef-3",
            "0123456789abcdef-4",
            "0123456789abcdef-5",
        ];
        assert!(matches!(err(&five), StoreError::Invalid(_)));
        let list = peppers(&["0123456789abcdef-1", "0123456789abcdef-2"]);
        assert!(!format!("{list:?}").contains("0123456789abcdef"));
    }
}
