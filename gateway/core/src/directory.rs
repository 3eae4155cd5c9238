//! The tenant's directory (通讯录) as the admin service stores it (documents of
//! kinds `unit` and `user`), and how push targets expand to recipients.
//! Shared by the admin service (pushes) and the gateway (tiered triggers).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::address::AddressRule;
use crate::model::{RecipientSpec, Vars};

pub const UNIT: &str = "unit";
pub const USER: &str = "user";

/// An org unit; the root has no parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub parent: Option<String>,
    pub created_at: Millis,
}

/// A person in the directory. `password_hash` is set only for users who log in
/// to the console and is never part of an API answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub wecom_id: Option<String>,
    #[serde(default)]
    pub dingtalk_id: Option<String>,
    #[serde(default)]
    pub welink_id: Option<String>,
    /// IANA time zone for quiet hours; the tenant's when absent.
    #[serde(default)]
    pub time_zone: Option<String>,
    pub unit: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub created_at: Millis,
    /// Set when an administrator reset the password: the console asks the
    /// user to choose their own at the next login; cleared when they do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub must_change_password: bool,
}

impl User {
    /// The user's address on a channel (plugin name), if the directory has one:
    /// e-mail for `email`, the mobile number for SMS and voice plugins, the IM
    /// id for WeCom, DingTalk and WeLink plugins.
    pub fn address(&self, channel: &str) -> Option<&str> {
        let field = match channel {
            "email" => &self.email,
            c if c.contains("sms") || c.contains("voice") => &self.mobile,
            c if c.starts_with("wecom") => &self.wecom_id,
            c if c.starts_with("dingtalk") => &self.dingtalk_id,
            c if c.starts_with("welink") => &self.welink_id,
            _ => return None,
        };
        field.as_deref().filter(|s| !s.trim().is_empty())
    }
}

/// Whom a push or a rule goes to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Directory user ids.
    #[serde(default)]
    pub users: Vec<String>,
    /// Org units: every user in the unit's subtree.
    #[serde(default)]
    pub units: Vec<String>,
    /// Raw addresses (typed, or uploaded as a spreadsheet).
    #[serde(default, deserialize_with = "crate::wire::vec_of_objects")]
    pub list: Vec<ListEntry>,
}

/// A raw address, with an optional display name and its own variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEntry {
    pub to: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Only for this channel (a raw address in a multi-channel rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Vars,
}

impl Targets {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.units.is_empty() && self.list.is_empty()
    }
}

