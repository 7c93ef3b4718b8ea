//! What a model artifact declares about itself — format, architecture, tensors, parameter
//! counts, inputs and outputs — as read from its headers by `palisade-scan` and written
//! into the AI-BOM's model card by `palisade-sign`. Nothing here is verified: it is what
//! the file says, recorded so that a reviewer can compare it with what was expected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFacts {
    /// Format recognised by content (`safetensors`, `gguf`, `onnx`, `pickle`, …).
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// Number of tensors the file declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors: Option<u64>,
    /// Sum of the element counts of those tensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<u64>,
    /// Element count per tensor data type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dtypes: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<TensorSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<TensorSpec>,
    /// Operator sets (ONNX) as `domain` → version; the default domain is `ai.onnx`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub opsets: BTreeMap<String, i64>,
    /// Other declared key/value metadata (GGUF `general.*`, ONNX metadata_props,
    /// safetensors `__metadata__`, Hugging Face config fields).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: String,
    /// Dimensions; symbolic ones by name, unknown ones as `?`.
    pub shape: Vec<String>,
}
