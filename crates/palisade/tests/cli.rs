//! End-to-end tests of the `palisade` binary: exit codes, formats, configuration and bad
//! input. Each runs the real binary on real files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_palisade"));
    c.env_remove("PALISADE_CONFIG")
        .env_remove("PALISADE_FAIL_ON")
        .env("NO_COLOR", "1");
    c
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../palisade-scan/tests/fixtures/pickle")
}

fn run(args: &[&str], dir: &Path) -> Output {
    bin()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run palisade")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn exit_codes_clean_findings_error() {
    let fx = fixtures();
    let clean = run(&["scan", "benign/torch_state_dict.pt"], &fx);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    let bad = run(&["scan", "malicious/torch_zip_os_system.pt"], &fx);
    assert_eq!(bad.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(stdout.contains("PKL001") && stdout.contains("os.system"), "{stdout}");
    let missing = run(&["scan", "does/not/exist.pkl"], &fx);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stdout).contains("cannot read"));
}

#[test]
fn fail_on_threshold() {
    let fx = fixtures();
    // PKL005 (medium) + PKL001 (critical): fails at critical, so both thresholds fail.
    assert_eq!(
        run(
            &["scan", "--fail-on", "critical", "malicious/nullifai_broken_stream.pkl"],
            &fx
        )
        .status
        .code(),
        Some(1)
    );
    // An unlisted callable that is only referenced is low: passes at medium.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ref.pkl"),
        b"\x80\x04\x95\x14\x00\x00\x00\x00\x00\x00\x00\x8c\x04acme\x8c\x05Model\x93\x85.",
    )
    .unwrap();
    assert_eq!(run(&["scan", "ref.pkl"], dir.path()).status.code(), Some(1));
    assert_eq!(
        run(&["scan", "--fail-on", "medium", "ref.pkl"], dir.path())
            .status
            .code(),
        Some(0)
    );
    let bad = run(&["scan", "--fail-on", "severe", "ref.pkl"], dir.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown severity"));
}

#[test]
fn json_report_schema() {
    let out = run(&["scan", "--format", "json", "-q", "malicious", "benign"], &fixtures());
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["tool"]["name"], "palisade");
    let files = v["files"].as_array().unwrap();
    assert!(files.len() > 80);
    let f = files
        .iter()
        .find(|f| f["path"] == "malicious/reduce_os_system.pkl")
        .expect("file present");
    assert_eq!(f["state"], "complete");
    assert_eq!(f["formats"][0], "pickle");
    let finding = &f["findings"][0];
    for key in ["code", "severity", "message", "location", "evidence", "references"] {
        assert!(!finding[key].is_null(), "finding lacks {key}: {finding}");
    }
    assert!(finding["references"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "AML.T0011.000"));
    assert!(v["summary"]["findings"]["critical"].as_u64().unwrap() > 50);
    assert_eq!(v["summary"]["errors"], 0);
}

#[test]
fn sarif_meets_github_code_scanning_requirements() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.sarif");
    let out = run(
        &[
            "scan",
            "--format",
            "sarif",
            "-o",
            out_path.to_str().unwrap(),
            "-q",
            "malicious",
        ],
        &fixtures(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "report must go to --output only");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert!(v["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run0 = &v["runs"][0];
    let driver = &run0["tool"]["driver"];
    assert_eq!(driver["name"], "palisade");
    let rules = driver["rules"].as_array().unwrap();
    for r in rules {
        assert!(r["id"].is_string());
        assert!(!r["shortDescription"]["text"].as_str().unwrap().is_empty(), "{r}");
        assert!(r["help"]["text"].as_str().unwrap().contains("## What it does"));
        let sev: f64 = r["properties"]["security-severity"].as_str().unwrap().parse().unwrap();
        assert!((0.0..=10.0).contains(&sev));
    }
    let results = run0["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for res in results {
        let idx = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], res["ruleId"]);
        assert!(!res["message"]["text"].as_str().unwrap().is_empty());
        let loc = &res["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(
            !uri.starts_with('/') && !uri.contains("://"),
            "uri must be relative: {uri}"
        );
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(res["partialFingerprints"].as_object().is_some_and(|m| !m.is_empty()));
        assert!(["error", "warning", "note"].contains(&res["level"].as_str().unwrap()));
    }
    // Fingerprints distinguish findings.
    let mut fps: Vec<_> = results.iter().map(|r| r["partialFingerprints"].to_string()).collect();
    let n = fps.len();
    fps.sort();
    fps.dedup();
    assert!(fps.len() * 10 >= n * 9, "too many colliding fingerprints");
}

#[test]
fn stdin_is_scanned() {
    let payload = std::fs::read(fixtures().join("malicious/reduce_os_system.pkl")).unwrap();
    let mut child = bin()
        .args(["scan", "-", "--format", "json", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&payload).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["files"][0]["path"], "-");
    assert_eq!(v["files"][0]["findings"][0]["code"], "PKL001");
}

