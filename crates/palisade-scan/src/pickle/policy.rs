//! Deny-by-default judgement of the callables a pickle imports.
//!
//! Every global a pickle names is resolved to a dotted path (`module.attr.attr`), with
//! Python 2 module names mapped as `_compat_pickle` maps them, and judged:
//! 1. **dangerous** when the path, or the path re-rooted at a module it walks through
//!    (`pathlib.os.system` reaches `os.system`), is on the denylist below;
//! 2. **dunder walk** when it walks through a dunder attribute (`numpy.__builtins__.eval`,
//!    `x.__globals__`), which no legitimate model needs;
//! 3. **allowed** when it matches a framework allowlist (versioned below) or an
//!    organisation addition from `palisade.toml`;
//! 4. otherwise **unknown**: still a finding, at a lower severity, so a new gadget is
//!    never reported clean.

/// Version of the built-in lists; recorded in reports so a verdict can be reproduced.
pub const POLICY_VERSION: &str = "2026.11.1";

/// `(path, reroot, reason)`. `path` matches itself and everything below it. `reroot`
/// entries also match when reached through another module's attribute (`x.os.system`).
static DANGEROUS: &[(&str, bool, &str)] = &[
    ("builtins.eval", true, "evaluates Python code"),
    ("builtins.exec", true, "executes Python code"),
    ("builtins.compile", true, "compiles Python code"),
    ("builtins.execfile", true, "executes a Python file"),
    ("builtins.__import__", true, "imports arbitrary modules"),
    ("builtins.getattr", true, "reaches arbitrary attributes (gadget chains)"),
    ("builtins.setattr", true, "overwrites attributes of live objects"),
    ("builtins.delattr", true, "deletes attributes of live objects"),
    ("builtins.globals", true, "exposes the interpreter's global namespace"),
    ("builtins.locals", true, "exposes a frame's namespace"),
    ("builtins.vars", true, "exposes object namespaces"),
    ("builtins.open", true, "opens files for reading or writing"),
    ("builtins.breakpoint", true, "starts a debugger"),
    ("builtins.input", true, "blocks reading the terminal"),
    ("builtins.exit", true, "terminates the process"),
    ("builtins.quit", true, "terminates the process"),
    ("builtins.help", true, "starts the interactive help pager"),
    ("builtins.memoryview", false, "exposes raw memory of objects"),
    ("builtins.map", false, "calls a function lazily over its arguments"),
    ("builtins.filter", false, "calls a function lazily over its arguments"),
    ("builtins.apply", true, "calls a function with arguments"),
    ("builtins.reload", true, "re-imports modules"),
    ("os.path", false, ""), // carve-out: see SAFE_UNDER_DANGEROUS
    ("os", true, "operating-system access: processes, files, environment"),
    ("posix", true, "operating-system access: processes, files, environment"),
    ("nt", true, "operating-system access: processes, files, environment"),
    ("subprocess", true, "runs external programs"),
    ("_posixsubprocess", true, "runs external programs"),
    ("_winapi", true, "Windows process and file APIs"),
    ("pty", true, "spawns a process on a pseudo-terminal"),
    ("commands", true, "runs shell commands (Python 2)"),
    ("popen2", true, "runs shell commands (Python 2)"),
    ("platform.popen", true, "runs shell commands"),
    ("platform._syscmd_file", false, "runs shell commands"),
    ("platform._syscmd_ver", false, "runs shell commands"),
    ("uuid._popen", false, "runs shell commands"),
    ("uuid._get_command_stdout", false, "runs external programs"),
    ("pydoc.pipepager", false, "runs a shell command"),
    ("pydoc.tempfilepager", false, "runs a shell command"),
    ("pydoc.locate", false, "imports and resolves arbitrary names"),
    ("mailcap", false, "runs commands from mailcap entries"),
    ("sys", true, "interpreter internals: modules, hooks, exit"),
    ("runpy", true, "runs Python modules and code"),
    ("code", true, "runs Python source interactively"),
    ("codeop", true, "compiles Python source"),
    ("importlib", true, "imports arbitrary modules"),
    ("imp", true, "imports arbitrary modules"),
    ("zipimport", true, "imports code from archives"),
    ("pkgutil", true, "resolves and imports arbitrary names"),
    ("pickle", true, "nested unpickling runs arbitrary code"),
    ("_pickle", true, "nested unpickling runs arbitrary code"),
    ("cPickle", true, "nested unpickling runs arbitrary code"),
    ("dill", true, "deserialises code objects"),
    ("cloudpickle", true, "deserialises code objects"),
    ("shelve", true, "unpickles from files"),
    ("marshal", true, "deserialises code objects"),
    ("types.CodeType", true, "builds code objects"),
    ("types.FunctionType", true, "builds functions from code objects"),
    ("types.MethodType", false, "binds functions to objects"),
    ("types.ModuleType", false, "creates modules"),
    ("ctypes", true, "calls native code"),
    ("_ctypes", true, "calls native code"),
    ("cffi", true, "calls native code"),
    ("pdb", true, "starts a debugger that runs code"),
    ("bdb", true, "debugger framework that runs code"),
    ("trace", true, "runs code under tracing"),
    ("timeit", true, "runs code strings"),
    ("profile", true, "runs code strings"),
    ("cProfile", true, "runs code strings"),
    ("doctest", true, "runs code from docstrings"),
    ("idlelib", true, "runs code"),
    ("lib2to3", false, "refactoring tool that writes files"),
    ("webbrowser", true, "opens URLs and runs browsers"),
    ("socket", true, "opens network connections"),
    ("_socket", true, "opens network connections"),
    ("socketserver", true, "starts network servers"),
    ("ssl", false, "opens network connections"),
    ("http", true, "makes or serves HTTP requests"),
    ("urllib", true, "makes network requests"),
    ("urllib2", true, "makes network requests"),
    ("httplib", true, "makes network requests"),
    ("requests", true, "makes network requests"),
    ("ftplib", true, "makes network requests"),
    ("smtplib", true, "sends mail"),
    ("telnetlib", true, "opens network connections"),
    ("xmlrpc", true, "makes remote calls"),
    ("asyncio", true, "runs subprocesses and network I/O"),
    ("multiprocessing", true, "starts processes"),
    ("concurrent.futures", false, "runs callables in workers"),
    ("threading", true, "runs callables in threads"),
    ("_thread", true, "runs callables in threads"),
    ("thread", true, "runs callables in threads"),
    ("signal", true, "installs signal handlers"),
    ("atexit", true, "registers code to run at exit"),
    ("shutil", true, "copies, moves and deletes files; runs archives"),
    ("tempfile", false, "creates files"),
    ("io.open", true, "opens files"),
    ("io.FileIO", true, "opens files"),
    ("_io", true, "opens files"),
    ("codecs.open", true, "opens files"),
    ("fileinput", true, "reads files"),
    ("linecache", true, "reads files"),
    ("glob", false, "lists the file system"),
    ("zipfile", false, "reads and extracts archives"),
    ("tarfile", false, "reads and extracts archives"),
    ("sqlite3", false, "opens databases on disk"),
    ("dbm", false, "opens databases on disk"),
    ("logging.config", true, "logging configuration evaluates code"),
    ("gc", false, "reaches every live object"),
    ("inspect", false, "reaches frames and source"),
    (
        "operator.attrgetter",
        true,
        "reaches arbitrary attributes (gadget chains)",
    ),
    ("operator.methodcaller", true, "calls arbitrary methods (gadget chains)"),
    (
        "_operator.attrgetter",
        true,
        "reaches arbitrary attributes (gadget chains)",
    ),
    (
        "_operator.methodcaller",
        true,
        "calls arbitrary methods (gadget chains)",
    ),
    ("functools.partial", true, "binds arbitrary callables (gadget chains)"),
    ("functools.reduce", true, "calls arbitrary callables"),
    ("_functools", true, "binds or calls arbitrary callables"),
    ("itertools.starmap", false, "calls arbitrary callables"),
    ("pip", true, "installs and runs packages"),
    ("setuptools", true, "builds and runs package code"),
    ("distutils", true, "builds and runs package code"),
    ("ensurepip", true, "installs packages"),
    ("venv", true, "creates environments and runs installers"),
    ("site", false, "modifies import paths"),
    ("numpy.load", false, "loads pickles from files"),
    ("numpy.lib.npyio.load", false, "loads pickles from files"),
    ("numpy.testing._private.utils.runstring", true, "executes a code string"),
    ("numpy.f2py", false, "compiles and runs Fortran/C code"),
    ("numpy.distutils", false, "builds and runs native code"),
    ("numpy.fromfile", false, "reads arbitrary files"),
    ("numpy.memmap", false, "maps files"),
    ("numpy.ctypeslib", false, "loads native libraries"),
    ("torch.load", true, "nested model load runs pickles"),
    ("torch.serialization.load", true, "nested model load runs pickles"),
    ("torch.jit._pickle", false, ""), // carve-out: see SAFE_UNDER_DANGEROUS
    ("torch.jit", true, "loads or compiles TorchScript"),
    ("torch.hub", true, "downloads and runs code"),
    ("torch.package", true, "imports packaged code"),
    ("torch._C._jit", false, "TorchScript internals"),
    ("torch._C._import_ir_module", false, "loads TorchScript modules"),
    ("torch._C.import_ir_module", false, "loads TorchScript modules"),
    (
        "torch._C._load_for_lite_interpreter",
        false,
        "loads TorchScript modules",
    ),
    ("copyreg.add_extension", true, "registers callables behind EXT opcodes"),
    ("torch.ops", false, "calls registered operators"),
    ("torch.classes", false, "calls registered classes"),
    ("torch.utils.cpp_extension", true, "compiles and loads native code"),
    ("torch._dynamo", false, "compiles code"),
    ("torch._inductor", false, "compiles code"),
    ("joblib.load", true, "loads pickles from files"),
    ("pandas.read_pickle", true, "loads pickles from files"),
    ("pandas.eval", false, "evaluates expressions"),
    ("pandas.core.computation", false, "evaluates expressions"),
    ("pandas.io", false, "reads files and URLs"),
    ("keras.models.load_model", false, "loads models that may contain code"),
    ("tensorflow.io", false, "reads and writes files"),
    (
        "tensorflow.keras.models.load_model",
        false,
        "loads models that may contain code",
    ),
];

