//! Conformance suites for the seams. A backend's test calls each suite with a
//! fresh handle; the suites use unique tenant ids so they can share a real
//! Kafka or CQL cluster with other runs.

use std::time::Duration;

use herald_core::model::{
    Account, Content, DeadLetter, DeliveryStatus, DeliveryUpdate, Doc, IdempotencyRecord, LedgerEntry, LedgerKind, Message, Price, RecipientSpec,
    Rendered, RetryJob, Template, Tenant, Work,
};
use herald_core::now_ms;
use herald_core::seams::{ConfigStore, Enqueue, Queue, Schedules, Store};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub fn message(tenant: &str, recipients: usize) -> Message {
    Message {
        id: unique("msg"),
        tenant: tenant.into(),
        channel: "webhook".into(),
        account: "hook".into(),
        content: Content { text: Some("hi {{ name }}".into()), ..Default::default() },
        template: None,
        variables: Default::default(),
        recipients: (0..recipients).map(|i| RecipientSpec { to: format!("r{i}"), variables: Default::default() }).collect(),
        metadata: Default::default(),
        accepted_at: now_ms(),
        send_at: None,
    }
}

fn enqueue(m: &Message, not_before: i64) -> Enqueue {
    Enqueue { key: m.tenant.clone(), not_before, work: Work::Message(m.clone()) }
}

