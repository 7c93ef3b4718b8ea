//! Model serialization as OpenSSF Model Signing v1.0 defines it: a model (a directory or
//! a single file) becomes a list of resources — one per file, or one per fixed-size shard
//! of each file — each with a digest, ordered as the reference implementation orders them.
//!
//! Facts carried over from the reference implementation (sigstore/model-transparency,
//! `model_signing/_serialization` and `manifest.py`), so both tools produce the same
//! manifest for the same directory:
//! - resource names are POSIX paths relative to the model root; a single-file model has
//!   one resource named `.`; shards are named `path:start:end`, ends exclusive;
//! - resources sort by path *components* (Python's `PurePosixPath` ordering, so `a/b`
//!   sorts before `a.txt` although `.` < `/` in bytes), then by start and end offsets;
//! - files of size 0 are one resource with the empty digest in `files` mode and no
//!   resource in `shards` mode; shard digests carry the algorithm name
//!   `sha256-sharded-<shard size>`; `shards` with BLAKE3 falls back to `files`;
//! - ignored paths match by component prefix (an ignored directory hides everything under
//!   it); `.git`, `.gitattributes`, `.github` and `.gitignore` are ignored by default;
//! - symbolic links are an error unless allowed; an allowed link to a file is hashed as
//!   the file it points to, a link to a directory is not descended;
//! - the model's root digest is SHA-256 over the concatenated resource digests.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Default shard size of the reference implementation (1 GB, decimal).
pub const DEFAULT_SHARD_SIZE: u64 = 1_000_000_000;
/// Paths ignored unless `ignore_git_paths` is off.
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];
/// Read size per request for SHA-256: large enough that system-call overhead disappears,
/// small enough that the copied bytes are still in the L2 cache when they are hashed
/// (measured: 256 KiB beats 4 MiB by ~5% wall time on the bench machine).
const CHUNK: usize = 256 << 10;
/// BLAKE3 hashes each chunk on all cores, which pays off only for large chunks.
const BLAKE3_CHUNK: usize = 8 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Blake3,
}

impl HashAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Blake3 => "blake3",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sha256" => Some(HashAlgorithm::Sha256),
            "blake3" => Some(HashAlgorithm::Blake3),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Files,
    Shards { shard_size: u64 },
}

/// How to turn a model into a manifest.
#[derive(Clone, Debug)]
pub struct HashConfig {
    pub method: Method,
    pub hash: HashAlgorithm,
    pub allow_symlinks: bool,
    /// Paths relative to the model root, `/`-separated.
    pub ignore_paths: Vec<String>,
    pub ignore_git_paths: bool,
    /// Worker threads; 0 means one per CPU.
    pub threads: usize,
}

impl Default for HashConfig {
    fn default() -> Self {
        HashConfig {
            method: Method::Files,
            hash: HashAlgorithm::Sha256,
            allow_symlinks: false,
            ignore_paths: Vec::new(),
            ignore_git_paths: true,
            threads: 0,
        }
    }
}

impl HashConfig {
    /// The `serialization` object recorded in a signature, after the reference
    /// implementation's rules (BLAKE3 never shards).
    pub fn serialization(&self) -> Serialization {
        let mut ignore: BTreeSet<String> = self.ignore_paths.iter().filter_map(|p| normalize(p)).collect();
        if self.ignore_git_paths {
            ignore.extend(GIT_PATHS.iter().map(|s| s.to_string()));
        }
        let (method, shard_size) = match (self.method, self.hash) {
            (Method::Shards { shard_size }, HashAlgorithm::Sha256) => ("shards", Some(shard_size)),
            _ => ("files", None),
        };
        Serialization {
            method: method.to_owned(),
            hash_type: self.hash.name().to_owned(),
            shard_size,
            allow_symlinks: self.allow_symlinks,
            ignore_paths: ignore.into_iter().collect(),
        }
    }

