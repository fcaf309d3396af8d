//! `application/x-www-form-urlencoded`, in bodies and in query strings: name/value pairs
//! decoded once, names folded the way lenient frameworks read them, values typed by the
//! schema, and the object that is validated and forwarded.

use super::*;

pub(super) const FORM: &str = "application/x-www-form-urlencoded";

/// `name=value` pairs of a query string or form body, `+` read as a space and percent
/// escapes decoded (as `form_urlencoded` does), except that a name or value that is not
/// UTF-8 is an error in `location`, never replaced.
pub(super) fn decode_pairs(
    text: &[u8],
    location: &'static str,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, String)> {
    let decode = |bytes: &[u8]| {
        let plus: Vec<u8> = (bytes.iter())
            .map(|b| if *b == b'+' { b' ' } else { *b })
            .collect();
        String::from_utf8(percent_encoding::percent_decode(&plus).collect()).ok()
    };
    let mut pairs = Vec::new();
    for part in text.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match part.iter().position(|b| *b == b'=') {
            Some(at) => (&part[..at], &part[at + 1..]),
            None => (part, &b""[..]),
        };
        match (decode(name), decode(value)) {
            (Some(name), Some(value)) => pairs.push((name, value)),
            (Some(name), None) => capped(errors, error(location, &pointer_to(&name), NOT_UTF8)),
            (None, _) => {
                let detail = "has a name that is not valid UTF-8 once percent-decoded";
                capped(errors, error(location, "", detail));
            }
        }
    }
    pairs
}

/// Checks a form body against `media` and returns the form to forward, re-encoded from
/// the pairs that were validated.
pub(super) fn check_form(
    ctx: &RequestCtx,
    bytes: &[u8],
    media: &BodySchema,
) -> Result<Body, Rejection> {
    let mut errors = Vec::new();
    let pairs = decode_pairs(bytes, "body", &mut errors);
    reject_if_any(ctx, errors)?;
    let mut errors = Vec::new();
    // `AMOUNT=…` or `amount[]=…` beside a declared `amount`: as for the query, an upstream
    // that folds names would read a value the gateway never checked.
    for name in shadowed_names(&pairs, &media.declared) {
        let detail = "differs from a declared property only in case, brackets or punctuation";
        capped(&mut errors, error("body", &pointer_to(name), detail));
    }
    reject_if_any(ctx, errors)?;
    let mut errors = Vec::new();
    let object = object_of(&pairs, &media.kinds, "body", "", &mut errors);
    media.schema.errors(&object, "body", "", &mut errors);
    reject_if_any(ctx, errors)?;
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(&pairs);
    Ok(body::full(form.finish().into_bytes()))
}

/// Name/value pairs as one object, values typed by `kinds`; a name given twice is an error
/// unless its kind is an array. Errors' pointers start with `prefix`.
pub(super) fn object_of(
    pairs: &[(String, String)],
    kinds: &HashMap<String, Kind>,
    location: &'static str,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Value {
    let mut object = Map::new();
    for (name, value) in pairs {
        let kind = kinds.get(name).cloned().unwrap_or(Kind::Text);
        match (&kind, object.get_mut(name)) {
            (Kind::Array(item), Some(Value::Array(items))) => items.push(typed(value, item)),
            (Kind::Array(item), None) => {
                object.insert(name.clone(), Value::Array(vec![typed(value, item)]));
            }
            (_, Some(_)) => {
                let pointer = format!("{prefix}{}", pointer_to(name));
                if !errors
                    .iter()
                    .any(|e| e.pointer == pointer && e.location == location)
                {
                    capped(errors, error(location, &pointer, "is given more than once"));
                }
            }
            (_, None) => {
                object.insert(name.clone(), typed(value, &kind));
            }
        }
    }
    Value::Object(object)
}

/// The names of `pairs` that are not in `declared` but fold (see [`folded_name`]) to a
/// name that is, each once.
pub(super) fn shadowed_names<'p>(
    pairs: &'p [(String, String)],
    declared: &[String],
) -> Vec<&'p str> {
    let mut out: Vec<&str> = Vec::new();
    for (name, _) in pairs {
        let folded = folded_name(name);
        let shadows = !declared.contains(name)
            && (declared.iter()).any(|declared| folded_name(declared) == folded);
        if shadows && !out.contains(&name.as_str()) {
            out.push(name);
        }
    }
    out
}

/// A query name as lenient frameworks read it: lower-case, a trailing `[...]` dropped,
/// `.` and spaces as `_`.
pub(super) fn folded_name(name: &str) -> String {
    let base = match name.find('[') {
        Some(at) if name.ends_with(']') => &name[..at],
        _ => name,
    };
    base.chars()
        .map(|c| {
            if c == '.' || c == ' ' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// A textual value read as `kind`; left as text when it is not one (the schema then says
/// what was expected).
pub(super) fn typed(text: &str, kind: &Kind) -> Value {
    match kind {
        Kind::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        Kind::Number => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.to_owned())),
        Kind::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        Kind::Text | Kind::Array(_) | Kind::Object(_) => Value::String(text.to_owned()),
    }
}
