//! OpenAPI schemas of the `herald_core` types the admin API answers with.
//! Those the core crate does not describe itself are written here field for
//! field as they serialize (the test `core_types_match_their_schemas` checks
//! real values against these); those it does (`Content`, `Targets`,
//! `ListEntry`, `TimelineEvent`, `ErrorBody`, ...) are used from there. Times are Unix milliseconds (UTC).
#![allow(dead_code)] // read by the schema derive only

use herald_core::directory::Targets;
use herald_core::tiered::TimelineEvent;
use serde_json::Value;
use utoipa::ToSchema;

/// An .xlsx workbook.
#[derive(ToSchema)]
#[schema(format = Binary)]
pub struct Xlsx(String);

/// An org unit; the root has no parent.
#[derive(ToSchema)]
pub struct Unit {
    id: String,
    name: String,
    parent: Option<String>,
    created_at: i64,
}

/// A person in the directory (never with a password).
#[derive(ToSchema)]
#[schema(example = json!({"id": "01J9Z8Q4K2", "name": "Ann Lee", "login": "ann", "mobile": "+8613800000000", "email": "ann@example.com",
    "wecom_id": null, "dingtalk_id": null, "welink_id": null, "time_zone": null, "unit": "01J9Z8Q4K0", "roles": ["01J9Z8Q4K1"], "created_at": 1795627116051u64}))]
pub struct User {
    id: String,
    name: String,
    /// Set for users who log in to the console.
    login: Option<String>,
    mobile: Option<String>,
    email: Option<String>,
    wecom_id: Option<String>,
    dingtalk_id: Option<String>,
    welink_id: Option<String>,
    /// IANA time zone for quiet hours; the tenant's when null.
    time_zone: Option<String>,
    /// Org unit id.
    unit: String,
    /// Role ids.
    roles: Vec<String>,
    created_at: i64,
    /// True after an administrator reset the password, until the user changes it.
    must_change_password: Option<bool>,
}

#[derive(ToSchema)]
pub struct Tenant {
    id: String,
    name: String,
    /// ISO 4217 currency of the tenant's ledger.
    currency: String,
}

/// A role: a description, and function permissions each with its data scope.
#[derive(ToSchema)]
pub struct Role {
    id: String,
    name: String,
    description: String,
    /// Function permissions (e.g. `push.view`), each with its data scope.
    permissions: Vec<herald_core::rbac::Grant>,
    created_at: i64,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Editor {
    Text,
    RichText,
    Voice,
}

/// A tiered-push template.
#[derive(ToSchema)]
pub struct TieredTemplate {
    id: String,
    /// e.g. "T000001".
    number: String,
    title: String,
    editor: Editor,
    /// Rich text only.
    subject: Option<String>,
    /// minijinja text (HTML for rich text, sanitized on save).
    body: String,
    variables: Vec<String>,
    /// Per template-based channel (plugin name): the provider template sent
    /// instead of the text (absent when none is chosen).
    provider: Option<std::collections::BTreeMap<String, herald_core::provider_template::ProviderTemplate>>,
    created_at: i64,
    updated_at: i64,
}

#[derive(ToSchema)]
pub struct ChannelRef {
    channel: String,
    /// Sender account name.
    account: String,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Condition {
    NotAcknowledged,
    NotDelivered,
}

/// Move on to the next rule when `condition` still holds `after_secs` after this one fired.
#[derive(ToSchema)]
pub struct Escalate {
    /// 1 second to 7 days.
    #[schema(minimum = 1, maximum = 604800)]
    after_secs: u64,
    condition: Condition,
}

/// One card of an action.
#[derive(ToSchema)]
pub struct Rule {
    /// "urgent", "normal" or "info".
    #[schema(pattern = "^(urgent|normal|info)$")]
    level: String,
    #[schema(min_items = 1)]
    channels: Vec<ChannelRef>,
    #[schema(required = false)]
    recipients: Targets,
    escalate: Option<Escalate>,
    /// Fire this rule again this many times (each after `escalate.after_secs`) before moving on.
    /// At most 10; needs `escalate`.
    #[schema(required = false, default = 0, maximum = 10)]
    repeat: u32,
}

/// What an acknowledgement stops: the whole incident, or further steps for the recipient who acknowledged.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum AckScope {
    Incident,
    Recipient,
}

/// A tiered-push action as the API shows it.
#[derive(ToSchema)]
pub struct Action {
    id: String,
    /// e.g. "A000001".
    number: String,
    title: String,
    /// Template ids.
    templates: Vec<String>,
    rules: Vec<ActionRule>,
    enabled: bool,
    ack_scope: AckScope,
    #[schema(pattern = "^(enabled|disabled)$")]
    status: String,
    created_at: i64,
    updated_at: i64,
}

/// A rule as stored (every field present).
#[derive(ToSchema)]
pub struct ActionRule {
    level: String,
    channels: Vec<ChannelRef>,
    recipients: Targets,
    escalate: Option<Escalate>,
    repeat: u32,
}

/// One step of an incident: a rule fired once.
#[derive(ToSchema)]
pub struct Step {
    /// Index of the rule.
    rule: usize,
    repeat: u32,
    escalate: Option<Escalate>,
}

/// A triggered action: its steps, what fired, who acknowledged.
#[derive(ToSchema)]
pub struct Incident {
    id: String,
    /// Action id.
    action: String,
    level: String,
    dedup_key: Option<String>,
    variables: std::collections::BTreeMap<String, Value>,
    /// Added to every rule's recipients.
    targets: Targets,
    steps: Vec<Step>,
    /// Steps already fired.
    fired: Vec<u32>,
    /// "open", "acknowledged" or "done".
    state: String,
    ack_scope: AckScope,
    /// Recipient keys (directory user id, or the raw address) who acknowledged.
    acked: Vec<String>,
    /// Messages sent per step: `[step, message id]` pairs.
    #[schema(value_type = Vec<Vec<Value>>)]
    messages: Vec<(u32, String)>,
    /// Address → recipient key.
    keys: std::collections::BTreeMap<String, String>,
    timeline: Vec<TimelineEvent>,
    /// How many times the dedup key folded a new trigger into this incident.
    repeats: u32,
    created_at: i64,
}

/// An IANA time zone name, e.g. "Asia/Shanghai" (the tz database the service knows).
pub struct TimeZone;

impl utoipa::PartialSchema for TimeZone {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let names = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name());
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names)).description(Some("An IANA time zone name")).into()
    }
}

