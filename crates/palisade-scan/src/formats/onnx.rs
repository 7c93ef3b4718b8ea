//! ONNX (`onnx/onnx.proto`): decoded with prost from hand-written message definitions
//! that omit tensor payload fields, so weights are skipped, not copied. Checks external
//! data locations (traversal, absolute paths, symlinks out of the model directory),
//! operator domains outside the standard and runtime sets, model-local functions, and
//! declared tensor sizes.

use std::path::Path;

use palisade_core::{FileReport, Finding, Location};
use prost::Message;

use crate::{container, rules};

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(bytes = "vec", tag = "2")]
    pub producer_name: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub producer_version: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub domain: Vec<u8>,
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    #[prost(bytes = "vec", tag = "6")]
    pub doc_string: Vec<u8>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "25")]
    pub functions: Vec<FunctionProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(bytes = "vec", tag = "1")]
    pub domain: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(bytes = "vec", tag = "2")]
    pub name: Vec<u8>,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "15")]
    pub sparse_initializer: Vec<SparseTensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeTensor>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeTensor {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub dim_param: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(bytes = "vec", tag = "3")]
    pub name: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub op_type: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    pub domain: Vec<u8>,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(message, optional, tag = "6")]
    pub g: Option<GraphProto>,
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub graphs: Vec<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(bytes = "vec", tag = "8")]
    pub name: Vec<u8>,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct SparseTensorProto {
    #[prost(message, optional, tag = "1")]
    pub values: Option<TensorProto>,
    #[prost(message, optional, tag = "2")]
    pub indices: Option<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FunctionProto {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(message, repeated, tag = "7")]
    pub node: Vec<NodeProto>,
    #[prost(bytes = "vec", tag = "10")]
    pub domain: Vec<u8>,
}

/// Operator domains implemented by ONNX itself and by mainstream runtimes.
pub const STANDARD_DOMAINS: &[&str] = &[
    "",
    "ai.onnx",
    "ai.onnx.ml",
    "ai.onnx.training",
    "ai.onnx.preview.training",
    "com.microsoft",
    "com.microsoft.nchwc",
    "com.microsoft.experimental",
    "com.microsoft.dml",
    "org.pytorch.aten",
    "com.ms.internal.nhwc",
    "pkg.onnxscript.torch_lib",
    "pkg.onnxscript.torch_lib.common",
];

/// Operators of onnxruntime-extensions (`ai.onnx.contrib`) that ship compiled in the
/// library (tokenizers, string and media ops). Any other op in that domain is a Python
/// custom op (`PyOp`, `@onnx_op`), registered by code outside the model.
const CONTRIB_BUILTIN_OPS: &[&str] = &[
    "GPT2Tokenizer",
    "CLIPTokenizer",
    "RobertaTokenizer",
    "BpeTokenizer",
    "BpeDecoder",
    "BertTokenizer",
    "BertTokenizerDecoder",
    "BasicTokenizer",
    "WordpieceTokenizer",
    "SentencepieceTokenizer",
    "SentencepieceDecoder",
    "HfJsonTokenizer",
    "HfBertTokenizer",
    "TrieTokenizer",
    "TrieDetokenizer",
    "VectorToString",
    "StringToVector",
    "StringJoin",
    "StringSplit",
    "StringLower",
    "StringUpper",
    "StringLength",
    "StringConcat",
    "StringMapping",
    "StringRegexReplace",
    "StringRegexSplitWithOffsets",
    "StringECMARegexReplace",
    "StringECMARegexSplitWithOffsets",
    "StringEqual",
    "StringStrip",
    "StringHash",
    "StringHashFast",
    "MaskedFill",
    "SegmentExtraction",
    "SegmentSum",
    "RaggedTensorToDense",
    "RaggedTensorToSparse",
    "DecodeImage",
    "EncodeImage",
    "AudioDecoder",
    "StftNorm",
    "BlingFireSentenceBreaker",
];

/// Declared tensor sizes beyond this are reported.
const MAX_TENSOR_BYTES: u128 = 1 << 40;

/// Decodes `bytes` as an ONNX model, if it is one.
pub fn decode(bytes: &[u8]) -> Option<ModelProto> {
    let m = ModelProto::decode(bytes).ok()?;
    ((1..=64).contains(&m.ir_version) && (m.graph.is_some() || !m.functions.is_empty())).then_some(m)
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn elem_size(data_type: i32) -> u128 {
    match data_type {
        2 | 3 | 9 | 17..=22 => 1, // uint8, int8, bool, float8 variants, (u)int4 rounded up
        4 | 5 | 10 | 16 => 2,
        1 | 6 | 12 => 4,
        7 | 11 | 13 | 14 => 8,
        15 => 16,
        _ => 1,
    }
}

struct Checker<'a> {
    loc: &'a Location,
    model_dir: Option<&'a Path>,
    local_domains: Vec<String>,
    report: &'a mut FileReport,
    depth: u32,
}

