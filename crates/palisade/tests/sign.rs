//! End to end: keygen, digest, sign, verify, scan --attest and verify-attestation through
//! the binary, with the exit codes and messages users see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn palisade(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn setup() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("model");
    std::fs::create_dir_all(m.join("sub")).unwrap();
    std::fs::write(m.join("weights.bin"), vec![7u8; 4096]).unwrap();
    std::fs::write(m.join("sub/config.json"), br#"{"model_type":"tiny"}"#).unwrap();
    let o = palisade(&["keygen", "--output", "k"], t.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = palisade(&["keygen", "--curve", "p384", "--output", "other"], t.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    t
}

#[test]
fn keygen_protects_the_private_key_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let t = setup();
    let mode = std::fs::metadata(t.path().join("k.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read(t.path().join("k.key")).unwrap();
    let o = palisade(&["keygen", "--output", "k"], t.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--force"), "{}", text(&o));
    assert_eq!(std::fs::read(t.path().join("k.key")).unwrap(), before);
}

#[test]
fn sign_verify_and_tamper_through_the_cli() {
    let t = setup();
    let d = t.path();
    // The signature inside the model directory is left out of what is signed.
    let o = palisade(&["sign", "model", "--key", "k.key", "--output", "model/model.sig"], d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = palisade(
        &["verify", "model", "--key", "k.pub", "--signature", "model/model.sig"],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("verified"), "{}", text(&o));

    // `digest` names the same model the signature names.
    let o = palisade(&["digest", "model", "--ignore-paths", "model/model.sig"], d);
    let digest = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(
        digest.starts_with("sha256:")
            && text(&palisade(
                &["verify", "model", "--key", "k.pub", "-s", "model/model.sig"],
                d
            ))
            .contains(&digest)
    );

    // Another key.
    let o = palisade(&["verify", "model", "--key", "other.pub", "-s", "model/model.sig"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("another key"), "{}", text(&o));

    // An added file, then accepted with --ignore-unsigned-files.
    std::fs::write(d.join("model/extra.py"), b"print(1)").unwrap();
    let o = palisade(&["verify", "model", "--key", "k.pub", "-s", "model/model.sig"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("not signed: extra.py"), "{}", text(&o));
    let o = palisade(
        &[
            "verify",
            "model",
            "--key",
            "k.pub",
            "-s",
            "model/model.sig",
            "--ignore-unsigned-files",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A changed byte.
    let mut w = std::fs::read(d.join("model/weights.bin")).unwrap();
    w[100] = 8;
    std::fs::write(d.join("model/weights.bin"), w).unwrap();
    let o = palisade(
        &[
            "verify",
            "model",
            "--key",
            "k.pub",
            "-s",
            "model/model.sig",
            "--ignore-unsigned-files",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("changed: weights.bin"), "{}", text(&o));

    // Errors, not verdicts: a missing signature, a public key given as the private one.
    let o = palisade(&["verify", "model", "--key", "k.pub", "-s", "nope.sig"], d);
    assert_eq!(o.status.code(), Some(2));
    let o = palisade(&["sign", "model", "--key", "k.pub", "--output", "x.sig"], d);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("private key"), "{}", text(&o));
}

#[test]
fn keyless_signing_explains_that_it_needs_the_network() {
    let t = setup();
    let o = palisade(&["sign", "model", "--sigstore"], t.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("network"), "{}", text(&o));
}

#[test]
fn scan_attestations_are_signed_and_bound_to_the_model() {
    let t = setup();
    let d = t.path();
    let o = palisade(
        &[
            "scan",
            "model",
            "--attest",
            "--key",
            "k.key",
            "--attestation",
            "scan.att.json",
            "-q",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = palisade(
        &[
            "verify-attestation",
            "scan.att.json",
            "--key",
            "k.pub",
            "--model",
            "model",
            "--json",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["predicateType"], "https://palisade.dev/attestation/scan/v1");
    assert_eq!(st["predicate"]["result"], "clean");
    assert_eq!(st["predicate"]["report"]["summary"]["files"], 2);

    // The subject is the model's digest: another model does not match.
    std::fs::write(d.join("model/weights.bin"), b"swapped").unwrap();
    let o = palisade(
        &[
            "verify-attestation",
            "scan.att.json",
            "--key",
            "k.pub",
            "--model",
            "model",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("not this model"), "{}", text(&o));
    // Wrong key, wrong predicate type.
    let o = palisade(&["verify-attestation", "scan.att.json", "--key", "other.pub"], d);
    assert_eq!(o.status.code(), Some(1));
    let o = palisade(
        &[
            "verify-attestation",
            "scan.att.json",
            "--key",
            "k.pub",
            "--predicate-type",
            "https://example.com/eval/v1",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("predicate type"), "{}", text(&o));

    // A malicious model: the attestation records the findings (and scan exits 1).
    let bad = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../palisade-scan/tests/fixtures/pickle/malicious/torch_zip_os_system.pt");
    let o = palisade(
        &[
            "scan",
            bad.to_str().unwrap(),
            "--attest",
            "--key",
            "k.key",
            "--attestation",
            "bad.att.json",
            "-q",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = palisade(&["verify-attestation", "bad.att.json", "--key", "k.pub", "--json"], d);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["predicate"]["result"], "findings");
    assert_eq!(st["predicate"]["highestSeverity"], "critical");
}