    /// Rebuilds the configuration that produced a recorded serialization.
    pub fn from_serialization(s: &Serialization) -> Result<Self, HashError> {
        let hash = HashAlgorithm::parse(&s.hash_type)
            .ok_or_else(|| HashError::Unsupported(format!("hash_type {:?}", s.hash_type)))?;
        let method = match (s.method.as_str(), s.shard_size) {
            ("files", _) => Method::Files,
            ("shards", Some(size)) if size > 0 => Method::Shards { shard_size: size },
            ("shards", _) => return Err(HashError::Unsupported("shards without a positive shard_size".into())),
            (m, _) => return Err(HashError::Unsupported(format!("serialization method {m:?}"))),
        };
        Ok(HashConfig {
            method,
            hash,
            allow_symlinks: s.allow_symlinks,
            ignore_paths: s.ignore_paths.clone(),
            ignore_git_paths: false,
            threads: 0,
        })
    }
}

/// The `predicate.serialization` object of a model signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serialization {
    pub method: String,
    pub hash_type: String,
    /// The reference writes this through a protobuf `Struct`, so it arrives as `100.0`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole_number")]
    pub shard_size: Option<u64>,
    pub allow_symlinks: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_paths: Vec<String>,
}

fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v: Option<serde_json::Number> = Option::deserialize(d)?;
    let Some(n) = v else { return Ok(None) };
    if let Some(u) = n.as_u64() {
        return Ok(Some(u));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f > 0.0 && f < 9.0e15 => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!(
            "shard_size {n} is not a positive whole number"
        ))),
    }
}

/// One hashed piece of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub algorithm: String,
    pub digest: Vec<u8>,
}

/// A hashed model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub model_name: String,
    pub serialization: Serialization,
    /// In canonical order.
    pub resources: Vec<Resource>,
}

impl Manifest {
    /// SHA-256 over the concatenated resource digests: the model's digest, the subject of
    /// its signature and of every attestation about it.
    pub fn root_digest(&self) -> [u8; 32] {
        root_digest(&self.resources)
    }

    pub fn root_digest_hex(&self) -> String {
        hex::encode(self.root_digest())
    }

    pub fn total_files(&self) -> usize {
        self.resources
            .iter()
            .map(|r| resource_path(&self.serialization, &r.name))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

pub fn root_digest(resources: &[Resource]) -> [u8; 32] {
    let mut h = Sha256::new();
    for r in resources {
        h.update(&r.digest);
    }
    h.finalize().into()
}

/// The file path part of a resource name (`path:start:end` for shards).
pub fn resource_path<'a>(s: &Serialization, name: &'a str) -> &'a str {
    if s.method == "shards" {
        let mut it = name.rsplitn(3, ':');
        if let (Some(_), Some(_), Some(path)) = (it.next(), it.next(), it.next()) {
            return path;
        }
    }
    name
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: is a symbolic link; links are not signed unless allowed (--allow-symlinks)")]
    Symlink(PathBuf),
    #[error("{0}: not a regular file or directory (device, socket or FIFO), refusing to hash it")]
    Special(PathBuf),
    #[error("{0}: file name is not valid UTF-8, which signatures cannot name")]
    NonUtf8(PathBuf),
    #[error("{0}: the file changed size while it was hashed")]
    Changed(PathBuf),
    #[error("unsupported serialization: {0}")]
    Unsupported(String),
}

/// A file of the model to hash.
#[derive(Clone, Debug)]
struct Entry {
    components: Vec<String>,
    path: PathBuf,
    size: u64,
}

/// One unit of hashing work.
struct Item<'a> {
    entry: &'a Entry,
    start: u64,
    end: u64,
}

