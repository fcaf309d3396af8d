//! Control 3, authorization: object level (BOLA/IDOR), function level, mass assignment.
//!
//! Input: the spec's collections (a `POST /things` with a `GET /things/{id}`) and two
//! identities (a third, `--admin-identity`, for function-level tests). Output: FAIL when the
//! second identity reads, changes or deletes an object the first created, or sees it in its
//! list; when a normal identity calls an admin-only operation successfully; when a create
//! with privileged members (`role`, `isAdmin`, `admin`) reads back with them.
//!
//! Only objects the audit itself created are updated or deleted, each change is verified by
//! reading back as the owner, and the owner deletes them at the end ([`cleanup`]). A leak is
//! a 2xx carrying the audit's own marker: a 404 or a 401 with a JSON body is never one.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Context, marker, path_value};
use crate::client::{Exchange, Probe, ProbeError};
use crate::model::{ControlResult, Finding, Severity};
use crate::spec::Operation;

const ID: u8 = 3;

/// An object the audit created.
#[derive(Debug, Clone)]
pub struct Created {
    /// The object's path template (`/api/orders/{id}`).
    pub object_path: String,
    /// Its id; empty once it is gone (deleted by the BOLA probe).
    pub id: String,
    /// Index of the identity that owns it.
    pub owner: usize,
}

#[derive(Debug, Default)]
pub struct Objects {
    pub created: Vec<Created>,
}

/// A collection: its create operation and its object operations.
struct Collection<'a> {
    create: &'a Operation,
    list: Option<&'a Operation>,
    read: &'a Operation,
    update: Option<&'a Operation>,
    delete: Option<&'a Operation>,
}

fn collections<'a>(ctx: &'a Context<'_>) -> Vec<Collection<'a>> {
    let ops = ctx.operations();
    ops.iter()
        .filter(|op| op.method == "POST" && op.path_params.is_empty() && op.body_schema.is_some())
        .filter_map(|create| {
            let object = |method: &str| {
                ops.iter().find(|op| {
                    op.method == method
                        && op.path_params.len() == 1
                        && op
                            .path
                            .strip_prefix(create.path.as_str())
                            .is_some_and(|rest| {
                                rest.starts_with("/{")
                                    && rest.ends_with('}')
                                    && !rest[1..].contains('/')
                            })
                })
            };
            Some(Collection {
                create,
                list: ops
                    .iter()
                    .find(|op| op.method == "GET" && op.path == create.path),
                read: object("GET")?,
                update: object("PUT").or_else(|| object("PATCH")),
                delete: object("DELETE"),
            })
        })
        .take(3)
        .collect()
}

/// The created object's id: the body's `id` (or the path parameter's name), else the
/// `Location` header's last segment. An id that would not stay one path segment once
/// filled in (`.`, `..`, empty, absurdly long) is refused: the target chooses it, and the
/// audit aims updates and deletes at it.
fn created_id(exchange: &Exchange, param: &str) -> Option<String> {
    raw_created_id(exchange, param)
        .filter(|id| !id.is_empty() && id != "." && id != ".." && id.len() <= 200)
}

