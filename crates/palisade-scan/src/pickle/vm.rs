//! A symbolic pickle machine that follows CPython's `_pickle.c` Unpickler opcode by opcode
//! without importing or calling anything. Imports become [`V::Global`] values; calls
//! become [`V::Object`] values that remember what was called. Every import and call is
//! recorded in [`Vm::imports`] for judgement, and anomalies in [`Vm::anomalies`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use super::ops::{Opcode, HIGHEST_PROTOCOL};
use super::policy::{Judgement, Policy, Verdict};
use super::reader::{decode_utf8_surrogatepass, Arg, Op};

/// Items kept per container for evidence and argument inspection; the rest are counted.
const KEEP_ITEMS: usize = 64;

#[derive(Clone, Copy, Debug)]
pub struct VmLimits {
    pub max_stack: usize,
    pub max_marks: usize,
    pub max_memo: usize,
}

impl Default for VmLimits {
    fn default() -> Self {
        VmLimits {
            max_stack: 4 << 20,
            max_marks: 1 << 16,
            max_memo: 4 << 20,
        }
    }
}

#[derive(Debug)]
pub struct StrVal {
    pub value: String,
    pub truncated: bool,
}

#[derive(Debug, Default)]
pub struct Container {
    pub items: RefCell<Vec<V>>,
    pub len: std::cell::Cell<u64>,
    /// Registered in `Vm::may_cycle` (it holds reference-counted values).
    registered: std::cell::Cell<bool>,
}

impl Container {
    fn push(&self, v: V) {
        self.len.set(self.len.get() + 1);
        let mut items = self.items.borrow_mut();
        if items.len() < KEEP_ITEMS {
            items.push(v);
        }
    }

    /// Appends many values: all are counted, the first `KEEP_ITEMS` kept. Returns whether
    /// a kept value holds reference-counted values.
    fn extend(&self, values: Vec<V>) -> bool {
        self.len.set(self.len.get() + values.len() as u64);
        let mut items = self.items.borrow_mut();
        let room = KEEP_ITEMS.saturating_sub(items.len());
        let before = items.len();
        items.extend(values.into_iter().take(room));
        items[before..].iter().any(holds_rc)
    }
}

#[derive(Debug)]
pub struct Object {
    /// The imported path that was called to make this object, when known.
    pub class: Option<String>,
    pub args: Vec<V>,
    pub state: RefCell<Option<V>>,
}

/// A symbolic value.
#[derive(Clone, Debug)]
pub enum V {
    None,
    Bool(bool),
    Int(i128),
    BigInt,
    Float(f64),
    Str(Rc<StrVal>),
    Bytes {
        head: Rc<[u8]>,
        len: u64,
    },
    Tuple(Rc<Vec<V>>),
    List(Rc<Container>),
    Dict(Rc<Container>),
    Set(Rc<Container>),
    /// An imported name (index into `Vm::imports`).
    Global(usize),
    /// The result of a call.
    Object(Rc<Object>),
    /// `operator.attrgetter(...)`, `operator.methodcaller(...)`, `functools.partial(...)`.
    Getter {
        attrs: Rc<Vec<String>>,
        call_args: Option<Rc<Vec<V>>>,
    },
    Partial {
        func: Box<V>,
        args: Rc<Vec<V>>,
    },
    /// Something the machine cannot model (a persistent load, a buffer).
    Opaque(&'static str),
}

impl V {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            V::Str(s) if !s.truncated => Some(&s.value),
            _ => None,
        }
    }
}

/// One imported path with what happened to it.
#[derive(Debug, Clone)]
pub struct Import {
    pub judgement: Judgement,
    /// How it was obtained: `GLOBAL`, `STACK_GLOBAL`, `INST`, `getattr`, …
    pub via: &'static str,
    pub pos: u64,
    pub invoked_at: Option<u64>,
    pub calls: u32,
    pub evidence: Option<String>,
}

/// Which detector an anomaly belongs to (mapped to rules by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnomalyKind {
    Unresolvable,
    GlobalMutation,
    ExtensionCode,
    MemoReuse,
}

#[derive(Debug, Clone)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub pos: u64,
    pub message: String,
    pub evidence: Option<String>,
    /// True when the anomalous value is also called.
    pub invoked: bool,
}

/// Why a stream stopped before STOP. CPython would raise at this point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub pos: u64,
    pub message: String,
}

/// Budget exhaustion: analysis stops, the result is incomplete (not malicious).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted(pub String);

#[derive(Debug)]
pub enum StepError {
    Broken(Broken),
    Exhausted(Exhausted),
}

