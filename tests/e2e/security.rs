//! Admin security against the real binary (issue 11): no granting beyond
//! one's own rights, no account takeover, the last administrator stays,
//! credential changes end sessions, a lockout that holds under parallel
//! attempts and does not reveal which logins exist, password strength, and
//! cross-site writes.

use bytes::Bytes;
use serde_json::json;

use crate::admin::{Admin, id};
use crate::harness::{Resp, request};

const PASSWORD: &str = "violet kettle drums 42";

/// A role with these rights, and a user holding it (in the first of `units`,
/// or the root) who logs in; returns (role id, user id, token).
async fn member(admin: &Admin, boss: &str, login: &str, permissions: &[&str], all_units: bool, units: &[&str]) -> (String, String, String) {
    let role = id(&admin
        .call(
            "POST",
            "/roles",
            Some(boss),
            Some(json!({"name": format!("{login} role"), "permissions": permissions, "all_units": all_units, "units": units})),
        )
        .await);
    let unit = match units.first() {
        Some(u) => u.to_string(),
        None => admin.root_unit(boss).await,
    };
    let user = id(&admin
        .call("POST", "/users", Some(boss), Some(json!({"name": login, "login": login, "password": PASSWORD, "unit": unit, "roles": [role]})))
        .await);
    let token = admin.login(login, PASSWORD).await;
    (role, user, token)
}

fn all_permissions() -> Vec<&'static str> {
    vec![
        "directory.view",
        "directory.edit",
        "apps.view",
        "apps.manage",
        "roles.view",
        "roles.manage",
        "push.view",
        "push.edit",
        "push.send",
        "tiered.view",
        "tiered.edit",
        "accounts.view",
        "accounts.edit",
        "cost.view",
        "cost.manage",
        "reports.view",
        "users.password",
    ]
}

