//! Outbound provider HTTP (issue 14 point 3): deliveries through an HTTP
//! CONNECT proxy (from `transport.proxy` or the standard variables), with
//! `NO_PROXY` bypassing it and the address guard still applied to the final
//! destination; an extra CA bundle (`transport.ca_files`) making a receiver
//! with a certificate from a private CA trusted.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{API_KEY, Gateway, eventually, gateway_bin, plugin_dir, request, spawn_logged, tenant};
use crate::sinks::WebhookSink;

const RETRY: &str = "[retry]\nmax_attempts = 2\nbase_ms = 50\nmax_ms = 100\n";

/// A minimal HTTP CONNECT proxy on loopback: records each tunnel's target and
/// pipes bytes both ways. Anything but CONNECT is answered 405.
#[derive(Clone)]
struct ConnectProxy {
    url: String,
    tunnels: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let seen = tunnels.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(tunnel(conn, seen.clone()));
            }
        });
        Self { url, tunnels }
    }

    fn tunnels(&self) -> Vec<String> {
        self.tunnels.lock().unwrap().clone()
    }
}

async fn tunnel(mut client: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || client.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or("").to_string());
    if method != "CONNECT" {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n").await;
        return;
    }
    seen.lock().unwrap().push(target.clone());
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n").await;
        return;
    };
    if client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

fn account(name: &str, url: &str) -> String {
    format!("[[tenants.accounts]]\nname = \"{name}\"\nplugin = \"webhook\"\nconfig = {{ url = \"{url}\" }}\n")
}

fn settled(v: &Value) -> bool {
    v["deliveries"].as_array().unwrap().iter().all(|d| !matches!(d["status"].as_str(), Some("queued" | "retrying")))
}

/// Send one webhook notification on `account` to the gateway at `base`; the settled delivery.
async fn deliver(base: &str, account: &str) -> Value {
    deliver_body(base, json!({"channel": "webhook", "account": account, "content": {"text": "hi"}, "recipients": [{"to": "x"}]})).await
}

