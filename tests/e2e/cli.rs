//! The command lines (issue 14 point 5): `--help` and `--version` of the four
//! binaries, and `validate` of the gateway's and the admin's configuration
//! files: good, bad (unknown key, wrong type, an account its plugin refuses)
//! and secured (Kafka SASL/TLS, CQL credentials) files, with and without
//! `--connect`. No secret value may appear in what `validate` prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{API_KEY, gateway_bin, plugin_dir};

fn bin(name: &str) -> PathBuf {
    let b = gateway_bin().with_file_name(name);
    assert!(b.exists(), "{} is missing: build with --bins", b.display());
    b
}

/// Run without any HERALD_* or proxy variable of the caller's environment.
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin(name));
    for (k, _) in std::env::vars() {
        if k.starts_with("HERALD_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).envs(env.iter().copied()).output().expect("run binary")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn every_binary_answers_version_and_help() {
    for (name, help_words) in [
        ("herald-gateway", &["--config", "validate", "HERALD_CONFIG"][..]),
        ("herald-admin", &["--config", "validate", "HERALD_ADMIN_CONFIG"][..]),
        ("herald-bench", &["--gateway", "--plugins", "--shape", "--backend"][..]),
        ("herald-plugin-check", &["--fixtures", "--account", "PLUGIN.wasm"][..]),
    ] {
        let o = run(name, &["--version"], &[]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{name} --version: {err}");
        assert_eq!(out.trim(), format!("{name} {VERSION}"), "{name} --version");
        let o = run(name, &["--help"], &[]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{name} --help: {err}");
        assert!(out.contains("Usage:"), "{name} --help:\n{out}");
        for w in help_words {
            assert!(out.contains(w), "{name} --help does not mention {w}:\n{out}");
        }
        // A made-up flag is a usage error (2), not a start.
        let o = run(name, &["--no-such-flag"], &[]);
        assert_eq!(o.status.code(), Some(2), "{name} --no-such-flag: {:?}", text(&o));
    }
    // The admin's hidden upload-parser child is not in --help and still runs
    // (it is dispatched before argument parsing: empty input, no clap error).
    let (out, _) = text(&run("herald-admin", &["--help"], &[]));
    assert!(!out.contains("parse-upload"), "{out}");
    let o = run("herald-admin", &["parse-upload", "x.csv"], &[]);
    let (_, err) = text(&o);
    assert!(!err.contains("unrecognized subcommand") && !err.contains("Usage:"), "{err}");
}

/// A gateway config in `dir`: embedded backends under `dir`, the test plugins.
fn gateway_config(dir: &Path, rest: &str) -> PathBuf {
    let path = dir.join("herald.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndemo = false\nplugins.dir = \"{}\"\n\n{rest}\n",
        dir.join("data").display(),
        plugin_dir().display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn validate(name: &str, file: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["validate", "--config", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(name, &args, &[]);
    let (out, err) = text(&o);
    assert!(o.status.code() == Some(0) || o.status.code() == Some(1), "{name} validate exit {:?}: {out}{err}", o.status);
    (o.status.success(), out, err)
}

const GOOD_TENANT: &str = r#"
[[tenants]]
id = "acme"
api_keys = ["hk_test_0123456789abcdef"]
[[tenants.accounts]]
name = "hook"
plugin = "webhook"
config = { url = "https://hooks.example.com/in", secret = "whsec-DO-NOT-PRINT-1" }
[[tenants.templates]]
id = "hello"
text = "Hello {{ name }}"
"#;

#[test]
fn gateway_validate_accepts_a_good_file_and_names_the_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    assert!(GOOD_TENANT.contains(API_KEY));
    let good = gateway_config(dir.path(), GOOD_TENANT);
    let (ok, out, err) = validate("herald-gateway", &good, &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("configuration is valid") && out.contains("1 account(s) accepted"), "{out}");
    assert!(!dir.path().join("data").exists(), "validate writes nothing (no data dir, no key file)");

    // HERALD_CONFIG still names the file, as for serving.
    let o = run("herald-gateway", &["validate"], &[("HERALD_CONFIG", good.to_str().unwrap())]);
    assert!(o.status.success(), "{:?}", text(&o));

    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown key", "[dispatch]\nconcurency = 3\n", &["dispatch", "concurency"]),
        ("unknown section", "[transprt]\nproxy = \"http://p:3128\"\n", &["transprt"]),
        ("wrong type", "[dispatch]\nconcurrency = \"many\"\n", &["dispatch.concurrency"]),
        ("wrong type, top level", "idempotency_ttl_hours = \"a day\"\n", &["idempotency_ttl_hours"]),
        ("a rule", "[dispatch]\nmax_batch = 0\n", &["dispatch.max_batch"]),
        (
            "an unknown account key",
            "[[tenants]]\nid = \"a\"\n[[tenants.accounts]]\nname = \"x\"\nplugin = \"webhook\"\nconfig = {}\nrate = 3\n",
            &["tenants", "rate"],
        ),
        (
            "an account its plugin refuses",
            "[[tenants]]\nid = \"a\"\n[[tenants.accounts]]\nname = \"ok\"\nplugin = \"webhook\"\nconfig = { url = \"https://x.example/\" }\n[[tenants.accounts]]\nname = \"broken\"\nplugin = \"webhook\"\nconfig = { url = \"ftp://x.example/\", secret = \"whsec-DO-NOT-PRINT-2\" }\n",
            &["tenants[0].accounts[1]", "broken", "webhook", "url"],
        ),
        (
            "a plugin that is not there",
            "[[tenants]]\nid = \"a\"\n[[tenants.accounts]]\nname = \"x\"\nplugin = \"pigeon\"\nconfig = {}\n",
            &["tenants[0].accounts[0].plugin", "pigeon"],
        ),
        (
            "a template that does not compile",
            "[[tenants]]\nid = \"a\"\n[[tenants.templates]]\nid = \"t\"\ntext = \"{{ oops\"\n",
            &["tenants[0].templates", "t"],
        ),
        ("a proxy that is not http", "[transport]\nproxy = \"socks5://user:pw-DO-NOT-PRINT@p:1080\"\n", &["transport.proxy", "only http://"]),
        ("a CA file that is missing", "[transport]\nca_files = [\"/nonexistent/ca.pem\"]\n", &["transport.ca_files[0]", "/nonexistent/ca.pem"]),
        ("an allowlist entry", "[transport]\nallow_private = [\"10.0.0.0/33\"]\n", &["transport.allow_private"]),
        ("a secret of the wrong type", "admin_token = 918273645546372819\n", &["admin_token", "invalid type"]),
    ];
    for (what, body, words) in cases {
        let sub = tempfile::tempdir().unwrap();
        let path = gateway_config(sub.path(), body);
        let (ok, out, err) = validate("herald-gateway", &path, &[]);
        assert!(!ok, "{what}: accepted\n{out}");
        for w in *words {
            assert!(err.contains(w), "{what}: the error does not name {w:?}:\n{err}");
        }
        let all = format!("{out}{err}");
        for secret in ["DO-NOT-PRINT", "918273645546372819"] {
            assert!(!all.contains(secret), "{what}: a secret value is printed:\n{all}");
        }
    }
    // Serving refuses the same file, naming the key (exit 2 as before).
    let sub = tempfile::tempdir().unwrap();
    let bad = gateway_config(sub.path(), "[dispatch]\nconcurency = 3\n");
    let o = run("herald-gateway", &["--config", bad.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    assert!(text(&o).1.contains("concurency"), "{:?}", text(&o));
}

#[test]
fn gateway_validate_connect_reaches_the_store_or_names_what_it_could_not_reach() {
    let dir = tempfile::tempdir().unwrap();
    let good = gateway_config(dir.path(), GOOD_TENANT);
    let (ok, out, err) = validate("herald-gateway", &good, &["--connect"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("connect: storage (") && out.contains("answers"), "{out}");
    assert!(out.contains("connect: queue (embedded) answers"), "{out}");

    // CQL nodes that are not there: the file is fine, --connect says which
    // store did not answer; without --connect it passes.
    let sub = tempfile::tempdir().unwrap();
    let distributed = gateway_config(
        sub.path(),
        "[storage]\nbackend = \"cql\"\ncql.contact_points = [\"127.0.0.1:1\"]\n[queue]\nbackend = \"kafka\"\nkafka.brokers = \"127.0.0.1:1\"\n",
    );
    let (ok, out, err) = validate("herald-gateway", &distributed, &[]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = validate("herald-gateway", &distributed, &["--connect"]);
    assert!(!ok, "{out}{err}");
    assert!(err.contains("connect:") && err.contains("storage.cql") && err.contains("127.0.0.1:1"), "{err}");
}

/// The secured backends' settings (`[queue.kafka]` SASL/TLS, `[storage.cql]`
/// credentials): checked by `validate` without printing a password.
#[test]
fn validate_checks_secured_backend_settings_without_printing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["kafka.internal".to_string()]).unwrap();
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let pw_file = dir.path().join("cql-password");
    std::fs::write(&pw_file, "cql-DO-NOT-PRINT-4\n").unwrap();
    let secured = format!(
        r#"
[storage]
backend = "cql"
[storage.cql]
contact_points = ["127.0.0.1:1"]
username = "herald"
password_file = "{pw}"
tls = {{ ca_file = "{ca}" }}
[queue]
backend = "kafka"
[queue.kafka]
brokers = "127.0.0.1:1"
security_protocol = "sasl_ssl"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "herald"
sasl_password = "kafka-DO-NOT-PRINT-3"
ssl_ca_location = "{ca}"
"#,
        pw = pw_file.display(),
        ca = ca.display()
    );
    let good = gateway_config(dir.path(), &secured);
    let (ok, out, err) = validate("herald-gateway", &good, &[]);
    assert!(ok, "{out}{err}");
    assert!(!format!("{out}{err}").contains("DO-NOT-PRINT"), "{out}{err}");

    let cases: &[(&str, &str, &str, &str)] = &[
        ("SASL without a user", "sasl_username = \"herald\"\n", "", "queue.kafka.sasl_username"),
        ("an unknown Kafka key", "sasl_username = \"herald\"\n", "sasl_username = \"herald\"\nsasl_pasword = \"x\"\n", "sasl_pasword"),
        (
            "a password of the wrong type",
            "sasl_password = \"kafka-DO-NOT-PRINT-3\"\n",
            "sasl_password = 73918273645546372\n",
            "queue.kafka.sasl_password",
        ),
        (
            "a CQL password file that is missing",
            &format!("password_file = \"{}\"", pw_file.display()),
            "password_file = \"/nonexistent/pw\"",
            "storage.cql.password",
        ),
        ("an unknown CQL key", "username = \"herald\"\n", "user = \"herald\"\n", "user"),
    ];
    for (what, from, to, key) in cases {
        let sub = tempfile::tempdir().unwrap();
        assert!(secured.contains(from), "{what}: the fixture changed");
        let path = gateway_config(sub.path(), &secured.replacen(from, to, 1));
        let (ok, out, err) = validate("herald-gateway", &path, &[]);
        assert!(!ok, "{what}: accepted\n{out}");
        assert!(err.contains(key), "{what}: the error does not name {key}:\n{err}");
        let all = format!("{out}{err}");
        for secret in ["DO-NOT-PRINT", "73918273645546372"] {
            assert!(!all.contains(secret), "{what}: a secret value is printed:\n{all}");
        }
    }
}

#[test]
fn admin_validate_checks_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{body}", dir.path().join("data").display())).unwrap();
        p
    };
    let good = write("good.toml", "session_idle_minutes = 60\nallow_private = [\"10.0.0.0/8\"]\n");
    let (ok, out, err) = validate("herald-admin", &good, &[]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = validate("herald-admin", &good, &["--connect"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("connect: storage (") && out.contains("connect: queue (embedded) answers"), "{out}");
    let o = run("herald-admin", &["validate"], &[("HERALD_ADMIN_CONFIG", good.to_str().unwrap())]);
    assert!(o.status.success(), "{:?}", text(&o));

    for (what, body, key) in [
        ("unknown key", "session_idle_minutes = 60\nsesion_idle = 3\n", "sesion_idle"),
        ("wrong type", "session_idle_minutes = \"an hour\"\n", "session_idle_minutes"),
        ("a rule", "session_idle_minutes = 0\n", "session_idle_minutes"),
        ("an allowlist entry", "allow_private = [\"not a host\"]\n", "allow_private"),
        ("a short token", "operator_token = \"op-DO-NOT-PRINT\"\n", "operator_token"),
        ("a token of the wrong type", "operator_token = 918273645546372819\n", "operator_token"),
    ] {
        let p = write("bad.toml", body);
        let (ok, out, err) = validate("herald-admin", &p, &[]);
        assert!(!ok, "{what}: accepted\n{out}");
        assert!(err.contains(key), "{what}: the error does not name {key}:\n{err}");
        let all = format!("{out}{err}");
        assert!(!all.contains("DO-NOT-PRINT") && !all.contains("918273645546372819"), "{what}: a secret is printed:\n{all}");
    }
}
