//! Model facts for the AI-BOM: what a file's header declares about the model (tensors,
//! parameter counts, data types, inputs and outputs, operator sets, metadata). Reads only
//! headers, with the same bounds as the scanners; never the weights.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use palisade_core::facts::{ModelFacts, TensorSpec};

use crate::formats::{gguf, onnx, pbstrip, safetensors};

/// Hugging Face config keys worth recording (the rest are hyper-parameters of little use
/// to a reviewer).
const HF_KEYS: &[&str] = &[
    "model_type",
    "torch_dtype",
    "transformers_version",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "quantization_config.quant_method",
];

/// Facts for a file whose format the scanner recognised (`format` is the scan report's
/// first format). `None` for formats without declarative headers or malformed ones.
pub fn describe_path(path: &Path, format: &str) -> Option<ModelFacts> {
    let file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    match format {
        "safetensors" => describe_safetensors(file, size),
        "gguf" => gguf::describe(&mut BufReader::with_capacity(64 << 10, file), Some(size)),
        "onnx" => {
            let stripped = pbstrip::strip(&mut BufReader::with_capacity(1 << 20, file), pbstrip::ONNX, 0).ok()?;
            onnx::decode(&stripped).map(|m| describe_onnx(&m))
        }
        "hf-config" if size <= 16 << 20 => {
            let mut text = String::new();
            file.take(16 << 20).read_to_string(&mut text).ok()?;
            describe_hf_config(&text)
        }
        "" => None,
        other => Some(ModelFacts {
            format: other.to_owned(),
            ..Default::default()
        }),
    }
}

fn describe_safetensors(mut file: File, size: u64) -> Option<ModelFacts> {
    let mut len8 = [0u8; 8];
    file.read_exact(&mut len8).ok()?;
    let n = u64::from_le_bytes(len8);
    if n > safetensors::MAX_HEADER || n.saturating_add(8) > size {
        return None;
    }
    let mut header = Vec::new();
    file.take(n).read_to_end(&mut header).ok()?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header).ok()?;
    let mut facts = ModelFacts {
        format: "safetensors".to_owned(),
        ..Default::default()
    };
    let (mut tensors, mut params) = (0u64, 0u64);
    for (name, v) in &map {
        if name == "__metadata__" {
            if let Some(meta) = v.as_object() {
                for (k, v) in meta {
                    if let Some(s) = v.as_str().filter(|s| s.len() <= 1024) {
                        facts.properties.insert(k.clone(), s.to_owned());
                    }
                }
            }
            continue;
        }
        let dtype = v.get("dtype").and_then(|d| d.as_str()).unwrap_or("?").to_owned();
        let shape = v.get("shape").and_then(|s| s.as_array());
        let count = shape.map_or(0, |s| {
            s.iter().filter_map(|d| d.as_u64()).fold(1u64, u64::saturating_mul)
        });
        tensors += 1;
        params = params.saturating_add(count);
        let slot = facts.dtypes.entry(dtype).or_default();
        *slot = slot.saturating_add(count);
    }
    facts.tensors = Some(tensors);
    facts.parameters = Some(params);
    Some(facts)
}

