//! Configuration: `ca-config/nca.toml` holds every default, environment variables of the
//! contract override it, secrets come only from the environment or a file.
//!
//! When the config file is absent the copy built into the binary is used, so that `nca serve`
//! runs anywhere on embedded defaults; profiles and other data files fall back the same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::keys::{KeyAlgorithm, KeyStoreError};

pub const EMBEDDED_CONFIG: &str = include_str!("../ca-config/nca.toml");

/// What is wrong with a configuration. Each is fatal at start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The TOML does not parse or has a field of the wrong type.
    #[error("parsing {path}: {message}")]
    Parse { path: String, message: String },
    /// A value (from the file or the environment) is out of its domain.
    #[error("invalid {field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The configuration is unsafe for production and the run is not a development run.
    #[error("unsafe configuration: {0} (allowed only in a development run: development = true)")]
    Unsafe(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStoreKind {
    Software,
    Pkcs11,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    pub development: bool,
    pub listen: String,
    pub operator_listen: String,
    pub base_url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub timezone_offset: String,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyStoreSection {
    pub kind: KeyStoreKind,
    pub pkcs11_module: PathBuf,
    pub pkcs11_token: String,
    pub sessions: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    pub root_id: String,
    pub root_common_name: String,
    pub root_key: String,
    pub root_validity_days: u32,
    pub issuing_id: String,
    pub issuing_common_name: String,
    pub issuing_key: String,
    pub issuing_validity_days: u32,
    pub organization: String,
    pub country: String,
    pub issuing_policy: String,
    pub cps_uri: String,
    pub ocsp_common_name: String,
    pub ocsp_validity_days: u32,
    pub tls_dns_names: Vec<String>,
    pub tls_ip_addresses: Vec<String>,
    pub pending_abandon_after_seconds: i64,
    pub profiles_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    pub iin: String,
    pub surname: String,
    pub name: String,
    pub patronymic: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorsSection {
    pub suspend_after_days: u32,
    pub dismiss_notice_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmsSection {
    pub signing_time_skew_seconds: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    pub file: PathBuf,
    pub url: String,
    pub timeout_ms: u64,
    /// How often applications the gateway did not answer for are asked about again.
    pub retry_seconds: u64,
    /// PEM certificates to trust for an https:// gateway instead of the system's roots.
    #[serde(default)]
    pub ca_file: PathBuf,
    /// Requests in flight to the gateway at most, and so connections open to it.
    #[serde(default = "default_registry_connections")]
    pub max_connections: usize,
    /// An idle kept-alive connection to the gateway is closed after this long.
    #[serde(default = "default_idle_seconds")]
    pub idle_seconds: u64,
}

fn default_registry_connections() -> usize {
    16
}

fn default_idle_seconds() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {
    pub file: PathBuf,
}

/// The monitoring system's link: where, who we are to it, and how hard to try.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSection {
    pub url: String,
    pub sender: String,
    pub timeout_ms: u64,
    /// Messages claimed at once, and sent at once (different applications only).
    pub batch: i64,
    pub concurrency: usize,
    pub retry_initial_ms: u64,
    pub retry_max_seconds: u64,
    /// PEM certificates to trust for an https:// monitoring URL instead of the system's roots.
    #[serde(default)]
    pub ca_file: PathBuf,
    /// Whether each message's signature carries a time-stamp token of this service's TSA
    /// (CAdES-T: id-aa-signatureTimeStampToken in the unsigned attributes).
    #[serde(default)]
    pub timestamp: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
    pub transport: String,
    pub from: String,
    pub retry_initial_ms: u64,
    pub retry_max_seconds: u64,
}

/// Abuse protection of the public application form (README, "Portal and console").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSection {
    /// Applications one client address may submit per minute without a proof of work (a token
    /// bucket of this size, refilled evenly over a minute); 0 turns the limit off.
    pub rate_per_address_per_minute: u32,
    /// Applications per IIN per hour, whatever the address or proof; 0 turns the limit off.
    pub rate_per_iin_per_hour: u32,
    /// Leading zero bits the portal's proof of work must have (SHA-256); 0 disables proofs.
    pub pow_bits: u32,
}

/// How the time-stamping authority learns whether the host's clock may be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockCheck {
    /// Ask the kernel (adjtimex): unsynchronised refuses tokens; a host that cannot tell is trusted.
    Host,
    /// Trust the clock without asking (a host whose time discipline is outside the kernel).
    Trust,
    /// Treat the clock as unsynchronised: every request is refused with timeNotAvailable (drills).
    Unsynchronised,
}

/// The RFC 3161 time-stamping authority (README, "Time-stamping").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsaSection {
    /// The policy a token names when the request asks for none.
    pub policy: String,
    /// Further policies a request may ask for.
    pub accepted_policies: Vec<String>,
    /// The accuracy each token declares, in seconds.
    pub accuracy_seconds: u64,
    /// `host`, `trust` or `unsynchronised` (NCA_TSA_CLOCK).
    pub clock: ClockCheck,
}