fn forbidden(r: &Resp, field: &str, naming: &str) {
    assert_eq!((r.status, r.error().0.as_str(), r.error().1.as_deref()), (403, "forbidden", Some(field)), "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains(naming), "{}", r.text());
}

async fn me_id(admin: &Admin, token: &str) -> String {
    admin.call("GET", "/me", Some(token), None).await.json()["user"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn nobody_grants_what_they_do_not_hold_and_the_last_administrator_stays() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_, boss) = admin.register("Acme", "boss").await;
    let boss_id = me_id(&admin, &boss).await;
    let roles = admin.call("GET", "/roles", Some(&boss), None).await.json();
    let admin_role = roles["items"][0]["id"].as_str().unwrap().to_string();
    let root = admin.root_unit(&boss).await;
    let east = id(&admin.call("POST", "/units", Some(&boss), Some(json!({"name": "East", "parent": root}))).await);
    let west = id(&admin.call("POST", "/units", Some(&boss), Some(json!({"name": "West", "parent": root}))).await);

    // A role manager (with the directory, limited to East) cannot widen their own role…
    let perms = ["roles.view", "roles.manage", "directory.view", "directory.edit"];
    let (own, rick, rt) = member(&admin, &boss, "rick", &perms, false, &[&east]).await;
    // Every permission the catalogue had before users.password (so the same
    // request shows the old code granting it).
    let mut everything: Vec<_> = all_permissions().into_iter().filter(|p| *p != "users.password").collect();
    everything.sort();
    let widen = admin.call("PATCH", &format!("/roles/{own}"), Some(&rt), Some(json!({"permissions": everything}))).await;
    forbidden(&widen, "permissions[0]", "accounts.edit");
    assert_eq!(admin.call("POST", "/api-keys", Some(&rt), None).await.status, 403);
    // …nor create one with more, nor one on all units or outside East…
    let new_role = admin.call("POST", "/roles", Some(&rt), Some(json!({"name": "All", "permissions": ["roles.view", "apps.manage"]}))).await;
    forbidden(&new_role, "permissions[1]", "apps.manage");
    let all_units = admin.call("POST", "/roles", Some(&rt), Some(json!({"name": "Wide", "permissions": ["roles.view"], "all_units": true}))).await;
    forbidden(&all_units, "all_units", "all units");
    let outside = admin.call("POST", "/roles", Some(&rt), Some(json!({"name": "W", "permissions": ["roles.view"], "units": [west]}))).await;
    assert_eq!((outside.status, outside.error().1.as_deref()), (422, Some("units[0]")), "{}", outside.text());
    let within = admin.call("POST", "/roles", Some(&rt), Some(json!({"name": "E", "permissions": ["directory.view"], "units": [east]}))).await;
    assert_eq!(within.status, 201, "{}", within.text());
    // …nor take the Administrator role, nor empty or delete it.
    let take = admin.call("PATCH", &format!("/users/{rick}"), Some(&rt), Some(json!({"roles": [own, admin_role]}))).await;
    forbidden(&take, "roles[1]", "the role Administrator");
    let empty = admin.call("PATCH", &format!("/roles/{admin_role}"), Some(&rt), Some(json!({"permissions": []}))).await;
    forbidden(&empty, "id", "this role");
    forbidden(&admin.call("DELETE", &format!("/roles/{admin_role}"), Some(&rt), None).await, "id", "this role");
    assert_eq!(admin.call("GET", "/api-keys", Some(&boss), None).await.status, 200, "the administrator keeps every right");
    // Nor edit or delete a user who holds more (the administrator is in the root unit, outside East: 404).
    assert_eq!(admin.call("PATCH", &format!("/users/{boss_id}"), Some(&rt), Some(json!({"name": "x"}))).await.status, 404);

    // The last full administrator cannot be stripped, nor its role emptied.
    let strip = admin.call("PATCH", &format!("/users/{boss_id}"), Some(&boss), Some(json!({"roles": [own]}))).await;
    assert_eq!((strip.status, strip.error().0.as_str(), strip.error().1.as_deref()), (409, "last_admin", Some("roles")), "{}", strip.text());
    let shrink = admin.call("PATCH", &format!("/roles/{admin_role}"), Some(&boss), Some(json!({"permissions": ["roles.view"]}))).await;
    assert_eq!((shrink.status, shrink.error().0.as_str()), (409, "last_admin"), "{}", shrink.text());
    let narrow = admin.call("PATCH", &format!("/roles/{admin_role}"), Some(&boss), Some(json!({"all_units": false, "units": [root]}))).await;
    assert_eq!((narrow.status, narrow.error().0.as_str()), (409, "last_admin"), "{}", narrow.text());
    // With a second administrator, the first may step down; then the second is the last.
    let ada = id(&admin
        .call("POST", "/users", Some(&boss), Some(json!({"name": "Ada", "login": "ada", "password": PASSWORD, "unit": root, "roles": [admin_role]})))
        .await);
    let down = admin.call("PATCH", &format!("/users/{boss_id}"), Some(&boss), Some(json!({"roles": [own]}))).await;
    assert_eq!(down.status, 200, "{}", down.text());
    let at = admin.login("ada", PASSWORD).await;
    let gone = admin.call("DELETE", &format!("/users/{ada}"), Some(&at), None).await;
    assert_eq!(gone.error().0, "self");
    let strip = admin.call("PATCH", &format!("/users/{ada}"), Some(&at), Some(json!({"roles": []}))).await;
    assert_eq!((strip.status, strip.error().0.as_str()), (409, "last_admin"), "{}", strip.text());
    // The Administrator role holds the whole catalogue (users.password included).
    assert_eq!(roles["items"][0]["permissions"].as_array().unwrap().len(), all_permissions().len(), "{roles}");
}

#[tokio::test]
async fn directory_editors_cannot_take_over_accounts_and_credential_changes_end_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_, boss) = admin.register("Acme", "boss").await;
    let boss_id = me_id(&admin, &boss).await;
    let root = admin.root_unit(&boss).await;
    let (_, dora, dt) = member(&admin, &boss, "dora", &["directory.view", "directory.edit"], true, &[]).await;

    // The takeover of the issue: 403, and the administrator's password still works.
    let takeover = admin.call("PATCH", &format!("/users/{boss_id}"), Some(&dt), Some(json!({"password": "taken over 12345"}))).await;
    forbidden(&takeover, "id", "this user holds the permission");
    let rename = admin.call("PATCH", &format!("/users/{boss_id}"), Some(&dt), Some(json!({"login": "dora-boss"}))).await;
    forbidden(&rename, "id", "this user holds the permission");
    forbidden(&admin.call("DELETE", &format!("/users/{boss_id}"), Some(&dt), None).await, "id", "this user");
    let no_login = admin.call("POST", "/login", None, Some(json!({"login": "boss", "password": "taken over 12345"}))).await;
    assert_eq!(no_login.status, 401);
    admin.login("boss", "correct horse battery").await;

    // A user with no rights: directory.edit still cannot set their password or login.
    let pat = id(&admin.call("POST", "/users", Some(&dt), Some(json!({"name": "Pat", "login": "pat", "password": PASSWORD, "unit": root}))).await);
    let pat_token = admin.login("pat", PASSWORD).await;
    let reset = admin.call("PATCH", &format!("/users/{pat}"), Some(&dt), Some(json!({"password": "new pat phrase 77"}))).await;
    forbidden(&reset, "password", "users.password");
    let relogin = admin.call("PATCH", &format!("/users/{pat}"), Some(&dt), Some(json!({"login": "pat2"}))).await;
    forbidden(&relogin, "login", "users.password");

    // One's own password needs the current one.
    let own = admin.call("PATCH", &format!("/users/{dora}"), Some(&dt), Some(json!({"password": "dora new phrase 9"}))).await;
    assert_eq!((own.status, own.error().1.as_deref()), (422, Some("current_password")), "{}", own.text());
    let wrong = admin
        .call("PATCH", &format!("/users/{dora}"), Some(&dt), Some(json!({"password": "dora new phrase 9", "current_password": "not it at all"})))
        .await;
    assert_eq!((wrong.status, wrong.error().0.as_str(), wrong.error().1.as_deref()), (403, "wrong_password", Some("current_password")));

    // A password change ends the user's other sessions, not the one that made it.
    let other = admin.login("dora", PASSWORD).await;
    let mine = admin.call("GET", "/me/sessions", Some(&dt), None).await.json();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2, "{mine}");
    assert_eq!(mine["items"].as_array().unwrap().iter().filter(|s| s["current"] == true).count(), 1, "{mine}");
    let changed =
        admin.call("POST", "/me/password", Some(&dt), Some(json!({"current_password": PASSWORD, "new_password": "dora new phrase 9"}))).await;
    assert_eq!(changed.status, 204, "{}", changed.text());
    assert_eq!(admin.call("GET", "/me", Some(&other), None).await.status, 401, "the other session ended");
    assert_eq!(admin.call("GET", "/me", Some(&dt), None).await.status, 200);
    admin.login("dora", "dora new phrase 9").await;

    // An administrator (users.password) resets a password: every session of that user ends.
    let reset = admin.call("PATCH", &format!("/users/{pat}"), Some(&boss), Some(json!({"password": "new pat phrase 77"}))).await;
    assert_eq!(reset.status, 200, "{}", reset.text());
    assert_eq!(admin.call("GET", "/me", Some(&pat_token), None).await.status, 401);
    // A login rename likewise.
    let pat_token = admin.login("pat", "new pat phrase 77").await;
    let renamed = admin.call("PATCH", &format!("/users/{pat}"), Some(&boss), Some(json!({"login": "pat2"}))).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    assert_eq!(admin.call("GET", "/me", Some(&pat_token), None).await.status, 401);

    // Sessions: revoke the others, one, or (administrators) all of a user's.
    let a = admin.login("pat2", "new pat phrase 77").await;
    let b = admin.login("pat2", "new pat phrase 77").await;
    let ended = admin.call("DELETE", "/me/sessions", Some(&a), None).await;
    assert_eq!((ended.status, ended.json()["ended"].as_u64()), (200, Some(1)), "{}", ended.text());
    assert_eq!(admin.call("GET", "/me", Some(&b), None).await.status, 401);
    let c = admin.login("pat2", "new pat phrase 77").await;
    let list = admin.call("GET", "/me/sessions", Some(&a), None).await.json();
    let other_id = list["items"].as_array().unwrap().iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(admin.call("DELETE", &format!("/me/sessions/{other_id}"), Some(&a), None).await.status, 204);
    assert_eq!(admin.call("GET", "/me", Some(&c), None).await.status, 401);
    assert_eq!(admin.call("DELETE", &format!("/me/sessions/{other_id}"), Some(&a), None).await.status, 404);
    let all = admin.call("DELETE", &format!("/users/{pat}/sessions"), Some(&boss), None).await;
    assert_eq!((all.status, all.json()["ended"].as_u64()), (200, Some(1)), "{}", all.text());
    assert_eq!(admin.call("GET", "/me", Some(&a), None).await.status, 401);
    forbidden(&admin.call("DELETE", &format!("/users/{boss_id}/sessions"), Some(&dt), None).await, "id", "this user");
}

