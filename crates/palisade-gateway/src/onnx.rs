//! Native ONNX models run with tract: loading (from bytes the registry has verified), the
//! model's signature (input and output names, element types, shapes with symbolic
//! dimensions), validation of requests against it and against an attached data profile,
//! and inference. Tensors arrive and leave as Open Inference Protocol v2 JSON.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tract_onnx::prelude::*;

/// Most elements one request may send in all its inputs.
pub const MAX_ELEMENTS: usize = 4 << 20;

/// Open Inference Protocol element types Palisade accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl Dtype {
    pub fn oip(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "UINT8",
            Dtype::U16 => "UINT16",
            Dtype::U32 => "UINT32",
            Dtype::U64 => "UINT64",
            Dtype::I8 => "INT8",
            Dtype::I16 => "INT16",
            Dtype::I32 => "INT32",
            Dtype::I64 => "INT64",
            Dtype::F32 => "FP32",
            Dtype::F64 => "FP64",
        }
    }

    pub fn from_oip(s: &str) -> Option<Dtype> {
        Some(match s {
            "BOOL" => Dtype::Bool,
            "UINT8" => Dtype::U8,
            "UINT16" => Dtype::U16,
            "UINT32" => Dtype::U32,
            "UINT64" => Dtype::U64,
            "INT8" => Dtype::I8,
            "INT16" => Dtype::I16,
            "INT32" => Dtype::I32,
            "INT64" => Dtype::I64,
            "FP32" => Dtype::F32,
            "FP64" => Dtype::F64,
            _ => return None,
        })
    }

    fn from_tract(dt: DatumType) -> Option<Dtype> {
        Some(match dt {
            DatumType::Bool => Dtype::Bool,
            DatumType::U8 => Dtype::U8,
            DatumType::U16 => Dtype::U16,
            DatumType::U32 => Dtype::U32,
            DatumType::U64 => Dtype::U64,
            DatumType::I8 => Dtype::I8,
            DatumType::I16 => Dtype::I16,
            DatumType::I32 => Dtype::I32,
            DatumType::I64 => Dtype::I64,
            DatumType::F32 => Dtype::F32,
            DatumType::F64 => Dtype::F64,
            _ => return None,
        })
    }

    fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64)
    }
}

/// One input or output of a model's signature. `-1` marks a dimension the model leaves
/// open (the batch, usually).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
    #[serde(skip)]
    pub dtype: Dtype,
}

/// Per-feature value ranges of what the model was trained on (`profile.json` pushed with
/// the model): `{"inputs": {"<name>": {"min": [...], "max": [...]}}, "tolerance": 0.1}`.
/// Features are along the last axis. A value outside `[min − t·(max − min), max +
/// t·(max − min)]` is refused when the model's `enforce_profile` is on.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub inputs: HashMap<String, Range>,
    #[serde(default)]
    pub tolerance: f64,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

type Plan = std::sync::Arc<TypedRunnableModel>;

pub struct OnnxModel {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub profile: Option<Profile>,
    plan: Plan,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

/// Why a request does not fit the model.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn spec(name: String, fact: &TypedFact) -> Result<TensorSpec, String> {
    let dtype = Dtype::from_tract(fact.datum_type).ok_or_else(|| {
        format!(
            "`{name}` has element type {:?}, which the gateway does not serve",
            fact.datum_type
        )
    })?;
    let shape = fact.shape.iter().map(|d| d.to_i64().unwrap_or(-1)).collect();
    Ok(TensorSpec {
        name,
        datatype: dtype.oip(),
        shape,
        dtype,
    })
}

