//! Configuration errors as both services report them.

/// One figment error as `key: message`. Where the key may hold a secret
/// (tokens, keys, passwords, SASL settings) a wrong value's type is named but
/// not the value itself.
pub fn config_error(e: figment::Error) -> String {
    use figment::error::{Actual, Kind};
    let field = e.path.join(".");
    let secret = e.path.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        ["token", "key", "password", "secret", "sasl", "credential", "auth"].iter().any(|s| p.contains(s))
    });
    let shown = match &e.kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) if secret => {
            let found = match actual {
                Actual::Str(_) | Actual::Char(_) => "a string",
                Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
                Actual::Float(_) => "a number",
                Actual::Bool(_) => "a boolean",
                Actual::Seq => "a list",
                Actual::Map => "a table",
                _ => "another kind of value",
            };
            let verb = if matches!(e.kind, Kind::InvalidType(..)) { "invalid type" } else { "invalid value" };
            format!("{verb}: found {found} (value not shown), expected {expected}")
        }
        _ => e.to_string(),
    };
    if field.is_empty() { shown } else { format!("{field}: {shown}") }
}