/// Paths below a dangerous prefix that are not themselves dangerous (judged as unknown).
static SAFE_UNDER_DANGEROUS: &[&str] = &["os.path", "torch.jit._pickle"];

/// Python 2 module names as `Lib/_compat_pickle.py` maps them (the subset that matters for
/// judgement).
static MODULE_ALIASES: &[(&str, &str)] = &[
    ("__builtin__", "builtins"),
    ("exceptions", "builtins"),
    ("copy_reg", "copyreg"),
    ("cPickle", "pickle"),
    ("_compat_pickle", "pickle"),
    ("UserDict", "collections"),
    ("UserList", "collections"),
    ("Queue", "queue"),
    ("SocketServer", "socketserver"),
    ("urllib2", "urllib.request"),
    ("httplib", "http.client"),
    ("BaseHTTPServer", "http.server"),
    ("SimpleHTTPServer", "http.server"),
    ("CGIHTTPServer", "http.server"),
    ("thread", "_thread"),
    ("dummy_thread", "_dummy_thread"),
    ("cStringIO", "io"),
    ("StringIO", "io"),
    ("multiprocessing.process", "multiprocessing.process"),
];

/// Dunder attributes that, as the last segment, reach interpreter internals.
static DUNDER_DANGEROUS: &[&str] = &[
    "__builtins__",
    "__globals__",
    "__dict__",
    "__class__",
    "__subclasses__",
    "__bases__",
    "__base__",
    "__mro__",
    "__getattribute__",
    "__getattr__",
    "__setattr__",
    "__delattr__",
    "__code__",
    "__closure__",
    "__func__",
    "__self__",
    "__module__",
    "__loader__",
    "__spec__",
    "__import__",
    "__reduce__",
    "__reduce_ex__",
    "__call__",
    "__init__",
    "__new__",
    "__init_subclass__",
    "__class_getitem__",
];

