//! The local content-addressed blob store, encrypted at rest.
//!
//! `put` streams a blob into a temporary file under `tmp/` while encrypting it with a
//! fresh data key bound to the digest the client declared, checks the digest, fsyncs and
//! renames it into `blobs/<aa>/<digest>.<file id>` — so a blob is visible only when
//! complete, a crash leaves at most a temporary file (removed on the next open), and two
//! concurrent pushes of the same digest never overwrite each other. The returned
//! [`BlobRecord`] (digest, size, file id, wrapped data key) is what the metadata store
//! keeps; `get` refuses a blob whose decrypted content does not hash to its digest.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, CryptoError, DataKey, KeyProvider, WrappedKey};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// Lowercase hex SHA-256 of the plaintext.
    pub digest: String,
    pub size: u64,
    pub file_id: String,
    pub key: WrappedKey,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("I/O on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("`{0}` is not a SHA-256 digest (64 lowercase hex characters)")]
    BadDigest(String),
    #[error("the blob is larger than the {0}-byte limit")]
    TooLarge(u64),
    #[error("blob {0} is not in the store")]
    Missing(String),
    #[error("object store {url}: {message}")]
    Object { url: String, message: String },
}

pub struct BlobStore {
    /// Local state: `tmp/` (uploads in progress) and, for the local backend, `blobs/`.
    root: PathBuf,
    max_size: u64,
    backend: Backend,
}

/// Where committed blobs live.
enum Backend {
    /// `root/blobs/<aa>/<digest>.<file id>`.
    Local,
    /// An object store (S3 and compatibles): `<prefix>/blobs/<aa>/<digest>.<file id>`.
    /// Its calls run on `handle` from the blocking threads `put` and `get` run on.
    Object {
        store: Arc<dyn ObjectStore>,
        prefix: String,
        url: String,
        handle: tokio::runtime::Handle,
    },
}

/// Object-store uploads go in parts of this size.
const PART: usize = 8 << 20;

fn is_digest(d: &str) -> bool {
    d.len() == 64 && d.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The associated data binding a blob's chunks and data key to its digest.
fn identity(digest: &str) -> Vec<u8> {
    format!("palisade-blob-v1:sha256:{digest}").into_bytes()
}

/// Counts bytes and stops past a limit.
struct Limited<R> {
    inner: R,
    seen: u64,
    max: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen += n as u64;
        if self.seen > self.max {
            return Err(std::io::Error::other("size limit"));
        }
        Ok(n)
    }
}

