//! Issue 17: bulk e-mail. Deliveries with identical content go out as one SMTP
//! transaction with many `RCPT TO` (at most `smtp.max_recipients_per_message`,
//! default 50), with a `To:` that names nobody; each recipient keeps its own
//! status and ledger entry from its own RCPT reply. Personalised content stays
//! one message per recipient, over at most `smtp.max_connections` connections.
//! Against a real SMTP server (aiosmtpd, tests/fixtures/smtp_sink.py).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{API_KEY, Gateway, eventually, tenant};
use crate::sinks::SmtpSink;

const PRICE: i64 = 2;

fn config(port: u16, smtp_extra: &str) -> String {
    format!(
        "[retry]\nmax_attempts = 3\nbase_ms = 50\nmax_ms = 200\n{}",
        tenant(
            "acme",
            API_KEY,
            &format!(
                "[[tenants.accounts]]\nname = \"mail\"\nplugin = \"email\"\n\
                 config = {{ from = \"news@acme.test\", smtp = {{ host = \"127.0.0.1\", port = {port}, tls = \"none\", \
                 username = \"mailer\", password = \"pa55word\", allow_plaintext_auth = true{smtp_extra} }} }}\n\
                 [[tenants.prices]]\nchannel = \"email\"\nunit_minor = {PRICE}\n"
            )
        )
    )
}

