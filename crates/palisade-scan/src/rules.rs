//! Every rule the artifact scanner can report. Codes are stable and never reused.
//!
//! Each rule's documentation is its doc comment, with the headings `What it does`,
//! `Why is this bad`, `Example`, `Remediation` and `References`; `palisade rule CODE`
//! prints it and the SARIF output carries it as help text.

use palisade_core::{declare_rule, Rule};

declare_rule! {
    /// ## What it does
    /// Flags a pickle that calls a known-dangerous callable (process execution, code
    /// evaluation, file or network access, nested deserialisation) while it is loaded.
    ///
    /// ## Why is this bad
    /// Unpickling runs every `REDUCE`, `INST`, `OBJ`, `NEWOBJ` and forwarded call in the
    /// stream. A model file that calls `os.system` or `builtins.eval` runs the attacker's
    /// code on the machine that loads it, with that user's privileges (MITRE ATLAS
    /// AML.T0011.000 Unsafe AI Artifacts, AML.T0010 AI Supply Chain Compromise).
    ///
    /// ## Example
    /// A PyTorch checkpoint whose `data.pkl` contains
    /// `GLOBAL os system` + `('touch /tmp/x',)` + `REDUCE`.
    ///
    /// ## Remediation
    /// Do not load the file. Obtain the model from a trusted source, prefer
    /// weights-only formats (safetensors), and load PyTorch files with
    /// `torch.load(weights_only=True)`.
    ///
    /// ## References
    /// CWE-502 Deserialization of Untrusted Data; MITRE ATLAS AML.T0011.000, AML.T0010.003;
    /// OWASP LLM03:2025 Supply Chain, ML06:2023 AI Supply Chain Attacks.
    pub static PKL001 = {
        code: "PKL001",
        name: "dangerous-callable-invoked",
        severity: Critical,
        status: Stable,
        references: ["CWE-502", "AML.T0011.000", "AML.T0010.003", "LLM03:2025", "ML06:2023"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a pickle that imports a known-dangerous callable without a call the scanner
    /// can see.
    ///
    /// ## Why is this bad
    /// A dangerous global in a model file has no legitimate use: it can still be called
    /// by code that handles the loaded object (a `defaultdict` factory, a hook, a
    /// `__setstate__`), or by a gadget the scanner does not model.
    ///
    /// ## Example
    /// `GLOBAL subprocess Popen` stored as a dictionary value.
    ///
    /// ## Remediation
    /// Treat the file as malicious unless its producer can explain the import; re-export
    /// the weights in a data-only format.
    ///
    /// ## References
    /// CWE-502; MITRE ATLAS AML.T0011.000; OWASP LLM03:2025, ML06:2023.
    pub static PKL002 = {
        code: "PKL002",
        name: "dangerous-callable-imported",
        severity: High,
        status: Stable,
        references: ["CWE-502", "AML.T0011.000", "LLM03:2025", "ML06:2023"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a callable that is on no allowlist: medium when the pickle calls it, low
    /// when it only references it.
    ///
    /// ## Why is this bad
    /// Palisade is deny-by-default. Denylists are bypassed by every new gadget (dozens of
    /// published advisories against denylist scanners); an unknown callable is never
    /// reported clean. Framework allowlists cover PyTorch, NumPy, scikit-learn, joblib,
    /// pandas and Hugging Face training artifacts.
    ///
    /// ## Example
    /// `__main__.MyModel` from a model pickled in a training script, or an obscure
    /// standard-library function used as a gadget.
    ///
    /// ## Remediation
    /// If the callable is your own trusted code, add it to `[scan] allow` in
    /// `palisade.toml` (`package.module.Name`, or `package.module.*` for its classes).
    /// Otherwise investigate what it does when called with the evidence's arguments.
    ///
    /// ## References
    /// CWE-502; MITRE ATLAS AML.T0011.000; OWASP LLM03:2025.
    pub static PKL003 = {
        code: "PKL003",
        name: "unlisted-callable",
        severity: Medium,
        status: Stable,
        references: ["CWE-502", "AML.T0011.000", "LLM03:2025"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags imports and calls whose target cannot be resolved without running the
    /// pickle: `STACK_GLOBAL` with operands that are not plain strings, resolver calls
    /// (`__import__`, `_ufunc_reconstruct`, …) with computed operands, and calls of values
    /// that are not imported names.
    ///
    /// ## Why is this bad
    /// Legitimate pickles name their callables with literal strings. Computing a name is
    /// how payloads hide from scanners that only read `GLOBAL` opcodes.
    ///
    /// ## Example
    /// `STACK_GLOBAL` whose module operand is the result of a `REDUCE`.
    ///
    /// ## Remediation
    /// Treat as malicious; do not load.
    ///
    /// ## References
    /// CWE-502; MITRE ATLAS AML.T0011.000.
    pub static PKL004 = {
        code: "PKL004",
        name: "unresolvable-callable",
        severity: High,
        status: Stable,
        references: ["CWE-502", "AML.T0011.000"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a pickle stream that is truncated or malformed: an unknown opcode, a bad
    /// argument, a stack underflow, a missing memo entry, or no `STOP`.
    ///
    /// ## Why is this bad
    /// Unpicklers execute opcodes as they read them, so everything before the break has
    /// already run when the load fails. Breaking the stream right after a payload
    /// ("nullifAI") makes scanners that reject broken files skip it while the payload
    /// still runs. The finding's evidence lists what was called before the break.
    ///
    /// ## Example
    /// `GLOBAL os system`, `REDUCE`, then garbage instead of `STOP`.
    ///
    /// ## Remediation
    /// Do not load the file; obtain an intact copy from its producer.
    ///
    /// ## References
    /// CWE-502; MITRE ATLAS AML.T0011.000.
    pub static PKL005 = {
        code: "PKL005",
        name: "broken-pickle-stream",
        severity: Medium,
        status: Stable,
        references: ["CWE-502", "AML.T0011.000"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a pickle that modifies an imported module, class or function in place:
    /// `BUILD`, `SETITEM(S)`, `APPEND(S)` or `ADDITEMS` applied to an imported name.
    ///
    /// ## Why is this bad
    /// `BUILD` on a class or module sets its attributes; `SETITEMS` on `os.environ`
    /// changes the environment. Either can replace code the application later runs.
    ///
    /// ## Example
    /// `GLOBAL torch load`, `{...}`, `BUILD`.
    ///
    /// ## Remediation
    /// Treat as malicious; do not load.
    ///
    /// ## References
    /// CWE-502, CWE-915; MITRE ATLAS AML.T0011.000.
    pub static PKL006 = {
        code: "PKL006",
        name: "imported-object-mutation",
        severity: High,
        status: Stable,
        references: ["CWE-502", "CWE-915", "AML.T0011.000"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags `EXT1`, `EXT2` and `EXT4` opcodes, which import a callable through the
    /// loading process's `copyreg` extension registry.
    ///
    /// ## Why is this bad
    /// What an extension code means is decided by the process that loads the file, not by
    /// the file, so it cannot be judged statically. Standard model files never use them.
    ///
    /// ## Example
    /// `EXT1 0x01` followed by `REDUCE`.
    ///
    /// ## Remediation
    /// Re-export the model without extension codes.
    ///
    /// ## References
    /// CWE-502; MITRE ATLAS AML.T0011.000.
    pub static PKL007 = {
        code: "PKL007",
        name: "extension-registry-import",
        severity: High,
        status: Stable,
        references: ["CWE-502", "AML.T0011.000"],
    };
}

declare_rule! {
    /// ## What it does
    /// Reports a pickle embedded in a byte or text argument of another pickle, raw or
    /// base64- or hex-encoded. The embedded pickle is scanned and its own findings are
    /// reported at its location.
    ///
    /// ## Why is this bad
    /// Nesting hides a payload from scanners that read one level; an outer
    /// `pickle.loads` call runs the inner one.
    ///
    /// ## Example
    /// `GLOBAL pickle loads` + `(BINBYTES <pickle>,)` + `REDUCE`.
    ///
    /// ## Remediation
    /// Review the inner findings; a nested pickle has no place in model weights.
    ///
    /// ## References
    /// CWE-502; MITRE ATLAS AML.T0011.000.
    pub static PKL008 = {
        code: "PKL008",
        name: "embedded-pickle",
        severity: Low,
        status: Stable,
        references: ["CWE-502", "AML.T0011.000"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a memo slot that is written twice.
    ///
    /// ## Why is this bad
    /// Picklers never reuse a memo slot. Overwriting one makes the same `GET` refer to
    /// different objects at different points, a trick used to confuse scanners that
    /// resolve names from the memo once.
    ///
    /// ## Example
    /// `BINUNICODE 'builtins' BINPUT 0 … BINUNICODE 'os' BINPUT 0 … BINGET 0 STACK_GLOBAL`.
    ///
    /// ## Remediation
    /// Treat the file as crafted by hand; review the other findings.
    ///
    /// ## References
    /// CWE-502.
    pub static PKL009 = {
        code: "PKL009",
        name: "memo-slot-reuse",
        severity: Low,
        status: Preview,
        references: ["CWE-502"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags an imported name that walks through dunder attributes such as
    /// `__builtins__`, `__globals__`, `__dict__` or `__subclasses__`; critical when it is
    /// called.
    ///
    /// ## Why is this bad
    /// Protocol 4 resolves dotted names attribute by attribute, so `numpy` +
    /// `__builtins__.eval` reaches `eval` through a harmless-looking module. No model needs
    /// interpreter internals.
    ///
    /// ## Example
    /// `STACK_GLOBAL('collections', 'OrderedDict.__init__.__globals__')`.
    ///
    /// ## Remediation
    /// Treat as malicious; do not load.
    ///
    /// ## References
    /// CWE-502; MITRE ATLAS AML.T0011.000.
    pub static PKL010 = {
        code: "PKL010",
        name: "dunder-attribute-walk",
        severity: High,
        status: Stable,
        references: ["CWE-502", "AML.T0011.000"],
    };
}

declare_rule! {
    /// ## What it does
    /// Reports a NumPy `.npy` array (or `.npz` member) with an object dtype, whose data is
    /// a pickle. The pickle is scanned and its own findings reported.
    ///
    /// ## Why is this bad
    /// Loading it needs `numpy.load(..., allow_pickle=True)`, which runs the pickle.
    /// Numeric arrays never need it.
    ///
    /// ## Example
    /// `np.save("x.npy", np.array([obj], dtype=object))`.
    ///
    /// ## Remediation
    /// Store numeric dtypes; keep `allow_pickle=False` when loading.
    ///
    /// ## References
    /// CWE-502; MITRE ATLAS AML.T0011.000.
    pub static NPY001 = {
        code: "NPY001",
        name: "numpy-object-array",
        severity: Info,
        status: Stable,
        references: ["CWE-502", "AML.T0011.000"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a zip container (a PyTorch checkpoint, an `.npz`) whose structure disagrees
    /// with itself: a local header name that differs from the central directory, a CRC
    /// that does not match, encryption flags on readable data, duplicate names, members
    /// outside the archive's folder, or data present only in local headers.
    ///
    /// ## Why is this bad
    /// PyTorch reads zips leniently (central-directory names, no CRC check), while
    /// Python's `zipfile` refuses such files. Scanners built on `zipfile` therefore skip
    /// what PyTorch loads. Palisade reads every member the lenient way and reports the
    /// inconsistency itself.
    ///
    /// ## Example
    /// `archive/data.pkl` in the central directory, `archive/data.txt` in its local header.
    ///
    /// ## Remediation
    /// Re-save the model with its framework; reject files that were edited by hand.
    ///
    /// ## References
    /// CWE-20; MITRE ATLAS AML.T0010.003.
    pub static ARC001 = {
        code: "ARC001",
        name: "inconsistent-archive",
        severity: Medium,
        status: Preview,
        references: ["CWE-20", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a safetensors header that the reference implementation would refuse: a
    /// length field larger than the file or than Hugging Face's 100 MB limit, a header
    /// that is not a JSON object, or a key that appears twice.
    ///
    /// ## Why is this bad
    /// safetensors is trusted because it is data only; that trust rests on every loader
    /// parsing the header the same way. Oversized lengths target loaders that allocate
    /// what the file claims; duplicate keys make two loaders see two different models.
    ///
    /// ## Example
    /// A header length of 2^40 on a 1 KB file; `{"w": {...}, "w": {...}}`.
    ///
    /// ## Remediation
    /// Re-export the weights with the `safetensors` library; reject hand-edited files.
    ///
    /// ## References
    /// CWE-20, CWE-789; MITRE ATLAS AML.T0010.003.
    pub static SFT001 = {
        code: "SFT001",
        name: "safetensors-invalid-header",
        severity: High,
        status: Stable,
        references: ["CWE-20", "CWE-789", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags safetensors tensors whose declared layout is inconsistent: a byte range that
    /// does not match dtype × shape, ranges that overlap, holes or trailing bytes in the
    /// data buffer, ranges past its end, unknown dtypes.
    ///
    /// ## Why is this bad
    /// Overlapping or out-of-bounds ranges make loaders read memory they should not, or
    /// two tensors alias the same bytes; unreferenced bytes are room to smuggle a payload
    /// past tools that only read the header.
    ///
    /// ## Example
    /// `"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {... [4, 12]}`.
    ///
    /// ## Remediation
    /// Re-export the weights with the `safetensors` library.
    ///
    /// ## References
    /// CWE-20, CWE-125; MITRE ATLAS AML.T0010.003.
    pub static SFT002 = {
        code: "SFT002",
        name: "safetensors-bad-tensor-layout",
        severity: High,
        status: Stable,
        references: ["CWE-20", "CWE-125", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a safetensors `__metadata__` entry whose value is not a string.
    ///
    /// ## Why is this bad
    /// The format allows only string-to-string metadata; nested objects and numbers are
    /// rejected by the reference parser and are a place to smuggle structured data to
    /// tools that render or evaluate metadata.
    ///
    /// ## Example
    /// `"__metadata__": {"config": {"nested": 1}}`.
    ///
    /// ## Remediation
    /// Store metadata as strings (JSON-encode structured values yourself).
    ///
    /// ## References
    /// CWE-20; MITRE ATLAS AML.T0010.003.
    pub static SFT003 = {
        code: "SFT003",
        name: "safetensors-metadata-not-string",
        severity: Medium,
        status: Stable,
        references: ["CWE-20", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a GGUF header that does not hold together: an unsupported version, counts or
    /// lengths that cannot fit in the file, unknown value types, tensors with more than
    /// four dimensions or data past the end of the file.
    ///
    /// ## Why is this bad
    /// GGUF loaders written in C and C++ have had heap overflows from exactly these
    /// fields (e.g. the 2024 llama.cpp and ggml advisories on oversized string and array
    /// lengths). A well-formed model never needs them.
    ///
    /// ## Example
    /// A metadata count of 2^64-1, or a string length larger than the file.
    ///
    /// ## Remediation
    /// Reject the file; obtain the model from its original producer.
    ///
    /// ## References
    /// CWE-20, CWE-787; MITRE ATLAS AML.T0010.003.
    pub static GGF001 = {
        code: "GGF001",
        name: "gguf-malformed-header",
        severity: High,
        status: Stable,
        references: ["CWE-20", "CWE-787", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a chat template (GGUF `tokenizer.chat_template`, Hugging Face
    /// `chat_template`) that walks Python object internals: `_`-prefixed attributes or
    /// subscripts (`__class__`, `__globals__`, `_TemplateReference__context`), the `attr`
    /// filter with such or computed names, dunder names assembled from string pieces, or
    /// process and import attributes (`os.popen`, `__import__`).
    ///
    /// ## Why is this bad
    /// Inference servers render chat templates with Jinja2 on every request; without a
    /// sandbox these shapes run commands on the server (CVE-2024-34359, llama-cpp-python).
    /// No chat template needs them.
    ///
    /// ## Example
    /// `{{ cycler.__init__.__globals__.os.popen('id').read() }}`.
    ///
    /// ## Remediation
    /// Do not serve the model; replace the template with the producer's original and
    /// render templates in a sandboxed environment.
    ///
    /// ## References
    /// CWE-1336, CVE-2024-34359; MITRE ATLAS AML.T0011.000, AML.T0010.003; OWASP LLM03:2025.
    pub static GGF002 = {
        code: "GGF002",
        name: "chat-template-injection",
        severity: Critical,
        status: Stable,
        references: ["CWE-1336", "CVE-2024-34359", "AML.T0011.000", "AML.T0010.003", "LLM03:2025"],
    };
}

declare_rule! {
    /// ## What it does
    /// Reports a chat template that does not parse as Jinja (minijinja's parser). Its
    /// tokens are still analysed for injection shapes.
    ///
    /// ## Why is this bad
    /// Usually harmless (templates written for a Jinja extension), but a template that a
    /// scanner cannot parse is also how injection hides from AST-based checks.
    ///
    /// ## Example
    /// `{% for x in %}`.
    ///
    /// ## Remediation
    /// Check the template renders with your serving stack; prefer the producer's original.
    ///
    /// ## References
    /// CWE-1336.
    pub static GGF003 = {
        code: "GGF003",
        name: "chat-template-unparseable",
        severity: Info,
        status: Preview,
        references: ["CWE-1336"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags an archive member whose path is absolute, has a drive letter, or contains a
    /// `..` component ("zip slip").
    ///
    /// ## Why is this bad
    /// Extracting the archive writes outside the target directory: over a shell profile, a
    /// Python package or another model. Model hubs and loaders extract archives routinely.
    ///
    /// ## Example
    /// A zip member named `../../home/user/.bashrc`.
    ///
    /// ## Remediation
    /// Reject the archive; never extract it with a tool that does not sanitise paths.
    ///
    /// ## References
    /// CWE-22; MITRE ATLAS AML.T0010.003.
    pub static ARC002 = {
        code: "ARC002",
        name: "archive-path-traversal",
        severity: High,
        status: Stable,
        references: ["CWE-22", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a symbolic or hard link (in a tar or zip, or an ONNX external-data file in a
    /// model directory) whose target is absolute or climbs out of the archive or model
    /// directory.
    ///
    /// ## Why is this bad
    /// Following the link reads or overwrites files outside the model: `/etc/passwd`
    /// loaded as weights and served back, or a later member written through the link.
    ///
    /// ## Example
    /// A tar member `weights.bin` that is a symlink to `/etc/passwd`.
    ///
    /// ## Remediation
    /// Reject the archive; extract with links disabled.
    ///
    /// ## References
    /// CWE-59, CWE-22; MITRE ATLAS AML.T0010.003.
    pub static ARC003 = {
        code: "ARC003",
        name: "archive-link-escape",
        severity: High,
        status: Stable,
        references: ["CWE-59", "CWE-22", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags compressed data that expands more than 100-fold past 64 MiB (or past the
    /// configured total): a zip member by its declared sizes, a gzip/bzip2/xz/zstd stream
    /// or 7z entry as it is decompressed — decompression stops at the limit.
    ///
    /// ## Why is this bad
    /// Decompression bombs exhaust memory and disk of whatever unpacks them: CI runners,
    /// model registries, inference hosts.
    ///
    /// ## Example
    /// A 200 KB `.tar.gz` that unpacks to 200 MB of zeros.
    ///
    /// ## Remediation
    /// Reject the archive.
    ///
    /// ## References
    /// CWE-409; MITRE ATLAS AML.T0029.
    pub static ARC004 = {
        code: "ARC004",
        name: "decompression-bomb",
        severity: High,
        status: Stable,
        references: ["CWE-409", "AML.T0029"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags an ONNX tensor whose external data `location` is absolute, contains `..`, or
    /// resolves (through a symbolic link) outside the model's directory.
    ///
    /// ## Why is this bad
    /// ONNX runtimes read external data from the named file; an escaping location turns
    /// model loading into arbitrary file read (CVE-2022-25882, CVE-2024-27318), and the
    /// file's bytes can come back as model output.
    ///
    /// ## Example
    /// `external_data { key: "location" value: "../../../etc/passwd" }`.
    ///
    /// ## Remediation
    /// Keep external data files next to the model with plain relative names; re-export the
    /// model with `onnx.save_model(..., save_as_external_data=True)`.
    ///
    /// ## References
    /// CWE-22, CVE-2022-25882, CVE-2024-27318; MITRE ATLAS AML.T0010.003.
    pub static ONX001 = {
        code: "ONX001",
        name: "onnx-external-data-escape",
        severity: High,
        status: Stable,
        references: ["CWE-22", "CVE-2022-25882", "CVE-2024-27318", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags an ONNX node whose operator domain is neither standard ONNX nor a mainstream
    /// runtime's (`com.microsoft`, …) nor a function defined in the model.
    ///
    /// ## Why is this bad
    /// Custom domains resolve to operator libraries loaded by the runtime; some run Python
    /// (onnxruntime-extensions' `PyOp` in `ai.onnx.contrib`) or native code shipped beside
    /// the model.
    ///
    /// ## Example
    /// A node `op_type: "Exec" domain: "com.evil"`.
    ///
    /// ## Remediation
    /// Confirm which library implements the domain and that you trust it; prefer standard
    /// operators.
    ///
    /// ## References
    /// CWE-829; MITRE ATLAS AML.T0011.000, AML.T0010.003.
    pub static ONX002 = {
        code: "ONX002",
        name: "onnx-custom-op-domain",
        severity: High,
        status: Stable,
        references: ["CWE-829", "AML.T0011.000", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Reports model-local functions (`ModelProto.functions`). Their bodies are checked
    /// like the main graph.
    ///
    /// ## Why is this bad
    /// Usually produced by modern exporters; reported so reviewers know part of the graph
    /// is defined inside the model rather than by the ONNX standard.
    ///
    /// ## Example
    /// A function `custom::Gelu` with five nodes.
    ///
    /// ## Remediation
    /// None needed when the exporter is known.
    ///
    /// ## References
    /// CWE-829.
    pub static ONX003 = {
        code: "ONX003",
        name: "onnx-local-function",
        severity: Info,
        status: Preview,
        references: ["CWE-829"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags ONNX tensors that declare negative dimensions or more than 1 TiB of data.
    ///
    /// ## Why is this bad
    /// Runtimes allocate what a tensor declares; absurd declarations are denial-of-service
    /// and memory-corruption bait.
    ///
    /// ## Example
    /// An initializer with `dims: [1099511627776]` and no data.
    ///
    /// ## Remediation
    /// Reject the model.
    ///
    /// ## References
    /// CWE-789; MITRE ATLAS AML.T0029.
    pub static ONX004 = {
        code: "ONX004",
        name: "onnx-tensor-size",
        severity: Medium,
        status: Stable,
        references: ["CWE-789", "AML.T0029"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags TensorFlow graph nodes (SavedModel or frozen GraphDef, including function
    /// bodies) whose op runs Python (`PyFunc`, `EagerPyFunc`: critical) or touches the
    /// serving host's file system (`ReadFile`, `WriteFile`, `MatchingFiles`, …: high), and
    /// checkpoint ops (`SaveV2`, `RestoreV2`, …) outside the saver's scope (medium).
    ///
    /// ## Why is this bad
    /// A served graph runs these ops on every request: file reads exfiltrate secrets,
    /// writes plant files, Python ops run arbitrary code.
    ///
    /// ## Example
    /// A node `op: "WriteFile"` writing `/tmp/x`.
    ///
    /// ## Remediation
    /// Re-export the model without these ops; serve with an op allowlist.
    ///
    /// ## References
    /// CWE-94, CWE-73; MITRE ATLAS AML.T0011.000, AML.T0010.003.
    pub static TFM001 = {
        code: "TFM001",
        name: "tensorflow-dangerous-op",
        severity: High,
        status: Stable,
        references: ["CWE-94", "CWE-73", "AML.T0011.000", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a Keras `Lambda` layer (v3 `.keras` or HDF5 `.h5`): critical when it carries
    /// marshalled Python bytecode, high when it references a Python function.
    ///
    /// ## Why is this bad
    /// Keras rebuilds the Lambda's function from the stored bytecode and runs it when the
    /// model is loaded (with `safe_mode=False`, or through a bypass) or called
    /// (CVE-2024-3660).
    ///
    /// ## Example
    /// `{"class_name": "Lambda", "config": {"function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAA..."}}}}`.
    ///
    /// ## Remediation
    /// Replace Lambda layers with built-in or registered custom layers whose code you ship
    /// and review.
    ///
    /// ## References
    /// CWE-94, CVE-2024-3660; MITRE ATLAS AML.T0011.000, AML.T0010.003; OWASP LLM03:2025.
    pub static KER001 = {
        code: "KER001",
        name: "keras-lambda-layer",
        severity: Critical,
        status: Stable,
        references: ["CWE-94", "CVE-2024-3660", "AML.T0011.000", "AML.T0010.003", "LLM03:2025"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags objects and function references in a Keras configuration that Keras would
    /// import from outside its own modules (judged by the pickle policy: `subprocess.run`
    /// is critical, an unknown module is medium), and Keras's own functions that defeat
    /// safe mode or load further code or files (`enable_unsafe_deserialization`,
    /// `load_model`, `get_file`, `TFSMLayer`, `set_global_attribute`), and `TFOpLambda`
    /// layers calling file or Python ops.
    ///
    /// ## Why is this bad
    /// Keras resolves `module` + `class_name` by importing them, so the configuration is a
    /// call list; the 2025 safe_mode bypasses (CVE-2025-1550, CVE-2025-8747, CVE-2025-9906)
    /// all go through such references.
    ///
    /// ## Example
    /// `{"module": "subprocess", "class_name": "run", ...}` as a layer.
    ///
    /// ## Remediation
    /// Load models only with `safe_mode=True` on a patched Keras, and reject models that
    /// reference code outside Keras.
    ///
    /// ## References
    /// CWE-502, CVE-2025-1550, CVE-2025-8747, CVE-2025-9906; MITRE ATLAS AML.T0011.000.
    pub static KER002 = {
        code: "KER002",
        name: "keras-unsafe-reference",
        severity: Medium,
        status: Stable,
        references: ["CWE-502", "CVE-2025-1550", "CVE-2025-8747", "CVE-2025-9906", "AML.T0011.000"],
    };
}

declare_rule! {
    /// ## What it does
    /// Reports a Keras object registered under a custom name (`package>Class`).
    ///
    /// ## Why is this bad
    /// Loading it needs that package's code; what runs is whatever code is installed under
    /// that name on the loading host.
    ///
    /// ## Example
    /// `"registered_name": "my_package>MyLayer"`.
    ///
    /// ## Remediation
    /// Ship and review the custom code with the model; pin its version.
    ///
    /// ## References
    /// CWE-829; MITRE ATLAS AML.T0010.003.
    pub static KER003 = {
        code: "KER003",
        name: "keras-custom-object",
        severity: Low,
        status: Preview,
        references: ["CWE-829", "AML.T0010.003"],
    };
}

declare_rule! {
    /// ## What it does
    /// Flags a Hugging Face config with an `auto_map`: loading the model needs
    /// `trust_remote_code=True`, which imports Python files shipped in the repository.
    ///
    /// ## Why is this bad
    /// The model's own code runs with the loader's privileges; a compromised repository
    /// or a malicious fork only needs to change a `.py` file.
    ///
    /// ## Example
    /// `"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}`.
    ///
    /// ## Remediation
    /// Review the referenced Python files, pin the repository revision, or use an
    /// architecture that ships in `transformers`.
    ///
    /// ## References
    /// CWE-829, CWE-94; MITRE ATLAS AML.T0010.003, AML.T0011.000; OWASP LLM03:2025.
    pub static HFC001 = {
        code: "HFC001",
        name: "remote-code-required",
        severity: Medium,
        status: Stable,
        references: ["CWE-829", "CWE-94", "AML.T0010.003", "AML.T0011.000", "LLM03:2025"],
    };
}

/// Every rule of this crate, in code order.
pub static ALL: &[&Rule] = &[
    &PKL001, &PKL002, &PKL003, &PKL004, &PKL005, &PKL006, &PKL007, &PKL008, &PKL009, &PKL010, &NPY001, &ARC001,
    &SFT001, &SFT002, &SFT003, &GGF001, &GGF002, &GGF003, &ARC002, &ARC003, &ARC004, &ONX001, &ONX002, &ONX003,
    &ONX004, &TFM001, &KER001, &KER002, &KER003, &HFC001,
];
