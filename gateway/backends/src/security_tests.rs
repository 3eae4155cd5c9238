//! The security settings of `[storage.cql]` and `[queue.kafka]` as the
//! config loaders see them: unknown keys refused, secrets never in Debug or
//! serialized output, errors naming the setting.

use serde_json::json;

use crate::{CqlConfig, QueueConfig, StorageConfig, check};

fn cql(v: serde_json::Value) -> Result<CqlConfig, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

#[test]
fn unknown_keys_stay_refused() {
    let e = cql(json!({"tls": {"ca_file": "/x.pem", "verify": false}})).unwrap_err();
    assert!(e.contains("unknown field `verify`"), "{e}");
    let e = cql(json!({"tls": {"cert_file": "/x.pem"}})).unwrap_err();
    assert!(e.contains("missing field `ca_file`"), "{e}");
    let e = cql(json!({"user": "x"})).unwrap_err();
    assert!(e.contains("unknown field `user`"), "{e}");
    let e = serde_json::from_value::<QueueConfig>(json!({"kafka": {"sasl_passwd": "x"}})).unwrap_err().to_string();
    assert!(e.contains("unknown field `sasl_passwd`"), "{e}");
    let e = serde_json::from_value::<QueueConfig>(json!({"kafka": {"security_protocol": "tls"}})).unwrap_err().to_string();
    assert!(e.contains("unknown variant `tls`"), "{e}");
    let c = cql(json!({"tls": {"ca_file": "/x.pem"}})).unwrap();
    assert!(c.tls.unwrap().verify_hostname, "verify_hostname defaults to true");
}

#[test]
fn secrets_are_not_in_debug_or_serialized_output() {
    let storage =
        StorageConfig { backend: "cql".into(), cql: cql(json!({"username": "u", "password": "cql-secret-4242"})).unwrap(), ..Default::default() };
    let queue: QueueConfig = serde_json::from_value(json!({"backend": "kafka", "kafka": {
        "security_protocol": "sasl_ssl", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u", "sasl_password": "kafka-secret-4242",
        "options": {"ssl.keystore.password": "store-secret-4242", "client.rack": "zone-a"}
    }}))
    .unwrap();
    let text =
        format!("{storage:?}{storage:#?}{queue:?}{queue:#?}{}{}", serde_json::to_string(&storage).unwrap(), serde_json::to_string(&queue).unwrap());
    for secret in ["cql-secret-4242", "kafka-secret-4242", "store-secret-4242"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    assert!(text.contains("zone-a"), "other options are shown");
    check(&storage, &queue).expect("a complete config passes");
}

#[test]
fn check_names_the_setting() {
    let queue = QueueConfig { backend: "kafka".into(), ..Default::default() };
    let storage = |v| StorageConfig { backend: "cql".into(), cql: cql(v).unwrap(), ..Default::default() };
    let e = check(&storage(json!({"username": "u"})), &queue).unwrap_err();
    assert!(e.starts_with("storage.cql.password: required with username"), "{e}");
    let e = check(&storage(json!({"password": "p"})), &queue).unwrap_err();
    assert!(e.starts_with("storage.cql.username: required with password"), "{e}");
    let e = check(&storage(json!({"username": "u", "password": "p", "password_file": "/p"})), &queue).unwrap_err();
    assert_eq!(e, "storage.cql.password and storage.cql.password_file are both set; set one of them");
    let e = check(&storage(json!({"tls": {"ca_file": "/nonexistent/ca.pem"}})), &queue).unwrap_err();
    assert!(e.starts_with("storage.cql.tls.ca_file: cannot read /nonexistent/ca.pem"), "{e}");
    let kafka: QueueConfig =
        serde_json::from_value(json!({"backend": "kafka", "kafka": {"security_protocol": "sasl_ssl", "sasl_username": "u"}})).unwrap();
    let e = check(&StorageConfig::default(), &kafka).unwrap_err();
    assert!(e.starts_with("queue.kafka.sasl_mechanism: required"), "{e}");
    // Not checked when the backend is not in use.
    check(&StorageConfig { cql: cql(json!({"username": "u"})).unwrap(), ..Default::default() }, &QueueConfig::default()).unwrap();
}