/// What the driver must do after a step.
#[derive(Debug)]
pub enum Step {
    Continue,
    Stop(V),
    /// joblib wrote an array's bytes right after this BUILD.
    InlineArray(InlineArray),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InlineArray {
    /// `bytes` of raw data, preceded by a padding byte and padding when `aligned`.
    Raw { bytes: u64, aligned: bool },
    /// An object array: a complete nested pickle follows.
    Pickle,
    /// The wrapper's state did not say how long the data is.
    Unknown(String),
}

pub struct Vm<'p> {
    policy: &'p Policy,
    limits: VmLimits,
    pub proto: u8,
    stack: Vec<V>,
    marks: Vec<Vec<V>>,
    memo: HashMap<u64, V>,
    pub imports: Vec<Import>,
    by_path: HashMap<String, usize>,
    pub anomalies: Vec<Anomaly>,
    pub ops: u64,
    /// Extension codes registered by `copyreg.add_extension` calls in this stream.
    extensions: HashMap<i128, usize>,
    /// Mutable values that were given reference-counted values after creation: the only
    /// places a reference cycle can close (`l.append(l)`, an object whose state holds
    /// it). Cleared when the machine is dropped so cycles do not leak.
    may_cycle: Vec<V>,
}

impl Drop for Vm<'_> {
    fn drop(&mut self) {
        for v in self.may_cycle.drain(..) {
            match v {
                V::List(c) | V::Dict(c) | V::Set(c) => c.items.borrow_mut().clear(),
                V::Object(o) => *o.state.borrow_mut() = None,
                _ => {}
            }
        }
    }
}

/// Does a value hold reference-counted values that could close a cycle?
fn holds_rc(v: &V) -> bool {
    match v {
        V::List(_) | V::Dict(_) | V::Set(_) | V::Object(_) | V::Partial { .. } | V::Getter { .. } => true,
        V::Tuple(items) => items.iter().any(holds_rc),
        _ => false,
    }
}

fn broken(pos: u64, message: impl Into<String>) -> StepError {
    StepError::Broken(Broken {
        pos,
        message: message.into(),
    })
}

impl<'p> Vm<'p> {
    pub fn new(policy: &'p Policy, limits: VmLimits) -> Self {
        Vm {
            policy,
            limits,
            proto: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            imports: Vec::new(),
            by_path: HashMap::new(),
            anomalies: Vec::new(),
            ops: 0,
            extensions: HashMap::new(),
            may_cycle: Vec::new(),
        }
    }

    /// Resets per-pickle state for the next pickle in the same stream, keeping nothing:
    /// each `pickle.load` call starts with a fresh memo.
    pub fn reset(&mut self) {
        self.proto = 0;
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
    }

    pub fn import_path(&self, v: &V) -> Option<&str> {
        match v {
            V::Global(i) => self.imports.get(*i).map(|imp| imp.judgement.path.as_str()),
            _ => None,
        }
    }

