//! The repository secret scanner behind control 9.
//!
//! Input: a git repository. It scans the working tree (tracked and untracked, not ignored
//! files) and every line ever added in the history of every branch (`git log -p --all`), and
//! lists `.env` files that were committed or are not ignored. Output: [`SecretHit`]s with a
//! masked preview and a fingerprint, never the secret, one per secret (its first location,
//! and how many more). A repository with no commit yet is scanned (its working tree only).
//! Failure: `git` missing or the path not a repository, as an error message.
//!
//! The repository may be someone else's: git runs with its repository-configured programs
//! turned off (no fsmonitor hook, no textconv or external diff), so scanning it runs
//! nothing it names.
//!
//! Example files (`.env.example`, `*.sample`, `*.template`, `*.dist`) are skipped: they are
//! where placeholders belong. Known non-secrets elsewhere (test fixtures, a scanner's own
//! pattern examples) are listed by fingerprint in [`IGNORE_FILE`] at the repository's root,
//! one per line with a comment saying why; they are counted, not reported. A fingerprint
//! names one value, so a real secret is never hidden by a fixture's entry.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::{fingerprint, mask, patterns};

/// Fingerprints of values that look like secrets and are known not to be.
pub const IGNORE_FILE: &str = ".palisade-audit-ignore";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHit {
    pub kind: String,
    /// `path:line` in the working tree, or `commit abc1234 path:line`.
    pub location: String,
    pub preview: String,
    pub fingerprint: String,
    /// Other places the same secret appears.
    pub more: usize,
}

/// What the scan found.
#[derive(Debug, Default)]
pub struct ScanResult {
    pub secrets: Vec<SecretHit>,
    /// `.env` files committed (with the commit) or present and not ignored.
    pub env_files: Vec<String>,
    /// Values found and left out because [`IGNORE_FILE`] lists their fingerprint.
    pub ignored: usize,
}

/// The fingerprints in the repository's [`IGNORE_FILE`]: the first word of each line that
/// is not blank or a `#` comment.
fn ignored_fingerprints(repo: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(repo.join(IGNORE_FILE)).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "core.fsmonitor=false", "-c", "diff.external="])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "git {} in {}: {}",
            args.first().unwrap_or(&""),
            repo.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Files where placeholders are expected.
pub fn is_example(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    [".example", ".sample", ".template", ".dist", ".tmpl"]
        .iter()
        .any(|s| name.ends_with(s) || name.contains(&format!("{s}.")))
        || name.starts_with("example")
}

/// A `.env` file (`.env`, `.env.local`, `.env.production`), examples excepted.
pub fn is_env_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    (name == ".env" || name.starts_with(".env.")) && !is_example(path)
}

pub fn scan(repo: &Path) -> Result<ScanResult, String> {
    git(repo, &["rev-parse", "--git-dir"])?;
    let mut found: Vec<SecretHit> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut record = |kind: &str, location: String, value: &str| {
        let print = fingerprint(&[value]);
        match index.get(&print) {
            Some(&i) => found[i].more += 1,
            None => {
                index.insert(print.clone(), found.len());
                found.push(SecretHit {
                    kind: kind.to_owned(),
                    location,
                    preview: mask(value),
                    fingerprint: print,
                    more: 0,
                });
            }
        }
    };
    let mut env_files = Vec::new();

    // The working tree: tracked files and untracked ones that are not ignored.
    let files = git(
        repo,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    )?;
    let untracked = git(repo, &["ls-files", "-z", "--others", "--exclude-standard"])?;
    for path in untracked.split('\0').filter(|p| is_env_file(p)) {
        env_files.push(format!("{path} is not ignored (.gitignore)"));
    }
    for path in files
        .split('\0')
        .filter(|p| !p.is_empty() && !is_example(p))
    {
        let full = repo.join(path);
        let Ok(meta) = std::fs::metadata(&full) else {
            continue;
        };
        if !meta.is_file() || meta.len() > 1024 * 1024 {
            continue;
        }
        let Ok(bytes) = std::fs::read(&full) else {
            continue;
        };
        if bytes.contains(&0) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        for (i, line) in text.lines().enumerate() {
            for hit in patterns::secrets(line) {
                record(hit.kind, format!("{path}:{}", i + 1), &hit.text);
            }
        }
    }

    // The history: every added line of every commit on every ref.
    let log = git(
        repo,
        &[
            "log",
            "-p",
            "--all",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "-U0",
            "--format=commit %H",
        ],
    )?;
    let (mut commit, mut file, mut line_no) = (String::new(), String::new(), 0usize);
    for line in log.lines() {
        if let Some(sha) = line.strip_prefix("commit ") {
            commit = sha.chars().take(12).collect();
        } else if let Some(path) = line.strip_prefix("+++ ") {
            file = path.strip_prefix("b/").unwrap_or(path).to_owned();
            if is_env_file(&file) {
                env_files.push(format!("{file} was committed in {commit}"));
            }
        } else if let Some(hunk) = line.strip_prefix("@@ ") {
            line_no = hunk
                .split_whitespace()
                .find_map(|p| p.strip_prefix('+'))
                .and_then(|p| p.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
        } else if let Some(added) = line.strip_prefix('+') {
            if !is_example(&file) {
                for hit in patterns::secrets(added) {
                    record(
                        hit.kind,
                        format!("commit {commit} {file}:{line_no}"),
                        &hit.text,
                    );
                }
            }
            line_no += 1;
        }
    }
    env_files.dedup();
    let ignore = ignored_fingerprints(repo);
    let before = found.len();
    found.retain(|hit| !ignore.contains(&hit.fingerprint));
    Ok(ScanResult {
        ignored: before - found.len(),
        secrets: found,
        env_files,
    })
}
