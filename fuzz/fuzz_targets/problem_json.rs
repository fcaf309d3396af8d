//! problem+json rendering (`errors`) with fuzzed text where a request can put text: the
//! detail, a validation error's pointer (built from member names in the body) and detail.
//! The body is always valid JSON that carries the text exactly, with the content type,
//! status and `no-store`.
#![no_main]

use std::net::SocketAddr;

use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use palisade_fuzz::{block_on, fields};
use palisade_gateway::body::Body;
use palisade_gateway::ctx::{ConnInfo, RequestCtx};
use palisade_gateway::errors::{Rejection, problem_response, respond};
use palisade_gateway::validate::schema::FieldError;
use serde_json::Value;

fn rendered(response: Response<Body>, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["cache-control"], "no-store");
    let bytes = block_on(response.into_body().collect())
        .expect("an in-memory body")
        .to_bytes();
    let problem: Value = serde_json::from_slice(&bytes).expect("problem+json is JSON");
    assert_eq!(problem["status"], status.as_u16());
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:palisade:problem:")
    );
    problem
}

fuzz_target!(|data: &[u8]| {
    let [code, rest @ ..] = data else { return };
    let f = fields(rest, 4);
    let (title, detail, pointer, field_detail) = (&f[0], &f[1], &f[2], &f[3]);

    let status = StatusCode::from_u16(400 + u16::from(*code) % 200).unwrap();
    let problem = rendered(
        problem_response(status, "fuzz", title, Some(detail), "req-fuzz"),
        status,
    );
    assert_eq!(problem["title"], title.as_str());
    assert_eq!(problem["detail"], detail.as_str());
    assert_eq!(problem["request_id"], "req-fuzz");

    let ctx = RequestCtx::new(
        ConnInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
            tls: false,
        },
        Method::POST,
    );
    let errors = vec![
        FieldError {
            location: "body",
            pointer: pointer.clone(),
            detail: field_detail.clone(),
        },
        FieldError {
            location: "query",
            pointer: format!("/{detail}"),
            detail: "is required".to_owned(),
        },
    ];
    let problem = rendered(
        respond(Rejection::Invalid(errors), &ctx),
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(problem["request_id"], ctx.id.as_str());
    assert_eq!(problem["errors"][0]["in"], "body");
    assert_eq!(problem["errors"][0]["pointer"], pointer.as_str());
    assert_eq!(problem["errors"][0]["detail"], field_detail.as_str());
    assert_eq!(problem["errors"][1]["pointer"], format!("/{detail}"));
});
