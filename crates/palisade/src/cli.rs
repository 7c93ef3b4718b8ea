use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use palisade_core::Severity;

/// Palisade secures the life of a machine-learning model: it scans model artifacts for
/// code that runs when they are loaded (findings mapped to MITRE ATLAS and OWASP), signs
/// and verifies models (OpenSSF Model Signing), attests scan results and writes AI-BOMs.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (default: ./palisade.toml when it exists).
    #[arg(long, global = true, env = "PALISADE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug, -vvv trace). PALISADE_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Write logs as JSON lines.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan model files, directories or archives for unsafe content.
    ///
    /// Formats are recognised by content, never by file name: pickle (protocols 0-5),
    /// PyTorch zip and legacy checkpoints, TorchScript, joblib, NumPy .npy/.npz, and zip,
    /// tar, gzip and zlib containers of them.
    ///
    /// Exit status: 0 no finding at or above --fail-on; 1 findings at or above --fail-on;
    /// 2 an error or an incomplete scan (and no such findings).
    #[command(
        after_help = "Examples:\n  palisade scan model.pt\n  palisade scan ./models --format sarif --output palisade.sarif\n  cat model.pkl | palisade scan -"
    )]
    Scan(ScanArgs),
    /// Print the documentation of a rule, or list all rules.
    Rule(RuleArgs),
    /// Create an ECDSA key pair for signing models and attestations.
    #[command(
        after_help = "Examples:\n  palisade keygen --output release\n  palisade keygen --curve p384 --output ci"
    )]
    Keygen(KeygenArgs),
    /// Print a model's digest (SHA-256 over its file digests, as OpenSSF Model Signing
    /// computes it): the name a signature and every attestation give the model.
    Digest(DigestArgs),
    /// Sign a model (directory or file) in the OpenSSF Model Signing v1.0 format: a
    /// Sigstore bundle that the `model-signing` tool can verify.
    #[command(
        after_help = "Examples:\n  palisade sign ./model --key release.key\n  palisade sign ./model --key leaf.key --certificate leaf.pem --chain intermediate.pem --output model.sig"
    )]
    Sign(SignArgs),
    /// Verify a model against its signature: the signer, then every file's digest.
    ///
    /// Exit status: 0 verified; 1 the signature or the model does not verify (another key,
    /// a changed, renamed, added or removed file, a bundle for another model); 2 an error
    /// (unreadable file, bad arguments).
    #[command(
        after_help = "Examples:\n  palisade verify ./model --key release.pub\n  palisade verify ./model --chain ca.pem --signature model.sig\n  palisade verify ./model --identity me@example.com --issuer https://accounts.google.com --trust-root fulcio.pem"
    )]
    Verify(VerifyArgs),
    /// Verify a signed attestation (for example from `palisade scan --attest`): its
    /// signature, predicate type and, given --model or --digest, its subject.
    VerifyAttestation(VerifyAttestationArgs),
    /// Write a CycloneDX 1.6 AI-BOM for a model: a machine-learning-model component with
    /// hashes, files and a model card from what the artifacts declare, datasets, and the
    /// scan findings as vulnerabilities.
    #[command(
        after_help = "Examples:\n  palisade bom ./model --output model.cdx.json\n  palisade bom ./model --dataset ./train.parquet --no-scan"
    )]
    Bom(BomArgs),
    /// Run the model registry API (encrypted blob store, RBAC, audit log) on HTTP.
    ///
    /// The first start creates $PALISADE_HOME (SQLite metadata, blob store, key-encryption
    /// key and audit signing key, all private to this user) and prints an admin API key
    /// once. `GET /health` answers without credentials; nothing else does.
    #[command(
        after_help = "Examples:\n  palisade serve\n  PALISADE_HOME=/srv/palisade palisade serve --listen 0.0.0.0:8080\n  palisade serve --database-url postgres://registry@db/palisade"
    )]
    Serve(ServeArgs),
    /// Push a model directory (or file) to the registry as a new version.
    #[command(
        after_help = "Example:\n  palisade push ./model --name fraud-detector --source-run run-42 --code-commit 1a2b3c"
    )]
    Push(PushArgs),
    /// Download a model version (a number or an alias) and verify every file.
    #[command(
        after_help = "Examples:\n  palisade pull fraud-detector@production -o ./model\n  palisade pull fraud-detector@3 -o ./v3"
    )]
    Pull(PullArgs),
    /// List a model's versions.
    Versions(VersionsArgs),
    /// Point an alias (e.g. production) at a version.
    #[command(after_help = "Example:\n  palisade promote fraud-detector@3 --alias production")]
    Promote(PromoteArgs),
    /// List a model's aliases, show one with its history, or remove one.
    #[command(
        after_help = "Examples:\n  palisade alias fraud-detector\n  palisade alias fraud-detector production\n  palisade alias fraud-detector staging --delete"
    )]
    Alias(AliasArgs),
    /// Show, set or remove tags on a model or a version.
    #[command(
        after_help = "Examples:\n  palisade tag fraud-detector team=risk\n  palisade tag fraud-detector@3 validated=true --delete candidate\n  palisade tag fraud-detector@3"
    )]
    Tag(TagArgs),
    /// Audit-log tools: verify the log against a signed checkpoint.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Registry API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Gateway deployments: where a model's traffic goes (blue-green switch, canary with
    /// automatic analysis and rollback, shadow traffic). Every change is audited.
    #[command(
        subcommand,
        after_help = "Examples:\n  palisade deploy status\n  palisade deploy switch chat green\n  palisade deploy canary chat green --steps 10,50,100 --interval 60 --max-error-rate 0.02 --max-p99-ms 800\n  palisade deploy shadow iris candidate\n  palisade deploy rollback chat"
    )]
    Deploy(DeployCommand),
    /// LLM guardrails: check prompts and responses, evaluate and train the classifier.
    #[command(subcommand)]
    Guard(crate::commands::guard::GuardCommand),
}

