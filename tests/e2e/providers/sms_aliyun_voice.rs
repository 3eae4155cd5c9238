//! aliyun-voice against the fake Aliyun RPC gateway of `sms_aliyun` in its
//! Dyvmsapi role: `SingleCallByTts` with the same signature, timestamp, nonce
//! and per-number frequency checks, then `VoiceReport` pushes.

use serde_json::json;

use super::sms_aliyun::{FakeAliyun, Product};
use super::sms_support::*;
use crate::harness::{API_KEY, Gateway, tenant};

const KEY_ID: &str = "LTAI5tVoiceTestKey";
const SECRET: &str = "voice-secret-0815";

async fn fake_voice() -> FakeAliyun {
    FakeAliyun::start(Product::Voice, &[(KEY_ID, SECRET)], &[], &[("TTS_100", &["code"])]).await
}

fn accounts() -> String {
    let acc = |name: &str, secret: &str| {
        format!(
            "[[tenants.accounts]]\nname = \"{name}\"\nplugin = \"aliyun-voice\"\nconfig = {{ access_key_id = \"{KEY_ID}\", access_key_secret = \"{secret}\", \
             tts_code = \"TTS_100\", tts_params = [\"code\"], called_show_number = \"057100000000\", play_times = 2 }}\n"
        )
    };
    format!("{}{}[[tenants.prices]]\nchannel = \"aliyun-voice\"\nunit_minor = 12\n", acc("call", SECRET), acc("call-bad-secret", "wrong"))
}

fn call(account: &str, to: &[&str]) -> serde_json::Value {
    let recipients: Vec<_> = to.iter().enumerate().map(|(i, t)| json!({"to": t, "variables": {"code": format!("{}", 1000 + i)}})).collect();
    json!({"channel": "aliyun-voice", "account": account, "content": {"text": "您的验证码是 {{ code }}"}, "recipients": recipients})
}

#[tokio::test(flavor = "multi_thread")]
async fn aliyun_voice_places_signed_tts_calls_and_matches_call_reports() {
    let fake = fake_voice().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(&[(fake.host(), &fake.url)], &tenant("acme", API_KEY, &accounts())));

    // A malformed number never reaches Aliyun: the gateway refuses it at ingest.
    refused_at_ingest(&gw, &call("call", &["+8613800138000", "+86138001", "+8613900139000"]), 1).await;
    assert!(fake.answers().is_empty());

    // A well-formed number Dyvmsapi cannot call (it calls Chinese mainland
    // numbers only; a US mobile is refused) fails alone, without retries.
    let id = send(&gw, &call("call", &["+8613800138000", "+14155552671", "+8613900139000"])).await;
    let v = wait_settled(&gw, &id).await;
    assert_eq!(statuses(&v), ["sent", "failed", "sent"], "{v}");
    assert_eq!(delivery(&v, 1)["detail"], "isv.MOBILE_NUMBER_ILLEGAL: 号码格式非法");
    assert_eq!(delivery(&v, 1)["attempts"], 1);

    let accepted = fake.accepted();
    assert_eq!(accepted.len(), 2);
    let first = accepted.iter().find(|a| a.params["CalledNumber"] == "13800138000").expect("call to 13800138000");
    assert_eq!(first.params["Action"], "SingleCallByTts");
    assert_eq!(first.params["TtsCode"], "TTS_100");
    assert_eq!(first.params["TtsParam"], r#"{"code":"1000"}"#);
    assert_eq!(first.params["CalledShowNumber"], "057100000000");
    assert_eq!(first.params["PlayTimes"], "2");
    assert_eq!(delivery(&v, 0)["provider_id"], first.id.as_str(), "provider id = CallId");
    let second = accepted.iter().find(|a| a.params["CalledNumber"] == "13900139000").unwrap();

    // VoiceReport push: listened to the end → delivered; not answered → failed.
    let report = json!([
        {"call_id": first.id, "status_code": "200000", "status_msg": "用户听完语音", "duration": "83", "start_time": "2024-01-01 00:00:02",
         "end_time": "2024-01-01 00:01:25", "out_id": "", "callee": "13800138000", "hangup_direction": "用户"},
        {"call_id": second.id, "status_code": "200003", "status_msg": "用户收到呼叫但未接听", "duration": "0", "out_id": ""}
    ]);
    let r = gw.post("/v1/callbacks/acme/call", None, &[("content-type", "application/json")], report.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["code"], 0);
    let v = wait_delivery(&gw, &id, 2, "failed").await;
    assert_eq!(statuses(&v), ["delivered", "failed", "failed"]);
    assert_eq!(delivery(&v, 0)["detail"], "200000 用户听完语音, duration 83s");
    let r = gw.post("/v1/callbacks/acme/call", None, &[("content-type", "application/json")], "not json").await;
    assert_eq!(r.status, 400, "a malformed push is refused so Aliyun pushes again");

    // One minute billed per placed call; the unanswered one is refunded; the
    // 83 s call is 2 started minutes, so its report bills one more.
    let ledger = ledger_for(&gw, &id).await;
    let (debits, credits): (Vec<_>, Vec<_>) = ledger.iter().partition(|e| e["kind"] == "debit");
    assert_eq!(debits.len(), 3, "{ledger:?}");
    assert!(debits.iter().all(|e| e["units"] == 1 && e["amount_minor"] == 12), "{ledger:?}");
    let usage: Vec<_> = debits.iter().filter(|e| e["id"].as_str().is_some_and(|i| i.ends_with(":usage"))).collect();
    assert_eq!(usage.len(), 1, "{ledger:?}");
    assert_eq!(usage[0]["delivery_id"], delivery(&v, 0)["id"]);
    assert_eq!(delivery(&v, 0)["cost_minor"], 24);
    assert_eq!(credits.len(), 1, "{ledger:?}");
    assert_eq!(credits[0]["delivery_id"], delivery(&v, 2)["id"]);
    assert_eq!(credits[0]["amount_minor"], 12);
}
