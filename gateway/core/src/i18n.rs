//! Messages people read, in English and Chinese (simplified, zh-CN): each has
//! a stable key and named arguments (`{field}`), its texts in the catalogs
//! beside this file (`i18n/en.json`, `i18n/zh-CN.json`, one key each). An
//! error carries its [`Msg`] until the edge, which renders it in the
//! request's language ([`Lang::negotiate`] reads `Accept-Language`).

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// A language Herald writes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Lang {
    /// English (`en`).
    #[default]
    #[serde(rename = "en")]
    En,
    /// Simplified Chinese (`zh-CN`).
    #[serde(rename = "zh-CN")]
    ZhCn,
}

impl Lang {
    /// Every language, English first.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::ZhCn];

    /// The BCP 47 tag: `en`, `zh-CN`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// One language tag (`zh`, `zh-CN`, `zh-Hans`, `en-US`, case-insensitive);
    /// `None` for any other language.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Lang::ZhCn),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language to answer an `Accept-Language` header in: the supported
    /// one with the highest q-value (the first listed among equals; `q=0`
    /// excluded); English for `*`, for languages Herald does not write, for a
    /// malformed header and for none.
    pub fn negotiate(accept_language: Option<&str>) -> Lang {
        let Some(header) = accept_language else { return Lang::En };
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let mut q = 1.0f32;
            for p in parts {
                if let Some(v) = p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")) {
                    q = v.trim().parse().ok().filter(|q: &f32| (0.0..=1.0).contains(q)).unwrap_or(0.0);
                }
            }
            let lang = if tag == "*" { Some(Lang::En) } else { Lang::from_tag(tag) };
            if let Some(lang) = lang
                && q > 0.0
                && best.is_none_or(|(b, _)| q > b)
            {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, l)| l)
    }

    fn catalog(self) -> &'static HashMap<String, String> {
        match self {
            Lang::En => &EN,
            Lang::ZhCn => &ZH_CN,
        }
    }
}

/// A tenant's settings (the document `tenant/settings`): the language Herald
/// writes to it in (alert e-mails, the names it gives: the first role, copies).
/// A tenant without the document reads Chinese.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantSettings {
    /// `zh-CN` or `en`.
    #[serde(default = "chinese")]
    pub language: Lang,
}

fn chinese() -> Lang {
    Lang::ZhCn
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self { language: chinese() }
    }
}

/// The kind and id of [`TenantSettings`]' document.
pub const TENANT: &str = "tenant";
pub const SETTINGS: &str = "settings";

/// The catalogs' sources, for the tests.
pub const SOURCES: [(Lang, &str); 2] = [(Lang::En, include_str!("i18n/en.json")), (Lang::ZhCn, include_str!("i18n/zh-CN.json"))];

fn load(lang: Lang) -> HashMap<String, String> {
    let source = SOURCES.iter().find(|(l, _)| *l == lang).map(|(_, s)| *s).unwrap_or("{}");
    serde_json::from_str(source).expect("a message catalog is a JSON object of strings")
}

static EN: LazyLock<HashMap<String, String>> = LazyLock::new(|| load(Lang::En));
static ZH_CN: LazyLock<HashMap<String, String>> = LazyLock::new(|| load(Lang::ZhCn));

/// A message: its catalog key and named arguments. Build it with [`msg!`](crate::msg).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Msg {
    pub key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<(String, Arg)>,
}

/// An argument: text as written (a name, a number, a library's own words),
/// or a message rendered in the same language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Arg {
    Text(String),
    Msg(Msg),
}

impl Msg {
    pub fn new(key: &str) -> Self {
        Self { key: key.to_string(), args: Vec::new() }
    }
    pub fn arg(mut self, name: &str, value: impl ToString) -> Self {
        self.args.push((name.to_string(), Arg::Text(value.to_string())));
        self
    }
    /// An argument that is itself a message.
    pub fn nested(mut self, name: &str, value: Msg) -> Self {
        self.args.push((name.to_string(), Arg::Msg(value)));
        self
    }
    /// Text that has no key (a library's message): shown as written.
    pub fn verbatim(text: impl ToString) -> Self {
        Self::new("verbatim").arg("text", text)
    }
    /// A thing's name (`noun.<what>`: "org unit" → 部门), for messages about it.
    pub fn noun(what: &str) -> Self {
        Self::new(&format!("noun.{what}"))
    }
    /// The text in `lang` (a key missing there: the English text; missing
    /// everywhere: the key itself, or the noun as written), `{name}` replaced by the arguments.
    pub fn render(&self, lang: Lang) -> String {
        let template = match lang.catalog().get(&self.key).or_else(|| EN.get(&self.key)) {
            Some(t) => t.as_str(),
            None => self.key.strip_prefix("noun.").unwrap_or(&self.key),
        };
        let args: Vec<(&str, String)> = self
            .args
            .iter()
            .map(|(n, v)| {
                let v = match v {
                    Arg::Text(t) => t.clone(),
                    Arg::Msg(m) => m.render(lang),
                };
                (n.as_str(), v)
            })
            .collect();
        fill(template, &args)
    }
}

/// English, for logs and the English-only gateway.
impl std::fmt::Display for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(Lang::En))
    }
}

