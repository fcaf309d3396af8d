//! Control 10, dependencies: lock files against a local advisory database, offline.
//!
//! Input: `--advisories PATH`, a RustSec advisory-db checkout (`crates/NAME/RUSTSEC-*.md`
//! with a TOML front block) or a directory of OSV JSON files (`crates.io` and `npm`
//! ecosystems), and the lock files (`Cargo.lock`, `package-lock.json`) of `--repo`. Output:
//! FAIL for each locked version an advisory covers (id, package, version, the fix);
//! NOT_TESTED without both inputs; ERROR when the database cannot be read. Nothing is
//! fetched: an audit in CI must not depend on the network.

use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde_json::Value;

use super::Context;
use crate::model::{ControlResult, Finding, Severity};

const ID: u8 = 10;

/// One advisory, reduced to what matching needs.
#[derive(Debug, Clone)]
pub struct Advisory {
    pub id: String,
    pub ecosystem: &'static str,
    pub package: String,
    pub affected: Affected,
    pub title: String,
}

#[derive(Debug, Clone)]
pub enum Affected {
    /// RustSec: vulnerable unless one of `patched` or `unaffected` matches.
    Except {
        safe: Vec<VersionReq>,
        patched: Vec<String>,
    },
    /// OSV: `[introduced, fixed)` ranges, and listed versions.
    Ranges {
        ranges: Vec<(Option<Version>, Option<Version>)>,
        versions: Vec<String>,
    },
}

impl Advisory {
    pub fn covers(&self, version: &str) -> bool {
        let parsed = Version::parse(version).ok();
        match &self.affected {
            Affected::Except { safe, .. } => {
                parsed.is_some_and(|v| !safe.iter().any(|r| r.matches(&v)))
            }
            Affected::Ranges { ranges, versions } => {
                versions.iter().any(|v| v == version)
                    || parsed.is_some_and(|v| {
                        ranges.iter().any(|(from, to)| {
                            from.as_ref().is_none_or(|f| &v >= f)
                                && to.as_ref().is_none_or(|t| &v < t)
                        })
                    })
            }
        }
    }

    fn fix(&self) -> String {
        match &self.affected {
            Affected::Except { patched, .. } if !patched.is_empty() => {
                format!("patched: {}", patched.join(" or "))
            }
            Affected::Ranges { ranges, .. } => {
                let fixed: Vec<String> = ranges
                    .iter()
                    .filter_map(|(_, t)| t.as_ref().map(|t| format!(">= {t}")))
                    .collect();
                if fixed.is_empty() {
                    "no fixed version".to_owned()
                } else {
                    format!("fixed in {}", fixed.join(" or "))
                }
            }
            _ => "no patched version".to_owned(),
        }
    }
}

/// Reads every advisory under `dir` (RustSec `.md`/`.toml`, OSV `.json`).
pub fn load_advisories(dir: &Path) -> Result<Vec<Advisory>, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut out = Vec::new();
    for path in walk(dir, 6) {
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        match ext {
            "md" | "toml" => out.extend(rustsec(&text)),
            "json" => out.extend(osv(&text)),
            _ => {}
        }
    }
    Ok(out)
}

