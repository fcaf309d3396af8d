//! Media ranges: which of a route's media types is the most specific for a body's
//! `Content-Type` (its essence is read by `crate::headers`).

/// How specifically `range` (`type/subtype`, `type/*+suffix`, `type/*`, `*/*`) matches
/// `essence`: 3 exact … 0 anything; `None` when it does not.
pub(super) fn media_match(range: &str, essence: &str) -> Option<u8> {
    let range = range.split(';').next().unwrap_or("").trim();
    if let Some((kind, suffix)) = range.split_once("/*+") {
        let fits =
            essence.starts_with(&format!("{kind}/")) && essence.ends_with(&format!("+{suffix}"));
        return fits.then_some(2);
    }
    match range.strip_suffix("/*") {
        Some("*") => Some(0),
        Some(kind) => (essence.split('/').next() == Some(kind)).then_some(1),
        None => (range == essence).then_some(3),
    }
}

/// The entry of `media` whose range matches `essence` most specifically, so a broad
/// `*/*` listed beside `application/json` never decides a JSON body (whatever the order).
pub(super) fn most_specific<'m, T>(
    media: &'m [(String, T)],
    essence: Option<&str>,
) -> Option<&'m T> {
    let essence = essence?;
    (media.iter())
        .filter_map(|(range, value)| media_match(range, essence).map(|rank| (rank, value)))
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, value)| value)
}
