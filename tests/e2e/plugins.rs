//! The plugin lifecycle: contract versions side by side, hot reload, and a
//! broken file never replacing a working plugin.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::harness::{API_KEY, Gateway, eventually, plugin_dir, tenant};
use crate::sinks::WebhookSink;

fn accounts(url: &str) -> String {
    tenant(
        "acme",
        API_KEY,
        &format!(
            "[[tenants.accounts]]\nname = \"new\"\nplugin = \"webhook\"\nconfig = {{ url = \"{url}\" }}\n\
             [[tenants.accounts]]\nname = \"old\"\nplugin = \"legacy\"\nconfig = {{ url = \"{url}\" }}\n"
        ),
    )
}

/// Copy a plugin in the way operators should: write aside, then rename.
fn install(from: &str, dir: &Path, as_name: &str) {
    let tmp = dir.join(format!(".{as_name}.tmp"));
    std::fs::copy(plugin_dir().join(from), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(as_name)).unwrap();
}

async fn send(gw: &Gateway, channel: &str, account: &str) -> crate::harness::Resp {
    gw.send(&json!({"channel": channel, "account": account, "content": {"text": "hi"}, "recipients": [{"to": "a"}]})).await
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_built_for_1_0_and_1_2_serve_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start().await;
    let gw = Gateway::start(dir.path(), &accounts(&sink.url));
    let plugins = gw.get("/v1/plugins", Some(API_KEY)).await.json();
    let names: Vec<&str> = plugins["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"legacy") && names.contains(&"webhook"), "{names:?}");
    let worlds = |name: &str| plugins["plugins"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["worlds"].clone();
    assert_eq!(worlds("legacy"), json!(["channel-plugin"]), "built against contract 1.0");
    assert_eq!(worlds("webhook"), json!(["channel-plugin", "channel-plugin-auth", "channel-plugin-metered"]), "built with the 1.2 SDK");
    for (channel, account) in [("legacy", "old"), ("webhook", "new")] {
        assert_eq!(send(&gw, channel, account).await.status, 202);
    }
    eventually(Duration::from_secs(20), "both delivered", || sink.received().len() == 2).await;
    let contracts: Vec<Option<String>> = sink.received().iter().map(|r| r.json()["contract"].as_str().map(str::to_string)).collect();
    assert!(contracts.contains(&Some("1.0.0".into())), "the 1.0 plugin built the request: {contracts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_file_loads_it_and_a_broken_file_keeps_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("plugins");
    std::fs::create_dir_all(&pdir).unwrap();
    install("webhook.wasm", &pdir, "webhook.wasm");
    let sink = WebhookSink::start().await;
    let cfg = format!("admin_token = \"operator-secret-token\"\nplugins.reload_interval_ms = 200\n{}", accounts(&sink.url));
    let gw = Gateway::start_with_plugins(dir.path(), &cfg, &pdir);

    let r = send(&gw, "legacy", "old").await;
    assert_eq!((r.status, r.error().0.as_str()), (422, "unknown_channel"));

    install("legacy.wasm", &pdir, "legacy.wasm");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if send(&gw, "legacy", "old").await.status == 202 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "legacy plugin not hot-loaded:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A corrupt update of webhook.wasm and a new garbage file: errors, old webhook serves on.
    std::fs::write(pdir.join("webhook.wasm"), b"\0asm not really").unwrap();
    std::fs::write(pdir.join("broken.wasm"), b"garbage").unwrap();
    let no_token = gw.post("/admin/plugins/reload", None, &[], "").await;
    assert_eq!(no_token.status, 401);
    let r = gw.post("/admin/plugins/reload", Some("operator-secret-token"), &[], "").await;
    assert_eq!(r.status, 422, "{}", r.text());
    let errors = r.json()["errors"].as_array().unwrap().clone();
    let files: Vec<String> = errors.iter().map(|e| e["file"].as_str().unwrap().to_string()).collect();
    assert!(files.iter().any(|f| f.ends_with("broken.wasm")), "{errors:?}");
    assert!(files.iter().any(|f| f.ends_with("webhook.wasm")), "{errors:?}");
    assert!(errors.iter().all(|e| e["error"].as_str().unwrap().contains("not a valid component")), "{errors:?}");
    assert_eq!(send(&gw, "webhook", "new").await.status, 202, "the old webhook plugin keeps serving");
    eventually(Duration::from_secs(20), "old webhook delivered", || sink.received().len() == 2).await;
    assert!(gw.log().contains("any previous version keeps serving"));

    // Removing a file unloads its plugin.
    std::fs::remove_file(pdir.join("legacy.wasm")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while send(&gw, "legacy", "old").await.status != 422 {
        assert!(std::time::Instant::now() < deadline, "legacy not unloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