impl OnnxModel {
    /// Loads an ONNX model from memory (never from a path: external data is refused) and
    /// prepares it for inference. A model tract cannot run is an error, not a panic.
    pub fn load(bytes: &[u8], profile: Option<Profile>) -> Result<OnnxModel, String> {
        let built = std::panic::catch_unwind(AssertUnwindSafe(
            || -> TractResult<(Vec<TensorSpec>, Vec<TensorSpec>, Plan)> {
                let model = tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(bytes))?;
                let typed = model.into_typed()?.into_decluttered()?;
                let mut inputs = Vec::new();
                for (i, outlet) in typed.input_outlets()?.iter().enumerate() {
                    let name = typed.node(outlet.node).name.clone();
                    inputs.push(spec(name, typed.input_fact(i)?).map_err(TractError::msg)?);
                }
                let mut outputs = Vec::new();
                for (i, outlet) in typed.output_outlets()?.iter().enumerate() {
                    let name = typed
                        .outlet_label(*outlet)
                        .map(str::to_owned)
                        .unwrap_or_else(|| typed.node(outlet.node).name.clone());
                    outputs.push(spec(name, typed.output_fact(i)?).map_err(TractError::msg)?);
                }
                let plan = typed.into_optimized()?.into_runnable()?;
                Ok((inputs, outputs, plan))
            },
        ));
        let (inputs, outputs, plan) = match built {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(format!("cannot load the ONNX model: {e}")),
            Err(_) => return Err("cannot load the ONNX model: the runtime failed on it".into()),
        };
        if let Some(p) = &profile {
            for (name, r) in &p.inputs {
                let Some(input) = inputs.iter().find(|i| &i.name == name) else {
                    return Err(format!(
                        "the data profile names input `{name}`, which the model does not have"
                    ));
                };
                if r.min.len() != r.max.len() || r.min.is_empty() {
                    return Err(format!(
                        "the data profile of `{name}`: min and max need the same, non-zero length"
                    ));
                }
                if let Some(&last) = input.shape.last() {
                    if last >= 0 && last as usize != r.min.len() {
                        return Err(format!(
                            "the data profile of `{name}` has {} features; the model's last dimension is {last}",
                            r.min.len()
                        ));
                    }
                }
            }
        }
        Ok(OnnxModel {
            inputs,
            outputs,
            profile,
            plan,
        })
    }

    /// Validates a request's tensors and runs the model. `wanted`: the outputs to return
    /// (all when empty).
    pub fn infer(
        &self,
        request: &[InputTensor],
        wanted: &[String],
        max_batch: usize,
        enforce_profile: bool,
    ) -> Result<Vec<OutputTensor>, InferError> {
        let tensors = self
            .validate(request, max_batch, enforce_profile)
            .map_err(InferError::Invalid)?;
        for w in wanted {
            if !self.outputs.iter().any(|o| &o.name == w) {
                return Err(InferError::Invalid(Invalid(format!("the model has no output `{w}`"))));
            }
        }
        let inputs: TVec<TValue> = tensors.into_iter().map(TValue::from).collect();
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| self.plan.run(inputs)));
        let outputs = match run {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(InferError::Run(e.to_string())),
            Err(_) => return Err(InferError::Run("the runtime failed on this input".into())),
        };
        let mut out = Vec::new();
        for (spec, t) in self.outputs.iter().zip(outputs.iter()) {
            if !wanted.is_empty() && !wanted.contains(&spec.name) {
                continue;
            }
            out.push(to_output(&spec.name, t).map_err(InferError::Run)?);
        }
        Ok(out)
    }

    fn validate(
        &self,
        request: &[InputTensor],
        max_batch: usize,
        enforce_profile: bool,
    ) -> Result<Vec<Tensor>, Invalid> {
        let bad = |s: String| Err(Invalid(s));
        let mut seen = std::collections::HashSet::new();
        for t in request {
            if !seen.insert(t.name.as_str()) {
                return bad(format!("input `{}` is given twice", t.name));
            }
            if !self.inputs.iter().any(|i| i.name == t.name) {
                let names: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
                return bad(format!(
                    "the model has no input `{}` (inputs: {})",
                    t.name,
                    names.join(", ")
                ));
            }
        }
        let mut total = 0usize;
        let mut out = Vec::with_capacity(self.inputs.len());
        let mut batch: Option<usize> = None;
        for spec in &self.inputs {
            let Some(t) = request.iter().find(|t| t.name == spec.name) else {
                return bad(format!("input `{}` is missing", spec.name));
            };
            let Some(dtype) = Dtype::from_oip(&t.datatype) else {
                return bad(format!("input `{}`: unsupported datatype {:?}", spec.name, t.datatype));
            };
            if dtype != spec.dtype {
                return bad(format!(
                    "input `{}`: datatype {} does not match the model's {}",
                    spec.name, t.datatype, spec.datatype
                ));
            }
            if t.shape.len() != spec.shape.len() {
                return bad(format!(
                    "input `{}`: shape {:?} has {} dimensions; the model expects {:?}",
                    spec.name,
                    t.shape,
                    t.shape.len(),
                    spec.shape
                ));
            }
            for (axis, (&got, &want)) in t.shape.iter().zip(&spec.shape).enumerate() {
                if want >= 0 && got != want as u64 {
                    return bad(format!(
                        "input `{}`: dimension {axis} is {got}; the model expects {want} (shape {:?})",
                        spec.name, spec.shape
                    ));
                }
                if got == 0 {
                    return bad(format!("input `{}`: dimension {axis} is 0", spec.name));
                }
            }
            if let Some(&b) = t.shape.first() {
                let b = usize::try_from(b).unwrap_or(usize::MAX);
                if b > max_batch {
                    return bad(format!(
                        "input `{}`: batch of {b} is over this model's limit of {max_batch}",
                        spec.name
                    ));
                }
                if spec.shape.first() == Some(&-1) {
                    if let Some(prev) = batch {
                        if prev != b {
                            return bad(format!("inputs disagree on the batch size ({prev} and {b})"));
                        }
                    }
                    batch = Some(b);
                }
            }
            let count = t
                .shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
                .filter(|&n| n <= MAX_ELEMENTS)
                .ok_or_else(|| Invalid(format!("input `{}`: more than {MAX_ELEMENTS} elements", spec.name)))?;
            total += count;
            if total > MAX_ELEMENTS {
                return bad(format!("the request has more than {MAX_ELEMENTS} elements"));
            }
            let mut flat = Vec::with_capacity(count.min(1 << 16));
            flatten(&t.data, t.shape.len(), &mut flat, count)
                .map_err(|e| Invalid(format!("input `{}`: {e}", spec.name)))?;
            if flat.len() != count {
                return bad(format!(
                    "input `{}`: {} values for shape {:?} ({count} expected)",
                    spec.name,
                    flat.len(),
                    t.shape
                ));
            }
            if enforce_profile {
                if let Some(range) = self
                    .profile
                    .as_ref()
                    .and_then(|p| p.inputs.get(&spec.name).map(|r| (r, p.tolerance)))
                {
                    check_range(&spec.name, &flat, range.0, range.1)?;
                }
            }
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            out.push(to_tensor(&spec.name, dtype, &shape, &flat)?);
        }
        Ok(out)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Invalid(Invalid),
    #[error("inference failed: {0}")]
    Run(String),
}

