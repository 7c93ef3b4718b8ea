//! Integrity evidence for models: manifests and hashing ([`serialize`]), ECDSA keys
//! ([`keys`]), X.509 chains ([`cert`]), Sigstore bundles ([`bundle`]), OpenSSF Model
//! Signing v1.0 signatures ([`model`]), signed attestations ([`attestation`]) and the
//! CycloneDX AI-BOM ([`bom`]).

pub mod attestation;
pub mod bom;
pub mod bundle;
pub mod cert;
pub mod keys;
pub mod model;
pub mod serialize;
pub mod trust;

pub use bundle::Bundle;
pub use keys::{Curve, SigningKey, VerifyingKey};
pub use model::{Signer, Trust, VerifyError, VerifyOptions};
pub use serialize::{HashAlgorithm, HashConfig, Manifest, Method};
