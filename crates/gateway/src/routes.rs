//! The route table: `[[route]]` entries matched on the canonical path.
//!
//! Input: the validated routes (`crate::config::RouteConfig`) at build time; per request,
//! the request's host (lower-case, no port), its method and its [`CanonicalPath`].
//!
//! Output: the index of the matched route in the config's route list, with the path
//! parameters (still percent-encoded, exactly as they appear in the canonical path).
//!
//! Default: nothing matches — a path no route names is 404 and a known path with another
//! method is 405 with the allowed methods. `GET` implies `HEAD`.
//!
//! Failure mode: at build time, a route whose path is not a valid matchit pattern, is not
//! canonical (and so could never match), conflicts with another route's path, or shares a
//! path and host with another route with overlapping methods is refused with a
//! [`RouteBuildError`] naming the route — a config that routes ambiguously never loads.
//!
//! Host-specific routes (`host = "..."`) live in a table of their own per host and are
//! tried first; host-less routes serve any host and are tried second.

use std::collections::HashMap;
use std::fmt;

use http::Method;

use crate::config::RouteConfig;
use crate::path::{CanonicalPath, canonicalize};

/// The compiled route table. Immutable; a config reload builds a new one.
#[derive(Debug)]
pub struct Router {
    /// Routes limited to one host, by lower-case host name.
    by_host: HashMap<String, matchit::Router<MethodTable>>,
    /// Routes without a host, serving every host.
    any_host: matchit::Router<MethodTable>,
}

/// Why the routes could not be built. `route` indexes the slice given to [`Router::build`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RouteBuildError {
    pub route: usize,
    pub message: String,
}

/// A successful match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Index of the route in the config's route list.
    pub route: usize,
    /// Path parameters in the order of the pattern, values still percent-encoded (canonical).
    pub params: Vec<(String, String)>,
}

/// Why nothing matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMiss {
    /// No route has this path (for this host): 404.
    NotFound,
    /// Some route has this path, none this method: 405 with an `Allow` header.
    /// `allow` is sorted (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT,
    /// then extension methods alphabetically), without duplicates, and has HEAD with GET.
    MethodNotAllowed { allow: Vec<Method> },
}

/// The routes that share one path (and host): method → route index.
///
/// HEAD is stored explicitly for every route that lists GET, so a lookup is one scan.
/// A handful of entries at most: a linear scan beats hashing here.
#[derive(Debug, Default)]
struct MethodTable {
    entries: Vec<(Method, usize)>,
}

impl MethodTable {
    fn route_for(&self, method: &Method) -> Option<usize> {
        self.entries
            .iter()
            .find(|(m, _)| m == method)
            .map(|&(_, route)| route)
    }
}

impl Router {
    /// Compile the routes; the first problem found is returned, naming the route.
    pub fn build(routes: &[RouteConfig]) -> Result<Router, RouteBuildError> {
        // Group routes by (host, path): several routes may share a path with disjoint
        // methods, and matchit holds one value per path.
        struct Group<'a> {
            host: Option<&'a str>,
            path: &'a str,
            first_route: usize,
            table: MethodTable,
        }
        let mut groups: Vec<Group<'_>> = Vec::new();
        let mut group_of: HashMap<(Option<&str>, &str), usize> = HashMap::new();

        for (index, route) in routes.iter().enumerate() {
            let fail = |message: String| RouteBuildError {
                route: index,
                message,
            };
            check_pattern_is_canonical(&route.path).map_err(fail)?;
            if route.methods.is_empty() {
                return Err(fail("a route needs at least one method".to_owned()));
            }
            let key = (route.host.as_deref(), route.path.as_str());
            let g = *group_of.entry(key).or_insert_with(|| {
                groups.push(Group {
                    host: key.0,
                    path: key.1,
                    first_route: index,
                    table: MethodTable::default(),
                });
                groups.len() - 1
            });
            let table = &mut groups[g].table;

            let methods = effective_methods(&route.methods);
            overlap_with_earlier(routes, route, table, &methods).map_err(fail)?;
            table
                .entries
                .extend(methods.into_iter().map(|m| (m, index)));
        }

