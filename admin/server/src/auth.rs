//! Passwords (argon2id), sessions, login lockout, and the caller of a request
//! with their function permissions and data scope (RBAC).

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use herald_core::Millis;
use herald_core::directory::{self, Unit, User};
use herald_core::error::{ApiError, ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::App;
use crate::web::Failure;
use herald_core::docs::Repo;
use herald_core::rbac::{APP, APPS, Access, Enablement, Grant, Permission, ROLE, Reach, Rights, Role, Scope};

pub const COOKIE: &str = "herald_session";
/// Platform-wide documents (logins, sessions) live under this tenant.
pub const PLATFORM: &str = herald_core::rbac::PLATFORM;
pub const LOGIN: &str = "login";
pub const SESSION: &str = "session";

const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW_MS: Millis = 15 * 60 * 1000;
const LOCK_MS: Millis = 15 * 60 * 1000;

/// A login name's record: which user it belongs to. (Failed attempts are
/// counted in `Attempts`, for known and unknown names alike.)
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Login {
    pub tenant: String,
    pub user: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub tenant: String,
    pub user: String,
    pub expires_at: Millis,
    #[serde(default)]
    pub created_at: Millis,
    #[serde(default)]
    pub user_agent: Option<String>,
}

pub fn normalize_login(login: &str) -> String {
    login.trim().to_lowercase()
}

/// A login: 2–64 letters of any script (张三 as well as ann.lee), digits and . _ - @.
pub fn check_login_name(field: &str, login: &str) -> Result<(), ApiError> {
    let ok = (2..=64).contains(&login.chars().count()) && login.chars().all(|c| c.is_alphanumeric() || "._-@".contains(c));
    if ok { Ok(()) } else { Err(ApiError::invalid(field, herald_core::msg!("login.name_rule"))) }
}

/// Password rules: 10 to 256 bytes, not blank, not the login name (nor the
/// login with fewer than 10 other characters around it), and not easy to
/// guess (zxcvbn score of at least 2, with the login and `inputs` such as the
/// user's name counted as known words).
pub fn check_password(field: &str, password: &str, login: Option<&str>, inputs: &[&str]) -> Result<(), ApiError> {
    if password.trim().is_empty() {
        return Err(ApiError::invalid(field, herald_core::msg!("password.blank")));
    }
    if password.chars().count() < 10 {
        return Err(ApiError::invalid(field, herald_core::msg!("password.too_short")));
    }
    if password.len() > 256 {
        return Err(ApiError::invalid(field, herald_core::msg!("password.too_long")));
    }
    let login = login.map(normalize_login).filter(|l| !l.is_empty());
    if let Some(l) = &login {
        let lower = password.to_lowercase();
        let rest = lower.replace(l.as_str(), "");
        if rest.len() != lower.len() && rest.trim().chars().count() < 10 {
            return Err(ApiError::invalid(field, herald_core::msg!("password.like_login")));
        }
    }
    let mut known: Vec<&str> = inputs.iter().copied().filter(|s| !s.trim().is_empty()).collect();
    if let Some(l) = &login {
        known.push(l);
    }
    let estimate = zxcvbn::zxcvbn(password, &known);
    if u8::from(estimate.score()) < 2 {
        return Err(ApiError::new(ErrorKind::Invalid, "weak_password", weak_password(estimate.feedback())).with_field(field));
    }
    Ok(())
}

/// Why a password is weak, from zxcvbn's feedback: its warning and first
/// suggestion, each a message of the catalogs (`zxcvbn.*`).
fn weak_password(feedback: Option<&zxcvbn::feedback::Feedback>) -> herald_core::i18n::Msg {
    use herald_core::i18n::Msg;
    use zxcvbn::feedback::{Suggestion as S, Warning as W};
    let warning = feedback.and_then(|f| f.warning()).map(|w| {
        let key = match w {
            W::StraightRowsOfKeysAreEasyToGuess => "zxcvbn.warning.straight_rows",
            W::ShortKeyboardPatternsAreEasyToGuess => "zxcvbn.warning.short_keyboard_patterns",
            W::RepeatsLikeAaaAreEasyToGuess => "zxcvbn.warning.repeats_aaa",
            W::RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess => "zxcvbn.warning.repeats_abcabc",
            W::ThisIsATop10Password => "zxcvbn.warning.top10",
            W::ThisIsATop100Password => "zxcvbn.warning.top100",
            W::ThisIsACommonPassword => "zxcvbn.warning.common",
            W::ThisIsSimilarToACommonlyUsedPassword => "zxcvbn.warning.similar_to_common",
            W::SequencesLikeAbcAreEasyToGuess => "zxcvbn.warning.sequences",
            W::RecentYearsAreEasyToGuess => "zxcvbn.warning.recent_years",
            W::AWordByItselfIsEasyToGuess => "zxcvbn.warning.word_by_itself",
            W::DatesAreOftenEasyToGuess => "zxcvbn.warning.dates",
            W::NamesAndSurnamesByThemselvesAreEasyToGuess => "zxcvbn.warning.names_by_themselves",
            W::CommonNamesAndSurnamesAreEasyToGuess => "zxcvbn.warning.common_names",
        };
        herald_core::msg!("password.weak_hint").nested("warning", Msg::new(key))
    });
    let suggestion = feedback.and_then(|f| f.suggestions().first().copied()).map(|s| {
        Msg::new(match s {
            S::UseAFewWordsAvoidCommonPhrases => "zxcvbn.suggestion.few_words",
            S::NoNeedForSymbolsDigitsOrUppercaseLetters => "zxcvbn.suggestion.no_need_for_symbols",
            S::AddAnotherWordOrTwo => "zxcvbn.suggestion.add_a_word",
            S::CapitalizationDoesntHelpVeryMuch => "zxcvbn.suggestion.capitalization",
            S::AllUppercaseIsAlmostAsEasyToGuessAsAllLowercase => "zxcvbn.suggestion.all_uppercase",
            S::ReversedWordsArentMuchHarderToGuess => "zxcvbn.suggestion.reversed_words",
            S::PredictableSubstitutionsDontHelpVeryMuch => "zxcvbn.suggestion.substitutions",
            S::UseALongerKeyboardPatternWithMoreTurns => "zxcvbn.suggestion.longer_keyboard_pattern",
            S::AvoidRepeatedWordsAndCharacters => "zxcvbn.suggestion.avoid_repeats",
            S::AvoidSequences => "zxcvbn.suggestion.avoid_sequences",
            S::AvoidRecentYears => "zxcvbn.suggestion.avoid_recent_years",
            S::AvoidYearsThatAreAssociatedWithYou => "zxcvbn.suggestion.avoid_your_years",
            S::AvoidDatesAndYearsThatAreAssociatedWithYou => "zxcvbn.suggestion.avoid_your_dates",
        })
    });
    herald_core::msg!("password.weak")
        .nested("hint", warning.unwrap_or_else(|| Msg::verbatim("")))
        .nested("advice", suggestion.unwrap_or_else(|| herald_core::msg!("password.advice")))
}

pub async fn hash_password(password: &str) -> Result<String, ApiError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?
    .map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))
}