async fn reset(admin: &Admin, token: &str, user: &str, password: &str) -> Resp {
    admin.call("POST", &format!("/users/{user}/password"), Some(token), Some(json!({"new_password": password}))).await
}

#[tokio::test]
async fn administrators_reset_passwords_within_their_rights_and_the_user_is_asked_to_change_it() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_, boss) = admin.register("Acme", "boss").await;
    let boss_id = me_id(&admin, &boss).await;
    let root = admin.root_unit(&boss).await;
    let (_, _, helpdesk) = member(&admin, &boss, "helpdesk", &["directory.view", "users.password"], true, &[]).await;
    let (_, _, editor) = member(&admin, &boss, "editor", &["directory.view", "directory.edit"], true, &[]).await;
    let pat = id(&admin.call("POST", "/users", Some(&boss), Some(json!({"name": "Pat", "login": "pat", "password": PASSWORD, "unit": root}))).await);
    let pat_token = admin.login("pat", PASSWORD).await;

    // Without users.password: 403; a weak password: 400 naming the field.
    let denied = reset(&admin, &editor, &pat, "handed over phrase 5").await;
    assert_eq!(denied.status, 403, "{}", denied.text());
    assert!(denied.text().contains("users.password"), "{}", denied.text());
    let weak = reset(&admin, &helpdesk, &pat, "aaaaaaaaaa").await;
    assert_eq!((weak.status, weak.error().1.as_deref()), (400, Some("new_password")), "{}", weak.text());
    // Not someone with more rights, not oneself, not another tenant's user.
    forbidden(&reset(&admin, &helpdesk, &boss_id, "taken over 12345 x").await, "id", "this user holds the permission");
    let own = reset(&admin, &boss, &boss_id, "my own new phrase 8").await;
    assert_eq!((own.status, own.error().0.as_str()), (409, "self"), "{}", own.text());
    let (_, other) = admin.register("Other", "other-boss").await;
    assert_eq!(reset(&admin, &other, &pat, "cross tenant phrase 1").await.status, 404);

    // The reset: Pat's sessions end, the new password works, Pat is asked to change it.
    let done = reset(&admin, &helpdesk, &pat, "handed over phrase 5").await;
    assert_eq!((done.status, done.json()["ended"].as_u64()), (200, Some(1)), "{}", done.text());
    assert_eq!(admin.call("GET", "/me", Some(&pat_token), None).await.status, 401);
    let pat_token = admin.login("pat", "handed over phrase 5").await;
    let me = admin.call("GET", "/me", Some(&pat_token), None).await.json();
    assert_eq!(me["user"]["must_change_password"], true, "{me}");
    let changed = admin
        .call(
            "POST",
            "/me/password",
            Some(&pat_token),
            Some(json!({"current_password": "handed over phrase 5", "new_password": "pat chose this 42"})),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text());
    let me = admin.call("GET", "/me", Some(&pat_token), None).await.json();
    assert!(me["user"].get("must_change_password").is_none(), "{me}");
}