impl Default for TsaSection {
    fn default() -> Self {
        TsaSection {
            policy: "1.2.398.3.3.2.6.1".into(),
            accepted_policies: Vec::new(),
            accuracy_seconds: 1,
            clock: ClockCheck::Host,
        }
    }
}

impl Default for PortalSection {
    fn default() -> Self {
        PortalSection {
            rate_per_address_per_minute: 10,
            rate_per_iin_per_hour: 10,
            pow_bits: 18,
        }
    }
}

/// The citizen's personal cabinet (README, "Personal cabinet").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CabinetSection {
    /// How long a sign-in challenge may be answered.
    pub challenge_seconds: i64,
    /// How long a session lasts (never past its certificate's end).
    pub session_seconds: i64,
    /// Days before a pair's end that a reminder letter goes out.
    pub reminder_days: Vec<i64>,
    /// How often the reminder duty looks.
    pub reminder_every_seconds: u64,
}

impl Default for CabinetSection {
    fn default() -> Self {
        CabinetSection {
            challenge_seconds: 120,
            session_seconds: 900,
            reminder_days: vec![30, 7],
            reminder_every_seconds: 3600,
        }
    }
}

/// The registration authority's background driver (README, "Applications that always reach an
/// end").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSection {
    /// How often each instance looks for result steps recorded but not done.
    pub driver_seconds: u64,
    /// How long a worker holds an application's result step; past it, a driver may take it up.
    /// Longer than an issuance ever takes, short enough that a crash is recovered soon.
    pub lease_seconds: i64,
}

impl Default for WorkflowSection {
    fn default() -> Self {
        WorkflowSection {
            driver_seconds: 5,
            lease_seconds: 30,
        }
    }
}

/// The document archive (regulation §15.4, §20; README, "Receipts and the document archive").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSection {
    /// How long a receipt and the documents it names are kept after it was given. The
    /// regulation defers to the archival rules (Government decree No. 1583 of 2011-12-22); the
    /// default, 1,827 days, is five years (with their leap days), the period those rules' list
    /// of standard documents sets for documents on state services rendered. A deployment whose
    /// archive's nomenclature says longer sets it here; nothing is deleted before it ends.
    pub retention_days: i64,
    /// How often the retention sweep looks for receipts past their period.
    pub sweep_seconds: u64,
}

impl Default for ArchiveSection {
    fn default() -> Self {
        ArchiveSection {
            retention_days: 1827,
            sweep_seconds: 86_400,
        }
    }
}

/// Several instances on one database (README, "Beyond one machine").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// How long a duty's lease lasts without a heartbeat: a dead holder's duties move to
    /// another instance within this time. Renewed every third of it.
    pub lease_seconds: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection { lease_seconds: 15 }
    }
}

/// What the outbox keeps (README, "Monitoring").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSection {
    /// Delivered messages and their attempts are removed this many days after delivery (the
    /// monitoring system has them; the audit chain keeps the changes they told of).
    pub retention_days: u32,
}

impl Default for OutboxSection {
    fn default() -> Self {
        OutboxSection { retention_days: 90 }
    }
}

/// Both listeners' bounds against slow and greedy clients (`http::listen`, README
/// "Connections").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// From a connection's opening, or its previous answer, to a whole request head: bounds a
    /// slow head and an idle keep-alive connection alike.
    pub head_timeout_seconds: u64,
    /// The longest request head, request line and headers; hyper needs at least 8192.
    pub head_max_bytes: usize,
    /// From the head to the whole body.
    pub body_timeout_seconds: u64,
    /// The operator listener's TLS handshake.
    pub tls_handshake_timeout_seconds: u64,
    /// Connections one client address may hold open on each listener; 0 turns the limit off.
    pub max_connections_per_address: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            head_timeout_seconds: 10,
            head_max_bytes: 16384,
            body_timeout_seconds: 30,
            tls_handshake_timeout_seconds: 10,
            max_connections_per_address: 256,
        }
    }
}