/// ONNX `TensorProto.DataType` names.
fn onnx_dtype(t: i32) -> String {
    const NAMES: [&str; 24] = [
        "undefined",
        "float",
        "uint8",
        "int8",
        "uint16",
        "int16",
        "int32",
        "int64",
        "string",
        "bool",
        "float16",
        "double",
        "uint32",
        "uint64",
        "complex64",
        "complex128",
        "bfloat16",
        "float8e4m3fn",
        "float8e4m3fnuz",
        "float8e5m2",
        "float8e5m2fnuz",
        "uint4",
        "int4",
        "float4e2m1",
    ];
    usize::try_from(t)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("type{t}"), |s| s.to_string())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe_onnx(m: &onnx::ModelProto) -> ModelFacts {
    let mut facts = ModelFacts {
        format: "onnx".to_owned(),
        ..Default::default()
    };
    for o in &m.opset_import {
        let domain = if o.domain.is_empty() {
            "ai.onnx".to_owned()
        } else {
            text(&o.domain)
        };
        facts.opsets.insert(domain, o.version);
    }
    let mut put = |k: &str, v: String| {
        if !v.is_empty() && v.len() <= 1024 {
            facts.properties.insert(k.to_owned(), v);
        }
    };
    put("onnx.ir_version", m.ir_version.to_string());
    put("onnx.producer_name", text(&m.producer_name));
    put("onnx.producer_version", text(&m.producer_version));
    put("onnx.domain", text(&m.domain));
    put("onnx.doc_string", text(&m.doc_string));
    if m.model_version != 0 {
        put("onnx.model_version", m.model_version.to_string());
    }
    for p in &m.metadata_props {
        put(&format!("onnx.metadata.{}", text(&p.key)), text(&p.value));
    }
    if let Some(g) = &m.graph {
        let spec = |v: &onnx::ValueInfoProto| {
            let tt = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
            TensorSpec {
                name: text(&v.name),
                dtype: tt.map_or_else(|| "?".to_owned(), |t| onnx_dtype(t.elem_type)),
                shape: tt
                    .and_then(|t| t.shape.as_ref())
                    .map(|s| {
                        s.dim
                            .iter()
                            .map(|d| match (&d.dim_value, &d.dim_param) {
                                (Some(v), _) => v.to_string(),
                                (None, Some(p)) if !p.is_empty() => text(p),
                                _ => "?".to_owned(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        };
        let initializers: std::collections::BTreeSet<&[u8]> = g.initializer.iter().map(|t| t.name.as_slice()).collect();
        facts.inputs = g
            .input
            .iter()
            .filter(|v| !initializers.contains(v.name.as_slice()))
            .map(spec)
            .collect();
        facts.outputs = g.output.iter().map(spec).collect();
        let mut params = 0u64;
        for t in &g.initializer {
            let n = t
                .dims
                .iter()
                .map(|d| u64::try_from(*d).unwrap_or(0))
                .fold(1u64, u64::saturating_mul);
            params = params.saturating_add(n);
            let slot = facts.dtypes.entry(onnx_dtype(t.data_type)).or_default();
            *slot = slot.saturating_add(n);
        }
        facts.tensors = Some(g.initializer.len() as u64);
        facts.parameters = Some(params);
        if !g.name.is_empty() {
            facts.properties.insert("onnx.graph_name".to_owned(), text(&g.name));
        }
    }
    facts
}

fn describe_hf_config(text: &str) -> Option<ModelFacts> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut facts = ModelFacts {
        format: "hf-config".to_owned(),
        ..Default::default()
    };
    facts.architecture = v
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .map(str::to_owned);
    facts.model_type = v.get("model_type").and_then(|m| m.as_str()).map(str::to_owned);
    for key in HF_KEYS {
        let mut cur = &v;
        for part in key.split('.') {
            match cur.get(part) {
                Some(next) => cur = next,
                None => {
                    cur = &serde_json::Value::Null;
                    break;
                }
            }
        }
        let s = match cur {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        facts.properties.insert(format!("hf.{key}"), s);
    }
    Some(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_counts_parameters_per_dtype() {
        let header = br#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"F16","shape":[4],"data_offsets":[24,32]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 32]);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m");
        std::fs::write(&p, &bytes).unwrap();
        let f = describe_path(&p, "safetensors").unwrap();
        assert_eq!((f.tensors, f.parameters), (Some(2), Some(10)));
        assert_eq!(f.dtypes.get("F32"), Some(&6));
        assert_eq!(f.properties.get("format").map(String::as_str), Some("pt"));
    }

    #[test]
    fn hf_config_fields() {
        let f = describe_hf_config(r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":32000,"quantization_config":{"quant_method":"gptq"}}"#).unwrap();
        assert_eq!(f.architecture.as_deref(), Some("LlamaForCausalLM"));
        assert_eq!(f.properties.get("hf.vocab_size").map(String::as_str), Some("32000"));
        assert_eq!(
            f.properties
                .get("hf.quantization_config.quant_method")
                .map(String::as_str),
            Some("gptq")
        );
    }
}
