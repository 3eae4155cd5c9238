//! The seams. Each has one trait; every backend (embedded SQLite, Kafka, CQL)
//! implements it and passes the same conformance suite.

use async_trait::async_trait;

use crate::Millis;
use crate::doc_query::{DocPage, DocQuery};
use crate::error::StoreError;
use crate::model::{
    Account, DeadLetter, DeliveryRecord, DeliveryUpdate, Doc, IdempotencyRecord, LedgerEntry, Message, MessageView, Price, Template, Tenant, Work,
};
use crate::store_query::{DeliveryPage, DeliveryQuery, LedgerPage, LedgerQuery};

pub type Result<T> = std::result::Result<T, StoreError>;

/// An item to put on the ingest log.
#[derive(Debug, Clone)]
pub struct Enqueue {
    /// Partition key: the tenant, so one tenant's work keeps its order and lands
    /// on one consumer.
    pub key: String,
    /// Not to be handed out before this time (scheduled sends, retry delays).
    pub not_before: Millis,
    pub work: Work,
}

/// An item handed to a consumer. It comes back (to this or another consumer)
/// unless it is acknowledged before its lease runs out.
#[derive(Debug, Clone)]
pub struct Leased {
    pub token: LeaseToken,
    pub work: Work,
    /// How many times this item was handed out before (0 on the first lease).
    pub redeliveries: u32,
}

/// Where a queue hands the items it publishes to its own process's
/// dispatcher (see [`Queue::hand_off`]). Every item sent on `tx` is a message
/// published a moment ago for the first time: all its deliveries are queued.
#[derive(Clone)]
pub struct Handoff {
    pub tx: tokio::sync::mpsc::Sender<Leased>,
    /// How long a handed item stays leased: if the dispatcher loses it, it
    /// comes back from the queue after this.
    pub lease_ms: i64,
    /// Whether the dispatcher takes a queue key's (tenant's) items now; one
    /// it refuses waits in the queue for a lease (its backlog is full).
    pub admits: std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

/// Opaque handle used to acknowledge a leased item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(pub String);

/// The ingest log (Kafka, or the embedded SQLite queue).
///
/// `publish` returns only once the items are durable. Delivery is
/// at-least-once: an item leased and not acknowledged is handed out again.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    async fn publish(&self, items: Vec<Enqueue>) -> Result<()>;
    /// Up to `max` items that are due, leased for `lease_ms`.
    ///
    /// Fair between tenants (queue keys): when several have due items, one
    /// call interleaves them round robin, each tenant's items in their own
    /// order (`not_before`, then arrival), so a tenant's large backlog does
    /// not push another tenant's due item out of the batch. Where the
    /// previous call stopped, the next one goes on.
    ///
    /// `skip` lists tenants (queue keys) whose items are not leased by this
    /// call (the caller holds enough of their work already). They are left
    /// exactly as they are: not leased, their redelivery counts unchanged; a
    /// later call without them in `skip` leases them as usual.
    async fn lease(&self, max: usize, lease_ms: i64, skip: &[String]) -> Result<Vec<Leased>>;
    /// Forget items whose effects are durable.
    async fn ack(&self, tokens: Vec<LeaseToken>) -> Result<()>;
    /// Publish the work of a message that `store` records, both durable on
    /// return (its rows first in effect: a dispatcher that leases the item
    /// before its rows are in records them itself). A queue kept in the
    /// store's own database does both in one write.
    async fn publish_message(&self, store: &dyn Store, message: &Message, items: Vec<Enqueue>) -> Result<()> {
        record_and_publish(self, store, message, items).await
    }
    /// Offer this process's dispatcher the items it is about to publish, so
    /// that they need no lease: the embedded queue writes such an item already
    /// leased (for `handoff.lease_ms`) and sends it on `handoff.tx` once it is
    /// durable. An item goes into the queue as usual when the channel is full
    /// or `handoff.admits` refuses its key, and always when it is not due yet
    /// or its message was recorded before (a repeated publish). Returns
    /// whether this queue hands items off; a queue shared by several
    /// processes (Kafka) does not.
    fn hand_off(&self, _handoff: Handoff) -> bool {
        false
    }
    /// After a lease that found nothing: wait at most `timeout` before the
    /// next. A queue that sees items arrive (the embedded one, for what this
    /// process publishes) returns as soon as one does, so a lone message
    /// does not wait out the poll interval.
    async fn idle(&self, timeout: std::time::Duration) {
        tokio::time::sleep(timeout).await;
    }
    /// Items waiting (due or scheduled), for the queue-depth metric.
    async fn depth(&self) -> Result<u64>;
    /// Called once at start by the single owner of an embedded queue: leases
    /// held by a previous (crashed) process are released at once.
    async fn recover(&self) -> Result<u64> {
        Ok(0)
    }
    /// Append to the dead-letter list; returns once durable.
    async fn dead_letter(&self, items: Vec<DeadLetter>) -> Result<()>;
    /// Up to `max` dead letters, oldest first. They stay on the list until
    /// `drop_dead` is called with their tokens.
    async fn dead_letters(&self, max: usize) -> Result<Vec<(DeadToken, DeadLetter)>>;
    /// Remove dead letters read by `dead_letters`. The tokens must be a
    /// prefix of what it returned (a log can only drop from its head).
    async fn drop_dead(&self, tokens: Vec<DeadToken>) -> Result<()>;
}