/// OCSP answers signed ahead (`pki::ocsp::presign`, README "OCSP answers signed ahead").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcspSection {
    /// nextUpdate - thisUpdate of a pre-signed answer.
    pub presign_validity_seconds: i64,
    /// A kept answer is signed anew when less than this is left before its nextUpdate.
    pub presign_renew_before_seconds: i64,
    /// How long after its notAfter a certificate is still answered for (revoked or good).
    pub presign_grace_days: i64,
    /// Certificates read, signed and written per batch.
    pub presign_batch: i64,
    /// Signatures in flight at once within a batch.
    pub presign_concurrency: usize,
    /// How often the full pass (answers due for renewal, certificates with none) runs; changes
    /// (revocation, hold, release, new certificates) are looked for every quarter second.
    pub presign_round_seconds: u64,
}

impl Default for OcspSection {
    fn default() -> Self {
        OcspSection {
            presign_validity_seconds: 86_400,
            presign_renew_before_seconds: 43_200,
            presign_grace_days: 7,
            presign_batch: 1000,
            presign_concurrency: 8,
            presign_round_seconds: 30,
        }
    }
}

/// What an instance of `nca serve` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// The whole service, on a writable database.
    #[default]
    Primary,
    /// The relying parties' side of the public listener only, on a read-only database URL (a
    /// streaming replica): writes nothing, holds no duty and no key (`--role status`).
    Status,
}

impl std::str::FromStr for Role {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Role, ConfigError> {
        match s {
            "primary" => Ok(Role::Primary),
            "status" => Ok(Role::Status),
            _ => Err(invalid("NCA_ROLE", format!("{s:?} (primary or status)"))),
        }
    }
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Status => "status",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    service: ServiceSection,
    key_store: KeyStoreSection,
    ca: CaSection,
    admin: AdminSection,
    operators: OperatorsSection,
    cms: CmsSection,
    registry: RegistrySection,
    centres: FileSection,
    regulation: FileSection,
    monitoring: MonitoringSection,
    mail: MailSection,
    /// Absent in a configuration written before the portal: the built-in defaults.
    #[serde(default)]
    portal: PortalSection,
    /// Absent in a configuration written before the cabinet: the built-in defaults.
    #[serde(default)]
    cabinet: CabinetSection,
    /// Absent in a configuration written before the TSA: the built-in defaults.
    #[serde(default)]
    tsa: TsaSection,
    /// Absent in a configuration written before the driver: the built-in defaults.
    #[serde(default)]
    workflow: WorkflowSection,
    /// Absent in a configuration written before the archive: the built-in defaults.
    #[serde(default)]
    archive: ArchiveSection,
    /// Absent in a configuration written before the listeners' bounds: the built-in defaults.
    #[serde(default)]
    http: HttpSection,
    /// Absent in a configuration written before answers were signed ahead: the defaults.
    #[serde(default)]
    ocsp: OcspSection,
    /// Absent in a configuration written before the cluster: the built-in defaults.
    #[serde(default)]
    cluster: ClusterSection,
    /// Absent in a configuration written before the outbox's retention: the built-in defaults.
    #[serde(default)]
    outbox: OutboxSection,
}

/// The resolved configuration: file (or embedded copy), then environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration came from, for the start-up line.
    pub source: String,
    pub service: ServiceSection,
    pub key_store: KeyStoreSection,
    pub ca: CaSection,
    pub admin: AdminSection,
    pub operators: OperatorsSection,
    pub cms: CmsSection,
    pub registry: RegistrySection,
    pub centres: FileSection,
    pub regulation: FileSection,
    pub monitoring: MonitoringSection,
    pub mail: MailSection,
    pub portal: PortalSection,
    pub cabinet: CabinetSection,
    pub tsa: TsaSection,
    pub workflow: WorkflowSection,
    pub archive: ArchiveSection,
    pub http: HttpSection,
    pub ocsp: OcspSection,
    /// `NCA_ROLE`, or `nca serve --role`.
    pub role: Role,
    pub cluster: ClusterSection,
    pub outbox: OutboxSection,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listen: SocketAddr,
    pub operator_listen: SocketAddr,
    pub base_url: String,
    pub root_key: KeyAlgorithm,
    pub issuing_key: KeyAlgorithm,
    /// `service.timezone_offset`, parsed once at load (a bad one refuses the configuration).
    timezone_offset: time::UtcOffset,
}

