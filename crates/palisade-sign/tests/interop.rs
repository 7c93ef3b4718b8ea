//! OpenSSF Model Signing interop, offline: the vectors in tests/interop were made by
//! `make_vectors.py` with the reference implementation (`model-signing` from PyPI), which
//! also verified palisade's signatures in the same run. See that script's docstring.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use palisade_core::attest::{ResourceDescriptor, Statement};
use palisade_sign::bundle::Bundle;
use palisade_sign::cert::Cert;
use palisade_sign::model::{self, Difference, Signer, Trust, VerifyError, VerifyOptions};
use palisade_sign::serialize::{self, HashAlgorithm, HashConfig, Method};
use palisade_sign::trust::TrustMaterial;
use palisade_sign::{SigningKey, VerifyingKey};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn vectors() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir().join("vectors.json")).unwrap()).unwrap()
}

fn key(name: &str) -> SigningKey {
    SigningKey::from_pem(&std::fs::read_to_string(dir().join("keys").join(name)).unwrap()).unwrap()
}

fn public(name: &str) -> VerifyingKey {
    VerifyingKey::from_pem(&std::fs::read_to_string(dir().join("keys").join(name)).unwrap()).unwrap()
}

fn certs(name: &str) -> Vec<Cert> {
    Cert::from_pem_chain(&std::fs::read(dir().join("keys").join(name)).unwrap(), name).unwrap()
}

fn bundle(path: &Path) -> Bundle {
    Bundle::from_json(&std::fs::read(path).unwrap()).unwrap()
}

fn trust_for(name: &str) -> Trust {
    match name {
        "files-p384" => Trust::Key(public("p384.pub")),
        "cert" => Trust::Certificates(certs("ca.pem")),
        _ => Trust::Key(public("p256.pub")),
    }
}

fn config_for(name: &str) -> HashConfig {
    match name {
        "shards-p256" => HashConfig {
            method: Method::Shards { shard_size: 100 },
            ..Default::default()
        },
        "blake3-p256" => HashConfig {
            hash: HashAlgorithm::Blake3,
            ..Default::default()
        },
        _ => HashConfig::default(),
    }
}