async fn login_raw(url: &str, login: &str, password: &str) -> Resp {
    let body = Bytes::from(json!({"login": login, "password": password}).to_string());
    request("POST", &format!("{url}/api/v1/login"), None, &[("content-type", "application/json")], body).await
}

#[tokio::test]
async fn parallel_logins_cannot_slip_past_the_lockout_and_locked_names_answer_like_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_, boss) = admin.register("Acme", "boss").await;
    let root = admin.root_unit(&boss).await;
    let lina = admin.call("POST", "/users", Some(&boss), Some(json!({"name": "Lina", "login": "lina", "password": PASSWORD, "unit": root}))).await;
    assert_eq!(lina.status, 201, "{}", lina.text());

    // 40 at once, 39 wrong and the right one: at most 5 are checked at all.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let url = admin.url.clone();
        let password = if i == 39 { PASSWORD.to_string() } else { format!("wrong guess number {i}") };
        tasks.spawn(async move { login_raw(&url, "lina", &password).await.status });
    }
    let mut statuses = vec![];
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap());
    }
    let count = |code: u16| statuses.iter().filter(|s| **s == code).count();
    assert!(count(401) + count(200) <= 5 && count(429) >= 35, "{statuses:?}");
    let after = login_raw(&admin.url, "lina", PASSWORD).await;
    assert_eq!((after.status, after.error().0.as_str()), (429, "locked"), "the right password waits out the lock");
    let retry: u64 = after.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");

    // An unknown login locks the same way and then answers exactly like a locked one.
    for i in 0..4 {
        let r = login_raw(&admin.url, "ghost", &format!("wrong guess number {i}")).await;
        assert_eq!((r.status, r.error().0.as_str()), (401, "invalid_credentials"));
    }
    let fifth = login_raw(&admin.url, "ghost", "wrong guess number 5").await;
    assert_eq!((fifth.status, fifth.error().0.as_str()), (429, "locked"));
    let ghost = login_raw(&admin.url, "ghost", PASSWORD).await;
    let real = login_raw(&admin.url, "lina", PASSWORD).await;
    assert_eq!((ghost.status, ghost.json()), (real.status, real.json()));
    assert!(ghost.headers.contains_key("retry-after") && real.headers.contains_key("retry-after"));
    assert_eq!(real.error().1.as_deref(), Some("login"));
}

