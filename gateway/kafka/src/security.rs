//! How the Kafka clients reach the brokers: TLS, SASL and librdkafka options
//! passed through (`[queue.kafka]` `security_protocol`, `sasl_*`, `ssl_*`,
//! `options`).
//!
//! Secrets (`sasl_password`, `ssl_key_password`) come from the config file,
//! from the environment (`HERALD_QUEUE__KAFKA__SASL_PASSWORD`, read by the
//! config loader like any other key) or from a file (`sasl_password_file`).
//! They are held in [`Secret`], whose `Debug` and `Serialize` print `***`, and
//! every error message that leaves this module has them scrubbed out.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::KafkaConfig;

/// A secret setting (a password). `Debug` and `Serialize` print `***`; only
/// [`Secret::expose`] gives the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A secret given inline (`<field>`) or as a file (`<field>_file`, whose
/// trailing line break is dropped); both at once is an error. Errors name the
/// setting and never contain the secret.
pub fn resolve_secret(field: &str, inline: Option<&Secret>, file: Option<&Path>) -> Result<Option<Secret>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("{field} and {field}_file are both set; set one of them")),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{field}_file: cannot read {}: {e}", path.display()))?;
            let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
            if value.is_empty() {
                return Err(format!("{field}_file: {} is empty", path.display()));
            }
            Ok(Some(Secret(value.to_string())))
        }
        (None, None) => Ok(None),
    }
}

/// `security_protocol`: how the clients talk to the brokers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    #[serde(alias = "PLAINTEXT")]
    Plaintext,
    #[serde(alias = "SSL")]
    Ssl,
    #[serde(alias = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(alias = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    fn librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// `sasl_mechanism` (GSSAPI/Kerberos and OAUTHBEARER are not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// librdkafka properties that `options` may not set: Herald sets them itself
/// (its delivery guarantees depend on them), or a dedicated setting does.
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "queue.kafka.brokers"),
    ("metadata.broker.list", "queue.kafka.brokers"),
    ("group.id", "queue.kafka.group"),
    ("security.protocol", "queue.kafka.security_protocol"),
    ("sasl.mechanism", "queue.kafka.sasl_mechanism"),
    ("sasl.mechanisms", "queue.kafka.sasl_mechanism"),
    ("sasl.username", "queue.kafka.sasl_username"),
    ("sasl.password", "queue.kafka.sasl_password"),
    ("ssl.ca.location", "queue.kafka.ssl_ca_location"),
    ("ssl.certificate.location", "queue.kafka.ssl_certificate_location"),
    ("ssl.key.location", "queue.kafka.ssl_key_location"),
    ("ssl.key.password", "queue.kafka.ssl_key_password"),
    ("enable.idempotence", "Herald (idempotent producer)"),
    ("acks", "Herald (acks = all)"),
    ("enable.auto.commit", "Herald (offsets are stored when work is done)"),
    ("enable.auto.offset.store", "Herald (offsets are stored when work is done)"),
    ("message.timeout.ms", "queue.kafka.produce_timeout_ms"),
];

/// Whether an `options` key may hold a secret (its value is then never shown).
fn sensitive_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "key", "jaas", "token", "pem"].iter().any(|w| k.contains(w))
}

/// `options` for `Debug`: values of keys that may hold secrets shown as `***`.
pub(crate) struct RedactedOptions<'a>(pub &'a BTreeMap<String, String>);

impl fmt::Debug for RedactedOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (k, if sensitive_option(k) { "***" } else { v.as_str() }))).finish()
    }
}

/// `options` serialized: values of keys that may hold secrets as `***`.
pub(crate) fn serialize_options<S: Serializer>(options: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(options.iter().map(|(k, v)| (k, if sensitive_option(k) { "***" } else { v.as_str() })))
}

fn readable(field: &str, path: &Path) -> Result<(), String> {
    std::fs::File::open(path).map(|_| ()).map_err(|e| format!("queue.kafka.{field}: cannot read {}: {e}", path.display()))
}

