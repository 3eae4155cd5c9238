//! Template-based providers (Aliyun SMS and voice, Tencent SMS): they send
//! only a template the operator approved beforehand, chosen by its code and
//! filled with named (or positional) parameters. The text typed into Herald
//! is never sent to them.
//!
//! A plugin of such a provider declares it in its account schema:
//!
//! ```json
//! "x-herald-provider-template": {
//!   "code": "template_code",      // account field with the default code, and the delivery metadata key that overrides it
//!   "names": "template_params",   // account field listing the default parameter names (optional)
//!   "param": "template_param",    // delivery metadata key carrying every parameter as JSON
//!   "format": "object"            // that JSON: an object of strings, or "array": the values in order
//! }
//! ```
//!
//! A push (or a tiered template, per channel) may then choose a
//! [`ProviderTemplate`]: a code and its parameters, whose values may use the
//! recipient's `{{ variables }}`. [`ProviderTemplate::apply`] turns the choice
//! into what the plugin reads: the code as request metadata, the parameters
//! rendered for each recipient as that recipient's variable named `param`
//! (delivery metadata includes recipient variables).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{RecipientSpec, Vars};
use crate::render::RenderError;

/// How a plugin takes a template's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamFormat {
    /// `{"name": "value", ...}` (Aliyun).
    Object,
    /// `["value", ...]` in the template's order (Tencent's `{1}`, `{2}`).
    Array,
}

/// What a template-based plugin declares (`x-herald-provider-template`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateBinding {
    /// Account field with the default code; also the metadata key overriding it.
    pub code: String,
    /// Account field listing the default parameter names, if any.
    pub names: Option<String>,
    /// Metadata key carrying every parameter as JSON.
    pub param: String,
    pub format: ParamFormat,
}

const KEY: &str = "x-herald-provider-template";

impl TemplateBinding {
    /// Read the declaration from a plugin's account schema (JSON Schema text);
    /// `None` when the plugin sends what is typed (most do).
    pub fn declared_in(account_schema: &str) -> Result<Option<TemplateBinding>, String> {
        let Ok(schema) = serde_json::from_str::<Value>(account_schema) else {
            return Ok(None);
        };
        let Some(decl) = schema.get(KEY) else {
            return Ok(None);
        };
        let text = |k: &str| decl.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let code = text("code").ok_or(format!("{KEY}.code must be a non-empty string"))?;
        let param = text("param").ok_or(format!("{KEY}.param must be a non-empty string"))?;
        let format = match decl.get("format").and_then(Value::as_str) {
            None | Some("object") => ParamFormat::Object,
            Some("array") => ParamFormat::Array,
            Some(other) => return Err(format!("{KEY}.format must be \"object\" or \"array\", not {other:?}")),
        };
        Ok(Some(TemplateBinding { code, names: text("names"), param, format }))
    }
}

/// One parameter of a provider template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateParam {
    /// The parameter's name in the provider's template (for positional
    /// templates a label; the order is what counts).
    #[schema(min_length = 1, max_length = 64, pattern = r"^\S(.*\S)?$")]
    pub name: String,
    /// Its value; may use the recipient's variables, e.g. `{{ name }}`.
    #[schema(max_length = 500)]
    pub value: String,
}

/// The provider template a push (or a tiered template on one channel) sends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "SMS_154950909", "params": [{"name": "code", "value": "{{ code }}"}, {"name": "name", "value": "{{ name }}"}]}))]
pub struct ProviderTemplate {
    /// The approved template's code (Aliyun `SMS_…`/`TTS_…`, Tencent's
    /// template id); the account's default when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64, pattern = r"^[A-Za-z0-9_.\-]*$")]
    pub code: Option<String>,
    /// Its parameters, in the template's order; none: the account's default
    /// names filled from the recipient's variables.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub params: Vec<TemplateParam>,
}

/// Most parameters a template takes here (providers allow far fewer).
pub const MAX_PARAMS: usize = 20;

/// Why a choice is refused: the field (relative to the choice) and why.
pub type Invalid = (String, crate::i18n::Msg);