/// Reads a variable of the contract; an empty value counts as unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// Loads `path` (or `NCA_CONFIG`, or `ca-config/nca.toml`), falling back to the embedded
    /// defaults when no file is there, then applies the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let explicit = path
            .map(Path::to_path_buf)
            .or_else(|| env("NCA_CONFIG").map(PathBuf::from));
        let candidate = explicit.clone().unwrap_or_else(|| PathBuf::from("ca-config/nca.toml"));
        let (text, source) = match std::fs::read_to_string(&candidate) {
            Ok(t) => (t, candidate.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                (EMBEDDED_CONFIG.to_string(), "embedded defaults".to_string())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: candidate.display().to_string(),
                    source,
                });
            }
        };
        Self::from_toml(&text, source)
    }

    pub fn from_toml(text: &str, source: String) -> Result<Config, ConfigError> {
        let mut f: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: source.clone(),
            message: e.to_string(),
        })?;
        for (name, set) in ENVIRONMENT {
            if let Some(v) = env(name) {
                set(&mut f, name, v)?;
            }
        }
        if f.ocsp.presign_renew_before_seconds >= f.ocsp.presign_validity_seconds
            || f.ocsp.presign_renew_before_seconds < 1
            || f.ocsp.presign_batch < 1
            || f.ocsp.presign_concurrency < 1
            || f.ocsp.presign_round_seconds < 1
        {
            return Err(invalid(
                "ocsp",
                "presign_renew_before_seconds must be at least 1 and under presign_validity_seconds; \
                 presign_batch, presign_concurrency and presign_round_seconds at least 1"
                    .into(),
            ));
        }
        let role = env("NCA_ROLE").map(|v| v.parse()).transpose()?.unwrap_or_default();
        // A period of nothing would let the sweep delete a receipt the day it was given.
        if f.archive.retention_days < 1 {
            return Err(invalid("archive.retention_days", "days must be at least 1".into()));
        }
        if f.cluster.lease_seconds < 3 {
            return Err(invalid(
                "cluster.lease_seconds",
                "at least 3 (renewed every third)".into(),
            ));
        }
        if f.outbox.retention_days < 1 {
            return Err(invalid("outbox.retention_days", "days must be at least 1".into()));
        }
        if f.cabinet.reminder_days.iter().any(|d| *d < 1) {
            return Err(invalid("cabinet.reminder_days", "days must be at least 1".into()));
        }
        for p in std::iter::once(&f.tsa.policy).chain(&f.tsa.accepted_policies) {
            p.parse::<const_oid::ObjectIdentifier>()
                .map_err(|e| invalid("tsa.policy", format!("{p:?}: {e}")))?;
        }
        if f.portal.pow_bits > 32 {
            return Err(invalid(
                "portal.pow_bits",
                format!("{} (at most 32)", f.portal.pow_bits),
            ));
        }
        // hyper's read buffer cannot be smaller (it panics), and a head must fit in it.
        if f.http.head_max_bytes < 8192 {
            return Err(invalid(
                "http.head_max_bytes",
                format!("{} (at least 8192)", f.http.head_max_bytes),
            ));
        }
        for (field, v) in [
            ("http.head_timeout_seconds", f.http.head_timeout_seconds),
            ("http.body_timeout_seconds", f.http.body_timeout_seconds),
            (
                "http.tls_handshake_timeout_seconds",
                f.http.tls_handshake_timeout_seconds,
            ),
        ] {
            if v == 0 {
                return Err(invalid(
                    field,
                    "0 (at least 1: an unbounded wait is what this bounds)".into(),
                ));
            }
        }

        let data_dir = f.service.data_dir.clone();
        let database_url = if f.service.database_url.is_empty() {
            format!("sqlite://{}?mode=rwc", data_dir.join("nca.db").display())
        } else {
            f.service.database_url.clone()
        };
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid("NCA_DATABASE_URL", "must be sqlite://… or postgres://…".into()));
        }
        let listen = f
            .service
            .listen
            .parse()
            .map_err(|e| invalid("NCA_LISTEN", format!("{e}")))?;
        let operator_listen = f
            .service
            .operator_listen
            .parse()
            .map_err(|e| invalid("NCA_OPERATOR_LISTEN", format!("{e}")))?;
        let base_url = f.service.base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(invalid("NCA_BASE_URL", format!("{base_url:?} is not an http(s) URL")));
        }
        let timezone_offset = parse_offset(&f.service.timezone_offset)?;
        let root_key: KeyAlgorithm =
            f.ca.root_key
                .parse()
                .map_err(|e: KeyStoreError| invalid("ca.root_key", e.to_string()))?;
        let issuing_key: KeyAlgorithm =
            f.ca.issuing_key
                .parse()
                .map_err(|e: KeyStoreError| invalid("ca.issuing_key", e.to_string()))?;
        for (field, id) in [("ca.root_id", &f.ca.root_id), ("ca.issuing_id", &f.ca.issuing_id)] {
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(invalid(field, format!("{id:?}: lower-case letters, digits and _ only")));
            }
        }
        if f.ca.root_id == f.ca.issuing_id {
            return Err(invalid("ca.issuing_id", "must differ from ca.root_id".into()));
        }
        f.ca.issuing_policy
            .parse::<const_oid::ObjectIdentifier>()
            .map_err(|e| invalid("ca.issuing_policy", e.to_string()))?;
        Ok(Config {
            timezone_offset,
            source,
            service: f.service,
            key_store: f.key_store,
            ca: f.ca,
            admin: f.admin,
            operators: f.operators,
            cms: f.cms,
            registry: f.registry,
            centres: f.centres,
            regulation: f.regulation,
            monitoring: f.monitoring,
            mail: f.mail,
            portal: f.portal,
            cabinet: f.cabinet,
            tsa: f.tsa,
            workflow: f.workflow,
            archive: f.archive,
            http: f.http,
            ocsp: f.ocsp,
            role,
            cluster: f.cluster,
            outbox: f.outbox,
            data_dir,
            database_url,
            listen,
            operator_listen,
            base_url,
            root_key,
            issuing_key,
        })
    }

    /// Refuses what only a development run may do. Called by `serve` and `init`.
    pub fn check_safety(&self) -> Result<(), ConfigError> {
        if self.service.development {
            return Ok(());
        }
        if self.key_store.kind == KeyStoreKind::Software {
            return Err(ConfigError::Unsafe(
                "software key store (keys in files, not in an HSM)".into(),
            ));
        }
        if env("NCA_PKCS11_PIN").is_none() && env("NCA_PKCS11_PIN_FILE").is_none() {
            return Err(ConfigError::Unsafe(
                "no PKCS#11 PIN in NCA_PKCS11_PIN or NCA_PKCS11_PIN_FILE".into(),
            ));
        }
        Ok(())
    }

    /// What the key store is opened with; reads the token PIN only for a PKCS#11 store.
    pub fn key_store_opening(&self) -> Result<crate::keys::Opening, KeyStoreError> {
        Ok(match self.key_store.kind {
            KeyStoreKind::Software => crate::keys::Opening::Software {
                dir: self.data_dir.join("keys"),
                development: self.service.development,
            },
            KeyStoreKind::Pkcs11 => crate::keys::Opening::Pkcs11(crate::keys::Pkcs11Config {
                module: self.key_store.pkcs11_module.clone(),
                token: self.key_store.pkcs11_token.clone(),
                pin: self.pkcs11_pin()?,
                sessions: self.key_store.sessions,
            }),
        })
    }

    /// The token PIN, from `NCA_PKCS11_PIN` or the file `NCA_PKCS11_PIN_FILE` names. Never logged.
    pub fn pkcs11_pin(&self) -> Result<String, KeyStoreError> {
        if let Some(pin) = env("NCA_PKCS11_PIN") {
            return Ok(pin);
        }
        if let Some(path) = env("NCA_PKCS11_PIN_FILE") {
            let pin = std::fs::read_to_string(&path).map_err(|_| KeyStoreError::PinMissing)?;
            return Ok(pin.trim_end_matches(['\r', '\n']).to_string());
        }
        Err(KeyStoreError::PinMissing)
    }

    /// A URL under the base URL, or the value itself when it is absolute.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base_url, path)
        }
    }

    pub fn timezone_offset(&self) -> time::UtcOffset {
        self.timezone_offset
    }
}

