//! Encryption at rest: every blob gets a fresh 256-bit data key and is encrypted with
//! AES-256-GCM (ring) in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015,
//! with the nonce layout of RustCrypto's `aead::stream::StreamBE32`: a 7-byte random prefix,
//! a 32-bit big-endian chunk counter and a last-chunk flag), so a blob of any size is
//! streamed in 1 MiB chunks, chunks cannot be reordered, dropped or truncated, and every
//! chunk authenticates the blob header and the blob's identity (its digest) as associated
//! data. Data keys are wrapped by a key-encryption key from a [`KeyProvider`]; rotating the
//! key-encryption key re-wraps data keys without touching blobs.
//!
//! Blob layout: `PLSBLOB1` ‖ nonce prefix (7 bytes) ‖ chunk size (u32 LE) ‖ chunks, each
//! the ciphertext of up to `chunk size` bytes plus its 16-byte tag.

use std::io::{Read, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

pub const MAGIC: &[u8; 8] = b"PLSBLOB1";
pub const CHUNK: usize = 1 << 20;
const TAG: usize = 16;
const PREFIX: usize = 7;
const HEADER: usize = 8 + PREFIX + 4;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("the blob fails authentication (altered, truncated or encrypted for another blob)")]
    Tampered,
    #[error("the blob's content digest is {found}, expected {expected}")]
    Digest { expected: String, found: String },
    #[error("not an encrypted Palisade blob")]
    Format,
    #[error("the data key cannot be unwrapped with key-encryption key {0} (wrong key, or the wrapped key belongs to another blob)")]
    Unwrap(String),
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

/// A blob's data key; zeroed when dropped.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        DataKey(k)
    }

    fn cipher(&self) -> Result<LessSafeKey, CryptoError> {
        aes_key(&self.0)
    }
}

/// A data key encrypted under a key-encryption key, bound to `aad` (the blob's identity).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    pub kek_id: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// Where key-encryption keys live. A local key file first; KMS providers implement the
/// same two operations.
pub trait KeyProvider: Send + Sync {
    fn id(&self) -> &str;
    fn wrap(&self, key: &DataKey, aad: &[u8]) -> Result<WrappedKey, CryptoError>;
    fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, CryptoError>;
}

/// A key-encryption key in a local file (32 random bytes, mode 0600).
pub struct LocalKeyFile {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl LocalKeyFile {
    /// Opens the key file, creating it (mode 0600) when missing. Refuses a file that other
    /// users can read or write.
    pub fn open_or_create(path: &Path) -> Result<Self, CryptoError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |reason: String| CryptoError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            let mut key = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(key.as_mut());
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(e.to_string()))?;
            f.write_all(key.as_ref()).map_err(|e| err(e.to_string()))?;
            f.sync_all().map_err(|e| err(e.to_string()))?;
        }
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err(format!(
                "mode {:o} lets other users read it; chmod 600 it",
                meta.permissions().mode() & 0o777
            )));
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| err(e.to_string()))?);
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| err(format!("{} bytes, expected 32", bytes.len())))?;
        Ok(Self::from_bytes(key))
    }

    pub fn from_bytes(key: [u8; 32]) -> Self {
        let id = format!("local:{}", &hex::encode(Sha256::digest(Sha256::digest(key)))[..16]);
        LocalKeyFile {
            id,
            key: Zeroizing::new(key),
        }
    }
}

impl KeyProvider for LocalKeyFile {
    fn id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, key: &DataKey, aad: &[u8]) -> Result<WrappedKey, CryptoError> {
        let cipher = aes_key(&self.key)?;
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let mut buf = key.0.to_vec();
        cipher
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Unwrap(self.id.clone()))?;
        Ok(WrappedKey {
            kek_id: self.id.clone(),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(buf),
        })
    }

    fn unwrap(&self, w: &WrappedKey, aad: &[u8]) -> Result<DataKey, CryptoError> {
        let fail = || CryptoError::Unwrap(w.kek_id.clone());
        if w.kek_id != self.id {
            return Err(fail());
        }
        let nonce: [u8; 12] = B64
            .decode(&w.nonce)
            .map_err(|_| fail())?
            .try_into()
            .map_err(|_| fail())?;
        let mut ct = Zeroizing::new(B64.decode(&w.ciphertext).map_err(|_| fail())?);
        let cipher = aes_key(&self.key)?;
        let pt = cipher
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut ct)
            .map_err(|_| fail())?;
        let key: [u8; 32] = (&*pt).try_into().map_err(|_| fail())?;
        Ok(DataKey(Zeroizing::new(key)))
    }
}

