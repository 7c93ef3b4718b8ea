//! Palisade's model registry: encrypted content-addressed blob storage ([`crypto`],
//! [`blobs`]), metadata on SQLite or PostgreSQL ([`meta`]), promotion gates ([`gates`]), the
//! tamper-evident audit log ([`audit`]), and the HTTP API ([`server`], with read-only
//! MLflow-compatible routes in [`mlflow`]). Identity and authorization come from
//! `palisade-auth`.

pub mod audit;
pub mod authz;
pub mod blobs;
pub mod crypto;
pub mod gates;
pub mod meta;
pub mod mlflow;
pub mod server;
