//! Connection security: credentials (`PasswordAuthenticator`) and client TLS
//! (rustls with ring), for ScyllaDB and Cassandra alike. Errors name the
//! gateway's settings (`storage.cql.password`, `storage.cql.tls.ca_file`...)
//! and never contain the password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// Username and password for the server's `PasswordAuthenticator`. `Debug`
/// never shows the password.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"***").finish()
    }
}

/// Client TLS to the CQL nodes.
#[derive(Debug, Clone)]
pub struct Tls {
    /// PEM file of the CA(s) that signed the nodes' certificates.
    pub ca_file: PathBuf,
    /// Client certificate (PEM) and its key, for nodes that require one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Check that a node's certificate names the address it was reached at
    /// (an IP SAN: the driver connects to the addresses the cluster reports).
    pub verify_hostname: bool,
}

fn certs(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{field}: {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{field}: no certificate in {}", path.display()));
    }
    Ok(certs)
}

impl Tls {
    /// The rustls client config; errors name the setting.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in certs("storage.cql.tls.ca_file", &self.ca_file)? {
            roots.add(c).map_err(|e| format!("storage.cql.tls.ca_file: {}: {e}", self.ca_file.display()))?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("storage.cql.tls.ca_file: {}: {e}", self.ca_file.display()))?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.verify_hostname { webpki } else { Arc::new(AnyName(webpki)) };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("storage.cql.tls: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let chain = certs("storage.cql.tls.cert_file", cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("storage.cql.tls.key_file: cannot read a PEM key from {}: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| format!("storage.cql.tls.cert_file / key_file: {e}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => return Err("storage.cql.tls.key_file: required with cert_file".into()),
            (None, Some(_)) => return Err("storage.cql.tls.cert_file: required with key_file".into()),
        };
        Ok(Arc::new(config))
    }
}

/// `verify_hostname = false`: the chain must still lead to the CA; only the
/// name check is skipped.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A session that could not be opened, explained in terms of the settings
/// when the cause is one (refused credentials, an untrusted certificate).
/// `password` is scrubbed from the text.
pub(crate) fn explain(err: &str, password: Option<&str>) -> Option<String> {
    let text = match password {
        Some(p) if p.len() >= 3 => err.replace(p, "***"),
        _ => err.to_string(),
    };
    let lower = text.to_ascii_lowercase();
    let setting = if lower.contains("authentication is required") {
        "storage.cql.username / storage.cql.password: the server requires a login (PasswordAuthenticator); set username and password"
    } else if lower.contains("username") && lower.contains("password") || lower.contains("authentication") || lower.contains("bad credentials") {
        "storage.cql.username / storage.cql.password: the server refused the credentials"
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        "storage.cql.tls.verify_hostname: the server's certificate does not name the address it was reached at"
    } else if lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
        || lower.contains("invalid peer certificate")
        || lower.contains("badsignature")
    {
        "storage.cql.tls.ca_file: the server's certificate is not trusted (is ca_file the CA that signed it?)"
    } else if lower.contains("certificate") || lower.contains("handshake") || lower.contains("tls") {
        "storage.cql.tls: the TLS handshake with the server failed"
    } else {
        return None;
    };
    Some(format!("{setting}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_not_in_debug_or_errors() {
        let c = Credentials { username: "herald".into(), password: "s3cret-pass".into() };
        assert!(!format!("{c:?} {c:#?}").contains("s3cret-pass"));
        let e = explain("Authentication failed: bad password s3cret-pass for herald", Some("s3cret-pass")).unwrap();
        assert!(e.starts_with("storage.cql.username / storage.cql.password:"), "{e}");
        assert!(!e.contains("s3cret-pass"), "{e}");
    }

    #[test]
    fn tls_errors_name_the_setting() {
        let e = explain("Control connection pool error: invalid peer certificate: UnknownIssuer", None).unwrap();
        assert!(e.starts_with("storage.cql.tls.ca_file:"), "{e}");
        let missing = Tls { ca_file: "/nonexistent/ca.pem".into(), cert_file: None, key_file: None, verify_hostname: true };
        let e = missing.client_config().unwrap_err();
        assert!(e.starts_with("storage.cql.tls.ca_file: cannot read /nonexistent/ca.pem"), "{e}");
        assert_eq!(explain("connection refused", None), None);
    }

    /// A CA, and a client certificate and key it signed, as PEM files.
    fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["herald".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
        let paths = (dir.join("ca.pem"), dir.join("client.pem"), dir.join("client.key"));
        std::fs::write(&paths.0, ca_cert.pem()).unwrap();
        std::fs::write(&paths.1, cert.pem()).unwrap();
        std::fs::write(&paths.2, key.serialize_pem()).unwrap();
        paths
    }

    #[test]
    fn a_client_certificate_is_loaded_and_its_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = pki(dir.path());
        let tls = |cert_file: Option<&Path>, key_file: Option<&Path>| Tls {
            ca_file: ca.clone(),
            cert_file: cert_file.map(Path::to_path_buf),
            key_file: key_file.map(Path::to_path_buf),
            verify_hostname: false,
        };
        let config = tls(Some(&cert), Some(&key)).client_config().unwrap();
        assert!(config.client_auth_cert_resolver.has_certs(), "the client certificate is offered");
        assert!(!tls(None, None).client_config().unwrap().client_auth_cert_resolver.has_certs());
        let e = tls(Some(&cert), None).client_config().unwrap_err();
        assert_eq!(e, "storage.cql.tls.key_file: required with cert_file");
        let e = tls(None, Some(&key)).client_config().unwrap_err();
        assert_eq!(e, "storage.cql.tls.cert_file: required with key_file");
        // The certificate given as the key, and the key as the certificate.
        let e = tls(Some(&cert), Some(&cert)).client_config().unwrap_err();
        assert!(e.starts_with("storage.cql.tls.key_file:"), "{e}");
        let e = tls(Some(&key), Some(&key)).client_config().unwrap_err();
        assert!(e.starts_with("storage.cql.tls.cert_file:"), "{e}");
    }
}