/// A framework allowlist: exact paths, or `prefix.*` for classes under a prefix
/// (last segment starts with an upper-case letter, no dunder segment).
pub struct Framework {
    pub name: &'static str,
    pub version: &'static str,
    pub entries: &'static [&'static str],
    /// Prefixes excluded from this framework's `prefix.*` entries.
    pub exclude: &'static [&'static str],
}

pub static FRAMEWORKS: &[Framework] = &[
    Framework {
        name: "python",
        version: "1",
        entries: &[
            "builtins.set",
            "builtins.frozenset",
            "builtins.bytearray",
            "builtins.bytes",
            "builtins.complex",
            "builtins.slice",
            "builtins.range",
            "builtins.xrange",
            "builtins.list",
            "builtins.dict",
            "builtins.tuple",
            "builtins.int",
            "builtins.long",
            "builtins.float",
            "builtins.bool",
            "builtins.str",
            "builtins.unicode",
            "builtins.object",
            "builtins.NoneType",
            "builtins.Ellipsis",
            "builtins.NotImplemented",
            "copyreg._reconstructor",
            "copyreg.__newobj__",
            "copyreg.__newobj_ex__",
            "_codecs.encode",
            "codecs.encode",
            "collections.OrderedDict",
            "collections.defaultdict",
            "collections.deque",
            "collections.Counter",
            "datetime.datetime",
            "datetime.date",
            "datetime.time",
            "datetime.timedelta",
            "datetime.timezone",
            "decimal.Decimal",
            "fractions.Fraction",
            "uuid.UUID",
            "array.array",
            "array._array_reconstructor",
            "pathlib.PosixPath",
            "pathlib.WindowsPath",
            "pathlib.PurePosixPath",
            "pathlib.PureWindowsPath",
            "pathlib.Path",
            "types.SimpleNamespace",
            "argparse.Namespace",
            "enum.Enum",
            "re._compile",
            "_sre.compile",
            "random.Random",
            "_random.Random",
            "zoneinfo.ZoneInfo",
            "zoneinfo._common",
        ],
        exclude: &[],
    },
    Framework {
        name: "numpy",
        version: "1.x-2.x",
        entries: &[
            "numpy.core.multiarray._reconstruct",
            "numpy._core.multiarray._reconstruct",
            "numpy.core.multiarray.scalar",
            "numpy._core.multiarray.scalar",
            "numpy.core.numeric._frombuffer",
            "numpy._core.numeric._frombuffer",
            "numpy.ndarray",
            "numpy.dtype",
            "numpy.ma.core._mareconstruct",
            "numpy.ma.core.MaskedArray",
            "numpy.random._pickle.__randomstate_ctor",
            "numpy.random._pickle.__bit_generator_ctor",
            "numpy.random._pickle.__generator_ctor",
            "numpy.random.mtrand.RandomState",
            "numpy.random._mt19937.MT19937",
            "numpy.random._pcg64.PCG64",
            "numpy.random._generator.Generator",
            "numpy.random.bit_generator.SeedSequence",
            "numpy.dtypes.*",
            "numpy.bool_",
            "numpy.int8",
            "numpy.int16",
            "numpy.int32",
            "numpy.int64",
            "numpy.uint8",
            "numpy.uint16",
            "numpy.uint32",
            "numpy.uint64",
            "numpy.float16",
            "numpy.float32",
            "numpy.float64",
            "numpy.complex64",
            "numpy.complex128",
            "numpy.str_",
            "numpy.bytes_",
            "numpy.datetime64",
            "numpy.timedelta64",
            "numpy.core._ufunc_reconstruct",
            "numpy._core._ufunc_reconstruct",
            // ufuncs and functions commonly stored as estimator parameters
            "numpy.log",
            "numpy.log1p",
            "numpy.log2",
            "numpy.log10",
            "numpy.exp",
            "numpy.expm1",
            "numpy.sqrt",
            "numpy.square",
            "numpy.abs",
            "numpy.absolute",
            "numpy.sign",
            "numpy.tanh",
            "numpy.sin",
            "numpy.cos",
            "numpy.clip",
            "numpy.mean",
            "numpy.median",
            "numpy.sum",
            "numpy.max",
            "numpy.min",
            "numpy.nanmean",
            "numpy.nanmedian",
            "numpy.std",
            "numpy.var",
            "numpy.add",
            "numpy.subtract",
            "numpy.multiply",
            "numpy.divide",
            "numpy.true_divide",
            "numpy.power",
            "numpy.maximum",
            "numpy.minimum",
            "numpy.float_",
            "numpy.nan",
        ],
        exclude: &[],
    },
    Framework {
        name: "pytorch",
        version: "1.x-2.x",
        entries: &[
            "torch._utils._rebuild_tensor",
            "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_tensor_v3",
            "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_parameter_with_state",
            "torch._utils._rebuild_qtensor",
            "torch._utils._rebuild_sparse_tensor",
            "torch._utils._rebuild_sparse_csr_tensor",
            "torch._utils._rebuild_nested_tensor",
            "torch._utils._rebuild_device_tensor_from_numpy",
            "torch._utils._rebuild_device_tensor_from_cpu_tensor",
            "torch._utils._rebuild_meta_tensor_no_storage",
            "torch._utils._rebuild_wrapper_subclass",
            "torch._utils._rebuild_xla_tensor",
            "torch._utils._rebuild_mtia_tensor",
            "torch._utils._rebuild_from_type",
            "torch._utils._rebuild_from_type_v2",
            "torch._tensor._rebuild_from_type",
            "torch._tensor._rebuild_from_type_v2",
            "torch.storage.UntypedStorage",
            "torch.storage.TypedStorage",
            "torch.storage._load_from_bytes",
            "torch.FloatStorage",
            "torch.DoubleStorage",
            "torch.HalfStorage",
            "torch.BFloat16Storage",
            "torch.LongStorage",
            "torch.IntStorage",
            "torch.ShortStorage",
            "torch.CharStorage",
            "torch.ByteStorage",
            "torch.BoolStorage",
            "torch.ComplexFloatStorage",
            "torch.ComplexDoubleStorage",
            "torch.QInt8Storage",
            "torch.QUInt8Storage",
            "torch.QInt32Storage",
            "torch.QUInt4x2Storage",
            "torch.QUInt2x4Storage",
            "torch.UntypedStorage",
            "torch.TypedStorage",
            "torch.cuda.*",
            "torch.Tensor",
            "torch.Size",
            "torch.device",
            "torch.dtype",
            "torch.float16",
            "torch.float32",
            "torch.float64",
            "torch.bfloat16",
            "torch.half",
            "torch.float",
            "torch.double",
            "torch.int8",
            "torch.int16",
            "torch.int32",
            "torch.int64",
            "torch.uint8",
            "torch.bool",
            "torch.long",
            "torch.int",
            "torch.complex64",
            "torch.complex128",
            "torch.float8_e4m3fn",
            "torch.float8_e5m2",
            "torch.qint8",
            "torch.quint8",
            "torch.qint32",
            "torch.strided",
            "torch.sparse_coo",
            "torch.sparse_csr",
            "torch.contiguous_format",
            "torch.channels_last",
            "torch.preserve_format",
            "torch.per_tensor_affine",
            "torch.per_channel_affine",
            "torch.serialization._get_layout",
            "torch.nn.parameter.Parameter",
            "torch.nn.parameter.Buffer",
            "torch.nn.modules.*",
            "torch.nn.parameter.*",
            "torch.nn.utils.spectral_norm.*",
            "torch.nn.utils.weight_norm.*",
            "torch.optim.*",
            "torch.nn.utils.parametrize.*",
            "torch.distributions.*",
            "torch.amp.grad_scaler.*",
            "torch.cuda.amp.grad_scaler.*",
            "torch.torch_version.TorchVersion",
            "torch.FloatTensor",
            "torch.DoubleTensor",
            "torch.HalfTensor",
            "torch.BFloat16Tensor",
            "torch.LongTensor",
            "torch.IntTensor",
            "torch.ShortTensor",
            "torch.CharTensor",
            "torch.ByteTensor",
            "torch.BoolTensor",
            // TorchScript archives: helpers of torch/jit/_pickle.py, and compiled classes
            // that the TorchScript runtime resolves from the archive's own code/.
            "torch.jit._pickle.build_intlist",
            "torch.jit._pickle.build_tensorlist",
            "torch.jit._pickle.build_doublelist",
            "torch.jit._pickle.build_boollist",
            "torch.jit._pickle.build_tensor_from_id",
            "torch.jit._pickle.restore_type_tag",
            "__torch__.*",
        ],
        exclude: &[],
    },
    Framework {
        name: "scikit-learn",
        version: "0.2x-1.x",
        entries: &[
            "sklearn.*",
            "sklearn.neighbors._kd_tree.newObj",
            "sklearn.neighbors._ball_tree.newObj",
            "sklearn.neighbors.kd_tree.newObj",
            "sklearn.neighbors.ball_tree.newObj",
            "sklearn.tree._tree.Tree",
            "scipy.sparse.*",
            "scipy.sparse._csr.csr_matrix",
            "scipy.stats._distn_infrastructure.*",
            "scipy.stats._continuous_distns.*",
            "scipy.stats._discrete_distns.*",
            "xgboost.sklearn.*",
            "xgboost.core.Booster",
            "lightgbm.sklearn.*",
            "lightgbm.basic.Booster",
            "catboost.core.*",
        ],
        exclude: &[
            "sklearn.datasets",
            "sklearn.utils._testing",
            "sklearn.externals._",
            "sklearn.utils._show_versions",
        ],
    },
    Framework {
        name: "joblib",
        version: "0.10-1.x",
        entries: &[
            "joblib.numpy_pickle.NumpyArrayWrapper",
            "joblib.numpy_pickle_compat.NDArrayWrapper",
            "joblib.numpy_pickle_compat.ZNDArrayWrapper",
            "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
            "sklearn.externals.joblib.numpy_pickle_compat.NDArrayWrapper",
            "sklearn.externals.joblib.numpy_pickle_compat.ZNDArrayWrapper",
        ],
        exclude: &[],
    },
    Framework {
        name: "pandas",
        version: "1.x-2.x",
        entries: &[
            "pandas.core.frame.DataFrame",
            "pandas.core.series.Series",
            "pandas.core.internals.managers.BlockManager",
            "pandas.core.internals.managers.SingleBlockManager",
            "pandas.core.internals.blocks.*",
            "pandas.core.indexes.*",
            "pandas.core.arrays.*",
            "pandas.core.dtypes.dtypes.*",
            "pandas._libs.internals._unpickle_block",
            "pandas._libs.tslibs.timestamps._unpickle_timestamp",
            "pandas._libs.tslibs.timedeltas._timedelta_unpickle",
            "pandas._libs.tslibs.nattype.__nat_unpickle",
            "pandas._libs.arrays.__pyx_unpickle_NDArrayBacked",
            "pandas.core.indexes.base._new_Index",
            "pandas.core.indexes.range.RangeIndex",
            "pandas._libs.tslibs.offsets.*",
        ],
        exclude: &[],
    },
    Framework {
        name: "huggingface",
        version: "4.x",
        entries: &[
            "transformers.training_args.*",
            "transformers.training_args_seq2seq.*",
            "transformers.trainer_utils.*",
            "transformers.trainer_callback.*",
            "transformers.debug_utils.*",
            "transformers.utils.generic.*",
            "transformers.generation.configuration_utils.GenerationConfig",
            "transformers.integrations.deepspeed.*",
            "accelerate.state.*",
            "accelerate.utils.dataclasses.*",
            "peft.utils.peft_types.*",
            "peft.tuners.lora.config.LoraConfig",
            "tokenizers.AddedToken",
            "tokenizers.Tokenizer",
        ],
        exclude: &[],
    },
];