fn aes_key(key: &[u8; 32]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Format)
}

/// The STREAM nonce for chunk `counter`: prefix ‖ counter (u32 big-endian) ‖ last-chunk
/// flag — the layout of RustCrypto's `aead::stream::StreamBE32`, so blobs written here
/// decrypt with that implementation (checked by a test).
fn stream_nonce(prefix: &[u8], counter: u64, last: bool) -> Result<Nonce, CryptoError> {
    let counter = u32::try_from(counter).map_err(|_| CryptoError::Format)?;
    let mut n = [0u8; 12];
    n[..PREFIX].copy_from_slice(prefix);
    n[PREFIX..PREFIX + 4].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Ok(Nonce::assume_unique_for_key(n))
}

/// Re-wraps a data key from one key-encryption key to another (key rotation).
pub fn rewrap(
    w: &WrappedKey,
    aad: &[u8],
    from: &dyn KeyProvider,
    to: &dyn KeyProvider,
) -> Result<WrappedKey, CryptoError> {
    to.wrap(&from.unwrap(w, aad)?, aad)
}

/// Turns one piece (and whether it is the last) into what is written.
type ChunkStep<'a> = dyn FnMut(&[u8], bool) -> Result<Vec<u8>, CryptoError> + 'a;

/// Reads `input` in pieces of `len` bytes with one piece of look-ahead (the STREAM
/// construction must know which piece is last), passes each to `step` and writes what it
/// returns.
fn chunked(input: &mut dyn Read, output: &mut dyn Write, len: usize, step: &mut ChunkStep) -> Result<(), CryptoError> {
    let mut cur = vec![0u8; len];
    let mut next = vec![0u8; len];
    let mut n = palisade_core::io::read_full(input, &mut cur)?;
    loop {
        let m = if n == len {
            palisade_core::io::read_full(input, &mut next)?
        } else {
            0
        };
        output.write_all(&step(&cur[..n], m == 0)?)?;
        if m == 0 {
            return Ok(());
        }
        std::mem::swap(&mut cur, &mut next);
        n = m;
    }
}

fn chunk_aad(header: &[u8], identity: &[u8]) -> Vec<u8> {
    let mut a = header.to_vec();
    a.extend_from_slice(identity);
    a
}

/// Encrypts `input` to `output`; returns the plaintext's SHA-256 and size. `identity` is
/// bound into every chunk (the registry uses the blob's expected digest).
pub fn encrypt(
    input: &mut dyn Read,
    output: &mut dyn Write,
    key: &DataKey,
    identity: &[u8],
) -> Result<([u8; 32], u64), CryptoError> {
    let mut prefix = [0u8; PREFIX];
    OsRng.fill_bytes(&mut prefix);
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&prefix);
    header.extend_from_slice(&(CHUNK as u32).to_le_bytes());
    output.write_all(&header)?;
    let aad = chunk_aad(&header, identity);
    let cipher = key.cipher()?;
    let mut sha = Sha256::new();
    let mut size = 0u64;
    let mut counter = 0u64;
    chunked(input, output, CHUNK, &mut |chunk, last| {
        sha.update(chunk);
        size += chunk.len() as u64;
        let mut buf = Vec::with_capacity(chunk.len() + TAG);
        buf.extend_from_slice(chunk);
        cipher
            .seal_in_place_append_tag(stream_nonce(&prefix, counter, last)?, Aad::from(&aad), &mut buf)
            .map_err(|_| CryptoError::Tampered)?;
        counter += 1;
        Ok(buf)
    })?;
    Ok((sha.finalize().into(), size))
}