/// The settings checked together: every error names the setting.
pub fn validate(cfg: &KafkaConfig) -> Result<(), String> {
    let p = cfg.security_protocol;
    if p.sasl() {
        if cfg.sasl_mechanism.is_none() {
            return Err(format!(
                "queue.kafka.sasl_mechanism: required with security_protocol = \"{}\" (\"PLAIN\", \"SCRAM-SHA-256\" or \"SCRAM-SHA-512\")",
                p.librdkafka()
            ));
        }
        if cfg.sasl_username.as_deref().is_none_or(str::is_empty) {
            return Err(format!("queue.kafka.sasl_username: required with security_protocol = \"{}\"", p.librdkafka()));
        }
        if resolve_secret("queue.kafka.sasl_password", cfg.sasl_password.as_ref(), cfg.sasl_password_file.as_deref())?.is_none() {
            return Err(format!(
                "queue.kafka.sasl_password: required with security_protocol = \"{}\" (or sasl_password_file, or HERALD_QUEUE__KAFKA__SASL_PASSWORD)",
                p.librdkafka()
            ));
        }
    } else {
        let set = [
            ("sasl_mechanism", cfg.sasl_mechanism.is_some()),
            ("sasl_username", cfg.sasl_username.is_some()),
            ("sasl_password", cfg.sasl_password.is_some()),
            ("sasl_password_file", cfg.sasl_password_file.is_some()),
        ];
        if let Some((name, _)) = set.iter().find(|(_, s)| *s) {
            return Err(format!(
                "queue.kafka.{name}: set, but security_protocol = \"{}\" does not use SASL (use \"sasl_ssl\" or \"sasl_plaintext\")",
                p.librdkafka()
            ));
        }
    }
    let tls_files = [
        ("ssl_ca_location", cfg.ssl_ca_location.as_deref()),
        ("ssl_certificate_location", cfg.ssl_certificate_location.as_deref()),
        ("ssl_key_location", cfg.ssl_key_location.as_deref()),
        ("ssl_key_password_file", cfg.ssl_key_password_file.as_deref()),
    ];
    if !p.tls() {
        let key_password = cfg.ssl_key_password.is_some().then_some("ssl_key_password");
        if let Some(name) = tls_files.iter().find_map(|(n, f)| f.map(|_| *n)).or(key_password) {
            return Err(format!(
                "queue.kafka.{name}: set, but security_protocol = \"{}\" does not use TLS (use \"ssl\" or \"sasl_ssl\")",
                p.librdkafka()
            ));
        }
    }
    for (name, path) in &tls_files[..3] {
        if let Some(path) = path {
            readable(name, path)?;
        }
    }
    match (&cfg.ssl_certificate_location, &cfg.ssl_key_location) {
        (Some(_), None) => return Err("queue.kafka.ssl_key_location: required with ssl_certificate_location (the client certificate's key)".into()),
        (None, Some(_)) => return Err("queue.kafka.ssl_certificate_location: required with ssl_key_location".into()),
        _ => {}
    }
    resolve_secret("queue.kafka.ssl_key_password", cfg.ssl_key_password.as_ref(), cfg.ssl_key_password_file.as_deref())?;
    for key in cfg.options.keys() {
        if let Some((_, owner)) = RESERVED.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(format!("queue.kafka.options: \"{key}\" is set by {owner}; it cannot be passed through"));
        }
    }
    Ok(())
}

/// The connection settings every client of the queue shares: brokers,
/// security and `options`, with the secrets read (from their files too).
/// Holds secrets: never log it.
#[derive(Clone)]
pub(crate) struct Connection {
    base: ClientConfig,
    secrets: Vec<Secret>,
}

impl Connection {
    pub(crate) fn new(cfg: &KafkaConfig) -> Result<Self, String> {
        validate(cfg)?;
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", &cfg.brokers).set("security.protocol", cfg.security_protocol.librdkafka());
        let mut secrets = Vec::new();
        if cfg.security_protocol.sasl() {
            let mechanism = cfg.sasl_mechanism.expect("validated");
            let password =
                resolve_secret("queue.kafka.sasl_password", cfg.sasl_password.as_ref(), cfg.sasl_password_file.as_deref())?.expect("validated");
            base.set("sasl.mechanism", mechanism.name())
                .set("sasl.username", cfg.sasl_username.as_deref().unwrap_or_default())
                .set("sasl.password", password.expose());
            secrets.push(password);
        }
        let files = [
            ("ssl.ca.location", &cfg.ssl_ca_location),
            ("ssl.certificate.location", &cfg.ssl_certificate_location),
            ("ssl.key.location", &cfg.ssl_key_location),
        ];
        for (key, path) in files {
            if let Some(path) = path {
                base.set(key, path.to_string_lossy());
            }
        }
        if let Some(p) = resolve_secret("queue.kafka.ssl_key_password", cfg.ssl_key_password.as_ref(), cfg.ssl_key_password_file.as_deref())? {
            base.set("ssl.key.password", p.expose());
            secrets.push(p);
        }
        for (k, v) in &cfg.options {
            base.set(k, v);
            if sensitive_option(k) && !v.is_empty() {
                secrets.push(Secret(v.clone()));
            }
        }
        Ok(Self { base, secrets })
    }