/// Normalises a relative ignore path into `/`-joined components; `None` when it leaves
/// the model root.
fn normalize(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

fn components_of(rel: &Path) -> Result<Vec<String>, HashError> {
    rel.components()
        .map(|c| {
            c.as_os_str()
                .to_str()
                .map(str::to_owned)
                .ok_or_else(|| HashError::NonUtf8(rel.to_path_buf()))
        })
        .collect()
}

/// The model's name as the reference implementation derives it.
pub fn model_name(root: &Path) -> String {
    match root.file_name().and_then(|n| n.to_str()) {
        Some(n) if !n.is_empty() && n != ".." => n.to_owned(),
        _ => std::fs::canonicalize(root)
            .ok()
            .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .unwrap_or_default(),
    }
}

/// Lists the files to hash. `only` restricts the walk to the given relative paths (used to
/// verify while ignoring files that were not signed).
fn collect(root: &Path, cfg: &HashConfig, only: Option<&BTreeSet<String>>) -> Result<Vec<Entry>, HashError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HashError::Io { path, source }
    };
    let root_meta = std::fs::symlink_metadata(root).map_err(io(root))?;
    if root_meta.file_type().is_symlink() && !cfg.allow_symlinks {
        return Err(HashError::Symlink(root.to_path_buf()));
    }
    let meta = std::fs::metadata(root).map_err(io(root))?;
    if meta.is_file() {
        return Ok(vec![Entry {
            components: Vec::new(),
            path: root.to_path_buf(),
            size: meta.len(),
        }]);
    }
    if !meta.is_dir() {
        return Err(HashError::Special(root.to_path_buf()));
    }
    let mut ignore: Vec<Vec<String>> = cfg
        .ignore_paths
        .iter()
        .filter_map(|p| normalize(p))
        .map(|p| p.split('/').filter(|c| !c.is_empty()).map(str::to_owned).collect())
        .collect();
    if cfg.ignore_git_paths {
        ignore.extend(GIT_PATHS.iter().map(|p| vec![p.to_string()]));
    }
    let ignored = |comps: &[String]| ignore.iter().any(|ig| comps.starts_with(ig));

    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root).follow_links(false).min_depth(1).into_iter();
    let walker = walker.filter_entry(|e| {
        let rel = e.path().strip_prefix(root).unwrap_or(e.path());
        match components_of(rel) {
            Ok(c) => !ignored(&c),
            Err(_) => true,
        }
    });
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
            HashError::Io { path, source: e.into() }
        })?;
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let components = components_of(rel)?;
        let ft = entry.file_type();
        let meta = if ft.is_symlink() {
            if !cfg.allow_symlinks {
                return Err(HashError::Symlink(entry.path().to_path_buf()));
            }
            std::fs::metadata(entry.path()).map_err(io(entry.path()))?
        } else if ft.is_dir() {
            continue;
        } else {
            entry.metadata().map_err(|e| HashError::Io {
                path: entry.path().to_path_buf(),
                source: e.into(),
            })?
        };
        if meta.is_dir() {
            continue; // a link to a directory: the reference does not descend
        }
        if !meta.is_file() {
            return Err(HashError::Special(entry.path().to_path_buf()));
        }
        if let Some(only) = only {
            if !only.contains(&components.join("/")) {
                continue;
            }
        }
        out.push(Entry {
            components,
            path: entry.path().to_path_buf(),
            size: meta.len(),
        });
    }
    Ok(out)
}

/// Hashes a model. `progress` is called with the number of bytes hashed as work advances.
pub fn hash_model(root: &Path, cfg: &HashConfig, progress: &(dyn Fn(u64) + Sync)) -> Result<Manifest, HashError> {
    hash_model_only(root, cfg, None, progress)
}

/// Total bytes [`hash_model`] will read, for progress bars.
pub fn planned_bytes(root: &Path, cfg: &HashConfig) -> Result<u64, HashError> {
    Ok(collect(root, cfg, None)?.iter().map(|e| e.size).sum())
}

