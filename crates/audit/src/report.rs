//! Rendering a [`Report`]: a table for people, JSON, SARIF 2.1.0 and JUnit XML for CI.
//!
//! JSON is `{"command","target","requests","max_requests","controls":[{"id","control",
//! "guards","status","reason"?,"findings":[{"title","severity","evidence","location"?,
//! "fingerprint"}]}]}`.
//! SARIF has one rule per control (`PAL001`…`PAL010`) and one result per finding above
//! `info`, with the finding's fingerprint as its stable `partialFingerprints`. JUnit has one
//! test case per control: FAIL is a failure, ERROR an error, NOT_TESTED skipped.

use std::fmt::Write;

use serde_json::json;

use crate::model::{ControlResult, Report, Severity, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Sarif,
    Junit,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            "junit" => Ok(Format::Junit),
            other => Err(format!(
                "unknown format `{other}` (table, json, sarif, junit)"
            )),
        }
    }
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Sarif => serde_json::to_string_pretty(&sarif(report)).unwrap_or_default() + "\n",
        Format::Junit => junit(report),
    }
}

fn status_cell(c: &ControlResult) -> String {
    // NOT TESTED and ERROR say why; a PASS that rests on part of a control's checks says
    // which part did not run ("partly tested: …").
    match &c.reason {
        Some(reason) => format!("{} ({reason})", c.status.label()),
        None => c.status.label().to_owned(),
    }
}

/// The ten-row table, then the findings with their evidence.
pub fn table(report: &Report) -> String {
    let rows: Vec<[String; 4]> = report
        .controls
        .iter()
        .map(|c| {
            [
                c.id.to_string(),
                c.control.to_owned(),
                c.guards.to_owned(),
                status_cell(c),
            ]
        })
        .collect();
    let header = [
        "#".to_owned(),
        "control".to_owned(),
        "guards against".to_owned(),
        "status".to_owned(),
    ];
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = match report.command {
        "audit" => format!(
            "palisade audit of {} ({} of {} requests)\n\n",
            report.target, report.requests, report.max_requests
        ),
        command => format!("palisade {command} of {}\n\n", report.target),
    };
    for row in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(
            out,
            "{:>w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    let mut any = false;
    for c in &report.controls {
        for f in c.findings.iter().filter(|f| f.severity != Severity::Info) {
            if !any {
                out.push_str("\nFindings\n");
                any = true;
            }
            let place = f
                .location
                .as_deref()
                .map(|l| format!(" [{l}]"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "\n{} {} ({:?}){place}: {}\n    {}",
                c.id, c.control, f.severity, f.title, f.evidence
            );
        }
    }
    let notes: Vec<String> = report
        .controls
        .iter()
        .flat_map(|c| {
            c.findings
                .iter()
                .filter(|f| f.severity == Severity::Info)
                .map(move |f| format!("{} {}: {}: {}", c.id, c.control, f.title, f.evidence))
        })
        .collect();
    if !notes.is_empty() {
        out.push_str("\nNotes\n");
        for note in notes {
            let _ = writeln!(out, "  {note}");
        }
    }
    let verdict = if report.failed() {
        "FAIL: at least one control failed (or could not run: ERROR)"
    } else {
        "no control failed"
    };
    let _ = writeln!(out, "\n{verdict}");
    out
}

pub fn sarif(report: &Report) -> serde_json::Value {
    let rules: Vec<_> = report
        .controls
        .iter()
        .map(|c| {
            json!({
                "id": format!("PAL{:03}", c.id),
                "name": c.control.replace(['/', '+', ' '], ""),
                "shortDescription": {"text": c.control},
                "fullDescription": {"text": format!("{}: guards against {}", c.control, c.guards)},
                "properties": {"status": c.status},
            })
        })
        .collect();
    let results: Vec<_> =
        report
            .controls
            .iter()
            .flat_map(|c| {
                c.findings.iter().filter(|f| f.severity != Severity::Info).map(move |f| {
                let level = match f.severity {
                    Severity::High | Severity::Medium => "error",
                    _ => "warning",
                };
                let mut result = json!({
                    "ruleId": format!("PAL{:03}", c.id),
                    "level": level,
                    "message": {"text": format!("{}: {}", f.title, f.evidence)},
                    "partialFingerprints": {"palisadeFinding/v1": f.fingerprint},
                });
                let location = f.location.clone().unwrap_or_else(|| report.target.clone());
                result["locations"] = json!([{
                    "physicalLocation": {"artifactLocation": {"uri": location_uri(&location)}},
                    "logicalLocations": [{"name": location}],
                }]);
                result
            })
            })
            .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": format!("palisade-{}", report.command),
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/palisade/palisade",
                "rules": rules,
            }},
            "properties": {"target": report.target, "requests": report.requests},
            "results": results,
        }]
    })
}