#[tokio::test]
async fn weak_passwords_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    for (login, weak) in [("weak-a", "          "), ("weak-b", "aaaaaaaaaa"), ("weak-login-c", "weak-login-c"), ("weak-d", "password123")] {
        let r = admin
            .call("POST", "/register", None, Some(json!({"enterprise_name": "W", "admin_login": login, "admin_password": weak, "admin_name": "W"})))
            .await;
        assert_eq!((r.status, r.error().1.as_deref()), (400, Some("admin_password")), "{weak:?}: {}", r.text());
    }
    let (_, boss) = admin.register("Acme", "boss").await;
    let root = admin.root_unit(&boss).await;
    let weak_user =
        admin.call("POST", "/users", Some(&boss), Some(json!({"name": "Wu", "login": "wu-login", "password": "wu-login12", "unit": root}))).await;
    assert_eq!((weak_user.status, weak_user.error().1.as_deref()), (400, Some("password")), "{}", weak_user.text());
    let mine = admin
        .call("POST", "/me/password", Some(&boss), Some(json!({"current_password": "correct horse battery", "new_password": "qwertyuiop"})))
        .await;
    assert_eq!((mine.status, mine.error().1.as_deref()), (400, Some("new_password")), "{}", mine.text());
}

#[tokio::test]
async fn cross_site_cookie_writes_are_refused_and_the_cookie_is_secure_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_, boss) = admin.register("Acme", "boss").await;
    let root = admin.root_unit(&boss).await;
    let cookie = format!("herald_session={boss}");
    let unit = |name: &str| Bytes::from(json!({"name": name, "parent": root}).to_string());
    let post = |headers: Vec<(&'static str, String)>, body: Bytes| {
        let url = format!("{}/api/v1/units", admin.url);
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request("POST", &url, None, &h, body).await
        }
    };
    let same = admin.url.clone();

    // The request: the cookie, a foreign Origin, text/plain.
    let evil =
        post(vec![("cookie", cookie.clone()), ("origin", "http://evil.example".into()), ("content-type", "text/plain".into())], unit("E")).await;
    assert_eq!((evil.status, evil.error().0.as_str(), evil.error().1.as_deref()), (403, "cross_origin", Some("Origin")), "{}", evil.text());
    let evil_json =
        post(vec![("cookie", cookie.clone()), ("origin", "http://evil.example".into()), ("content-type", "application/json".into())], unit("E"))
            .await;
    assert_eq!(evil_json.status, 403);
    let site =
        post(vec![("cookie", cookie.clone()), ("sec-fetch-site", "cross-site".into()), ("content-type", "application/json".into())], unit("E")).await;
    assert_eq!((site.status, site.error().1.as_deref()), (403, Some("Sec-Fetch-Site")));
    // A body a plain form could send is refused even from the same origin, and without one.
    let plain = post(vec![("cookie", cookie.clone()), ("origin", same.clone()), ("content-type", "text/plain".into())], unit("E")).await;
    assert_eq!((plain.status, plain.error().1.as_deref()), (415, Some("Content-Type")), "{}", plain.text());
    let bare = post(vec![("cookie", cookie.clone()), ("content-type", "text/plain".into())], unit("E")).await;
    assert_eq!(bare.status, 415);
    let form = post(vec![("cookie", cookie.clone()), ("content-type", "multipart/form-data; boundary=x".into())], unit("E")).await;
    assert_eq!(form.status, 415, "multipart only from a confirmed origin");
    // The console's own requests pass.
    let ok = post(vec![("cookie", cookie.clone()), ("origin", same.clone()), ("content-type", "application/json".into())], unit("Mine")).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    let fetch =
        post(vec![("cookie", cookie.clone()), ("sec-fetch-site", "same-origin".into()), ("content-type", "application/json".into())], unit("F"))
            .await;
    assert_eq!(fetch.status, 201, "{}", fetch.text());
    let upload_body = Bytes::from("--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.xlsx\"\r\n\r\nnot a sheet\r\n--x--\r\n");
    let upload = request(
        "POST",
        &format!("{}/api/v1/pushes/upload", admin.url),
        None,
        &[("cookie", &cookie), ("origin", &same), ("content-type", "multipart/form-data; boundary=x")],
        upload_body,
    )
    .await;
    assert!(![403, 415, 401].contains(&upload.status), "a same-origin upload reaches the handler: {} {}", upload.status, upload.text());
    // API clients (Authorization) are not affected.
    let api = request(
        "POST",
        &format!("{}/api/v1/units", admin.url),
        Some(&boss),
        &[("origin", "http://evil.example"), ("content-type", "application/json")],
        unit("Api"),
    )
    .await;
    assert_eq!(api.status, 201, "{}", api.text());

    // Loopback: no Secure flag by default; configured: Secure.
    let r = login_raw(&admin.url, "boss", "correct horse battery").await;
    assert!(!r.headers["set-cookie"].to_str().unwrap().contains("Secure"));
    let dir2 = tempfile::tempdir().unwrap();
    let secure = Admin::start_with(dir2.path(), &[("HERALD_ADMIN_SECURE_COOKIES".into(), "true".into())]);
    secure.register("Beta", "boss-b").await;
    let r = login_raw(&secure.url, "boss-b", "correct horse battery").await;
    let set = r.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly; SameSite=Strict") && set.ends_with("; Secure"), "{set}");
}