impl ToSchema for TimeZone {}

/// A tenant's quiet hours: info and normal levels wait until the window ends.
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"start": "22:00", "end": "08:00", "time_zone": "Asia/Shanghai", "levels_exempt": ["urgent"]}))]
pub struct QuietHours {
    /// Start of the window, "HH:MM" (24-hour, local), inclusive.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    start: String,
    /// End of the window, "HH:MM", exclusive; equal to `start` means none.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    end: String,
    /// IANA time zone, e.g. "Asia/Shanghai".
    #[schema(value_type = TimeZone)]
    time_zone: String,
    /// Levels that ignore quiet hours.
    #[schema(required = false, default = json!(["urgent"]))]
    levels_exempt: Vec<String>,
}

/// Billing settings of the tenant.
#[derive(ToSchema)]
pub struct BillingSettings {
    /// Prepaid tenants are checked before paid sends.
    prepaid: bool,
    /// Alert threshold in minor units (0 = off).
    low_balance_minor: i64,
    /// "refuse" or "fallback_free".
    policy: String,
}

/// One line of a monthly bill.
#[derive(ToSchema)]
pub struct BillLine {
    /// "YYYY-MM" in China Standard Time.
    period: String,
    channel: String,
    currency: String,
    debit_count: u64,
    debit_units: u64,
    debit_minor: i64,
    credit_minor: i64,
    top_up_minor: i64,
    /// `credit_minor + top_up_minor - debit_minor`.
    net_minor: i64,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use herald_core::directory as dir;
    use herald_core::tiered as t;
    use serde_json::json;
    use utoipa::{PartialSchema, ToSchema};