/// The outcome of judging one resolved path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed {
        framework: String,
    },
    /// `resolved` is the dangerous path reached (after re-rooting an attribute walk).
    Dangerous {
        resolved: String,
        reason: &'static str,
    },
    /// Walks through interpreter internals (`__builtins__`, `__globals__`, …).
    DunderWalk {
        segment: String,
    },
    Unknown,
}

/// A judged import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// `module.qualname` with Python 2 names mapped.
    pub path: String,
    pub verdict: Verdict,
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix || (path.len() > prefix.len() && path.starts_with(prefix) && path.as_bytes()[prefix.len()] == b'.')
}

fn is_dunder(seg: &str) -> bool {
    seg.len() > 4 && seg.starts_with("__") && seg.ends_with("__")
}

fn dangerous(path: &str, reroot_only: bool) -> Option<(&'static str, &'static str)> {
    if SAFE_UNDER_DANGEROUS.iter().any(|s| under(path, s)) {
        return None;
    }
    DANGEROUS
        .iter()
        .filter(|(_, reroot, reason)| !reason.is_empty() && (*reroot || !reroot_only))
        .find(|(p, _, _)| under(path, p))
        .map(|(p, _, reason)| (*p, *reason))
}

/// Maps a Python 2 module name to its Python 3 name.
pub fn canonical_module(module: &str) -> String {
    for (old, new) in MODULE_ALIASES {
        if under(module, old) {
            return format!("{new}{}", &module[old.len()..]);
        }
    }
    module.to_owned()
}

