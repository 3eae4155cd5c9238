//! Intake: the one way a message is accepted, whoever submits it (the API, a
//! console push, a recurring push, a tiered-push step, Herald's own alerts).
//! References are resolved and checked with the configured limits, the
//! prepaid gate applies, then the rows are written and the work published.

use std::collections::BTreeMap;

use herald_core::docs::Repo;
use herald_core::model::{Content, Message, RecipientSpec, Vars, Work};
use herald_core::render::Compiled;
use herald_core::seams::Enqueue;
use herald_core::validate::Limits;
use herald_core::{Millis, StoreError};

use crate::{Billing, BillingError, Deps};

/// Where the configured limits come from: the gateway has them from its
/// config file and publishes them (`*/config-file/limits`); the admin service
/// reads what the gateway published.
#[derive(Clone, Debug)]
pub enum LimitsSource {
    Fixed(Limits),
    Published,
}

/// The document the gateway's limits are published in.
pub const LIMITS_DOC: (&str, &str) = ("config-file", "limits");

/// What a message says: a stored template or inline content.
#[derive(Clone, Debug)]
pub enum Body {
    Template(String),
    Content(Content),
}

/// Whether the prepaid gate applies: every tenant's send, except the alerts
/// Herald writes itself (a low-balance alert must reach a tenant that is low).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Prepaid,
    Exempt,
}

/// A message as a caller submits it.
#[derive(Clone, Debug)]
pub struct Submission {
    pub id: String,
    pub tenant: String,
    pub channel: String,
    /// `None`: the tenant's one account on the channel.
    pub account: Option<String>,
    pub body: Body,
    pub variables: Vars,
    pub recipients: Vec<RecipientSpec>,
    pub metadata: BTreeMap<String, String>,
    /// Later than now: held until then.
    pub send_at: Option<Millis>,
    pub gate: Gate,
}

