//! `[[upstream]]` and `[[route]]`, with owner rules and route-level schema files.

use super::*;

pub(super) fn upstream(
    i: usize,
    u: &RawUpstream,
    ctx: &LoadCtx<'_>,
) -> Result<UpstreamConfig, ConfigError> {
    let at = |field: &str| format!("upstream[{i}].{field}");
    let name = ctx.parse(&at("name"), &u.name, name)?;
    let url = ctx.parse(&at("url"), &u.url, upstream_url)?;
    let ca = ctx.path_opt(&at("ca"), u.ca.as_deref())?;
    if ca.is_some() && url.scheme_str() != Some("https") {
        return Err(ctx.error(
            &at("ca"),
            "`ca` is only for https upstreams, and `url` is not https",
        ));
    }
    Ok(UpstreamConfig {
        name,
        url,
        timeout: u.timeout.map(|t| t.0),
        ca,
    })
}

/// One route at `key` (`route[3]`, or where an OpenAPI operation's policy was written).
pub(super) fn route(
    key: &str,
    r: &RawRoute,
    upstreams: &[UpstreamConfig],
    ctx: &LoadCtx<'_>,
) -> Result<RouteConfig, ConfigError> {
    let at = |field: &str| format!("{key}.{field}");
    let name = ctx.parse(&at("name"), &r.name, name)?;
    let path = ctx.parse(&at("path"), &r.path, route_path)?;
    if r.methods.is_empty() {
        return Err(ctx.error(
            &at("methods"),
            "at least one method is required, e.g. `[\"GET\"]`",
        ));
    }
    let mut methods = Vec::with_capacity(r.methods.len());
    for (j, m) in r.methods.iter().enumerate() {
        let method_key = format!("{key}.methods[{j}]");
        let m = ctx.parse(&method_key, m, method)?;
        if methods.contains(&m) {
            return Err(ctx.error(&method_key, format!("`{m}` is listed twice")));
        }
        methods.push(m);
    }
    let upstream_name = ctx.string(&at("upstream"), &r.upstream)?;
    let upstream = upstreams
        .iter()
        .position(|u| u.name == upstream_name)
        .ok_or_else(|| {
            let known: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
            let known = if known.is_empty() {
                "no [[upstream]] is defined".to_owned()
            } else {
                format!("known: {}", known.join(", "))
            };
            ctx.error(
                &at("upstream"),
                format!("no upstream named `{upstream_name}` ({known})"),
            )
        })?;
    let host = ctx.parse_opt(&at("host"), r.host.as_deref(), host)?;
    let auth = match r.auth {
        RawRouteAuth::Public => RouteAuth::Public,
        RawRouteAuth::Any => RouteAuth::Any,
        RawRouteAuth::Jwt => RouteAuth::Jwt,
        RawRouteAuth::ApiKey => RouteAuth::ApiKey,
    };
    let names = |key: &str, list: &[String]| {
        (list.iter().enumerate())
            .map(|(j, v)| ctx.parse(&format!("{key}[{j}]"), v, label))
            .collect::<Result<Vec<_>, _>>()
    };
    let roles = names(&at("roles"), &r.roles)?;
    let scopes = names(&at("scopes"), &r.scopes)?;
    let pointers = |key: String, rule: Option<&RawFieldRule>| match rule {
        None => Ok(Vec::new()),
        Some(rule) => (rule.deny.iter().enumerate())
            .map(|(j, p)| ctx.parse(&format!("{key}.deny[{j}]"), p, json_pointer))
            .collect::<Result<Vec<_>, _>>(),
    };
    let response_deny = pointers(at("response_fields"), r.response_fields.as_ref())?;
    let request_deny = pointers(at("request_fields"), r.request_fields.as_ref())?;
    let rate_limit = policies(
        &at("rate_limit"),
        r.rate_limit.as_ref(),
        &format!("route.{name}"),
        ctx,
    )?;
    let owner = r
        .owner
        .as_ref()
        .map(|o| owner(&at("owner"), o, &path, ctx))
        .transpose()?;
    let validation = match &r.validate {
        None => None,
        Some(v) => {
            let schema = |field: &str,
                          file: &Option<String>|
             -> Result<Option<serde_json::Value>, ConfigError> {
                let Some(file) = file else { return Ok(None) };
                let key = at(&format!("validate.{field}"));
                let path = ctx.path(&key, file)?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ctx.error(&key, format!("cannot read {}: {e}", path.display())))?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| ctx.error(&key, format!("{} is not JSON: {e}", path.display())))?;
                if let Some(remote) = first_remote_ref(&value) {
                    return Err(ctx.error(
                        &key,
                        format!("{}: remote $ref `{remote}` is refused: only local references (#/…) are followed", path.display()),
                    ));
                }
                Ok(Some(value))
            };
            Some(from_files(
                format!("route `{name}`"),
                schema("body", &v.body)?,
                schema("query", &v.query)?,
                schema("headers", &v.headers)?,
                r.strict,
            ))
        }
    };
    let login = r
        .login
        .as_ref()
        .map(|l| {
            ctx.parse(&at("login.account"), &l.account, json_pointer)
                .map(|account| LoginRule { account })
        })
        .transpose()?;
    if owner.is_some() && auth == RouteAuth::Public {
        return Err(ctx.error(
            &at("owner"),
            "an owner rule needs to know who is calling: the route cannot be `auth = \"public\"`",
        ));
    }
    Ok(RouteConfig {
        name,
        path,
        methods,
        upstream,
        host,
        auth,
        forward_credentials: r.forward_credentials,
        roles,
        scopes,
        owner,
        response_deny,
        request_deny,
        rate_limit,
        login,
        validation,
        strict: r.strict,
    })
}