#[test]
fn bad_inputs_get_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("empty.bin"), b"").unwrap();
    // A 10 GB sparse file: read only as far as sniffing needs.
    let sparse = std::fs::File::create(d.join("sparse.bin")).unwrap();
    sparse.set_len(10 << 30).unwrap();
    drop(sparse);
    std::os::unix::fs::symlink("loop_b", d.join("loop_a")).unwrap();
    std::os::unix::fs::symlink("loop_a", d.join("loop_b")).unwrap();
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());

    let out = run(&["scan", "--format", "json", "-q", "empty.bin", "sparse.bin"], d);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&out)["summary"]["unrecognised"], 2);

    let out = run(&["scan", "--max-file-size", "1GiB", "sparse.bin"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--max-file-size"));

    let out = run(&["scan", "loop_a"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout)
        .to_lowercase()
        .contains("symbolic links"));

    let out = run(&["scan", "fifo"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FIFO"));

    // A directory holding all of them finishes too (the FIFO is never opened).
    let out = run(&["scan", "--format", "json", "-q", "."], d);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert!(v["summary"]["errors"].as_u64().unwrap() >= 1);
}

#[test]
fn timeout_reports_incomplete_not_malicious() {
    let dir = tempfile::tempdir().unwrap();
    // A long benign protocol-0 list: many opcodes.
    let mut p = b"(l".to_vec();
    for i in 0..400_000u32 {
        p.extend_from_slice(format!("I{i}\na").as_bytes());
    }
    p.push(b'.');
    std::fs::write(dir.path().join("long.pkl"), &p).unwrap();
    let out = run(
        &["scan", "--timeout", "1ms", "--format", "json", "-q", "long.pkl"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["files"][0]["state"], "incomplete");
    assert!(v["files"][0]["reason"].as_str().unwrap().contains("timed out"));
    assert_eq!(v["files"][0]["findings"].as_array().unwrap().len(), 0);
    // Without the tight budget it scans clean.
    assert_eq!(run(&["scan", "long.pkl"], dir.path()).status.code(), Some(0));
}

#[test]
fn config_allow_ignore_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // `acme.Model()` called: an unlisted callable (PKL003, medium).
    std::fs::write(
        d.join("m.pkl"),
        b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\x04acme\x8c\x05Model\x93)R.",
    )
    .unwrap();
    assert_eq!(run(&["scan", "m.pkl"], d).status.code(), Some(1));

    std::fs::write(d.join("palisade.toml"), "[scan]\nallow = [\"acme.*\"]\n").unwrap();
    assert_eq!(run(&["scan", "m.pkl"], d).status.code(), Some(0));

    std::fs::write(
        d.join("palisade.toml"),
        "[[ignore]]\ncode = \"PKL003\"\npath = \"*.pkl\"\nreason = \"reviewed\"\n",
    )
    .unwrap();
    let out = run(&["scan", "--format", "json", "-q", "m.pkl"], d);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["summary"]["suppressed"], 1);

    std::fs::write(d.join("palisade.toml"), "[scan]\nfail_onn = \"low\"\n").unwrap();
    let out = run(&["scan", "m.pkl"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fail_onn"));

    std::fs::write(d.join("palisade.toml"), "[scan]\nallow = [\"not a path\"]\n").unwrap();
    assert_eq!(run(&["scan", "m.pkl"], d).status.code(), Some(2));
}

#[test]
fn rule_docs() {
    let fx = fixtures();
    let out = run(&["rule", "PKL001"], &fx);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for heading in [
        "## What it does",
        "## Why is this bad",
        "## Example",
        "## Remediation",
        "## References",
    ] {
        assert!(text.contains(heading), "missing {heading}:\n{text}");
    }
    let list = run(&["rule"], &fx);
    let text = String::from_utf8_lossy(&list.stdout);
    for code in ["PKL001", "PKL005", "PKL010", "NPY001", "ARC001"] {
        assert!(text.contains(code), "{code} not listed");
    }
    assert_eq!(run(&["rule", "NOPE999"], &fx).status.code(), Some(2));
}

#[test]
fn human_output_groups_by_file_with_summary() {
    let out = run(
        &[
            "scan",
            "--color",
            "never",
            "malicious/torch_zip_name_mismatch.pt",
            "benign/none.pkl",
        ],
        &fixtures(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("malicious/torch_zip_name_mismatch.pt  [pytorch-zip > pickle]"),
        "{text}"
    );
    assert!(text.contains("ARC001"));
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("Scanned 2 files") && last.contains("critical"),
        "{last}"
    );
    assert!(!text.contains("benign/none.pkl"), "clean files are not listed");
}

#[test]
fn baseline_accepts_known_findings_and_reports_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fx = fixtures();
    std::fs::copy(fx.join("malicious/reduce_os_system.pkl"), d.join("a.pkl")).unwrap();
    let out = run(&["scan", "--format", "json", "-q", "-o", "baseline.json", "a.pkl"], d);
    assert_eq!(out.status.code(), Some(1));
    // Same findings: all accepted.
    let out = run(
        &["scan", "--baseline", "baseline.json", "--format", "json", "-q", "a.pkl"],
        d,
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(json(&out)["summary"]["suppressed"].as_u64().unwrap() >= 1);
    // A new malicious file is still reported.
    std::fs::copy(fx.join("malicious/inst_os_system.pkl"), d.join("b.pkl")).unwrap();
    let out = run(
        &[
            "scan",
            "--baseline",
            "baseline.json",
            "--format",
            "json",
            "-q",
            "a.pkl",
            "b.pkl",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let flagged: Vec<_> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["findings"].as_array().unwrap().is_empty())
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(flagged, vec!["b.pkl"]);
    // A baseline that is not a report is an error, not an empty baseline.
    std::fs::write(d.join("bad.json"), "{}").unwrap();
    assert_eq!(
        run(&["scan", "--baseline", "bad.json", "a.pkl"], d).status.code(),
        Some(2)
    );
}

#[test]
fn docs_rules_md_is_current() {
    let out = run(&["rule", "--markdown"], &fixtures());
    assert_eq!(out.status.code(), Some(0));
    let committed =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules.md")).unwrap();
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "docs/rules.md is stale: run `palisade rule --markdown > docs/rules.md`"
    );
}
