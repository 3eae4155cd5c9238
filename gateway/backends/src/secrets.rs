//! Sealing sender-account secrets at rest.
//!
//! A plugin names its secret fields (`describe().secret-fields`): dotted paths
//! such as `password` or `smtp.password`, where a `*` segment stands for every
//! key of an object (`headers.*`: every header value). The admin service (and
//! the gateway, for accounts from its config file) replaces each such field
//! of the account JSON with the string
//! `sealed:v1:<base64(nonce ‖ ChaCha20-Poly1305 ciphertext)>`; the associated
//! data binds it to its tenant, account and field, so a sealed value copied to
//! another account does not open. The gateway opens the values just before a
//! plugin call. The 32-byte key comes from configuration (`secrets_key`,
//! base64) or from `<data_dir>/secret.key`, created readable only by its owner
//! on first use and shared by the processes on one machine.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use herald_core::model::Account;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const PREFIX: &str = "sealed:v1:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealError(pub String);

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SealError {}

pub struct Sealer {
    cipher: ChaCha20Poly1305,
    /// HMAC-SHA256 of "herald-ack" under the key: signs acknowledgement links.
    ack_key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A key given as base64 of 32 bytes.
    pub fn from_base64(key: &str) -> Result<Self, SealError> {
        let bytes = B64.decode(key.trim()).map_err(|_| SealError("secrets_key: not base64".into()))?;
        if bytes.len() != 32 {
            return Err(SealError(format!("secrets_key: {} bytes, expected 32", bytes.len())));
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).map_err(|_| SealError("secrets_key: unusable".into()))?;
        mac.update(b"herald-ack");
        let ack_key = mac.finalize().into_bytes().into();
        Ok(Self { cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)), ack_key })
    }

    /// The configured key, else the machine's key file (created on first use).
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(k) = configured {
            return Ok(Self::from_base64(k)?);
        }
        let path = data_dir.join("secret.key");
        if !path.exists() {
            create_key_file(&path)?;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::from_base64(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Sign `payload` (acknowledgement links): hex HMAC-SHA256 under a key derived from the secrets key.
    pub fn sign(&self, payload: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.ack_key).expect("any key length");
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is `sign(payload)` (constant time).
    pub fn verify(&self, payload: &str, signature: &str) -> bool {
        let Ok(sig) = hex::decode(signature) else { return false };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.ack_key).expect("any key length");
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).is_ok()
    }

    /// Seal the named fields (dotted paths such as `smtp.password`, `*` for
    /// every key of an object) of the account's config that are present and
    /// not sealed yet.
    pub fn seal(&self, account: &mut Account, fields: &[String]) -> Result<(), SealError> {
        let id = account_id(&account.tenant, &account.name);
        for path in expand_secret_paths(&account.config, fields) {
            // The same dotted name `open` rebuilds from the keys.
            let f = path.join(".");
            let Some(v) = path.iter().try_fold(&mut account.config, |v, k| v.as_object_mut()?.get_mut(k)) else { continue };
            if v.as_str().is_some_and(|s| s.starts_with(PREFIX)) || v.is_null() {
                continue;
            }
            let plain = match &*v {
                Value::String(s) => s.clone().into_bytes(),
                other => serde_json::to_vec(other).map_err(|e| SealError(e.to_string()))?,
            };
            let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
            let aad = aad(id.clone(), &f, v.is_string());
            let ct = self.cipher.encrypt(&nonce, Payload { msg: &plain, aad: aad.as_bytes() }).map_err(|_| SealError(format!("{f}: cannot seal")))?;
            let mut out = nonce.to_vec();
            out.extend_from_slice(&ct);
            *v = Value::String(format!("{PREFIX}{}", B64.encode(out)));
        }
        Ok(())
    }

    /// A copy of the account with every sealed field opened (what a plugin sees).
    pub fn open(&self, account: &Account) -> Result<Account, SealError> {
        let mut out = account.clone();
        let id = account_id(&account.tenant, &account.name);
        self.open_in(&mut out.config, "", &id, &account.name)?;
        Ok(out)
    }

    fn open_in(&self, value: &mut Value, path: &str, id: &str, name: &str) -> Result<(), SealError> {
        let Value::Object(map) = value else { return Ok(()) };
        for (k, v) in map.iter_mut() {
            let f = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            if v.is_object() {
                self.open_in(v, &f, id, name)?;
                continue;
            }
            let Some(sealed) = v.as_str().and_then(|s| s.strip_prefix(PREFIX)) else { continue };
            let damaged = || SealError(format!("account {name}: field {f}: damaged"));
            let raw = B64.decode(sealed).map_err(|_| damaged())?;
            if raw.len() < 12 {
                return Err(damaged());
            }
            let (nonce, ct) = raw.split_at(12);
            // Strings were sealed as their bytes, other JSON values as JSON.
            let opened = [true, false].into_iter().find_map(|is_string| {
                let aad = aad(id.to_string(), &f, is_string);
                let plain = self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() }).ok()?;
                if is_string { String::from_utf8(plain).ok().map(Value::String) } else { serde_json::from_slice(&plain).ok() }
            });
            *v = opened.ok_or_else(|| SealError(format!("account {name}: field {f} does not open with this key (was secrets_key changed?)")))?;
        }
        Ok(())
    }
}