/// Verify against `hash`, or against a fixed dummy hash when there is none so
/// that unknown logins take as long as wrong passwords.
pub async fn verify_password(password: &str, hash: Option<String>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let password = password.to_string();
    let known = hash.is_some();
    tokio::task::spawn_blocking(move || {
        let h = hash.unwrap_or_else(|| {
            DUMMY
                .get_or_init(|| {
                    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
                    Argon2::default().hash_password(b"not a password", &salt).map(|h| h.to_string()).unwrap_or_default()
                })
                .clone()
        });
        let ok = PasswordHash::new(&h).is_ok_and(|p| Argon2::default().verify_password(password.as_bytes(), &p).is_ok());
        ok && known
    })
    .await
    .unwrap_or(false)
}

/// Check the caller's own current password (a wrong one is a 403 naming `field`).
pub async fn check_current_password(caller: &Caller, field: &str, given: Option<&str>) -> Result<(), ApiError> {
    let Some(given) = given else {
        // Needed only when the user edited is the caller: a 422, as the document cannot say so.
        return Err(
            ApiError::new(ErrorKind::Unprocessable, "current_password_needed", herald_core::msg!("password.current_needed")).with_field(field)
        );
    };
    if !verify_password(given, caller.user.password_hash.clone()).await {
        return Err(ApiError::new(ErrorKind::Forbidden, "wrong_password", herald_core::msg!("password.wrong")).with_field(field));
    }
    Ok(())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Failed logins of one login name (known or not, so that a locked name and
/// an unknown one answer alike), under the platform tenant keyed by a hash
/// of the name.
pub const ATTEMPTS: &str = "login_attempts";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attempts {
    /// Attempts in the window still counted as failures: an attempt counts
    /// from before its password is checked, so parallel attempts cannot pass
    /// the limit while they are being checked.
    #[serde(default)]
    pub failures: Vec<Millis>,
    #[serde(default)]
    pub locked_until: Millis,
}

impl Attempts {
    /// Count an attempt before checking it: Ok(its time), or Err(ms until the lock ends).
    fn begin(&mut self, now: Millis) -> Result<Millis, Millis> {
        if self.locked_until > now {
            return Err(self.locked_until - now);
        }
        self.failures.retain(|t| now - *t < FAILURE_WINDOW_MS);
        if self.failures.len() >= MAX_FAILURES {
            self.failures.clear();
            self.locked_until = now + LOCK_MS;
            return Err(LOCK_MS);
        }
        self.failures.push(now);
        Ok(now)
    }

    /// The attempt begun at `started` was checked: a right password clears the
    /// failures counted up to it; a wrong one stays counted and locks the name
    /// at the limit. Some(ms until the lock ends) when the name is locked.
    fn finish(&mut self, started: Millis, ok: bool, now: Millis) -> Option<Millis> {
        if self.locked_until > now {
            return Some(self.locked_until - now);
        }
        if ok {
            self.failures.retain(|t| *t > started);
            return None;
        }
        self.failures.retain(|t| now - *t < FAILURE_WINDOW_MS);
        if self.failures.len() >= MAX_FAILURES {
            self.failures.clear();
            self.locked_until = now + LOCK_MS;
            return Some(LOCK_MS);
        }
        None
    }
}

/// One in-process gate per hash bucket of login names: attempts on one name
/// are counted one at a time here, and by compare-and-set across processes.
fn gate(key: &str) -> &'static tokio::sync::Mutex<()> {
    static GATES: std::sync::OnceLock<Vec<tokio::sync::Mutex<()>>> = std::sync::OnceLock::new();
    let gates = GATES.get_or_init(|| (0..64).map(|_| tokio::sync::Mutex::new(())).collect());
    let i = usize::from_str_radix(&key[..4], 16).unwrap_or(0) % gates.len();
    &gates[i]
}

async fn change_attempts<R>(app: &App, login: &str, mut f: impl FnMut(&mut Attempts) -> R) -> Result<R, ApiError> {
    let key = token_hash(&format!("login:{login}"));
    let repo = Repo::new(app.deps.backends.config.as_ref(), PLATFORM);
    let _one_at_a_time = gate(&key).lock().await;
    loop {
        let mut out = None;
        let found = repo
            .update::<Attempts>(ATTEMPTS, &key, |a| {
                out = Some(f(a));
                Ok(())
            })
            .await?;
        if let (Some(_), Some(out)) = (found, out) {
            return Ok(out);
        }
        let mut fresh = Attempts::default();
        let out = f(&mut fresh);
        if repo.create(ATTEMPTS, &key, &fresh).await? {
            return Ok(out);
        }
    }
}

impl Attempts {
    /// Nothing left to remember: no failure in the window, no lock.
    fn forgotten(&self, now: Millis) -> bool {
        self.locked_until <= now && self.failures.iter().all(|t| now - *t >= FAILURE_WINDOW_MS)
    }
}

/// Delete the attempt records that no longer count (a name tried once, or by
/// someone spraying made-up names, would otherwise stay forever); returns how
/// many. A record changed meanwhile is written again by its attempt.
pub async fn sweep_attempts(app: &App) -> Result<usize, ApiError> {
    let now = herald_core::now_ms();
    let mut gone = 0;
    for doc in app.deps.backends.config.docs(PLATFORM, ATTEMPTS).await? {
        let stale = serde_json::from_value::<Attempts>(doc.body).map_or(true, |a| a.forgotten(now));
        if stale {
            let _one_at_a_time = gate(&doc.id).lock().await;
            gone += usize::from(app.deps.backends.config.delete_doc(PLATFORM, ATTEMPTS, &doc.id).await?);
        }
    }
    Ok(gone)
}

/// Count a login attempt before its password is checked: Ok(token for
/// `finish_attempt`), or Err(ms until the lock ends).
pub async fn begin_attempt(app: &App, login: &str) -> Result<Result<Millis, Millis>, ApiError> {
    let now = herald_core::now_ms();
    // (lock before, answer, lock after): counted in herald_admin_logins_total / _lockouts_total.
    change_attempts(app, login, |a| (a.locked_until, a.begin(now), a.locked_until)).await.map(|t| crate::metrics::get().begun(t))
}

/// Settle an attempt; Some(ms until the lock ends) when the login is (now) locked.
pub async fn finish_attempt(app: &App, login: &str, started: Millis, ok: bool) -> Result<Option<Millis>, ApiError> {
    let now = herald_core::now_ms();
    change_attempts(app, login, |a| (a.locked_until, a.finish(started, ok, now), a.locked_until)).await.map(|t| crate::metrics::get().finished(ok, t))
}

/// Open a session; returns its token (shown once) and expiry.
pub async fn start_session(app: &App, tenant: &str, user: &str, user_agent: Option<&str>) -> Result<(String, Millis), ApiError> {
    let token = format!("hs_{}", hex::encode(rand::random::<[u8; 32]>()));
    let now = herald_core::now_ms();
    let expires_at = now + idle_ms(app);
    let user_agent = user_agent.map(|a| a.chars().take(200).collect());
    let s = Session { tenant: tenant.into(), user: user.into(), expires_at, created_at: now, user_agent };
    Repo::new(app.deps.backends.config.as_ref(), PLATFORM).put(SESSION, &token_hash(&token), &s).await?;
    Ok((token, expires_at))
}

fn idle_ms(app: &App) -> Millis {
    i64::from(app.cfg.session_idle_minutes) * 60_000
}

pub fn session_cookie(app: &App, token: &str, max_age_secs: i64) -> String {
    let secure = if app.cfg.cookie_secure() { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

/// The session token of a request: the cookie, or `Authorization: Bearer`.
pub fn request_token(parts: &Parts) -> Option<String> {
    if let Some(b) = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        return Some(b.trim().to_string());
    }
    parts.headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE && !v.is_empty()).then(|| v.to_string())
    })
}