/// Lease until `want` items of `tenant` are seen or `timeout` passes.
async fn lease_tenant(q: &dyn Queue, tenant: &str, want: usize, timeout: Duration) -> Vec<herald_core::seams::Leased> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < want && tokio::time::Instant::now() < deadline {
        for l in q.lease(64, 1_000, &[]).await.expect("lease") {
            if l.work.tenant() == tenant {
                got.push(l);
            }
        }
        if got.len() < want {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    got
}

/// Queue: durability of publish, scheduling, leases, redelivery, ack.
pub async fn queue_suite(q: &dyn Queue) {
    let tenant = unique("qt");
    let now = now_ms();
    let a = message(&tenant, 1);
    let b = message(&tenant, 2);
    let later = message(&tenant, 1);
    q.publish(vec![enqueue(&a, now), enqueue(&b, now), enqueue(&later, now + 1_500)]).await.expect("publish");
    assert!(q.depth().await.expect("depth") >= 3, "depth counts scheduled items too");

    let got = lease_tenant(q, &tenant, 2, Duration::from_secs(10)).await;
    let ids: Vec<_> = got
        .iter()
        .map(|l| match &l.work {
            Work::Message(m) => m.id.clone(),
            _ => panic!("retry?"),
        })
        .collect();
    assert_eq!(ids, vec![a.id.clone(), b.id.clone()], "due items in publish order, scheduled one held back");
    assert_eq!(got[0].work, Work::Message(a.clone()), "payload round-trips");
    assert!(got.iter().all(|l| l.redeliveries == 0));

    // a is acked; b is not, so its lease (1 s) runs out and it comes back.
    q.ack(vec![got[0].token.clone()]).await.expect("ack");
    let again = lease_tenant(q, &tenant, 2, Duration::from_secs(10)).await;
    let mut again_ids: Vec<_> = again
        .iter()
        .map(|l| match &l.work {
            Work::Message(m) => m.id.clone(),
            _ => panic!(),
        })
        .collect();
    again_ids.sort();
    let mut want = vec![b.id.clone(), later.id.clone()];
    want.sort();
    assert_eq!(again_ids, want, "unacked item redelivered, scheduled item now due, acked item gone");
    let b_again = again.iter().find(|l| matches!(&l.work, Work::Message(m) if m.id == b.id)).unwrap();
    assert_eq!(b_again.redeliveries, 1);
    q.ack(again.iter().map(|l| l.token.clone()).collect()).await.expect("ack");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(lease_tenant(q, &tenant, 1, Duration::from_millis(300)).await.is_empty(), "acked items never return");

    fair_leases(q).await;

    // Dead letters: durable on append, read oldest first without removal,
    // dropped from the head. (The suite's queue is fresh: the list starts empty.)
    let letter = |i: usize| DeadLetter {
        job: RetryJob {
            message_id: b.id.clone(),
            tenant: tenant.clone(),
            channel: "webhook".into(),
            account: "hook".into(),
            delivery: Rendered {
                delivery_id: b.delivery_id(i),
                recipient: format!("r{i}"),
                subject: None,
                text: "hi".into(),
                html: None,
                metadata: Default::default(),
            },
            attempt: 5,
            due_at: now,
            history: Vec::new(),
        },
        reason: format!("HTTP 503 #{i}"),
        dead_at: now,
    };
    assert!(q.dead_letters(10).await.expect("dead letters").is_empty());
    q.dead_letter(vec![letter(0), letter(1)]).await.expect("dead letter");
    q.dead_letter(vec![letter(2)]).await.expect("dead letter");
    let all = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(all.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(), vec![letter(0), letter(1), letter(2)]);
    let head = q.dead_letters(2).await.expect("dead letters");
    assert_eq!(head.len(), 2, "reading does not remove");
    q.drop_dead(head.iter().map(|(t, _)| *t).collect()).await.expect("drop");
    let rest = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(rest.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(), vec![letter(2)]);
    q.drop_dead(rest.iter().map(|(t, _)| *t).collect()).await.expect("drop");
    assert!(q.dead_letters(10).await.expect("dead letters").is_empty());
}

fn message_id(l: &herald_core::seams::Leased) -> String {
    match &l.work {
        Work::Message(m) => m.id.clone(),
        w => panic!("{w:?}"),
    }
}

/// Publish `items`, due in two seconds, and wait until they are: meanwhile
/// leases (which take nothing, as nothing else is due) give a log-based
/// queue the time to read them, so the next lease sees them all at once.
async fn publish_due_soon(q: &dyn Queue, items: &[&Message]) {
    let due = now_ms() + 2_000;
    q.publish(items.iter().map(|m| enqueue(m, due)).collect()).await.expect("publish");
    while now_ms() < due - 300 {
        assert!(q.lease(64, 1_000, &[]).await.expect("lease").is_empty(), "nothing else is due");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis((due - now_ms()).max(0) as u64 + 50)).await;
}

/// Fairness between tenants (queue keys): skipped tenants are left as they
/// are; one tenant's backlog does not push another's item out of a batch.
async fn fair_leases(q: &dyn Queue) {
    // A skipped tenant's items are not leased, and a later lease without the
    // skip hands them out as first deliveries, in order.
    let (skipped, other) = (unique("qs"), unique("qo"));
    let (s1, s2, o1) = (message(&skipped, 1), message(&skipped, 1), message(&other, 1));
    publish_due_soon(q, &[&s1, &s2, &o1]).await;
    let got = q.lease(64, 60_000, std::slice::from_ref(&skipped)).await.expect("lease");
    assert_eq!(got.iter().map(message_id).collect::<Vec<_>>(), vec![o1.id.clone()], "only the tenant not skipped");
    let again = q.lease(64, 60_000, &[]).await.expect("lease");
    assert_eq!(again.iter().map(message_id).collect::<Vec<_>>(), vec![s1.id.clone(), s2.id.clone()], "the skipped tenant's items, in order");
    assert!(again.iter().all(|l| l.redeliveries == 0), "skipping is not a delivery");
    q.ack(got.iter().chain(&again).map(|l| l.token.clone()).collect()).await.expect("ack");

    // Tenant `big` has many due items, `small` one: a batch of two holds
    // one of each (the oldest of `big`'s).
    let (big, small) = (unique("qb"), unique("qm"));
    let backlog: Vec<Message> = (0..40).map(|_| message(&big, 1)).collect();
    let lone = message(&small, 1);
    publish_due_soon(q, &backlog.iter().chain([&lone]).collect::<Vec<_>>()).await;
    let two = q.lease(2, 60_000, &[]).await.expect("lease");
    let mut ids = two.iter().map(message_id).collect::<Vec<_>>();
    ids.sort();
    let mut want = vec![backlog[0].id.clone(), lone.id.clone()];
    want.sort();
    assert_eq!(ids, want, "one of each tenant, not two of the bigger backlog");
    let mut tokens: Vec<_> = two.iter().map(|l| l.token.clone()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokens.len() < 1 + backlog.len() && tokio::time::Instant::now() < deadline {
        tokens.extend(q.lease(64, 60_000, &[]).await.expect("lease").into_iter().map(|l| l.token));
    }
    assert_eq!(tokens.len(), 1 + backlog.len(), "the rest of the backlog");
    q.ack(tokens).await.expect("ack");
}

/// Schedules: parked items come back when due (at least once until
/// released), in due order, bounded by `max`; one leader at a time. Needs a
/// fresh store (it reads every due item).
pub async fn schedules_suite(s: &dyn Schedules) {
    let tenant = unique("sc");
    let now = now_ms();
    let (past, soon, later) = (message(&tenant, 1), message(&tenant, 2), message(&tenant, 1));
    s.park(vec![enqueue(&later, now + 120_000), enqueue(&soon, now + 600), enqueue(&past, now - 1_000)]).await.expect("park");
    let ids = |due: &[(String, Enqueue)]| -> Vec<String> {
        due.iter()
            .map(|(_, e)| match &e.work {
                Work::Message(m) => m.id.clone(),
                w => panic!("{w:?}"),
            })
            .collect()
    };

    let due = s.due(now, 10).await.expect("due");
    assert_eq!(ids(&due), vec![past.id.clone()], "only what is due");
    assert_eq!((due[0].1.key.as_str(), due[0].1.not_before), (tenant.as_str(), now - 1_000));
    assert_eq!(due[0].1.work, Work::Message(past.clone()), "payload round-trips");

    tokio::time::sleep(Duration::from_millis(700)).await;
    let due = s.due(now_ms(), 10).await.expect("due");
    assert_eq!(ids(&due), vec![past.id.clone(), soon.id.clone()], "in due order; not released yet, so again");
    assert_eq!(ids(&s.due(now_ms(), 1).await.expect("due")).len(), 1, "max");
    s.release(due.into_iter().map(|(t, _)| t).collect()).await.expect("release");
    assert!(s.due(now_ms(), 10).await.expect("due").is_empty(), "released items are gone");

    // Two minutes on: the later bucket.
    let due = s.due(now + 121_000, 10).await.expect("due");
    assert_eq!(ids(&due), vec![later.id.clone()]);
    s.release(due.into_iter().map(|(t, _)| t).collect()).await.expect("release");
    assert!(s.due(now + 121_000, 10).await.expect("due").is_empty());
    assert!(s.release(vec!["not a token".into()]).await.is_err(), "a bad token is an error");

    // One leader at a time; the lease runs out.
    let (a, b) = (unique("node"), unique("node"));
    assert!(s.lead(&a, 1_000).await.expect("lead"));
    assert!(!s.lead(&b, 1_000).await.expect("lead"), "held by a");
    assert!(s.lead(&a, 1_000).await.expect("lead"), "a renews");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(s.lead(&b, 1_000).await.expect("lead"), "a's lease ran out");
}

fn update(m: &Message, i: usize, status: DeliveryStatus, attempts: u32) -> DeliveryUpdate {
    DeliveryUpdate {
        delivery_id: m.delivery_id(i),
        message_id: m.id.clone(),
        tenant: m.tenant.clone(),
        status,
        attempts,
        detail: Some(format!("{status:?}")),
        provider_id: Some(format!("p-{}", m.delivery_id(i))),
        at: now_ms(),
    }
}

fn debit(m: &Message, i: usize, amount: i64) -> LedgerEntry {
    LedgerEntry {
        id: format!("{}:debit", m.delivery_id(i)),
        tenant: m.tenant.clone(),
        kind: LedgerKind::Debit,
        channel: m.channel.clone(),
        account: m.account.clone(),
        delivery_id: Some(m.delivery_id(i)),
        units: 1,
        amount_minor: amount,
        currency: "CNY".into(),
        at: now_ms(),
    }
}

/// Store: message records, delivery state machine, ledger, idempotency, tenant isolation.
pub async fn store_suite(s: &dyn Store) {
    let tenant = unique("st");
    let m = message(&tenant, 3);
    s.record_message(&m).await.expect("record");
    s.record_message(&m).await.expect("replay is a no-op");
    let view = s.message(&tenant, &m.id).await.unwrap().expect("message");
    assert_eq!(view.deliveries.len(), 3);
    assert!(view.deliveries.iter().all(|d| d.status == DeliveryStatus::Queued && d.attempts == 0));
    assert_eq!(view.deliveries[2].recipient, "r2");
    assert!(s.message("other-tenant", &m.id).await.unwrap().is_none(), "tenant-scoped");
    assert_eq!(s.queued_deliveries(&tenant, &m.id).await.unwrap(), vec![m.delivery_id(0), m.delivery_id(1), m.delivery_id(2)]);

    let ledger = vec![debit(&m, 0, 5)];
    let ups = vec![update(&m, 0, DeliveryStatus::Sent, 1), update(&m, 1, DeliveryStatus::Retrying, 1), update(&m, 2, DeliveryStatus::Failed, 1)];
    s.record(ups.clone(), ledger.clone()).await.expect("record outcomes");
    s.record(ups, ledger).await.expect("replayed record");
    assert_eq!(s.queued_deliveries(&tenant, &m.id).await.unwrap(), Vec::<String>::new());
    assert!(s.retry_due(&tenant, &m.delivery_id(1), 2).await.unwrap());
    assert!(!s.retry_due(&tenant, &m.delivery_id(1), 3).await.unwrap());
    assert!(!s.retry_due(&tenant, &m.delivery_id(0), 2).await.unwrap());
    assert_eq!(s.balance(&tenant).await.unwrap(), -5, "replayed ledger entry counted once");

    // A receipt upgrades sent→delivered; a late "sent" does not downgrade it.
    s.record(vec![update(&m, 0, DeliveryStatus::Delivered, 1)], vec![]).await.unwrap();
    s.record(vec![update(&m, 0, DeliveryStatus::Sent, 1)], vec![]).await.unwrap();
    let view = s.message(&tenant, &m.id).await.unwrap().unwrap();
    assert_eq!(view.deliveries[0].status, DeliveryStatus::Delivered);
    // A read receipt beats a late delivery report.
    s.record(vec![update(&m, 0, DeliveryStatus::Read, 1)], vec![]).await.unwrap();
    s.record(vec![update(&m, 0, DeliveryStatus::Delivered, 1)], vec![]).await.unwrap();
    let view = s.message(&tenant, &m.id).await.unwrap().unwrap();
    assert_eq!(view.deliveries[0].status, DeliveryStatus::Read);
    assert_eq!(view.deliveries[0].cost_minor, 5);
    assert_eq!(view.deliveries[1].cost_minor, 0);
    // Retries run out: dead. A late retry of an earlier attempt does not revive
    // it; a re-drive (retrying at the attempts it died with) does.
    s.record(vec![update(&m, 1, DeliveryStatus::Dead, 3)], vec![]).await.unwrap();
    s.record(vec![update(&m, 1, DeliveryStatus::Retrying, 2)], vec![]).await.unwrap();
    let view = s.message(&tenant, &m.id).await.unwrap().unwrap();
    assert_eq!((view.deliveries[1].status, view.deliveries[1].attempts), (DeliveryStatus::Dead, 3));
    assert!(!s.retry_due(&tenant, &m.delivery_id(1), 3).await.unwrap());
    s.record(vec![update(&m, 1, DeliveryStatus::Retrying, 3)], vec![]).await.unwrap();
    let view = s.message(&tenant, &m.id).await.unwrap().unwrap();
    assert_eq!((view.deliveries[1].status, view.deliveries[1].attempts), (DeliveryStatus::Retrying, 3));
    assert!(s.retry_due(&tenant, &m.delivery_id(1), 4).await.unwrap());
    let (mid, rec) = s.delivery_by_provider_id(&tenant, &format!("p-{}", m.delivery_id(0))).await.unwrap().expect("by provider id");
    assert_eq!((mid.as_str(), rec.id.as_str()), (m.id.as_str(), m.delivery_id(0).as_str()));
    assert!(s.delivery_by_provider_id("other", &format!("p-{}", m.delivery_id(0))).await.unwrap().is_none());
    // A provider id that is the delivery id itself (webhook, e-mail).
    let mut own = update(&m, 2, DeliveryStatus::Failed, 1);
    own.provider_id = Some(m.delivery_id(2));
    s.record(vec![own], vec![]).await.unwrap();
    let (mid, rec) = s.delivery_by_provider_id(&tenant, &m.delivery_id(2)).await.unwrap().expect("by its own id");
    assert_eq!((mid.as_str(), rec.id.as_str()), (m.id.as_str(), m.delivery_id(2).as_str()));
    assert!(s.delivery_by_provider_id(&tenant, &m.delivery_id(1)).await.unwrap().is_none(), "a delivery whose provider id is another");
    assert!(s.delivery_by_provider_id("other", &m.delivery_id(2)).await.unwrap().is_none());

    let mut credit = debit(&m, 0, 2);
    credit.id = format!("{}:credit", m.delivery_id(0));
    credit.kind = LedgerKind::Credit;
    s.record(vec![], vec![credit]).await.unwrap();
    assert_eq!(s.balance(&tenant).await.unwrap(), -3);
    let entries = s.ledger(&tenant, 10).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(herald_core::ledger::net(&entries), -3);

    let now = now_ms();
    let rec = IdempotencyRecord {
        tenant: tenant.clone(),
        key: "k1".into(),
        request_hash: "h".into(),
        message_id: m.id.clone(),
        response: "{}".into(),
        expires_at: now + 60_000,
    };
    s.put_idempotency(rec.clone()).await.unwrap();
    assert_eq!(s.idempotency(&tenant, "k1", now).await.unwrap(), Some(rec.clone()));
    assert_eq!(s.idempotency("other", "k1", now).await.unwrap(), None);
    assert_eq!(s.idempotency(&tenant, "k1", now + 61_000).await.unwrap(), None, "expired keys are gone");

    ledger_page_suite(s).await;
    deliveries_page_suite(s).await;
}

/// `ledger_page`: paging past 1 000 entries with the total, the period, the
/// kinds, every sort, the balance after each entry; every store answers as
/// the in-memory reference (`LedgerQuery::apply`) does.
async fn ledger_page_suite(s: &dyn Store) {
    use herald_core::store_query::{LedgerQuery, LedgerSort};
    let tenant = unique("lp");
    // 2026-01-01T00:00Z, then an entry every two hours (pairs share a time): three months.
    let base = 1_767_225_600_000_i64;
    let entries: Vec<LedgerEntry> = (0..1_100_i64)
        .map(|i| {
            let (kind, id) = match i {
                i if i % 10 == 0 => (LedgerKind::TopUp, format!("top_up:{i:05}")),
                i if i % 7 == 0 => (LedgerKind::Credit, format!("m{}.{}:credit", i / 50, i % 50)),
                i => (LedgerKind::Debit, format!("m{}.{}:debit", i / 50, i % 50)),
            };
            LedgerEntry {
                id,
                tenant: tenant.clone(),
                kind,
                channel: ["sms", "email", "voice"][(i % 3) as usize].into(),
                account: "a".into(),
                delivery_id: (kind != LedgerKind::TopUp).then(|| format!("m{}.{}", i / 50, i % 50)),
                units: (i % 4) as u32 + 1,
                amount_minor: if kind == LedgerKind::TopUp { 1_000 } else { (i * 37) % 90 + 1 },
                currency: "CNY".into(),
                at: base + (i / 2) * 7_200_000,
            }
        })
        .collect();
    for chunk in entries.chunks(100) {
        s.record(vec![], chunk.to_vec()).await.expect("record entries");
    }
    let all = s.ledger(&tenant, 10_000).await.unwrap();
    assert_eq!(all.len(), 1_100);
    let balance = s.balance(&tenant).await.unwrap();
    assert_eq!(balance, herald_core::ledger::net(&entries));

    let first = s.ledger_page(&tenant, &LedgerQuery::default()).await.unwrap();
    assert_eq!((first.total, first.lines.len()), (1_100, 50), "the total counts every entry");
    assert_eq!(first.lines[0].balance_minor, balance, "the newest entry leaves the current balance");
    let deep = LedgerQuery { offset: 1_050, limit: 100, ..LedgerQuery::default() };
    let page = s.ledger_page(&tenant, &deep).await.unwrap();
    assert_eq!((page.total, page.lines.len()), (1_100, 50), "past 1 000 rows, to the last");
    let oldest = &page.lines[49];
    assert_eq!(oldest.balance_minor, oldest.entry.kind.signed(oldest.entry.amount_minor), "the oldest entry leaves its own amount");

    let january = (base, base + 31 * 86_400_000);
    let q = |sort: LedgerSort, descending: bool, offset: u64, limit: u64, top_ups: bool, period: (i64, i64)| LedgerQuery {
        start: period.0,
        end: period.1,
        top_ups,
        sort,
        descending,
        offset,
        limit,
    };
    let open = (i64::MIN, i64::MAX);
    let cases = vec![
        q(LedgerSort::At, true, 0, 50, true, open),
        q(LedgerSort::At, true, 1_000, 200, true, open),
        q(LedgerSort::At, false, 0, 30, true, open),
        q(LedgerSort::At, true, 100, 50, false, open),
        q(LedgerSort::At, true, 0, 500, true, january),
        q(LedgerSort::At, false, 300, 50, false, january),
        q(LedgerSort::AmountMinor, true, 0, 40, false, open),
        q(LedgerSort::AmountMinor, false, 990, 40, true, open),
        q(LedgerSort::Units, true, 10, 40, true, january),
        q(LedgerSort::Channel, false, 500, 40, true, open),
        q(LedgerSort::Channel, true, 0, 40, false, open),
        q(LedgerSort::At, true, 5_000, 50, true, open),
        q(LedgerSort::At, true, 0, 50, true, (base + 365 * 86_400_000, i64::MAX)),
    ];
    for query in cases {
        let got = s.ledger_page(&tenant, &query).await.unwrap();
        assert_eq!(got, query.apply(&all, balance), "{query:?}");
    }
    let spending = s.ledger_page(&tenant, &q(LedgerSort::At, true, 0, 1, false, open)).await.unwrap();
    assert_eq!(spending.total, 990, "top-ups left out");
    assert_eq!(s.ledger_page("other-tenant", &LedgerQuery::default()).await.unwrap().total, 0, "tenant-scoped");
}

/// `deliveries_page`: the deliveries of several messages, in sending order
/// or sorted (recipients in pinyin order), paged with the total.
async fn deliveries_page_suite(s: &dyn Store) {
    use herald_core::store_query::{DeliveryQuery, DeliverySort};
    let tenant = unique("dp");
    let names = ["张三", "李四", "阿明", "bob", "Alice", "王五"];
    let mut one = message(&tenant, 30);
    for (i, r) in one.recipients.iter_mut().enumerate() {
        r.to = format!("{}{}", names[i % names.len()], i / names.len());
    }
    let two = message(&tenant, 7);
    for m in [&one, &two] {
        s.record_message(m).await.unwrap();
    }
    let statuses = [DeliveryStatus::Sent, DeliveryStatus::Failed, DeliveryStatus::Delivered, DeliveryStatus::Retrying];
    let ups: Vec<DeliveryUpdate> = (0..30).filter(|i| i % 5 != 4).map(|i| update(&one, i, statuses[i % 4], (i % 3) as u32 + 1)).collect();
    let costs: Vec<LedgerEntry> = (0..30).filter(|i| i % 3 == 0).map(|i| debit(&one, i, (i as i64 * 13) % 7 + 1)).collect();
    s.record(ups, costs).await.unwrap();
    s.record(vec![update(&two, 1, DeliveryStatus::Sent, 1)], vec![]).await.unwrap();

    let ids = vec![two.id.clone(), one.id.clone(), two.id.clone(), "unknown".to_string()];
    let mut views = vec![];
    for id in [&two.id, &one.id] {
        views.push((id.clone(), s.message(&tenant, id).await.unwrap().unwrap().deliveries));
    }
    let q = |sort: Option<DeliverySort>, descending: bool, offset: u64, limit: u64| DeliveryQuery { sort, descending, offset, limit };
    let all = s.deliveries_page(&tenant, &ids, &q(None, false, 0, 100)).await.unwrap();
    assert_eq!(all.total, 37);
    assert_eq!(all.deliveries[0].1.id, two.delivery_id(0), "the messages in the order given, each in sending order");
    assert_eq!(all.deliveries[7].1.id, one.delivery_id(0));
    let by_name = s.deliveries_page(&tenant, &[one.id.clone()], &q(Some(DeliverySort::Recipient), false, 0, 100)).await.unwrap();
    let order: Vec<&str> = by_name.deliveries.iter().map(|(_, d)| d.recipient.as_str()).collect();
    assert_eq!(&order[..6], ["阿明0", "阿明1", "阿明2", "阿明3", "阿明4", "Alice0"], "pinyin order, a before b");
    let li = order.iter().position(|r| r.starts_with("李四")).unwrap();
    let zhang = order.iter().position(|r| r.starts_with("张三")).unwrap();
    assert!(li < zhang, "李四 (li) before 张三 (zhang)");
    let mut cases = vec![q(None, true, 0, 10), q(None, false, 30, 10), q(None, false, 0, 0)];
    for sort in [DeliverySort::Recipient, DeliverySort::Status, DeliverySort::Attempts, DeliverySort::CostMinor, DeliverySort::UpdatedAt] {
        cases.push(q(Some(sort), false, 0, 50));
        cases.push(q(Some(sort), true, 5, 12));
    }
    for query in cases {
        let got = s.deliveries_page(&tenant, &ids, &query).await.unwrap();
        assert_eq!(got, query.apply(&views), "{query:?}");
    }
    assert_eq!(s.deliveries_page("other-tenant", &ids, &q(None, false, 0, 10)).await.unwrap().total, 0, "tenant-scoped");
}

/// ConfigStore: tenants, API keys, accounts, templates, price overrides.
pub async fn config_suite(c: &dyn ConfigStore) {
    let t = Tenant { id: unique("ct"), name: "Acme".into(), currency: "CNY".into() };
    c.upsert_tenant(&t).await.unwrap();
    c.upsert_tenant(&Tenant { name: "Acme Ltd".into(), ..t.clone() }).await.unwrap();
    assert_eq!(c.tenant(&t.id).await.unwrap().unwrap().name, "Acme Ltd");
    assert!(c.tenants().await.unwrap().iter().any(|x| x.id == t.id));

    let key = unique("keyhash");
    c.add_api_key(&t.id, &key).await.unwrap();
    assert_eq!(c.tenant_by_api_key(&key).await.unwrap().map(|x| x.id), Some(t.id.clone()));
    assert!(c.tenant_by_api_key("nope").await.unwrap().is_none());

    let acc = Account {
        tenant: t.id.clone(),
        name: "hook".into(),
        plugin: "webhook".into(),
        config: serde_json::json!({"url": "http://127.0.0.1:1/x", "secret": "s"}),
        rate_per_sec: Some(10),
    };
    c.upsert_account(&acc).await.unwrap();
    assert_eq!(c.account(&t.id, "hook").await.unwrap(), Some(acc.clone()));
    assert_eq!(c.accounts(&t.id).await.unwrap(), vec![acc]);
    assert!(c.account("other", "hook").await.unwrap().is_none());
    assert!(!c.delete_account("other", "hook").await.unwrap());
    assert!(c.delete_account(&t.id, "hook").await.unwrap());
    assert!(c.account(&t.id, "hook").await.unwrap().is_none());
    assert!(!c.delete_account(&t.id, "hook").await.unwrap(), "deleting twice reports nothing deleted");

    assert!(!c.remove_api_key("other-tenant", &key).await.unwrap(), "a tenant cannot revoke another's key");
    assert!(c.tenant_by_api_key(&key).await.unwrap().is_some());
    assert!(c.remove_api_key(&t.id, &key).await.unwrap());
    assert!(c.tenant_by_api_key(&key).await.unwrap().is_none());

    let tpl =
        Template { tenant: t.id.clone(), id: "welcome".into(), content: Content { subject: Some("Hi".into()), text: Some("t".into()), html: None } };
    c.upsert_template(&tpl).await.unwrap();
    assert_eq!(c.template(&t.id, "welcome").await.unwrap(), Some(tpl));
    assert!(c.template(&t.id, "missing").await.unwrap().is_none());

    let channel = unique("ch");
    assert!(c.price(&t.id, &channel).await.unwrap().is_none());
    c.set_price("*", &Price { channel: channel.clone(), unit_minor: 5, currency: "CNY".into() }).await.unwrap();
    assert_eq!(c.price(&t.id, &channel).await.unwrap().unwrap().unit_minor, 5);
    c.set_price(&t.id, &Price { channel: channel.clone(), unit_minor: 3, currency: "CNY".into() }).await.unwrap();
    assert_eq!(c.price(&t.id, &channel).await.unwrap().unwrap().unit_minor, 3, "tenant override wins");
    assert_eq!(c.price("another", &channel).await.unwrap().unwrap().unit_minor, 5);

    docs_suite(c, &t.id).await;
    docs_page_suite(c, &t.id).await;
}

/// `docs_page`: paging past 200, sorting on body fields (numbers, text,
/// nested, missing), filters, the total; every store answers as the
/// in-memory reference (`DocQuery::apply`) does.
async fn docs_page_suite(c: &dyn ConfigStore, tenant: &str) {
    use herald_core::doc_query::{DocFilter, DocQuery};
    use serde_json::json;
    let kind = "person";
    let docs: Vec<Doc> = (0..250_i64)
        .map(|i| {
            let first = ["Alice", "bob", "Ćhen", "张三"][(i % 4) as usize];
            let mode = ["now", "at", "cron"][(i % 3) as usize];
            let mut body = json!({
                "name": format!("{first} {:03}", (i * 37) % 250),
                "number": format!("P{:06}", i + 1),
                "unit": format!("u{}", i % 5),
                "enabled": i % 3 != 0,
                "schedule": {"mode": mode},
                "score": if i % 10 == 0 { json!(null) } else { json!((i * 7919) % 97) },
            });
            if i % 7 == 0 {
                body.as_object_mut().unwrap().remove("score");
                body["message_id"] = json!(format!("m{i}"));
            }
            Doc { tenant: tenant.into(), kind: kind.into(), id: format!("id{:04}", (i * 101) % 250), body, updated_at: 1 }
        })
        .collect();
    for chunk in docs.chunks(25) {
        for r in futures::future::join_all(chunk.iter().map(|d| c.put_doc(d))).await {
            r.unwrap();
        }
    }
    c.put_doc(&Doc { tenant: "another".into(), ..docs[0].clone() }).await.unwrap();
    let all = c.docs(tenant, kind).await.unwrap();
    assert_eq!(all.len(), 250);

    let q = |sort: Option<&str>, descending: bool, offset: u64, limit: u64, filters: Vec<DocFilter>| DocQuery {
        filters,
        sort: sort.map(Into::into),
        descending,
        offset,
        limit,
    };
    let page = c.docs_page(tenant, kind, &q(Some("number"), false, 200, 50, vec![])).await.unwrap();
    assert_eq!(page.total, 250, "no cap at 200");
    assert_eq!(page.docs.len(), 50);
    assert_eq!(page.docs[0].body["number"], "P000201");
    assert_eq!(page.docs[49].body["number"], "P000250", "the last page");
    let last = c.docs_page(tenant, kind, &q(Some("number"), true, 240, 50, vec![])).await.unwrap();
    assert_eq!((last.total, last.docs.len()), (250, 10));
    assert_eq!(last.docs[9].body["number"], "P000001");
    let past = c.docs_page(tenant, kind, &q(None, false, 10_000, 50, vec![])).await.unwrap();
    assert_eq!((past.total, past.docs.len()), (250, 0), "past the end: the total still");
    let bad = q(Some("name') OR 1=1 --"), false, 0, 10, vec![]);
    assert!(c.docs_page(tenant, kind, &bad).await.is_err(), "an invalid field path is refused");

    let contains = |t: &str| DocFilter::Contains { fields: vec!["name".into(), "number".into()], text: t.into() };
    let unit_in = |v: &[&str]| DocFilter::In { field: "unit".into(), values: v.iter().map(|s| json!(s)).collect() };
    let cases = vec![
        q(None, false, 0, 50, vec![]),
        q(None, true, 50, 50, vec![]),
        q(Some("name"), false, 50, 50, vec![]),
        q(Some("name"), true, 200, 50, vec![]),
        q(Some("score"), false, 0, 30, vec![]),
        q(Some("score"), true, 230, 50, vec![]),
        q(Some("schedule.mode"), false, 100, 20, vec![]),
        q(Some("enabled"), true, 0, 20, vec![]),
        q(Some("number"), false, 0, 200, vec![contains("BOB")]),
        q(Some("number"), false, 0, 10, vec![contains("张")]),
        q(Some("number"), false, 0, 10, vec![contains("ćhen")]),
        q(Some("name"), false, 10, 10, vec![contains("P00012"), unit_in(&["u1", "u2"])]),
        q(None, false, 0, 10, vec![unit_in(&[])]),
        q(Some("number"), true, 0, 300, vec![DocFilter::In { field: "enabled".into(), values: vec![json!(false)] }]),
        q(
            Some("number"),
            false,
            5,
            50,
            vec![
                DocFilter::Null { field: "message_id".into(), null: true },
                DocFilter::In { field: "schedule.mode".into(), values: vec![json!("at")] },
            ],
        ),
        q(Some("number"), false, 0, 50, vec![DocFilter::Null { field: "message_id".into(), null: false }]),
        q(Some("number"), false, 0, 50, vec![DocFilter::Null { field: "score".into(), null: true }]),
    ];
    for query in cases {
        let got = c.docs_page(tenant, kind, &query).await.unwrap();
        assert_eq!(got, query.apply(all.clone()), "{query:?}");
    }
    let filtered = c.docs_page(tenant, kind, &q(None, false, 0, 50, vec![unit_in(&["u3"])])).await.unwrap();
    assert_eq!(filtered.total, 50, "a filter narrows the total");
}

async fn docs_suite(c: &dyn ConfigStore, tenant: &str) {
    let doc = |id: &str, n: i64| Doc {
        tenant: tenant.into(),
        kind: "unit".into(),
        id: id.into(),
        body: serde_json::json!({"name": format!("unit {id}"), "n": n, "nested": {"list": [1, 2]}}),
        updated_at: 1_700_000_000_000 + n,
    };
    assert!(c.docs(tenant, "unit").await.unwrap().is_empty());
    assert!(c.create_doc(&doc("b", 1)).await.unwrap());
    assert!(!c.create_doc(&doc("b", 2)).await.unwrap(), "create never overwrites");
    assert_eq!(c.doc(tenant, "unit", "b").await.unwrap(), Some(doc("b", 1)));
    c.put_doc(&doc("b", 3)).await.unwrap();
    c.put_doc(&doc("a", 4)).await.unwrap();
    assert_eq!(c.docs(tenant, "unit").await.unwrap(), vec![doc("a", 4), doc("b", 3)], "ordered by id");
    assert!(c.docs(tenant, "user").await.unwrap().is_empty(), "kinds are separate");
    assert!(c.doc("other", "unit", "a").await.unwrap().is_none(), "tenants are separate");
    assert!(!c.delete_doc("other", "unit", "a").await.unwrap());
    assert!(c.delete_doc(tenant, "unit", "a").await.unwrap());
    assert!(!c.delete_doc(tenant, "unit", "a").await.unwrap());
    assert_eq!(c.docs(tenant, "unit").await.unwrap(), vec![doc("b", 3)]);
    // A unique claim: many concurrent creates of one id, exactly one wins.
    let contenders: Vec<Doc> = (0..8).map(|i| doc("claim", i)).collect();
    let claims = futures::future::join_all(contenders.iter().map(|d| c.create_doc(d))).await;
    assert_eq!(claims.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
    // Compare-and-set: a write based on a stale read is refused.
    assert!(c.replace_doc(&doc("b", 5), 1_700_000_000_003).await.unwrap());
    assert!(!c.replace_doc(&doc("b", 6), 1_700_000_000_003).await.unwrap(), "stale: b changed since");
    assert_eq!(c.doc(tenant, "unit", "b").await.unwrap(), Some(doc("b", 5)));
    assert!(!c.replace_doc(&doc("gone", 7), 1_700_000_000_000).await.unwrap(), "no such document");
    assert!(c.doc(tenant, "unit", "gone").await.unwrap().is_none(), "a replace never creates");
    // Concurrent read-change-write through `Repo::update` loses no change.
    let repo = herald_core::docs::Repo::new(c, tenant);
    repo.put("counter", "c", &0u32).await.unwrap();
    let bumps = (0..8).map(|_| {
        repo.update::<u32>("counter", "c", |n| {
            *n += 1;
            Ok(())
        })
    });
    for r in futures::future::join_all(bumps).await {
        assert!(r.unwrap().is_some());
    }
    assert_eq!(repo.get::<u32>("counter", "c").await.unwrap(), Some(8), "every concurrent update counted");
    assert_eq!(repo.update::<u32>("counter", "none", |_| Ok(())).await.unwrap(), None);
    let refused = repo.update::<u32>("counter", "c", |_| Err(herald_core::ApiError::new(herald_core::error::ErrorKind::Conflict, "no", "no")));
    assert_eq!(refused.await.unwrap_err().code, "no");
    assert_eq!(repo.get::<u32>("counter", "c").await.unwrap(), Some(8), "a refused change writes nothing");
}