/// The concrete paths (lists of keys) the secret `fields` name in `config`:
/// a `*` segment expands to every key of the object there (keys may contain
/// dots, hence lists). Paths that are not present are left out.
pub fn expand_secret_paths(config: &Value, fields: &[String]) -> Vec<Vec<String>> {
    fn walk(v: &Value, rest: &[&str], prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let Some((first, rest)) = rest.split_first() else {
            out.push(prefix.clone());
            return;
        };
        let Value::Object(m) = v else { return };
        let keys: Vec<&String> = if *first == "*" { m.keys().collect() } else { m.get_key_value(*first).map(|(k, _)| k).into_iter().collect() };
        for k in keys {
            prefix.push(k.clone());
            walk(&m[k], rest, prefix, out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    for f in fields {
        let parts: Vec<&str> = f.split('.').collect();
        walk(config, &parts, &mut Vec::new(), &mut out);
    }
    out
}

/// The value at a dotted path inside nested objects.
pub fn field_mut<'a>(config: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(config, |v, k| v.as_object_mut()?.get_mut(k))
}

fn account_id(tenant: &str, name: &str) -> String {
    format!("{tenant}\u{0}{name}")
}

fn aad(id: String, field: &str, is_string: bool) -> String {
    format!("herald-account\u{0}{id}\u{0}{field}\u{0}{}", if is_string { "s" } else { "j" })
}

/// Write a fresh key next to `path`, then link it into place: of two processes
/// starting together, one key wins and both read it.
fn create_key_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".secret.key.{}", std::process::id()));
    let key = ChaCha20Poly1305::generate_key(&mut OsRng);
    {
        let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp)?;
        writeln!(f, "{}", B64.encode(key))?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> Account {
        Account {
            tenant: "t".into(),
            name: name.into(),
            plugin: "email".into(),
            config: serde_json::json!({"host": "smtp.example.com", "password": "p@ss", "port": 587, "pin": 1234,
                "smtp": {"password": "nested", "user": "u"}}),
            rate_per_sec: None,
        }
    }

    #[test]
    fn sealed_fields_hide_the_secret_and_open_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sealer::load(None, dir.path()).unwrap();
        let mut a = account("a");
        s.seal(&mut a, &["password".into(), "pin".into(), "absent".into(), "smtp.password".into(), "x.y".into()]).unwrap();
        let text = a.config.to_string();
        assert!(!text.contains("p@ss") && !text.contains("1234") && !text.contains("nested"), "{text}");
        assert_eq!(a.config["smtp"]["user"], "u");
        assert_eq!(a.config["host"], "smtp.example.com", "other fields untouched");
        let again = a.clone();
        s.seal(&mut a, &["password".into()]).unwrap();
        assert_eq!(a, again, "sealing twice changes nothing");
        assert_eq!(s.open(&a).unwrap(), account("a"));
        // The same key file serves a second process.
        let s2 = Sealer::load(None, dir.path()).unwrap();
        assert_eq!(s2.open(&a).unwrap(), account("a"));
    }

    #[test]
    fn wildcard_paths_seal_every_value_of_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sealer::load(None, dir.path()).unwrap();
        let plain = serde_json::json!({"url": "https://x", "headers": {"Authorization": "Bearer t0ken", "X.Api.Key": "k3y"}});
        let mut a = Account { tenant: "t".into(), name: "w".into(), plugin: "webhook".into(), config: plain.clone(), rate_per_sec: None };
        s.seal(&mut a, &["headers.*".into(), "nothing.*".into(), "url.*".into()]).unwrap();
        let text = a.config.to_string();
        assert!(!text.contains("t0ken") && !text.contains("k3y"), "{text}");
        assert!(a.config["headers"]["X.Api.Key"].as_str().unwrap().starts_with(PREFIX), "keys with dots are sealed too");
        assert_eq!(a.config["url"], "https://x");
        assert_eq!(s.open(&a).unwrap().config, plain);
        assert_eq!(expand_secret_paths(&plain, &["headers.*".into()]).len(), 2);
    }

    #[test]
    fn a_sealed_value_does_not_open_elsewhere_or_with_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sealer::load(None, dir.path()).unwrap();
        let mut a = account("a");
        s.seal(&mut a, &["password".into()]).unwrap();
        let moved = Account { name: "b".into(), ..a.clone() };
        assert!(s.open(&moved).unwrap_err().0.contains("password"));
        let other = Sealer::from_base64(&B64.encode([7u8; 32])).unwrap();
        assert!(other.open(&a).is_err());
        assert!(Sealer::from_base64("c2hvcnQ=").unwrap_err().0.contains("secrets_key"));
    }
}
