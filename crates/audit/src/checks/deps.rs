//! Control 10, dependencies: lock files against a local advisory database, offline.
//!
//! Input: `--advisories PATH`, a RustSec advisory-db checkout (`crates/NAME/RUSTSEC-*.md`
//! with a TOML front block) or a directory of OSV JSON files (`crates.io`, `npm` and `PyPI`
//! ecosystems), and the lock files (`Cargo.lock`, `package-lock.json`, pinned
//! `requirements*.txt`, `poetry.lock`) of `--repo`. Output:
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
    /// RustSec's `informational` kind (`unmaintained`, `unsound`, `notice`): not a known
    /// vulnerability, so a WARN rather than a FAIL, as `cargo audit` treats them.
    pub informational: Option<String>,
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
    /// OSV for PyPI: the same with PEP 440 versions, which semver cannot parse (`2.0`,
    /// `1.0rc1`, `1.0.post2`).
    PyRanges {
        ranges: Vec<(Option<Pep440>, Option<Pep440>)>,
        versions: Vec<String>,
    },
}

/// A PEP 440 version reduced to an ordering that is right for release versions and
/// their usual pre-, post- and dev-releases: the release segments (trailing zeros
/// dropped, so `2.0` equals `2`), then the phase (dev < a < b < rc < final < post) and its
/// number. Epochs and local labels (`+local`) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pep440 {
    release: Vec<u64>,
    phase: i8,
    number: u64,
}

impl Pep440 {
    pub fn parse(text: &str) -> Option<Pep440> {
        let v = text.trim().to_ascii_lowercase();
        let v = v.strip_prefix('v').unwrap_or(&v);
        let v = v.split('+').next()?;
        let v = v.rsplit('!').next()?;
        let split = v
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(v.len());
        let (release, rest) = v.split_at(split);
        let mut segments = release
            .trim_end_matches('.')
            .split('.')
            .map(|n| n.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()?;
        while segments.len() > 1 && segments.last() == Some(&0) {
            segments.pop();
        }
        let rest = rest.trim_start_matches(['.', '-', '_']);
        let digits = |t: &str| -> Option<u64> {
            let t = t.trim_start_matches(['.', '-', '_']);
            if t.is_empty() {
                Some(0)
            } else {
                t.parse().ok()
            }
        };
        let (phase, number) = if rest.is_empty() {
            (0, 0)
        } else if let Some(n) = rest.strip_prefix("dev") {
            (-4, digits(n)?)
        } else if let Some(n) = rest
            .strip_prefix("alpha")
            .or_else(|| rest.strip_prefix('a'))
        {
            (-3, digits(n.split(".dev").next()?)?)
        } else if let Some(n) = rest.strip_prefix("beta").or_else(|| rest.strip_prefix('b')) {
            (-2, digits(n.split(".dev").next()?)?)
        } else if let Some(n) = rest
            .strip_prefix("rc")
            .or_else(|| rest.strip_prefix("pre"))
            .or_else(|| rest.strip_prefix("preview"))
            .or_else(|| rest.strip_prefix('c'))
        {
            (-1, digits(n.split(".dev").next()?)?)
        } else if let Some(n) = rest
            .strip_prefix("post")
            .or_else(|| rest.strip_prefix("rev"))
            .or_else(|| rest.strip_prefix('r'))
        {
            (1, digits(n.split(".dev").next()?)?)
        } else {
            return None;
        };
        Some(Pep440 {
            release: segments,
            phase,
            number,
        })
    }
}

/// A Python package name as PEP 503 compares them: lowercase, runs of `-`, `_`, `.` as one
/// `-` (`Django_REST.framework` is `django-rest-framework`).
pub fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
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
            Affected::PyRanges { ranges, versions } => {
                let Some(v) = Pep440::parse(version) else {
                    return versions.iter().any(|l| l == version);
                };
                versions
                    .iter()
                    .any(|l| l == version || Pep440::parse(l).as_ref() == Some(&v))
                    || ranges.iter().any(|(from, to)| {
                        from.as_ref().is_none_or(|f| &v >= f) && to.as_ref().is_none_or(|t| &v < t)
                    })
            }
        }
    }

    fn fix(&self) -> String {
        match &self.affected {
            Affected::Except { patched, .. } if !patched.is_empty() => {
                format!("patched: {}", patched.join(" or "))
            }
            Affected::Ranges { ranges, .. } => fixed_in(
                ranges
                    .iter()
                    .filter_map(|(_, t)| t.as_ref().map(|t| format!(">= {t}"))),
            ),
            Affected::PyRanges { ranges, .. } => fixed_in(ranges.iter().filter_map(|(_, t)| {
                t.as_ref().map(|t| {
                    let release: Vec<String> = t.release.iter().map(u64::to_string).collect();
                    format!(">= {}", release.join("."))
                })
            })),
            _ => "no patched version".to_owned(),
        }
    }
}