/// Long delays parked outside the ingest log, by due time, so that a Kafka
/// record due in days does not hold back its partition's offsets. The Kafka
/// queue parks what is due later than its horizon; one node at a time (the
/// lease of `lead`) moves due items back to the log and then releases them.
/// At least once: an item moved and not released is moved again.
#[async_trait]
pub trait Schedules: Send + Sync + 'static {
    /// Keep items until due; durable on return.
    async fn park(&self, items: Vec<Enqueue>) -> Result<()>;
    /// Whether `node` is the one that moves due items: takes or renews a
    /// lease of `lease_ms` (false while another node holds it).
    async fn lead(&self, node: &str, lease_ms: i64) -> Result<bool>;
    /// Parked items due at `now`, up to `max`, oldest time bucket first, with
    /// the token that releases each.
    async fn due(&self, now: Millis, max: usize) -> Result<Vec<(String, Enqueue)>>;
    /// Forget items moved back to the log.
    async fn release(&self, tokens: Vec<String>) -> Result<()>;
}

/// A message's rows through `store` and its work through `queue`, both at
/// once ([`Queue::publish_message`] for a queue apart from its store).
pub async fn record_and_publish<Q: Queue + ?Sized>(queue: &Q, store: &dyn Store, message: &Message, items: Vec<Enqueue>) -> Result<()> {
    tokio::try_join!(store.record_message(message), queue.publish(items)).map(|_| ())
}

/// Where a dead letter sits: (partition, offset) on Kafka, (0, row id) in SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeadToken {
    pub partition: i32,
    pub offset: i64,
}

/// Records of what was accepted and what happened to it: messages,
/// deliveries, the ledger and idempotency keys.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Insert the message and one `queued` delivery per recipient. Replaying
    /// the same message is a no-op.
    async fn record_message(&self, message: &Message) -> Result<()>;
    /// Ids of the message's deliveries that were never attempted (`queued`).
    async fn queued_deliveries(&self, tenant: &str, message_id: &str) -> Result<Vec<String>>;
    /// [`Store::queued_deliveries`] of several messages (tenant, message id),
    /// answered in the same order: dispatch asks once per lease, not once per
    /// item. The default asks for each in turn, all at once.
    async fn queued_deliveries_of(&self, messages: &[(&str, &str)]) -> Result<Vec<Vec<String>>> {
        futures::future::try_join_all(messages.iter().map(|(t, m)| self.queued_deliveries(t, m))).await
    }
    /// Whether the delivery is waiting for exactly this retry attempt.
    async fn retry_due(&self, tenant: &str, delivery_id: &str, attempt: u32) -> Result<bool>;
    /// Apply status updates and append ledger entries, atomically. Replayed
    /// ledger entries (same id) are ignored.
    async fn record(&self, updates: Vec<DeliveryUpdate>, ledger: Vec<LedgerEntry>) -> Result<()>;
    async fn message(&self, tenant: &str, message_id: &str) -> Result<Option<MessageView>>;
    /// Find a delivery by the provider's id (for receipts).
    async fn delivery_by_provider_id(&self, tenant: &str, provider_id: &str) -> Result<Option<(String, DeliveryRecord)>>;
    async fn idempotency(&self, tenant: &str, key: &str, now: Millis) -> Result<Option<IdempotencyRecord>>;
    async fn put_idempotency(&self, record: IdempotencyRecord) -> Result<()>;
    /// Sum of signed ledger amounts for the tenant (its prepaid balance).
    async fn balance(&self, tenant: &str) -> Result<i64>;
    async fn ledger(&self, tenant: &str, limit: usize) -> Result<Vec<LedgerEntry>>;
    /// One page of the tenant's ledger entries in the query's period and
    /// order, each with the balance right after it, and how many match in
    /// all (the rules: `crate::store_query::LedgerQuery`).
    async fn ledger_page(&self, tenant: &str, query: &LedgerQuery) -> Result<LedgerPage>;
    /// One page of the deliveries of `message_ids` (the tenant's; unknown
    /// ones have none), in sending order or sorted, and how many there are
    /// (the rules: `crate::store_query::DeliveryQuery`).
    async fn deliveries_page(&self, tenant: &str, message_ids: &[String], query: &DeliveryQuery) -> Result<DeliveryPage>;
}

