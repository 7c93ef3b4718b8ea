//! TensorFlow SavedModel (`saved_model.pb`) and frozen GraphDef protobufs, decoded with
//! prost from hand-written definitions of the few fields needed (`tensorflow/core/
//! protobuf/saved_model.proto`, `meta_graph.proto`, `framework/graph.proto`,
//! `node_def.proto`, `function.proto`). Every node — in the graph and in the function
//! library — is checked against ops that run Python or touch the file system.

use palisade_core::{FileReport, Finding, Location, Severity};
use prost::Message;

use crate::rules;

#[derive(Clone, PartialEq, Message)]
pub struct SavedModel {
    #[prost(int64, tag = "1")]
    pub saved_model_schema_version: i64,
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MetaGraphDef {
    #[prost(message, optional, tag = "2")]
    pub graph_def: Option<GraphDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphDef {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeDef>,
    #[prost(message, optional, tag = "2")]
    pub library: Option<FunctionDefLibrary>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeDef {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub op: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FunctionDefLibrary {
    #[prost(message, repeated, tag = "1")]
    pub function: Vec<FunctionDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct FunctionDef {
    #[prost(message, optional, tag = "1")]
    pub signature: Option<OpDef>,
    #[prost(message, repeated, tag = "3")]
    pub node_def: Vec<NodeDef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OpDef {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
}

/// `(op, severity, what it does)`.
const DANGEROUS_OPS: &[(&str, Severity, &str)] = &[
    (
        "PyFunc",
        Severity::Critical,
        "runs arbitrary Python through tf.py_function",
    ),
    (
        "PyFuncStateless",
        Severity::Critical,
        "runs arbitrary Python through tf.numpy_function",
    ),
    ("EagerPyFunc", Severity::Critical, "runs arbitrary Python eagerly"),
    ("ReadFile", Severity::High, "reads any file on the serving host"),
    ("WriteFile", Severity::High, "writes any file on the serving host"),
    ("MatchingFiles", Severity::High, "lists the serving host's file system"),
    ("DeleteFile", Severity::High, "deletes files on the serving host"),
    (
        "ImmutableConst",
        Severity::High,
        "maps a file from the serving host into memory",
    ),
    ("TFRecordDataset", Severity::Medium, "reads files named at run time"),
    ("TextLineDataset", Severity::Medium, "reads files named at run time"),
    (
        "FixedLengthRecordDataset",
        Severity::Medium,
        "reads files named at run time",
    ),
    (
        "CreateSummaryFileWriter",
        Severity::Medium,
        "writes files on the serving host",
    ),
    ("WriteSummary", Severity::Medium, "writes files on the serving host"),
    (
        "DecodeProtoV2",
        Severity::Medium,
        "can load a descriptor file from the serving host",
    ),
    (
        "EncodeProto",
        Severity::Medium,
        "can load a descriptor file from the serving host",
    ),
];

/// Checkpoint ops: normal inside the saver's own scope, suspicious elsewhere.
const CHECKPOINT_OPS: &[&str] = &[
    "Save",
    "SaveV2",
    "SaveSlices",
    "Restore",
    "RestoreV2",
    "RestoreSlice",
    "MergeV2Checkpoints",
];

pub enum Decoded {
    SavedModel(SavedModel),
    GraphDef(GraphDef),
}

fn plausible_graph(g: &GraphDef) -> bool {
    !g.node.is_empty()
        && g.node.iter().all(|n| {
            !n.op.is_empty()
                && n.op.len() < 256
                && n.op
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'>')
        })
}

/// Decodes `bytes` as a SavedModel or a GraphDef, if it plausibly is one.
pub fn decode(bytes: &[u8]) -> Option<Decoded> {
    match bytes.first()? {
        0x08 => {
            let sm = SavedModel::decode(bytes).ok()?;
            let ok = (1..=8).contains(&sm.saved_model_schema_version)
                && !sm.meta_graphs.is_empty()
                && sm
                    .meta_graphs
                    .iter()
                    .any(|m| m.graph_def.as_ref().is_some_and(plausible_graph));
            ok.then_some(Decoded::SavedModel(sm))
        }
        0x0a => {
            let g = GraphDef::decode(bytes).ok()?;
            plausible_graph(&g).then_some(Decoded::GraphDef(g))
        }
        _ => None,
    }
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn check_node(n: &NodeDef, scope: &str, loc: &Location, report: &mut FileReport) {
    let op = s(&n.op);
    let name = s(&n.name);
    if let Some((_, severity, what)) = DANGEROUS_OPS.iter().find(|(o, _, _)| *o == op) {
        report.findings.push(
            Finding::new(
                &rules::TFM001,
                loc.clone(),
                format!("node `{name}` in {scope} uses op `{op}`, which {what}"),
            )
            .with_severity(*severity)
            .with_evidence(format!("{name}: {op}")),
        );
    } else if CHECKPOINT_OPS.contains(&op.as_str()) {
        // TF1 savers live under `save/` (`save_1/`, …); TF2 puts them in
        // `__inference__traced_save_*` / `__inference__traced_restore_*` functions.
        let first = name.split('/').next().unwrap_or("").to_ascii_lowercase();
        let scope_l = scope.to_ascii_lowercase();
        let in_saver = (name.contains('/') && (first.starts_with("save") || first.starts_with("checkpoint")))
            || scope_l.contains("traced_save")
            || scope_l.contains("traced_restore");
        if !in_saver {
            report.findings.push(
                Finding::new(
                    &rules::TFM001,
                    loc.clone(),
                    format!("node `{name}` in {scope} uses checkpoint op `{op}` outside the saver's scope: it reads or writes files at paths the graph chooses"),
                )
                .with_severity(Severity::Medium)
                .with_evidence(format!("{name}: {op}")),
            );
        }
    }
}

fn check_graph(g: &GraphDef, loc: &Location, report: &mut FileReport) {
    for n in &g.node {
        check_node(n, "the graph", loc, report);
    }
    for f in g.library.iter().flat_map(|l| &l.function) {
        let fname = f.signature.as_ref().map(|o| s(&o.name)).unwrap_or_default();
        for n in &f.node_def {
            check_node(n, &format!("function `{fname}`"), loc, report);
        }
    }
}

pub fn check(d: &Decoded, loc: &Location, report: &mut FileReport) {
    match d {
        Decoded::SavedModel(sm) => {
            report.add_format("tf-savedmodel");
            for (i, m) in sm.meta_graphs.iter().enumerate() {
                if let Some(g) = &m.graph_def {
                    check_graph(g, &loc.member(format!("meta_graph {i}")), report);
                }
            }
        }
        Decoded::GraphDef(g) => {
            report.add_format("tf-graphdef");
            check_graph(g, loc, report);
        }
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::{FileReport, Location};
    use prost::Message;

    use super::*;

    fn node(name: &str, op: &str) -> NodeDef {
        NodeDef {
            name: name.as_bytes().to_vec(),
            op: op.as_bytes().to_vec(),
        }
    }

    fn findings(g: GraphDef) -> Vec<String> {
        let bytes = g.encode_to_vec();
        let d = decode(&bytes).expect("decodes as a GraphDef");
        let mut r = FileReport::new("t", 0);
        check(&d, &Location::new("t"), &mut r);
        r.findings
            .into_iter()
            .map(|f| format!("{} {}", f.severity, f.message))
            .collect()
    }

    #[test]
    fn savers_are_normal_elsewhere_checkpoint_ops_are_not() {
        let tf1 = GraphDef {
            node: vec![
                node("save/SaveV2", "SaveV2"),
                node("save/RestoreV2", "RestoreV2"),
                node("x", "MatMul"),
            ],
            library: None,
        };
        assert_eq!(findings(tf1), Vec::<String>::new());
        let tf2 = GraphDef {
            node: vec![
                node("saver_filename", "Placeholder"),
                node("StatefulPartitionedCall_1", "StatefulPartitionedCall"),
            ],
            library: Some(FunctionDefLibrary {
                function: vec![FunctionDef {
                    signature: Some(OpDef {
                        name: b"__inference__traced_save_42".to_vec(),
                    }),
                    node_def: vec![
                        node("SaveV2", "SaveV2"),
                        node("MergeV2Checkpoints", "MergeV2Checkpoints"),
                    ],
                }],
            }),
        };
        assert_eq!(findings(tf2), Vec::<String>::new());
        let rogue = GraphDef {
            node: vec![node("exfil", "SaveV2"), node("y", "Identity")],
            library: None,
        };
        assert_eq!(findings(rogue).len(), 1);
    }

    #[test]
    fn python_ops_are_critical_even_in_functions() {
        let g = GraphDef {
            node: vec![node("a", "Placeholder")],
            library: Some(FunctionDefLibrary {
                function: vec![FunctionDef {
                    signature: Some(OpDef { name: b"f".to_vec() }),
                    node_def: vec![node("p", "EagerPyFunc")],
                }],
            }),
        };
        let f = findings(g);
        assert_eq!(f.len(), 1);
        assert!(f[0].starts_with("critical"), "{f:?}");
    }
}