/// Send `body` (one recipient) to the gateway at `base`; the settled delivery.
async fn deliver_body(base: &str, body: Value) -> Value {
    let r =
        request("POST", &format!("{base}/v1/messages"), Some(API_KEY), &[("content-type", "application/json")], Bytes::from(body.to_string())).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = request("GET", &format!("{base}/v1/messages/{id}"), Some(API_KEY), &[], Bytes::new()).await;
        if r.status == 200 && settled(&r.json()) {
            return r.json()["deliveries"][0].clone();
        }
        assert!(Instant::now() < deadline, "message {id} not settled: {}", r.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn port(url: &str) -> u16 {
    url.trim_start_matches("http://").trim_start_matches("https://").split(['/', ':']).nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_goes_through_the_configured_proxy_and_no_proxy_bypasses_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let refused = WebhookSink::start().await;
    let proxy = ConnectProxy::start().await;
    let sink_port = port(&sink.url);
    let accounts =
        [account("via", &sink.url), account("direct", &sink.url.replace("127.0.0.1", "localhost")), account("internal", &refused.url)].concat();
    // Only the sink's address is allowed: the proxy (also on loopback, another
    // port) is the operator's and is not checked; the other receiver is refused.
    let config = format!(
        "transport.allow_private = [\"127.0.0.1:{sink_port}\", \"localhost:{sink_port}\"]\ntransport.proxy = \"{}\"\ntransport.no_proxy = [\"localhost\"]\n{RETRY}{}",
        proxy.url,
        tenant("acme", API_KEY, &accounts)
    );
    let gw = Gateway::start(dir.path(), &config);

    let d = deliver(&gw.url, "via").await;
    assert_eq!(d["status"], "sent", "{d}");
    assert_eq!(sink.received().len(), 1);
    assert_eq!(proxy.tunnels(), vec![format!("127.0.0.1:{sink_port}")], "the delivery went through the proxy, to the checked address");

    // NO_PROXY: localhost goes direct (the proxy sees nothing new).
    let d = deliver(&gw.url, "direct").await;
    assert_eq!(d["status"], "sent", "{d}");
    assert_eq!(sink.received().len(), 2);
    assert_eq!(proxy.tunnels().len(), 1, "localhost bypasses the proxy: {:?}", proxy.tunnels());

    // The guard still applies to the final destination behind the proxy: a
    // private address that is not allowed fails at once, and the proxy is
    // never asked to reach it.
    let d = deliver(&gw.url, "internal").await;
    assert_eq!(d["status"], "failed", "{d}");
    let detail = d["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("private address") && detail.contains("transport.allow_private"), "{detail}");
    assert_eq!(d["attempts"], 1, "{d}");
    assert!(refused.received().is_empty());
    assert_eq!(proxy.tunnels().len(), 1, "the proxy was asked for a refused destination: {:?}", proxy.tunnels());
}

/// The gateway with `env` (proxy variables), on `config` written as the harness does.
fn start_with_env(data: &Path, config: &str, env: &[(&str, &str)]) -> (Child, String) {
    std::fs::create_dir_all(data).unwrap();
    let path = data.join("herald.toml");
    let full = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndemo = false\nplugins.dir = \"{}\"\n{}\n",
        data.display(),
        plugin_dir().display(),
        config
    );
    std::fs::write(&path, full).unwrap();
    let mut cmd = Command::new(gateway_bin());
    for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"] {
        cmd.env_remove(var);
    }
    cmd.arg("--config").arg(&path).envs(env.iter().copied());
    spawn_logged(cmd, &data.join("gateway.log"), "herald-gateway listening on ")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_standard_proxy_variables_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let proxy = ConnectProxy::start().await;
    let sink_port = port(&sink.url);
    let accounts = [account("via", &sink.url), account("direct", &sink.url.replace("127.0.0.1", "localhost"))].concat();
    let config = format!("transport.allow_private = [\"127.0.0.0/8\", \"::1\"]\n{RETRY}{}", tenant("acme", API_KEY, &accounts));
    let (mut child, url) = start_with_env(&dir.path().join("env"), &config, &[("HTTP_PROXY", &proxy.url), ("NO_PROXY", "localhost,example.com")]);
    let d = deliver(&url, "via").await;
    let d2 = deliver(&url, "direct").await;
    let tunnels = proxy.tunnels();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(d["status"], "sent", "{d}");
    assert_eq!(d2["status"], "sent", "{d2}");
    assert_eq!(tunnels, vec![format!("127.0.0.1:{sink_port}")], "HTTP_PROXY used, NO_PROXY=localhost bypassed");
    assert_eq!(sink.received().len(), 2);

    // transport.proxy_from_env = false: the variables are ignored.
    let (mut child, url) = start_with_env(
        &dir.path().join("off"),
        &format!("transport.proxy_from_env = false\n{config}"),
        &[("HTTP_PROXY", &proxy.url), ("HTTPS_PROXY", &proxy.url)],
    );
    let d = deliver(&url, "via").await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(d["status"], "sent", "{d}");
    assert_eq!(proxy.tunnels().len(), 1, "proxy_from_env = false still used the variables");

    // A proxy variable the gateway cannot use stops the start, naming it
    // (and not showing its password).
    let mut cmd = Command::new(gateway_bin());
    let data = dir.path().join("bad");
    std::fs::create_dir_all(&data).unwrap();
    let path = data.join("herald.toml");
    std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndemo = false\n", data.display())).unwrap();
    let out = cmd.arg("validate").arg("--config").arg(&path).env("HTTPS_PROXY", "socks5://u:pw-DO-NOT-PRINT@proxy:1080").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("HTTPS_PROXY") && err.contains("proxy_from_env") && !err.contains("DO-NOT-PRINT"), "{err}");
}

/// An HTTPS receiver whose certificate a private CA signed (made here):
/// counts the requests it answers. Returns (url, CA PEM, count).
async fn tls_receiver() -> (String, String, Arc<Mutex<usize>>) {
    let (ca_pem, leaf, leaf_key) = private_ca();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}/hook", listener.local_addr().unwrap().port());
    let count = Arc::new(Mutex::new(0usize));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(conn).await else { return };
                let service = hyper::service::service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
                    *seen.lock().unwrap() += 1;
                    async { Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(Bytes::from_static(b"ok")))) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tls), service).await;
            });
        }
    });
    (url, ca_pem, count)
}

