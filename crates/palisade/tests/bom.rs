//! `palisade bom`: every BOM validates against the official CycloneDX 1.6 JSON schema
//! (../shared/reference/cyclonedx-bom-1.6.schema.json) and carries what the artifacts
//! declare, checked against values computed here independently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(rel: &str) -> PathBuf {
    repo().join("crates/palisade-scan/tests/fixtures").join(rel)
}

/// The official schema, with its two references to sibling files (SPDX license ids and
/// JSF signatures, not shipped in shared/reference) replaced by their JSON types, so that
/// validation runs offline. Nothing else is changed.
fn validator() -> jsonschema::Validator {
    let path = repo().join("../shared/reference/cyclonedx-bom-1.6.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    fn patch(v: &mut Value, replaced: &mut usize) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let stub = if r.starts_with("spdx.schema.json") {
                        Some(serde_json::json!({ "type": "string" }))
                    } else if r.starts_with("jsf-0.82.schema.json") {
                        Some(serde_json::json!({ "type": "object" }))
                    } else {
                        None
                    };
                    if let Some(stub) = stub {
                        *v = stub;
                        *replaced += 1;
                        return;
                    }
                }
                for child in map.values_mut() {
                    patch(child, replaced);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|c| patch(c, replaced)),
            _ => {}
        }
    }
    let mut replaced = 0;
    patch(&mut schema, &mut replaced);
    assert_eq!(replaced, 2, "the schema's external references changed");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn assert_valid(v: &jsonschema::Validator, bom: &Value) {
    let errors: Vec<String> = v
        .iter_errors(bom)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "BOM does not validate:\n{}", errors.join("\n"));
}

fn bom(args: &[&Path]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("bom")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn prop<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["value"].as_str())
}

#[test]
fn boms_validate_against_the_cyclonedx_1_6_schema() {
    let v = validator();
    for rel in [
        "formats/benign/onnx_matmul_add.onnx",
        "formats/benign/gguf_chatml.gguf",
        "formats/benign/hf_repo_safetensors",
        "formats/benign/tf_savedmodel_matmul",
        "pickle/malicious/torch_zip_os_system.pt",
    ] {
        let b = bom(&[&fixture(rel)]);
        assert_valid(&v, &b);
        assert_eq!(b["components"][0]["type"], "machine-learning-model", "{rel}");
    }
    // The validator is not vacuous: a wrong component type is rejected.
    let mut b = bom(&[&fixture("formats/benign/onnx_matmul_add.onnx")]);
    b["components"][0]["type"] = "neural-network".into();
    assert!(!v.is_valid(&b));
}

#[test]
fn model_card_reflects_what_the_files_declare() {
    // safetensors: parameters counted independently from the header.
    let dir = fixture("formats/benign/hf_repo_safetensors");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let expected: u64 = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, t)| {
            t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .product::<u64>()
        })
        .sum();
    let config: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let b = bom(&[&dir]);
    let model = &b["components"][0];
    let card = &model["modelCard"];
    assert_eq!(prop(card, "palisade:parameters"), Some(expected.to_string().as_str()));
    assert_eq!(card["modelParameters"]["modelArchitecture"], config["architectures"][0]);
    assert_eq!(card["modelParameters"]["architectureFamily"], config["model_type"]);
    // Every file is listed with its SHA-256.
    let files = model["components"].as_array().unwrap();
    let st = files.iter().find(|f| f["name"] == "model.safetensors").unwrap();
    use sha2::Digest as _;
    assert_eq!(st["hashes"][0]["content"], hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(prop(st, "palisade:format"), Some("safetensors"));

    // ONNX: graph inputs and outputs with types and shapes, opset.
    let b = bom(&[&fixture("formats/benign/onnx_matmul_add.onnx")]);
    let card = &b["components"][0]["modelCard"];
    let inputs: Vec<&str> = card["modelParameters"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["format"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, ["X: float[1,4]"]);
    assert!(prop(card, "palisade:file:onnx_matmul_add.onnx:opset:ai.onnx").is_some());

    // GGUF: architecture from general.architecture.
    let b = bom(&[&fixture("formats/benign/gguf_chatml.gguf")]);
    assert_eq!(
        b["components"][0]["modelCard"]["modelParameters"]["architectureFamily"],
        "llama"
    );
}

#[test]
fn findings_become_vulnerabilities_and_datasets_data_components() {
    let v = validator();
    let model = fixture("pickle/malicious/torch_zip_os_system.pt");
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("train.csv"), "x,y\n1,2\n").unwrap();
    let b = bom(&[&model, Path::new("--dataset"), data.path()]);
    assert_valid(&v, &b);
    let vulns = b["vulnerabilities"].as_array().unwrap();
    assert!(!vulns.is_empty());
    let file_refs: Vec<&str> = b["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    for vuln in vulns {
        assert!(vuln["id"].as_str().unwrap().starts_with("PKL"));
        let affected = vuln["affects"][0]["ref"].as_str().unwrap();
        assert!(file_refs.contains(&affected) || affected == b["components"][0]["bom-ref"]);
    }
    assert!(vulns
        .iter()
        .any(|v| v["ratings"][0]["severity"] == "critical"
            && v["cwes"].as_array().is_some_and(|c| c.contains(&502.into()))));
    let dataset = b["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "data")
        .unwrap();
    assert_eq!(
        b["components"][0]["modelCard"]["modelParameters"]["datasets"][0]["ref"],
        dataset["bom-ref"]
    );
    assert_eq!(b["dependencies"][0]["dependsOn"][0], dataset["bom-ref"]);

    // --no-scan leaves the vulnerabilities out.
    let b = bom(&[&model, Path::new("--no-scan")]);
    assert!(b.get("vulnerabilities").is_none());
}

/// `bom --attest` signs the same BOM it prints as an attestation about the model, which
/// `verify-attestation` accepts for the model and refuses for another.
#[test]
fn bom_attestation_is_signed_and_about_the_model() {
    let t = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .current_dir(t.path())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["keygen", "--output", "release"]).status.success());
    let model = fixture("formats/benign/hf_repo_safetensors");
    let out = run(&[
        "bom",
        model.to_str().unwrap(),
        "--attest",
        "--key",
        "release.key",
        "--attestation",
        "bom.sig",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bundle: Value = serde_json::from_slice(&std::fs::read(t.path().join("bom.sig")).unwrap()).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["predicateType"], "https://cyclonedx.org/bom");
    assert_eq!(statement["predicate"], printed, "the attested BOM is the printed one");
    let verify = |m: &Path| {
        run(&[
            "verify-attestation",
            "bom.sig",
            "--key",
            "release.pub",
            "--predicate-type",
            "https://cyclonedx.org/bom",
            "--model",
            m.to_str().unwrap(),
        ])
        .status
        .code()
    };
    assert_eq!(verify(&model), Some(0));
    assert_eq!(verify(&fixture("formats/benign/onnx_matmul_add.onnx")), Some(1));
    let out = run(&["bom", model.to_str().unwrap(), "--attest"]);
    assert_eq!(out.status.code(), Some(2), "--attest needs --key");
}