/// The accepted message.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub message: Message,
    /// Set when it waits for a later time.
    pub send_at: Option<Millis>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("no plugin named {0:?} is loaded")]
    UnknownChannel(String),
    #[error("no sender account named {0:?}")]
    UnknownAccount(String),
    #[error("no sender account for channel {0:?}")]
    NoAccount(String),
    #[error("several accounts serve channel {0:?}; name one")]
    AmbiguousAccount(String),
    #[error("account {account:?} sends via {plugin:?}, not {channel:?}")]
    AccountChannelMismatch { account: String, plugin: String, channel: String },
    #[error("{reason}: {to:?}")]
    InvalidRecipient { index: usize, to: String, reason: String },
    #[error("{count} recipients in one message; at most {max}")]
    TooManyRecipients { count: usize, max: usize },
    #[error("no recipients")]
    NoRecipients,
    #[error(
        "this message would render {bytes} bytes ({recipients} recipients × {each} bytes of content and shared variables, plus their own variables); at most {max}: send fewer recipients or smaller shared variables"
    )]
    TooCostly { bytes: usize, recipients: usize, each: usize, max: usize, field: &'static str },
    #[error("no template named {0:?}")]
    UnknownTemplate(String),
    /// `part`: the content part at fault (subject, text, html), or `None` for a stored template.
    #[error("{reason}")]
    InvalidTemplate { part: Option<String>, reason: String },
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Intake {
    deps: Deps,
    limits: LimitsSource,
    billing: Billing,
}

impl Intake {
    pub fn new(deps: Deps, limits: LimitsSource, billing: Billing) -> Intake {
        Intake { deps, limits, billing }
    }

    /// The configured limits (the gateway's, as published, in the admin service).
    pub async fn limits(&self) -> Result<Limits, StoreError> {
        match &self.limits {
            LimitsSource::Fixed(l) => Ok(l.clone()),
            LimitsSource::Published => {
                let repo = Repo::new(self.deps.backends.config.as_ref(), "*");
                Ok(repo.get::<Limits>(LIMITS_DOC.0, LIMITS_DOC.1).await.map_err(|e| StoreError::Backend(e.message))?.unwrap_or_default())
            }
        }
    }

    /// Accept one message.
    pub async fn submit(&self, s: Submission) -> Result<Accepted, IntakeError> {
        let mut all = self.submit_all(vec![s]).await?;
        Ok(all.remove(0))
    }

    /// Accept several messages as one send (a large push split by the
    /// per-message limit): every one is checked and the prepaid gate sees
    /// their total per channel before any is written, so a send is refused
    /// whole, never cut off halfway.
    pub async fn submit_all(&self, subs: Vec<Submission>) -> Result<Vec<Accepted>, IntakeError> {
        let limits = self.limits().await?;
        let now = self.deps.clock.now_ms();
        let mut messages = Vec::with_capacity(subs.len());
        let mut sends: BTreeMap<(String, String), usize> = BTreeMap::new();
        for s in subs {
            let gate = s.gate;
            let m = self.resolve(s, &limits, now).await?;
            if gate == Gate::Prepaid {
                *sends.entry((m.tenant.clone(), m.channel.clone())).or_default() += m.recipients.len();
            }
            messages.push(m);
        }
        for ((tenant, channel), n) in &sends {
            self.billing.gate(tenant, channel, *n).await?;
        }
        let mut accepted = Vec::with_capacity(messages.len());
        for message in messages {
            // The rows and the log item are written at once (on SQLite they
            // usually share one group commit), and the answer waits for both,
            // so a status query right after it finds the rows. A dispatcher
            // that leases the item before its rows are in records them itself
            // (recording a message twice is a no-op).
            let not_before = message.send_at.unwrap_or(now);
            let work = Work::Message(message.clone());
            let item = vec![Enqueue { key: message.tenant.clone(), not_before, work }];
            self.deps.backends.queue.publish_message(self.deps.backends.store.as_ref(), &message, item).await?;
            tracing::debug!(tenant = %message.tenant, message_id = %message.id, channel = %message.channel, recipients = message.recipients.len(), "accepted");
            accepted.push(Accepted { send_at: message.send_at, message });
        }
        Ok(accepted)
    }

    /// The message a submission stands for, every reference checked.
    async fn resolve(&self, s: Submission, limits: &Limits, now: Millis) -> Result<Message, IntakeError> {
        let config = self.deps.backends.config.as_ref();
        let plugin = self.deps.plugins.get(&s.channel).ok_or_else(|| IntakeError::UnknownChannel(s.channel.clone()))?;
        let account = match &s.account {
            // The tenant's account list is cached; one missing from it may
            // have been made a moment ago elsewhere, so that is read afresh.
            Some(name) => match config.accounts(&s.tenant).await?.into_iter().find(|a| &a.name == name) {
                Some(a) => a,
                None => config.account(&s.tenant, name).await?.ok_or_else(|| IntakeError::UnknownAccount(name.clone()))?,
            },
            None => {
                let mut fitting: Vec<_> = config.accounts(&s.tenant).await?.into_iter().filter(|a| a.plugin == s.channel).collect();
                match fitting.len() {
                    1 => fitting.remove(0),
                    0 => return Err(IntakeError::NoAccount(s.channel)),
                    _ => return Err(IntakeError::AmbiguousAccount(s.channel)),
                }
            }
        };
        if account.plugin != plugin.info.name {
            return Err(IntakeError::AccountChannelMismatch { account: account.name, plugin: account.plugin, channel: s.channel });
        }
        if s.recipients.is_empty() {
            return Err(IntakeError::NoRecipients);
        }
        if s.recipients.len() > limits.max_recipients {
            return Err(IntakeError::TooManyRecipients { count: s.recipients.len(), max: limits.max_recipients });
        }
        for (index, r) in s.recipients.iter().enumerate() {
            plugin.recipients.check(&r.to).map_err(|why| IntakeError::InvalidRecipient {
                index,
                to: r.to.chars().take(80).collect(),
                reason: why.to_string(),
            })?;
        }
        let (content, template) = match s.body {
            Body::Template(id) => {
                let t = config.template(&s.tenant, &id).await?.ok_or_else(|| IntakeError::UnknownTemplate(id.clone()))?;
                (t.content, Some(id))
            }
            Body::Content(c) => (c, None),
        };
        if let Err(e) = Compiled::new(&content) {
            let part = template.is_none().then(|| e.part.to_string());
            return Err(IntakeError::InvalidTemplate { part, reason: e.to_string() });
        }
        cost(&content, &s.variables, &s.recipients, limits.max_message_bytes)?;
        Ok(Message {
            id: s.id,
            tenant: s.tenant,
            channel: s.channel,
            account: account.name,
            content,
            template,
            variables: s.variables,
            recipients: s.recipients,
            metadata: s.metadata,
            accepted_at: now,
            send_at: s.send_at.filter(|t| *t > now),
        })
    }
}

/// What a message costs to render, refused over `max`: every recipient gets
/// the content and the shared variables, plus their own variables.
fn cost(content: &Content, shared: &Vars, recipients: &[RecipientSpec], max: usize) -> Result<(), IntakeError> {
    let json_len = |v: &Vars| if v.is_empty() { 0 } else { serde_json::to_vec(v).map_or(0, |b| b.len()) };
    let content_len = [&content.subject, &content.text, &content.html].iter().map(|p| p.as_ref().map_or(0, String::len)).sum::<usize>();
    let shared_len = json_len(shared);
    let each = content_len + shared_len;
    let own: usize = recipients.iter().map(|r| r.to.len() + json_len(&r.variables)).sum();
    let bytes = recipients.len().saturating_mul(each).saturating_add(own);
    if bytes <= max {
        return Ok(());
    }
    let field = if shared_len > content_len {
        "variables"
    } else if own > bytes / 2 {
        "recipients"
    } else {
        "content"
    };
    Err(IntakeError::TooCostly { bytes, recipients: recipients.len(), each, max, field })
}