impl BlobStore {
    /// Opens (creating) a store under `root` and removes temporary files a crash left.
    pub fn open(root: &Path, max_size: u64) -> Result<Self, BlobError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BlobError::Io { path, source }
        };
        for d in ["blobs", "tmp"] {
            std::fs::create_dir_all(root.join(d)).map_err(io(&root.join(d)))?;
        }
        let tmp = root.join("tmp");
        for e in std::fs::read_dir(&tmp).map_err(io(&tmp))?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        Ok(BlobStore {
            root: root.to_path_buf(),
            max_size,
            backend: Backend::Local,
        })
    }

    /// A store whose blobs live in an object store, given as a URL (`s3://bucket/prefix`)
    /// with `options` (object_store's S3 keys: `aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`, …). Uploads are
    /// staged (encrypted) under `root/tmp`. Must be called inside a tokio runtime.
    pub fn open_object(root: &Path, url: &str, options: &[(String, String)], max_size: u64) -> Result<Self, BlobError> {
        let mut store = Self::open(root, max_size)?;
        let err = |message: String| BlobError::Object {
            url: url.to_owned(),
            message,
        };
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(err("only s3:// URLs are supported".into()));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(err("the URL names no bucket".into()));
        }
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        for (k, v) in options {
            let key: object_store::aws::AmazonS3ConfigKey = k.parse().map_err(|e| err(format!("option {k}: {e}")))?;
            builder = builder.with_config(key, v);
        }
        let s3 = builder.build().map_err(|e| err(e.to_string()))?;
        let handle = tokio::runtime::Handle::try_current().map_err(|e| err(e.to_string()))?;
        store.backend = Backend::Object {
            store: Arc::new(s3),
            prefix: prefix.trim_matches('/').to_owned(),
            url: url.to_owned(),
            handle,
        };
        Ok(store)
    }

    /// Where blobs live, for logs (`local` or the object-store URL).
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Local => format!("local:{}", self.root.join("blobs").display()),
            Backend::Object { url, .. } => url.clone(),
        }
    }

    fn object_path(prefix: &str, digest: &str, file_id: &str) -> ObjectPath {
        let key = format!("blobs/{}/{digest}.{file_id}", &digest[..2]);
        if prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{prefix}/{key}"))
        }
    }

    /// Checks that the object store answers (a listing of the blob prefix).
    pub async fn check(&self) -> Result<(), BlobError> {
        if let Backend::Object { store, prefix, url, .. } = &self.backend {
            use futures_util::StreamExt as _;
            let p = ObjectPath::from(format!("{prefix}/blobs"));
            let mut list = store.list(Some(&p));
            if let Some(Err(e)) = list.next().await {
                return Err(BlobError::Object {
                    url: url.clone(),
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Removes a committed blob (the loser of a concurrent push of the same content).
    pub async fn remove(&self, record: &BlobRecord) -> Result<(), BlobError> {
        match &self.backend {
            Backend::Local => {
                let path = self.path(&record.digest, &record.file_id);
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(|source| BlobError::Io { path, source })
            }
            Backend::Object { store, prefix, url, .. } => store
                .delete(&Self::object_path(prefix, &record.digest, &record.file_id))
                .await
                .map_err(|e| BlobError::Object {
                    url: url.clone(),
                    message: e.to_string(),
                }),
        }
    }

    fn path(&self, digest: &str, file_id: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(&digest[..2])
            .join(format!("{digest}.{file_id}"))
    }

    /// Stores a blob whose SHA-256 must be `digest`.
    pub fn put(&self, input: &mut dyn Read, digest: &str, kek: &dyn KeyProvider) -> Result<BlobRecord, BlobError> {
        if !is_digest(digest) {
            return Err(BlobError::BadDigest(digest.to_owned()));
        }
        let tmp_dir = self.root.join("tmp");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BlobError::Io { path, source }
        };
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io(&tmp_dir))?;
        let key = DataKey::generate();
        let id = identity(digest);
        let mut limited = Limited {
            inner: input,
            seen: 0,
            max: self.max_size,
        };
        let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
        let result = crypto::encrypt(&mut limited, &mut out, &key, &id);
        if limited.seen > self.max_size {
            return Err(BlobError::TooLarge(self.max_size));
        }
        let (sha, size) = result?;
        out.flush().map_err(io(tmp.path()))?;
        drop(out);
        let found = hex::encode(sha);
        if found != digest {
            return Err(CryptoError::Digest {
                expected: digest.to_owned(),
                found,
            }
            .into());
        }
        tmp.as_file().sync_all().map_err(io(tmp.path()))?;
        let mut file_id = [0u8; 8];
        OsRng.fill_bytes(&mut file_id);
        let file_id = hex::encode(file_id);
        if let Backend::Object {
            store,
            prefix,
            url,
            handle,
        } = &self.backend
        {
            let path = Self::object_path(prefix, digest, &file_id);
            let mut file = File::open(tmp.path()).map_err(io(tmp.path()))?;
            handle
                .block_on(upload(store.as_ref(), &path, &mut file))
                .map_err(|message| BlobError::Object {
                    url: url.clone(),
                    message,
                })?;
            let wrapped = kek.wrap(&key, &id)?;
            return Ok(BlobRecord {
                digest: digest.to_owned(),
                size,
                file_id,
                key: wrapped,
            });
        }
        let dest = self.path(digest, &file_id);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        tmp.persist(&dest).map_err(|e| BlobError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        if let Some(parent) = dest.parent() {
            if let Ok(d) = File::open(parent) {
                let _ = d.sync_all();
            }
        }
        let wrapped = kek.wrap(&key, &id)?;
        Ok(BlobRecord {
            digest: digest.to_owned(),
            size,
            file_id,
            key: wrapped,
        })
    }

    /// The stored (encrypted) bytes of a record.
    fn open_stored(&self, record: &BlobRecord) -> Result<Box<dyn Read>, BlobError> {
        if !is_digest(&record.digest) {
            return Err(BlobError::BadDigest(record.digest.clone()));
        }
        let input: Box<dyn Read> = match &self.backend {
            Backend::Local => {
                let path = self.path(&record.digest, &record.file_id);
                let file = File::open(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => BlobError::Missing(record.digest.clone()),
                    _ => BlobError::Io {
                        path: path.clone(),
                        source: e,
                    },
                })?;
                Box::new(BufReader::with_capacity(1 << 20, file))
            }
            Backend::Object {
                store,
                prefix,
                url,
                handle,
            } => {
                use futures_util::TryStreamExt as _;
                let path = Self::object_path(prefix, &record.digest, &record.file_id);
                let got = handle.block_on(store.get(&path)).map_err(|e| match e {
                    object_store::Error::NotFound { .. } => BlobError::Missing(record.digest.clone()),
                    e => BlobError::Object {
                        url: url.clone(),
                        message: e.to_string(),
                    },
                })?;
                let stream = got.into_stream().map_err(std::io::Error::other);
                let reader = tokio_util::io::StreamReader::new(stream);
                Box::new(BufReader::with_capacity(
                    1 << 20,
                    tokio_util::io::SyncIoBridge::new_with_handle(reader, handle.clone()),
                ))
            }
        };
        Ok(input)
    }

    /// Decrypts a blob into `output` and checks its digest. On error, what was written to
    /// `output` must be discarded.
    pub fn get(&self, record: &BlobRecord, output: &mut dyn Write, kek: &dyn KeyProvider) -> Result<u64, BlobError> {
        let mut input = self.open_stored(record)?;
        let id = identity(&record.digest);
        let key = kek.unwrap(&record.key, &id)?;
        let (sha, size) = crypto::decrypt(&mut input, output, &key, &id)?;
        let found = hex::encode(sha);
        if found != record.digest || size != record.size {
            return Err(CryptoError::Digest {
                expected: record.digest.clone(),
                found,
            }
            .into());
        }
        Ok(size)
    }

    /// Authenticates every chunk of a stored blob (AES-GCM with the digest bound as
    /// associated data) and its size, without hashing: what a pull checks before it sends
    /// a byte.
    pub fn verify(&self, record: &BlobRecord, kek: &dyn KeyProvider) -> Result<u64, BlobError> {
        let mut input = self.open_stored(record)?;
        let id = identity(&record.digest);
        let key = kek.unwrap(&record.key, &id)?;
        let size = crypto::authenticate(&mut input, &key, &id)?;
        if size != record.size {
            return Err(CryptoError::Tampered.into());
        }
        Ok(size)
    }

    /// Re-wraps a record's data key under another key-encryption key (rotation).
    pub fn rewrap(
        &self,
        record: &BlobRecord,
        from: &dyn KeyProvider,
        to: &dyn KeyProvider,
    ) -> Result<BlobRecord, BlobError> {
        let key = crypto::rewrap(&record.key, &identity(&record.digest), from, to)?;
        Ok(BlobRecord { key, ..record.clone() })
    }

    /// The on-disk file of a record in the local backend (for tests and repair tools).
    pub fn file_of(&self, record: &BlobRecord) -> PathBuf {
        self.path(&record.digest, &record.file_id)
    }
}

/// Uploads a staged file in parts; a failed upload is aborted (no partial object).
async fn upload(store: &dyn ObjectStore, path: &ObjectPath, file: &mut File) -> Result<(), String> {
    let multipart = store.put_multipart(path).await.map_err(|e| e.to_string())?;
    let mut writer = object_store::WriteMultipart::new_with_chunk_size(multipart, PART);
    let mut buf = vec![0u8; PART];
    loop {
        let n = match palisade_core::io::read_full(file, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e.to_string());
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = writer.wait_for_capacity(4).await {
            return Err(e.to_string());
        }
        writer.write(&buf[..n]);
    }
    writer.finish().await.map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::crypto::LocalKeyFile;

    fn setup() -> (tempfile::TempDir, BlobStore, LocalKeyFile) {
        let d = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&d.path().join("store"), 1 << 30).unwrap();
        let kek = LocalKeyFile::open_or_create(&d.path().join("kek")).unwrap();
        (d, store, kek)
    }

    #[test]
    fn put_get_and_the_file_is_not_plaintext() {
        let (_d, store, kek) = setup();
        let data = b"model weights ".repeat(100_000);
        let digest = hex::encode(Sha256::digest(&data));
        let rec = store.put(&mut &data[..], &digest, &kek).unwrap();
        assert_eq!(rec.size, data.len() as u64);
        let stored = std::fs::read(store.file_of(&rec)).unwrap();
        assert!(!stored.windows(14).any(|w| w == b"model weights "));
        let mut out = Vec::new();
        assert_eq!(store.get(&rec, &mut out, &kek).unwrap(), data.len() as u64);
        assert_eq!(out, data);
        // Same digest again: a second, independent file; both readable.
        let rec2 = store.put(&mut &data[..], &digest, &kek).unwrap();
        assert_ne!(rec2.file_id, rec.file_id);
        assert!(store.get(&rec, &mut Vec::new(), &kek).is_ok());
    }

    #[test]
    fn wrong_digest_is_refused_and_leaves_nothing() {
        let (d, store, kek) = setup();
        let err = store.put(&mut &b"abc"[..], &"0".repeat(64), &kek).unwrap_err();
        assert!(matches!(err, BlobError::Crypto(CryptoError::Digest { .. })), "{err}");
        assert!(std::fs::read_dir(d.path().join("store/tmp")).unwrap().next().is_none());
        assert!(std::fs::read_dir(d.path().join("store/blobs"))
            .unwrap()
            .next()
            .is_none());
        assert!(matches!(
            store.put(&mut &b"abc"[..], "../../etc/passwd", &kek),
            Err(BlobError::BadDigest(_))
        ));
    }

    #[test]
    fn a_flipped_byte_on_disk_is_refused() {
        let (_d, store, kek) = setup();
        let data = vec![3u8; 3 << 20];
        let digest = hex::encode(Sha256::digest(&data));
        let rec = store.put(&mut &data[..], &digest, &kek).unwrap();
        let path = store.file_of(&rec);
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            store.get(&rec, &mut Vec::new(), &kek),
            Err(BlobError::Crypto(CryptoError::Tampered))
        ));
        // A record pointing at another blob's file (swapped keys) is refused too.
        let other = b"other".to_vec();
        let rec_b = store
            .put(&mut &other[..], &hex::encode(Sha256::digest(&other)), &kek)
            .unwrap();
        let swapped = BlobRecord {
            key: rec_b.key.clone(),
            ..rec.clone()
        };
        assert!(matches!(
            store.get(&swapped, &mut Vec::new(), &kek),
            Err(BlobError::Crypto(CryptoError::Unwrap(_)))
        ));
    }

    #[test]
    fn size_limits_and_rotation() {
        let d = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&d.path().join("s"), 10).unwrap();
        let kek = LocalKeyFile::open_or_create(&d.path().join("kek")).unwrap();
        let data = vec![1u8; 11];
        assert!(matches!(
            store.put(&mut &data[..], &hex::encode(Sha256::digest(&data)), &kek),
            Err(BlobError::TooLarge(10))
        ));
        let ok = vec![1u8; 10];
        let rec = store
            .put(&mut &ok[..], &hex::encode(Sha256::digest(&ok)), &kek)
            .unwrap();
        let new_kek = LocalKeyFile::open_or_create(&d.path().join("kek2")).unwrap();
        let before = std::fs::read(store.file_of(&rec)).unwrap();
        let rotated = store.rewrap(&rec, &kek, &new_kek).unwrap();
        assert_eq!(
            std::fs::read(store.file_of(&rotated)).unwrap(),
            before,
            "rotation does not touch blobs"
        );
        let mut out = Vec::new();
        store.get(&rotated, &mut out, &new_kek).unwrap();
        assert_eq!(out, ok);
        assert!(store.get(&rotated, &mut Vec::new(), &kek).is_err());
    }
}