/// An organisation allowlist pattern from `palisade.toml`: `pkg.mod.fn` or `pkg.mod.*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowPattern(String);

impl AllowPattern {
    pub fn parse(s: &str) -> Result<AllowPattern, String> {
        let body = s.strip_suffix(".*").unwrap_or(s);
        let ok = !body.is_empty()
            && body
                .split('.')
                .all(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_alphanumeric() || c == '_'));
        if ok {
            Ok(AllowPattern(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a dotted Python path (`package.module.name`) or a class prefix (`package.module.*`)"
            ))
        }
    }
}

fn pattern_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(prefix) => {
            if !under(path, prefix) || path == prefix {
                return false;
            }
            let last = path.rsplit('.').next().unwrap_or_default();
            last.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && !path[prefix.len()..].split('.').any(is_dunder)
        }
        None => pattern == path,
    }
}

/// The judge: built-in lists plus organisation additions.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub extra_allow: Vec<AllowPattern>,
}

impl Policy {
    pub fn judge(&self, module: &str, name: &str) -> Judgement {
        let module = canonical_module(module);
        let path = if name.is_empty() {
            module.clone()
        } else {
            format!("{module}.{name}")
        };
        let verdict = self.judge_path(&path, module.split('.').count());
        Judgement { path, verdict }
    }