/// One tensor of an inference request (`inputs[]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    pub data: Value,
}

/// One tensor of an inference response (`outputs[]`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OutputTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: &'static str,
    pub data: Vec<Value>,
}

/// Flattens row-major `data` (flat, or nested up to `rank` levels) into `out`, stopping
/// past `limit` values.
fn flatten<'a>(data: &'a Value, rank: usize, out: &mut Vec<&'a Value>, limit: usize) -> Result<(), String> {
    match data {
        Value::Array(items) => {
            for item in items {
                if out.len() > limit {
                    return Err("more values than the shape holds".into());
                }
                match item {
                    Value::Array(_) if rank > 1 => flatten(item, rank - 1, out, limit)?,
                    Value::Array(_) => return Err("data is nested deeper than the shape".into()),
                    Value::Object(_) => return Err("data holds an object".into()),
                    v => out.push(v),
                }
            }
            Ok(())
        }
        v if rank == 0 => {
            out.push(v);
            Ok(())
        }
        _ => Err("data must be an array".into()),
    }
}

fn check_range(name: &str, flat: &[&Value], r: &Range, tolerance: f64) -> Result<(), Invalid> {
    let n = r.min.len();
    for (i, v) in flat.iter().enumerate() {
        let f = i % n;
        let Some(x) = v.as_f64() else { continue };
        let slack = tolerance.max(0.0) * (r.max[f] - r.min[f]).abs();
        if x < r.min[f] - slack || x > r.max[f] + slack {
            return Err(Invalid(format!(
                "input `{name}`: value {x} of feature {f} is outside the model's data profile [{}, {}]",
                r.min[f], r.max[f]
            )));
        }
    }
    Ok(())
}