fn fixed_in(fixed: impl Iterator<Item = String>) -> String {
    let fixed: Vec<String> = fixed.collect();
    if fixed.is_empty() {
        "no fixed version".to_owned()
    } else {
        format!("fixed in {}", fixed.join(" or "))
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
        informational: advisory
            .get("informational")
            .and_then(|i| i.as_str())
            .map(str::to_owned),
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
            Some("PyPI") => "PyPI",
            _ => continue,
        };
        let Some(name) = package.get("name").and_then(Value::as_str) else {
            continue;
        };
        let versions: Vec<String> = affected
            .get("versions")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        // GIT ranges hold commit hashes, not versions: read as versions they would be
        // unbounded and cover every release. Only SEMVER and ECOSYSTEM ranges are used
        // (the `versions` list covers what a GIT range resolved to).
        let version_ranges = affected
            .get("ranges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| {
                matches!(
                    r.get("type").and_then(Value::as_str),
                    Some("SEMVER" | "ECOSYSTEM")
                )
            });
        if ecosystem == "PyPI" {
            let ranges = osv_ranges(
                version_ranges,
                |v| {
                    Pep440::parse(v).unwrap_or(Pep440 {
                        release: vec![0],
                        phase: -4,
                        number: 0,
                    })
                },
                Pep440::parse,
                // Everything up to and including `last_affected`: its post-releases are the
                // next versions up that can be named.
                |v| {
                    Pep440::parse(v).map(|l| Pep440 {
                        phase: 2,
                        number: 0,
                        ..l
                    })
                },
            );
            out.push(Advisory {
                id: id.clone(),
                ecosystem,
                package: pep503(name),
                title: title.clone(),
                affected: Affected::PyRanges { ranges, versions },
                informational: None,
            });
            continue;
        }
        let ranges = osv_ranges(
            version_ranges,
            |v| Version::parse(v).unwrap_or(Version::new(0, 0, 0)),
            |v| Version::parse(v).ok(),
            |v| {
                Version::parse(v).ok().map(|mut l| {
                    l.patch += 1;
                    l.pre = semver::Prerelease::EMPTY;
                    l
                })
            },
        );
        out.push(Advisory {
            id: id.clone(),
            ecosystem,
            package: name.to_owned(),
            title: title.clone(),
            affected: Affected::Ranges { ranges, versions },
            informational: None,
        });
    }
    out
}

/// An OSV advisory's ranges as `[from, to)` pairs, whatever the version type: each
/// `introduced` opens a range (`introduced` reads an unparsable or `0` start as the
/// lowest version), a `fixed` closes it there, a `last_affected` closes it at `after_last`
/// (the first version above), and a range still open at the end is unbounded.
fn osv_ranges<'a, V>(
    version_ranges: impl Iterator<Item = &'a Value>,
    introduced: impl Fn(&str) -> V,
    fixed: impl Fn(&str) -> Option<V>,
    after_last: impl Fn(&str) -> Option<V>,
) -> Vec<(Option<V>, Option<V>)> {
    let mut ranges = Vec::new();
    for range in version_ranges {
        let mut from = None;
        for event in range
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(v) = event.get("introduced").and_then(Value::as_str) {
                from = Some(introduced(v));
            } else if let Some(v) = event.get("fixed").and_then(Value::as_str) {
                ranges.push((from.take(), fixed(v)));
            } else if let Some(v) = event.get("last_affected").and_then(Value::as_str) {
                ranges.push((from.take(), after_last(v)));
            }
        }
        if let Some(open) = from {
            ranges.push((Some(open), None));
        }
    }
    ranges
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
        if name == "Cargo.lock" || name == "poetry.lock" {
            // Both list `[[package]]` tables with a name and a version.
            let Ok(doc) = text.parse::<toml::Table>() else {
                continue;
            };
            let cargo = name == "Cargo.lock";
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
                    out.push(if cargo {
                        ("crates.io", n.to_owned(), v.to_owned(), shown.clone())
                    } else {
                        ("PyPI", pep503(n), v.to_owned(), shown.clone())
                    });
                }
            }
        } else if requirements_file(&path) {
            for (n, v) in pinned_requirements(&text) {
                out.push(("PyPI", n, v, shown.clone()));
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

/// `requirements.txt`, `requirements-dev.txt`, `requirements/base.txt`.
fn requirements_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".txt")
        && (name.starts_with("requirements")
            || path
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|p| p == "requirements"))
}

/// The exactly pinned packages of a requirements file, `name==version` (extras, markers
/// and hashes allowed), names PEP 503 normalised. Comments, options (`-r`, `-e`,
/// `--hash`), URLs and unpinned or wildcard lines (`>=`, `~=`, `==1.*`) say no single
/// version and are left out.
pub fn pinned_requirements(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(" #").next().unwrap_or("").trim();
        let line = line.trim_end_matches('\\').trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
            continue;
        }
        let spec = line.split(';').next().unwrap_or("");
        let spec = spec.split(" --").next().unwrap_or("").trim();
        let Some((name, version)) = spec.split_once("===").or_else(|| spec.split_once("==")) else {
            continue;
        };
        let name = name.split('[').next().unwrap_or("").trim();
        let version = version.trim();
        let plain_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let plain_version = !version.is_empty()
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '-' | '_'));
        if plain_name && plain_version {
            out.push((pep503(name), version.to_owned()));
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
                "no Cargo.lock, package-lock.json, requirements*.txt or poetry.lock under {}",
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
                let (severity, kind) = match &adv.informational {
                    Some(kind) => (Severity::Low, format!(" [{kind}]")),
                    None => (Severity::High, String::new()),
                };
                findings.push(Finding::new(
                    ID,
                    severity,
                    format!("{} {name} {version}{kind}", adv.id),
                    Some(file.clone()),
                    format!("{} ({})", adv.title, adv.fix()),
                ));
            }
        }
    }
    findings.dedup_by(|a, b| a.title == b.title);
    ControlResult::conclude(ID, findings, true, "")
}