fn settled(v: &Value) -> bool {
    v["deliveries"].as_array().unwrap().iter().all(|d| !matches!(d["status"].as_str(), Some("queued" | "retrying")))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

/// 100 recipients, identical content (a shared variable), default
/// max_recipients_per_message = 50: two transactions of 50 envelope
/// recipients each. Two recipients are refused (550) and one deferred (451)
/// at RCPT: only they fail or retry; the 97 others are sent, each with its
/// own status and ledger debit.
#[tokio::test(flavor = "multi_thread")]
async fn identical_content_goes_as_two_transactions_of_50_with_per_recipient_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(dir.path(), "mailer", "pa55word");
    let gw = Gateway::start(dir.path(), &config(smtp.port, ""));
    let special: HashMap<usize, &str> = [(10, "reject-a"), (60, "reject-b"), (75, "defer-c")].into();
    let addrs: Vec<String> = (0..100)
        .map(|i| match special.get(&i) {
            Some(local) => format!("{local}@example.test"),
            None => format!("user{i}@example.test"),
        })
        .collect();
    let r = gw
        .send(&json!({
            "channel": "email",
            "content": {"subject": "Sale {{ code }}", "text": "Use code {{ code }} today.",
                        "html": "<p>Use code <b>{{ code }}</b></p>"},
            "variables": {"code": "SPRING"},
            "recipients": addrs.iter().map(|a| json!({"to": a})).collect::<Vec<_>>()
        }))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let v = gw.wait_message(&id, Duration::from_secs(60), settled).await;

    // One status per recipient, from its own RCPT reply.
    let deliveries = v["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 100);
    for (i, d) in deliveries.iter().enumerate() {
        let detail = d["detail"].as_str().unwrap_or("");
        match i {
            10 | 60 => {
                assert_eq!(d["status"], "failed", "{d}");
                assert!(detail.starts_with("550"), "{d}");
            }
            75 => {
                assert_eq!(d["status"], "dead", "{d}");
                assert!(detail.contains("451"), "{d}");
            }
            _ => {
                assert_eq!(d["status"], "sent", "{i}: {d}");
                assert!(detail.starts_with("250"), "{d}");
            }
        }
    }

    // Two transactions of 50 envelope recipients, in order; the server
    // stored each once with the recipients it accepted.
    eventually(Duration::from_secs(10), "two messages stored", || smtp.messages().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2, "the retries of defer-c reach no DATA");
    let mut attempted: Vec<Vec<String>> = msgs.iter().map(|m| strings(&m["rcpt_attempts"])).collect();
    attempted.sort_by_key(|a| addrs.iter().position(|x| *x == a[0]));
    assert_eq!(attempted[0], addrs[..50].to_vec());
    assert_eq!(attempted[1], addrs[50..].to_vec());
    let accepted: BTreeSet<String> = msgs.iter().flat_map(|m| strings(&m["rcpt_tos"])).collect();
    assert_eq!(accepted.len(), 97);
    for (i, a) in addrs.iter().enumerate() {
        assert_eq!(accepted.contains(a), !special.contains_key(&i), "{a}");
    }

    // No recipient sees another's address: the only addresses in the
    // headers are the sender's; To names nobody.
    for m in &msgs {
        assert_eq!(m["mail_from"], "news@acme.test");
        assert_eq!(m["headers"]["To"], "undisclosed-recipients:;", "{m}");
        assert!(m["headers"].get("Cc").is_none() && m["headers"].get("Bcc").is_none());
        assert!(m["headers"].get("X-Herald-Delivery").is_none(), "{m}");
        assert_eq!(m["headers"]["Subject"], "Sale SPRING");
        let visible = format!("{} {} {}", m["headers"], m["text"], m["html"]);
        for a in &addrs {
            assert!(!visible.contains(a.as_str()), "{a} visible in {visible}");
        }
        assert_eq!(m["text"].as_str().unwrap().trim(), "Use code SPRING today.");
    }
    let ids: BTreeSet<&str> = msgs.iter().map(|m| m["headers"]["Message-ID"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "each transaction its own Message-ID");

    // One ledger debit per sent recipient, each naming its own delivery.
    let ledger = gw.get("/v1/ledger?limit=1000", Some(API_KEY)).await.json();
    let entries = ledger["entries"].as_array().unwrap();
    let debited: BTreeSet<String> = entries.iter().filter(|e| e["kind"] == "debit").map(|e| e["delivery_id"].as_str().unwrap().to_string()).collect();
    let sent: BTreeSet<String> = (0..100).filter(|i| !special.contains_key(i)).map(|i| format!("{id}.{i}")).collect();
    assert_eq!(entries.len(), 97, "{ledger}");
    assert_eq!(debited, sent);
    assert_eq!(ledger["balance_minor"], -97 * PRICE);
    assert_eq!(v["cost_minor"], 97 * PRICE);
}

/// With max_recipients_per_message = 100 the same 100 recipients are one
/// transaction with 100 envelope recipients.
#[tokio::test(flavor = "multi_thread")]
async fn max_recipients_per_message_100_makes_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(dir.path(), "mailer", "pa55word");
    let gw = Gateway::start(dir.path(), &config(smtp.port, ", max_recipients_per_message = 100"));
    let addrs: Vec<String> = (0..100).map(|i| format!("r{i}@example.test")).collect();
    let r = gw
        .send(&json!({
            "channel": "email",
            "content": {"subject": "News", "text": "Same for all"},
            "recipients": addrs.iter().map(|a| json!({"to": a})).collect::<Vec<_>>()
        }))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let v = gw.wait_message(&id, Duration::from_secs(60), settled).await;
    assert!(v["deliveries"].as_array().unwrap().iter().all(|d| d["status"] == "sent"), "{v}");
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(strings(&msgs[0]["rcpt_tos"]), addrs);
    assert_eq!(msgs[0]["headers"]["To"], "undisclosed-recipients:;");
}

/// Personalised content: one message per recipient, each addressed to its
/// own recipient only, over at most max_connections (2) reused connections.
#[tokio::test(flavor = "multi_thread")]
async fn personalised_content_is_one_message_each_over_bounded_reused_connections() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(dir.path(), "mailer", "pa55word");
    let gw = Gateway::start(dir.path(), &config(smtp.port, ", max_connections = 2"));
    let n = 30;
    let mut ids = Vec::new();
    // Three messages, so connections are reused across batches.
    for round in 0..3 {
        let r = gw
            .send(&json!({
                "channel": "email",
                "content": {"subject": "Hi {{ name }}", "text": "Hello {{ name }}"},
                "recipients": (0..n / 3).map(|i| json!({"to": format!("p{round}x{i}@example.test"),
                                                       "variables": {"name": format!("P{round}-{i}")}}))
                    .collect::<Vec<_>>()
            }))
            .await;
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push(r.json()["id"].as_str().unwrap().to_string());
        let v = gw.wait_message(&ids[round], Duration::from_secs(60), settled).await;
        assert!(v["deliveries"].as_array().unwrap().iter().all(|d| d["status"] == "sent"), "{v}");
    }
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), n);
    for m in &msgs {
        let rcpt = strings(&m["rcpt_tos"]);
        assert_eq!(rcpt.len(), 1);
        assert_eq!(m["headers"]["To"].as_str().unwrap(), rcpt[0]);
        let name = m["headers"]["Subject"].as_str().unwrap().trim_start_matches("Hi ").to_string();
        let (round, i) = name.trim_start_matches('P').split_once('-').unwrap();
        assert_eq!(rcpt[0], format!("p{round}x{i}@example.test"), "its own content");
    }
    let peers: BTreeSet<i64> = msgs.iter().map(|m| m["peer_port"].as_i64().unwrap()).collect();
    assert!(!peers.is_empty() && peers.len() <= 2, "at most max_connections = 2 connections, reused across batches: {peers:?}");
}
