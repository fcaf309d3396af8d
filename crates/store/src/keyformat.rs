//! The API key format: `pal_<id>_<secret>`.
//!
//! - `pal_` — a fixed, case-sensitive prefix, so keys are recognisable in logs and by secret
//!   scanners ([`looks_like_key`]).
//! - `<id>` — 12 characters of base62 (`0-9A-Za-z`), each drawn uniformly from the OS RNG
//!   (rejection sampling, no modulo bias): ~71 bits, enough that ids never collide in
//!   practice. The id is **public**: it names the key in lists, logs and the admin API, and it
//!   is the database primary key.
//! - `<secret>` — 256 bits from the OS RNG, written as exactly 43 base62 digits: the 32 random
//!   bytes are read as one big-endian unsigned integer and written in base 62, most
//!   significant digit first, left-padded with `0` to 43 digits. 62^43 ≈ 2^256.03, so 43
//!   digits hold every 256-bit value; the encoding is a bijection between 256-bit values and
//!   the 43-digit strings whose value is below 2^256. Parsing rejects the few 43-digit strings
//!   at or above 2^256, so every secret has exactly one spelling (no two strings verify as
//!   the same key).
//!
//! Parsing ([`ParsedKey::parse`]) is strict: exact prefix, exact lengths (4 + 12 + 1 + 43 =
//! 60 bytes), the `_` separator at its one place, the base62 alphabet only, the secret below
//! 2^256. Anything else is malformed and is rejected before any store or crypto work.

use aws_lc_rs::rand;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::StoreError;

/// The fixed key prefix.
pub const PREFIX: &str = "pal_";
/// Length of the public key id, in base62 characters.
pub const ID_LEN: usize = 12;
/// Length of the secret, in base62 characters (256 bits).
pub const SECRET_LEN: usize = 43;
/// Length of a whole key: `pal_` + id + `_` + secret.
pub const KEY_LEN: usize = PREFIX.len() + ID_LEN + 1 + SECRET_LEN;

/// Number of random bytes behind a secret.
pub const SECRET_BYTES: usize = 32;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The value of one base62 digit, or `None` outside the alphabet.
const fn digit_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

fn is_base62(s: &[u8]) -> bool {
    s.iter().all(|&c| digit_value(c).is_some())
}

/// True when `id` has the exact shape of a key id (12 base62 characters).
pub fn is_valid_id(id: &str) -> bool {
    id.len() == ID_LEN && is_base62(id.as_bytes())
}

/// A cheap shape check for log masking: true when `s` starts with `pal_`, a 12-character
/// base62 id and `_`, followed by at least one base62 character.
///
/// It is deliberately looser than [`ParsedKey::parse`] on the secret part (any length, no
/// range check), so that truncated or over-long keys are masked too; it never allocates.
pub fn looks_like_key(s: &str) -> bool {
    let b = s.as_bytes();
    let head = PREFIX.len() + ID_LEN;
    b.len() > head + 1
        && b.starts_with(PREFIX.as_bytes())
        && is_base62(&b[PREFIX.len()..head])
        && b[head] == b'_'
        && is_base62(&b[head + 1..])
}

/// A key that passed strict parsing: the public id and the 32 secret bytes.
pub struct ParsedKey<'a> {
    pub(crate) id: &'a str,
    pub(crate) secret: SecretBox<[u8; SECRET_BYTES]>,
}

impl std::fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedKey")
            .field("id", &self.id)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