fn verify(model: &Path, b: &Bundle, trust: &Trust, opts: &VerifyOptions) -> Result<model::Verified, VerifyError> {
    model::verify_model(model, b, trust, opts, &|_| {})
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn palisade_verifies_every_reference_signature() {
    let model = dir().join("model");
    let v = vectors();
    assert_eq!(names(&v).len(), 5);
    for name in names(&v) {
        let b = bundle(&dir().join("ref").join(format!("{name}.sig")));
        let verified =
            verify(&model, &b, &trust_for(&name), &VerifyOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!verified.manifest.resources.is_empty());
    }
}

#[test]
fn palisade_signs_byte_for_byte_what_the_reference_accepted() {
    let model = dir().join("model");
    for name in names(&vectors()) {
        let cfg = config_for(&name);
        let manifest = serialize::hash_model(&model, &cfg, &|_| {}).unwrap();
        let signer = match name.as_str() {
            "cert" => {
                let mut chain = certs("leaf.pem");
                chain.extend(certs("ca.pem"));
                Signer {
                    key: key("leaf.key"),
                    certificates: chain.into_iter().map(|c| c.der).collect(),
                }
            }
            "files-p384" => Signer {
                key: key("p384.key"),
                certificates: vec![],
            },
            _ => Signer {
                key: key("p256.key"),
                certificates: vec![],
            },
        };
        let ours = model::sign_manifest(&manifest, &signer).unwrap().to_json();
        let accepted = std::fs::read(dir().join("palisade").join(format!("{name}.sig"))).unwrap();
        assert!(
            ours == accepted,
            "{name}: palisade's signature differs from the one model-signing verified"
        );
    }
}

#[test]
fn order_and_root_digest_match_the_reference() {
    let v = vectors();
    let manifest = serialize::hash_model(&dir().join("model"), &HashConfig::default(), &|_| {}).unwrap();
    let order: Vec<&str> = manifest.resources.iter().map(|r| r.name.as_str()).collect();
    let expected: Vec<&str> = v["resource_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(order, expected);
    assert_eq!(
        manifest.root_digest_hex(),
        v["root_digest_files_sha256"].as_str().unwrap()
    );
}

#[test]
fn keyless_bundles_verify_offline_against_supplied_trust() {
    let v = vectors();
    let b = bundle(&dir().join("keyless.sig"));
    let id = v["keyless"]["identity"].as_str().unwrap().to_owned();
    let iss = v["keyless"]["issuer"].as_str().unwrap().to_owned();
    let model = dir().join("model");
    let trust = |identity: &str, issuer: &str, root: &str| Trust::Keyless {
        trust: TrustMaterial {
            certificate_authorities: certs(root),
            ..Default::default()
        },
        identity: identity.to_owned(),
        issuer: issuer.to_owned(),
    };
    verify(
        &model,
        &b,
        &trust(&id, &iss, "fulcio-root.pem"),
        &VerifyOptions::default(),
    )
    .unwrap();
    let e = verify(
        &model,
        &b,
        &trust("mallory@example.com", &iss, "fulcio-root.pem"),
        &VerifyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, VerifyError::Identity { .. }), "{e}");
    let e = verify(
        &model,
        &b,
        &trust(&id, "https://evil.example", "fulcio-root.pem"),
        &VerifyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, VerifyError::Issuer { .. }), "{e}");
    let e = verify(&model, &b, &trust(&id, &iss, "ca.pem"), &VerifyOptions::default()).unwrap_err();
    assert!(matches!(e, VerifyError::Cert(_)), "{e}");

    // With a Sigstore trusted_root.json the log's signed entry timestamp is required.
    let root = || {
        let mut t = TrustMaterial::default();
        t.add_file(
            &std::fs::read(dir().join("keys/trusted_root.json")).unwrap(),
            "trusted_root.json",
        )
        .unwrap();
        t
    };
    let t = root();
    assert_eq!(
        (t.certificate_authorities.len(), t.logs.len(), t.skipped.len()),
        (1, 1, 1)
    );
    let keyless = |t: TrustMaterial| Trust::Keyless {
        trust: t,
        identity: id.clone(),
        issuer: iss.clone(),
    };
    let ok = verify(&model, &b, &keyless(root()), &VerifyOptions::default()).unwrap();
    assert!(ok.signer.contains("logged at index 4242"), "{}", ok.signer);
    // A forged integration time breaks the log's signature.
    let mut forged = b.clone();
    forged.verification_material.tlog_entries[0]["integratedTime"] = "1790000001".into();
    let e = verify(&model, &forged, &keyless(root()), &VerifyOptions::default()).unwrap_err();
    assert!(matches!(e, VerifyError::Trust(_)), "{e}");
    // No entry at all, when a log is trusted.
    let mut unlogged = b.clone();
    unlogged.verification_material.tlog_entries.clear();
    let e = verify(&model, &unlogged, &keyless(root()), &VerifyOptions::default()).unwrap_err();
    assert!(matches!(e, VerifyError::Material(_)), "{e}");
    // An entry from a log the trust material does not name.
    let mut other_log = root();
    other_log.logs[0].log_id = vec![0; 32];
    let e = verify(&model, &b, &keyless(other_log), &VerifyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not in the trust material"), "{e}");
}

/// A writable copy of the vector model.
fn copy_model() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let src = dir().join("model");
    for e in walkdir::WalkDir::new(&src) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(&src).unwrap();
        let dst = t.path().join("model").join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
    t
}

fn reference_sig() -> Bundle {
    bundle(&dir().join("ref/files-p256.sig"))
}

fn mismatch(e: VerifyError) -> Vec<Difference> {
    match e {
        VerifyError::Mismatch(d) => d,
        other => panic!("expected a mismatch, got {other}"),
    }
}