    #[inline(always)]
    fn push(&mut self, pos: u64, v: V) -> Result<(), StepError> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(self.stack_exhausted(pos));
        }
        self.stack.push(v);
        Ok(())
    }

    #[cold]
    fn stack_exhausted(&self, pos: u64) -> StepError {
        StepError::Exhausted(Exhausted(format!(
            "pickle stack exceeds {} items at offset {pos}",
            self.limits.max_stack
        )))
    }

    fn pop(&mut self, pos: u64) -> Result<V, StepError> {
        self.stack.pop().ok_or_else(|| broken(pos, "stack underflow"))
    }

    fn top(&self, pos: u64) -> Result<&V, StepError> {
        self.stack.last().ok_or_else(|| broken(pos, "stack underflow"))
    }

    fn pop_mark(&mut self, pos: u64) -> Result<Vec<V>, StepError> {
        let below = self.marks.pop().ok_or_else(|| broken(pos, "could not find MARK"))?;
        Ok(std::mem::replace(&mut self.stack, below))
    }

    /// Records (or finds) the import of `path` and returns its `V::Global`.
    fn import(&mut self, module: &str, name: &str, via: &'static str, pos: u64) -> V {
        let judgement = self.policy.judge(module, name);
        self.import_judged(judgement, via, pos)
    }

    fn import_judged(&mut self, judgement: Judgement, via: &'static str, pos: u64) -> V {
        if let Some(&i) = self.by_path.get(&judgement.path) {
            return V::Global(i);
        }
        let i = self.imports.len();
        self.by_path.insert(judgement.path.clone(), i);
        self.imports.push(Import {
            judgement,
            via,
            pos,
            invoked_at: None,
            calls: 0,
            evidence: None,
        });
        V::Global(i)
    }

    /// An attribute of an imported value (`getattr(os, "system")`).
    fn derived(&mut self, base: usize, attr: &str, via: &'static str, pos: u64) -> V {
        let base_path = self.imports[base].judgement.path.clone();
        let module_segments = base_path.split('.').count().min(1);
        let path = format!("{base_path}.{attr}");
        let verdict = self.policy.judge_path(&path, module_segments);
        self.import_judged(Judgement { path, verdict }, via, pos)
    }

    fn anomaly(&mut self, kind: AnomalyKind, pos: u64, message: String, evidence: Option<String>, invoked: bool) {
        self.anomalies.push(Anomaly {
            kind,
            pos,
            message,
            evidence,
            invoked,
        });
    }

    pub fn repr(&self, v: &V, out: &mut String, depth: u32) {
        if out.len() > 240 {
            return;
        }
        match v {
            V::None => out.push_str("None"),
            V::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
            V::Int(i) => {
                let _ = write!(out, "{i}");
            }
            V::BigInt => out.push_str("<big int>"),
            V::Float(f) => {
                let _ = write!(out, "{f}");
            }
            V::Str(s) => {
                let head: String = s.value.chars().take(120).collect();
                let _ = write!(out, "{head:?}");
                if s.truncated || s.value.chars().count() > 120 {
                    out.push('…');
                }
            }
            V::Bytes { head, len } => {
                out.push_str("b'");
                for b in head.iter().take(48) {
                    match b {
                        0x20..=0x7e if *b != b'\'' && *b != b'\\' => out.push(char::from(*b)),
                        _ => {
                            let _ = write!(out, "\\x{b:02x}");
                        }
                    }
                }
                out.push('\'');
                if *len > 48 {
                    let _ = write!(out, "…({len} bytes)");
                }
            }
            V::Tuple(items) => {
                out.push('(');
                self.repr_items(items, out, depth);
                if items.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            V::List(c) | V::Set(c) | V::Dict(c) => {
                let (open, close) = match v {
                    V::List(_) => ('[', ']'),
                    _ => ('{', '}'),
                };
                out.push(open);
                if depth < 3 {
                    self.repr_items(&c.items.borrow(), out, depth);
                }
                if c.len.get() as usize > c.items.borrow().len() || depth >= 3 {
                    let _ = write!(out, "…{} items", c.len.get());
                }
                out.push(close);
            }
            V::Global(i) => out.push_str(self.imports.get(*i).map_or("?", |imp| imp.judgement.path.as_str())),
            V::Object(o) => {
                let _ = write!(out, "{}(…)", o.class.as_deref().unwrap_or("<dynamic>"));
            }
            V::Getter { attrs, .. } => {
                let _ = write!(out, "<getter {}>", attrs.join("."));
            }
            V::Partial { func, .. } => {
                out.push_str("partial(");
                self.repr(func, out, depth + 1);
                out.push(')');
            }
            V::Opaque(what) => {
                let _ = write!(out, "<{what}>");
            }
        }
    }

    fn repr_items(&self, items: &[V], out: &mut String, depth: u32) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if out.len() > 240 {
                out.push('…');
                break;
            }
            self.repr(item, out, depth + 1);
        }
    }

    fn call_evidence(&self, callee: &str, args: &[V]) -> String {
        let mut s = format!("{callee}(");
        self.repr_items(args, &mut s, 0);
        s.push(')');
        s
    }

    fn mark_invoked(&mut self, idx: usize, pos: u64, args: &[V]) {
        let evidence = self.call_evidence(&self.imports[idx].judgement.path, args);
        let imp = &mut self.imports[idx];
        imp.calls += 1;
        if imp.invoked_at.is_none() {
            imp.invoked_at = Some(pos);
            imp.evidence = Some(evidence);
        }
    }

    /// Models calling `callee(*args)`; returns the result.
    fn call(&mut self, callee: &V, args: Vec<V>, pos: u64, how: &'static str) -> V {
        match callee {
            V::Global(idx) => {
                let idx = *idx;
                self.mark_invoked(idx, pos, &args);
                let path = self.imports[idx].judgement.path.clone();
                self.call_known(&path, args, pos)
            }
            V::Getter { attrs, call_args } => {
                // attrgetter(...)(obj) / methodcaller(...)(obj)
                let Some(V::Global(base)) = args.first() else {
                    return V::Opaque("attribute of a dynamic object");
                };
                let mut v = V::Global(*base);
                for attr in attrs.iter() {
                    if let V::Global(b) = v {
                        v = self.derived(b, attr, "operator.attrgetter", pos);
                    }
                }
                match call_args {
                    Some(cargs) => {
                        let cargs = cargs.as_ref().clone();
                        self.call(&v, cargs, pos, "operator.methodcaller")
                    }
                    None => v,
                }
            }
            V::Partial { func, args: bound } => {
                let mut all = bound.as_ref().clone();
                all.extend(args);
                let func = func.as_ref().clone();
                self.call(&func, all, pos, "functools.partial")
            }
            other => {
                let mut what = String::new();
                self.repr(other, &mut what, 0);
                let evidence = self.call_evidence(&what, &args);
                self.anomaly(
                    AnomalyKind::Unresolvable,
                    pos,
                    format!("{how} calls a value that is not an imported name ({what}); its target cannot be resolved statically"),
                    Some(evidence),
                    true,
                );
                V::Opaque("result of a dynamic call")
            }
        }
    }

    /// Semantics of callables that resolve or forward to other callables.
    fn call_known(&mut self, path: &str, args: Vec<V>, pos: u64) -> V {
        let str_arg = |i: usize| args.get(i).and_then(V::as_str).map(str::to_owned);
        // `M.__dict__.get(name)`, `M.__builtins__.get(name)`, `f.__globals__[name]`: a
        // namespace lookup resolves to that name.
        if let Some((ns, _)) = path.rsplit_once(".get").or_else(|| path.rsplit_once(".__getitem__")) {
            if let (Some(base), Some(name)) = (ns.rsplit_once('.'), str_arg(0)) {
                let (owner, dunder) = base;
                if matches!(dunder, "__dict__" | "__builtins__" | "__globals__") && !path.ends_with("get_") {
                    let owner = if dunder == "__builtins__" { "builtins" } else { owner };
                    let module_segments = owner.split('.').count();
                    let full = format!("{owner}.{name}");
                    let verdict = self.policy.judge_path(&full, module_segments);
                    return self.import_judged(Judgement { path: full, verdict }, "namespace lookup", pos);
                }
            }
        }
        match path {
            "builtins.getattr" => match (args.first(), str_arg(1)) {
                (Some(V::Global(b)), Some(attr)) => return self.derived(*b, &attr, "builtins.getattr", pos),
                _ => return V::Opaque("attribute of a dynamic object"),
            },
            "builtins.__import__" | "importlib.import_module" | "importlib.__import__" => {
                if let Some(m) = str_arg(0) {
                    return self.import(&m, "", path_via(path), pos);
                }
                self.unresolvable_operands(pos, path, &args);
                return V::Opaque("dynamically imported module");
            }
            "numpy.core._ufunc_reconstruct" | "numpy._core._ufunc_reconstruct" => {
                if let (Some(m), Some(n)) = (str_arg(0), str_arg(1)) {
                    return self.import(&m, &n, "numpy._ufunc_reconstruct", pos);
                }
                self.unresolvable_operands(pos, path, &args);
                return V::Opaque("dynamically resolved name");
            }
            "pkgutil.resolve_name" | "pydoc.locate" => {
                if let Some(spec) = str_arg(0) {
                    let (m, n) = match spec.split_once(':') {
                        Some((m, n)) => (m.to_owned(), n.to_owned()),
                        None => (spec.clone(), String::new()),
                    };
                    return self.import(&m, &n, "pkgutil.resolve_name", pos);
                }
                self.unresolvable_operands(pos, path, &args);
                return V::Opaque("dynamically resolved name");
            }
            "copyreg.add_extension" => {
                if let (Some(m), Some(n), Some(V::Int(code))) = (str_arg(0), str_arg(1), args.get(2)) {
                    let code = *code;
                    if let V::Global(g) = self.import(&m, &n, "copyreg.add_extension", pos) {
                        self.extensions.insert(code, g);
                    }
                }
            }
            "operator.attrgetter" | "_operator.attrgetter" => {
                let attrs: Vec<String> = args
                    .iter()
                    .filter_map(V::as_str)
                    .flat_map(|s| s.split('.').map(str::to_owned).collect::<Vec<_>>())
                    .collect();
                return V::Getter {
                    attrs: Rc::new(attrs),
                    call_args: None,
                };
            }
            "operator.methodcaller" | "_operator.methodcaller" => {
                if let Some(name) = str_arg(0) {
                    return V::Getter {
                        attrs: Rc::new(vec![name]),
                        call_args: Some(Rc::new(args.iter().skip(1).cloned().collect())),
                    };
                }
                return V::Opaque("method caller");
            }
            "functools.partial" | "_functools.partial" => {
                if let Some(func) = args.first() {
                    return V::Partial {
                        func: Box::new(func.clone()),
                        args: Rc::new(args[1..].to_vec()),
                    };
                }
            }
            // Forwarders: they call their first argument.
            "copyreg._reconstructor"
            | "copyreg.__newobj__"
            | "copyreg.__newobj_ex__"
            | "torch._utils._rebuild_from_type"
            | "torch._utils._rebuild_from_type_v2"
            | "torch._tensor._rebuild_from_type"
            | "torch._tensor._rebuild_from_type_v2"
            | "builtins.apply"
            | "builtins.map"
            | "builtins.filter"
            | "functools.reduce"
            | "itertools.starmap" => {
                if let Some(first) = args.first().cloned() {
                    let inner_args = match (path, args.get(2)) {
                        (
                            "torch._utils._rebuild_from_type_v2" | "torch._tensor._rebuild_from_type_v2",
                            Some(V::Tuple(t)),
                        ) => t.as_ref().clone(),
                        _ => args[1..].to_vec(),
                    };
                    if matches!(first, V::Global(_) | V::Partial { .. } | V::Getter { .. }) {
                        let result = self.call(&first, inner_args, pos, "forwarded call");
                        if let V::Object(_) | V::Opaque(_) = result {
                            return V::Object(Rc::new(Object {
                                class: self.import_path(&first).map(str::to_owned),
                                args: Vec::new(),
                                state: RefCell::new(None),
                            }));
                        }
                        return result;
                    }
                }
            }
            _ => {}
        }
        V::Object(Rc::new(Object {
            class: Some(path.to_owned()),
            args,
            state: RefCell::new(None),
        }))
    }

    fn unresolvable_operands(&mut self, pos: u64, what: &str, args: &[V]) {
        let evidence = self.call_evidence(what, args);
        self.anomaly(
            AnomalyKind::Unresolvable,
            pos,
            format!("{what} is given operands that are not plain strings; the name it imports cannot be resolved statically"),
            Some(evidence),
            true,
        );
    }

    /// An implicit method call on an imported name (`os.environ.update(...)` through
    /// SETITEMS, BUILD on a module or class, …).
    fn mutate_global(&mut self, target: usize, method: &str, pos: u64, items: &[V]) {
        let path = self.imports[target].judgement.path.clone();
        let mut evidence = format!("{path}.{method}(");
        self.repr_items(items, &mut evidence, 0);
        evidence.push(')');
        self.anomaly(
            AnomalyKind::GlobalMutation,
            pos,
            format!(
                "modifies the imported object `{path}` in place ({method}), changing code or state outside the model"
            ),
            Some(evidence),
            false,
        );
    }

    fn memo_put(&mut self, pos: u64, idx: u64) -> Result<(), StepError> {
        let v = self.top(pos)?.clone();
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&idx) {
            return Err(StepError::Exhausted(Exhausted(format!(
                "pickle memo exceeds {} entries at offset {pos}",
                self.limits.max_memo
            ))));
        }
        if self.memo.insert(idx, v).is_some() {
            self.anomaly(
                AnomalyKind::MemoReuse,
                pos,
                format!("memo slot {idx} is overwritten; picklers never reuse a slot, so later references see a different object than earlier ones"),
                None,
                false,
            );
        }
        Ok(())
    }

    fn str_value(arg: &Arg) -> Option<V> {
        match arg {
            Arg::Text(t) => Some(V::Str(Rc::new(StrVal {
                value: t.value.clone(),
                truncated: t.truncated,
            }))),
            _ => None,
        }
    }

    /// Executes one opcode symbolically.
    pub fn step(&mut self, op: &Op) -> Result<Step, StepError> {
        use Opcode::*;
        self.ops += 1;
        let pos = op.pos;
        let int_arg = || match op.arg {
            Arg::Int(i) => Some(i),
            _ => None,
        };
        match op.code {
            PROTO => {
                let p = int_arg().unwrap_or(-1);
                if !(0..=i128::from(HIGHEST_PROTOCOL)).contains(&p) {
                    return Err(broken(pos, format!("unsupported pickle protocol {p}")));
                }
                self.proto = p as u8;
            }
            FRAME => {}
            STOP => {
                let v = self.pop(pos)?;
                return Ok(Step::Stop(v));
            }
            POP => {
                if self.stack.is_empty() {
                    self.pop_mark(pos)?;
                } else {
                    self.stack.pop();
                }
            }
            POP_MARK => {
                self.pop_mark(pos)?;
            }
            DUP => {
                let v = self.top(pos)?.clone();
                self.push(pos, v)?;
            }
            MARK => {
                if self.marks.len() >= self.limits.max_marks {
                    return Err(StepError::Exhausted(Exhausted(format!(
                        "more than {} nested MARKs at offset {pos}",
                        self.limits.max_marks
                    ))));
                }
                let below = std::mem::take(&mut self.stack);
                self.marks.push(below);
            }
            NONE => self.push(pos, V::None)?,
            NEWTRUE => self.push(pos, V::Bool(true))?,
            NEWFALSE => self.push(pos, V::Bool(false))?,
            INT | BININT | BININT1 | BININT2 | LONG | LONG1 | LONG4 => {
                let v = match op.arg {
                    Arg::Int(i) => V::Int(i),
                    Arg::Bool(b) => V::Bool(b),
                    _ => V::BigInt,
                };
                self.push(pos, v)?;
            }
            FLOAT | BINFLOAT => {
                let f = match op.arg {
                    Arg::Float(f) => f,
                    _ => 0.0,
                };
                self.push(pos, V::Float(f))?;
            }
            STRING | BINSTRING | SHORT_BINSTRING => {
                // Python 2 `str`: the unpickler decodes it with its `encoding` (ASCII by
                // default, UTF-8 or Latin-1 in torch/numpy), so it behaves as text.
                let v = match &op.arg {
                    Arg::Bytes(b) if b.is_complete() => V::Str(Rc::new(StrVal {
                        value: String::from_utf8_lossy(&b.data).into_owned(),
                        truncated: false,
                    })),
                    Arg::Bytes(b) => V::Str(Rc::new(StrVal {
                        value: String::from_utf8_lossy(&b.data).into_owned(),
                        truncated: true,
                    })),
                    _ => V::Opaque("string"),
                };
                self.push(pos, v)?;
            }
            BINBYTES | SHORT_BINBYTES | BINBYTES8 | BYTEARRAY8 => {
                let v = match &op.arg {
                    Arg::Bytes(b) => V::Bytes {
                        head: b.data.iter().take(64).copied().collect(),
                        len: b.len,
                    },
                    _ => V::Opaque("bytes"),
                };
                self.push(pos, v)?;
            }
            NEXT_BUFFER => self.push(pos, V::Opaque("out-of-band buffer"))?,
            READONLY_BUFFER => {
                self.top(pos)?;
            }
            UNICODE | BINUNICODE | SHORT_BINUNICODE | BINUNICODE8 => {
                let v = Self::str_value(&op.arg).unwrap_or(V::Opaque("string"));
                self.push(pos, v)?;
            }
            EMPTY_TUPLE => self.push(pos, V::Tuple(Rc::new(Vec::new())))?,
            TUPLE => {
                let items = self.pop_mark(pos)?;
                self.push(pos, V::Tuple(Rc::new(items)))?;
            }
            TUPLE1 | TUPLE2 | TUPLE3 => {
                let n = match op.code {
                    TUPLE1 => 1,
                    TUPLE2 => 2,
                    _ => 3,
                };
                if self.stack.len() < n {
                    return Err(broken(pos, "stack underflow"));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push(pos, V::Tuple(Rc::new(items)))?;
            }
            EMPTY_LIST => self.push(pos, V::List(Rc::default()))?,
            LIST => {
                let items = self.pop_mark(pos)?;
                let c = Container::default();
                for i in items {
                    c.push(i);
                }
                self.push(pos, V::List(Rc::new(c)))?;
            }
            EMPTY_DICT => self.push(pos, V::Dict(Rc::default()))?,
            DICT => {
                let items = self.pop_mark(pos)?;
                if !items.len().is_multiple_of(2) {
                    return Err(broken(pos, "odd number of items for DICT"));
                }
                let c = Container::default();
                for i in items {
                    c.push(i);
                }
                self.push(pos, V::Dict(Rc::new(c)))?;
            }
            EMPTY_SET => self.push(pos, V::Set(Rc::default()))?,
            FROZENSET => {
                let items = self.pop_mark(pos)?;
                let c = Container::default();
                for i in items {
                    c.push(i);
                }
                self.push(pos, V::Set(Rc::new(c)))?;
            }
            APPEND => {
                let v = self.pop(pos)?;
                self.extend_target(pos, vec![v], "append")?;
            }
            APPENDS => {
                let items = self.pop_mark(pos)?;
                self.extend_target(pos, items, "extend")?;
            }
            ADDITEMS => {
                let items = self.pop_mark(pos)?;
                self.extend_target(pos, items, "add")?;
            }
            SETITEM => {
                let value = self.pop(pos)?;
                let key = self.pop(pos)?;
                self.extend_target(pos, vec![key, value], "__setitem__")?;
            }
            SETITEMS => {
                let items = self.pop_mark(pos)?;
                if !items.len().is_multiple_of(2) {
                    return Err(broken(pos, "odd number of items for SETITEMS"));
                }
                self.extend_target(pos, items, "__setitem__")?;
            }
            GET | BINGET | LONG_BINGET => {
                let idx = int_arg().unwrap_or(-1);
                let v = u64::try_from(idx)
                    .ok()
                    .and_then(|i| self.memo.get(&i).cloned())
                    .ok_or_else(|| broken(pos, format!("memo value not found at index {idx}")))?;
                self.push(pos, v)?;
            }
            PUT | BINPUT | LONG_BINPUT => {
                let idx = int_arg().unwrap_or(-1);
                let idx = u64::try_from(idx).map_err(|_| broken(pos, "negative memo index"))?;
                self.memo_put(pos, idx)?;
            }
            MEMOIZE => {
                let idx = self.memo.len() as u64;
                self.memo_put(pos, idx)?;
            }
            EXT1 | EXT2 | EXT4 => {
                let code = int_arg().unwrap_or(0);
                if code <= 0 {
                    return Err(broken(pos, "EXT specifies code <= 0"));
                }
                if let Some(&g) = self.extensions.get(&code) {
                    // Registered earlier in this stream: it resolves to that import.
                    self.push(pos, V::Global(g))?;
                } else {
                    self.anomaly(
                        AnomalyKind::ExtensionCode,
                        pos,
                        format!("{} refers to extension code {code}; what it imports depends on the loading process's copyreg registry and cannot be checked", op.code.name()),
                        Some(format!("{}({code})", op.code.name())),
                        false,
                    );
                    self.push(pos, V::Opaque("extension-registry global"))?;
                }
            }
            GLOBAL | INST => {
                let Arg::Pair(pair) = &op.arg else {
                    return Err(broken(pos, "bad GLOBAL argument"));
                };
                let (m, n) = pair.as_ref();
                let module = String::from_utf8(m.clone()).map_err(|_| broken(pos, "module name is not UTF-8"))?;
                let name = String::from_utf8(n.clone()).map_err(|_| broken(pos, "name is not UTF-8"))?;
                let g = self.import(&module, &name, op.code.name(), pos);
                if op.code == GLOBAL {
                    self.push(pos, g)?;
                } else {
                    let args = self.pop_mark(pos)?;
                    let r = self.call(&g, args, pos, "INST");
                    self.push(pos, r)?;
                }
            }
            STACK_GLOBAL => {
                let name = self.pop(pos)?;
                let module = self.pop(pos)?;
                match (module.as_str(), name.as_str()) {
                    (Some(m), Some(n)) => {
                        let (m, n) = (m.to_owned(), n.to_owned());
                        let g = self.import(&m, &n, "STACK_GLOBAL", pos);
                        self.push(pos, g)?;
                    }
                    _ => {
                        let mut ev = String::from("STACK_GLOBAL(");
                        self.repr_items(&[module, name], &mut ev, 0);
                        ev.push(')');
                        self.anomaly(
                            AnomalyKind::Unresolvable,
                            pos,
                            "STACK_GLOBAL operands are not plain strings; the imported name cannot be resolved statically".to_owned(),
                            Some(ev),
                            false,
                        );
                        self.push(pos, V::Opaque("unresolved global"))?;
                    }
                }
            }
            REDUCE => {
                let args = self.pop(pos)?;
                let callee = self.pop(pos)?;
                let args = match args {
                    V::Tuple(t) => t.as_ref().clone(),
                    V::None => Vec::new(),
                    other => vec![other],
                };
                let r = self.call(&callee, args, pos, "REDUCE");
                self.push(pos, r)?;
            }
            OBJ => {
                let mut items = self.pop_mark(pos)?;
                if items.is_empty() {
                    return Err(broken(pos, "OBJ without a class"));
                }
                let cls = items.remove(0);
                let r = self.call(&cls, items, pos, "OBJ");
                self.push(pos, r)?;
            }
            NEWOBJ => {
                let args = self.pop(pos)?;
                let cls = self.pop(pos)?;
                let args = match args {
                    V::Tuple(t) => t.as_ref().clone(),
                    other => vec![other],
                };
                let r = self.call(&cls, args, pos, "NEWOBJ");
                self.push(pos, r)?;
            }
            NEWOBJ_EX => {
                let kwargs = self.pop(pos)?;
                let args = self.pop(pos)?;
                let cls = self.pop(pos)?;
                let mut args = match args {
                    V::Tuple(t) => t.as_ref().clone(),
                    other => vec![other],
                };
                args.push(kwargs);
                let r = self.call(&cls, args, pos, "NEWOBJ_EX");
                self.push(pos, r)?;
            }
            BUILD => {
                let state = self.pop(pos)?;
                let inst = self.top(pos)?.clone();
                match &inst {
                    V::Global(g) => {
                        let g = *g;
                        self.mutate_global(g, "__setstate__", pos, &[state]);
                    }
                    V::Object(o) => {
                        if holds_rc(&state) {
                            self.may_cycle.push(V::Object(o.clone()));
                        }
                        *o.state.borrow_mut() = Some(state);
                        if is_joblib_wrapper(o.class.as_deref()) {
                            return Ok(Step::InlineArray(inline_array_of(o)));
                        }
                    }
                    _ => {}
                }
            }
            PERSID => {
                self.push(pos, V::Opaque("persistent object"))?;
            }
            BINPERSID => {
                self.pop(pos)?;
                self.push(pos, V::Opaque("persistent object"))?;
            }
        }
        Ok(Step::Continue)
    }

    fn extend_target(&mut self, pos: u64, items: Vec<V>, method: &str) -> Result<(), StepError> {
        let target = self.top(pos)?.clone();
        match target {
            V::List(c) | V::Dict(c) | V::Set(c) => {
                let holds_rc = c.extend(items);
                if holds_rc && !c.registered.get() {
                    c.registered.set(true);
                    self.may_cycle.push(V::List(c.clone()));
                }
            }
            V::Global(g) => self.mutate_global(g, method, pos, &items),
            // Methods of objects made by allowlisted or already-flagged callables.
            _ => {}
        }
        Ok(())
    }
}

