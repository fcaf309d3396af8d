//! Path, query, header and cookie parameters: how a spec's parameter is read (its kind
//! and style, compiled once) and checked against each request.

use super::*;

impl Validation {
    /// Checks path parameters, the query, headers and cookies of `route`.
    pub fn check_request(
        &self,
        ctx: &RequestCtx,
        route: usize,
        path_params: &[(String, String)],
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(), Rejection> {
        let Some(rules) = self.rules(route) else {
            return Ok(());
        };
        let mut errors = Vec::new();
        // Decoded strictly: a value that is not UTF-8 is refused, not replaced, since the
        // upstream would read the original bytes and the gateway would have checked others.
        let query_pairs = decode_pairs(query.unwrap_or("").as_bytes(), "query", &mut errors);
        // An exploded object's properties are query names of their own (`?x=1&y=2`).
        let declared: Vec<&str> = (rules.params.iter())
            .filter(|p| p.location == ParamLocation::Query)
            .flat_map(|p| {
                let own = std::iter::once(p.name.as_str());
                let members = match (&p.kind, p.style, p.exploded) {
                    (Kind::Object(kinds), Style::Form, true) => {
                        kinds.keys().map(String::as_str).collect()
                    }
                    _ => Vec::new(),
                };
                own.chain(members)
            })
            .collect();
        // `?LIMIT=1000`, `?limit[]=1000` or `?li.mit` beside a declared `limit`: upstreams
        // that fold case, strip `[]` (PHP, Rails, qs) or map `.` and spaces to `_` (PHP)
        // would act on a value the gateway never checked.
        for (name, _) in &query_pairs {
            let folded = folded_name(name);
            let shadows = declared.iter().any(|declared| {
                declared != name
                    && folded_name(declared) == folded
                    && !(rules.params.iter()).any(|p| {
                        p.name == *declared
                            && p.style == Style::DeepObject
                            && deep_member(name, &p.name).is_some()
                    })
            });
            if shadows {
                let detail =
                    "differs from a declared parameter only in case, brackets or punctuation";
                capped(&mut errors, error("query", &pointer_to(name), detail));
            }
        }
        let cookies = cookies(headers);
        // `SID=…` beside a declared `sid`: an upstream that folds cookie names would read
        // the unchecked one.
        for (name, _) in &cookies {
            let shadows = (rules.params.iter()).any(|p| {
                p.location == ParamLocation::Cookie
                    && p.name != *name
                    && p.name.eq_ignore_ascii_case(name)
            });
            if shadows {
                let detail = "differs from a declared cookie only in case";
                capped(&mut errors, error("cookie", &pointer_to(name), detail));
            }
        }
        for param in &rules.params {
            let location = param.location.as_str();
            let raw: Vec<String> = match param.location {
                // The router's values are still percent-encoded; the upstream decodes them.
                ParamLocation::Path => (path_params.iter())
                    .filter(|(name, _)| *name == param.name)
                    .filter_map(|(_, v)| {
                        let decoded = percent_encoding::percent_decode_str(v).decode_utf8();
                        if decoded.is_err() {
                            capped(
                                &mut errors,
                                error(location, &pointer_to(&param.name), NOT_UTF8),
                            );
                        }
                        decoded.ok().map(|d| d.into_owned())
                    })
                    .collect(),
                ParamLocation::Query => (query_pairs.iter())
                    .filter(|(name, _)| *name == param.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
                ParamLocation::Header => (headers.get_all(param.name.as_str()).iter())
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect(),
                ParamLocation::Cookie => (cookies.iter())
                    .filter(|(name, _)| *name == param.name)
                    .filter_map(|(_, v)| {
                        if v.is_err() {
                            capped(
                                &mut errors,
                                error(location, &pointer_to(&param.name), NOT_UTF8),
                            );
                        }
                        v.clone().ok()
                    })
                    .collect(),
            };
            check_param(param, raw, &query_pairs, &mut errors);
        }
        if let Some(rule) = &rules.query {
            let object = object_of(&query_pairs, &rule.kinds, "query", "", &mut errors);
            rule.schema.errors(&object, "query", "", &mut errors);
        }
        if let Some(rule) = &rules.headers {
            // Only the headers the schema names: every request carries others (Host,
            // Accept, …) that the schema has no say about.
            let pairs: Vec<(String, String)> = (headers.iter())
                .filter(|(n, _)| rule.kinds.contains_key(n.as_str()))
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let object = object_of(&pairs, &rule.kinds, "header", "", &mut errors);
            rule.schema.errors(&object, "header", "", &mut errors);
        }
        reject_if_any(ctx, errors)
    }
}

/// The kind a schema's `type` asks for (following one local `$ref` into the document).
pub(super) fn kind_of(schema: &Value, document: Option<&Value>) -> Kind {
    kind_at(schema, document, 0)
}

/// Nesting deeper than this is read as text (a `$ref` cycle must not recurse forever).
pub(super) const MAX_KIND_DEPTH: usize = 8;

pub(super) fn kind_at(schema: &Value, document: Option<&Value>, depth: usize) -> Kind {
    if depth > MAX_KIND_DEPTH {
        return Kind::Text;
    }
    let schema = resolved(schema, document);
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let wanted = types.into_iter().find(|t| *t != "null").unwrap_or("string");
    match wanted {
        "integer" => Kind::Integer,
        "number" => Kind::Number,
        "boolean" => Kind::Boolean,
        "array" => Kind::Array(Box::new(
            schema
                .get("items")
                .map(|items| kind_at(items, document, depth + 1))
                .unwrap_or(Kind::Text),
        )),
        "object" => Kind::Object(property_kinds(schema, document, depth + 1)),
        _ => Kind::Text,
    }
}

/// `schema`, or the schema its local `$ref` points to in `document`.
pub(super) fn resolved<'s>(schema: &'s Value, document: Option<&'s Value>) -> &'s Value {
    match (schema.get("$ref").and_then(Value::as_str), document) {
        (Some(reference), Some(document)) => reference
            .strip_prefix('#')
            .and_then(|pointer| document.pointer(pointer))
            .unwrap_or(schema),
        _ => schema,
    }
}

/// The kinds of the `properties` an object schema names.
pub(super) fn property_kinds(
    schema: &Value,
    document: Option<&Value>,
    depth: usize,
) -> HashMap<String, Kind> {
    if depth > MAX_KIND_DEPTH {
        return HashMap::new();
    }
    (resolved(schema, document)
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten())
    .map(|(name, s)| (name.clone(), kind_at(s, document, depth + 1)))
    .collect()
}

/// A headers schema with its `properties` names and `required` entries lower-cased, as
/// header names are compared.
pub(super) fn lower_case_members(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        *properties = std::mem::take(properties)
            .into_iter()
            .map(|(name, s)| (name.to_ascii_lowercase(), s))
            .collect();
    }
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        for name in required.iter_mut() {
            if let Value::String(name) = name {
                *name = name.to_ascii_lowercase();
            }
        }
    }
    schema
}