#[test]
fn tampering_is_refused_with_a_precise_reason() {
    let p256 = Trust::Key(public("p256.pub"));
    let opts = VerifyOptions::default();

    // A changed byte.
    let t = copy_model();
    let m = t.path().join("model");
    let mut data = std::fs::read(m.join("a/b.bin")).unwrap();
    data[10] ^= 1;
    std::fs::write(m.join("a/b.bin"), data).unwrap();
    let d = mismatch(verify(&m, &reference_sig(), &p256, &opts).unwrap_err());
    assert!(
        matches!(&d[..], [Difference::Changed { name, .. }] if name == "a/b.bin"),
        "{d:?}"
    );

    // Renamed.
    let t = copy_model();
    let m = t.path().join("model");
    std::fs::rename(m.join("a.txt"), m.join("z.txt")).unwrap();
    let d = mismatch(verify(&m, &reference_sig(), &p256, &opts).unwrap_err());
    assert_eq!(
        d,
        [Difference::Renamed {
            from: "a.txt".into(),
            to: "z.txt".into()
        }]
    );

    // Added: refused, unless unsigned files are accepted.
    let t = copy_model();
    let m = t.path().join("model");
    std::fs::write(m.join("a/extra.py"), b"import os").unwrap();
    let d = mismatch(verify(&m, &reference_sig(), &p256, &opts).unwrap_err());
    assert_eq!(d, [Difference::Added("a/extra.py".into())]);
    let lenient = VerifyOptions {
        ignore_unsigned_files: true,
        ..VerifyOptions::default()
    };
    verify(&m, &reference_sig(), &p256, &lenient).unwrap();

    // Removed.
    let t = copy_model();
    let m = t.path().join("model");
    std::fs::remove_file(m.join("empty")).unwrap();
    let d = mismatch(verify(&m, &reference_sig(), &p256, &opts).unwrap_err());
    assert_eq!(d, [Difference::Removed("empty".into())]);
    // Removed stays an error when unsigned files are accepted.
    assert!(verify(&m, &reference_sig(), &p256, &lenient).is_err());
}

#[test]
fn another_key_or_another_models_bundle_is_refused() {
    let model = dir().join("model");
    let opts = VerifyOptions::default();
    // Another key: the hint says so before any cryptography.
    let e = verify(&model, &reference_sig(), &Trust::Key(public("other.pub")), &opts).unwrap_err();
    assert!(matches!(e, VerifyError::KeyMismatch { .. }), "{e}");
    // Without the hint, the signature itself fails.
    let mut b = reference_sig();
    b.verification_material.public_key = None;
    let e = verify(&model, &b, &Trust::Key(public("other.pub")), &opts).unwrap_err();
    assert!(matches!(e, VerifyError::Signature(_)), "{e}");
    // A certificate from an untrusted CA.
    let e = verify(
        &model,
        &bundle(&dir().join("ref/cert.sig")),
        &Trust::Certificates(certs("other-ca.pem")),
        &opts,
    )
    .unwrap_err();
    assert!(matches!(e, VerifyError::Cert(_)), "{e}");
    // A key bundle where a certificate is expected.
    let e = verify(&model, &reference_sig(), &Trust::Certificates(certs("ca.pem")), &opts).unwrap_err();
    assert!(matches!(e, VerifyError::Material(_)), "{e}");

    // A swapped bundle: validly signed by the trusted key, but for another model.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("weights.bin"), b"different weights").unwrap();
    let manifest = serialize::hash_model(other.path(), &HashConfig::default(), &|_| {}).unwrap();
    let swapped = model::sign_manifest(
        &manifest,
        &Signer {
            key: key("p256.key"),
            certificates: vec![],
        },
    )
    .unwrap();
    let e = verify(&model, &swapped, &Trust::Key(public("p256.pub")), &opts).unwrap_err();
    assert!(matches!(e, VerifyError::OtherModel { .. }), "{e}");

    // A payload edited after signing.
    let mut b = reference_sig();
    let env = b.dsse_envelope.as_mut().unwrap();
    env.payload = env.payload.replacen('e', "f", 1);
    let e = verify(&model, &b, &Trust::Key(public("p256.pub")), &opts).unwrap_err();
    assert!(matches!(e, VerifyError::Signature(_)), "{e}");
}

#[test]
fn a_statement_whose_subject_disagrees_with_its_resources_is_refused() {
    let manifest = serialize::hash_model(&dir().join("model"), &HashConfig::default(), &|_| {}).unwrap();
    let mut st: Statement = model::statement(&manifest);
    st.subject = vec![ResourceDescriptor::sha256("model", "00".repeat(32))];
    let env = palisade_core::attest::sign_statement(&st, &key("p256.key")).unwrap();
    let b = Bundle::new(Default::default(), env);
    let e = verify(
        &dir().join("model"),
        &b,
        &Trust::Key(public("p256.pub")),
        &VerifyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, VerifyError::Inconsistent { .. }), "{e}");
}
