//! The model registry's foundations: encrypted content-addressed blob storage
//! ([`crypto`], [`blobs`]) and the tamper-evident audit log ([`audit`]). The registry API,
//! metadata stores (SQLite, PostgreSQL), identity and authorization build on these.

pub mod audit;
pub mod authz;
pub mod blobs;
pub mod crypto;
pub mod gates;
pub mod meta;
pub mod server;