    /// A new client config with the shared settings.
    pub(crate) fn client(&self) -> ClientConfig {
        self.base.clone()
    }

    /// `text` with every secret replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        scrub(&self.secrets, text)
    }

    pub(crate) fn secrets(&self) -> Vec<Secret> {
        self.secrets.clone()
    }
}

pub(crate) fn scrub(secrets: &[Secret], text: &str) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.0.len() >= 3 {
            out = out.replace(&s.0, "***");
        }
    }
    out
}

/// A client context that remembers the first error that more retries will
/// not fix (refused credentials, an untrusted certificate, the wrong
/// protocol), so that start-up fails with it instead of waiting forever; it
/// also logs the clients' errors with the secrets scrubbed out. Cheap to
/// clone (shared state).
#[derive(Clone)]
pub(crate) struct Watch(Arc<WatchState>);

struct WatchState {
    secrets: Vec<Secret>,
    security: String,
    fatal: Mutex<Option<String>>,
    notify: tokio::sync::Notify,
}

impl Watch {
    pub(crate) fn new(conn: &Connection, cfg: &KafkaConfig) -> Self {
        let security = match (cfg.security_protocol, cfg.sasl_mechanism, cfg.sasl_username.as_deref()) {
            (p, Some(m), Some(u)) if p.sasl() => format!("security_protocol = \"{}\", {} as user {u:?}", p.librdkafka(), m.name()),
            (p, ..) => format!("security_protocol = \"{}\"", p.librdkafka()),
        };
        Self(Arc::new(WatchState { secrets: conn.secrets(), security, fatal: Mutex::new(None), notify: tokio::sync::Notify::new() }))
    }

    /// The first fatal error, naming the setting to look at.
    pub(crate) fn fatal(&self) -> Option<String> {
        self.0.fatal.lock().expect("watch").clone()
    }

    /// Resolves when a fatal error is seen.
    pub(crate) async fn failed(&self) -> String {
        loop {
            let notified = self.0.notify.notified();
            if let Some(f) = self.fatal() {
                return f;
            }
            notified.await;
        }
    }

    fn set_fatal(&self, msg: String) {
        let mut f = self.0.fatal.lock().expect("watch");
        if f.is_none() {
            *f = Some(msg);
            self.0.notify.notify_waiters();
        }
    }