    /// The schema's properties equal the value's keys, and every required one is there.
    fn check<S: ToSchema>(value: impl serde::Serialize) {
        let schema = serde_json::to_value(S::schema()).unwrap();
        let props: BTreeSet<String> = schema["properties"].as_object().unwrap().keys().cloned().collect();
        let required: BTreeSet<String> =
            schema["required"].as_array().map(|r| r.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default();
        let value = serde_json::to_value(value).unwrap();
        let keys: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, props, "{}: the keys of a real value and the schema's properties", S::name());
        assert!(required.is_subset(&keys), "{}: required {required:?} but the value has {keys:?}", S::name());
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn core_types_match_their_schemas() {
        let entry = dir::ListEntry { to: s("a@example.com"), name: Some(s("A")), channel: Some(s("email")), variables: Default::default() };
        let targets = dir::Targets { users: vec![s("u")], units: vec![s("n")], list: vec![entry.clone()] };
        let escalate = t::Escalate { after_secs: 60, condition: t::Condition::NotAcknowledged };
        let rule = t::Rule {
            level: s("urgent"),
            channels: vec![t::ChannelRef { channel: s("sms"), account: s("a") }],
            recipients: targets.clone(),
            escalate: Some(escalate.clone()),
            repeat: 1,
        };
        let action = t::Action {
            id: s("a"),
            number: s("A000001"),
            title: s("t"),
            templates: vec![s("t")],
            rules: vec![rule.clone()],
            enabled: true,
            ack_scope: t::AckScope::Incident,
            created_at: 1,
            updated_at: 2,
        };
        let mut action_view = serde_json::to_value(&action).unwrap();
        action_view["status"] = json!("enabled");
        let step = t::Step { rule: 0, repeat: 0, escalate: Some(escalate.clone()) };
        let incident = t::Incident {
            id: s("i"),
            action: s("a"),
            level: s("urgent"),
            dedup_key: Some(s("k")),
            variables: Default::default(),
            targets: targets.clone(),
            steps: vec![step.clone()],
            fired: vec![0],
            state: s("open"),
            ack_scope: t::AckScope::Recipient,
            acked: vec![],
            messages: vec![(0, s("m"))],
            keys: Default::default(),
            timeline: vec![],
            repeats: 0,
            created_at: 1,
        };
        let user = dir::User {
            id: s("u"),
            name: s("n"),
            login: Some(s("l")),
            password_hash: Some(s("h")),
            unit: s("r"),
            must_change_password: true,
            ..Default::default()
        };
        check::<super::Unit>(dir::Unit { id: s("u"), name: s("n"), parent: None, created_at: 1 });
        check::<super::User>(crate::web::user_view(&user));
        check::<super::Tenant>(herald_core::model::Tenant { id: s("t"), name: s("n"), currency: s("CNY") });
        check::<super::Role>(herald_core::rbac::Role {
            id: s("r"),
            name: s("n"),
            description: s("d"),
            permissions: vec![herald_core::rbac::Grant { id: s("push.view"), all_units: false, units: vec![s("u")] }],
            created_at: 1,
        });
        check::<super::TieredTemplate>(t::TieredTemplate {
            id: s("t"),
            number: s("T000001"),
            title: s("t"),
            editor: t::Editor::RichText,
            subject: Some(s("s")),
            body: s("b"),
            variables: vec![],
            provider: [(s("aliyun-sms"), herald_core::provider_template::ProviderTemplate { code: Some(s("SMS_1")), params: vec![] })].into(),
            created_at: 1,
            updated_at: 2,
        });
        check::<super::ChannelRef>(&rule.channels[0]);
        check::<super::Escalate>(&escalate);
        check::<super::Rule>(&rule);
        check::<super::ActionRule>(&rule);
        check::<super::Action>(action_view);
        check::<super::Step>(&step);
        check::<super::Incident>(&incident);
        check::<super::QuietHours>(herald_core::quiet::QuietHours {
            start: s("22:00"),
            end: s("08:00"),
            time_zone: s("Asia/Shanghai"),
            levels_exempt: vec![],
        });
        check::<super::BillingSettings>(herald_core::billing::BillingSettings::default());
        check::<super::BillLine>(herald_core::bills::BillLine {
            period: s("2026-12"),
            channel: s("sms"),
            currency: s("CNY"),
            debit_count: 1,
            debit_units: 1,
            debit_minor: 1,
            credit_minor: 0,
            top_up_minor: 0,
            net_minor: -1,
        });
        // Enums: the schema's values are the serialized ones.
        for (schema, values) in [
            (serde_json::to_value(super::Editor::schema()).unwrap(), json!([t::Editor::Text, t::Editor::RichText, t::Editor::Voice])),
            (serde_json::to_value(super::Condition::schema()).unwrap(), json!([t::Condition::NotAcknowledged, t::Condition::NotDelivered])),
            (serde_json::to_value(super::AckScope::schema()).unwrap(), json!([t::AckScope::Incident, t::AckScope::Recipient])),
        ] {
            assert_eq!(schema["enum"], values);
        }
    }
}