/// Where the registry is and who you are.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Registry URL [default: `client.server` in the config, else http://127.0.0.1:8080].
    #[arg(long, env = "PALISADE_SERVER")]
    pub server: Option<String>,
    /// API key or OIDC token [default: the file `client.token_file` names].
    #[arg(long, env = "PALISADE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    pub model: PathBuf,
    /// Registered model name (created when missing).
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub source_run: Option<String>,
    #[arg(long)]
    pub code_commit: Option<String>,
    /// Digest of a dataset the model was trained on (repeatable).
    #[arg(long)]
    pub dataset: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// NAME@VERSION or NAME@ALIAS.
    pub reference: String,
    /// Directory to write the model into (must be empty or missing).
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// NAME@VERSION.
    pub reference: String,
    #[arg(long)]
    pub alias: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AliasArgs {
    /// The model.
    pub name: String,
    /// One alias (omit to list them all).
    pub alias: Option<String>,
    /// Remove the alias (needs the approver role; audited).
    #[arg(long, requires = "alias")]
    pub delete: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// NAME (a model tag) or NAME@VERSION (a version tag).
    pub reference: String,
    /// KEY=VALUE pairs to set (none and no --delete: list the tags).
    pub set: Vec<String>,
    /// A tag key to remove (repeatable).
    #[arg(long, value_name = "KEY")]
    pub delete: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole audit log against a signed checkpoint, offline (--events and
    /// --checkpoint files) or fetched from --server; the log key is always yours to give.
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The log's verifier key (`name+keyid+base64`, from GET /api/v1/audit/key when the
    /// registry was set up), or a file holding it.
    #[arg(long)]
    pub key: String,
    /// Events exported from GET /api/v1/audit/events (JSON array).
    #[arg(long, requires = "checkpoint")]
    pub events: Option<PathBuf>,
    /// A signed checkpoint note from GET /api/v1/audit/checkpoint.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// One exported event to prove included (with --proof from
    /// /api/v1/audit/proof/inclusion?seq=SEQ&size=SIZE and --checkpoint of that size).
    #[arg(long, requires_all = ["proof", "checkpoint"], conflicts_with_all = ["events", "old_checkpoint"])]
    pub event: Option<PathBuf>,
    /// An older checkpoint the one given with --checkpoint must extend (with --proof from
    /// /api/v1/audit/proof/consistency?from=OLD&to=NEW).
    #[arg(long, requires_all = ["proof", "checkpoint"], conflicts_with = "events")]
    pub old_checkpoint: Option<PathBuf>,
    /// A proof JSON (`hashes` in hex) for --event or --old-checkpoint.
    #[arg(long)]
    pub proof: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Every model's deployment (or one model's): backends, weights, canary, shadow.
    Status {
        model: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Blue-green: send all of MODEL's traffic to BACKEND now (cancels a canary).
    Switch {
        model: String,
        backend: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start a canary of BACKEND: traffic steps, each analysed before the next.
    Canary {
        model: String,
        backend: String,
        /// Traffic percentages, increasing, ending at 100.
        #[arg(long, value_delimiter = ',', default_value = "10,25,50,100")]
        steps: Vec<u8>,
        /// Seconds each step runs before it is analysed.
        #[arg(long, default_value_t = 60.0)]
        interval: f64,
        /// Largest share of failed requests a step may have.
        #[arg(long, default_value_t = 0.05)]
        max_error_rate: f64,
        /// Largest p99 latency a step may have, in milliseconds.
        #[arg(long, default_value_t = 1000.0)]
        max_p99_ms: f64,
        /// Fewest requests a step must see; fewer rolls back ("no data").
        #[arg(long, default_value_t = 20)]
        min_requests: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Abort a canary, or return to the previous stable backend.
    Rollback {
        model: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Copy MODEL's traffic to BACKEND (answers compared, never returned); `--off` stops.
    Shadow {
        model: String,
        #[arg(required_unless_present = "off")]
        backend: Option<String>,
        #[arg(long, conflicts_with = "backend")]
        off: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key (admin): prints the token once.
    Create(KeysCreateArgs),
    /// Re-wrap every blob's data key under a new key-encryption key (run with the server
    /// stopped); blobs are not re-encrypted.
    Rotate(KeysRotateArgs),
}

#[derive(Debug, Args)]
pub struct KeysCreateArgs {
    #[arg(long)]
    pub subject: String,
    /// Role: admin, publisher, approver, reader, invoker (call models through the gateway), monitor (gateway metrics), ROLE:MODEL for one model, or team:NAME (a rate-limit team) (repeatable).
    #[arg(long = "role", required = true)]
    pub roles: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    #[arg(long, env = "PALISADE_HOME", default_value = ".palisade")]
    pub home: PathBuf,
    #[arg(long, env = "PALISADE_DATABASE_URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// State directory (created on first run) [default: .palisade, or `serve.home`].
    #[arg(long, env = "PALISADE_HOME")]
    pub home: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080, or `serve.listen`].
    #[arg(long, env = "PALISADE_LISTEN")]
    pub listen: Option<String>,
    /// Metadata database (sqlite://PATH or postgres://…) [default: SQLite in --home].
    #[arg(long, env = "PALISADE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Keep blobs in an S3-compatible object store, `s3://BUCKET[/PREFIX]`, instead of
    /// --home (or `serve.blob_store`). Credentials, region and endpoint come from the
    /// standard AWS_* environment variables (AWS_ENDPOINT_URL and AWS_ALLOW_HTTP=true for a
    /// local S3-compatible server). Blobs are encrypted before they leave the process.
    #[arg(long, env = "PALISADE_BLOB_STORE", value_name = "URL")]
    pub blob_store: Option<String>,
    /// Largest blob accepted [default: 64GiB, or `serve.max_blob_size`].
    #[arg(long)]
    pub max_blob_size: Option<String>,
    /// Seconds between audit checkpoints (one is also signed at every promotion)
    /// [default: 60, or `serve.checkpoint_interval`].
    #[arg(long)]
    pub checkpoint_interval: Option<u64>,
    /// A Cedar policy file added to the built-in role policies (repeatable; also
    /// `auth.policy_files`). Policies are validated at start.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Accept OIDC/JWT bearer tokens from this issuer (with --jwt-audience and one of
    /// --jwks-file / --jwks-url; or `[auth.jwt]` in the config).
    #[arg(long, env = "PALISADE_JWT_ISSUER", requires = "jwt_audience")]
    pub jwt_issuer: Option<String>,
    /// The audience tokens must name.
    #[arg(long, env = "PALISADE_JWT_AUDIENCE", requires = "jwt_issuer")]
    pub jwt_audience: Option<String>,
    /// The issuer's JWKS document.
    #[arg(
        long,
        env = "PALISADE_JWKS_FILE",
        requires = "jwt_issuer",
        conflicts_with = "jwks_url"
    )]
    pub jwks_file: Option<PathBuf>,
    /// The issuer's JWKS URL (https, or http on loopback), refreshed hourly and when a
    /// token names an unknown key.
    #[arg(long, env = "PALISADE_JWKS_URL", requires = "jwt_issuer")]
    pub jwks_url: Option<String>,
    /// A file holding a one-time bootstrap token (≥ 32 characters). On a first start the
    /// admin key is then not printed: `POST /api/v1/bootstrap` with the token as bearer
    /// returns it, once. For deployments where nobody reads the server's output.
    #[arg(long, env = "PALISADE_BOOTSTRAP_TOKEN_FILE", value_name = "FILE")]
    pub bootstrap_token_file: Option<PathBuf>,
    /// Worker threads of the server [default: one per CPU, or `serve.workers`].
    #[arg(long, env = "PALISADE_WORKERS")]
    pub workers: Option<usize>,
    /// How requests are spread over the worker threads [default: work-stealing, or
    /// `serve.threading`]. `per-thread`: each worker runs its own event loop on its own
    /// listener (SO_REUSEPORT) and keeps a request and its upstream call on one thread —
    /// more proxy throughput, but no work stealing: a request waits while its thread is
    /// busy.
    #[arg(long, value_enum, env = "PALISADE_THREADING")]
    pub threading: Option<ThreadingArg>,
    /// Serve only one of the two routers (at scale, run them as separate processes over
    /// the same database and blob store) [default: both on one listener].
    #[arg(long, value_enum)]
    pub only: Option<OnlyArg>,
    /// Shared rate-limit state for several gateway replicas, `redis://HOST:PORT`
    /// (or `gateway.redis_url`) [default: in memory].
    #[arg(long, env = "PALISADE_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key, or `[serve.tls]`).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by these CAs (PEM): mutual TLS.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ThreadingArg {
    /// One runtime whose threads share all connections and steal each other's work.
    WorkStealing,
    /// One event loop per thread, each with its own listener.
    PerThread,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnlyArg {
    /// The model registry API (`/api/…`, MLflow routes, `/openapi.json`).
    Registry,
    /// The inference gateway (`/v2/…`, `/v1/…`, `/gateway/v1/…`, `/metrics`).
    Gateway,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CurveArg {
    P256,
    P384,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HashArg {
    Sha256,
    Blake3,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Curve of the key pair.
    #[arg(long, value_enum, default_value_t = CurveArg::P256)]
    pub curve: CurveArg,
    /// Write PREFIX.key (private, mode 0600) and PREFIX.pub.
    #[arg(short, long, value_name = "PREFIX", default_value = "palisade")]
    pub output: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// How a model is hashed; the verifier takes these from the signature.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Digest algorithm for each file or shard.
    #[arg(long = "hash", value_enum, default_value_t = HashArg::Sha256)]
    pub hash: HashArg,
    /// Hash files in shards of SIZE (e.g. 1GB) instead of whole (SHA-256 only).
    #[arg(long, value_name = "SIZE")]
    pub shard_size: Option<String>,
}

/// Which files of a model take part.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Paths (relative to the model, or inside it) to leave out; a directory leaves out
    /// everything under it.
    #[arg(long = "ignore-paths", value_name = "PATH", num_args = 1..)]
    pub ignore_paths: Vec<PathBuf>,
    /// Include .git, .gitattributes, .github and .gitignore (left out by default).
    #[arg(long)]
    pub no_ignore_git_paths: bool,
    /// Hash symbolic links as the files they point to (an error by default).
    #[arg(long)]
    pub allow_symlinks: bool,
    /// Hashing threads [default: number of CPUs].
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Model directory or file.
    pub model: PathBuf,
    #[command(flatten)]
    pub hash: HashArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Print the whole manifest (every resource and its digest) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Model directory or file.
    pub model: PathBuf,
    /// PEM private key (PKCS#8 or SEC1, ECDSA P-256 or P-384).
    #[arg(long, value_name = "PRIVATE.pem", required_unless_present = "sigstore")]
    pub key: Option<PathBuf>,
    /// Signing certificate (PEM) for the key: certificate mode.
    #[arg(long, value_name = "CERT.pem", requires = "key")]
    pub certificate: Option<PathBuf>,
    /// Intermediate certificates (PEM) to include after the signing certificate.
    #[arg(long, value_name = "PEM", num_args = 1.., requires = "certificate")]
    pub chain: Vec<PathBuf>,
    /// Keyless signing through Sigstore (Fulcio and Rekor); needs network access.
    #[arg(long, conflicts_with_all = ["key", "certificate"])]
    pub sigstore: bool,
    /// Where to write the signature bundle.
    #[arg(short, long, value_name = "FILE", default_value = "model.sig", alias = "signature")]
    pub output: PathBuf,
    #[command(flatten)]
    pub hash: HashArgs,
    #[command(flatten)]
    pub select: SelectArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Model directory or file.
    pub model: PathBuf,
    /// Signature bundle.
    #[arg(short, long, value_name = "FILE", default_value = "model.sig")]
    pub signature: PathBuf,
    /// PEM public key of the signer.
    #[arg(long, value_name = "PUBLIC.pem", conflicts_with_all = ["chain", "identity"])]
    pub key: Option<PathBuf>,
    /// Trusted certificates (PEM): the signing certificate in the bundle must chain to one.
    #[arg(long, value_name = "PEM", num_args = 1.., alias = "certificate-chain", conflicts_with = "identity")]
    pub chain: Vec<PathBuf>,
    /// Keyless: the signer identity (e-mail or URI) the Fulcio certificate must name.
    #[arg(long, requires_all = ["issuer", "trust_root"])]
    pub identity: Option<String>,
    /// Keyless: the OIDC issuer the Fulcio certificate must name.
    #[arg(long, requires = "identity")]
    pub issuer: Option<String>,
    /// Keyless: trust material — a Sigstore trusted_root.json (Fulcio authorities and
    /// Rekor log keys) or Fulcio certificates (PEM).
    #[arg(long, value_name = "PEM", num_args = 1.., requires = "identity")]
    pub trust_root: Vec<PathBuf>,
    /// Accept files that the signature does not name.
    #[arg(long)]
    pub ignore_unsigned_files: bool,
    #[command(flatten)]
    pub select: SelectArgs,
}

#[derive(Debug, Args)]
pub struct VerifyAttestationArgs {
    /// Attestation bundle (Sigstore bundle or bare DSSE envelope JSON).
    pub attestation: PathBuf,
    /// PEM public key of the signer.
    #[arg(long, value_name = "PUBLIC.pem")]
    pub key: PathBuf,
    /// Expected predicate type.
    #[arg(long, default_value = "https://palisade.dev/attestation/scan/v1")]
    pub predicate_type: String,
    /// Check that the attestation is about this model (its digest is recomputed).
    #[arg(long, value_name = "PATH", conflicts_with = "digest")]
    pub model: Option<PathBuf>,
    /// Check that the attestation is about this digest (sha256:HEX or HEX).
    #[arg(long, value_name = "DIGEST")]
    pub digest: Option<String>,
    /// Print the verified statement as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BomArgs {
    /// Model directory or file.
    pub model: PathBuf,
    /// Write the BOM to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A dataset the model was trained or evaluated on (file or directory), hashed and
    /// listed as a `data` component. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub dataset: Vec<PathBuf>,
    /// Do not scan the model (no vulnerabilities section).
    #[arg(long)]
    pub no_scan: bool,
    /// Model name in the BOM [default: the directory or file name].
    #[arg(long)]
    pub name: Option<String>,
    /// Model version in the BOM.
    #[arg(long = "model-version", value_name = "VERSION")]
    pub model_version: Option<String>,
    /// Also sign the BOM as an attestation about the model (predicate type
    /// https://cyclonedx.org/bom) with --key, for the registry's BOM gate.
    #[arg(long, requires = "key")]
    pub attest: bool,
    /// Private key (PEM) for --attest.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Where --attest writes the signed BOM.
    #[arg(long, value_name = "FILE", default_value = "bom.sig")]
    pub attestation: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` reads standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human, env = "PALISADE_FORMAT")]
    pub format: Format,
    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with status 1 when a finding is at or above this severity
    /// [default: low, or `scan.fail_on` in the config].
    #[arg(long, value_name = "SEVERITY", env = "PALISADE_FAIL_ON")]
    pub fail_on: Option<Severity>,
    /// Do not read files larger than this (e.g. 512MiB, 64GiB) [default: 64GiB].
    #[arg(long, value_name = "SIZE", env = "PALISADE_MAX_FILE_SIZE")]
    pub max_file_size: Option<String>,
    /// Time budget per file (e.g. 30s, 5m); a file that exceeds it is reported
    /// incomplete [default: 300s].
    #[arg(long, value_name = "DURATION", env = "PALISADE_TIMEOUT")]
    pub timeout: Option<String>,
    /// Files scanned in parallel [default: number of CPUs].
    #[arg(short, long, value_name = "N", env = "PALISADE_JOBS")]
    pub jobs: Option<usize>,
    /// Accept the findings recorded in FILE (a JSON report from an earlier
    /// `palisade scan --format json`): they are suppressed and counted, new ones are
    /// reported. Findings match by rule, path, member chain and evidence.
    #[arg(long, value_name = "FILE", env = "PALISADE_BASELINE")]
    pub baseline: Option<PathBuf>,
    /// Colour in human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// No progress bar and no summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Also write a signed attestation of the result (in-toto statement in a Sigstore
    /// bundle, subject = the model's digest); needs --key and exactly one PATH.
    #[arg(long, requires = "key")]
    pub attest: bool,
    /// PEM private key that signs the attestation.
    #[arg(long, value_name = "PRIVATE.pem")]
    pub key: Option<PathBuf>,
    /// Where --attest writes the attestation.
    #[arg(long, value_name = "FILE", default_value = "palisade-scan.sigstore.json")]
    pub attestation: PathBuf,
}

#[derive(Debug, Args)]
pub struct RuleArgs {
    /// A rule code such as PKL001; without it, all rules are listed.
    pub code: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print every rule's documentation as one Markdown document (docs/rules.md).
    #[arg(long)]
    pub markdown: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