        let mut router = Router {
            by_host: HashMap::new(),
            any_host: matchit::Router::new(),
        };
        // Paths already inserted per host, to name the route a conflict is with.
        let mut inserted: HashMap<Option<&str>, Vec<(&str, usize)>> = HashMap::new();
        for group in groups {
            let target = match group.host {
                Some(host) => router.by_host.entry(host.to_owned()).or_default(),
                None => &mut router.any_host,
            };
            if let Err(error) = target.insert(group.path, group.table) {
                let message = match error {
                    matchit::InsertError::Conflict { with } => {
                        let earlier = inserted
                            .get(&group.host)
                            .and_then(|paths| paths.iter().find(|(p, _)| *p == with))
                            .map(|&(_, route)| &routes[route].name);
                        match earlier {
                            Some(name) => {
                                format!(
                                    "path `{}` conflicts with route `{name}` (`{with}`)",
                                    group.path
                                )
                            }
                            None => format!(
                                "path `{}` conflicts with another route's path (`{with}`)",
                                group.path
                            ),
                        }
                    }
                    other => format!(
                        "path `{}` is not a valid route pattern: {other}",
                        group.path
                    ),
                };
                return Err(RouteBuildError {
                    route: group.first_route,
                    message,
                });
            }
            inserted
                .entry(group.host)
                .or_default()
                .push((group.path, group.first_route));
        }
        Ok(router)
    }

    /// Find the route for a request.
    ///
    /// `host`: the request's host, lower-case, without port (None when absent).
    ///
    /// The host's own routes are tried first; if one has this path and method it wins,
    /// otherwise the host-less routes are tried. 405 lists the methods of both.
    pub fn find(
        &self,
        host: Option<&str>,
        method: &Method,
        path: &CanonicalPath,
    ) -> Result<Matched, RouteMiss> {
        let path = path.as_str();
        let host_table = host.and_then(|h| self.by_host.get(h));
        let mut allow: Option<Vec<Method>> = None;
        for table in host_table
            .into_iter()
            .chain(std::iter::once(&self.any_host))
        {
            let Ok(found) = table.at(path) else { continue };
            if let Some(route) = found.value.route_for(method) {
                let params = found
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                return Ok(Matched { route, params });
            }
            allow
                .get_or_insert_with(Vec::new)
                .extend(found.value.entries.iter().map(|(m, _)| m.clone()));
        }
        match allow {
            None => Err(RouteMiss::NotFound),
            Some(mut allow) => {
                sort_methods(&mut allow);
                allow.dedup();
                Err(RouteMiss::MethodNotAllowed { allow })
            }
        }
    }
}

impl fmt::Display for RouteMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("no route for this path"),
            Self::MethodNotAllowed { .. } => f.write_str("method not allowed on this path"),
        }
    }
}

/// A route's methods without duplicates, plus HEAD when it lists GET (GET implies HEAD).
fn effective_methods(listed: &[Method]) -> Vec<Method> {
    let mut methods: Vec<Method> = Vec::with_capacity(listed.len() + 1);
    for m in listed {
        if !methods.contains(m) {
            methods.push(m.clone());
        }
    }
    if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
        methods.push(Method::HEAD);
    }
    methods
}

/// Refuse a route whose methods overlap those of an earlier route on the same path and
/// host: which one would serve the request would depend on the order in the file. Every
/// shared method is reported, against the first earlier route that holds one of them.
fn overlap_with_earlier(
    routes: &[RouteConfig],
    route: &RouteConfig,
    table: &MethodTable,
    methods: &[Method],
) -> Result<(), String> {
    let mut other = None;
    let mut shared = Vec::new();
    for m in methods {
        if let Some(earlier) = table.route_for(m)
            && (other.is_none() || other == Some(earlier))
        {
            other = Some(earlier);
            shared.push(m.clone());
        }
    }
    let Some(earlier) = other else { return Ok(()) };
    sort_methods(&mut shared);
    let names: Vec<&str> = shared.iter().map(Method::as_str).collect();
    let both_list_head =
        route.methods.contains(&Method::HEAD) && routes[earlier].methods.contains(&Method::HEAD);
    let implied = if shared.contains(&Method::HEAD) && !both_list_head {
        " (GET implies HEAD)"
    } else {
        ""
    };
    Err(format!(
        "methods {} overlap with route `{}` on the same path and host{implied}",
        names.join(", "),
        routes[earlier].name,
    ))
}

/// The methods RFC 9110 defines, in the conventional order `Allow` lists them.
pub const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

/// Sort methods in a stable, conventional order (standard methods first, then the rest by name).
fn sort_methods(methods: &mut [Method]) {
    fn rank(m: &Method) -> u8 {
        STANDARD_METHODS
            .iter()
            .position(|o| o == m)
            .map_or(u8::MAX, |p| p as u8)
    }
    methods.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.as_str().cmp(b.as_str()))
    });
}

