//! `keyformat::ParsedKey::parse` on arbitrary presented keys: never panics; what it accepts
//! has the exact shape, passes the looser log-masking check, and has exactly one spelling
//! (the secret re-encoded by an independent base62 encoder gives back the digits given).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_store::keyformat::{self, ID_LEN, KEY_LEN, PREFIX, ParsedKey, SECRET_LEN};
use secrecy::ExposeSecret;

/// Big-endian 32 bytes → 43 base62 digits, by repeated division (the reference).
fn base62(bytes: &[u8; 32]) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = *bytes;
    let mut digits = vec![b'0'; SECRET_LEN];
    for slot in digits.iter_mut().rev() {
        let mut rem = 0u32;
        for byte in n.iter_mut() {
            let v = (rem << 8) | u32::from(*byte);
            *byte = (v / 62) as u8;
            rem = v % 62;
        }
        *slot = ALPHABET[rem as usize];
    }
    assert!(
        n.iter().all(|&b| b == 0),
        "a 256-bit value needs more than 43 digits"
    );
    String::from_utf8(digits).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The masking check must not panic on anything either.
    let looks = keyformat::looks_like_key(&text);
    let Some(parsed) = ParsedKey::parse(&text) else {
        return;
    };
    assert_eq!(text.len(), KEY_LEN);
    assert!(text.starts_with(PREFIX));
    assert!(looks, "a parsed key must be masked in logs");
    assert!(keyformat::is_valid_id(parsed.id()));
    assert_eq!(parsed.id(), &text[PREFIX.len()..PREFIX.len() + ID_LEN]);
    let digits = &text[PREFIX.len() + ID_LEN + 1..];
    assert_eq!(
        base62(parsed.secret().expose_secret()),
        digits,
        "two spellings of one secret"
    );
});
