//! Recipient addresses, checked per channel at ingest so that a bad address is
//! a 4xx naming `recipients[i].to`, never a failed batch later.

use std::str::FromStr;

use crate::i18n::Msg;
use crate::msg;

/// How a channel's recipients look.
#[derive(Debug, Clone)]
pub enum AddressRule {
    /// An e-mail address (RFC 5322 addr-spec, optionally with a display name).
    Email,
    /// A mobile number: E.164 (`+8613800138000`) or a mainland China number
    /// (`13800138000`).
    Phone,
    /// What the plugin declares in its account schema (`x-herald-recipient`).
    Pattern { regex: regex::Regex, describe: String },
    /// Any visible text (webhook ids, IM user ids the plugin does not describe).
    Any,
}

impl AddressRule {
    /// The rule for a plugin's channel kind, unless the plugin declared its own.
    pub fn for_channel(kind: &str, declared: Option<&AddressRule>) -> AddressRule {
        if let Some(rule) = declared {
            return rule.clone();
        }
        match kind {
            "email" => AddressRule::Email,
            "sms" | "voice" => AddressRule::Phone,
            _ => AddressRule::Any,
        }
    }

    /// Read `"x-herald-recipient": {"pattern": "...", "description": "..."}`
    /// from a plugin's account schema (JSON Schema text).
    pub fn declared_in(account_schema: &str) -> Result<Option<AddressRule>, String> {
        let Ok(schema) = serde_json::from_str::<serde_json::Value>(account_schema) else {
            return Ok(None);
        };
        let Some(decl) = schema.get("x-herald-recipient") else {
            return Ok(None);
        };
        let pattern = decl.get("pattern").and_then(|p| p.as_str()).ok_or("x-herald-recipient.pattern must be a string")?;
        let anchored = format!("^(?:{pattern})$");
        let regex = regex::Regex::new(&anchored).map_err(|e| format!("x-herald-recipient.pattern: {e}"))?;
        let describe = decl.get("description").and_then(|d| d.as_str()).unwrap_or(pattern).to_string();
        Ok(Some(AddressRule::Pattern { regex, describe }))
    }

    /// Why `to` is not an address of this kind, if it is not.
    pub fn check(&self, to: &str) -> Result<(), String> {
        self.check_msg(to).map_err(|m| m.to_string())
    }

    /// [`AddressRule::check`], its answer in any language.
    pub fn check_msg(&self, to: &str) -> Result<(), Msg> {
        if to.chars().any(char::is_control) {
            return Err(msg!("address.control"));
        }
        if to.trim() != to {
            return Err(msg!("address.spaces"));
        }
        match self {
            AddressRule::Email => match email_address::EmailAddress::from_str(to) {
                Ok(_) => Ok(()),
                Err(e) => Err(msg!("address.email", detail = e)),
            },
            AddressRule::Phone => phone(to),
            AddressRule::Pattern { regex, describe } => {
                if regex.is_match(to) {
                    Ok(())
                } else {
                    Err(msg!("address.pattern", describe = describe))
                }
            }
            AddressRule::Any => Ok(()),
        }
    }
}

impl AddressRule {
    /// The form two spellings of one recipient share, to find duplicates: a
    /// phone number in E.164 (`13800138000` and `+8613800138000` are one),
    /// an e-mail address in lower case, anything else as written. `to` is
    /// assumed to pass [`AddressRule::check`].
    pub fn canonical(&self, to: &str) -> String {
        match self {
            AddressRule::Phone => {
                let region = if to.starts_with('+') { None } else { Some(phonenumber::country::Id::CN) };
                match phonenumber::parse(region, to) {
                    Ok(n) => n.format().mode(phonenumber::Mode::E164).to_string(),
                    Err(_) => to.to_string(),
                }
            }
            AddressRule::Email => to.to_lowercase(),
            AddressRule::Pattern { .. } | AddressRule::Any => to.to_string(),
        }
    }

    /// A recipient of this kind, for templates and examples.
    pub fn example(&self) -> &'static str {
        match self {
            AddressRule::Phone => "13800138000",
            AddressRule::Email => "zhang.san@example.com",
            AddressRule::Pattern { .. } | AddressRule::Any => "zhangsan",
        }
    }
}

fn phone(to: &str) -> Result<(), Msg> {
    let expected = || msg!("address.phone_expected");
    if !to.chars().all(|c| c.is_ascii_digit() || c == '+') || to.len() < 5 {
        return Err(msg!("address.phone").nested("expected", expected()));
    }
    let region = if to.starts_with('+') { None } else { Some(phonenumber::country::Id::CN) };
    match phonenumber::parse(region, to) {
        Ok(n) if phonenumber::is_valid(&n) => Ok(()),
        _ => Err(msg!("address.phone_invalid").nested("expected", expected())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses() {
        let r = AddressRule::Email;
        assert!(r.check("ann@example.com").is_ok());
        assert!(r.check("not an address, evil@x.example").is_err());
        assert!(r.check("\r\nBcc: victim@evil.example").is_err());
        assert!(r.check("ann@").is_err());
    }

    #[test]
    fn one_recipient_spelled_two_ways_is_one() {
        let p = AddressRule::Phone;
        assert_eq!(p.canonical("13800138000"), p.canonical("+8613800138000"));
        assert_ne!(p.canonical("13800138000"), p.canonical("13800138001"));
        assert_eq!(AddressRule::Email.canonical("Ann@Example.com"), AddressRule::Email.canonical("ann@example.com"));
        assert_eq!(AddressRule::Any.canonical("Room"), "Room");
        for rule in [AddressRule::Phone, AddressRule::Email, AddressRule::Any] {
            assert!(rule.check(rule.example()).is_ok(), "{rule:?}");
        }
    }

    #[test]
    fn phone_numbers() {
        let r = AddressRule::Phone;
        for ok in ["13800138000", "+8613800138000", "+14155552671"] {
            assert!(r.check(ok).is_ok(), "{ok}");
        }
        for bad in ["abc123", "1380013800", "ann@example.com", "+86 138 0013 8000", "12345"] {
            assert!(r.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn declared_patterns() {
        let schema = r#"{"type":"object","x-herald-recipient":{"pattern":"[a-z0-9_]{1,64}","description":"a user id"}}"#;
        let r = AddressRule::declared_in(schema).unwrap().unwrap();
        assert!(r.check("zhang_san").is_ok());
        assert!(r.check("zhang san").unwrap_err().contains("a user id"));
        assert!(AddressRule::declared_in(r#"{"type":"object"}"#).unwrap().is_none());
        assert!(AddressRule::declared_in(r#"{"x-herald-recipient":{"pattern":"("}}"#).is_err());
    }
}
