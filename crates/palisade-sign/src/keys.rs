//! ECDSA keys (NIST P-256 with SHA-256, P-384 with SHA-384) in PEM, as the reference
//! implementation uses them: PKCS#8 or SEC1 private keys, SubjectPublicKeyInfo public keys,
//! DER-encoded signatures. The cryptography is RustCrypto's `p256`/`p384`.

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use palisade_core::attest::{AttestError, DsseSigner, DsseVerifier};
use sha2::{Digest as _, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the private key is encrypted; decrypt it first (openssl pkcs8 -in KEY -out PLAIN.pem)")]
    Encrypted,
    #[error("not a PEM {0}")]
    NotPem(&'static str),
    #[error("unsupported key: only ECDSA P-256 and P-384 keys are supported ({0})")]
    Unsupported(String),
    #[error("could not encode the key: {0}")]
    Encode(String),
}

#[derive(Clone)]
pub enum SigningKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyingKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl SigningKey {
    pub fn generate(curve: Curve) -> Self {
        let mut rng = rand_core::OsRng;
        match curve {
            Curve::P256 => SigningKey::P256(p256::ecdsa::SigningKey::random(&mut rng)),
            Curve::P384 => SigningKey::P384(p384::ecdsa::SigningKey::random(&mut rng)),
        }
    }

    /// Reads a PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if pem.contains("ENCRYPTED PRIVATE KEY") || pem.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(KeyError::Encrypted);
        }
        if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            use p256::elliptic_curve::SecretKey;
            if let Ok(k) = SecretKey::<p256::NistP256>::from_sec1_pem(pem) {
                return Ok(SigningKey::P256(k.into()));
            }
            if let Ok(k) = SecretKey::<p384::NistP384>::from_sec1_pem(pem) {
                return Ok(SigningKey::P384(k.into()));
            }
            return Err(KeyError::Unsupported("SEC1 key on another curve".into()));
        }
        if !pem.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(KeyError::NotPem("private key (PKCS#8 or SEC1)"));
        }
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(SigningKey::P256(k));
        }
        match p384::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            Ok(k) => Ok(SigningKey::P384(k)),
            Err(e) => Err(KeyError::Unsupported(e.to_string())),
        }
    }

    /// PKCS#8 PEM, the form `openssl genpkey` and the reference tool write.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let pem = match self {
            SigningKey::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            SigningKey::P384(k) => k.to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|e| KeyError::Encode(e.to_string()))?;
        Ok(pem.to_string())
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            SigningKey::P256(k) => VerifyingKey::P256(*k.verifying_key()),
            SigningKey::P384(k) => VerifyingKey::P384(*k.verifying_key()),
        }
    }

    pub fn curve(&self) -> Curve {
        match self {
            SigningKey::P256(_) => Curve::P256,
            SigningKey::P384(_) => Curve::P384,
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey({}, public hint {})",
            self.curve().name(),
            self.verifying_key().hint().unwrap_or_default()
        )
    }
}

impl DsseSigner for SigningKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AttestError> {
        use p256::ecdsa::signature::Signer as _;
        Ok(match self {
            SigningKey::P256(k) => {
                let sig: p256::ecdsa::Signature =
                    k.try_sign(message).map_err(|e| AttestError::Signing(e.to_string()))?;
                sig.to_der().as_bytes().to_vec()
            }
            SigningKey::P384(k) => {
                let sig: p384::ecdsa::Signature =
                    k.try_sign(message).map_err(|e| AttestError::Signing(e.to_string()))?;
                sig.to_der().as_bytes().to_vec()
            }
        })
    }
}

impl VerifyingKey {
    /// Reads a SubjectPublicKeyInfo PEM public key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if !pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(KeyError::NotPem("public key (SubjectPublicKeyInfo)"));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(VerifyingKey::P256(k));
        }
        match p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            Ok(k) => Ok(VerifyingKey::P384(k)),
            Err(e) => Err(KeyError::Unsupported(e.to_string())),
        }
    }

    /// Reads a DER SubjectPublicKeyInfo (as found in certificates).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(VerifyingKey::P256(k));
        }
        match p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            Ok(k) => Ok(VerifyingKey::P384(k)),
            Err(e) => Err(KeyError::Unsupported(e.to_string())),
        }
    }

    pub fn to_pem(&self) -> Result<String, KeyError> {
        match self {
            VerifyingKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
            VerifyingKey::P384(k) => k.to_public_key_pem(LineEnding::LF),
        }
        .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// The key hint the reference implementation records in a bundle: hex SHA-256 of the
    /// PEM SubjectPublicKeyInfo text.
    pub fn hint(&self) -> Result<String, KeyError> {
        Ok(hex::encode(Sha256::digest(self.to_pem()?.as_bytes())))
    }

    /// Checks a DER signature over an already computed digest (certificate signatures,
    /// where the digest algorithm comes from the certificate, not the curve).
    pub fn verify_prehash(&self, digest: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        match self {
            VerifyingKey::P256(k) => {
                p256::ecdsa::Signature::from_der(signature).is_ok_and(|s| k.verify_prehash(digest, &s).is_ok())
            }
            VerifyingKey::P384(k) => {
                p384::ecdsa::Signature::from_der(signature).is_ok_and(|s| k.verify_prehash(digest, &s).is_ok())
            }
        }
    }

    pub fn curve(&self) -> Curve {
        match self {
            VerifyingKey::P256(_) => Curve::P256,
            VerifyingKey::P384(_) => Curve::P384,
        }
    }
}

impl DsseVerifier for VerifyingKey {
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), AttestError> {
        use p256::ecdsa::signature::Verifier as _;
        let ok = match self {
            VerifyingKey::P256(k) => {
                p256::ecdsa::Signature::from_der(signature).is_ok_and(|s| k.verify(message, &s).is_ok())
            }
            VerifyingKey::P384(k) => {
                p384::ecdsa::Signature::from_der(signature).is_ok_and(|s| k.verify(message, &s).is_ok())
            }
        };
        if ok {
            Ok(())
        } else {
            Err(AttestError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_and_sign() {
        for curve in [Curve::P256, Curve::P384] {
            let k = SigningKey::generate(curve);
            let pem = k.to_pem().unwrap();
            let back = SigningKey::from_pem(&pem).unwrap();
            assert_eq!(back.curve(), curve);
            let pubkey = VerifyingKey::from_pem(&back.verifying_key().to_pem().unwrap()).unwrap();
            let sig = k.sign(b"message").unwrap();
            pubkey.verify(b"message", &sig).unwrap();
            assert!(pubkey.verify(b"messagf", &sig).is_err());
            let other = SigningKey::generate(curve).verifying_key();
            assert!(other.verify(b"message", &sig).is_err());
            assert_eq!(pubkey.hint().unwrap().len(), 64);
        }
    }

    #[test]
    fn clear_errors_for_keys_we_do_not_take() {
        assert!(matches!(
            SigningKey::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            Err(KeyError::Encrypted)
        ));
        assert!(matches!(SigningKey::from_pem("hello"), Err(KeyError::NotPem(_))));
        // An Ed25519 PKCS#8 key (RFC 8410 example).
        let ed = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        assert!(matches!(SigningKey::from_pem(ed), Err(KeyError::Unsupported(_))));
    }
}