/// Sets one field (or two) of the file's configuration from a variable's value, or refuses the
/// value naming the variable.
type Setter = fn(&mut FileConfig, &'static str, String) -> Result<(), ConfigError>;

/// The environment over the file, applied in this order (the first bad value is the one
/// reported). README's list of variables is this table; `NCA_CONFIG` (which file) and `NCA_ROLE`
/// (not a file setting) are read on their own, the PINs only when a key store is opened.
// `Ok(field = value)`: one row, one assignment, read as a table.
#[allow(clippy::unit_arg)]
const ENVIRONMENT: &[(&str, Setter)] = &[
    ("NCA_DEVELOPMENT", |f, n, v| {
        Ok(f.service.development = parse_bool(n, &v)?)
    }),
    ("NCA_DATA_DIR", |f, _, v| Ok(f.service.data_dir = v.into())),
    ("NCA_DATABASE_URL", |f, _, v| Ok(f.service.database_url = v)),
    ("NCA_LISTEN", |f, _, v| Ok(f.service.listen = v)),
    ("NCA_OPERATOR_LISTEN", |f, _, v| Ok(f.service.operator_listen = v)),
    ("NCA_BASE_URL", |f, _, v| Ok(f.service.base_url = v)),
    ("NCA_TIMEZONE_OFFSET", |f, _, v| Ok(f.service.timezone_offset = v)),
    ("NCA_KEY_STORE", |f, n, v| {
        f.key_store.kind = match v.as_str() {
            "software" => KeyStoreKind::Software,
            "pkcs11" => KeyStoreKind::Pkcs11,
            _ => return Err(invalid(n, format!("{v:?} (software or pkcs11)"))),
        };
        Ok(())
    }),
    ("NCA_PKCS11_MODULE", |f, _, v| Ok(f.key_store.pkcs11_module = v.into())),
    ("NCA_PKCS11_TOKEN", |f, _, v| Ok(f.key_store.pkcs11_token = v)),
    ("NCA_REGISTRY_FILE", |f, _, v| Ok(f.registry.file = v.into())),
    ("NCA_REGISTRY_URL", |f, _, v| Ok(f.registry.url = v)),
    ("NCA_REGISTRY_CA_FILE", |f, _, v| Ok(f.registry.ca_file = v.into())),
    ("NCA_MONITORING_URL", |f, _, v| Ok(f.monitoring.url = v)),
    ("NCA_MONITORING_CA_FILE", |f, _, v| Ok(f.monitoring.ca_file = v.into())),
    ("NCA_MAIL", |f, _, v| Ok(f.mail.transport = v)),
    // Not part of the contract: tests and drills shorten the waits between attempts.
    ("NCA_REGISTRY_RETRY_SECONDS", |f, n, v| {
        Ok(f.registry.retry_seconds = number(n, &v)?)
    }),
    ("NCA_WORKFLOW_DRIVER_SECONDS", |f, n, v| {
        Ok(f.workflow.driver_seconds = number(n, &v)?)
    }),
    ("NCA_WORKFLOW_LEASE_SECONDS", |f, n, v| {
        Ok(f.workflow.lease_seconds = number(n, &v)?)
    }),
    ("NCA_ARCHIVE_SWEEP_SECONDS", |f, n, v| {
        Ok(f.archive.sweep_seconds = number(n, &v)?)
    }),
    ("NCA_CLUSTER_LEASE_SECONDS", |f, n, v| {
        Ok(f.cluster.lease_seconds = number(n, &v)?)
    }),
    ("NCA_OUTBOX_RETRY_MAX_SECONDS", |f, n, v| {
        let v = number(n, &v)?;
        f.monitoring.retry_max_seconds = v;
        f.mail.retry_max_seconds = v;
        Ok(())
    }),
    ("NCA_RATE_PER_ADDRESS", |f, n, v| {
        Ok(f.portal.rate_per_address_per_minute = parse_u32(n, &v)?)
    }),
    ("NCA_RATE_PER_IIN", |f, n, v| {
        Ok(f.portal.rate_per_iin_per_hour = parse_u32(n, &v)?)
    }),
    ("NCA_POW_BITS", |f, n, v| Ok(f.portal.pow_bits = parse_u32(n, &v)?)),
    // Not part of the contract: tests shorten the cabinet's times to see them run out.
    ("NCA_CABINET_CHALLENGE_SECONDS", |f, n, v| {
        Ok(f.cabinet.challenge_seconds = i64::from(parse_u32(n, &v)?))
    }),
    ("NCA_CABINET_SESSION_SECONDS", |f, n, v| {
        Ok(f.cabinet.session_seconds = i64::from(parse_u32(n, &v)?))
    }),
    // Not part of the contract: tests shorten the pre-signed answers' life to see them renewed.
    ("NCA_OCSP_PRESIGN_VALIDITY_SECONDS", |f, n, v| {
        Ok(f.ocsp.presign_validity_seconds = i64::from(parse_u32(n, &v)?))
    }),
    ("NCA_OCSP_PRESIGN_RENEW_BEFORE_SECONDS", |f, n, v| {
        Ok(f.ocsp.presign_renew_before_seconds = i64::from(parse_u32(n, &v)?))
    }),
    ("NCA_OCSP_PRESIGN_ROUND_SECONDS", |f, n, v| {
        Ok(f.ocsp.presign_round_seconds = u64::from(parse_u32(n, &v)?))
    }),
    ("NCA_TSA_CLOCK", |f, n, v| {
        f.tsa.clock = match v.as_str() {
            "host" => ClockCheck::Host,
            "trust" => ClockCheck::Trust,
            "unsynchronised" => ClockCheck::Unsynchronised,
            _ => return Err(invalid(n, format!("{v:?} (host, trust or unsynchronised)"))),
        };
        Ok(())
    }),
];

fn number<T: std::str::FromStr>(field: &'static str, v: &str) -> Result<T, ConfigError> {
    v.parse().map_err(|_| invalid(field, format!("{v:?} is not a number")))
}

fn invalid(field: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { field, message }
}

fn parse_bool(field: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(field, format!("{v:?} is not a boolean"))),
    }
}