    fn classify(&self, code: RDKafkaErrorCode, reason: &str) -> Option<String> {
        let lower = reason.to_ascii_lowercase();
        let sec = &self.0.security;
        if code == RDKafkaErrorCode::Authentication {
            return Some(format!("queue.kafka.sasl_username / queue.kafka.sasl_password: the broker refused the credentials ({sec}): {reason}"));
        }
        if code == RDKafkaErrorCode::SSL || lower.contains("ssl handshake failed") || lower.contains("certificate verify failed") {
            let setting = if lower.contains("certificate verify failed") || lower.contains("could not be verified") {
                "queue.kafka.ssl_ca_location: the broker's certificate is not trusted (is ssl_ca_location the CA that signed it?)"
            } else {
                "queue.kafka.security_protocol / queue.kafka.ssl_*: the TLS handshake with the broker failed"
            };
            return Some(format!("{setting} ({sec}): {reason}"));
        }
        if lower.contains("security.protocol") || lower.contains("sasl.mechanism") {
            return Some(format!("queue.kafka.security_protocol / queue.kafka.sasl_mechanism: the broker does not speak {sec}: {reason}"));
        }
        None
    }
}

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        let reason = scrub(&self.0.secrets, reason);
        if let Some(code) = error.rdkafka_error_code()
            && let Some(msg) = self.classify(code, &reason)
        {
            self.set_fatal(msg);
        }
        tracing::warn!(error = %scrub(&self.0.secrets, &error.to_string()), reason = %reason, "kafka client error");
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        let msg = scrub(&self.0.secrets, log_message);
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => tracing::error!(target: "librdkafka", "{fac} {msg}"),
            L::Warning => tracing::warn!(target: "librdkafka", "{fac} {msg}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", "{fac} {msg}"),
            L::Debug => tracing::debug!(target: "librdkafka", "{fac} {msg}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl() -> KafkaConfig {
        KafkaConfig {
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: Some(SaslMechanism::ScramSha512),
            sasl_username: Some("herald".into()),
            sasl_password: Some(Secret::new("hunter2-very-secret")),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn secrets_never_show_in_debug_or_serialize() {
        let mut cfg = sasl();
        cfg.ssl_key_password = Some(Secret::new("key-pass-secret"));
        cfg.options.insert("sasl.oauthbearer.client.secret".into(), "oauth-secret-value".into());
        cfg.options.insert("socket.keepalive.enable".into(), "true".into());
        let dbg = format!("{cfg:?} {cfg:#?}");
        for s in ["hunter2-very-secret", "key-pass-secret", "oauth-secret-value"] {
            assert!(!dbg.contains(s), "{s} in Debug: {dbg}");
        }
        assert!(dbg.contains("socket.keepalive.enable") && dbg.contains("\"true\""), "other options are shown: {dbg}");
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(!json.contains("hunter2") && !json.contains("key-pass-secret") && !json.contains("oauth-secret-value"), "{json}");
        assert!(json.contains("socket.keepalive.enable"), "{json}");
    }

    #[test]
    fn validation_names_the_setting() {
        let err = |c: KafkaConfig| validate(&c).unwrap_err();
        assert!(err(KafkaConfig { sasl_mechanism: None, ..sasl() }).starts_with("queue.kafka.sasl_mechanism:"));
        assert!(err(KafkaConfig { sasl_username: None, ..sasl() }).starts_with("queue.kafka.sasl_username:"));
        assert!(err(KafkaConfig { sasl_password: None, ..sasl() }).starts_with("queue.kafka.sasl_password:"));
        let plain_with_user = KafkaConfig { sasl_username: Some("u".into()), ..KafkaConfig::default() };
        assert!(err(plain_with_user).starts_with("queue.kafka.sasl_username: set, but security_protocol = \"plaintext\""));
        let ca = KafkaConfig { ssl_ca_location: Some("/nonexistent/ca.pem".into()), ..sasl() };
        let e = err(ca);
        assert!(e.starts_with("queue.kafka.ssl_ca_location: cannot read /nonexistent/ca.pem"), "{e}");
        let tls_on_plain = KafkaConfig { ssl_ca_location: Some("/etc/hostname".into()), ..KafkaConfig::default() };
        assert!(err(tls_on_plain).starts_with("queue.kafka.ssl_ca_location: set, but"));
        let mut reserved = sasl();
        reserved.options.insert("enable.auto.offset.store".into(), "true".into());
        assert!(err(reserved).starts_with("queue.kafka.options: \"enable.auto.offset.store\""));
        let mut pw = sasl();
        pw.options.insert("sasl.password".into(), "x".into());
        assert!(err(pw).contains("queue.kafka.sasl_password"));
        assert!(validate(&sasl()).is_ok());
        assert!(validate(&KafkaConfig::default()).is_ok());
    }

    #[test]
    fn the_password_comes_from_a_file_too() {
        let dir = std::env::temp_dir().join(format!("herald-kafka-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-a-file-secret\n").unwrap();
        let cfg = KafkaConfig { sasl_password: None, sasl_password_file: Some(file.clone()), ..sasl() };
        let conn = Connection::new(&cfg).unwrap();
        assert_eq!(conn.client().get("sasl.password"), Some("from-a-file-secret"));
        assert_eq!(conn.scrub("bad from-a-file-secret here"), "bad *** here");
        let both = KafkaConfig { sasl_password_file: Some(file), ..sasl() };
        assert_eq!(validate(&both).unwrap_err(), "queue.kafka.sasl_password and queue.kafka.sasl_password_file are both set; set one of them");
        let missing = KafkaConfig { sasl_password: None, sasl_password_file: Some(dir.join("nope")), ..sasl() };
        assert!(validate(&missing).unwrap_err().starts_with("queue.kafka.sasl_password_file: cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn options_pass_through() {
        let mut cfg = KafkaConfig::default();
        cfg.options.insert("socket.keepalive.enable".into(), "true".into());
        let c = Connection::new(&cfg).unwrap().client();
        assert_eq!(c.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
    }
}
