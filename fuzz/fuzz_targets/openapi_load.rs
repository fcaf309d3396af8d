//! The OpenAPI loader (`validate::openapi::parse`, what `load` runs on a file's text) on
//! fuzzed YAML or JSON: never panics, no unbounded allocation (YAML aliases), and what it
//! accepts is consistent: every operation's path is a template starting with `/` whose
//! `{name}` segments each have exactly one required path parameter, operation ids are
//! unique, and the body schemas without references compile.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use palisade_gateway::validate::ParamLocation;
use palisade_gateway::validate::openapi::parse;
use palisade_gateway::validate::schema::{Dialect, Schema};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = parse(text) else { return };
    assert!(spec.document.is_object());
    let mut ids = HashSet::new();
    for op in &spec.operations {
        assert!(op.path.starts_with('/'), "path {:?}", op.path);
        if let Some(id) = &op.operation_id {
            assert!(ids.insert(id.clone()), "operationId {id:?} twice");
        }
        let path_params: Vec<_> = op
            .parameters
            .iter()
            .filter(|p| p.location == ParamLocation::Path)
            .collect();
        for p in &path_params {
            assert!(p.required, "path parameter {} not required", p.name);
            assert!(
                op.path.contains(&format!("{{{}}}", p.name)),
                "{} not in {}",
                p.name,
                op.path
            );
        }
        let names = op.path.matches('{').count();
        assert_eq!(
            names,
            path_params.len(),
            "template {} vs {:?}",
            op.path,
            path_params
        );
        if let Some(body) = &op.body {
            for (_, schema) in &body.content {
                let Some(schema) = schema else { continue };
                if schema.to_string().contains("$ref") || schema.to_string().len() > 4096 {
                    continue;
                }
                let _ = Schema::compile(schema, Dialect::Draft202012, true);
            }
        }
    }
});