impl<'a> ParsedKey<'a> {
    /// Strict parse of `pal_<id>_<secret>`; `None` for anything else.
    pub fn parse(presented: &'a str) -> Option<ParsedKey<'a>> {
        let b = presented.as_bytes();
        if b.len() != KEY_LEN || !b.starts_with(PREFIX.as_bytes()) {
            return None;
        }
        let id_end = PREFIX.len() + ID_LEN;
        if b[id_end] != b'_' {
            return None;
        }
        // All-ASCII from here on (checked by the alphabet), so the slicing below is on char
        // boundaries.
        let id_bytes = &b[PREFIX.len()..id_end];
        if !is_base62(id_bytes) {
            return None;
        }
        let secret = decode_secret(&b[id_end + 1..])?;
        Some(ParsedKey {
            id: &presented[PREFIX.len()..id_end],
            secret,
        })
    }

    /// The public key id.
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The secret as a 256-bit big-endian integer.
    pub fn secret(&self) -> &SecretBox<[u8; SECRET_BYTES]> {
        &self.secret
    }
}

/// Decodes 43 base62 digits into 32 big-endian bytes; `None` on a bad digit, a wrong
/// length, or a value of 2^256 or more.
fn decode_secret(digits: &[u8]) -> Option<SecretBox<[u8; SECRET_BYTES]>> {
    if digits.len() != SECRET_LEN {
        return None;
    }
    // n = n * 62 + d over four 64-bit limbs, least significant first (a quarter of the
    // steps of a byte-wise loop: this runs on every request that presents a key).
    let mut limbs = [0u64; SECRET_BYTES / 8];
    for &c in digits {
        let Some(d) = digit_value(c) else {
            limbs.fill(0);
            return None;
        };
        let mut carry = u128::from(d);
        for limb in limbs.iter_mut() {
            let v = u128::from(*limb) * 62 + carry;
            *limb = v as u64;
            carry = v >> 64;
        }
        if carry != 0 {
            limbs.fill(0);
            return None;
        }
    }
    let mut out = SecretBox::new(Box::new([0u8; SECRET_BYTES]));
    let n = secrecy::ExposeSecretMut::expose_secret_mut(&mut out);
    for (chunk, limb) in n.chunks_exact_mut(8).zip(limbs.iter().rev()) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    limbs.fill(0);
    Some(out)
}

/// Encodes 32 bytes (big-endian integer) as exactly 43 base62 digits.
fn encode_secret(bytes: &[u8; SECRET_BYTES]) -> SecretString {
    let mut n = *bytes;
    let mut digits = [b'0'; SECRET_LEN];
    for slot in digits.iter_mut().rev() {
        // n, rem = divmod(n, 62)
        let mut rem = 0u32;
        for byte in n.iter_mut() {
            let v = (rem << 8) | u32::from(*byte);
            *byte = (v / 62) as u8;
            rem = v % 62;
        }
        *slot = ALPHABET[rem as usize];
    }
    // 62^43 > 2^256: the quotient is always zero here.
    debug_assert!(n.iter().all(|&b| b == 0));
    n.fill(0);
    let s = String::from_utf8(digits.to_vec()).unwrap_or_default();
    digits.fill(0);
    SecretString::from(s)
}

/// Fills `buf` from the OS RNG (aws-lc's `SystemRandom`).
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), StoreError> {
    rand::fill(buf).map_err(|_| StoreError::Random)
}

/// A fresh, uniformly random key id.
pub(crate) fn generate_id() -> Result<String, StoreError> {
    let mut id = String::with_capacity(ID_LEN);
    let mut buf = [0u8; 32];
    while id.len() < ID_LEN {
        fill_random(&mut buf)?;
        // Rejection sampling: 248 = 4 * 62, so `b % 62` is uniform for b < 248.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if id.len() == ID_LEN {
                break;
            }
            id.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }
    Ok(id)
}

