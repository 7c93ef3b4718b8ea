//! CycloneDX 1.6 AI-BOM for a model: one `machine-learning-model` component named by the
//! model's root digest, its files as nested `file` components with their digests, a
//! `modelCard` filled from what the artifacts declare, datasets as `data` components, and
//! scan findings as `vulnerabilities` (VEX, analysis state `in_triage`).
//!
//! Reference: CycloneDX 1.6 JSON schema (shared/reference/cyclonedx-bom-1.6.schema.json);
//! tests validate every BOM against it.

use std::collections::BTreeMap;

use palisade_core::facts::ModelFacts;
use palisade_core::Finding;
use serde_json::{json, Value};

use crate::serialize::Manifest;

/// Property namespace (CycloneDX property taxonomy: names are free, prefixed by the tool).
const NS: &str = "palisade";

/// One file of the model with what it declares.
pub struct BomFile {
    /// Path relative to the model root, as in the manifest.
    pub path: String,
    pub formats: Vec<String>,
    pub facts: Option<ModelFacts>,
}

pub struct BomDataset {
    pub name: String,
    pub manifest: Manifest,
}

pub struct BomInput<'a> {
    pub name: String,
    pub version: Option<String>,
    pub manifest: &'a Manifest,
    pub files: Vec<BomFile>,
    pub datasets: Vec<BomDataset>,
    /// `None` when the model was not scanned.
    pub findings: Option<Vec<Finding>>,
    pub tool_version: String,
    /// RFC 3339.
    pub timestamp: String,
}

fn prop(name: &str, value: impl ToString) -> Value {
    json!({ "name": format!("{NS}:{name}"), "value": value.to_string() })
}

fn hashes(algorithm: &str, digest: &[u8]) -> Value {
    let alg = match algorithm {
        a if a.starts_with("sha256") => "SHA-256",
        "blake3" => "BLAKE3",
        _ => "SHA-256",
    };
    json!([{ "alg": alg, "content": hex::encode(digest) }])
}

/// A random RFC 4122 version 4 UUID URN, as `serialNumber` requires.
fn serial_number() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Merges the facts of every file into the model card.
fn model_card(input: &BomInput, model_ref: &str, dataset_refs: &[String]) -> Value {
    let facts: Vec<(&str, &ModelFacts)> = input
        .files
        .iter()
        .filter_map(|f| f.facts.as_ref().map(|x| (f.path.as_str(), x)))
        .collect();
    let architecture = facts.iter().find_map(|(_, f)| f.architecture.clone());
    let family = facts.iter().find_map(|(_, f)| f.model_type.clone()).or_else(|| {
        facts
            .iter()
            .find(|(_, f)| f.format == "gguf")
            .and_then(|(_, f)| f.architecture.clone())
    });
    let mut params = json!({});
    if let Some(a) = &architecture {
        params["modelArchitecture"] = json!(a);
    }
    if let Some(f) = &family {
        params["architectureFamily"] = json!(f);
    }
    if !dataset_refs.is_empty() {
        params["datasets"] = Value::Array(dataset_refs.iter().map(|r| json!({ "ref": r })).collect());
    }
    let spec = |t: &palisade_core::facts::TensorSpec| json!({ "format": format!("{}: {}[{}]", t.name, t.dtype, t.shape.join(",")) });
    let inputs: Vec<Value> = facts.iter().flat_map(|(_, f)| f.inputs.iter().map(spec)).collect();
    let outputs: Vec<Value> = facts.iter().flat_map(|(_, f)| f.outputs.iter().map(spec)).collect();
    if !inputs.is_empty() {
        params["inputs"] = Value::Array(inputs);
    }
    if !outputs.is_empty() {
        params["outputs"] = Value::Array(outputs);
    }

    let mut props = Vec::new();
    let weights: Vec<&(&str, &ModelFacts)> = facts.iter().filter(|(_, f)| f.parameters.is_some()).collect();
    if !weights.is_empty() {
        let total: u64 = weights
            .iter()
            .filter_map(|(_, f)| f.parameters)
            .fold(0, u64::saturating_add);
        let tensors: u64 = weights
            .iter()
            .filter_map(|(_, f)| f.tensors)
            .fold(0, u64::saturating_add);
        props.push(prop("parameters", total));
        props.push(prop("tensors", tensors));
        let mut dtypes: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, f) in &weights {
            for (d, n) in &f.dtypes {
                let slot = dtypes.entry(d.as_str()).or_default();
                *slot = slot.saturating_add(*n);
            }
        }
        for (d, n) in dtypes {
            props.push(prop(&format!("parameters:{d}"), n));
        }
    }
    for (path, f) in &facts {
        for (domain, v) in &f.opsets {
            props.push(prop(&format!("file:{path}:opset:{domain}"), v));
        }
        for (k, v) in &f.properties {
            props.push(prop(&format!("file:{path}:{k}"), v));
        }
        if let Some(p) = f.parameters {
            props.push(prop(&format!("file:{path}:parameters"), p));
        }
    }
    let mut card = json!({ "bom-ref": format!("{model_ref}#model-card") });
    if params.as_object().is_some_and(|o| !o.is_empty()) {
        card["modelParameters"] = params;
    }
    if !props.is_empty() {
        card["properties"] = Value::Array(props);
    }
    card
}

