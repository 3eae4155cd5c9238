//! Access tokens from `errcode`-style token endpoints (WeCom `gettoken`,
//! DingTalk `gettoken`): a JSON answer
//! `{"errcode": 0, "errmsg": "ok", "access_token": "...", "expires_in": 7200}`.

use crate::types::{AccessToken, HttpResponse, PluginError};
use serde::Deserialize;

/// Lifetime assumed when the answer has no `expires_in`, in seconds.
const DEFAULT_EXPIRES_IN_S: u64 = 7200;

#[derive(Deserialize)]
struct TokenAnswer {
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Read an access token from an `errcode`-style token answer.
///
/// * a non-2xx status: `Internal("gettoken answered HTTP <status>")`;
/// * a body that is not such a JSON object: `Internal("gettoken answer is not JSON: ...")`;
/// * `errcode` 0 or absent with a non-empty `access_token`: the token, valid
///   for `expires_in` seconds (7200 when absent);
/// * otherwise `refused(errcode, errmsg)` names the error if it recognizes
///   the code (typically `BadConfig` for rejected credentials); failing that,
///   `Internal("gettoken failed (errcode <code or none>: <errmsg>)")`.
pub fn parse_errcode_answer(response: &HttpResponse, refused: impl FnOnce(i64, &str) -> Option<PluginError>) -> Result<AccessToken, PluginError> {
    if !(200..300).contains(&response.status) {
        return Err(PluginError::Internal(format!("gettoken answered HTTP {}", response.status)));
    }
    let t: TokenAnswer = serde_json::from_slice(&response.body).map_err(|e| PluginError::Internal(format!("gettoken answer is not JSON: {e}")))?;
    match (t.errcode, t.access_token) {
        (Some(0) | None, Some(token)) if !token.is_empty() => {
            Ok(AccessToken { value: token, expires_in_ms: t.expires_in.unwrap_or(DEFAULT_EXPIRES_IN_S).saturating_mul(1000) })
        }
        (code, _) => Err(code.and_then(|c| refused(c, &t.errmsg)).unwrap_or_else(|| {
            PluginError::Internal(format!("gettoken failed (errcode {}: {})", code.map_or("none".to_string(), |c| c.to_string()), t.errmsg))
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    fn refused(code: i64, msg: &str) -> Option<PluginError> {
        (code == 40001).then(|| PluginError::BadConfig(format!("secret: refused ({msg})")))
    }

    #[test]
    fn token() {
        let t = parse_errcode_answer(&resp(200, r#"{"errcode":0,"errmsg":"ok","access_token":"T","expires_in":60}"#), refused).unwrap();
        assert_eq!((t.value.as_str(), t.expires_in_ms), ("T", 60_000));
        let t = parse_errcode_answer(&resp(200, r#"{"access_token":"U"}"#), refused).unwrap();
        assert_eq!((t.value.as_str(), t.expires_in_ms), ("U", 7_200_000));
        let t = parse_errcode_answer(&resp(200, r#"{"access_token":"U","expires_in":18446744073709551615}"#), refused).unwrap();
        assert_eq!(t.expires_in_ms, u64::MAX);
    }

    #[test]
    fn errors() {
        assert_eq!(parse_errcode_answer(&resp(502, "{}"), refused), Err(PluginError::Internal("gettoken answered HTTP 502".into())));
        assert!(matches!(
            parse_errcode_answer(&resp(200, "<html>"), refused),
            Err(PluginError::Internal(m)) if m.starts_with("gettoken answer is not JSON: ")
        ));
        assert_eq!(
            parse_errcode_answer(&resp(200, r#"{"errcode":40001,"errmsg":"bad"}"#), refused),
            Err(PluginError::BadConfig("secret: refused (bad)".into()))
        );
        assert_eq!(
            parse_errcode_answer(&resp(200, r#"{"errcode":42,"errmsg":"x","access_token":"T"}"#), refused),
            Err(PluginError::Internal("gettoken failed (errcode 42: x)".into()))
        );
        assert_eq!(
            parse_errcode_answer(&resp(200, r#"{"errcode":0,"access_token":""}"#), refused),
            Err(PluginError::Internal("gettoken failed (errcode 0: )".into()))
        );
        assert_eq!(
            parse_errcode_answer(&resp(200, r#"{"errmsg":"no"}"#), |_, _| unreachable!()),
            Err(PluginError::Internal("gettoken failed (errcode none: no)".into()))
        );
    }
}