/// A private CA (made here) and a certificate for `localhost` it signed:
/// (CA PEM, the certificate, its key).
fn private_ca() -> (String, rcgen::Certificate, rcgen::KeyPair) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Herald test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
    (ca_cert.pem(), leaf, leaf_key)
}

/// SMTP relays trust the same extra roots as provider HTTP: a relay whose
/// certificate a private CA signed fails without `transport.ca_files` (the
/// reason names the certificate) and takes the mail with it.
#[tokio::test(flavor = "multi_thread")]
async fn an_extra_ca_bundle_makes_a_private_smtp_relay_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, leaf, leaf_key) = private_ca();
    let (ca_file, cert_file, key_file) = (dir.path().join("ca.pem"), dir.path().join("relay.pem"), dir.path().join("relay.key"));
    std::fs::write(&ca_file, &ca_pem).unwrap();
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, leaf_key.serialize_pem()).unwrap();
    let smtp = crate::sinks::SmtpSink::start_tls(dir.path(), "mailer", "pa55word", Some((&cert_file, &key_file)));
    let accounts = format!(
        "[[tenants.accounts]]\nname = \"mail\"\nplugin = \"email\"\n\
         config = {{ from = \"news@acme.test\", smtp = {{ host = \"localhost\", port = {}, tls = \"starttls\", \
         username = \"mailer\", password = \"pa55word\" }} }}\n",
        smtp.port
    );
    let mail = json!({"channel": "email", "account": "mail", "content": {"subject": "Hi", "text": "hi"}, "recipients": [{"to": "a@example.test"}]});

    let gw = Gateway::start(&dir.path().join("without"), &format!("{RETRY}{}", tenant("acme", API_KEY, &accounts)));
    let d = deliver_body(&gw.url, mail.clone()).await;
    assert!(matches!(d["status"].as_str(), Some("failed" | "dead")), "{d}");
    let detail = d["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("certificate") || detail.contains("UnknownIssuer"), "the reason names the certificate: {detail}");
    assert!(smtp.messages().is_empty());
    drop(gw);

    let config = format!("transport.ca_files = [\"{}\"]\n{RETRY}{}", ca_file.display(), tenant("acme", API_KEY, &accounts));
    let gw = Gateway::start(&dir.path().join("with"), &config);
    let d = deliver_body(&gw.url, mail.clone()).await;
    assert_eq!(d["status"], "sent", "{d}\n{}", gw.log());
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extra_ca_bundle_makes_a_private_receiver_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (url, ca_pem, count) = tls_receiver().await;
    let ca_file = dir.path().join("private-ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let accounts = account("tls", &url);

    // Without the bundle the certificate is not trusted: no request is answered.
    let gw = Gateway::start(&dir.path().join("without"), &format!("{RETRY}{}", tenant("acme", API_KEY, &accounts)));
    let d = deliver(&gw.url, "tls").await;
    assert!(matches!(d["status"].as_str(), Some("failed" | "dead")), "{d}");
    let detail = d["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("certificate") || detail.contains("UnknownIssuer"), "the reason names the certificate: {detail}");
    assert_eq!(*count.lock().unwrap(), 0);
    drop(gw);

    // With it (and through the proxy as well, TLS inside the tunnel).
    let proxy = ConnectProxy::start().await;
    let config = format!(
        "transport.ca_files = [\"{}\"]\ntransport.proxy = \"{}\"\n{RETRY}{}",
        ca_file.display(),
        proxy.url,
        tenant("acme", API_KEY, &accounts)
    );
    let gw = Gateway::start(&dir.path().join("with"), &config);
    let d = deliver(&gw.url, "tls").await;
    assert_eq!(d["status"], "sent", "{d}\n{}", gw.log());
    eventually(Duration::from_secs(5), "the receiver's answer", || *count.lock().unwrap() == 1).await;
    // localhost may resolve to ::1 first (nothing listens there): the
    // checked addresses are tried in turn, each as its own tunnel.
    assert!(proxy.tunnels().iter().any(|t| t.starts_with("127.0.0.1:")), "{:?}", proxy.tunnels());
}
