//! JSON: all of `serde_json` (`json!`, `Value`, `from_slice`, `to_vec`, ...),
//! re-exported, plus [`parse_account`] for account configurations.

use crate::types::PluginError;
use serde::de::DeserializeOwned;

pub use serde_json::*;

/// Parse an account configuration (a JSON object) into `T`.
///
/// Any error becomes `PluginError::BadConfig` whose message starts with the
/// path of the offending field, e.g. `smtp.port: invalid type: string "x",
/// expected u16`, or `url: missing field` style messages from serde. Errors at
/// the top level (not JSON, not an object) start with `account:`.
///
/// Use `#[serde(deny_unknown_fields)]` on `T` to reject misspelt fields.
pub fn parse_account<T: DeserializeOwned>(account: &str) -> core::result::Result<T, PluginError> {
    let de = &mut serde_json::Deserializer::from_str(account);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        // serde_json appends " at line L column C"; keep it, it helps with long configs.
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            PluginError::BadConfig(format!("account: {inner}"))
        } else {
            PluginError::BadConfig(format!("{path}: {inner}"))
        }
    })?;
    // Reject trailing data after the object, like serde_json::from_str.
    de.end().map_err(|e| PluginError::BadConfig(format!("account: {e}")))?;
    Ok(value)
}

/// The access token the host put into the account as `"$token"` (plugins
/// implementing [`crate::Plugin::token_request`] only). A typed account struct
/// with `deny_unknown_fields` must declare the field too:
/// `#[serde(rename = "$token", default)] token: Option<String>`.
pub fn token(account: &str) -> Option<String> {
    serde_json::from_str::<Value>(account).ok()?.get("$token")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Smtp {
        host: String,
        port: u16,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Account {
        from: String,
        smtp: Smtp,
    }

    fn msg(r: core::result::Result<Account, PluginError>) -> String {
        match r {
            Err(PluginError::BadConfig(m)) => m,
            other => panic!("expected BadConfig, got {other:?}"),
        }
    }

    #[test]
    fn ok() {
        let a: Account = parse_account(r#"{"from":"a@b.c","smtp":{"host":"h","port":25}}"#).unwrap();
        assert_eq!(a.smtp.port, 25);
    }

    #[test]
    fn nested_field_path() {
        let m = msg(parse_account(r#"{"from":"a@b.c","smtp":{"host":"h","port":"x"}}"#));
        assert!(m.starts_with("smtp.port: invalid type"), "{m}");
        let m = msg(parse_account(r#"{"from":"a@b.c","smtp":{"host":"h","port":70000}}"#));
        assert!(m.starts_with("smtp.port: "), "{m}");
    }

    #[test]
    fn missing_and_unknown_fields() {
        let m = msg(parse_account(r#"{"from":"a@b.c","smtp":{"host":"h"}}"#));
        assert!(m.starts_with("smtp: missing field `port`"), "{m}");
        let m = msg(parse_account(r#"{"from":"a@b.c","smtp":{"host":"h","port":1},"x":1}"#));
        assert!(m.contains("unknown field `x`"), "{m}");
    }

    #[test]
    fn not_an_object() {
        let m = msg(parse_account("nope"));
        assert!(m.starts_with("account: "), "{m}");
        let m = msg(parse_account(r#"{"from":"a@b.c","smtp":{"host":"h","port":1}} x"#));
        assert!(m.starts_with("account: trailing"), "{m}");
    }

    #[test]
    fn token_is_read_from_the_account() {
        assert_eq!(token(r#"{"corp_id":"x","$token":"abc"}"#).as_deref(), Some("abc"));
        assert_eq!(token(r#"{"corp_id":"x"}"#), None);
        assert_eq!(token("not json"), None);
    }
}
