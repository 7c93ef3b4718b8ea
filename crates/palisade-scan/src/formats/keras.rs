//! Keras model configurations: the `config.json` of a Keras v3 `.keras` zip, and the
//! `model_config` attribute of a legacy HDF5 `.h5` file. The configuration is plain JSON
//! that Keras turns into objects by module and class name, so it is judged like a
//! pickle's imports: `Lambda` layers carry marshalled Python bytecode; objects and
//! function references outside Keras's own modules are looked up with the pickle
//! engine's policy (`subprocess.run` is as dangerous here as in a pickle); and Keras's
//! own functions that defeat `safe_mode` or load more code (`enable_unsafe_deserialization`,
//! `load_model`, `get_file`, `TFSMLayer`, global-state setters) are flagged by name.

use palisade_core::{FileReport, Finding, Location, Severity};
use serde_json::Value;

use crate::pickle::policy::{Policy, Verdict};
use crate::rules;

/// Module prefixes whose classes Keras itself ships.
const KERAS_MODULES: &[&str] = &[
    "keras",
    "tf_keras",
    "tensorflow.keras",
    "keras_hub",
    "keras_nlp",
    "keras_cv",
];

/// Keras functions and classes that switch off safe mode, load further models or code,
/// fetch files, or change global state (the 2025 safe_mode bypasses: CVE-2025-1550,
/// CVE-2025-8747, CVE-2025-9906).
const KERAS_GADGETS: &[&str] = &[
    "enable_unsafe_deserialization",
    "load_model",
    "load_weights",
    "get_file",
    "TFSMLayer",
    "set_global_attribute",
    "register_keras_serializable",
    "deserialize_keras_object",
];

/// TensorFlow ops a `TFOpLambda` layer may not call.
const TF_OP_DENYLIST: &[&str] = &[
    "io.write_file",
    "io.read_file",
    "io.gfile",
    "py_function",
    "numpy_function",
    "py_func",
    "compat.v1.py_func",
    "io.matching_files",
];

fn keras_module(module: &str) -> bool {
    KERAS_MODULES
        .iter()
        .any(|k| module == *k || module.starts_with(&format!("{k}.")))
}

struct Walker<'a> {
    loc: &'a Location,
    policy: &'a Policy,
    report: &'a mut FileReport,
}