fn path_via(path: &str) -> &'static str {
    if path.starts_with("importlib") {
        "importlib.import_module"
    } else {
        "builtins.__import__"
    }
}

fn is_joblib_wrapper(class: Option<&str>) -> bool {
    matches!(
        class,
        Some("joblib.numpy_pickle.NumpyArrayWrapper" | "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper")
    )
}

fn dict_get<'a>(items: &'a [V], key: &str) -> Option<&'a V> {
    items
        .chunks(2)
        .find(|kv| kv[0].as_str() == Some(key))
        .and_then(|kv| kv.get(1))
}

/// How many bytes joblib wrote after a `NumpyArrayWrapper`'s BUILD (joblib's
/// `numpy_pickle.py`: shape × itemsize, a padding byte + padding when
/// `numpy_array_alignment_bytes` is set, or a nested pickle for object dtypes).
fn inline_array_of(o: &Object) -> InlineArray {
    let state = o.state.borrow();
    let Some(V::Dict(d)) = state.as_ref() else {
        return InlineArray::Unknown("wrapper state is not a dict".to_owned());
    };
    let items = d.items.borrow();
    let Some(V::Tuple(shape)) = dict_get(&items, "shape") else {
        return InlineArray::Unknown("wrapper has no shape".to_owned());
    };
    let aligned = matches!(dict_get(&items, "numpy_array_alignment_bytes"), Some(V::Int(_)));
    let Some(V::Object(dtype)) = dict_get(&items, "dtype") else {
        return InlineArray::Unknown("wrapper has no dtype".to_owned());
    };
    let Some(itemsize) = dtype_itemsize(dtype) else {
        return InlineArray::Pickle;
    };
    let mut count: u64 = 1;
    for dim in shape.iter() {
        let V::Int(n) = dim else {
            return InlineArray::Unknown("shape is not a tuple of integers".to_owned());
        };
        let Some(c) = u64::try_from(*n).ok().and_then(|n| count.checked_mul(n)) else {
            return InlineArray::Unknown("array size overflows".to_owned());
        };
        count = c;
    }
    match count.checked_mul(itemsize) {
        Some(bytes) => InlineArray::Raw { bytes, aligned },
        None => InlineArray::Unknown("array size overflows".to_owned()),
    }
}

