//! Controls 9 and 10 against a temporary git repository: secrets in history and in the
//! working tree (never in `.env.example`), a committed `.env`, and lock files checked against
//! a local advisory database.

use std::path::Path;
use std::process::Command;

use palisade_audit::checks::deps;
use palisade_audit::secrets_scan;

/// The seeded AWS key id (a made-up one in AWS's format).
const AWS_KEY: &str = "AKIAQ7R2VX5LMN3PQ4ZT";
const PRIVATE_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----";

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=audit",
            "-c",
            "user.email=audit@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

fn write(dir: &Path, path: &str, text: &str) {
    let full = dir.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, text).unwrap();
}

/// A repository whose history once held secrets that the working tree no longer shows.
fn seeded_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    write(
        d,
        "src/config.py",
        &format!("AWS_ACCESS_KEY_ID = \"{AWS_KEY}\"\nSECRET_KEY = \"random\"\n"),
    );
    write(
        d,
        "deploy/key.pem",
        &format!("{PRIVATE_KEY}\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"),
    );
    write(d, ".env", "DATABASE_PASSWORD=Zx8qLm2Vb7Nc4Rt6Yp1W\n");
    write(
        d,
        ".env.example",
        "DATABASE_PASSWORD=changeme\nSECRET_KEY=random\nAPI_TOKEN=q8Zp3LxV9kT2mW7rB4nY6sH1\n",
    );
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "first"]);
    // The secrets are "removed": only the history has them now.
    write(
        d,
        "src/config.py",
        "import os\nAWS_ACCESS_KEY_ID = os.environ[\"AWS_ACCESS_KEY_ID\"]\nSECRET_KEY = \"${env:SECRET_KEY}\"\n",
    );
    std::fs::remove_file(d.join("deploy/key.pem")).unwrap();
    git(d, &["rm", "-q", "--cached", ".env"]);
    write(d, ".gitignore", ".env\n");
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "remove secrets"]);
    // A secret in the working tree, not committed yet.
    write(
        d,
        "src/local.rs",
        "const API_TOKEN: &str = \"ghp_0123456789abcdefghijABCDEFGHIJ0123456789\";\n",
    );
    dir
}

#[test]
fn seeded_secrets_are_found_in_history_and_never_in_the_example_file() {
    let repo = seeded_repo();
    let result = secrets_scan::scan(repo.path()).unwrap();
    let found: Vec<(&str, &str)> = result
        .secrets
        .iter()
        .map(|h| (h.kind.as_str(), h.location.as_str()))
        .collect();
    let has = |kind: &str, location_part: &str| {
        found
            .iter()
            .any(|(k, l)| *k == kind && l.contains(location_part))
    };
    assert!(has("AWS access key id", "src/config.py:1"), "{found:?}");
    assert!(
        has("AWS access key id", "commit "),
        "found in history: {found:?}"
    );
    assert!(has("weak secret literal", "src/config.py:2"), "{found:?}");
    assert!(has("private key", "deploy/key.pem:1"), "{found:?}");
    assert!(has("high-entropy secret assignment", ".env:1"), "{found:?}");
    assert!(
        has("GitHub token", "src/local.rs:1"),
        "working tree: {found:?}"
    );
    assert!(
        found.iter().all(|(_, l)| !l.contains(".env.example")),
        "{found:?}"
    );
    assert!(
        result
            .env_files
            .iter()
            .any(|e| e.starts_with(".env was committed")),
        "{:?}",
        result.env_files
    );

    // Findings show a masked preview and a fingerprint, never the secret.
    let findings = palisade_audit::checks::secrets::findings(&result);
    let text = format!("{findings:?}");
    assert!(
        !text.contains(AWS_KEY)
            && !text.contains("Zx8qLm2Vb7Nc4Rt6Yp1W")
            && !text.contains("ghp_0123456789abcdef"),
        "{text}"
    );
    assert!(text.contains("AKIA… (20 chars)"), "{text}");
}

#[test]
fn an_env_file_that_is_not_ignored_fails() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    write(dir.path(), ".env", "DEBUG=1\n");
    let result = secrets_scan::scan(dir.path()).unwrap();
    assert_eq!(result.env_files, [".env is not ignored (.gitignore)"]);
    write(dir.path(), ".gitignore", ".env\n");
    assert!(secrets_scan::scan(dir.path()).unwrap().env_files.is_empty());
}