fn raw_created_id(exchange: &Exchange, param: &str) -> Option<String> {
    let body = exchange.json();
    let from_body = body.as_ref().and_then(|b| {
        [param, "id", "ID", "uuid"]
            .iter()
            .find_map(|k| b.get(*k))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    });
    from_body.or_else(|| {
        exchange
            .header("location")
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

pub async fn run(ctx: &Context<'_>, objects: &mut Objects) -> ControlResult {
    let Some(spec) = ctx.spec else {
        return ControlResult::not_tested(
            ID,
            "needs --openapi (which operations create and read objects)",
        );
    };
    let (Some(first), Some(second)) = (ctx.identity(0), ctx.identity(1)) else {
        return ControlResult::not_tested(ID, "needs two identities (--identity twice)");
    };
    let mut findings = Vec::new();
    let mut tested = false;
    let mut untested = Vec::new();
    let mut budget_out = false;

    let cols = collections(ctx);
    if cols.is_empty() {
        untested
            .push("the spec has no collection with a create and a read-by-id operation".to_owned());
    }
    for col in &cols {
        let schema = col
            .create
            .body_schema
            .as_ref()
            .map(|s| spec.resolve(s))
            .cloned();
        let Some(schema) = schema else { continue };
        let mark = marker();
        let mut body = spec.object_example(&schema);
        let Some(member) = spec.text_members(&schema).into_iter().next() else {
            untested.push(format!(
                "{}: no free-text member to mark the audit's object with",
                col.create.label()
            ));
            continue;
        };
        body[&member] = json!(mark);
        let param = &col.read.path_params[0];
        let created = match ctx
            .prober
            .send(
                Probe::new(Method::POST, col.create.path.clone())
                    .as_identity(first)
                    .json(&body),
            )
            .await
        {
            Ok(x) => x,
            Err(ProbeError::Budget) => {
                budget_out = true;
                break;
            }
            Err(e) => {
                untested.push(format!("{} as {}: {e}", col.create.label(), first.name));
                continue;
            }
        };
        let id = match (created.success(), created_id(&created, param)) {
            (true, Some(id)) => id,
            _ => {
                untested.push(format!(
                    "{} as {} answered {} (no object to test with)",
                    col.create.label(),
                    first.name,
                    created.status
                ));
                continue;
            }
        };
        objects.created.push(Created {
            object_path: col.read.path.clone(),
            id: id.clone(),
            owner: 0,
        });
        let path = col.read.fill(|_| id.clone());
        let read_as =
            |who: &crate::Identity| Probe::new(Method::GET, path.clone()).as_identity(who);
        let owner_view = match ctx.prober.send(read_as(first)).await {
            Ok(x) => x,
            Err(ProbeError::Budget) => {
                budget_out = true;
                break;
            }
            Err(e) => {
                untested.push(format!("{} as {}: {e}", col.read.label(), first.name));
                continue;
            }
        };
        if !owner_view.success() || !owner_view.body.contains(&mark) {
            untested.push(format!(
                "{} as its owner {} answered {} without the object",
                col.read.label(),
                first.name,
                owner_view.status
            ));
            continue;
        }
        // Read as the second identity: a 2xx with the marker is a leak; a refusal (401,
        // 403, 404, 410) or a 2xx without the object is what a guarded API answers; anything
        // else (429, 5xx, a redirect) proves nothing.
        match ctx.prober.send(read_as(second)).await {
            Ok(x) if x.success() && x.body.contains(&mark) => {
                tested = true;
                findings.push(Finding::new(
                    ID,
                    Severity::High,
                    format!("{} reads {}'s object", second.name, first.name),
                    Some(col.read.label()),
                    format!(
                        "owner: {} | other: {}",
                        owner_view.request_line(),
                        x.evidence()
                    ),
                ));
            }
            Ok(x) if x.success() || refusal(x.status) => tested = true,
            Ok(x) => untested.push(format!(
                "{} as {} answered {}, which proves nothing",
                col.read.label(),
                second.name,
                x.status
            )),
            Err(ProbeError::Budget) => budget_out = true,
            Err(e) => untested.push(format!("{} as {}: {e}", col.read.label(), second.name)),
        }
        // The second identity's list must not hold the first's object.
        if let Some(list) = col.list {
            match ctx
                .prober
                .send(Probe::new(Method::GET, list.path.clone()).as_identity(second))
                .await
            {
                Ok(x) if x.success() && x.body.contains(&mark) => findings.push(Finding::new(
                    ID,
                    Severity::High,
                    format!("{}'s list shows {}'s object", second.name, first.name),
                    Some(list.label()),
                    format!(
                        "created: {} | list: {}",
                        created.request_line(),
                        x.evidence()
                    ),
                )),
                Ok(_) => {}
                Err(ProbeError::Budget) => budget_out = true,
                Err(e) => untested.push(format!("{} as {}: {e}", list.label(), second.name)),
            }
        }
        // Update as the second identity, then read back as the owner.
        if let Some(update) = col.update {
            let schema = update.body_schema.as_ref().map(|s| spec.resolve(s).clone());
            let mark2 = marker();
            let mut body = schema
                .as_ref()
                .map_or(json!({}), |s| spec.object_example(s));
            if let Some(m) = schema
                .as_ref()
                .and_then(|s| spec.text_members(s).into_iter().next())
            {
                body[&m] = json!(mark2);
            }
            let attempt = ctx
                .prober
                .send(
                    Probe::new(
                        Method::from_bytes(update.method.as_bytes()).unwrap_or(Method::PUT),
                        path.clone(),
                    )
                    .as_identity(second)
                    .json(&body),
                )
                .await;
            match (attempt, ctx.prober.send(read_as(first)).await) {
                (Ok(attempt), Ok(after)) => {
                    if after.body.contains(&mark2) {
                        findings.push(Finding::new(
                            ID,
                            Severity::High,
                            format!("{} changes {}'s object", second.name, first.name),
                            Some(update.label()),
                            format!(
                                "{} | read back: {}",
                                attempt.request_line(),
                                after.evidence()
                            ),
                        ));
                    } else if attempt.success() {
                        findings.push(Finding::new(
                            ID,
                            Severity::Low,
                            format!(
                                "{} gets a 2xx writing {}'s object (no change seen)",
                                second.name, first.name
                            ),
                            Some(update.label()),
                            attempt.evidence(),
                        ));
                    }
                }
                (Err(ProbeError::Budget), _) | (_, Err(ProbeError::Budget)) => budget_out = true,
                (Err(e), _) | (_, Err(e)) => {
                    untested.push(format!("{}: {e}", update.label()));
                }
            }
        }
        // Delete as the second identity, then read back as the owner: only a 404 or 410
        // for the owner shows the object is gone (a 429 or a 5xx does not).
        if let Some(delete) = col.delete {
            let attempt = ctx
                .prober
                .send(Probe::new(Method::DELETE, path.clone()).as_identity(second))
                .await;
            match (attempt, ctx.prober.send(read_as(first)).await) {
                (Ok(attempt), Ok(after)) => {
                    if matches!(after.status, 404 | 410) {
                        findings.push(Finding::new(
                            ID,
                            Severity::High,
                            format!("{} deletes {}'s object", second.name, first.name),
                            Some(delete.label()),
                            format!(
                                "{} | read back: {}",
                                attempt.request_line(),
                                after.request_line()
                            ),
                        ));
                        if let Some(o) = objects.created.last_mut() {
                            o.id.clear();
                        }
                    }
                }
                (Err(ProbeError::Budget), _) | (_, Err(ProbeError::Budget)) => budget_out = true,
                (Err(e), _) | (_, Err(e)) => {
                    untested.push(format!("{}: {e}", delete.label()));
                }
            }
        }
    }

    // Mass assignment: privileged members in a create, then read back.
    if let Some(col) = cols.first() {
        match mass_assignment(ctx, col, objects).await {
            Ok(Ok(Some(finding))) => findings.push(finding),
            Ok(Ok(None)) => {}
            Ok(Err(note)) => untested.push(format!("mass assignment: {note}")),
            Err(ProbeError::Budget) => budget_out = true,
            Err(e) => untested.push(format!("mass assignment: {e}")),
        }
    }

    // Function level: admin-only operations as a normal identity.
    let admin_ops: Vec<&Operation> = ctx.operations().iter().filter(|op| op.admin_only).collect();
    match (&ctx.options.admin_identity, admin_ops.is_empty()) {
        (None, _) => untested.push("function-level checks need --admin-identity".to_owned()),
        (Some(_), true) => untested.push("the spec marks no operation admin-only".to_owned()),
        (Some(_), false) => {
            for op in admin_ops.iter().filter(|op| op.method == "GET").take(5) {
                let path = op.fill(|p| path_value(objects, op, p));
                match ctx
                    .prober
                    .send(Probe::new(Method::GET, path).as_identity(first))
                    .await
                {
                    Ok(x) if x.success() => findings.push(Finding::new(
                        ID,
                        Severity::High,
                        format!("{} calls an admin-only operation", first.name),
                        Some(op.label()),
                        x.evidence(),
                    )),
                    Ok(x) if refusal(x.status) => tested = true,
                    Ok(x) => untested.push(format!(
                        "{} as {} answered {}, which proves nothing",
                        op.label(),
                        first.name,
                        x.status
                    )),
                    Err(ProbeError::Budget) => budget_out = true,
                    Err(e) => untested.push(format!("{}: {e}", op.label())),
                }
            }
        }
    }

    if budget_out {
        untested.push(ctx.budget_reason());
    }
    for note in &untested {
        findings.push(
            Finding::new(ID, Severity::Info, "not tested", None, note.clone())
                // Several notes share the title: each its own fingerprint.
                .keyed(ID, note),
        );
    }
    let reason = if untested.is_empty() {
        "no object-level test could run".to_owned()
    } else {
        untested.join("; ")
    };
    let mut result = ControlResult::conclude(ID, findings, tested && !budget_out, &reason);
    // A PASS that rests on part of the checks says which part did not run, in the status
    // cell as well as in the notes: function-level checks without --admin-identity, or a
    // mass-assignment probe that proved nothing, are not a pass.
    if result.status == crate::Status::Pass && !untested.is_empty() {
        result.reason = Some(format!("partly tested: {}", untested.join("; ")));
    }
    result
}

/// Creates an object with `role`, `isAdmin` and `admin` set, and reads it back: a finding
/// when they were stored, `Err(why)` when the probe proved nothing (the create was refused,
/// nothing could be read back).
async fn mass_assignment(
    ctx: &Context<'_>,
    col: &Collection<'_>,
    objects: &mut Objects,
) -> Result<Result<Option<Finding>, String>, ProbeError> {
    let (Some(spec), Some(first)) = (ctx.spec, ctx.identity(0)) else {
        return Ok(Err("needs --openapi and an identity".to_owned()));
    };
    let Some(schema) = col
        .create
        .body_schema
        .as_ref()
        .map(|s| spec.resolve(s).clone())
    else {
        return Ok(Err(format!("{} takes no JSON body", col.create.label())));
    };
    let mut body = spec.object_example(&schema);
    let mark = marker();
    if let Some(m) = spec.text_members(&schema).into_iter().next() {
        body[&m] = json!(mark);
    }
    body["role"] = json!("admin");
    body["isAdmin"] = json!(true);
    body["admin"] = json!(true);
    let created = ctx
        .prober
        .send(
            Probe::new(Method::POST, col.create.path.clone())
                .as_identity(first)
                .json(&body),
        )
        .await?;
    if !created.success() {
        // The same create without the privileged members succeeded (the object-level
        // probe created one): a 400, 403 or 422 now refuses them, which passes.
        let plain_create_worked = objects
            .created
            .iter()
            .any(|o| o.object_path == col.read.path && o.owner == 0);
        if plain_create_worked && matches!(created.status, 400 | 403 | 422) {
            return Ok(Ok(None));
        }
        // Otherwise the answer shows nothing about what would be stored.
        return Ok(Err(format!(
            "{} with privileged members answered {}",
            col.create.label(),
            created.status
        )));
    }
    let param = &col.read.path_params[0];
    let mut seen = created.json();
    let mut read_back = false;
    if let Some(id) = created_id(&created, param) {
        objects.created.push(Created {
            object_path: col.read.path.clone(),
            id: id.clone(),
            owner: 0,
        });
        let path = col.read.fill(|_| id.clone());
        if let Ok(back) = ctx
            .prober
            .send(Probe::new(Method::GET, path).as_identity(first))
            .await
            && back.success()
        {
            seen = back.json();
            read_back = seen.is_some();
        }
    }
    let privileged = seen.as_ref().is_some_and(|v| {
        v.get("role") == Some(&json!("admin"))
            || v.get("isAdmin") == Some(&json!(true))
            || v.get("admin") == Some(&json!(true))
    });
    if !privileged && !read_back && seen.is_none() {
        return Ok(Err(format!(
            "{} created an object that could not be read back",
            col.create.label()
        )));
    }
    Ok(Ok(privileged.then(|| {
        Finding::new(
            ID,
            Severity::High,
            "mass assignment: privileged members are stored",
            Some(col.create.label()),
            format!(
                "{} read back: {}",
                created.request_line(),
                seen.map(|v| v.to_string()).unwrap_or_default()
            ),
        )
    })))
}

/// What a guarded API answers a caller who may not see an object or operation.
fn refusal(status: u16) -> bool {
    matches!(status, 401 | 403 | 404 | 410)
}

/// Deletes the objects the audit created, as their owner.
pub async fn cleanup(ctx: &Context<'_>, objects: &Objects) {
    for object in objects.created.iter().filter(|o| !o.id.is_empty()) {
        let Some(owner) = ctx.identity(object.owner) else {
            continue;
        };
        let Some(op) = ctx.spec.and_then(|s| s.find("DELETE", &object.object_path)) else {
            continue;
        };
        let path = op.fill(|_| object.id.clone());
        let _ = ctx
            .prober
            .send(Probe::new(Method::DELETE, path).as_identity(owner))
            .await;
    }
}