fn cwe_numbers(refs: &[String]) -> Vec<u64> {
    refs.iter()
        .filter_map(|r| r.strip_prefix("CWE-").and_then(|n| n.parse().ok()))
        .collect()
}

/// Builds the BOM document.
pub fn build(input: &BomInput) -> Value {
    let root = input.manifest.root_digest_hex();
    let model_ref = format!("model:{}@sha256:{root}", input.name);
    let file_ref = |path: &str| format!("{model_ref}/{path}");

    // A single-file model's one resource is named "."; its file is listed by its name.
    let digests: BTreeMap<&str, &crate::serialize::Resource> = input
        .manifest
        .resources
        .iter()
        .map(|r| {
            (
                if r.name == "." {
                    input.name.as_str()
                } else {
                    r.name.as_str()
                },
                r,
            )
        })
        .collect();
    let files: Vec<Value> = input
        .files
        .iter()
        .map(|f| {
            let mut c = json!({ "type": "file", "bom-ref": file_ref(&f.path), "name": f.path });
            if let Some(r) = digests.get(f.path.as_str()) {
                c["hashes"] = hashes(&r.algorithm, &r.digest);
            }
            if !f.formats.is_empty() {
                c["properties"] = Value::Array(f.formats.iter().map(|x| prop("format", x)).collect());
            }
            c
        })
        .collect();

    let dataset_refs: Vec<String> = input
        .datasets
        .iter()
        .map(|d| format!("data:{}@sha256:{}", d.name, d.manifest.root_digest_hex()))
        .collect();
    let mut formats: Vec<&str> = input
        .files
        .iter()
        .flat_map(|f| f.formats.first().map(String::as_str))
        .collect();
    formats.sort_unstable();
    formats.dedup();

    let mut model = json!({
        "type": "machine-learning-model",
        "bom-ref": model_ref,
        "name": input.name,
        "hashes": [{ "alg": "SHA-256", "content": root }],
        "modelCard": model_card(input, &model_ref, &dataset_refs),
        "components": files,
        "properties": [
            prop("digest", "OpenSSF Model Signing v1.0 root digest: SHA-256 over the file digests in manifest order"),
            prop("files", input.manifest.total_files()),
        ],
    });
    if let Some(v) = &input.version {
        model["version"] = json!(v);
    }
    if let Some(props) = model["properties"].as_array_mut() {
        props.extend(formats.iter().map(|f| prop("format", f)));
    }

    let mut components = vec![model];
    for (d, r) in input.datasets.iter().zip(&dataset_refs) {
        let files: Vec<Value> = d
            .manifest
            .resources
            .iter()
            .map(|res| json!({ "type": "file", "bom-ref": format!("{r}/{}", res.name), "name": res.name, "hashes": hashes(&res.algorithm, &res.digest) }))
            .collect();
        components.push(json!({
            "type": "data",
            "bom-ref": r,
            "name": d.name,
            "hashes": [{ "alg": "SHA-256", "content": d.manifest.root_digest_hex() }],
            "data": [{ "type": "dataset", "name": d.name, "contents": { "attachment": { "content": d.manifest.root_digest_hex(), "contentType": "text/plain" } } }],
            "components": files,
        }));
    }

    let mut bom = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial_number(),
        "version": 1,
        "metadata": {
            "timestamp": input.timestamp,
            "tools": { "components": [{ "type": "application", "name": "palisade", "version": input.tool_version }] },
            "component": { "type": "machine-learning-model", "bom-ref": format!("{model_ref}#subject"), "name": input.name },
        },
        "components": components,
    });
    if !dataset_refs.is_empty() {
        bom["dependencies"] = json!([{ "ref": model_ref, "dependsOn": dataset_refs }]);
    }
    if let Some(findings) = &input.findings {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let vulns: Vec<Value> = findings
            .iter()
            .map(|f| {
                let fp = f.fingerprint();
                let n = seen.entry(fp.clone()).or_default();
                *n += 1;
                let vuln_ref = if *n == 1 { format!("finding:{fp}") } else { format!("finding:{fp}:{n}") };
                let mut path = f.location.path.as_str();
                if !digests.contains_key(path) {
                    path = "";
                }
                let affects = if path.is_empty() { model_ref.clone() } else { file_ref(path) };
                let mut v = json!({
                    "bom-ref": vuln_ref,
                    "id": f.code,
                    "source": { "name": "Palisade" },
                    "ratings": [{ "source": { "name": "Palisade" }, "severity": f.severity.as_str(), "method": "other" }],
                    "description": f.message,
                    "affects": [{ "ref": affects }],
                    "analysis": { "state": "in_triage", "detail": "reported by palisade scan; not yet reviewed" },
                    "properties": [prop("location", &f.location)],
                });
                let cwes = cwe_numbers(&f.references);
                if !cwes.is_empty() {
                    v["cwes"] = json!(cwes);
                }
                if let Some(e) = &f.evidence {
                    v["detail"] = json!(e);
                }
                let others: Vec<&String> = f.references.iter().filter(|r| !r.starts_with("CWE-")).collect();
                if let Some(props) = v["properties"].as_array_mut() {
                    props.extend(others.iter().map(|r| prop("reference", r)));
                }
                v
            })
            .collect();
        bom["vulnerabilities"] = Value::Array(vulns);
    }
    bom
}
