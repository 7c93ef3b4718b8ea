//! X.509 certificate chains for certificate-mode and keyless (Sigstore/Fulcio) signatures:
//! path building from the signing certificate through the bundle's intermediates to a
//! trust anchor the user supplied, with signature, validity-time, CA and key-usage checks.
//! Only ECDSA (P-256/P-384 keys, SHA-256/384 signatures) is accepted anywhere in a chain.

use sha2::{Digest as _, Sha256, Sha384};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};
use x509_cert::Certificate;

use crate::keys::VerifyingKey;

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// Fulcio's OIDC issuer extensions: v1 (raw string) and v2 (DER UTF8String).
/// Source: sigstore/fulcio `docs/oid-info.md`.
const FULCIO_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const FULCIO_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// Most certificates read from one PEM file.
pub const MAX_PEM_CERTS: usize = 256;
/// Longest chain accepted, anchors included.
const MAX_CHAIN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("not a certificate: {0}")]
    Parse(String),
    #[error("no PEM certificate found in {0}")]
    NoPem(String),
    #[error("the signing certificate does not chain to a trusted certificate ({0})")]
    Untrusted(String),
    #[error("certificate {subject:?} is not valid at {at} (valid {not_before} to {not_after}, seconds since 1970)")]
    Expired {
        subject: String,
        at: u64,
        not_before: u64,
        not_after: u64,
    },
    #[error("certificate {0:?} is used as an issuer but is not a CA")]
    NotCa(String),
    #[error("the signing certificate may not be used for signing (no digitalSignature key usage or codeSigning extended key usage)")]
    Usage,
    #[error("unsupported certificate signature algorithm {0} (only ECDSA with SHA-256/384)")]
    Algorithm(String),
    #[error("unsupported certificate key: {0}")]
    Key(String),
}

/// A parsed certificate with the pieces chain building needs.
pub struct Cert {
    pub der: Vec<u8>,
    cert: Certificate,
}