/// Decrypts `input` to `output`, authenticating every chunk; returns the plaintext's
/// SHA-256 and size. Nothing of a chunk is written before it authenticates, but earlier
/// chunks are: callers write to a temporary place and discard it on error.
pub fn decrypt(
    input: &mut dyn Read,
    output: &mut dyn Write,
    key: &DataKey,
    identity: &[u8],
) -> Result<([u8; 32], u64), CryptoError> {
    open(input, output, key, identity, true)
}

/// Authenticates every chunk of a blob (and its end) without hashing or keeping the
/// plaintext: the cheap first pass of a pull. Returns the plaintext size.
pub fn authenticate(input: &mut dyn Read, key: &DataKey, identity: &[u8]) -> Result<u64, CryptoError> {
    open(input, &mut std::io::sink(), key, identity, false).map(|(_, size)| size)
}

fn open(
    input: &mut dyn Read,
    output: &mut dyn Write,
    key: &DataKey,
    identity: &[u8],
    hash: bool,
) -> Result<([u8; 32], u64), CryptoError> {
    let mut header = [0u8; HEADER];
    if palisade_core::io::read_full(input, &mut header)? != HEADER || &header[..8] != MAGIC {
        return Err(CryptoError::Format);
    }
    let chunk = u32::from_le_bytes([header[15], header[16], header[17], header[18]]) as usize;
    if chunk != CHUNK {
        return Err(CryptoError::Format);
    }
    let aad = chunk_aad(&header, identity);
    let cipher = key.cipher()?;
    let prefix = header[8..8 + PREFIX].to_vec();
    let mut sha = Sha256::new();
    let mut size = 0u64;
    let mut counter = 0u64;
    chunked(input, output, CHUNK + TAG, &mut |chunk, last| {
        let mut buf = chunk.to_vec();
        let pt = cipher
            .open_in_place(stream_nonce(&prefix, counter, last)?, Aad::from(&aad), &mut buf)
            .map_err(|_| CryptoError::Tampered)?;
        let n = pt.len();
        if hash {
            sha.update(&buf[..n]);
        }
        size += n as u64;
        counter += 1;
        buf.truncate(n);
        Ok(buf)
    })?;
    Ok((sha.finalize().into(), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(len: usize) {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let key = DataKey::generate();
        let mut ct = Vec::new();
        let (d, n) = encrypt(&mut &data[..], &mut ct, &key, b"id").unwrap();
        assert_eq!(n, len as u64);
        assert_eq!(d.to_vec(), Sha256::digest(&data).to_vec());
        assert_eq!(ct.len(), HEADER + len + len.div_ceil(CHUNK).max(1) * TAG);
        // A byte or two of ciphertext can equal the plaintext by chance (1 in 256 per
        // byte); from 16 bytes on, the odds are 2^-128.
        if len >= 16 {
            assert_ne!(&ct[HEADER..HEADER + len.min(64)], &data[..len.min(64)]);
        }
        let mut pt = Vec::new();
        let (d2, _) = decrypt(&mut &ct[..], &mut pt, &key, b"id").unwrap();
        assert_eq!((pt, d2), (data, d));
        assert_eq!(authenticate(&mut &ct[..], &key, b"id").unwrap(), len as u64);
        if len > 0 {
            let mut bad = ct.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(matches!(
                authenticate(&mut &bad[..], &key, b"id"),
                Err(CryptoError::Tampered)
            ));
            assert!(
                authenticate(&mut &ct[..ct.len() - 1], &key, b"id").is_err(),
                "truncation"
            );
        }
        assert!(authenticate(&mut &ct[..], &key, b"other id").is_err(), "identity bound");
    }

    #[test]
    fn round_trips_at_chunk_boundaries() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 5] {
            roundtrip(len);
        }
    }

    #[test]
    fn tampering_truncation_and_identity_swaps_fail() {
        let data = vec![7u8; 2 * CHUNK + 100];
        let key = DataKey::generate();
        let mut ct = Vec::new();
        encrypt(&mut &data[..], &mut ct, &key, b"blob-a").unwrap();
        let dec = |ct: &[u8], id: &[u8], key: &DataKey| decrypt(&mut &ct[..], &mut Vec::new(), key, id);
        // A flipped byte in the last chunk, in the header, in the first chunk.
        for pos in [ct.len() - 1, 10, HEADER + 5] {
            let mut bad = ct.clone();
            bad[pos] ^= 1;
            assert!(dec(&bad, b"blob-a", &key).is_err(), "flip at {pos}");
        }
        // Truncated after a whole chunk: the missing last-chunk flag is detected.
        assert!(matches!(
            dec(&ct[..HEADER + CHUNK + TAG], b"blob-a", &key),
            Err(CryptoError::Tampered)
        ));
        // Another blob's identity, another key.
        assert!(matches!(dec(&ct, b"blob-b", &key), Err(CryptoError::Tampered)));
        assert!(matches!(
            dec(&ct, b"blob-a", &DataKey::generate()),
            Err(CryptoError::Tampered)
        ));
        assert!(dec(&ct, b"blob-a", &key).is_ok());
    }

    /// Blobs are RustCrypto `aead::stream` STREAM-BE32 ciphertexts: the reference
    /// implementation decrypts ours, and we decrypt its.
    #[test]
    fn matches_rustcrypto_stream_be32() {
        use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
        use aes_gcm::aead::{KeyInit, Payload};
        let data: Vec<u8> = (0..(2 * CHUNK + 777)).map(|i| (i % 253) as u8).collect();
        let key = DataKey::generate();
        let mut ours = Vec::new();
        encrypt(&mut &data[..], &mut ours, &key, b"id").unwrap();
        let header = &ours[..HEADER];
        let aad = chunk_aad(header, b"id");
        let cipher = aes_gcm::Aes256Gcm::new(key.0.as_ref().into());
        let mut dec = DecryptorBE32::from_aead(cipher.clone(), header[8..15].into());
        let body = &ours[HEADER..];
        let mut pt = Vec::new();
        let mut chunks = body.chunks(CHUNK + TAG).peekable();
        while let Some(c) = chunks.next() {
            if chunks.peek().is_some() {
                pt.extend(dec.decrypt_next(Payload { msg: c, aad: &aad }).unwrap());
            } else {
                pt.extend(dec.decrypt_last(Payload { msg: c, aad: &aad }).unwrap());
                break;
            }
        }
        assert!(pt == data);
        // And theirs decrypts here.
        let mut theirs = header.to_vec();
        let mut enc = EncryptorBE32::from_aead(cipher, header[8..15].into());
        let mut parts = data.chunks(CHUNK).peekable();
        while let Some(c) = parts.next() {
            if parts.peek().is_some() {
                theirs.extend(enc.encrypt_next(Payload { msg: c, aad: &aad }).unwrap());
            } else {
                theirs.extend(enc.encrypt_last(Payload { msg: c, aad: &aad }).unwrap());
                break;
            }
        }
        let mut back = Vec::new();
        decrypt(&mut &theirs[..], &mut back, &key, b"id").unwrap();
        assert!(back == data);
    }

    #[test]
    fn key_files_wrap_and_rotate() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kek");
        let a = LocalKeyFile::open_or_create(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(LocalKeyFile::open_or_create(&p).unwrap().id(), a.id());
        let b = LocalKeyFile::open_or_create(&d.path().join("kek2")).unwrap();
        let key = DataKey::generate();
        let w = a.wrap(&key, b"digest-1").unwrap();
        assert!(a.unwrap(&w, b"digest-2").is_err(), "a wrapped key is bound to its blob");
        assert!(b.unwrap(&w, b"digest-1").is_err());
        let w2 = rewrap(&w, b"digest-1", &a, &b).unwrap();
        assert_eq!(w2.kek_id, b.id());
        assert_eq!(b.unwrap(&w2, b"digest-1").unwrap().0.as_ref(), key.0.as_ref());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            LocalKeyFile::open_or_create(&p),
            Err(CryptoError::KeyFile { .. })
        ));
    }
}
