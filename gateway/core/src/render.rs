//! Template rendering with minijinja, sandboxed: no loader (templates cannot
//! include files), a fuel limit (no runaway loops), HTML auto-escaping in the
//! rich-text part, and an output size cap.

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::model::{Content, RecipientSpec, Rendered, Vars};

/// Fuel per render: enough for real templates, stops `{% for i in range(10**9) %}`.
const FUEL: u64 = 100_000;
/// Largest rendered part.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;

const PARTS: [&str; 3] = ["subject", "text", "html"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message}")]
pub struct RenderError {
    /// Which content part failed: "subject", "text" or "html".
    pub part: &'static str,
    pub message: String,
    /// Its catalog key: `template.syntax`, `template.error` or `template.too_long`.
    pub key: &'static str,
    /// `message` for readers of any language (see [`explain`]), when it has one.
    pub detail: Option<crate::i18n::Msg>,
}

impl RenderError {
    /// The message people read, in any language.
    pub fn msg(&self) -> crate::i18n::Msg {
        use crate::i18n::Msg;
        match self.key {
            "template.too_long" => crate::msg!("template.too_long", part = self.part, max = MAX_OUTPUT_BYTES),
            key => {
                let detail = self.detail.clone().unwrap_or_else(|| Msg::verbatim(&self.message));
                Msg::new(key).nested("part", Msg::noun(self.part)).nested("detail", detail)
            }
        }
    }
}

/// A message's shared variables as the template engine reads them.
pub struct Shared(minijinja::Value);

/// An engine with no loader, a fuel limit and lenient undefined variables
/// (a missing variable renders empty): every template Herald renders runs in one.
pub(crate) fn sandbox<'a>() -> Environment<'a> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env
}

/// A message's content compiled once, rendered once per recipient.
pub struct Compiled<'a> {
    env: Environment<'a>,
    present: [bool; 3],
}

fn part_source(content: &Content, i: usize) -> Option<&String> {
    match i {
        0 => content.subject.as_ref(),
        1 => content.text.as_ref(),
        _ => content.html.as_ref(),
    }
}

impl<'a> Compiled<'a> {
    /// Compile every part; a syntax error names the part.
    pub fn new(content: &'a Content) -> Result<Self, RenderError> {
        let mut env = sandbox();
        env.set_auto_escape_callback(|name| if name == "html" { AutoEscape::Html } else { AutoEscape::None });
        let mut present = [false; 3];
        for (i, part) in PARTS.iter().enumerate() {
            if let Some(src) = part_source(content, i) {
                env.add_template(part, src).map_err(|e| RenderError {
                    part,
                    message: describe(&e),
                    key: "template.syntax",
                    detail: Some(explain(&e)),
                })?;
                present[i] = true;
            }
        }
        Ok(Self { env, present })
    }

    fn part(&self, i: usize, ctx: &minijinja::Value) -> Result<Option<String>, RenderError> {
        if !self.present[i] {
            return Ok(None);
        }
        let part = PARTS[i];
        let out = self.env.get_template(part).and_then(|t| t.render(ctx)).map_err(|e| RenderError {
            part,
            message: describe(&e),
            key: "template.error",
            detail: Some(explain(&e)),
        })?;
        if out.len() > MAX_OUTPUT_BYTES {
            return Err(RenderError {
                part,
                message: format!("rendered output exceeds {MAX_OUTPUT_BYTES} bytes"),
                key: "template.too_long",
                detail: None,
            });
        }
        Ok(Some(out))
    }

    /// A message's shared variables, converted once for all its recipients.
    pub fn shared(vars: &Vars) -> Shared {
        Shared(minijinja::Value::from(minijinja::value::Serde(vars)))
    }

    /// Render for one recipient. Recipient variables override shared ones;
    /// `recipient` is always the recipient's address. The shared variables
    /// are looked up in place, never copied per recipient.
    pub fn render(
        &self,
        delivery_id: String,
        shared: &Shared,
        recipient: &RecipientSpec,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Rendered, RenderError> {
        let own = minijinja::context! { recipient => recipient.to.as_str() };
        // The last map that has a key wins.
        let ctx = minijinja::value::merge_maps([shared.0.clone(), minijinja::Value::from(minijinja::value::Serde(&recipient.variables)), own]);
        let subject = self.part(0, &ctx)?;
        let html = self.part(2, &ctx)?;
        let text = match self.part(1, &ctx)? {
            Some(t) => t,
            None => html.as_deref().map(strip_tags).unwrap_or_default(),
        };
        let mut md = metadata.clone();
        for (k, v) in &recipient.variables {
            md.entry(k.clone()).or_insert_with(|| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        }
        Ok(Rendered { delivery_id, recipient: recipient.to.clone(), subject, text, html, metadata: md })
    }
}

pub(crate) fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{} ({d})", e.kind()),
        None => e.kind().to_string(),
    }
}