impl Checker<'_> {
    fn tensor(&mut self, t: &TensorProto, owner: &str) {
        let name = if t.name.is_empty() {
            owner.to_owned()
        } else {
            s(&t.name)
        };
        // Declared size.
        let mut elems: u128 = 1;
        let mut negative = false;
        for d in &t.dims {
            if *d < 0 {
                negative = true;
            }
            elems = elems.saturating_mul(u128::from(d.unsigned_abs()));
        }
        let bytes = elems.saturating_mul(elem_size(t.data_type));
        if negative || bytes > MAX_TENSOR_BYTES {
            self.report.findings.push(
                Finding::new(
                    &rules::ONX004,
                    self.loc.clone(),
                    format!(
                        "tensor `{name}` declares {} ({:?}): loaders that trust it allocate or read that much",
                        if negative {
                            "a negative dimension".to_owned()
                        } else {
                            format!("{bytes} bytes")
                        },
                        t.dims
                    ),
                )
                .with_evidence(format!("dims {:?}", t.dims)),
            );
        }
        // External data.
        if t.data_location != 1 && t.external_data.is_empty() {
            return;
        }
        let Some(location) = t
            .external_data
            .iter()
            .find(|e| e.key == b"location")
            .map(|e| s(&e.value))
        else {
            return;
        };
        if let Some(why) = container::unsafe_path(&location) {
            self.report.findings.push(
                Finding::new(
                    &rules::ONX001,
                    self.loc.clone(),
                    format!("tensor `{name}` loads external data from `{location}`, which has {why}: it reads outside the model directory"),
                )
                .with_evidence(location.clone()),
            );
            return;
        }
        if let Some(dir) = self.model_dir {
            let target = dir.join(&location);
            if let (Ok(real), Ok(base)) = (target.canonicalize(), dir.canonicalize()) {
                if !real.starts_with(&base) {
                    self.report.findings.push(
                        Finding::new(
                            &rules::ONX001,
                            self.loc.clone(),
                            format!("tensor `{name}` loads external data from `{location}`, which resolves outside the model directory (a link)"),
                        )
                        .with_evidence(format!("{location} -> {}", real.display())),
                    );
                }
            }
        }
    }

    fn node(&mut self, n: &NodeProto, scope: &str) {
        let domain = s(&n.domain);
        let op = s(&n.op_type);
        let known_contrib = domain == "ai.onnx.contrib" && CONTRIB_BUILTIN_OPS.contains(&op.as_str());
        if !STANDARD_DOMAINS.contains(&domain.as_str()) && !self.local_domains.contains(&domain) && !known_contrib {
            self.report.findings.push(
                Finding::new(
                    &rules::ONX002,
                    self.loc.clone(),
                    format!("node `{}` in {scope} uses operator `{}` from custom domain `{domain}`, which runs code the model supplies or requires", s(&n.name), s(&n.op_type)),
                )
                .with_evidence(format!("{domain}::{}", s(&n.op_type))),
            );
        }
        for a in &n.attribute {
            let owner = format!("{}.{}", s(&n.name), s(&a.name));
            if let Some(t) = &a.t {
                self.tensor(t, &owner);
            }
            for t in &a.tensors {
                self.tensor(t, &owner);
            }
            for g in a.g.iter().chain(&a.graphs) {
                self.graph(g, &format!("subgraph of `{}`", s(&n.name)));
            }
        }
    }

    fn graph(&mut self, g: &GraphProto, scope: &str) {
        if self.depth > 64 {
            return;
        }
        self.depth += 1;
        for t in &g.initializer {
            self.tensor(t, "initializer");
        }
        for sp in &g.sparse_initializer {
            for t in sp.values.iter().chain(sp.indices.iter()) {
                self.tensor(t, "sparse initializer");
            }
        }
        for n in &g.node {
            self.node(n, scope);
        }
        self.depth -= 1;
    }
}

pub fn check(model: &ModelProto, model_dir: Option<&Path>, loc: &Location, report: &mut FileReport) {
    report.add_format("onnx");
    let mut c = Checker {
        loc,
        model_dir,
        local_domains: model.functions.iter().map(|f| s(&f.domain)).collect(),
        report,
        depth: 0,
    };
    if let Some(g) = &model.graph {
        c.graph(g, "the main graph");
    }
    for f in &model.functions {
        c.report.findings.push(Finding::new(
            &rules::ONX003,
            loc.clone(),
            format!(
                "model defines local function `{}::{}` ({} nodes)",
                s(&f.domain),
                s(&f.name),
                f.node.len()
            ),
        ));
        for n in &f.node {
            c.node(n, &format!("function `{}`", s(&f.name)));
        }
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::{FileReport, Location};
    use prost::Message;

    use super::*;

    fn model(domain: &str, op: &str) -> Vec<u8> {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: b"".to_vec(),
                version: 17,
            }],
            producer_name: b"test".to_vec(),
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    name: b"n".to_vec(),
                    op_type: op.as_bytes().to_vec(),
                    domain: domain.as_bytes().to_vec(),
                    attribute: vec![],
                }],
                name: b"g".to_vec(),
                initializer: vec![],
                sparse_initializer: vec![],
                ..Default::default()
            }),
            functions: vec![],
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn codes(bytes: &[u8]) -> Vec<String> {
        let m = decode(bytes).expect("decodes");
        let mut r = FileReport::new("t", 0);
        check(&m, None, &Location::new("t"), &mut r);
        r.findings.into_iter().map(|f| f.code).collect()
    }

    #[test]
    fn operator_domains() {
        assert_eq!(codes(&model("", "Add")), Vec::<String>::new());
        assert_eq!(codes(&model("com.microsoft", "FusedMatMul")), Vec::<String>::new());
        assert_eq!(codes(&model("ai.onnx.contrib", "GPT2Tokenizer")), Vec::<String>::new());
        assert_eq!(codes(&model("ai.onnx.contrib", "PyOp")), vec!["ONX002"]);
        assert_eq!(codes(&model("com.evil", "Exec")), vec!["ONX002"]);
    }
}