impl Cert {
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let cert = Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
        Ok(Cert {
            der: der.to_vec(),
            cert,
        })
    }

    /// Every certificate in a PEM text (at most [`MAX_PEM_CERTS`]). The blocks are split
    /// here rather than by `Certificate::load_pem_chain`, which panics on some inputs
    /// (found by the `signature_bundle` fuzz target on x509-cert 0.2.5: empty input).
    pub fn from_pem_chain(pem: &[u8], what: &str) -> Result<Vec<Cert>, CertError> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let text = std::str::from_utf8(pem).map_err(|_| CertError::NoPem(what.to_owned()))?;
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(BEGIN) {
            let block = &rest[start..];
            let end = block
                .find(END)
                .ok_or_else(|| CertError::Parse(format!("{what}: unterminated PEM certificate")))?;
            let (label, der) = x509_cert::der::pem::decode_vec(&block.as_bytes()[..end + END.len()])
                .map_err(|e| CertError::Parse(format!("{what}: {e}")))?;
            if label != "CERTIFICATE" {
                return Err(CertError::Parse(format!("{what}: PEM label {label}")));
            }
            out.push(Cert::from_der(&der)?);
            if out.len() > MAX_PEM_CERTS {
                return Err(CertError::Parse(format!(
                    "{what}: more than {MAX_PEM_CERTS} certificates"
                )));
            }
            rest = &block[end + END.len()..];
        }
        if out.is_empty() {
            return Err(CertError::NoPem(what.to_owned()));
        }
        Ok(out)
    }

    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    fn issuer_der(&self) -> Vec<u8> {
        self.cert.tbs_certificate.issuer.to_der().unwrap_or_default()
    }

    fn subject_der(&self) -> Vec<u8> {
        self.cert.tbs_certificate.subject.to_der().unwrap_or_default()
    }

    pub fn public_key(&self) -> Result<VerifyingKey, CertError> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| CertError::Parse(e.to_string()))?;
        VerifyingKey::from_spki_der(&spki).map_err(|e| CertError::Key(e.to_string()))
    }

    pub fn not_before(&self) -> u64 {
        self.cert
            .tbs_certificate
            .validity
            .not_before
            .to_unix_duration()
            .as_secs()
    }

    fn not_after(&self) -> u64 {
        self.cert
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs()
    }

    fn extension<T: for<'a> Decode<'a>>(&self, oid: ObjectIdentifier) -> Option<T> {
        let exts = self.cert.tbs_certificate.extensions.as_ref()?;
        let ext = exts.iter().find(|e| e.extn_id == oid)?;
        T::from_der(ext.extn_value.as_bytes()).ok()
    }

    fn raw_extension(&self, oid: ObjectIdentifier) -> Option<Vec<u8>> {
        let exts = self.cert.tbs_certificate.extensions.as_ref()?;
        exts.iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes().to_vec())
    }

    fn is_ca(&self) -> bool {
        self.extension::<BasicConstraints>(BASIC_CONSTRAINTS)
            .is_some_and(|b| b.ca)
    }

    fn may_sign(&self) -> bool {
        let usage = self
            .extension::<KeyUsage>(KEY_USAGE)
            .is_some_and(|k| k.digital_signature());
        let eku = self
            .extension::<ExtendedKeyUsage>(EXT_KEY_USAGE)
            .is_some_and(|e| e.0.contains(&CODE_SIGNING));
        usage || eku
    }

    /// Whether `issuer`'s key made this certificate's signature.
    fn signed_by(&self, issuer: &Cert) -> Result<bool, CertError> {
        if self.issuer_der() != issuer.subject_der() {
            return Ok(false);
        }
        let tbs = self
            .cert
            .tbs_certificate
            .to_der()
            .map_err(|e| CertError::Parse(e.to_string()))?;
        let alg = &self.cert.signature_algorithm.oid;
        let digest = if *alg == ECDSA_SHA256 {
            Sha256::digest(&tbs).to_vec()
        } else if *alg == ECDSA_SHA384 {
            Sha384::digest(&tbs).to_vec()
        } else {
            return Err(CertError::Algorithm(alg.to_string()));
        };
        let sig = self.cert.signature.as_bytes().unwrap_or_default();
        Ok(issuer.public_key()?.verify_prehash(&digest, sig))
    }

    fn check_time(&self, at: u64) -> Result<(), CertError> {
        if at < self.not_before() || at > self.not_after() {
            return Err(CertError::Expired {
                subject: self.subject(),
                at,
                not_before: self.not_before(),
                not_after: self.not_after(),
            });
        }
        Ok(())
    }

    /// E-mail and URI subject alternative names (a Fulcio certificate's identity).
    pub fn identities(&self) -> Vec<String> {
        let Some(san) = self.extension::<SubjectAltName>(SUBJECT_ALT_NAME) else {
            return Vec::new();
        };
        san.0
            .iter()
            .filter_map(|n| match n {
                GeneralName::Rfc822Name(s) => Some(s.to_string()),
                GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The OIDC issuer Fulcio recorded in the certificate.
    pub fn oidc_issuer(&self) -> Option<String> {
        if let Some(raw) = self.raw_extension(FULCIO_ISSUER_V2) {
            if let Ok(s) = x509_cert::der::asn1::Utf8StringRef::from_der(&raw) {
                return Some(s.as_str().to_owned());
            }
        }
        self.raw_extension(FULCIO_ISSUER_V1)
            .and_then(|raw| String::from_utf8(raw).ok())
    }
}

/// Builds and checks a path from `leaf` through `intermediates` to one of `anchors`, with
/// every certificate valid at `at` (seconds since 1970). Returns the leaf's public key.
pub fn verify_chain(leaf: &Cert, intermediates: &[Cert], anchors: &[Cert], at: u64) -> Result<VerifyingKey, CertError> {
    if !leaf.may_sign() {
        return Err(CertError::Usage);
    }
    leaf.check_time(at)?;
    let mut current = leaf;
    for _ in 0..MAX_CHAIN {
        // A trust anchor that is the certificate itself (a pinned leaf) or its issuer.
        if anchors.iter().any(|a| a.der == current.der) {
            return leaf.public_key();
        }
        for anchor in anchors {
            if current.signed_by(anchor)? {
                anchor.check_time(at)?;
                return leaf.public_key();
            }
        }
        let Some(next) = intermediates
            .iter()
            .find(|c| c.der != current.der && current.signed_by(c).unwrap_or(false))
        else {
            return Err(CertError::Untrusted(format!(
                "no trusted issuer for {:?}",
                current.subject()
            )));
        };
        if !next.is_ca() {
            return Err(CertError::NotCa(next.subject()));
        }
        next.check_time(at)?;
        current = next;
    }
    Err(CertError::Untrusted(format!("chain longer than {MAX_CHAIN}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_inputs_that_are_not_certificates_are_errors() {
        for input in [
            &b""[..],
            b"\n",
            b"-----BEGIN CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----\n",
            &[0xff, 0xfe],
        ] {
            assert!(Cert::from_pem_chain(input, "test").is_err(), "{input:?}");
        }
        assert!(Cert::from_der(&[]).is_err());
    }
}
