//! Tests of the route table: matching by path, method and host, and the build errors.

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