#[test]
fn a_clean_repository_has_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    write(
        dir.path(),
        "src/main.rs",
        "fn main() { let token = std::env::var(\"TOKEN\"); }\n",
    );
    write(dir.path(), ".env.example", "TOKEN=changeme\n");
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "clean"]);
    let result = secrets_scan::scan(dir.path()).unwrap();
    assert!(
        result.secrets.is_empty() && result.env_files.is_empty(),
        "{result:?}"
    );
}

#[test]
fn lock_files_are_checked_against_rustsec_and_osv_offline() {
    let repo = tempfile::tempdir().unwrap();
    write(
        repo.path(),
        "Cargo.lock",
        "version = 4\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\n\n[[package]]\nname = \"hyper\"\nversion = \"1.5.0\"\n",
    );
    write(
        repo.path(),
        "web/package-lock.json",
        r#"{"packages": {"": {"name": "web"}, "node_modules/lodash": {"version": "4.17.20"}}}"#,
    );
    let db = tempfile::tempdir().unwrap();
    write(
        db.path(),
        "crates/smallvec/RUSTSEC-2021-0003.md",
        "```toml\n[advisory]\nid = \"RUSTSEC-2021-0003\"\npackage = \"smallvec\"\ntitle = \"Buffer overflow in SmallVec::insert_many\"\n\n[versions]\npatched = [\">= 0.6.14, < 1.0.0\", \">= 1.6.1\"]\n```\n\n# Buffer overflow\n",
    );
    write(
        db.path(),
        "crates/hyper/RUSTSEC-2099-0001.md",
        "```toml\n[advisory]\nid = \"RUSTSEC-2099-0001\"\npackage = \"hyper\"\ntitle = \"old only\"\n\n[versions]\npatched = [\">= 0.14.10\"]\n```\n",
    );
    write(
        db.path(),
        "osv/GHSA-35jh-r3h4-6jhm.json",
        r#"{"id": "GHSA-35jh-r3h4-6jhm", "summary": "Command injection in lodash",
            "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                          "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]}"#,
    );
    let advisories = deps::load_advisories(db.path()).unwrap();
    assert_eq!(advisories.len(), 3);
    let packages = deps::locked_packages(repo.path());
    let vulnerable: Vec<String> = packages
        .iter()
        .flat_map(|(eco, name, version, _)| {
            advisories
                .iter()
                .filter(move |a| a.ecosystem == *eco && &a.package == name && a.covers(version))
                .map(move |a| format!("{} {name} {version}", a.id))
        })
        .collect();
    assert_eq!(vulnerable.len(), 2, "{vulnerable:?}");
    assert!(vulnerable.contains(&"RUSTSEC-2021-0003 smallvec 1.6.0".to_owned()));
    assert!(vulnerable.contains(&"GHSA-35jh-r3h4-6jhm lodash 4.17.20".to_owned()));
}

#[test]
fn a_path_that_is_not_a_repository_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let error = secrets_scan::scan(dir.path()).unwrap_err();
    assert!(error.contains(&dir.path().display().to_string()), "{error}");
    let missing = dir.path().join("missing");
    assert!(secrets_scan::scan(&missing).is_err());
}

#[test]
fn a_repository_with_no_commit_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    write(dir.path(), "app.py", &format!("KEY = \"{AWS_KEY}\"\n"));
    let result = secrets_scan::scan(dir.path()).unwrap();
    assert_eq!(result.secrets.len(), 1, "{result:?}");
    assert_eq!(result.secrets[0].location, "app.py:1");
}

#[test]
fn scanning_runs_no_program_the_repository_configures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    let ran = d.join("ran");
    let script = d.join("hook.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch {}\ncat \"$1\"\n", ran.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let hook = script.display().to_string();
    git(d, &["config", "core.fsmonitor", &hook]);
    git(d, &["config", "diff.evil.textconv", &hook]);
    write(d, ".gitattributes", "*.txt diff=evil\n");
    write(d, "notes.txt", "hello\n");
    git(d, &["add", "-A"]);
    git(d, &["-c", "core.fsmonitor=false", "commit", "-qm", "one"]);
    let _ = std::fs::remove_file(&ran);
    secrets_scan::scan(d).unwrap();
    assert!(!ran.exists(), "the scan ran a program the repository names");
}

