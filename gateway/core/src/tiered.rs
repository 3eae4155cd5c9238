//! Tiered push (分级推送): templates with an editor type, and actions whose
//! rules (cards) say which level goes to which channels and recipients, and
//! when to escalate. The admin service stores them (documents of kinds
//! `tiered_template` and `action`); the gateway's escalation engine runs them.

use std::collections::BTreeMap;

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
    /// Per template-based channel (plugin name): the provider template sent instead of the text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provider: BTreeMap<String, crate::provider_template::ProviderTemplate>,
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
    /// What an acknowledgement stops (the whole incident by default).
    #[serde(default)]
    pub ack_scope: AckScope,
    pub created_at: Millis,
    pub updated_at: Millis,
}

pub const LEVELS: [&str; 3] = ["urgent", "normal", "info"];

pub const INCIDENT: &str = "incident";
/// Index documents: `incident_dedup/<dedup key>` and `incident_msg/<message id>` → incident id.
pub const INCIDENT_DEDUP: &str = "incident_dedup";
pub const INCIDENT_MSG: &str = "incident_msg";

/// What an acknowledgement stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckScope {
    /// Every pending step of the incident.
    #[default]
    Incident,
    /// Further steps skip the recipient who acknowledged.
    Recipient,
}

/// One step of an incident: a rule fired once (a repeating rule gives several steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub rule: usize,
    pub repeat: u32,
    /// Wait after this step before the next one, and what must still hold then.
    #[serde(default)]
    pub escalate: Option<Escalate>,
}

/// One event of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEvent {
    /// Unix milliseconds (UTC).
    #[schema(value_type = i64)]
    pub at: Millis,
    /// triggered | repeated | fired | deferred | refused | fallback | skipped | acknowledged | stopped | done
    pub kind: String,
    /// The step (index into the incident's steps) the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub step: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

/// A triggered action: its steps, what fired, who acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub action: String,
    pub level: String,
    #[serde(default)]
    pub dedup_key: Option<String>,
    #[serde(default)]
    pub variables: crate::model::Vars,
    /// Added to every rule's recipients.
    #[serde(default)]
    pub targets: Targets,
    pub steps: Vec<Step>,
    /// Steps already fired (each fires once).
    #[serde(default)]
    pub fired: Vec<u32>,
    /// "open", "acknowledged" or "done".
    pub state: String,
    #[serde(default)]
    pub ack_scope: AckScope,
    /// Recipient keys (directory user id, or the raw address) who acknowledged.
    #[serde(default)]
    pub acked: Vec<String>,
    /// Messages sent per step, for the "not delivered" condition.
    #[serde(default)]
    pub messages: Vec<(u32, String)>,
    /// Address → recipient key, for read receipts.
    #[serde(default)]
    pub keys: std::collections::BTreeMap<String, String>,
    pub timeline: Vec<TimelineEvent>,
    /// How many times the dedup key folded a new trigger into this incident.
    #[serde(default)]
    pub repeats: u32,
    pub created_at: Millis,
}

impl Incident {
    /// The recipient key behind `named`: the key of an address the incident
    /// sent to, or `named` itself when it is a key; None for anyone else.
    pub fn key_of(&self, named: &str) -> Option<String> {
        match self.keys.get(named) {
            Some(key) => Some(key.clone()),
            None => self.keys.values().any(|v| v == named).then(|| named.to_string()),
        }
    }

    /// Merge `ours` (this incident as one writer changed it from an earlier
    /// read) into `self` (as stored now): sets grow by union, a closed
    /// state stays closed, counters keep the larger; so concurrent writers
    /// (a step firing, an ack, a folded trigger) lose nothing of each other.
    pub fn merge(&mut self, ours: &Incident) {
        fn union<T: PartialEq + Clone>(into: &mut Vec<T>, from: &[T]) {
            for x in from {
                if !into.contains(x) {
                    into.push(x.clone());
                }
            }
        }
        union(&mut self.acked, &ours.acked);
        union(&mut self.timeline, &ours.timeline);
        self.timeline.sort_by_key(|e| e.at);
        union(&mut self.fired, &ours.fired);
        union(&mut self.messages, &ours.messages);
        for (to, key) in &ours.keys {
            self.keys.entry(to.clone()).or_insert_with(|| key.clone());
        }
        if self.state == "open" {
            self.state = ours.state.clone();
        }
        self.repeats = self.repeats.max(ours.repeats);
    }
}

impl Action {
    /// The steps a trigger at `level` runs: that level's rules in order, each repeated.
    pub fn steps_for(&self, level: &str) -> Vec<Step> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.level == level)
            .flat_map(|(i, r)| (0..=r.repeat).map(move |n| Step { rule: i, repeat: n, escalate: r.escalate.clone() }))
            .collect()
    }
}

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

    fn ev(at: Millis, kind: &str) -> TimelineEvent {
        TimelineEvent { at, kind: kind.into(), step: None, channel: None, recipients: vec![], message_id: None, detail: None }
    }

    #[test]
    fn a_stale_writer_merged_in_loses_nothing_a_concurrent_one_recorded() {
        let base = Incident {
            id: "i".into(),
            action: "a".into(),
            level: "urgent".into(),
            dedup_key: Some("k".into()),
            variables: Default::default(),
            targets: Default::default(),
            steps: vec![],
            fired: vec![],
            state: "open".into(),
            ack_scope: AckScope::Recipient,
            acked: vec![],
            messages: vec![],
            keys: Default::default(),
            timeline: vec![ev(1, "triggered")],
            repeats: 0,
            created_at: 1,
        };
        // Stored now: a trigger folded in, and Bob acknowledged.
        let mut stored = base.clone();
        stored.repeats = 1;
        stored.timeline.push(ev(3, "repeated"));
        stored.acked.push("bob".into());
        stored.state = "acknowledged".into();
        // A step firing from the read before those: its own changes only.
        let mut firing = base.clone();
        firing.fired.push(0);
        firing.messages.push((0, "m0".into()));
        firing.keys.insert("ann@x".into(), "ann".into());
        firing.timeline.push(ev(2, "fired"));
        stored.merge(&firing);
        assert_eq!(stored.repeats, 1, "the folded trigger is still counted");
        assert_eq!(stored.state, "acknowledged", "a stale 'open' does not reopen");
        assert_eq!(stored.acked, vec!["bob".to_string()]);
        assert_eq!((stored.fired.clone(), stored.messages.clone()), (vec![0], vec![(0, "m0".to_string())]));
        assert_eq!(stored.keys.get("ann@x").map(String::as_str), Some("ann"));
        let kinds: Vec<&str> = stored.timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["triggered", "fired", "repeated"], "in time order, each once");
        let again = stored.clone();
        stored.merge(&again);
        assert_eq!(stored, again, "merging twice changes nothing");
    }
}