/// The style of parameter `p`, refused at load where the gateway would read the value
/// differently than the spec says it is sent.
pub(super) fn param_style(p: &Parameter, kind: &Kind) -> Result<Style, String> {
    let style = match (p.location, p.style.as_deref()) {
        (ParamLocation::Query | ParamLocation::Cookie, None | Some("form")) => Style::Form,
        (ParamLocation::Path | ParamLocation::Header, None | Some("simple")) => Style::Simple,
        (ParamLocation::Query, Some("spaceDelimited")) => Style::SpaceDelimited,
        (ParamLocation::Query, Some("pipeDelimited")) => Style::PipeDelimited,
        (ParamLocation::Query, Some("deepObject")) => Style::DeepObject,
        (location, Some(other)) => {
            return Err(format!(
                "parameter `{}` (in {}): style `{other}` is not supported there; use {}",
                p.name,
                location.as_str(),
                match location {
                    ParamLocation::Query => "form, spaceDelimited, pipeDelimited or deepObject",
                    ParamLocation::Cookie => "form",
                    ParamLocation::Path | ParamLocation::Header => "simple",
                }
            ));
        }
    };
    let fits = match style {
        Style::SpaceDelimited | Style::PipeDelimited => matches!(kind, Kind::Array(_)),
        Style::DeepObject => matches!(kind, Kind::Object(_)),
        // Object cookies would be read one cookie per property, which nothing sends.
        Style::Form if p.location == ParamLocation::Cookie => !matches!(kind, Kind::Object(_)),
        Style::Form | Style::Simple => true,
    };
    if !fits {
        return Err(format!(
            "parameter `{}` (in {}): style `{}` does not fit its schema's type; {}",
            p.name,
            p.location.as_str(),
            p.style.as_deref().unwrap_or("form"),
            match style {
                Style::DeepObject => "deepObject describes objects",
                Style::Form => "object cookies are not supported",
                _ => "spaceDelimited and pipeDelimited describe arrays",
            }
        ));
    }
    if let (Style::Form, ParamLocation::Query, Kind::Object(kinds)) = (style, p.location, kind)
        && kinds.is_empty()
        && p.explode != Some(false)
    {
        // Its members would be every query name, which the gateway cannot tell apart from
        // the other parameters.
        return Err(format!(
            "parameter `{}` (in query): an exploded form object must list its `properties`",
            p.name
        ));
    }
    Ok(style)
}

