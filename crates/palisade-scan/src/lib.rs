//! Palisade's model-artifact scanner: content-sniffed, bounded parsers and detectors.
//!
//! Invariant: nothing here executes, imports or deserialises what it reads. Parsers take
//! hostile bytes, bound memory, time and recursion, and turn anything malformed into a
//! finding or an "incomplete" status — never a panic.
//!
//! Entry point: [`scan_path`] scans one file into a [`FileReport`].

pub mod container;
pub mod describe;
pub mod formats;
pub mod pickle;
pub mod rules;
mod sniff;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::Path;
use std::time::{Duration, Instant};

use palisade_core::{FileReport, Location};

pub use pickle::policy::{AllowPattern, Policy, POLICY_VERSION};
pub use sniff::Kind;

/// A seekable byte source; containers recurse through `&mut dyn ReadSeek` so nesting
/// depth is a runtime bound, not a type.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Resource limits for one file.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Files larger than this are not read (error, exit code 2).
    pub max_file_size: u64,
    /// Wall-clock budget per file; when it runs out the file is reported incomplete.
    pub timeout: Duration,
    /// Depth of archives in archives and pickles in pickles.
    pub max_depth: u32,
    /// Largest compressed or nested member read into memory to be scanned.
    pub max_member_in_memory: u64,
    /// Most bytes one compressed stream may expand to (decompression-bomb bound).
    pub max_decompressed: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_size: 64 << 30,
            timeout: Duration::from_secs(300),
            max_depth: 8,
            max_member_in_memory: 256 << 20,
            max_decompressed: 32 << 30,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    pub limits: Limits,
    pub policy: Policy,
}

/// A deadline shared by everything that scans one file.
#[derive(Clone, Debug)]
pub struct Budget {
    deadline: Instant,
    timeout: Duration,
}

impl Budget {
    pub fn new(timeout: Duration) -> Self {
        Budget {
            deadline: Instant::now() + timeout,
            timeout,
        }
    }

    /// Why the budget is spent, if it is.
    pub fn exhausted(&self) -> Option<String> {
        (Instant::now() >= self.deadline).then(|| format!("timed out after {:?} (--timeout)", self.timeout))
    }
}

/// Context handed down through containers and nested streams.
pub struct ScanCtx<'a> {
    pub opts: &'a ScanOptions,
    pub budget: &'a Budget,
    pub depth: u32,
    /// The file on disk being scanned, while scanning its top level (formats that
    /// reference sibling files, like ONNX external data, resolve against it).
    pub origin: Option<&'a Path>,
}

impl<'a> ScanCtx<'a> {
    /// The context for the top level of one file (`origin` is its path on disk, if any).
    pub fn root(opts: &'a ScanOptions, budget: &'a Budget, origin: Option<&'a Path>) -> Self {
        ScanCtx {
            opts,
            budget,
            depth: 0,
            origin,
        }
    }

    pub fn deeper(&self) -> ScanCtx<'a> {
        ScanCtx {
            opts: self.opts,
            budget: self.budget,
            depth: self.depth + 1,
            origin: None,
        }
    }

    fn reader_config(&self) -> pickle::reader::ReaderConfig {
        pickle::reader::ReaderConfig {
            nested_max: self.opts.limits.max_member_in_memory.min(64 << 20) as usize,
            ..Default::default()
        }
    }

    fn vm_limits(&self) -> pickle::vm::VmLimits {
        pickle::vm::VmLimits::default()
    }

    /// True (and the report marked incomplete) when nesting is too deep.
    fn too_deep(&self, report: &mut FileReport, what: &str) -> bool {
        if self.depth >= self.opts.limits.max_depth {
            report.mark_incomplete(format!(
                "{what} nested deeper than {} levels (not scanned)",
                self.opts.limits.max_depth
            ));
            return true;
        }
        false
    }
}

/// Scans the file at `path`, reporting it as `display`.
pub fn scan_path(path: &Path, display: &str, opts: &ScanOptions) -> FileReport {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return FileReport::error(display, 0, format!("cannot read: {e}")),
    };
    let ft = meta.file_type();
    if !ft.is_file() {
        return FileReport::error(
            display,
            0,
            format!("not a regular file ({}); not read", describe_type(&ft)),
        );
    }
    let size = meta.len();
    if size > opts.limits.max_file_size {
        return FileReport::error(
            display,
            size,
            format!(
                "{size} bytes is larger than the {} byte limit (--max-file-size); not scanned",
                opts.limits.max_file_size
            ),
        );
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return FileReport::error(display, size, format!("cannot open: {e}")),
    };
    let mut report = FileReport::new(display, size);
    let budget = Budget::new(opts.limits.timeout);
    let ctx = ScanCtx::root(opts, &budget, Some(path));
    let mut reader = BufReader::with_capacity(64 << 10, file);
    scan_seekable(&mut reader, size, &Location::new(display), &ctx, &mut report);
    report
}

/// Scans bytes already in memory (stdin, tests, fuzzing).
pub fn scan_bytes(bytes: &[u8], display: &str, opts: &ScanOptions) -> FileReport {
    let mut report = FileReport::new(display, bytes.len() as u64);
    let budget = Budget::new(opts.limits.timeout);
    let ctx = ScanCtx::root(opts, &budget, None);
    let mut cursor = std::io::Cursor::new(bytes);
    scan_seekable(
        &mut cursor,
        bytes.len() as u64,
        &Location::new(display),
        &ctx,
        &mut report,
    );
    report
}

#[cfg(unix)]
fn describe_type(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a file"
    }
}