/// A fresh key: its id, the secret's raw bytes (for hashing) and the full key string.
pub(crate) struct GeneratedKey {
    pub(crate) id: String,
    pub(crate) secret: SecretBox<[u8; SECRET_BYTES]>,
    pub(crate) full: SecretString,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

pub(crate) fn generate_key() -> Result<GeneratedKey, StoreError> {
    let id = generate_id()?;
    let mut secret = SecretBox::new(Box::new([0u8; SECRET_BYTES]));
    fill_random(secrecy::ExposeSecretMut::expose_secret_mut(&mut secret))?;
    let encoded = encode_secret(secret.expose_secret());
    let full = SecretString::from(format!("{PREFIX}{id}_{}", encoded.expose_secret()));
    Ok(GeneratedKey { id, secret, full })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_str(bytes: &[u8; 32]) -> String {
        encode_secret(bytes).expose_secret().to_owned()
    }

    #[test]
    fn encoding_is_fixed_length_and_round_trips() {
        let cases: [[u8; 32]; 4] = [[0; 32], [0xff; 32], [1; 32], {
            let mut b = [0u8; 32];
            b[31] = 61;
            b
        }];
        for bytes in cases {
            let s = secret_str(&bytes);
            assert_eq!(s.len(), SECRET_LEN);
            let back = decode_secret(s.as_bytes()).expect("decodes");
            assert_eq!(back.expose_secret(), &bytes);
        }
        assert_eq!(secret_str(&[0; 32]), "0".repeat(43));
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(secret_str(&one), format!("{}1", "0".repeat(42)));
        let mut b61 = [0u8; 32];
        b61[31] = 61;
        assert_eq!(secret_str(&b61), format!("{}z", "0".repeat(42)));
        let mut b62 = [0u8; 32];
        b62[31] = 62;
        assert_eq!(secret_str(&b62), format!("{}10", "0".repeat(41)));
    }

    #[test]
    fn random_keys_round_trip() {
        for _ in 0..200 {
            let k = generate_key().unwrap();
            let full = k.full.expose_secret();
            assert_eq!(full.len(), KEY_LEN);
            let p = ParsedKey::parse(full).expect("parses");
            assert_eq!(p.id, k.id);
            assert_eq!(p.secret.expose_secret(), k.secret.expose_secret());
            assert!(looks_like_key(full));
        }
    }

    #[test]
    fn the_largest_secret_is_accepted_and_the_next_value_is_not() {
        let max = secret_str(&[0xff; 32]);
        assert!(decode_secret(max.as_bytes()).is_some());
        // 2^256 itself: increment the max string by one in base 62.
        let mut digits: Vec<u8> = max.bytes().map(|c| digit_value(c).unwrap()).collect();
        let mut i = digits.len();
        loop {
            i -= 1;
            if digits[i] == 61 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
        let over: Vec<u8> = digits.iter().map(|&d| ALPHABET[usize::from(d)]).collect();
        assert!(decode_secret(&over).is_none());
        assert!(decode_secret(&[b'z'; 43]).is_none());
    }

    #[test]
    fn strict_parsing() {
        let k = generate_key().unwrap();
        let good = k.full.expose_secret().to_owned();
        assert!(ParsedKey::parse(&good).is_some());
        let bad = [
            good.replacen("pal_", "pak_", 1),
            good.replacen("pal_", "PAL_", 1),
            good.replacen("pal_", "pal-", 1),
            good[..good.len() - 1].to_owned(),
            format!("{good}0"),
            format!(" {good}"),
            format!("{good}\n"),
            format!("{}_{}", &good[..17], &good[18..]), // extra '_' replaces a secret char
            format!("{}_{}", &good[..15], &good[16..]), // '_' inside the id
            good.replacen('_', "", 2),
            format!("{}__{}", &good[..16], &good[17..59]), // doubled separator, same length
            format!("{}!{}", &good[..20], &good[21..]),
            format!("{}é{}", &good[..20], &good[22..]),
            String::new(),
            "pal_".into(),
            format!("pal__{}", &good[5..]),
        ];
        for b in &bad {
            assert!(ParsedKey::parse(b).is_none(), "accepted {b:?}");
        }
    }

    #[test]
    fn ids_are_base62_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = generate_id().unwrap();
            assert!(is_valid_id(&id), "{id}");
            assert!(seen.insert(id));
        }
        assert!(!is_valid_id("abc"));
        assert!(!is_valid_id("abcdefghijk_"));
    }

    #[test]
    fn looks_like_key_shapes() {
        assert!(looks_like_key("pal_abcdefABCDEF_x"));
        assert!(!looks_like_key("pal_friend"));
        assert!(!looks_like_key("pal_abcdefABCDEF_"));
        assert!(!looks_like_key("pal_abcdefABCDE_xx"));
        assert!(!looks_like_key("Bearer pal_abcdefABCDEF_x"));
        assert!(!looks_like_key(""));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = generate_key().unwrap();
        let full = k.full.expose_secret().to_owned();
        let secret = &full[17..];
        let p = ParsedKey::parse(&full).unwrap();
        for dbg in [format!("{k:?}"), format!("{p:?}")] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
    }
}