/// Checks one parameter: `raw` is its values as sent under its own name (decoded);
/// `query` the whole query, where exploded and deepObject objects keep their members.
pub(super) fn check_param(
    param: &Param,
    raw: Vec<String>,
    query: &[(String, String)],
    errors: &mut Vec<FieldError>,
) {
    let location = param.location.as_str();
    let pointer = pointer_to(&param.name);
    let once = |errors: &mut Vec<FieldError>| {
        capped(errors, error(location, &pointer, "is given more than once"));
    };
    let value = match (&param.kind, raw.as_slice()) {
        (Kind::Object(kinds), raw) if param.location == ParamLocation::Query && param.exploded => {
            if !raw.is_empty() && !kinds.contains_key(&param.name) {
                // `?filter=open` beside a deepObject `filter`: a value under the object's own
                // name is not one of its members, and an upstream might still read it.
                let detail = "is an object: send its properties, not one value";
                capped(errors, error(location, &pointer, detail));
                return;
            }
            // deepObject `p[x]=1`, or exploded form: each property its own query name.
            let members: Vec<(String, String)> = if param.style == Style::DeepObject {
                (query.iter())
                    .filter_map(|(name, v)| {
                        deep_member(name, &param.name).map(|m| (m.to_owned(), v.clone()))
                    })
                    .collect()
            } else {
                (query.iter())
                    .filter(|(name, _)| kinds.contains_key(name))
                    .cloned()
                    .collect()
            };
            if members.is_empty() {
                if param.required {
                    capped(errors, error(location, &pointer, "is required"));
                }
                return;
            }
            if let Some((nested, _)) = members.iter().find(|(m, _)| m.contains(['[', ']'])) {
                // `p[a][b]`: nesting that some parsers build and others keep as a name.
                let at = format!("{pointer}{}", pointer_to(nested));
                capped(errors, error(location, &at, "nests deeper than one level"));
                return;
            }
            object_of(&members, kinds, location, &pointer, errors)
        }
        (_, []) => {
            if param.required {
                capped(errors, error(location, &pointer, "is required"));
            }
            return;
        }
        (Kind::Object(kinds), [one]) => {
            // `x,1,y,2`, or exploded simple `x=1,y=2`.
            let parts: Vec<&str> = one.split(',').collect();
            let members: Option<Vec<(String, String)>> = if param.exploded {
                (parts.iter())
                    .map(|p| p.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                    .collect()
            } else {
                parts.len().is_multiple_of(2).then(|| {
                    (parts.chunks(2))
                        .map(|kv| (kv[0].to_owned(), kv[1].to_owned()))
                        .collect()
                })
            };
            let Some(members) = members else {
                let detail = "is not a comma-separated list of names and values";
                capped(errors, error(location, &pointer, detail));
                return;
            };
            object_of(&members, kinds, location, &pointer, errors)
        }
        (Kind::Array(item), values) if param.style == Style::Simple => {
            // Simple arrays are comma lists whatever `explode` says; header lines given
            // twice are one list, as HTTP joins them.
            let joined = values.join(",");
            Value::Array(joined.split(',').map(|v| typed(v, item)).collect())
        }
        (Kind::Array(item), values) => {
            let items: Vec<Value> = if param.exploded {
                values.iter().map(|v| typed(v, item)).collect()
            } else if let [one] = values {
                let delimiter = match param.style {
                    Style::SpaceDelimited => ' ',
                    Style::PipeDelimited => '|',
                    _ => ',',
                };
                one.split(delimiter).map(|v| typed(v, item)).collect()
            } else {
                once(errors);
                return;
            };
            Value::Array(items)
        }
        (kind, [one]) => typed(one, kind),
        (_, _) => {
            once(errors);
            return;
        }
    };
    if let Some(schema) = &param.schema {
        schema.errors(&value, location, &pointer, errors);
    }
}

/// The member name of a deepObject query name: `filter[status]` of `filter` → `status`.
pub(super) fn deep_member<'n>(name: &'n str, param: &str) -> Option<&'n str> {
    name.strip_prefix(param)?
        .strip_prefix('[')?
        .strip_suffix(']')
}

/// `name` as a JSON pointer of one token.
pub(super) fn pointer_to(name: &str) -> String {
    format!("/{}", name.replace('~', "~0").replace('/', "~1"))
}

pub(super) const NOT_UTF8: &str = "is not valid UTF-8 once percent-decoded";

/// Every `name=value` of the `Cookie` headers, values percent-decoded (as cookie
/// libraries read them); `Err` for a value that is not UTF-8 once decoded. Bytes elsewhere
/// in the header that are not UTF-8 are never a reason to skip it (which would skip the
/// cookie parameters' checks).
pub(super) fn cookies(headers: &HeaderMap) -> Vec<(String, Result<String, ()>)> {
    (headers.get_all(COOKIE).iter())
        .flat_map(|v| {
            (v.as_bytes().split(|b| *b == b';'))
                .filter_map(|pair| {
                    let at = pair.iter().position(|b| *b == b'=')?;
                    let name = String::from_utf8_lossy(&pair[..at]).trim().to_owned();
                    let value = pair[at + 1..].trim_ascii();
                    let decoded =
                        String::from_utf8(percent_encoding::percent_decode(value).collect())
                            .map_err(|_| ());
                    Some((name, decoded))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