#[cfg(not(unix))]
fn describe_type(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Reads up to `n` bytes from the start of a seekable stream and rewinds.
fn read_head(r: &mut dyn ReadSeek, n: usize) -> std::io::Result<Vec<u8>> {
    r.rewind()?;
    let mut head = Vec::with_capacity(n);
    (&mut *r).take(n as u64).read_to_end(&mut head)?;
    r.rewind()?;
    Ok(head)
}

/// Sniffs and scans a seekable stream of `size` bytes.
pub fn scan_seekable(r: &mut dyn ReadSeek, size: u64, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    let head = match read_head(r, pickle::SNIFF_BYTES) {
        Ok(h) => h,
        Err(e) => {
            report.mark_incomplete(format!("read error: {e}"));
            return;
        }
    };
    match sniff::sniff(&head, &ctx.opts.policy) {
        Kind::Zip => container::zip::scan(r, size, loc, ctx, report),
        Kind::Safetensors => formats::safetensors::scan(r, size, loc, ctx, report),
        Kind::SevenZip => container::sevenz::scan(r, size, loc, ctx, report),
        Kind::Protobuf => formats::protobuf::scan(r, size, loc, ctx, report),
        Kind::Hdf5 => scan_hdf5(r, size, loc, ctx, report),
        Kind::Gguf => {
            let _ = r.rewind();
            formats::gguf::scan(&mut BufReader::new(r), Some(size), loc, ctx, report);
        }
        other => {
            let mut buffered = BufReader::new(r);
            scan_stream_kind(other, &mut buffered, Some(size), loc, ctx, report);
        }
    }
}

/// HDF5: a Keras `.h5` model keeps its configuration in the root group's `model_config`
/// attribute, read with the minimal HDF5 reader. Where that reader cannot follow the
/// layout, the first 64 MiB are searched for the configuration instead.
fn scan_hdf5(r: &mut dyn ReadSeek, size: u64, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    const WINDOW: u64 = 64 << 20;
    report.add_format("hdf5");
    let mloc = loc.member("model_config");
    match formats::hdf5::root_attributes(r, size) {
        Ok(attrs) => {
            if let Some(text) = attrs
                .iter()
                .find(|a| a.name == "model_config")
                .and_then(|a| a.text.as_deref())
            {
                report.add_format("keras-h5");
                match serde_json::from_str(text) {
                    Ok(config) => formats::keras::check_config(&config, &ctx.opts.policy, &mloc, report),
                    Err(e) => report.mark_incomplete(format!("model_config is not valid JSON: {e}")),
                }
            }
            return;
        }
        Err(why) => tracing::debug!(%why, "HDF5 reader could not follow the file; searching for model_config"),
    }
    let mut bytes = Vec::new();
    if r.rewind().is_err() || (&mut *r).take(WINDOW).read_to_end(&mut bytes).is_err() {
        report.mark_incomplete("read error in HDF5 file");
        return;
    }
    match formats::keras::find_h5_model_config(&bytes) {
        Some(config) => {
            report.add_format("keras-h5");
            formats::keras::check_config(&config, &ctx.opts.policy, &mloc, report);
        }
        None if bytes.windows(12).any(|w| w == b"model_config") => {
            report.mark_incomplete("HDF5 file names a model_config that could not be read");
        }
        None => {}
    }
}

/// Sniffs and scans a forward-only stream (a compressed member, a tar entry).
pub fn scan_stream(r: &mut dyn BufRead, loc: &Location, ctx: &ScanCtx, report: &mut FileReport) {
    let mut head = Vec::with_capacity(pickle::SNIFF_BYTES);
    if let Err(e) = (&mut *r).take(pickle::SNIFF_BYTES as u64).read_to_end(&mut head) {
        report.mark_incomplete(format!("read error: {e}"));
        return;
    }
    let kind = sniff::sniff(&head, &ctx.opts.policy);
    let mut chained = BufReader::new(std::io::Cursor::new(head).chain(r));
    if kind.needs_seek() {
        // Random access: read it into memory if it is small enough.
        let cap = ctx.opts.limits.max_member_in_memory;
        let mut buf = Vec::new();
        match (&mut chained).take(cap + 1).read_to_end(&mut buf) {
            Ok(n) if (n as u64) <= cap => {
                let len = buf.len() as u64;
                scan_seekable(&mut std::io::Cursor::new(buf), len, loc, ctx, report);
            }
            Ok(_) => report.mark_incomplete(format!(
                "{loc}: member larger than {cap} bytes needs random access (not scanned)"
            )),
            Err(e) => report.mark_incomplete(format!("read error: {e}")),
        }
        return;
    }
    scan_stream_kind(kind, &mut chained, None, loc, ctx, report);
}

fn scan_stream_kind(
    kind: Kind,
    r: &mut dyn BufRead,
    size: Option<u64>,
    loc: &Location,
    ctx: &ScanCtx,
    report: &mut FileReport,
) {
    match kind {
        Kind::Pickle => {
            pickle::scan_stream(r, 0, loc, ctx, report);
        }
        Kind::Npy => container::npy::scan(r, loc, ctx, report),
        Kind::Gguf => formats::gguf::scan(r, None, loc, ctx, report),
        Kind::Json => formats::hfconfig::scan(r, loc, report),
        Kind::Tar => container::tar::scan(r, loc, ctx, report),
        Kind::Gzip | Kind::Zlib | Kind::JoblibZfile | Kind::Bzip2 | Kind::Xz | Kind::Zstd => {
            container::compressed::scan(kind, r, size, loc, ctx, report)
        }
        Kind::Compressed(name) => {
            report.add_format(name);
            report.mark_incomplete(format!(
                "{name}-compressed data is not decompressed by this version; contents not scanned"
            ));
        }
        Kind::Zip | Kind::Safetensors | Kind::SevenZip | Kind::Protobuf | Kind::Hdf5 | Kind::Unknown => {}
    }
}