pub(super) fn owner(
    key: &str,
    o: &RawOwner,
    path: &str,
    ctx: &LoadCtx<'_>,
) -> Result<OwnerRule, ConfigError> {
    let at = |field: &str| format!("{key}.{field}");
    let params_of = |pattern: &str| -> Vec<String> {
        pattern
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| p.trim_start_matches('*').to_owned())
            .collect()
    };
    let route_params = params_of(path);
    let source = match (&o.param, &o.field) {
        (Some(param), None) => {
            let param = ctx.string(&at("param"), param)?;
            if !route_params.contains(&param) {
                return Err(ctx.error(
                    &at("param"),
                    format!("the route's path `{path}` has no `{{{param}}}` parameter"),
                ));
            }
            OwnerSource::Param(param)
        }
        (None, Some(field)) => OwnerSource::Field(ctx.parse(&at("field"), field, json_pointer)?),
        _ => return Err(ctx.error(key, "set exactly one of `param` and `field`")),
    };
    let claim = ctx.parse(&at("claim"), &o.claim, label)?;
    let bypass_roles = (o.bypass_roles.iter().enumerate())
        .map(|(j, r)| ctx.parse(&format!("{key}.bypass_roles[{j}]"), r, label))
        .collect::<Result<Vec<_>, _>>()?;
    let collection = o
        .collection
        .as_deref()
        .map(|c| {
            ctx.parse(&at("collection"), c, |c| {
                if c.is_empty() {
                    Ok(String::new())
                } else {
                    json_pointer(c)
                }
            })
        })
        .transpose()?;
    let object = o
        .object
        .as_deref()
        .map(|obj| ctx.parse(&at("object"), obj, route_path))
        .transpose()?;
    if let Some(object) = &object
        && let Some(missing) = params_of(object)
            .into_iter()
            .find(|p| !route_params.contains(p))
    {
        return Err(ctx.error(
            &at("object"),
            format!("`{{{missing}}}` is not a parameter of the route's path `{path}`"),
        ));
    }
    let is_field = matches!(source, OwnerSource::Field(_));
    if !is_field && (collection.is_some() || o.on_create.is_some() || object.is_some()) {
        return Err(ctx.error(key, "`collection`, `on_create` and `object` need `field`"));
    }
    // `object` names another object to check before a write; a collection route's POST
    // creates instead of writing, so the two together would leave that POST unchecked.
    if object.is_some() && (collection.is_some() || o.on_create.is_some()) {
        return Err(ctx.error(
            &at("object"),
            "`object` cannot be combined with `collection` or `on_create`",
        ));
    }
    Ok(OwnerRule {
        source,
        claim,
        bypass_roles,
        collection,
        collection_mode: match o.collection_mode {
            RawCollectionMode::Filter => CollectionMode::Filter,
            RawCollectionMode::Deny => CollectionMode::Deny,
        },
        on_create: o.on_create.map(|c| match c {
            RawOnCreate::Enforce => OnCreate::Enforce,
            RawOnCreate::Set => OnCreate::Set,
        }),
        mode: match o.mode {
            RawOwnerMode::Enforce => OwnerMode::Enforce,
            RawOwnerMode::Report => OwnerMode::Report,
        },
        object,
    })
}

/// Route-level validation from `validate = { … }` files.
pub(super) fn from_files(
    source: String,
    body: Option<serde_json::Value>,
    query: Option<serde_json::Value>,
    headers: Option<serde_json::Value>,
    strict: bool,
) -> std::sync::Arc<RouteValidation> {
    std::sync::Arc::new(RouteValidation {
        source,
        document: None,
        params: Vec::new(),
        query,
        headers,
        body: body.map(|schema| BodySpec {
            required: true,
            writes_only: true,
            content: vec![
                ("application/json".to_owned(), Some(schema.clone())),
                ("application/*+json".to_owned(), Some(schema)),
            ],
        }),
        responses: Vec::new(),
        response_mode: ResponseMode::Off,
        strict,
    })
}

/// The first `$ref` (or `$dynamicRef`) in `value` that is not local (`#…`): nothing is
/// ever fetched, so such a schema is refused at load rather than half-checked.
pub(super) fn first_remote_ref(value: &serde_json::Value) -> Option<String> {
    let mut stack = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    if let ("$ref" | "$dynamicRef", serde_json::Value::String(target)) =
                        (key.as_str(), child)
                        && !target.starts_with('#')
                    {
                        return Some(target.clone());
                    }
                    stack.push(child);
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    None
}
