//! The request-body fields some limits key on: `per = { body = "/username" }` and a login
//! route's `login.account`.
//!
//! Input: the size-limited body and the pointers wanted. Output: the body to forward (the
//! same bytes) and the values found. Failure: 413 past `max_body`; 400 when the body is
//! not JSON or a form, is invalid, or names a field twice.
//!
//! Why strict: these values decide whose quota a login attempt spends. If the gateway and
//! the upstream could read two different accounts from one body (a repeated member, the
//! same name in another case, a form field given twice), an attacker would spend the
//! decoy's quota and guess the victim's password. So member names match ignoring ASCII
//! case, like the owner checks, and a body where a field resolves to two values is
//! refused. Values are trimmed and lower-cased, so `Alice` and ` alice` share a bucket.

use http::HeaderMap;
use serde_json::Value;

use super::BodyFields;
use crate::body::{self, Body, read_limited};
use crate::headers::{is_json_media, media_essence};
use crate::json::{parse_strict, values_at};
use crate::rejection::Rejection;

enum Format {
    Json,
    Form,
}

/// Reads `pointers` from the body (nothing is read when there are none). `required` (a
/// login's account) must be present; `query` must not name any of them too.
pub(crate) async fn read_fields(
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
    max_body: u64,
    pointers: &[&str],
    required: Option<&str>,
) -> Result<(Body, BodyFields), Rejection> {
    if pointers.is_empty() {
        return Ok((body, BodyFields::default()));
    }
    // `?username=bob` beside the body: frameworks that merge the two (Flask's
    // `request.values`, PHP's `$_REQUEST`) could read the account from either.
    let in_query = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(key, _)| (pointers.iter()).any(|p| same_field(&key, p.trim_start_matches('/'))));
    if in_query {
        return Err(ambiguous());
    }
    let bytes = read_limited(body, max_body)
        .await
        .map_err(|_| Rejection::PayloadTooLarge { limit: max_body })?;
    if bytes.is_empty() {
        return match required {
            Some(_) => Err(missing()),
            None => Ok((body::empty(), BodyFields::default())),
        };
    }
    let format = format_of(headers).ok_or(Rejection::BadRequest(
        "this route reads its body as JSON or a form: send one of those content types",
    ))?;
    let mut fields = BodyFields::default();
    match format {
        Format::Json => {
            let doc = parse_strict(&bytes).map_err(|_| {
                Rejection::BadRequest("the request body is not valid JSON, or repeats a member")
            })?;
            for pointer in pointers {
                match values_at(&doc, pointer).as_slice() {
                    [] => {}
                    [one] => {
                        // `["bob"]` or `{"$eq": "bob"}` may be read as "bob" upstream.
                        let value = scalar(one).ok_or(Rejection::BadRequest(
                            "a rate-limited body field must be a string, a number or a boolean",
                        ))?;
                        fields
                            .values
                            .push(((*pointer).to_owned(), normalize(&value)));
                    }
                    _ => return Err(ambiguous()),
                }
            }
        }
        Format::Form => {
            for pointer in pointers {
                // A form has one level: `/name` is the field `name`.
                let name = pointer.trim_start_matches('/');
                let mut found = form_urlencoded::parse(&bytes)
                    .filter(|(key, _)| same_field(key, name))
                    .map(|(_, value)| value);
                if let Some(value) = found.next() {
                    if found.next().is_some() {
                        return Err(ambiguous());
                    }
                    fields
                        .values
                        .push(((*pointer).to_owned(), normalize(&value)));
                }
            }
        }
    }
    if required.is_some_and(|pointer| fields.get(pointer).is_none()) {
        return Err(missing());
    }
    Ok((body::full(bytes), fields))
}

/// Whether a form or query key names `field` as lenient frameworks read it: ignoring ASCII
/// case and a trailing `[...]` (`Username`, `username[]`).
fn same_field(key: &str, field: &str) -> bool {
    let key = match key.find('[') {
        Some(at) if key.ends_with(']') => &key[..at],
        _ => key,
    };
    key.eq_ignore_ascii_case(field)
}