/// A file location (`src/x.rs:3`, `commit abc src/x.rs:3`) as a URI path, else the target.
fn location_uri(location: &str) -> String {
    let path = location.rsplit(' ').next().unwrap_or(location);
    let path = path.split(':').next().unwrap_or(path);
    if path.contains('/') && !path.contains("://") && !path.starts_with('/') {
        path.to_owned()
    } else {
        "api".to_owned()
    }
}

fn xml(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn junit(report: &Report) -> String {
    let count = |s: Status| report.controls.iter().filter(|c| c.status == s).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites><testsuite name=\"palisade {} {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        report.command,
        xml(&report.target),
        report.controls.len(),
        count(Status::Fail),
        count(Status::Error),
        count(Status::NotTested)
    );
    for c in &report.controls {
        let _ = write!(
            out,
            "  <testcase classname=\"palisade.audit\" name=\"{} {}\">",
            c.id,
            xml(c.control)
        );
        let details: String = c
            .findings
            .iter()
            .map(|f| format!("[{:?}] {}: {}\n", f.severity, f.title, f.evidence))
            .collect();
        match c.status {
            Status::Fail => {
                let _ = write!(
                    out,
                    "<failure message=\"{} failed\">{}</failure>",
                    xml(c.control),
                    xml(&details)
                );
            }
            Status::Error => {
                let _ = write!(
                    out,
                    "<error message=\"{}\"/>",
                    xml(c.reason.as_deref().unwrap_or(""))
                );
            }
            Status::NotTested => {
                let _ = write!(
                    out,
                    "<skipped message=\"{}\"/>",
                    xml(c.reason.as_deref().unwrap_or(""))
                );
            }
            Status::Warn => {
                let _ = write!(out, "<system-out>WARN\n{}</system-out>", xml(&details));
            }
            Status::Pass => {}
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite></testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ControlResult, Finding};

    fn report() -> Report {
        let mut controls: Vec<ControlResult> = (1..=10)
            .map(|id| ControlResult::not_tested(id, "why <not>"))
            .collect();
        controls[1] = ControlResult::conclude(
            2,
            vec![Finding::new(
                2,
                Severity::High,
                "accepts no credentials",
                Some("GET /x".into()),
                "GET /x as anonymous → 200",
            )],
            true,
            "",
        );
        controls[3] = ControlResult::conclude(4, vec![], true, "");
        Report {
            command: "audit",
            target: "https://api.example/".into(),
            requests: 12,
            max_requests: 300,
            controls,
        }
    }

    #[test]
    fn every_format_carries_every_control() {
        let r = report();
        let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
        assert_eq!(json["controls"].as_array().unwrap().len(), 10);
        assert_eq!(json["controls"][1]["status"], "FAIL");
        assert_eq!(json["controls"][0]["status"], "NOT_TESTED");
        assert_eq!(json["controls"][1]["findings"][0]["severity"], "high");

        let sarif = sarif(&r);
        assert_eq!(
            sarif["runs"][0]["tool"]["driver"]["rules"]
                .as_array()
                .unwrap()
                .len(),
            10
        );
        let results = sarif["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0]["ruleId"], "PAL002");
        assert_eq!(sarif, super::sarif(&report()), "stable across runs");

        let junit = junit(&r);
        assert_eq!(junit.matches("<testcase ").count(), 10);
        assert!(junit.contains("failures=\"1\"") && junit.contains("skipped=\"8\""));
        assert!(junit.contains("why &lt;not&gt;"));

        let table = table(&r);
        assert_eq!(
            table
                .lines()
                .filter(|l| l.contains("NOT TESTED (why <not>)"))
                .count(),
            8
        );
        assert!(table.contains("GET /x as anonymous → 200"));
    }
}
