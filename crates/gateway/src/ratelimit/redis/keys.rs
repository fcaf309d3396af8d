//! Key names: `palisade:rl:{<32 hex>}`, a digest of the bucket, so no client address,
//! header value or account name is stored in the clear and key length is fixed. In a
//! Redis Cluster every key shares one hash tag instead (see `cluster`).

/// The one hash tag of every key in a Redis Cluster (see `cluster`).
pub(super) const CLUSTER_TAG: &str = "{palisade}";

/// `palisade:rl:{<first 16 bytes of SHA-256, hex>}`.
pub(super) fn bucket_key(bucket: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bucket.as_bytes());
    let mut key = String::with_capacity(46);
    key.push_str("palisade:rl:{");
    for byte in &digest.as_ref()[..16] {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    key.push('}');
    key
}

/// `palisade:rl:{palisade}:<first 16 bytes of SHA-256, hex>`: in a cluster every key of
/// the limiter hashes to the same slot (see `cluster`).
pub(super) fn cluster_key(bucket: &str) -> String {
    let standalone = bucket_key(bucket);
    let digest = &standalone["palisade:rl:{".len()..standalone.len() - 1];
    format!("palisade:rl:{CLUSTER_TAG}:{digest}")
}

const HEX: &[u8; 16] = b"0123456789abcdef";