fn to_tensor(name: &str, dtype: Dtype, shape: &[usize], flat: &[&Value]) -> Result<Tensor, Invalid> {
    fn ints<T: Datum + Copy + TryFrom<i64> + TryFrom<u64>>(
        name: &str,
        oip: &str,
        shape: &[usize],
        flat: &[&Value],
    ) -> Result<Tensor, Invalid> {
        let mut v = Vec::with_capacity(flat.len());
        for (i, x) in flat.iter().enumerate() {
            let parsed = match (x.as_i64(), x.as_u64()) {
                (Some(n), _) => T::try_from(n).ok(),
                (None, Some(n)) => T::try_from(n).ok(),
                _ => None,
            };
            v.push(parsed.ok_or_else(|| Invalid(format!("input `{name}`: value {i} ({x}) is not a valid {oip}")))?);
        }
        Tensor::from_shape(shape, &v).map_err(|e| Invalid(format!("input `{name}`: {e}")))
    }
    let oip = dtype.oip();
    match dtype {
        Dtype::Bool => {
            let mut v = Vec::with_capacity(flat.len());
            for (i, x) in flat.iter().enumerate() {
                v.push(
                    x.as_bool()
                        .ok_or_else(|| Invalid(format!("input `{name}`: value {i} ({x}) is not a BOOL")))?,
                );
            }
            Tensor::from_shape(shape, &v).map_err(|e| Invalid(format!("input `{name}`: {e}")))
        }
        Dtype::U8 => ints::<u8>(name, oip, shape, flat),
        Dtype::U16 => ints::<u16>(name, oip, shape, flat),
        Dtype::U32 => ints::<u32>(name, oip, shape, flat),
        Dtype::U64 => ints::<u64>(name, oip, shape, flat),
        Dtype::I8 => ints::<i8>(name, oip, shape, flat),
        Dtype::I16 => ints::<i16>(name, oip, shape, flat),
        Dtype::I32 => ints::<i32>(name, oip, shape, flat),
        Dtype::I64 => ints::<i64>(name, oip, shape, flat),
        Dtype::F32 | Dtype::F64 => {
            let mut v = Vec::with_capacity(flat.len());
            for (i, x) in flat.iter().enumerate() {
                let f = x
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| Invalid(format!("input `{name}`: value {i} ({x}) is not a finite {oip}")))?;
                if dtype == Dtype::F32 && f.abs() > f64::from(f32::MAX) {
                    return Err(Invalid(format!("input `{name}`: value {i} ({x}) does not fit FP32")));
                }
                v.push(f);
            }
            if dtype == Dtype::F32 {
                let v: Vec<f32> = v.iter().map(|&f| f as f32).collect();
                Tensor::from_shape(shape, &v)
            } else {
                Tensor::from_shape(shape, &v)
            }
            .map_err(|e| Invalid(format!("input `{name}`: {e}")))
        }
    }
}

fn to_output(name: &str, t: &Tensor) -> Result<OutputTensor, String> {
    fn nums<T: Datum + Copy>(t: &Tensor, f: impl Fn(T) -> Value) -> Result<Vec<Value>, String> {
        let view = t.try_as_plain_ram().map_err(|e| e.to_string())?;
        Ok(view
            .as_slice::<T>()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|&x| f(x))
            .collect())
    }
    let float = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    let dtype = Dtype::from_tract(t.datum_type())
        .ok_or_else(|| format!("output `{name}` has element type {:?}", t.datum_type()))?;
    let data = match dtype {
        Dtype::Bool => nums::<bool>(t, Value::Bool)?,
        Dtype::U8 => nums::<u8>(t, Value::from)?,
        Dtype::U16 => nums::<u16>(t, Value::from)?,
        Dtype::U32 => nums::<u32>(t, Value::from)?,
        Dtype::U64 => nums::<u64>(t, Value::from)?,
        Dtype::I8 => nums::<i8>(t, Value::from)?,
        Dtype::I16 => nums::<i16>(t, Value::from)?,
        Dtype::I32 => nums::<i32>(t, Value::from)?,
        Dtype::I64 => nums::<i64>(t, Value::from)?,
        Dtype::F32 => nums::<f32>(t, |x| float(f64::from(x)))?,
        Dtype::F64 => nums::<f64>(t, float)?,
    };
    debug_assert!(!dtype.is_float() || data.len() == t.len());
    Ok(OutputTensor {
        name: name.to_owned(),
        shape: t.shape().to_vec(),
        datatype: dtype.oip(),
        data,
    })
}