/// Requests are matched on canonical paths, so a pattern whose literal text is not
/// canonical (`/a//b`, `/a/./b`, `/%7euser`, `/a%2fb`, a `;`) could never match: refuse it
/// at load time instead of letting the route silently never apply.
fn check_pattern_is_canonical(pattern: &str) -> Result<(), String> {
    // Replace each `{param}` / `{*rest}` by a plain placeholder and unescape `{{` / `}}`.
    let mut probe = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                probe.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                probe.push('}');
            }
            '{' => {
                // An unterminated parameter: matchit reports it with a better message.
                if !chars.by_ref().any(|c| c == '}') {
                    return Ok(());
                }
                probe.push('x');
            }
            c => probe.push(c),
        }
    }
    match canonicalize(&probe) {
        Ok(canonical) if canonical.as_str() == probe => Ok(()),
        Ok(_) => Err(format!(
            "path `{pattern}` is not in canonical form (no empty or dot segments, no escaped \
             unreserved characters, upper-case escapes), so no request could match it"
        )),
        Err(rejection) => Err(format!(
            "path `{pattern}` can never match a request: {}",
            rejection.reason()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, path: &str, methods: &[Method], host: Option<&str>) -> RouteConfig {
        RouteConfig {
            name: name.to_owned(),
            path: path.to_owned(),
            methods: methods.to_vec(),
            upstream: 0,
            host: host.map(str::to_owned),
            auth: crate::config::RouteAuth::Public,
            forward_credentials: false,
            roles: Vec::new(),
            scopes: Vec::new(),
            owner: None,
            response_deny: Vec::new(),
            request_deny: Vec::new(),
            rate_limit: Vec::new(),
            login: None,
            validation: None,
            strict: true,
        }
    }

    fn p(raw: &str) -> CanonicalPath {
        canonicalize(raw).unwrap()
    }

    fn hit(router: &Router, host: Option<&str>, method: &Method, path: &str) -> Matched {
        match router.find(host, method, &p(path)) {
            Ok(m) => m,
            Err(e) => panic!("{method} {path} (host {host:?}) missed: {e:?}"),
        }
    }

    fn miss(router: &Router, host: Option<&str>, method: &Method, path: &str) -> RouteMiss {
        match router.find(host, method, &p(path)) {
            Ok(m) => panic!("{method} {path} (host {host:?}) matched {m:?}"),
            Err(e) => e,
        }
    }

    fn build_err(routes: &[RouteConfig]) -> RouteBuildError {
        match Router::build(routes) {
            Ok(_) => panic!("build succeeded"),
            Err(e) => e,
        }
    }

    use Method as M;

    fn sample() -> Router {
        Router::build(&[
            route("login", "/api/login", &[M::POST], None), // 0
            route("orders", "/api/orders", &[M::GET, M::POST], None), // 1
            route(
                "order",
                "/api/orders/{id}",
                &[M::GET, M::PUT, M::DELETE],
                None,
            ), // 2
            route("order-patch", "/api/orders/{id}", &[M::PATCH], None), // 3
            route("files", "/files/{*rest}", &[M::GET], None), // 4
            route("slash", "/api/orders/", &[M::GET], None), // 5
            route("root", "/", &[M::GET], None),            // 6
            route("item", "/api/users/{user}/items/{item}", &[M::GET], None), // 7
        ])
        .unwrap()
    }

    #[test]
    fn exact_match() {
        let r = sample();
        assert_eq!(
            hit(&r, None, &M::POST, "/api/login"),
            Matched {
                route: 0,
                params: vec![]
            }
        );
        assert_eq!(hit(&r, Some("a.example"), &M::GET, "/api/orders").route, 1);
        assert_eq!(hit(&r, None, &M::POST, "/api/orders").route, 1);
        assert_eq!(hit(&r, None, &M::GET, "/").route, 6);
    }

    #[test]
    fn trailing_slash_is_a_different_path() {
        let r = sample();
        assert_eq!(hit(&r, None, &M::GET, "/api/orders/").route, 5);
        assert_eq!(hit(&r, None, &M::GET, "/api/orders").route, 1);
        assert_eq!(miss(&r, None, &M::GET, "/api/login/"), RouteMiss::NotFound);
    }

    #[test]
    fn params_are_returned_in_order() {
        let r = sample();
        assert_eq!(
            hit(&r, None, &M::GET, "/api/orders/42"),
            Matched {
                route: 2,
                params: vec![("id".into(), "42".into())]
            }
        );
        assert_eq!(
            hit(&r, None, &M::GET, "/api/users/u1/items/i2").params,
            vec![("user".into(), "u1".into()), ("item".into(), "i2".into())]
        );
    }

    #[test]
    fn params_are_canonical_and_still_encoded() {
        let r = sample();
        // matched on the canonical form: %41 decoded, %c3%a9 upper-cased and kept encoded
        assert_eq!(
            hit(&r, None, &M::GET, "/api/orders/%41%c3%a9").params,
            vec![("id".into(), "A%C3%A9".into())]
        );
        // dot segments were resolved before matching
        assert_eq!(
            hit(&r, None, &M::GET, "/api/x/../orders/7").params,
            vec![("id".into(), "7".into())]
        );
    }

    #[test]
    fn shared_path_dispatches_by_method() {
        let r = sample();
        assert_eq!(hit(&r, None, &M::PUT, "/api/orders/1").route, 2);
        assert_eq!(hit(&r, None, &M::DELETE, "/api/orders/1").route, 2);
        assert_eq!(hit(&r, None, &M::PATCH, "/api/orders/1").route, 3);
    }

    #[test]
    fn catch_all() {
        let r = sample();
        assert_eq!(
            hit(&r, None, &M::GET, "/files/a/b/c.txt").params,
            vec![("rest".into(), "a/b/c.txt".into())]
        );
        assert_eq!(hit(&r, None, &M::GET, "/files/x").route, 4);
        // matchit's catch-all needs a non-empty value
        assert_eq!(miss(&r, None, &M::GET, "/files/"), RouteMiss::NotFound);
        assert_eq!(miss(&r, None, &M::GET, "/files"), RouteMiss::NotFound);
    }

    #[test]
    fn not_found() {
        let r = sample();
        for path in [
            "/nope",
            "/api",
            "/api/orders/1/extra",
            "/api/logins",
            "/API/login",
        ] {
            assert_eq!(miss(&r, None, &M::GET, path), RouteMiss::NotFound, "{path}");
        }
        let empty = Router::build(&[]).unwrap();
        assert_eq!(miss(&empty, Some("h"), &M::GET, "/"), RouteMiss::NotFound);
    }

    #[test]
    fn method_not_allowed_lists_allow() {
        let r = sample();
        assert_eq!(
            miss(&r, None, &M::GET, "/api/login"),
            RouteMiss::MethodNotAllowed {
                allow: vec![M::POST]
            }
        );
        assert_eq!(
            miss(&r, None, &M::DELETE, "/api/orders"),
            RouteMiss::MethodNotAllowed {
                allow: vec![M::GET, M::HEAD, M::POST]
            }
        );
        // union of the two routes on `/api/orders/{id}`, in the stable order
        assert_eq!(
            miss(&r, None, &M::POST, "/api/orders/9"),
            RouteMiss::MethodNotAllowed {
                allow: vec![M::GET, M::HEAD, M::PUT, M::PATCH, M::DELETE]
            }
        );
        let odd = Method::from_bytes(b"PROPFIND").unwrap();
        let r = Router::build(&[route(
            "dav",
            "/dav",
            &[odd.clone(), M::OPTIONS, M::DELETE],
            None,
        )])
        .unwrap();
        assert_eq!(
            miss(&r, None, &M::GET, "/dav"),
            RouteMiss::MethodNotAllowed {
                allow: vec![M::DELETE, M::OPTIONS, odd.clone()]
            }
        );
        assert_eq!(hit(&r, None, &odd, "/dav").route, 0);
    }

    #[test]
    fn head_via_get() {
        let r = sample();
        assert_eq!(hit(&r, None, &M::HEAD, "/api/orders/1").route, 2);
        assert_eq!(hit(&r, None, &M::HEAD, "/files/x").route, 4);
        // no GET, no HEAD
        assert_eq!(
            miss(&r, None, &M::HEAD, "/api/login"),
            RouteMiss::MethodNotAllowed {
                allow: vec![M::POST]
            }
        );
        // an explicit HEAD without GET works and does not imply GET
        let r = Router::build(&[route("h", "/h", &[M::HEAD], None)]).unwrap();
        assert_eq!(hit(&r, None, &M::HEAD, "/h").route, 0);
        assert_eq!(
            miss(&r, None, &M::GET, "/h"),
            RouteMiss::MethodNotAllowed {
                allow: vec![M::HEAD]
            }
        );
        // GET and HEAD both listed: no duplicate
        let r = Router::build(&[route("gh", "/gh", &[M::GET, M::HEAD, M::GET], None)]).unwrap();
        assert_eq!(
            miss(&r, None, &M::PUT, "/gh"),
            RouteMiss::MethodNotAllowed {
                allow: vec![M::GET, M::HEAD]
            }
        );
    }

    fn hosted() -> Router {
        Router::build(&[
            route("any-orders", "/api/orders/{id}", &[M::GET], None), // 0
            route(
                "a-orders",
                "/api/orders/{id}",
                &[M::GET, M::DELETE],
                Some("a.example"),
            ), // 1
            route("a-admin", "/admin", &[M::GET], Some("a.example")), // 2
            route("any-post", "/api/orders/{id}", &[M::POST], None),  // 3
            route("b-catch", "/{*rest}", &[M::GET], Some("b.example")), // 4
            route("any-health", "/health", &[M::GET], None),          // 5
        ])
        .unwrap()
    }

    #[test]
    fn host_specific_route_is_preferred() {
        let r = hosted();
        assert_eq!(
            hit(&r, Some("a.example"), &M::GET, "/api/orders/1").route,
            1
        );
        assert_eq!(
            hit(&r, Some("a.example"), &M::DELETE, "/api/orders/1").route,
            1
        );
        assert_eq!(
            hit(&r, Some("other.example"), &M::GET, "/api/orders/1").route,
            0
        );
        assert_eq!(hit(&r, None, &M::GET, "/api/orders/1").route, 0);
        // the host's catch-all wins over the host-less exact route for that host only
        assert_eq!(hit(&r, Some("b.example"), &M::GET, "/health").route, 4);
        assert_eq!(hit(&r, Some("a.example"), &M::GET, "/health").route, 5);
    }

    #[test]
    fn host_less_route_serves_a_host_whose_route_lacks_the_method() {
        let r = hosted();
        assert_eq!(
            hit(&r, Some("a.example"), &M::POST, "/api/orders/1").route,
            3
        );
        assert_eq!(
            hit(&r, Some("b.example"), &M::POST, "/api/orders/1").route,
            3
        );
    }

    #[test]
    fn host_specific_route_is_not_reachable_from_another_host() {
        let r = hosted();
        // b.example gets its own catch-all, never a.example's `/admin`
        assert_eq!(hit(&r, Some("b.example"), &M::GET, "/admin").route, 4);
        assert_eq!(
            miss(&r, Some("c.example"), &M::GET, "/admin"),
            RouteMiss::NotFound
        );
        assert_eq!(miss(&r, None, &M::GET, "/admin"), RouteMiss::NotFound);
        assert_eq!(
            miss(&r, Some("A.EXAMPLE"), &M::GET, "/admin"),
            RouteMiss::NotFound
        );
        assert_eq!(
            miss(&r, Some("c.example"), &M::DELETE, "/api/orders/1"),
            RouteMiss::MethodNotAllowed {
                allow: vec![M::GET, M::HEAD, M::POST]
            }
        );
    }

    #[test]
    fn method_not_allowed_unions_host_and_host_less() {
        let r = hosted();
        assert_eq!(
            miss(&r, Some("a.example"), &M::PUT, "/api/orders/1"),
            RouteMiss::MethodNotAllowed {
                allow: vec![M::GET, M::HEAD, M::POST, M::DELETE]
            }
        );
        // host route matches the path, host-less does not: only the host's methods
        assert_eq!(
            miss(&r, Some("a.example"), &M::POST, "/admin"),
            RouteMiss::MethodNotAllowed {
                allow: vec![M::GET, M::HEAD]
            }
        );
    }

    #[test]
    fn build_error_on_conflicting_paths() {
        let e = build_err(&[
            route("one", "/a/{x}", &[M::GET], None),
            route("mid", "/b", &[M::GET], None),
            route("other", "/a/{y}", &[M::POST], None),
        ]);
        assert_eq!(e.route, 2);
        assert_eq!(
            e.message,
            "path `/a/{y}` conflicts with route `one` (`/a/{x}`)"
        );
        assert_eq!(e.to_string(), e.message);

        // matchit 0.9 accepts differently named parameters at the same place when the rest
        // of the paths differ; each match reports its own route's names.
        let r = Router::build(&[
            route("s1", "/s/{x}/b", &[M::GET], None),
            route("s2", "/s/{y}/c", &[M::GET], None),
        ])
        .unwrap();
        assert_eq!(
            hit(&r, None, &M::GET, "/s/1/c"),
            Matched {
                route: 1,
                params: vec![("y".into(), "1".into())]
            }
        );
        assert_eq!(hit(&r, None, &M::GET, "/s/1/b").params[0].0, "x");

        let e = build_err(&[
            route("c1", "/f/{*a}", &[M::GET], None),
            route("c2", "/f/{*b}", &[M::GET], None),
        ]);
        assert_eq!(e.route, 1);
        assert!(
            e.message.contains("`/f/{*b}` conflicts with route `c1`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn same_pattern_on_different_hosts_is_fine() {
        let r = Router::build(&[
            route("a", "/a/{x}", &[M::GET], Some("a.example")),
            route("b", "/a/{y}", &[M::GET], Some("b.example")),
            route("any", "/a/{z}", &[M::GET], None),
        ])
        .unwrap();
        assert_eq!(
            hit(&r, Some("b.example"), &M::GET, "/a/1").params,
            vec![("y".into(), "1".into())]
        );
    }

    #[test]
    fn build_error_on_overlapping_methods() {
        let e = build_err(&[
            route("list", "/api/orders", &[M::GET, M::POST], None),
            route("other", "/api/x", &[M::GET], None),
            route("dup", "/api/orders", &[M::PUT, M::POST, M::GET], None),
        ]);
        assert_eq!(e.route, 2);
        assert_eq!(
            e.message,
            "methods GET, HEAD, POST overlap with route `list` on the same path and host (GET implies HEAD)"
        );

        let e = build_err(&[
            route("g", "/x", &[M::GET], None),
            route("h", "/x", &[M::HEAD], None),
        ]);
        assert_eq!(e.route, 1);
        assert_eq!(
            e.message,
            "methods HEAD overlap with route `g` on the same path and host (GET implies HEAD)"
        );

        let e = build_err(&[
            route("p", "/x", &[M::POST], Some("h")),
            route("q", "/x", &[M::POST], Some("h")),
        ]);
        assert_eq!(
            (e.route, e.message.as_str()),
            (
                1,
                "methods POST overlap with route `p` on the same path and host"
            )
        );

        // same path and methods on different hosts (or host vs host-less) is not an overlap
        Router::build(&[
            route("p", "/x", &[M::POST], Some("h")),
            route("q", "/x", &[M::POST], Some("k")),
            route("r", "/x", &[M::POST], None),
        ])
        .unwrap();
    }

    #[test]
    fn build_error_on_invalid_or_non_canonical_patterns() {
        for (path, needle) in [
            ("/a/{x", "not a valid route pattern"),
            ("/a/{*rest}/b", "not a valid route pattern"),
            ("/a/{}", "not a valid route pattern"),
            ("/a//b", "not in canonical form"),
            ("/a/./b", "not in canonical form"),
            ("/a/../b", "not in canonical form"),
            ("/%7euser", "not in canonical form"),
            ("/caf%c3%a9", "not in canonical form"),
            ("/a%2fb", "can never match"),
            ("/a;v=1", "can never match"),
            ("/a b", "can never match"),
            ("/{{x}}", "can never match"),
            ("a/b", "can never match"),
            ("", "can never match"),
        ] {
            let e = build_err(&[
                route("ok", "/ok", &[M::GET], None),
                route("bad", path, &[M::GET], None),
            ]);
            assert_eq!(e.route, 1, "{path}");
            assert!(e.message.contains(needle), "{path}: {}", e.message);
        }
        let e = build_err(&[route("none", "/x", &[], None)]);
        assert_eq!(
            (e.route, e.message.as_str()),
            (0, "a route needs at least one method")
        );
        // parameters with prefixes and suffixes are fine
        let r = Router::build(&[route("img", "/img/{name}.png", &[M::GET], None)]).unwrap();
        assert_eq!(
            hit(&r, None, &M::GET, "/img/cat.png").params,
            vec![("name".into(), "cat".into())]
        );
    }

    #[test]
    fn route_index_is_the_config_index() {
        let routes: Vec<RouteConfig> = (0..50)
            .map(|i| route(&format!("r{i}"), &format!("/r/{i}/{{id}}"), &[M::GET], None))
            .collect();
        let r = Router::build(&routes).unwrap();
        for i in 0..50 {
            assert_eq!(hit(&r, None, &M::GET, &format!("/r/{i}/x")).route, i);
        }
    }
}