fn parse_u32(field: &'static str, v: &str) -> Result<u32, ConfigError> {
    v.parse()
        .map_err(|_| invalid(field, format!("{v:?} is not a whole number")))
}

fn parse_offset(s: &str) -> Result<time::UtcOffset, ConfigError> {
    let fmt = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    time::UtcOffset::parse(s, &fmt).map_err(|e| invalid("NCA_TIMEZONE_OFFSET", format!("{s:?}: {e}")))
}

/// Reads a data file named by the configuration, or its copy built into the binary when the
/// file is not there (the embedded defaults).
pub fn read_data_file(path: &Path, embedded: &'static str) -> Result<String, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(embedded.to_string()),
        Err(source) => Err(ConfigError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_of_the_table_is_in_the_readme() {
        let readme = include_str!("../README.md");
        for (name, _) in ENVIRONMENT {
            assert!(readme.contains(name), "{name} is not in README");
        }
    }

    #[test]
    fn embedded_defaults_parse() {
        let c = Config::from_toml(EMBEDDED_CONFIG, "embedded".into()).unwrap();
        assert_eq!(c.ca.root_id, "root");
        assert_eq!(c.root_key, KeyAlgorithm::Rsa4096);
        assert_eq!(c.timezone_offset(), time::UtcOffset::from_hms(5, 0, 0).unwrap());
    }

    #[test]
    fn a_bad_time_zone_offset_refuses_the_configuration() {
        for bad in ["5", "+5", "+05:00:00", "UTC", "+26:00"] {
            let text = EMBEDDED_CONFIG.replace("timezone_offset = \"+05:00\"", &format!("timezone_offset = {bad:?}"));
            assert_ne!(text, EMBEDDED_CONFIG, "the embedded default names +05:00");
            assert!(
                matches!(
                    Config::from_toml(&text, "test".into()),
                    Err(ConfigError::Invalid {
                        field: "NCA_TIMEZONE_OFFSET",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = EMBEDDED_CONFIG.replace("[service]", "[service]\nlisten_typo = 1");
        assert!(matches!(
            Config::from_toml(&text, "t".into()),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn production_refuses_software_keys() {
        let text = EMBEDDED_CONFIG.replace("development = true", "development = false");
        let c = Config::from_toml(&text, "t".into()).unwrap();
        assert!(matches!(c.check_safety(), Err(ConfigError::Unsafe(_))));
    }
}