/// Ids of `root` and every unit below it.
pub fn subtree(units: &[Unit], root: &str) -> HashSet<String> {
    let mut out: HashSet<String> = HashSet::from([root.to_string()]);
    loop {
        let before = out.len();
        for u in units {
            if u.parent.as_ref().is_some_and(|p| out.contains(p)) {
                out.insert(u.id.clone());
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

/// Recipients on `channel`, deduplicated by address, with `name` as a variable.
#[derive(Debug, Default, PartialEq)]
pub struct Expanded {
    pub recipients: Vec<RecipientSpec>,
    /// Users who have no address on the channel.
    pub skipped: Vec<String>,
    /// The directory user behind each recipient (None for list entries).
    pub user_ids: Vec<Option<String>>,
    /// Addresses left out because an earlier recipient has the same one (in
    /// the channel's canonical form: `+8613800138000` is `13800138000`).
    pub duplicates: Vec<String>,
}

/// Who `targets` reach on `channel`: the users of the units (and subtrees)
/// and the users named, then the raw list; each address once, compared in
/// `rule`'s canonical form when the channel has one.
pub fn expand(targets: &Targets, units: &[Unit], users: &[User], channel: &str, rule: Option<&AddressRule>) -> Expanded {
    let mut wanted_units = HashSet::new();
    for u in &targets.units {
        wanted_units.extend(subtree(units, u));
    }
    let wanted_users: HashSet<&str> = targets.users.iter().map(String::as_str).collect();
    let mut out = Expanded::default();
    let mut seen = HashSet::new();
    let key = |to: &str| rule.map_or_else(|| to.to_string(), |r| r.canonical(to));
    for user in users.iter().filter(|u| wanted_users.contains(u.id.as_str()) || wanted_units.contains(&u.unit)) {
        match user.address(channel) {
            Some(addr) if seen.insert(key(addr)) => {
                let mut variables = Vars::new();
                variables.insert("name".into(), user.name.clone().into());
                out.recipients.push(RecipientSpec { to: addr.to_string(), variables });
                out.user_ids.push(Some(user.id.clone()));
            }
            Some(addr) => out.duplicates.push(addr.to_string()),
            None => out.skipped.push(user.id.clone()),
        }
    }
    for entry in targets.list.iter().filter(|e| e.channel.as_deref().is_none_or(|c| c == channel)) {
        let to = entry.to.trim();
        if to.is_empty() {
            continue;
        }
        if !seen.insert(key(to)) {
            out.duplicates.push(to.to_string());
            continue;
        }
        let mut variables = entry.variables.clone();
        if let Some(n) = &entry.name {
            variables.entry("name").or_insert_with(|| n.clone().into());
        }
        out.recipients.push(RecipientSpec { to: to.to_string(), variables });
        out.user_ids.push(None);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: &str, parent: Option<&str>) -> Unit {
        Unit { id: id.into(), name: id.into(), parent: parent.map(Into::into), created_at: 0 }
    }

    fn user(id: &str, unit: &str, email: Option<&str>, mobile: Option<&str>) -> User {
        User {
            id: id.into(),
            name: format!("User {id}"),
            email: email.map(Into::into),
            mobile: mobile.map(Into::into),
            unit: unit.into(),
            ..Default::default()
        }
    }

    #[test]
    fn units_expand_to_their_subtree_and_addresses_follow_the_channel() {
        let units = vec![unit("root", None), unit("eng", Some("root")), unit("ops", Some("eng")), unit("sales", Some("root"))];
        let users = vec![
            user("a", "eng", Some("a@x.cn"), Some("+8613800000001")),
            user("b", "ops", Some("b@x.cn"), None),
            user("c", "sales", Some("c@x.cn"), Some("+8613800000003")),
        ];
        assert_eq!(subtree(&units, "eng"), HashSet::from(["eng".to_string(), "ops".to_string()]));
        let t = Targets {
            users: vec!["c".into()],
            units: vec!["eng".into()],
            list: vec![
                ListEntry { to: "a@x.cn".into(), name: None, channel: None, variables: Default::default() },
                ListEntry { to: "d@x.cn".into(), name: Some("D".into()), channel: None, variables: Default::default() },
                ListEntry { to: "+8613800000009".into(), name: None, channel: Some("aliyun-sms".into()), variables: Default::default() },
            ],
        };
        let e = expand(&t, &units, &users, "email", None);
        let to: Vec<_> = e.recipients.iter().map(|r| r.to.as_str()).collect();
        assert_eq!(to, ["a@x.cn", "b@x.cn", "c@x.cn", "d@x.cn"], "deduplicated by address");
        assert_eq!(e.recipients[3].variables["name"], "D");
        let sms = expand(&t, &units, &users, "aliyun-sms", None);
        assert_eq!(sms.skipped, ["b"], "no mobile");
        assert_eq!(sms.recipients.len(), 5, "the sms-only entry joins on sms");
        assert_eq!(e.duplicates, ["a@x.cn"], "a list entry repeating a user's address is left out and reported");
    }

    #[test]
    fn repeats_in_another_spelling_are_one_recipient_on_a_channel_with_a_canonical_form() {
        let users = vec![user("a", "root", Some("Ann@X.cn"), Some("+8613800138000"))];
        let entry = |to: &str| ListEntry { to: to.into(), name: None, channel: None, variables: Default::default() };
        let t = Targets {
            users: vec!["a".into()],
            units: vec![],
            list: vec![entry("13800138000"), entry("+86 138 0013 8000"), entry("13800138001"), entry("ann@x.cn")],
        };
        let phone = AddressRule::for_channel("sms", None);
        let sms = expand(&t, &[], &users, "aliyun-sms", Some(&phone));
        let to: Vec<_> = sms.recipients.iter().map(|r| r.to.as_str()).collect();
        assert_eq!(to, ["+8613800138000", "13800138001", "ann@x.cn"], "one delivery per number, in the first spelling");
        assert_eq!(sms.duplicates, ["13800138000", "+86 138 0013 8000"]);
        let mail = expand(&t, &[], &users, "email", Some(&AddressRule::Email));
        assert_eq!(mail.recipients.iter().filter(|r| r.to.eq_ignore_ascii_case("ann@x.cn")).count(), 1, "e-mail addresses compare without case");
        assert_eq!(expand(&t, &[], &users, "aliyun-sms", None).duplicates, Vec::<String>::new(), "without a rule: exact addresses");
    }
}