/// Item size of a symbolic `numpy.dtype(...)` object; `None` for object dtypes.
fn dtype_itemsize(dtype: &Object) -> Option<u64> {
    let spec = dtype.args.first().and_then(V::as_str).unwrap_or("");
    let kind = spec.trim_start_matches(['<', '>', '=', '|']);
    if kind.starts_with('O') {
        return None;
    }
    // The state tuple's elsize (index 5) is authoritative for flexible dtypes.
    if let Some(V::Tuple(t)) = dtype.state.borrow().as_ref() {
        if let Some(V::Int(elsize)) = t.get(5) {
            if *elsize > 0 {
                return Some(*elsize as u64);
            }
        }
    }
    let digits: String = kind.chars().skip(1).take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().unwrap_or(1);
    Some(match kind.chars().next() {
        Some('U') => n * 4,
        _ => n,
    })
}

/// Text arguments, decoded leniently for evidence.
pub fn lossy(bytes: &[u8]) -> String {
    decode_utf8_surrogatepass(bytes).unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed { .. })
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::pickle::reader::{OpReader, ReaderConfig};

    fn run(bytes: &[u8]) -> Option<V> {
        let policy = Policy::default();
        let mut vm = Vm::new(&policy, VmLimits::default());
        let mut r = OpReader::new(bytes, ReaderConfig::default());
        while let Ok(Some(op)) = r.next_op() {
            if let Ok(Step::Stop(v)) = vm.step(&op) {
                return Some(v);
            }
        }
        None
    }

    #[test]
    fn self_referencing_list_does_not_leak() {
        // l = []; l.append(l)
        let v = run(b"\x80\x02]q\x00h\x00a.").unwrap();
        let V::List(c) = v else { panic!("not a list") };
        // The machine is gone: only our handle remains, the cycle was broken.
        assert_eq!(Rc::strong_count(&c), 1);
        assert_eq!(c.len.get(), 1);
    }

    #[test]
    fn object_whose_state_holds_itself_does_not_leak() {
        // o = C(); o.__setstate__({'me': o})
        let v = run(b"\x80\x02c__main__\nC\n)\x81q\x00}X\x02\x00\x00\x00meh\x00sb.").unwrap();
        let V::Object(o) = v else { panic!("not an object") };
        assert_eq!(Rc::strong_count(&o), 1);
    }
}