pub async fn end_session(app: &App, token: &str) -> Result<(), ApiError> {
    Repo::new(app.deps.backends.config.as_ref(), PLATFORM).delete(SESSION, &token_hash(token)).await.map(|_| ())
}

/// The public id of a session: a prefix of its key (the token's hash).
pub fn session_id(key: &str) -> &str {
    &key[..key.len().min(16)]
}

/// The live sessions of one user as (key, session); expired ones met on the
/// way are deleted.
pub async fn sessions_of(app: &App, tenant: &str, user: &str) -> Result<Vec<(String, Session)>, ApiError> {
    let platform = Repo::new(app.deps.backends.config.as_ref(), PLATFORM);
    let now = herald_core::now_ms();
    let mut out = vec![];
    for doc in app.deps.backends.config.docs(PLATFORM, SESSION).await? {
        let Ok(s) = serde_json::from_value::<Session>(doc.body) else {
            continue;
        };
        if s.expires_at <= now {
            platform.delete(SESSION, &doc.id).await?;
        } else if s.tenant == tenant && s.user == user {
            out.push((doc.id, s));
        }
    }
    Ok(out)
}

/// End every session of a user but `keep` (a session key); returns how many ended.
pub async fn end_sessions_of(app: &App, tenant: &str, user: &str, keep: Option<&str>) -> Result<usize, ApiError> {
    let platform = Repo::new(app.deps.backends.config.as_ref(), PLATFORM);
    let mut n = 0;
    for (key, _) in sessions_of(app, tenant, user).await? {
        if Some(key.as_str()) != keep && platform.delete(SESSION, &key).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// Who is calling, with what they may do and see: each permission with the
/// data it reaches, in the tenant's enabled apps (rules in `herald_core::rbac`).
pub struct Caller {
    pub tenant: String,
    pub user: User,
    pub access: Access,
    /// The key of the caller's session.
    pub session: String,
}

/// How many users hold full rights.
fn full_admins(roles: &[Role], users: &[User]) -> usize {
    users.iter().filter(|u| Rights::of_user(u, roles).is_full()).count()
}

/// Refuse a change to roles or users (applied by `change` to the current
/// lists) that would leave a tenant that has a full administrator without one.
pub async fn keep_an_admin(repo: &Repo<'_>, change: impl FnOnce(&mut Vec<Role>, &mut Vec<User>)) -> Result<(), ApiError> {
    let roles: Vec<Role> = repo.list(ROLE).await?;
    let users: Vec<User> = repo.list(directory::USER).await?;
    let before = full_admins(&roles, &users);
    let (mut roles2, mut users2) = (roles, users);
    change(&mut roles2, &mut users2);
    if before > 0 && full_admins(&roles2, &users2) == 0 {
        return Err(ApiError::new(ErrorKind::Conflict, "last_admin", herald_core::msg!("rbac.last_admin")));
    }
    Ok(())
}

impl Caller {
    /// The one check of a handler: the data `p` reaches (403 `forbidden`
    /// without it, 403 `app_disabled` when its app is not enabled).
    pub fn require(&self, p: Permission) -> Result<&Reach, ApiError> {
        self.access.require(p)
    }

    /// Refuse acting on something (a role, a user) that holds rights the caller lacks.
    pub fn covers(&self, field: &str, what: herald_core::i18n::Msg, rights: &Rights) -> Result<(), ApiError> {
        self.access.covers(field, &what, rights)
    }

    pub fn repo<'a>(&'a self, app: &'a App) -> Repo<'a> {
        Repo::new(app.deps.backends.config.as_ref(), &self.tenant)
    }
}

fn unauthenticated() -> Failure {
    Failure(ApiError::new(ErrorKind::Unauthenticated, "unauthenticated", herald_core::msg!("auth.log_in_first")))
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let token = request_token(parts).ok_or_else(unauthenticated)?;
        let platform = Repo::new(app.deps.backends.config.as_ref(), PLATFORM);
        let key = token_hash(&token);
        let mut session: Session = platform.get(SESSION, &key).await?.ok_or_else(unauthenticated)?;
        let now = herald_core::now_ms();
        if session.expires_at <= now {
            platform.delete(SESSION, &key).await?;
            return Err(unauthenticated());
        }
        // Sliding expiry, written at most once a minute.
        if session.expires_at - now < idle_ms(app) - 60_000 {
            session.expires_at = now + idle_ms(app);
            platform.put(SESSION, &key, &session).await?;
        }
        let repo = Repo::new(app.deps.backends.config.as_ref(), &session.tenant);
        let user: User = repo.get(directory::USER, &session.user).await?.ok_or_else(unauthenticated)?;
        let mut roles = vec![];
        for id in &user.roles {
            roles.extend(repo.get::<Role>(ROLE, id).await?);
        }
        let rights = Rights::of(&roles);
        let tree: Vec<Unit> = if rights.0.values().any(|s| !s.all_units && !s.units.is_empty()) { repo.list(directory::UNIT).await? } else { vec![] };
        let apps: Vec<Enablement> = repo.list(APP).await?;
        let access = Access::new(&rights, &tree, apps.into_iter().map(|a| a.app));
        Ok(Caller { tenant: session.tenant, user, access, session: key })
    }
}

/// Upgrade: roles that held every permission of the catalogue before
/// `Permission::NEW` were added get those too, once (a marker records it), so
/// an existing Administrator role stays a full administrator.
pub async fn grant_new_permissions(app: &App) -> Result<(), ApiError> {
    let platform = Repo::new(app.deps.backends.config.as_ref(), PLATFORM);
    let new: Vec<&str> = Permission::NEW.iter().map(|p| p.as_str()).collect();
    let marker = format!("permissions.{}", new.join(","));
    if platform.get::<serde_json::Value>("migration", &marker).await?.is_some() {
        return Ok(());
    }
    let old: Vec<&str> = Permission::ALL.iter().filter(|p| !Permission::NEW.contains(p)).map(|p| p.as_str()).collect();
    for tenant in app.deps.backends.config.tenants().await? {
        let repo = Repo::new(app.deps.backends.config.as_ref(), &tenant.id);
        for role in repo.list::<Role>(ROLE).await? {
            if !old.iter().all(|p| role.permissions.iter().any(|g| g.id == *p)) {
                continue;
            }
            // On the widest scope the role holds its other permissions.
            let mut scope = Scope::default();
            role.permissions.iter().for_each(|g| scope.merge(&g.scope()));
            repo.update::<Role>(ROLE, &role.id, |r| {
                for p in &new {
                    if !r.permissions.iter().any(|g| g.id == *p) {
                        r.permissions.push(Grant { id: p.to_string(), all_units: scope.all_units, units: scope.units.clone() });
                    }
                }
                Ok(())
            })
            .await?;
            tracing::info!(tenant = %tenant.id, role = %role.name, "granted {:?} on upgrade", new);
        }
    }
    platform.put("migration", &marker, &serde_json::json!({"at": herald_core::now_ms()})).await?;
    Ok(())
}

/// Upgrade: apps gate their permissions since this release, so every tenant
/// registered before keeps the whole market enabled (once; a marker records it).
pub async fn enable_apps_of_earlier_tenants(app: &App) -> Result<(), ApiError> {
    let platform = Repo::new(app.deps.backends.config.as_ref(), PLATFORM);
    let (kind, marker) = herald_core::rbac::APPS_GATE;
    if platform.get::<serde_json::Value>(kind, marker).await?.is_some() {
        return Ok(());
    }
    for tenant in app.deps.backends.config.tenants().await? {
        enable_apps(&Repo::new(app.deps.backends.config.as_ref(), &tenant.id), "upgrade").await?;
    }
    platform.put(kind, marker, &serde_json::json!({"at": herald_core::now_ms()})).await?;
    Ok(())
}

/// Enable every app of the market not enabled yet (a new tenant starts with them all).
pub async fn enable_apps(repo: &Repo<'_>, by: &str) -> Result<(), ApiError> {
    for id in APPS {
        let record = Enablement { app: id.to_string(), enabled_at: herald_core::now_ms(), enabled_by: by.to_string() };
        repo.create(APP, id, &record).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules() {
        for ok in ["correct horse battery", "Correct-horse-9", "User-password-1", "Limited-pass-1", "sam password 123"] {
            assert!(check_password("p", ok, Some("someone"), &[]).is_ok(), "{ok}: {:?}", check_password("p", ok, Some("someone"), &[]));
        }
        assert!(check_password("p", "Secret-pass-t-abc123", Some("t-abc123"), &[]).is_ok());
        for weak in ["          ", "aaaaaaaaaa", "password123", "1234567890", "qwertyuiop"] {
            assert!(check_password("p", weak, None, &[]).is_err(), "{weak}");
        }
        assert!(check_password("p", "boss.login.x", Some("boss.login.x"), &[]).is_err());
        assert!(check_password("p", "boss.login.x!", Some("boss.login.x"), &[]).is_err());
        assert_eq!(check_password("pw", "aaaaaaaaaa", None, &[]).unwrap_err().field.as_deref(), Some("pw"));
    }

    #[test]
    fn parallel_attempts_lock_at_the_limit() {
        let mut a = Attempts::default();
        let started: Vec<_> = (0..40).map(|_| a.begin(1_000)).collect();
        assert_eq!(started.iter().filter(|s| s.is_ok()).count(), MAX_FAILURES);
        assert!(a.locked_until > 1_000);
        // The right password among the first five still meets the lock.
        assert!(a.finish(1_000, true, 1_050).is_some());
        let mut b = Attempts::default();
        for _ in 0..4 {
            let t = b.begin(10).unwrap();
            assert!(b.finish(t, false, 11).is_none());
        }
        let t = b.begin(20).unwrap();
        assert!(b.finish(t, true, 21).is_none());
        assert!(b.failures.is_empty(), "a right password clears the count");
        assert!(b.forgotten(22), "nothing left to remember after a right password");
    }

    #[test]
    fn records_are_forgotten_only_when_they_no_longer_count() {
        let mut a = Attempts::default();
        let t = a.begin(0).unwrap();
        a.finish(t, false, 1);
        assert!(!a.forgotten(FAILURE_WINDOW_MS - 1), "a failure in the window counts");
        assert!(a.forgotten(FAILURE_WINDOW_MS + 1));
        let locked = Attempts { failures: vec![], locked_until: 500 };
        assert!(!locked.forgotten(499) && locked.forgotten(500));
    }
}
