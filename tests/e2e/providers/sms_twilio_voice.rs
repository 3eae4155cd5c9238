//! twilio-voice against the fake Twilio of `sms_twilio` in its `Calls.json`
//! role: Basic auth, `To`/`From` checks (with the voice geographic
//! permissions), TwiML that must parse, the rate limit, and signed call status
//! callbacks.

use std::time::Duration;

use serde_json::{Value, json};

use super::sms_support::*;
use super::sms_twilio::{ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio, HOST, PUBLIC, spoken};
use crate::harness::{API_KEY, Gateway, tenant};

fn accounts() -> String {
    let acc = |name: &str, token: &str| {
        format!(
            "[[tenants.accounts]]\nname = \"{name}\"\nplugin = \"twilio-voice\"\nconfig = {{ account_sid = \"{ACCOUNT_SID}\", auth_token = \"{token}\", \
             from = \"{FROM}\", voice = \"Polly.Joanna\", language = \"en-US\", status_callback = \"{PUBLIC}/v1/callbacks/acme/{name}\" }}\n"
        )
    };
    format!("{}{}[[tenants.prices]]\nchannel = \"twilio-voice\"\nunit_minor = 20\n", acc("tv", AUTH_TOKEN), acc("tv-bad-token", "wrong"))
}

fn call(account: &str, text: &str, to: &[&str]) -> Value {
    let recipients: Vec<_> = to.iter().map(|t| json!({"to": t})).collect();
    json!({"channel": "twilio-voice", "account": account, "content": {"text": text}, "recipients": recipients})
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_voice_places_twiml_calls_and_checks_signed_call_status() {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(&[(HOST, &fake.url)], &tenant("acme", API_KEY, &accounts())));

    let text = "Your code is 1 2 3. <Press> 1 & \"hold\", it's fine";
    // A malformed number never reaches Twilio: the gateway refuses it at ingest.
    refused_at_ingest(&gw, &call("tv", text, &["+14155550100", "+1555"]), 1).await;
    assert!(fake.created().is_empty() && fake.errors().is_empty());

    // A well-formed number in a country the account's voice geographic
    // permissions leave out (only +1 here) fails alone, without retries.
    let id = send(&gw, &call("tv", text, &["+14155550100", "+8613800138000"])).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent", "failed"], "{v}");
    assert_eq!(
        delivery(&v, 1)["detail"],
        "Twilio 21215: Account not authorized to call +8613800138000. Perhaps you need to enable some \
         international permissions: https://www.twilio.com/console/voice/calls/geo-permissions/low-risk"
    );
    assert_eq!(delivery(&v, 1)["attempts"], 1);
    let created = fake.created();
    assert_eq!(created.len(), 1);
    let c = &created[0];
    assert!(c.sid.starts_with("CA"));
    assert_eq!(delivery(&v, 0)["provider_id"], c.sid.as_str());
    assert_eq!((c.params["To"].as_str(), c.params["From"].as_str()), ("+14155550100", FROM));
    assert!(c.params["Twiml"].starts_with("<Response><Say voice=\"Polly.Joanna\" language=\"en-US\">"), "{}", c.params["Twiml"]);
    assert_eq!(spoken(&c.params["Twiml"]).as_deref(), Some(text), "the text survives XML escaping");

    // Call status callbacks.
    let forged = fake.callback(&gw, &c.sid, &[("CallSid", &c.sid), ("CallStatus", "completed"), ("CallDuration", "42")], "guess").await;
    assert_eq!(forged.status, 400, "{}", forged.text());
    let r = fake.callback(&gw, &c.sid, &[("CallSid", &c.sid), ("CallStatus", "ringing")], AUTH_TOKEN).await;
    assert_eq!(r.status, 204);
    assert_eq!(statuses(&gw.get(&format!("/v1/messages/{id}"), Some(API_KEY)).await.json()), ["sent", "failed"]);
    // A 125 s call: 3 started minutes, 2 more than billed at send. Twilio may
    // send the report again; it is billed once.
    let completed = [("CallSid", c.sid.as_str()), ("CallStatus", "completed"), ("CallDuration", "125"), ("Duration", "3")];
    for _ in 0..2 {
        let r = fake.callback(&gw, &c.sid, &completed, AUTH_TOKEN).await;
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let v = wait_delivery(&gw, &id, 0, "delivered").await;
    assert_eq!(delivery(&v, 0)["detail"], "completed, CallDuration 125s");
    assert_eq!(delivery(&v, 0)["cost_minor"], 60, "3 minutes at 20: {v}");

    // A call nobody answers.
    let id2 = send(&gw, &call("tv", "hello", &["+14155550101"])).await;
    assert_eq!(statuses(&wait_settled(&gw, &id2).await), ["sent"]);
    let sid2 = fake.created().last().unwrap().sid.clone();
    let r = fake.callback(&gw, &sid2, &[("CallSid", &sid2), ("CallStatus", "no-answer")], AUTH_TOKEN).await;
    assert_eq!(r.status, 204);
    let v2 = wait_delivery(&gw, &id2, 0, "failed").await;
    assert_eq!(delivery(&v2, 0)["detail"], "no-answer");

    let ledger = ledger_for(&gw, &id).await;
    let mut lines: Vec<_> = ledger.iter().map(|e| (e["kind"].as_str(), e["units"].as_u64(), e["amount_minor"].as_i64())).collect();
    lines.sort();
    assert_eq!(
        lines,
        [(Some("debit"), Some(1), Some(20)), (Some("debit"), Some(2), Some(40))],
        "a minute at send, the rest from the report: {ledger:?}"
    );
    // The unanswered call keeps its one-minute debit refunded and bills no usage.
    let net: i64 = ledger_for(&gw, &id2)
        .await
        .iter()
        .map(|e| if e["kind"] == "credit" { -e["amount_minor"].as_i64().unwrap() } else { e["amount_minor"].as_i64().unwrap() })
        .sum();
    assert_eq!(net, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_voice_wrong_token_fails_and_429_is_throttled_then_sent() {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(&[(HOST, &fake.url)], &tenant("acme", API_KEY, &accounts())));

    let id = send(&gw, &call("tv-bad-token", "hi", &["+14155550100"])).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["failed"]);
    assert_eq!(delivery(&v, 0)["detail"], "Twilio 20003: Authenticate");

    fake.limit_rate(1, Duration::from_millis(400));
    let id = send(&gw, &call("tv", "hello", &["+14155550110", "+14155550111", "+14155550112"])).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent"; 3], "{v}");
    assert!(fake.errors().contains(&20429));
    assert_eq!(fake.created().len(), 3);
    let m = gw.metrics().await;
    assert!(metric(&m, "herald_deliveries_total", "channel=\"twilio-voice\",outcome=\"throttled\",tenant=\"acme\"") >= 1.0, "{m}");
}