fn rustsec(text: &str) -> Option<Advisory> {
    let front = match text.strip_prefix("```toml") {
        Some(rest) => rest.split("```").next()?,
        None => text,
    };
    let doc: toml::Table = front.parse().ok()?;
    let advisory = doc.get("advisory")?.as_table()?;
    if advisory.get("withdrawn").is_some() {
        return None;
    }
    let strings = |key: &str| -> Vec<String> {
        doc.get("versions")
            .and_then(|v| v.get(key))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let patched = strings("patched");
    let safe = patched
        .iter()
        .chain(&strings("unaffected"))
        .filter_map(|r| VersionReq::parse(r).ok())
        .collect();
    Some(Advisory {
        id: advisory.get("id")?.as_str()?.to_owned(),
        ecosystem: "crates.io",
        package: advisory.get("package")?.as_str()?.to_owned(),
        title: advisory
            .get("title")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned(),
        affected: Affected::Except { safe, patched },
    })
}

fn osv(text: &str) -> Vec<Advisory> {
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    if doc.get("withdrawn").is_some() {
        return Vec::new();
    }
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("OSV")
        .to_owned();
    let title = doc
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut out = Vec::new();
    for affected in doc
        .get("affected")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let package = &affected["package"];
        let ecosystem = match package.get("ecosystem").and_then(Value::as_str) {
            Some("crates.io") => "crates.io",
            Some("npm") => "npm",
            _ => continue,
        };
        let Some(name) = package.get("name").and_then(Value::as_str) else {
            continue;
        };
        let mut ranges = Vec::new();
        for range in affected
            .get("ranges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut from: Option<Version> = None;
            for event in range
                .get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(v) = event.get("introduced").and_then(Value::as_str) {
                    from = Some(if v == "0" {
                        Version::new(0, 0, 0)
                    } else {
                        Version::parse(v).unwrap_or(Version::new(0, 0, 0))
                    });
                } else if let Some(v) = event.get("fixed").and_then(Value::as_str) {
                    ranges.push((from.take(), Version::parse(v).ok()));
                } else if let Some(v) = event.get("last_affected").and_then(Value::as_str) {
                    let last = Version::parse(v).ok().map(|mut l| {
                        l.patch += 1;
                        l.pre = semver::Prerelease::EMPTY;
                        l
                    });
                    ranges.push((from.take(), last));
                }
            }
            if let Some(open) = from {
                ranges.push((Some(open), None));
            }
        }
        let versions = affected
            .get("versions")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Advisory {
            id: id.clone(),
            ecosystem,
            package: name.to_owned(),
            title: title.clone(),
            affected: Affected::Ranges { ranges, versions },
        });
    }
    out
}

/// (ecosystem, name, version, lock file) for every locked package under `root`.
pub fn locked_packages(root: &Path) -> Vec<(&'static str, String, String, String)> {
    let mut out = Vec::new();
    for path in walk(root, 4) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let shown = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if name == "Cargo.lock" {
            let Ok(doc) = text.parse::<toml::Table>() else {
                continue;
            };
            for pkg in doc
                .get("package")
                .and_then(|p| p.as_array())
                .into_iter()
                .flatten()
            {
                if let (Some(n), Some(v)) = (
                    pkg.get("name").and_then(|v| v.as_str()),
                    pkg.get("version").and_then(|v| v.as_str()),
                ) {
                    out.push(("crates.io", n.to_owned(), v.to_owned(), shown.clone()));
                }
            }
        } else if name == "package-lock.json" {
            let Ok(doc) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            for (key, pkg) in doc
                .get("packages")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let Some(n) = key
                    .rsplit("node_modules/")
                    .next()
                    .filter(|n| !n.is_empty() && key.contains("node_modules/"))
                else {
                    continue;
                };
                if let Some(v) = pkg.get("version").and_then(Value::as_str) {
                    out.push(("npm", n.to_owned(), v.to_owned(), shown.clone()));
                }
            }
        }
    }
    out
}

/// Files under `dir`, `depth` levels deep, skipping build and VCS directories.
fn walk(dir: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if depth > 0 && !matches!(name.as_ref(), ".git" | "target" | "node_modules") {
                out.extend(walk(&path, depth - 1));
            }
        } else {
            out.push(path);
        }
    }
    out
}

pub fn run(ctx: &Context<'_>) -> ControlResult {
    let (Some(db), Some(repo)) = (&ctx.options.advisories, &ctx.options.repo) else {
        return ControlResult::not_tested(
            ID,
            "needs --advisories PATH (a local RustSec or OSV database) and --repo PATH (the lock files)",
        );
    };
    let advisories = match load_advisories(db) {
        Ok(a) if a.is_empty() => {
            return ControlResult::error(ID, format!("no advisories found in {}", db.display()));
        }
        Ok(a) => a,
        Err(e) => return ControlResult::error(ID, e),
    };
    let packages = locked_packages(repo);
    if packages.is_empty() {
        return ControlResult::not_tested(
            ID,
            format!(
                "no Cargo.lock or package-lock.json under {}",
                repo.display()
            ),
        );
    }
    let mut findings = Vec::new();
    for (eco, name, version, file) in &packages {
        for adv in advisories
            .iter()
            .filter(|a| a.ecosystem == *eco && &a.package == name)
        {
            if adv.covers(version) {
                findings.push(Finding::new(
                    ID,
                    Severity::High,
                    format!("{} {name} {version}", adv.id),
                    Some(file.clone()),
                    format!("{} ({})", adv.title, adv.fix()),
                ));
            }
        }
    }
    findings.dedup_by(|a, b| a.title == b.title);
    ControlResult::conclude(ID, findings, true, "")
}