    /// Judges a dotted path whose first `module_segments` segments name the module.
    pub fn judge_path(&self, path: &str, module_segments: usize) -> Verdict {
        let segs: Vec<&str> = path.split('.').collect();
        // 1. Denylist, directly or re-rooted where the walk passes through a module.
        if let Some((_, reason)) = dangerous(path, false) {
            return Verdict::Dangerous {
                resolved: path.to_owned(),
                reason,
            };
        }
        // Only the attribute part is a walk; the module part is imported as named.
        for i in module_segments.max(1)..segs.len() {
            // Through `__builtins__`, the rest are builtins.
            let rerooted = if segs[i - 1] == "__builtins__" || segs[i - 1] == "builtins" {
                format!("builtins.{}", segs[i..].join("."))
            } else {
                segs[i..].join(".")
            };
            if let Some((_, reason)) = dangerous(&rerooted, true) {
                return Verdict::Dangerous {
                    resolved: rerooted,
                    reason,
                };
            }
        }
        // 2. Dunder walks in the attribute part.
        let attrs = &segs[module_segments.min(segs.len())..];
        for (i, seg) in attrs.iter().enumerate() {
            let last = i + 1 == attrs.len();
            if is_dunder(seg) && (!last || DUNDER_DANGEROUS.contains(seg)) {
                return Verdict::DunderWalk {
                    segment: (*seg).to_owned(),
                };
            }
        }
        if segs[..module_segments.min(segs.len())]
            .iter()
            .any(|s| DUNDER_DANGEROUS.contains(s))
        {
            return Verdict::DunderWalk {
                segment: segs[0].to_owned(),
            };
        }
        // 3. Allowlists.
        for fw in FRAMEWORKS {
            if fw.exclude.iter().any(|x| path.starts_with(x)) {
                continue;
            }
            if fw.entries.iter().any(|p| pattern_matches(p, path)) {
                return Verdict::Allowed {
                    framework: format!("{}@{}", fw.name, fw.version),
                };
            }
        }
        if self.extra_allow.iter().any(|p| pattern_matches(&p.0, path)) {
            return Verdict::Allowed {
                framework: "palisade.toml".to_owned(),
            };
        }
        Verdict::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(module: &str, name: &str) -> Verdict {
        Policy::default().judge(module, name).verdict
    }

    #[test]
    fn denylist_direct_and_parents() {
        assert!(matches!(v("os", "system"), Verdict::Dangerous { .. }));
        assert!(matches!(v("posix", "system"), Verdict::Dangerous { .. }));
        assert!(matches!(v("__builtin__", "eval"), Verdict::Dangerous { .. }));
        assert!(matches!(v("subprocess", "Popen"), Verdict::Dangerous { .. }));
        assert!(matches!(v("os.path", "join"), Verdict::Unknown));
    }

    #[test]
    fn reroot_through_module_attributes() {
        assert_eq!(
            v("pathlib", "os.system"),
            Verdict::Dangerous {
                resolved: "os.system".into(),
                reason: "operating-system access: processes, files, environment"
            }
        );
        assert!(matches!(v("numpy", "__builtins__.eval"), Verdict::Dangerous { .. }));
        assert!(matches!(
            v("torch.serialization", "pickle.loads"),
            Verdict::Dangerous { .. }
        ));
        // Not every segment re-roots: scipy.signal is not the signal module.
        assert_eq!(v("scipy.signal", "windows"), Verdict::Unknown);
    }

    #[test]
    fn dunder_walks() {
        assert!(matches!(v("numpy", "__dict__"), Verdict::DunderWalk { .. }));
        assert!(matches!(
            v("collections", "OrderedDict.__init__.__globals__"),
            Verdict::DunderWalk { .. }
        ));
        // A dunder as a plain final name is judged by the lists.
        assert!(matches!(
            v("numpy.random._pickle", "__randomstate_ctor"),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn allowlists_and_class_patterns() {
        assert!(matches!(
            v("torch._utils", "_rebuild_tensor_v2"),
            Verdict::Allowed { .. }
        ));
        assert!(matches!(
            v("sklearn.linear_model._logistic", "LogisticRegression"),
            Verdict::Allowed { .. }
        ));
        assert_eq!(v("sklearn.linear_model._logistic", "some_function"), Verdict::Unknown);
        // Excluded from the class pattern: judged unknown, not allowed.
        assert_eq!(v("sklearn.datasets._base", "Bunch"), Verdict::Unknown);
        assert_eq!(v("sklearn.utils._testing", "TempMemmap"), Verdict::Unknown);
        // The module part is imported as named, not walked: no re-rooting inside it.
        assert!(matches!(
            v("numpy.random._pickle", "__bit_generator_ctor"),
            Verdict::Allowed { .. }
        ));
        assert_eq!(v("__main__", "MyModel"), Verdict::Unknown);
    }

    #[test]
    fn organisation_additions() {
        let p = Policy {
            extra_allow: vec![AllowPattern::parse("acme.models.*").unwrap()],
        };
        assert!(matches!(
            p.judge("acme.models.net", "Net").verdict,
            Verdict::Allowed { .. }
        ));
        assert_eq!(p.judge("acme.models.net", "train").verdict, Verdict::Unknown);
        assert!(AllowPattern::parse("os system").is_err());
        // Additions never override the denylist.
        let p = Policy {
            extra_allow: vec![AllowPattern::parse("os.system").unwrap()],
        };
        assert!(matches!(p.judge("os", "system").verdict, Verdict::Dangerous { .. }));
    }
}