impl ProviderTemplate {
    /// A code of letters, digits, `_`, `-` and `.`; unique non-empty names;
    /// values that compile.
    pub fn check(&self) -> Result<(), Invalid> {
        if let Some(code) = &self.code
            && (code.len() > 64 || !code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(("code".into(), crate::msg!("provider_template.code")));
        }
        if self.params.len() > MAX_PARAMS {
            return Err(("params".into(), crate::msg!("provider_template.too_many", max = MAX_PARAMS)));
        }
        for (i, p) in self.params.iter().enumerate() {
            let name = p.name.trim();
            if name.is_empty() || name.chars().count() > 64 || name != p.name {
                return Err((format!("params[{i}].name"), crate::msg!("provider_template.name")));
            }
            if self.params[..i].iter().any(|q| q.name == p.name) {
                return Err((format!("params[{i}].name"), crate::msg!("provider_template.duplicate")));
            }
            if p.value.chars().count() > 500 {
                return Err((format!("params[{i}].value"), crate::msg!("provider_template.value_too_long")));
            }
        }
        self.compiled().map(|_| ()).map_err(|(i, e)| (format!("params[{i}].value"), e.msg()))
    }

    fn compiled(&self) -> Result<minijinja::Environment<'_>, (usize, RenderError)> {
        let mut env = crate::render::sandbox();
        for (i, p) in self.params.iter().enumerate() {
            env.add_template_owned(i.to_string(), p.value.clone()).map_err(|e| {
                (
                    i,
                    RenderError {
                        part: "params",
                        message: crate::render::describe(&e),
                        key: "template.syntax",
                        detail: Some(crate::render::explain(&e)),
                    },
                )
            })?;
        }
        Ok(env)
    }

    /// The code and the parameter JSON the plugin receives for a recipient
    /// with these variables (shared ones first, the recipient's over them).
    pub fn sent(&self, binding: &TemplateBinding, shared: &Vars, own: &Vars) -> Result<(Option<String>, Option<String>), RenderError> {
        let env = self.compiled().map_err(|(_, e)| e)?;
        self.sent_with(&env, binding, shared, own)
    }

    fn sent_with(
        &self,
        env: &minijinja::Environment<'_>,
        binding: &TemplateBinding,
        shared: &Vars,
        own: &Vars,
    ) -> Result<(Option<String>, Option<String>), RenderError> {
        let code = self.code.clone().filter(|c| !c.is_empty());
        if self.params.is_empty() {
            return Ok((code, None));
        }
        let ctx = minijinja::value::merge_maps([
            minijinja::Value::from(minijinja::value::Serde(shared)),
            minijinja::Value::from(minijinja::value::Serde(own)),
        ]);
        let mut values = Vec::with_capacity(self.params.len());
        for (i, p) in self.params.iter().enumerate() {
            let out = env.get_template(&i.to_string()).and_then(|t| t.render(&ctx)).map_err(|e| RenderError {
                part: "params",
                message: format!("{}: {}", p.name, crate::render::describe(&e)),
                key: "template.error",
                detail: Some(crate::msg!("template.param", name = p.name).nested("detail", crate::render::explain(&e))),
            })?;
            values.push((p.name.as_str(), out));
        }
        let json = match binding.format {
            ParamFormat::Object => serde_json::to_string(&values.into_iter().collect::<BTreeMap<_, _>>()),
            ParamFormat::Array => serde_json::to_string(&values.into_iter().map(|(_, v)| v).collect::<Vec<_>>()),
        }
        .expect("strings serialize");
        Ok((code, Some(json)))
    }

    /// Make a submission send this template: the code as request metadata,
    /// the parameters rendered for each recipient as its `binding.param` variable.
    pub fn apply(
        &self,
        binding: &TemplateBinding,
        shared: &Vars,
        recipients: &mut [RecipientSpec],
        metadata: &mut BTreeMap<String, String>,
    ) -> Result<(), RenderError> {
        let env = self.compiled().map_err(|(_, e)| e)?;
        if let Some(code) = self.code.as_ref().filter(|c| !c.is_empty()) {
            metadata.insert(binding.code.clone(), code.clone());
        }
        if self.params.is_empty() {
            return Ok(());
        }
        // The request's own metadata would win over a recipient variable.
        metadata.remove(&binding.param);
        for r in recipients {
            let (_, json) = self.sent_with(&env, binding, shared, &r.variables)?;
            if let Some(json) = json {
                r.variables.insert(binding.param.clone(), Value::String(json));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn aliyun() -> TemplateBinding {
        TemplateBinding::declared_in(
            r#"{"type":"object","x-herald-provider-template":{"code":"template_code","names":"template_params","param":"template_param"}}"#,
        )
        .unwrap()
        .unwrap()
    }

    fn vars(v: Value) -> Vars {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn declaration() {
        let b = aliyun();
        assert_eq!(
            (b.code.as_str(), b.param.as_str(), b.format, b.names.as_deref()),
            ("template_code", "template_param", ParamFormat::Object, Some("template_params"))
        );
        let t =
            TemplateBinding::declared_in(r#"{"x-herald-provider-template":{"code":"template_id","param":"template_param_set","format":"array"}}"#)
                .unwrap()
                .unwrap();
        assert_eq!(t.format, ParamFormat::Array);
        assert_eq!(TemplateBinding::declared_in(r#"{"type":"object"}"#).unwrap(), None);
        assert!(TemplateBinding::declared_in(r#"{"x-herald-provider-template":{"code":"c","param":"p","format":"xml"}}"#).is_err());
        assert!(TemplateBinding::declared_in(r#"{"x-herald-provider-template":{"param":"p"}}"#).is_err());
    }

    #[test]
    fn apply_renders_each_recipient_and_overrides_the_code() {
        let choice = ProviderTemplate {
            code: Some("SMS_2".into()),
            params: vec![
                TemplateParam { name: "name".into(), value: "{{ name }}".into() },
                TemplateParam { name: "site".into(), value: "{{ site }}-A".into() },
            ],
        };
        choice.check().unwrap();
        let mut rs = vec![
            RecipientSpec { to: "+8613800138000".into(), variables: vars(json!({"name": "张三"})) },
            RecipientSpec { to: "+8613800138001".into(), variables: vars(json!({"name": "李四", "site": "杭州"})) },
        ];
        let mut md = BTreeMap::from([("template_param".to_string(), "{}".to_string()), ("push".to_string(), "P1".to_string())]);
        choice.apply(&aliyun(), &vars(json!({"site": "北京"})), &mut rs, &mut md).unwrap();
        assert_eq!(md.get("template_code").map(String::as_str), Some("SMS_2"));
        assert!(!md.contains_key("template_param"));
        assert_eq!(rs[0].variables["template_param"], json!(r#"{"name":"张三","site":"北京-A"}"#));
        assert_eq!(rs[1].variables["template_param"], json!(r#"{"name":"李四","site":"杭州-A"}"#));
        let tencent = TemplateBinding { format: ParamFormat::Array, ..aliyun() };
        let (code, json) = choice.sent(&tencent, &Vars::new(), &vars(json!({"name": "王五"}))).unwrap();
        assert_eq!((code.as_deref(), json.as_deref()), (Some("SMS_2"), Some(r#"["王五","-A"]"#)));
    }

    #[test]
    fn no_params_keeps_the_accounts_names() {
        let choice = ProviderTemplate { code: Some("SMS_3".into()), params: vec![] };
        let mut rs = vec![RecipientSpec { to: "+8613800138000".into(), variables: Vars::new() }];
        let mut md = BTreeMap::new();
        choice.apply(&aliyun(), &Vars::new(), &mut rs, &mut md).unwrap();
        assert_eq!(md.len(), 1);
        assert!(rs[0].variables.is_empty());
    }

    #[test]
    fn checks_name_the_field() {
        let p = |name: &str, value: &str| TemplateParam { name: name.into(), value: value.into() };
        let bad = |t: ProviderTemplate| t.check().unwrap_err().0;
        assert_eq!(bad(ProviderTemplate { code: Some("SMS 1".into()), params: vec![] }), "code");
        assert_eq!(bad(ProviderTemplate { code: None, params: vec![p("a", "1"), p("a", "2")] }), "params[1].name");
        assert_eq!(bad(ProviderTemplate { code: None, params: vec![p(" a", "1")] }), "params[0].name");
        assert_eq!(bad(ProviderTemplate { code: None, params: vec![p("a", "{{ x ")] }), "params[0].value");
        assert_eq!(bad(ProviderTemplate { code: None, params: (0..21).map(|i| p(&i.to_string(), "")).collect() }), "params");
    }
}