#[test]
fn values_listed_in_the_ignore_file_are_counted_not_reported() {
    let repo = seeded_repo();
    let before = secrets_scan::scan(repo.path()).unwrap();
    let aws = before
        .secrets
        .iter()
        .find(|h| h.kind == "AWS access key id")
        .expect("the seeded AWS key")
        .fingerprint
        .clone();
    write(
        repo.path(),
        secrets_scan::IGNORE_FILE,
        &format!("# a test fixture\n\n{aws}  the documented example key\n"),
    );
    let after = secrets_scan::scan(repo.path()).unwrap();
    assert_eq!(after.ignored, 1);
    assert_eq!(after.secrets.len(), before.secrets.len() - 1);
    assert!(after.secrets.iter().all(|h| h.fingerprint != aws));
    // Everything else is still reported: an entry names one value only.
    assert!(after.secrets.iter().any(|h| h.kind == "GitHub token"));
    let findings = palisade_audit::checks::secrets::findings(&after);
    assert!(
        findings
            .iter()
            .any(|f| f.title == "known non-secrets left out" && f.evidence.starts_with("1 values"))
    );
}

/// `ADVISORY-ID name version` for every locked package an advisory under `db` covers.
fn covered(repo: &Path, db: &Path) -> Vec<String> {
    let advisories = deps::load_advisories(db).unwrap();
    let mut out: Vec<String> = deps::locked_packages(repo)
        .iter()
        .flat_map(|(eco, name, version, _)| {
            advisories
                .iter()
                .filter(move |a| a.ecosystem == *eco && &a.package == name && a.covers(version))
                .map(move |a| format!("{} {name} {version}", a.id))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn python_requirements_and_poetry_locks_are_checked_against_osv_pypi() {
    let repo = tempfile::tempdir().unwrap();
    write(
        repo.path(),
        "requirements.txt",
        concat!(
            "# pinned for production\n",
            "-r requirements/base.txt\n",
            "--index-url https://pypi.example/simple\n",
            "-e git+https://example.com/x.git#egg=x\n",
            "Django_REST.Framework==3.9.0  # DRF\n",
            "requests[socks]==2.19.1 ; python_version >= \"3.8\" \\\n",
            "    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
            "urllib3>=1.24\n",
            "idna~=2.7\n",
            "chardet==3.*\n",
            "Jinja2===2.10\n",
        ),
    );
    write(
        repo.path(),
        "requirements/base.txt",
        "PyYAML==5.3\nsix==1.16.0\n",
    );
    write(
        repo.path(),
        "service/poetry.lock",
        "[[package]]\nname = \"Pillow\"\nversion = \"8.2.0\"\ndescription = \"\"\n\n[[package]]\nname = \"flask\"\nversion = \"2.3.3\"\n\n[metadata]\nlock-version = \"2.0\"\n",
    );
    let packages = deps::locked_packages(repo.path());
    let mut python: Vec<String> = packages
        .iter()
        .filter(|(eco, ..)| *eco == "PyPI")
        .map(|(_, n, v, _)| format!("{n} {v}"))
        .collect();
    python.sort();
    assert_eq!(
        python,
        [
            "django-rest-framework 3.9.0",
            "flask 2.3.3",
            "jinja2 2.10",
            "pillow 8.2.0",
            "pyyaml 5.3",
            "requests 2.19.1",
            "six 1.16.0",
        ],
        "pinned lines only, names PEP 503 normalised"
    );

    let db = tempfile::tempdir().unwrap();
    let osv = |file: &str, id: &str, name: &str, ranges: &str, versions: &str| {
        write(
            db.path(),
            file,
            &format!(
                r#"{{"id": "{id}", "summary": "s", "affected": [{{"package": {{"ecosystem": "PyPI", "name": "{name}"}}, "ranges": [{ranges}], "versions": [{versions}]}}]}}"#
            ),
        );
    };
    // Ranges in PEP 440 order: 2.19.1 < 2.20 (not a string comparison), 5.3 < 5.4.
    osv(
        "a.json",
        "PYSEC-2018-28",
        "requests",
        r#"{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}"#,
        "",
    );
    osv(
        "b.json",
        "PYSEC-2020-96",
        "pyyaml",
        r#"{"type": "ECOSYSTEM", "events": [{"introduced": "5.1b1"}, {"fixed": "5.4"}]}"#,
        "",
    );
    // Listed versions compare as PEP 440 versions (`2.10.0` is `2.10`); the name as PEP 503.
    osv(
        "c.json",
        "PYSEC-2019-217",
        "jinja2",
        "",
        r#""2.10.0", "2.10.1""#,
    );
    // PEP 503 keeps `djangorestframework` and `django-rest-framework` apart.
    osv(
        "d.json",
        "GHSA-drf",
        "djangorestframework",
        r#"{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.9.1"}]}"#,
        "",
    );
    osv(
        "e.json",
        "PYSEC-2021-pillow",
        "pillow",
        r#"{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "8.2.0"}]}"#,
        "",
    );
    // Not covered: fixed before the locked version, a pre-release of it, a rc below it.
    osv(
        "f.json",
        "PYSEC-old-six",
        "six",
        r#"{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.16.0rc1"}]}"#,
        "",
    );
    osv(
        "g.json",
        "PYSEC-flask",
        "Flask",
        r#"{"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}, {"fixed": "2.3.3"}]}"#,
        "",
    );
    assert_eq!(
        covered(repo.path(), db.path()),
        [
            "PYSEC-2018-28 requests 2.19.1",
            "PYSEC-2019-217 jinja2 2.10",
            "PYSEC-2020-96 pyyaml 5.3",
            "PYSEC-2021-pillow pillow 8.2.0",
        ]
    );
}

#[test]
fn pep440_versions_order_by_release_then_phase() {
    use deps::Pep440;
    let v = |s: &str| Pep440::parse(s).unwrap_or_else(|| panic!("{s}"));
    let ordered = [
        "1.0.dev1",
        "1.0a1",
        "1.0b2",
        "1.0rc1",
        "1.0",
        "1.0.post1",
        "1.0.1",
        "1.2",
        "1.10",
    ];
    for pair in ordered.windows(2) {
        assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
    }
    assert_eq!(v("2.0"), v("2"));
    assert_eq!(v("2.0.0"), v("v2.0+local"));
    assert!(Pep440::parse("not a version").is_none());
}

#[tokio::test]
async fn unmaintained_advisories_warn_and_git_ranges_cover_nothing() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(
        repo.path(),
        "Cargo.lock",
        "version = 4\n\n[[package]]\nname = \"instant\"\nversion = \"0.1.13\"\n\n[[package]]\nname = \"hyper\"\nversion = \"1.5.0\"\n",
    );
    let db = tempfile::tempdir().unwrap();
    write(
        db.path(),
        "crates/instant/RUSTSEC-2024-0384.md",
        "```toml\n[advisory]\nid = \"RUSTSEC-2024-0384\"\npackage = \"instant\"\ntitle = \"instant is unmaintained\"\ninformational = \"unmaintained\"\n\n[versions]\npatched = []\n```\n",
    );
    // A GIT range names commits: read as versions it would cover every hyper release.
    write(
        db.path(),
        "osv/GHSA-git.json",
        r#"{"id": "GHSA-git", "summary": "s", "affected": [{"package": {"ecosystem": "crates.io", "name": "hyper"},
            "ranges": [{"type": "GIT", "repo": "https://github.com/hyperium/hyper", "events": [{"introduced": "0"}, {"fixed": "8e1b5f2ab2b31dba1f5ee2a3e8c5fb2d4f1ac0e9"}]}]}]}"#,
    );
    assert_eq!(
        covered(repo.path(), db.path()),
        ["RUSTSEC-2024-0384 instant 0.1.13"]
    );
    let mut options = palisade_audit::Options::new("http://127.0.0.1:9/".parse().unwrap());
    options.max_requests = 0;
    options.repo = Some(repo.path().to_owned());
    options.advisories = Some(db.path().to_owned());
    let report = palisade_audit::run(options).await.unwrap();
    let control = report.control(10).unwrap();
    assert_eq!(control.status, palisade_audit::Status::Warn, "{control:?}");
    assert_eq!(control.findings.len(), 1, "{control:?}");
    assert!(
        control.findings[0].title.contains("[unmaintained]"),
        "{control:?}"
    );
}

#[test]
fn this_repositorys_own_working_tree_passes_its_secrets_scan() {
    // Every value the scanner flags in this repository's files is a fixture, a format
    // example or a throwaway bench setting, listed in .palisade-audit-ignore: a new one
    // must be removed or listed (with why) before it lands. History is left out: the
    // scan reads every local branch, which in a shared clone includes work in progress.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let result = secrets_scan::scan(&root).unwrap();
    let in_tree: Vec<&secrets_scan::SecretHit> = result
        .secrets
        .iter()
        .filter(|hit| !hit.location.starts_with("commit "))
        .collect();
    assert!(in_tree.is_empty(), "{in_tree:#?}");
    assert!(result.ignored > 0, "the ignore file is read");
    assert!(
        result
            .env_files
            .iter()
            .all(|e| e.contains(" was committed in ")),
        "{:?}",
        result.env_files
    );
}