impl Walker<'_> {
    fn push(
        &mut self,
        rule: &'static palisade_core::Rule,
        severity: Option<Severity>,
        message: String,
        evidence: String,
    ) {
        let mut f = Finding::new(rule, self.loc.clone(), message).with_evidence(evidence);
        if let Some(s) = severity {
            f = f.with_severity(s);
        }
        if !self
            .report
            .findings
            .iter()
            .any(|x| x.code == f.code && x.message == f.message)
        {
            self.report.findings.push(f);
        }
    }

    fn judge(&mut self, path: &str, what: &str) {
        let last = path.rsplit('.').next().unwrap_or(path);
        let module_segments = path.split('.').count().saturating_sub(1).max(1);
        match self.policy.judge_path(path, module_segments) {
            Verdict::Dangerous { resolved, reason } => self.push(
                &rules::KER002,
                Some(Severity::Critical),
                format!("{what} `{path}` is loaded with the model ({reason})"),
                resolved,
            ),
            Verdict::DunderWalk { segment } => self.push(
                &rules::KER002,
                Some(Severity::Critical),
                format!("{what} `{path}` walks through `{segment}`"),
                path.to_owned(),
            ),
            _ if keras_module(path) && KERAS_GADGETS.contains(&last) => self.push(
                &rules::KER002,
                Some(Severity::Critical),
                format!("{what} `{path}` defeats Keras safe mode or loads further code or files"),
                path.to_owned(),
            ),
            _ if keras_module(path) => {}
            Verdict::Allowed { .. } => {}
            Verdict::Unknown => self.push(
                &rules::KER002,
                None,
                format!("{what} `{path}` comes from outside Keras and is not on any allowlist"),
                path.to_owned(),
            ),
        }
    }

    fn walk(&mut self, v: &Value, depth: u32, in_lambda: bool) {
        if depth > 128 {
            return;
        }
        match v {
            Value::Array(items) => items.iter().for_each(|i| self.walk(i, depth + 1, in_lambda)),
            Value::Object(obj) => {
                let class = obj.get("class_name").and_then(Value::as_str).unwrap_or("");
                let module = obj.get("module").and_then(Value::as_str).unwrap_or("");
                let name = obj
                    .get("config")
                    .and_then(|c| c.get("name"))
                    .and_then(Value::as_str)
                    .or_else(|| obj.get("name").and_then(Value::as_str))
                    .unwrap_or("?");
                match class {
                    // A `__lambda__` inside a `Lambda` layer is the same finding.
                    "__lambda__" if in_lambda => {}
                    "Lambda" | "__lambda__" => {
                        let bytecode = obj
                            .get("config")
                            .and_then(|c| c.get("function"))
                            .map(|f| {
                                f.get("class_name").and_then(Value::as_str) == Some("__lambda__")
                                    || f.is_array()
                                    || f.get("config").and_then(|c| c.get("code")).is_some()
                            })
                            .unwrap_or(class == "__lambda__");
                        let what = if bytecode {
                            "marshalled Python bytecode"
                        } else {
                            "a Python function reference"
                        };
                        self.push(
                            &rules::KER001,
                            if bytecode { None } else { Some(Severity::High) },
                            format!(
                                "Lambda layer `{name}` carries {what}, which runs when the model is loaded or called"
                            ),
                            format!("layer {name}"),
                        );
                    }
                    "TFOpLambda" => {
                        let f = obj
                            .get("config")
                            .and_then(|c| c.get("function"))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        if TF_OP_DENYLIST.iter().any(|d| f.contains(d)) {
                            self.push(
                                &rules::KER002,
                                Some(Severity::Critical),
                                format!("TFOpLambda layer `{name}` calls `tf.{f}`, which touches files or runs Python"),
                                format!("tf.{f}"),
                            );
                        }
                    }
                    _ => {}
                }
                if class == "function" {
                    if let Some(fname) = obj.get("config").and_then(Value::as_str) {
                        let path = if module.is_empty() {
                            fname.to_owned()
                        } else {
                            format!("{module}.{fname}")
                        };
                        self.judge(&path, "function");
                    }
                } else if !module.is_empty() && !class.is_empty() {
                    self.judge(&format!("{module}.{class}"), "class");
                }
                if let Some(reg) = obj.get("registered_name").and_then(Value::as_str) {
                    if reg.contains('>') {
                        self.push(
                            &rules::KER003,
                            None,
                            format!("object `{name}` is a custom registered class `{reg}`: loading needs code from outside the model file"),
                            reg.to_owned(),
                        );
                    }
                }
                let in_lambda = in_lambda || class == "Lambda";
                for (_, child) in obj {
                    self.walk(child, depth + 1, in_lambda);
                }
            }
            _ => {}
        }
    }
}

/// Judges a Keras model configuration.
pub fn check_config(config: &Value, policy: &Policy, loc: &Location, report: &mut FileReport) {
    Walker { loc, policy, report }.walk(config, 0, false);
}

/// HDF5 files start with this signature (at offset 0, 512, 1024, … when a user block
/// precedes it).
pub const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Finds the Keras `model_config` JSON inside HDF5 bytes. Not an HDF5 parser: the
/// attribute's value is stored contiguously, so the first JSON object that parses and
/// looks like a Keras model (`class_name` + `config`) is taken.
pub fn find_h5_model_config(bytes: &[u8]) -> Option<Value> {
    let needle = b"{\"class_name\"";
    let mut from = 0;
    while let Some(i) = bytes[from..].windows(needle.len()).position(|w| w == needle) {
        let start = from + i;
        let mut stream = serde_json::Deserializer::from_slice(&bytes[start..]).into_iter::<Value>();
        if let Some(Ok(v)) = stream.next() {
            if v.get("config").is_some() {
                return Some(v);
            }
        }
        from = start + 1;
    }
    None
}