fn missing() -> Rejection {
    Rejection::BadRequest("a login must name its account in the body")
}

fn ambiguous() -> Rejection {
    Rejection::BadRequest("the request body names a rate-limited field more than once")
}

fn format_of(headers: &HeaderMap) -> Option<Format> {
    let essence = media_essence(headers)?;
    if is_json_media(&essence) {
        Some(Format::Json)
    } else if essence == "application/x-www-form-urlencoded" {
        Some(Format::Form)
    } else {
        None
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn normalize(value: &str) -> String {
    value.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::CONTENT_TYPE;
    use http_body_util::BodyExt;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        h
    }

    async fn read(
        content_type: &str,
        text: &str,
    ) -> Result<(Vec<u8>, Vec<(String, String)>), Rejection> {
        let (body, fields) = read_fields(
            &headers(content_type),
            None,
            body::full(text.as_bytes().to_vec()),
            1024,
            &["/username"],
            None,
        )
        .await?;
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        Ok((bytes, fields.values))
    }

    #[tokio::test]
    async fn json_and_form_accounts_are_found_and_the_bytes_pass_unchanged() {
        let json = r#"{"USERNAME": "  Alice ", "password": "x"}"#;
        let (bytes, values) = read("application/json", json).await.unwrap();
        assert_eq!(bytes, json.as_bytes());
        assert_eq!(values, [("/username".to_owned(), "alice".to_owned())]);

        let form = "username=Bob%40example.com&password=x";
        let (bytes, values) = read("application/x-www-form-urlencoded", form)
            .await
            .unwrap();
        assert_eq!(bytes, form.as_bytes());
        assert_eq!(
            values,
            [("/username".to_owned(), "bob@example.com".to_owned())]
        );

        let (_, values) = read("application/json", r#"{"password": "x"}"#)
            .await
            .unwrap();
        assert!(values.is_empty(), "an absent field is not invented");
    }

    #[tokio::test]
    async fn two_readings_of_one_account_are_refused() {
        for (content_type, text) in [
            ("application/json", r#"{"username": "a", "username": "b"}"#),
            ("application/json", r#"{"username": "a", "UserName": "b"}"#),
            ("application/x-www-form-urlencoded", "username=a&USERNAME=b"),
            (
                "application/x-www-form-urlencoded",
                "username=a&username[]=b",
            ),
            ("application/json", r#"{"username": ["bob"]}"#),
            ("application/json", r#"{"username": {"$eq": "bob"}}"#),
            ("text/plain", "username=a"),
            ("application/json", "{not json"),
        ] {
            let rejection = read(content_type, text).await.unwrap_err();
            assert!(
                matches!(rejection, Rejection::BadRequest(_)),
                "{content_type} {text}: {rejection:?}"
            );
        }
    }

    #[tokio::test]
    async fn oversized_bodies_are_413() {
        let big = format!(r#"{{"username": "{}"}}"#, "a".repeat(2000));
        let rejection = read("application/json", &big).await.unwrap_err();
        assert!(matches!(rejection, Rejection::PayloadTooLarge { .. }));
    }

    #[tokio::test]
    async fn a_login_must_name_its_account_once_and_only_in_the_body() {
        let login = |query: Option<&'static str>, text: &'static str| async move {
            read_fields(
                &headers("application/json"),
                query,
                body::full(text.as_bytes().to_vec()),
                1024,
                &["/username"],
                Some("/username"),
            )
            .await
            .map(|(_, fields)| fields.values)
        };
        assert!(login(None, r#"{"username": "bob"}"#).await.is_ok());
        for (query, text) in [
            (None, r#"{"user": "bob"}"#),
            (None, ""),
            (Some("username=bob"), r#"{"username": "alice"}"#),
            (Some("UserName[]=bob"), r#"{"username": "alice"}"#),
        ] {
            let refused = login(query, text).await.unwrap_err();
            assert!(
                matches!(refused, Rejection::BadRequest(_)),
                "{query:?} {text}"
            );
        }
    }
}