fn fill(template: &str, args: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if args.iter().any(|(n, _)| *n == &after[..close]) => {
                let name = &after[..close];
                out.push_str(args.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).unwrap_or_default());
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `msg!("dir.unit_not_empty", children = 2, members = 3)`: a [`Msg`] with
/// named arguments (any `ToString`).
#[macro_export]
macro_rules! msg {
    ($key:literal $(, $name:ident = $value:expr)* $(,)?) => {
        $crate::i18n::Msg::new($key)$(.arg(stringify!($name), &$value))*
    };
}

/// What an error says: English text, and the message it renders from when
/// it has one (a plain `String` has none and is shown as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub en: String,
    pub msg: Option<Msg>,
}

impl From<Msg> for Text {
    fn from(m: Msg) -> Self {
        Self { en: m.render(Lang::En), msg: Some(m) }
    }
}
impl From<String> for Text {
    fn from(en: String) -> Self {
        Self { en, msg: None }
    }
}
impl From<&String> for Text {
    fn from(en: &String) -> Self {
        Self { en: en.clone(), msg: None }
    }
}
impl From<&str> for Text {
    fn from(en: &str) -> Self {
        Self { en: en.to_string(), msg: None }
    }
}
impl From<std::borrow::Cow<'_, str>> for Text {
    fn from(en: std::borrow::Cow<'_, str>) -> Self {
        Self { en: en.into_owned(), msg: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(source: &str) -> BTreeSet<String> {
        serde_json::from_str::<HashMap<String, String>>(source).unwrap().into_keys().collect()
    }
    fn placeholders(s: &str) -> BTreeSet<String> {
        regex::Regex::new(r"\{(\w+)\}").unwrap().captures_iter(s).map(|c| c[1].to_string()).collect()
    }

    /// Every key in both languages, with the same arguments.
    #[test]
    fn the_catalogs_have_the_same_keys_and_arguments() {
        let (en, zh) = (keys(SOURCES[0].1), keys(SOURCES[1].1));
        let only_en: Vec<_> = en.difference(&zh).collect();
        let only_zh: Vec<_> = zh.difference(&en).collect();
        assert!(only_en.is_empty() && only_zh.is_empty(), "keys only in en: {only_en:?}; only in zh-CN: {only_zh:?}");
        for k in &en {
            assert_eq!(placeholders(&EN[k]), placeholders(&ZH_CN[k]), "the arguments of {k}");
        }
    }

    /// Every `msg!("key"…)` written in herald-core and the admin service names a key of the catalogs.
    #[test]
    fn every_key_used_is_in_the_catalogs() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let re = regex::Regex::new(r#"msg!\(\s*"([^"]+)""#).unwrap();
        let mut missing = Vec::new();
        let mut seen = 0;
        for dir in [root.join("src"), root.join("../service/src"), root.join("../../admin/server/src")] {
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&d) else { continue };
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("i18n.rs") {
                        let text = std::fs::read_to_string(&p).unwrap();
                        for c in re.captures_iter(&text) {
                            seen += 1;
                            if !EN.contains_key(&c[1]) {
                                missing.push(format!("{}: {}", p.display(), &c[1]));
                            }
                        }
                    }
                }
            }
        }
        assert!(seen > 10, "found the msg! calls");
        assert!(missing.is_empty(), "keys not in the catalogs: {missing:?}");
    }

    #[test]
    fn negotiation() {
        let n = |h| Lang::negotiate(Some(h));
        assert_eq!(n("zh-CN"), Lang::ZhCn);
        assert_eq!(n("zh"), Lang::ZhCn);
        assert_eq!(n("zh-Hans-CN"), Lang::ZhCn);
        assert_eq!(n("en"), Lang::En);
        assert_eq!(n("en-US"), Lang::En);
        assert_eq!(n("en-US,en;q=0.9,zh-CN;q=0.8"), Lang::En);
        assert_eq!(n("fr-FR;q=1, zh-CN;q=0.8, en;q=0.7"), Lang::ZhCn);
        assert_eq!(n("en;q=0.2, zh;q=0.9"), Lang::ZhCn);
        assert_eq!(n("zh;q=0, en;q=0.1"), Lang::En);
        assert_eq!(n("fr, de"), Lang::En, "unknown → English");
        assert_eq!(n("*"), Lang::En);
        assert_eq!(n(";;;q=x,,"), Lang::En);
        assert_eq!(Lang::negotiate(None), Lang::En);
    }

    #[test]
    fn rendering() {
        let m = crate::msg!("field.empty", field = "name");
        assert_eq!(m.render(Lang::En), "name must not be empty");
        assert_eq!(m.render(Lang::ZhCn), "name 不能为空");
        assert_eq!(Msg::new("no.such.key").render(Lang::ZhCn), "no.such.key");
        assert_eq!(fill("{a} and {b} {c", &[("a", "{b}".into()), ("b", "2".into())]), "{b} and 2 {c");
        let nested = crate::msg!("not_found").nested("what", Msg::noun("org unit"));
        assert_eq!(nested.render(Lang::ZhCn), "部门不存在");
        assert_eq!(nested.render(Lang::En), "org unit not found");
        assert_eq!(crate::msg!("not_found").nested("what", Msg::noun("gizmo")).render(Lang::ZhCn), "gizmo不存在");
    }
}
