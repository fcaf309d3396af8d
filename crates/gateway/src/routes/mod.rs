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
pub(crate) const STANDARD_METHODS: [Method; 9] = [
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
mod tests;