fn err(r: &Resp) -> (u16, String, Option<String>) {
    let (code, field) = r.error();
    (r.status, code, field)
}

/// Issue 16 point 6: each function permission has its own data scope, applied
/// to every list and to push targets; an app not enabled refuses its
/// permissions; a role manager grants nothing beyond his own permissions and
/// scopes (nor makes himself administrator); another tenant's ids are unknown.
#[tokio::test]
async fn per_permission_scopes_filter_lists_apps_gate_their_permissions_and_nobody_grants_beyond_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::start(dir.path());
    let (_, boss) = admin.register("Acme", "boss").await;
    let (_, other) = admin.register("Other", "other.boss").await;
    let root = admin.root_unit(&boss).await;
    let foreign_unit = admin.root_unit(&other).await;
    let foreign_role = admin.call("GET", "/roles", Some(&other), None).await.json()["items"][0]["id"].as_str().unwrap().to_string();
    let admin_role = admin.call("GET", "/roles", Some(&boss), None).await.json()["items"][0]["id"].as_str().unwrap().to_string();
    let unit = |name: &str, parent: &str| admin.call("POST", "/units", Some(&boss), Some(json!({"name": name, "parent": parent})));
    let east = id(&unit("East", &root).await);
    let sh = id(&unit("Shanghai", &east).await);
    let west = id(&unit("West", &root).await);
    let user = |name: &str, unit: &str| {
        admin.call("POST", "/users", Some(&boss), Some(json!({"name": name, "email": format!("{name}@example.test"), "unit": unit})))
    };
    let in_sh = id(&user("sh", &sh).await);
    let in_east = id(&user("east", &east).await);
    let in_west = id(&user("west", &west).await);

    // A role with a description and a scope per permission.
    let r = admin
        .call(
            "POST",
            "/roles",
            Some(&boss),
            Some(json!({"name": "Regional", "description": "华东区域管理员", "permissions": [
                {"id": "roles.view", "all_units": true}, {"id": "roles.manage", "all_units": true},
                {"id": "directory.view", "units": [east]}, {"id": "push.view", "all_units": true},
                {"id": "push.edit", "units": [sh]}, {"id": "reports.view", "units": [west]}]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let role = r.json();
    assert_eq!(role["description"], "华东区域管理员");
    assert_eq!(role["permissions"][2], json!({"id": "directory.view", "all_units": false, "units": [east]}));
    let mgr = id(&admin
        .call("POST", "/users", Some(&boss), Some(json!({"name": "Rae", "login": "rae", "password": PASSWORD, "unit": sh, "roles": [role["id"]]})))
        .await);
    let rt = admin.login("rae", PASSWORD).await;

    // Lists: the directory on East only; push targets within push.edit's scope (Shanghai).
    let users = admin.call("GET", "/users", Some(&rt), None).await.json();
    let mut seen: Vec<&str> = users["items"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    seen.sort();
    let mut want = vec![in_sh.as_str(), in_east.as_str(), mgr.as_str()];
    want.sort();
    assert_eq!(seen, want, "{users}");
    assert_eq!(admin.call("GET", &format!("/users/{in_west}"), Some(&rt), None).await.status, 404);
    let units = admin.call("GET", "/units", Some(&rt), None).await.json();
    assert_eq!(units["items"].as_array().unwrap().len(), 2, "East and Shanghai: {units}");
    let audience =
        |targets: serde_json::Value| admin.call("POST", "/pushes/audience", Some(&rt), Some(json!({"channel": "email", "targets": targets})));
    assert_eq!(audience(json!({"users": [in_sh]})).await.status, 200);
    assert_eq!(err(&audience(json!({"users": [in_sh, in_east]})).await), (422, "unknown_user".into(), Some("targets.users[1]".into())));
    assert_eq!(err(&audience(json!({"users": [in_west]})).await), (422, "unknown_user".into(), Some("targets.users[0]".into())));
    assert_eq!(err(&audience(json!({"units": [east]})).await), (422, "unknown_unit".into(), Some("targets.units[0]".into())));
    assert_eq!(err(&audience(json!({"units": [foreign_unit]})).await), (422, "unknown_unit".into(), Some("targets.units[0]".into())));
    // Buttons not granted.
    assert_eq!(err(&admin.call("POST", "/units", Some(&rt), Some(json!({"name": "x", "parent": sh}))).await).0, 403);

    // Escalation: nothing beyond one's own permission and scope, in either body format.
    let grant = |perms: serde_json::Value| admin.call("POST", "/roles", Some(&rt), Some(json!({"name": "G", "permissions": perms})));
    forbidden(&grant(json!([{"id": "push.send", "all_units": true}])).await, "permissions[0]", "push.send");
    forbidden(&grant(json!([{"id": "directory.view", "all_units": true}])).await, "permissions[0].all_units", "all units");
    forbidden(&grant(json!([{"id": "roles.view"}, {"id": "push.edit", "units": [east]}])).await, "permissions[1].units[0]", "push.edit");
    forbidden(&grant(json!([{"id": "push.edit", "units": [sh]}, {"id": "directory.edit", "units": [sh]}])).await, "permissions[1]", "directory.edit");
    let legacy = admin.call("POST", "/roles", Some(&rt), Some(json!({"name": "L", "permissions": ["directory.view"], "all_units": true}))).await;
    forbidden(&legacy, "all_units", "all units");
    let foreign = grant(json!([{"id": "directory.view", "units": [foreign_unit]}])).await;
    assert_eq!(err(&foreign), (422, "unknown_unit".into(), Some("permissions[0].units[0]".into())), "another tenant's unit");
    assert_eq!(err(&grant(json!([{"id": "no.such"}])).await), (422, "unknown_permission".into(), Some("permissions[0]".into())));
    // Within: a subtree of one's own scope; a permission without a scope takes the granter's own.
    let ok = grant(json!([{"id": "directory.view", "units": [sh]}, {"id": "push.edit"}])).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert_eq!(ok.json()["permissions"][1], json!({"id": "push.edit", "all_units": false, "units": [sh]}));
    // Nor widen his own role, nor take the administrator's, nor touch another tenant's.
    let own = role["id"].as_str().unwrap();
    let widen =
        admin.call("PATCH", &format!("/roles/{own}"), Some(&rt), Some(json!({"permissions": [{"id": "push.edit", "all_units": true}]}))).await;
    forbidden(&widen, "permissions[0].all_units", "all units");
    let narrow_all = admin.call("PATCH", &format!("/roles/{own}"), Some(&rt), Some(json!({"all_units": true}))).await;
    forbidden(&narrow_all, "all_units", "all units");
    forbidden(&admin.call("PATCH", &format!("/roles/{admin_role}"), Some(&rt), Some(json!({"description": "x"}))).await, "id", "this role");
    let take = admin.call("PATCH", &format!("/users/{mgr}"), Some(&rt), Some(json!({"roles": [own, admin_role]}))).await;
    assert_eq!(take.status, 403, "no directory.edit (taking a role beyond one's own: the test above): {}", take.text());
    assert_eq!(admin.call("GET", &format!("/roles/{foreign_role}"), Some(&rt), None).await.status, 404);
    assert_eq!(admin.call("PATCH", &format!("/roles/{foreign_role}"), Some(&rt), Some(json!({"name": "stolen"}))).await.status, 404);
    // What he holds, with each scope.
    let me = admin.call("GET", "/me", Some(&rt), None).await.json();
    assert!(me["permissions"].as_array().unwrap().iter().any(|p| p == "push.edit"), "{me}");
    assert_eq!(me["grants"].as_array().unwrap().iter().find(|g| g["id"] == "push.edit").unwrap()["units"], json!([sh]));

    // The app gate: a disabled app's permissions grant nothing (403 app_disabled) until it is enabled again.
    let reports = admin.call("GET", "/reports/summary", Some(&rt), None).await;
    assert_eq!(reports.status, 200, "{}", reports.text());
    assert_eq!(admin.call("POST", "/apps/reports/disable", Some(&rt), None).await.status, 403, "apps.manage not held");
    assert_eq!(admin.call("POST", "/apps/reports/disable", Some(&boss), None).await.status, 204);
    assert_eq!(err(&admin.call("POST", "/apps/reports/disable", Some(&boss), None).await).1, "not_enabled");
    assert_eq!(err(&admin.call("POST", "/apps/nothing/disable", Some(&boss), None).await).0, 404);
    assert_eq!(err(&admin.call("GET", "/reports/summary", Some(&rt), None).await), (403, "app_disabled".into(), None));
    assert_eq!(err(&admin.call("GET", "/reports/summary", Some(&boss), None).await), (403, "app_disabled".into(), None), "the administrator too");
    let me = admin.call("GET", "/me", Some(&rt), None).await.json();
    assert!(!me["permissions"].as_array().unwrap().iter().any(|p| p == "reports.view"), "{me}");
    assert!(!me["apps"].as_array().unwrap().iter().any(|a| a == "reports"), "{me}");
    assert_eq!(admin.call("POST", "/apps/messaging/disable", Some(&boss), None).await.status, 204);
    assert_eq!(
        err(&admin.call("POST", "/pushes/audience", Some(&rt), Some(json!({"channel": "email", "targets": {"users": [in_sh]}}))).await).1,
        "app_disabled"
    );
    assert_eq!(err(&admin.call("GET", "/pushes", Some(&boss), None).await).1, "app_disabled");
    assert_eq!(admin.call("GET", "/units", Some(&rt), None).await.status, 200, "the base app is always on");
    let enabled = admin.call("POST", "/apps/messaging/enable", Some(&boss), None).await;
    assert_eq!(enabled.status, 201, "{}", enabled.text());
    assert!(enabled.json()["api_key"].as_str().unwrap().starts_with("hk_"));
    assert_eq!(admin.call("GET", "/pushes", Some(&rt), None).await.status, 200);
    assert_eq!(err(&admin.call("POST", "/apps/messaging/enable", Some(&boss), None).await).1, "already_enabled");
    // Another tenant is untouched.
    assert_eq!(admin.call("GET", "/reports/summary", Some(&other), None).await.status, 200);
}