/// Like [`hash_model`], restricted to the given relative file paths when `only` is set.
pub fn hash_model_only(
    root: &Path,
    cfg: &HashConfig,
    only: Option<&BTreeSet<String>>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Manifest, HashError> {
    let entries = collect(root, cfg, only)?;
    let serialization = cfg.serialization();
    let shard_size = serialization.shard_size;
    let mut items: Vec<Item> = Vec::new();
    for e in &entries {
        match shard_size {
            None => items.push(Item {
                entry: e,
                start: 0,
                end: e.size,
            }),
            Some(size) => {
                let mut start = 0;
                while start < e.size {
                    let end = e.size.min(start.saturating_add(size));
                    items.push(Item { entry: e, start, end });
                    start = end;
                }
            }
        }
    }
    // Longest first: the largest piece bounds the wall time, so start it at once.
    items.sort_by_key(|i| std::cmp::Reverse(i.end - i.start));

    let algorithm = match shard_size {
        Some(size) => format!("{}-sharded-{size}", cfg.hash.name()),
        None => cfg.hash.name().to_owned(),
    };
    let work = || {
        items
            .par_iter()
            .with_max_len(1)
            .map(|item| {
                let digest = hash_range(item, cfg.hash, shard_size.is_none(), progress)?;
                Ok((item.entry.components.clone(), item.start, item.end, digest))
            })
            .collect::<Result<Vec<_>, HashError>>()
    };
    let mut hashed = if cfg.threads > 0 {
        match rayon::ThreadPoolBuilder::new().num_threads(cfg.threads).build() {
            Ok(pool) => pool.install(work)?,
            Err(_) => work()?,
        }
    } else {
        work()?
    };
    hashed.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    let resources = hashed
        .into_iter()
        .map(|(comps, start, end, digest)| {
            let path = if comps.is_empty() {
                ".".to_owned()
            } else {
                comps.join("/")
            };
            let name = if shard_size.is_some() {
                format!("{path}:{start}:{end}")
            } else {
                path
            };
            Resource {
                name,
                algorithm: algorithm.clone(),
                digest,
            }
        })
        .collect();
    Ok(Manifest {
        model_name: model_name(root),
        serialization,
        resources,
    })
}

/// Hashes `[start, end)` of a file; `whole` also checks that nothing follows `end`.
fn hash_range(
    item: &Item,
    hash: HashAlgorithm,
    whole: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<u8>, HashError> {
    let path = &item.entry.path;
    let io = |source| HashError::Io {
        path: path.clone(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    if item.start > 0 {
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(item.start)).map_err(io)?;
    }
    let len = item.end - item.start;
    let mut reader = (&mut file).take(len);
    let chunk = if hash == HashAlgorithm::Blake3 {
        BLAKE3_CHUNK
    } else {
        CHUNK
    };
    let mut buf = vec![0u8; chunk.min(usize::try_from(len).unwrap_or(chunk)).max(1)];
    let mut sha = Sha256::new();
    let mut b3 = blake3::Hasher::new();
    let mut seen = 0u64;
    loop {
        let n = palisade_core::io::read_full(&mut reader, &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        match hash {
            HashAlgorithm::Sha256 => sha.update(&buf[..n]),
            HashAlgorithm::Blake3 => {
                b3.update_rayon(&buf[..n]);
            }
        }
        seen += n as u64;
        progress(n as u64);
    }
    if seen != len {
        return Err(HashError::Changed(path.clone()));
    }
    if whole {
        let mut probe = [0u8; 1];
        if file.read(&mut probe).map_err(io)? != 0 {
            return Err(HashError::Changed(path.clone()));
        }
    }
    Ok(match hash {
        HashAlgorithm::Sha256 => sha.finalize().to_vec(),
        HashAlgorithm::Blake3 => b3.finalize().as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, data: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn names(m: &Manifest) -> Vec<&str> {
        m.resources.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn order_is_by_path_components_not_bytes() {
        let d = tempfile::tempdir().unwrap();
        for p in ["a.txt", "a/b", "a-b", "B", "a/a.b/c", "a/a/c", "é"] {
            write(d.path(), p, p.as_bytes());
        }
        let m = hash_model(d.path(), &HashConfig::default(), &|_| {}).unwrap();
        assert_eq!(names(&m), ["B", "a/a/c", "a/a.b/c", "a/b", "a-b", "a.txt", "é"]);
    }

    #[test]
    fn digests_root_and_git_paths_follow_the_reference() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "w", b"hello\n");
        write(d.path(), "empty", b"");
        write(d.path(), ".git/HEAD", b"ref");
        write(d.path(), ".gitignore", b"x");
        let m = hash_model(d.path(), &HashConfig::default(), &|_| {}).unwrap();
        assert_eq!(names(&m), ["empty", "w"]);
        let empty = Sha256::digest(b"").to_vec();
        let w = Sha256::digest(b"hello\n").to_vec();
        assert_eq!(m.resources[0].digest, empty);
        assert_eq!(m.resources[1].digest, w);
        let mut cat = empty.clone();
        cat.extend(&w);
        assert_eq!(m.root_digest().to_vec(), Sha256::digest(&cat).to_vec());
        let all = hash_model(
            d.path(),
            &HashConfig {
                ignore_git_paths: false,
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap();
        assert_eq!(names(&all), [".git/HEAD", ".gitignore", "empty", "w"]);
    }

    #[test]
    fn shards_split_files_and_skip_empty_ones() {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..25u8).collect();
        write(d.path(), "f", &data);
        write(d.path(), "e", b"");
        let cfg = HashConfig {
            method: Method::Shards { shard_size: 10 },
            ..Default::default()
        };
        let m = hash_model(d.path(), &cfg, &|_| {}).unwrap();
        assert_eq!(names(&m), ["f:0:10", "f:10:20", "f:20:25"]);
        assert_eq!(m.resources[2].digest, Sha256::digest(&data[20..]).to_vec());
        assert_eq!(m.resources[0].algorithm, "sha256-sharded-10");
        assert_eq!(m.serialization.method, "shards");
        // BLAKE3 never shards.
        let b3 = HashConfig {
            hash: HashAlgorithm::Blake3,
            ..cfg
        };
        let m = hash_model(d.path(), &b3, &|_| {}).unwrap();
        assert_eq!(names(&m), ["e", "f"]);
        assert_eq!(m.resources[1].digest, blake3::hash(&data).as_bytes().to_vec());
    }

    #[test]
    fn a_single_file_model_is_named_dot_and_links_need_permission() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "m/model.bin", b"weights");
        let m = hash_model(&d.path().join("m/model.bin"), &HashConfig::default(), &|_| {}).unwrap();
        assert_eq!(names(&m), ["."]);
        assert_eq!(m.model_name, "model.bin");
        std::os::unix::fs::symlink("model.bin", d.path().join("m/link")).unwrap();
        let err = hash_model(&d.path().join("m"), &HashConfig::default(), &|_| {}).unwrap_err();
        assert!(matches!(err, HashError::Symlink(_)), "{err}");
        let cfg = HashConfig {
            allow_symlinks: true,
            ..Default::default()
        };
        let m = hash_model(&d.path().join("m"), &cfg, &|_| {}).unwrap();
        assert_eq!(names(&m), ["link", "model.bin"]);
        assert_eq!(m.resources[0].digest, m.resources[1].digest);
    }

    #[test]
    fn ignored_directories_hide_their_contents() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "keep/a", b"1");
        write(d.path(), "skip/a", b"2");
        write(d.path(), "skipper", b"3");
        let cfg = HashConfig {
            ignore_paths: vec!["skip/".into(), "../outside".into()],
            ..Default::default()
        };
        let m = hash_model(d.path(), &cfg, &|_| {}).unwrap();
        assert_eq!(names(&m), ["keep/a", "skipper"]);
        assert_eq!(
            m.serialization.ignore_paths,
            [".git", ".gitattributes", ".github", ".gitignore", "skip"]
        );
    }
}