/// [`describe`] as a message: the engine's kind of error translated
/// (`template.kind.*`), its detail in its own words.
pub(crate) fn explain(e: &minijinja::Error) -> crate::i18n::Msg {
    use crate::i18n::Msg;
    use minijinja::ErrorKind as K;
    let key = match e.kind() {
        K::SyntaxError => "template.kind.syntax",
        K::UndefinedError => "template.kind.undefined",
        K::UnknownFilter => "template.kind.unknown_filter",
        K::UnknownTest => "template.kind.unknown_test",
        K::UnknownFunction => "template.kind.unknown_function",
        K::UnknownMethod => "template.kind.unknown_method",
        K::InvalidOperation => "template.kind.invalid_operation",
        K::TooManyArguments => "template.kind.too_many_arguments",
        K::MissingArgument => "template.kind.missing_argument",
        K::BadEscape => "template.kind.bad_escape",
        K::OutOfFuel => "template.kind.out_of_fuel",
        _ => return Msg::verbatim(describe(e)),
    };
    match e.detail() {
        Some(d) => crate::msg!("template.kind_detail", detail = d).nested("kind", Msg::new(key)),
        None => Msg::new(key),
    }
}

/// A plain-text fallback for HTML-only content: tags removed, whitespace folded.
pub fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: serde_json::Value) -> Vars {
        v.as_object().unwrap().clone()
    }
    fn rcpt(to: &str, v: serde_json::Value) -> RecipientSpec {
        RecipientSpec { to: to.into(), variables: vars(v) }
    }

    /// A template error reads in either language: the engine's kind translated, its detail as it wrote it.
    #[test]
    fn template_errors_are_translated() {
        let content = Content { subject: None, text: Some("你好 {{ 姓名 ".into()), html: None };
        let e = Compiled::new(&content).err().expect("a syntax error");
        let zh = e.msg().render(crate::i18n::Lang::ZhCn);
        assert!(zh.starts_with("正文中的模板无法编译：语法错误（"), "{zh}");
        assert_eq!(e.msg().render(crate::i18n::Lang::En), format!("text: {}", e.message), "English as before");
    }

    #[test]
    fn recipient_variables_override_shared_ones() {
        let content =
            Content { subject: Some("Hi {{ name }}".into()), text: Some("{{ greeting }}, {{ name }} <{{ recipient }}>".into()), html: None };
        let c = Compiled::new(&content).unwrap();
        let r = c
            .render(
                "m.0".into(),
                &Compiled::shared(&vars(json!({"greeting": "Hello", "name": "all"}))),
                &rcpt("a@x", json!({"name": "Ann"})),
                &BTreeMap::new(),
            )
            .unwrap();
        assert_eq!(r.subject.as_deref(), Some("Hi Ann"));
        assert_eq!(r.text, "Hello, Ann <a@x>");
        assert_eq!(r.metadata.get("name").map(String::as_str), Some("Ann"));
        // Nobody's variable replaces the address.
        let shared = Compiled::shared(&vars(json!({"recipient": "shared@x"})));
        let r = c.render("m.1".into(), &shared, &rcpt("b@x", json!({"recipient": "own@x"})), &BTreeMap::new()).unwrap();
        assert!(r.text.ends_with("<b@x>"), "{}", r.text);
    }

    #[test]
    fn variables_may_be_named_in_chinese() {
        let content = Content { subject: Some("{{ 姓名 }}，您好".into()), text: Some("验证码 {{ 验证码 }}".into()), html: None };
        let c = Compiled::new(&content).unwrap();
        let r = c
            .render("m.0".into(), &Compiled::shared(&vars(json!({"验证码": "4721"}))), &rcpt("a", json!({"姓名": "张三"})), &BTreeMap::new())
            .unwrap();
        assert_eq!((r.subject.as_deref(), r.text.as_str()), (Some("张三，您好"), "验证码 4721"));
    }

    #[test]
    fn html_part_is_escaped_text_part_is_not() {
        let content = Content { subject: None, text: Some("{{ v }}".into()), html: Some("<p>{{ v }}</p>".into()) };
        let c = Compiled::new(&content).unwrap();
        let r = c.render("m.0".into(), &Compiled::shared(&vars(json!({"v": "<b>&"}))), &rcpt("a", json!({})), &BTreeMap::new()).unwrap();
        assert_eq!(r.text, "<b>&");
        assert_eq!(r.html.as_deref(), Some("<p>&lt;b&gt;&amp;</p>"));
    }

    #[test]
    fn html_only_content_gets_a_text_fallback() {
        let content = Content { subject: None, text: None, html: Some("<h1>Title</h1><p>Body {{ n }}</p>".into()) };
        let r = Compiled::new(&content)
            .unwrap()
            .render("m.0".into(), &Compiled::shared(&vars(json!({"n": 3}))), &rcpt("a", json!({})), &BTreeMap::new())
            .unwrap();
        assert_eq!(r.text, "Title Body 3");
    }

    #[test]
    fn syntax_errors_name_the_part() {
        let content = Content { subject: Some("ok".into()), text: Some("{% if %}".into()), html: None };
        let err = Compiled::new(&content).err().unwrap();
        assert_eq!(err.part, "text");
    }

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let content = Content { subject: None, text: Some("{% for i in range(100000000) %}x{% endfor %}".into()), html: None };
        let c = Compiled::new(&content).unwrap();
        let err = c.render("m.0".into(), &Compiled::shared(&Vars::new()), &rcpt("a", json!({})), &BTreeMap::new()).unwrap_err();
        assert_eq!(err.part, "text");
    }

    #[test]
    fn templates_cannot_include_other_templates() {
        let content = Content { subject: None, text: Some("{% include '/etc/passwd' %}".into()), html: None };
        let c = Compiled::new(&content).unwrap();
        assert!(c.render("m.0".into(), &Compiled::shared(&Vars::new()), &rcpt("a", json!({})), &BTreeMap::new()).is_err());
    }
}
