//! JSON as every control reads it: a strict parse (`parse_strict`), the nesting depth of
//! a text before it is parsed (`depth`), and JSON pointers with a wildcard for owner
//! fields, collections and field rules.
//!
//! RFC 6901 pointers (`/items/0/ownerId`, `~1` for `/`, `~0` for `~`), plus one extension:
//! a segment `*` stands for every element of an array or every member of an object, so
//! `/items/*/internalNote` names that field in every item.

pub mod depth;

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses JSON, refusing duplicate member names at any depth.
///
/// Why: parsers disagree on `{"ownerId":"bob","ownerId":"alice"}` (serde keeps the last,
/// others the first), so a gateway and an upstream could read two different owners.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(bytes).map(|strict| strict.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrictVisitor;
        impl<'de> Visitor<'de> for StrictVisitor {
            type Value = Strict;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                Ok(Strict(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                Ok(Strict(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                Ok(Strict(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                Ok(Strict(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                Ok(Strict(Value::String(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Strict, E> {
                Ok(Strict(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Strict, E> {
                Ok(Strict(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
                let mut items = Vec::new();
                while let Some(Strict(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Strict(Value::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Strict, A::Error> {
                let mut map = Map::new();
                while let Some((key, Strict(value))) = access.next_entry::<String, Strict>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate member `{key}`"
                        )));
                    }
                    map.insert(key, value);
                }
                Ok(Strict(Value::Object(map)))
            }
        }
        deserializer.deserialize_any(StrictVisitor)
    }
}

fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Every location `pointer` names in `value`, as mutable references to their parents and
/// the last segment.
fn visit_parents<'v>(
    value: &'v mut Value,
    segs: &[String],
    out: &mut Vec<(&'v mut Value, String)>,
) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    if rest.is_empty() {
        out.push((value, first.clone()));
        return;
    }
    let wildcard = first == "*";
    match value {
        Value::Object(map) => {
            if wildcard {
                for child in map.values_mut() {
                    visit_parents(child, rest, out);
                }
            } else {
                // Member names match ignoring ASCII case: Go's encoding/json, ASP.NET and
                // others bind `IsAdmin` to a field `isAdmin`.
                for (name, child) in map.iter_mut() {
                    if name.eq_ignore_ascii_case(first) {
                        visit_parents(child, rest, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            if wildcard {
                for child in items.iter_mut() {
                    visit_parents(child, rest, out);
                }
            } else if let Some(child) = first.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                visit_parents(child, rest, out);
            }
        }
        _ => {}
    }
}

/// Removes every field `pointer` names; returns how many were removed.
pub(crate) fn remove_matching(value: &mut Value, pointer: &str) -> usize {
    let segs = segments(pointer);
    let mut parents = Vec::new();
    visit_parents(value, &segs, &mut parents);
    let mut removed = 0;
    for (parent, last) in parents {
        match parent {
            Value::Object(map) if last == "*" => {
                removed += map.len();
                map.clear();
            }
            Value::Object(map) => {
                let before = map.len();
                map.retain(|name, _| !name.eq_ignore_ascii_case(&last));
                removed += before - map.len();
            }
            // Array elements are not removed by a field rule: that would shift indexes.
            _ => {}
        }
    }
    removed
}

/// Every value `pointer` names, read in place: the same rules as `remove_matching`
/// (member names ignoring ASCII case, `*` for every item or member, array elements never
/// the last step), without copying the document.
fn leaves<'v>(value: &'v Value, segs: &[String], out: &mut Vec<&'v Value>) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    let wildcard = first == "*";
    let children: Vec<&Value> = match value {
        Value::Object(map) => map
            .iter()
            .filter(|(name, _)| wildcard || name.eq_ignore_ascii_case(first))
            .map(|(_, child)| child)
            .collect(),
        Value::Array(items) if !rest.is_empty() => {
            if wildcard {
                items.iter().collect()
            } else {
                first
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .into_iter()
                    .collect()
            }
        }
        _ => Vec::new(),
    };
    if rest.is_empty() {
        out.extend(children);
    } else {
        for child in children {
            leaves(child, rest, out);
        }
    }
}

/// Whether any field `pointer` names is present.
pub(crate) fn any_matching(value: &Value, pointer: &str) -> bool {
    let mut found = Vec::new();
    leaves(value, &segments(pointer), &mut found);
    !found.is_empty()
}

/// The owner at `pointer`, as text: a string as is, a number in its JSON form. Anything
/// else (absent, null, object) is no owner.
pub(crate) fn owner_of(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Keeps the items of the array at `collection` whose owner is `expected`; returns
/// `(kept, removed)`, or `None` when there is no array there.
pub(crate) fn filter_owned(
    doc: &mut Value,
    collection: &str,
    field: &str,
    expected: &str,
) -> Option<(usize, usize)> {
    let items = if collection.is_empty() {
        doc.as_array_mut()?
    } else {
        doc.pointer_mut(collection)?.as_array_mut()?
    };
    let before = items.len();
    items.retain(|item| owner_of(item, field).as_deref() == Some(expected));
    Some((items.len(), before - items.len()))
}

/// Every value found at `pointer`, member names compared ignoring ASCII case (so
/// `/ownerId` also finds `OwnerID`, which some upstreams bind to the same field).
pub(crate) fn values_at<'v>(value: &'v Value, pointer: &str) -> Vec<&'v Value> {
    let mut found = Vec::new();
    leaves(value, &segments(pointer), &mut found);
    found
}

/// Sets the field at `pointer` (its parent must be an object), removing any member whose
/// name differs only in case; false when it cannot.
pub(crate) fn set_field(value: &mut Value, pointer: &str, new: Value) -> bool {
    let segs = segments(pointer);
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut node = value;
    for seg in parents {
        node = match node {
            Value::Object(map) => match map.get_mut(seg.as_str()) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match node {
        Value::Object(map) => {
            map.retain(|name, _| !name.eq_ignore_ascii_case(last));
            map.insert(last.clone(), new);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcard_removal() {
        let mut doc = json!({"items": [{"a": 1, "note": "x"}, {"a": 2, "note": "y"}, {"a": 3}], "passwordHash": "h"});
        assert_eq!(remove_matching(&mut doc, "/items/*/note"), 2);
        assert_eq!(remove_matching(&mut doc, "/passwordHash"), 1);
        assert_eq!(remove_matching(&mut doc, "/missing/deep"), 0);
        assert_eq!(doc, json!({"items": [{"a": 1}, {"a": 2}, {"a": 3}]}));
    }

    #[test]
    fn escaped_segments_and_detection() {
        let doc = json!({"a/b": {"~c": 1}, "role": "admin"});
        assert!(any_matching(&doc, "/a~1b/~0c"));
        assert!(any_matching(&doc, "/role"));
        assert!(!any_matching(&doc, "/isAdmin"));
    }

    #[test]
    fn owners_and_collections() {
        assert_eq!(
            owner_of(&json!({"ownerId": "alice"}), "/ownerId").as_deref(),
            Some("alice")
        );
        assert_eq!(
            owner_of(&json!({"owner": {"id": 42}}), "/owner/id").as_deref(),
            Some("42")
        );
        assert_eq!(owner_of(&json!({"ownerId": null}), "/ownerId"), None);
        let mut list = json!({"items": [{"ownerId": "alice"}, {"ownerId": "bob"}, {}]});
        assert_eq!(
            filter_owned(&mut list, "/items", "/ownerId", "alice"),
            Some((1, 2))
        );
        assert_eq!(list, json!({"items": [{"ownerId": "alice"}]}));
        let mut root = json!([{"ownerId": "bob"}]);
        assert_eq!(
            filter_owned(&mut root, "", "/ownerId", "alice"),
            Some((0, 1))
        );
        assert_eq!(
            filter_owned(&mut json!({"items": 1}), "/items", "/ownerId", "a"),
            None
        );
    }

    #[test]
    fn strict_parsing_refuses_duplicates_at_any_depth() {
        assert!(parse_strict(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_strict(br#"{"x":[{"ownerId":"bob","ownerId":"alice"}]}"#).is_err());
        assert_eq!(
            parse_strict(br#"{"a":[1,{"b":null}]}"#).unwrap(),
            json!({"a":[1,{"b":null}]})
        );
    }

    #[test]
    fn names_match_ignoring_case() {
        let doc = json!({"OwnerID": "alice", "IsAdmin": true});
        assert!(any_matching(&doc, "/isAdmin"));
        assert_eq!(values_at(&doc, "/ownerId"), [&json!("alice")]);
        let mut doc = doc;
        assert!(set_field(&mut doc, "/ownerId", json!("bob")));
        assert_eq!(doc, json!({"ownerId": "bob", "IsAdmin": true}));
    }

    #[test]
    fn setting_a_field() {
        let mut body = json!({"item": "pen"});
        assert!(set_field(&mut body, "/ownerId", json!("alice")));
        assert_eq!(body["ownerId"], "alice");
        assert!(!set_field(&mut json!([1]), "/ownerId", json!("a")));
    }
}
