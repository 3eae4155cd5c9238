//! Tiered push (分级推送): templates with an editor type, and actions whose
//! rules (cards) say which level goes to which channels and recipients, and
//! when to escalate. The admin service stores them (documents of kinds
//! `tiered_template` and `action`); the gateway's escalation engine runs them.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::directory::Targets;

pub const TEMPLATE: &str = "tiered_template";
pub const ACTION: &str = "action";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Editor {
    Text,
    RichText,
    Voice,
}

impl Editor {
    /// Whether a channel with these content formats (from the plugin's
    /// `describe`: "text", "html", "markdown", "voice") takes this editor's
    /// templates: text → SMS, IM and voice; rich text → e-mail; voice → voice only.
    pub fn fits(self, formats: &[String]) -> bool {
        let has = |f: &str| formats.iter().any(|x| x == f);
        let (rich, voice) = (has("html"), has("voice"));
        match self {
            Editor::Text => voice || (!rich && has("text")) || (!rich && has("markdown")),
            Editor::RichText => rich,
            Editor::Voice => voice,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TieredTemplate {
    pub id: String,
    /// Human number, e.g. "T000001".
    pub number: String,
    pub title: String,
    pub editor: Editor,
    #[serde(default)]
    pub subject: Option<String>,
    /// minijinja text (HTML for rich text, sanitized on save).
    pub body: String,
    #[serde(default)]
    pub variables: Vec<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelRef {
    pub channel: String,
    pub account: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    NotAcknowledged,
    NotDelivered,
}

/// Move on to the next rule when `condition` still holds `after_secs` after this one fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalate {
    pub after_secs: u64,
    pub condition: Condition,
}

/// One card of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// "urgent", "normal" or "info".
    pub level: String,
    pub channels: Vec<ChannelRef>,
    #[serde(default)]
    pub recipients: Targets,
    #[serde(default)]
    pub escalate: Option<Escalate>,
    /// Fire this rule again this many times (each after `escalate.after_secs`) before moving on.
    #[serde(default)]
    pub repeat: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    /// Human number, e.g. "A000001".
    pub number: String,
    pub title: String,
    pub templates: Vec<String>,
    pub rules: Vec<Rule>,
    pub enabled: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

pub const LEVELS: [&str; 3] = ["urgent", "normal", "info"];

#[cfg(test)]
mod tests {
    use super::*;

    fn f(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn editors_fit_the_seed_channel_rules() {
        let (sms, email, voice, im) = (f(&["text"]), f(&["html", "text"]), f(&["voice"]), f(&["text", "markdown"]));
        assert!(Editor::Text.fits(&sms) && Editor::Text.fits(&voice) && Editor::Text.fits(&im));
        assert!(!Editor::Text.fits(&email));
        assert!(Editor::RichText.fits(&email) && !Editor::RichText.fits(&sms));
        assert!(Editor::Voice.fits(&voice) && !Editor::Voice.fits(&sms) && !Editor::Voice.fits(&email));
    }
}