/// Configuration the admin service owns and the gateway reads: tenants, API
/// keys, sender accounts, templates, prices.
#[async_trait]
pub trait ConfigStore: Send + Sync + 'static {
    async fn upsert_tenant(&self, tenant: &Tenant) -> Result<()>;
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>>;
    async fn tenants(&self) -> Result<Vec<Tenant>>;
    /// Register an API key by its SHA-256 (keys themselves are never stored).
    async fn add_api_key(&self, tenant: &str, key_sha256: &str) -> Result<()>;
    async fn tenant_by_api_key(&self, key_sha256: &str) -> Result<Option<Tenant>>;
    async fn upsert_account(&self, account: &Account) -> Result<()>;
    async fn account(&self, tenant: &str, name: &str) -> Result<Option<Account>>;
    async fn accounts(&self, tenant: &str) -> Result<Vec<Account>>;
    async fn upsert_template(&self, template: &Template) -> Result<()>;
    async fn template(&self, tenant: &str, id: &str) -> Result<Option<Template>>;
    /// Price for the channel: the tenant's override, else the default (tenant "*").
    async fn price(&self, tenant: &str, channel: &str) -> Result<Option<Price>>;
    /// Set a price for a tenant, or the default when `tenant` is "*".
    async fn set_price(&self, tenant: &str, price: &Price) -> Result<()>;
    /// Revoke an API key; false if the tenant had no such key.
    async fn remove_api_key(&self, tenant: &str, key_sha256: &str) -> Result<bool>;
    /// Delete a sender account; false if there was none.
    async fn delete_account(&self, tenant: &str, name: &str) -> Result<bool>;

    /// Insert or replace a document.
    async fn put_doc(&self, doc: &Doc) -> Result<()>;
    /// Insert a document only if none has its (tenant, kind, id); false when
    /// one exists (unique claims: login names, sequence numbers).
    async fn create_doc(&self, doc: &Doc) -> Result<bool>;
    /// Replace a document only while its stored `updated_at` is still
    /// `expected` (compare-and-set); false when another writer changed or
    /// deleted it since it was read. `doc.updated_at` must differ from
    /// `expected` (the caller moves it forward).
    async fn replace_doc(&self, doc: &Doc, expected: Millis) -> Result<bool>;
    async fn doc(&self, tenant: &str, kind: &str, id: &str) -> Result<Option<Doc>>;
    /// All documents of a kind for a tenant, ordered by id.
    async fn docs(&self, tenant: &str, kind: &str) -> Result<Vec<Doc>>;
    /// One page of a kind's documents, filtered and sorted by body fields,
    /// with how many match in all (the rules: `crate::doc_query`; a query
    /// with an invalid field path is refused).
    async fn docs_page(&self, tenant: &str, kind: &str, query: &DocQuery) -> Result<DocPage>;
    /// False if there was none.
    async fn delete_doc(&self, tenant: &str, kind: &str, id: &str) -> Result<bool>;
}
