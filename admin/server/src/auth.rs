//! Passwords (argon2id), sessions, login lockout, and the caller of a request
//! with their function permissions and data scope (RBAC).

use std::collections::HashSet;
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

use crate::api::Failure;
use crate::app::App;
use herald_core::docs::Repo;

pub const COOKIE: &str = "herald_session";
/// Platform-wide documents (logins, sessions) live under this tenant.
pub const PLATFORM: &str = "*";
pub const LOGIN: &str = "login";
pub const SESSION: &str = "session";
pub const ROLE: &str = "role";

const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW_MS: Millis = 15 * 60 * 1000;
const LOCK_MS: Millis = 15 * 60 * 1000;

/// The permission catalogue: (id, menu, kind).
pub const PERMISSIONS: &[(&str, &str, &str)] = &[
    ("directory.view", "directory", "menu"),
    ("directory.edit", "directory", "button"),
    ("apps.view", "apps", "menu"),
    ("apps.manage", "apps", "button"),
    ("roles.view", "roles", "menu"),
    ("roles.manage", "roles", "button"),
    ("push.view", "push", "menu"),
    ("push.edit", "push", "button"),
    ("push.send", "push", "button"),
    ("tiered.view", "tiered", "menu"),
    ("tiered.edit", "tiered", "button"),
    ("accounts.view", "accounts", "menu"),
    ("accounts.edit", "accounts", "button"),
    ("cost.view", "cost", "menu"),
    ("cost.manage", "cost", "button"),
    ("reports.view", "reports", "menu"),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub permissions: Vec<String>,
    /// Data permission: every org unit…
    pub all_units: bool,
    /// …or these units and their subtrees.
    #[serde(default)]
    pub units: Vec<String>,
    #[serde(default)]
    pub created_at: Millis,
}

/// A login name's record: which user, and recent failures for the lockout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Login {
    pub tenant: String,
    pub user: String,
    #[serde(default)]
    pub failures: Vec<Millis>,
    #[serde(default)]
    pub locked_until: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub tenant: String,
    pub user: String,
    pub expires_at: Millis,
}

pub fn normalize_login(login: &str) -> String {
    login.trim().to_lowercase()
}

pub fn check_password(field: &str, password: &str) -> Result<(), ApiError> {
    if password.chars().count() < 10 {
        return Err(ApiError::invalid(field, "the password must have at least 10 characters"));
    }
    if password.len() > 256 {
        return Err(ApiError::invalid(field, "the password must have at most 256 bytes"));
    }
    Ok(())
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

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Record a failed attempt; returns the lock end when this failure locks the login.
pub fn note_failure(login: &mut Login, now: Millis) -> Option<Millis> {
    login.failures.retain(|t| now - *t < FAILURE_WINDOW_MS);
    login.failures.push(now);
    if login.failures.len() >= MAX_FAILURES {
        login.failures.clear();
        login.locked_until = now + LOCK_MS;
        return Some(login.locked_until);
    }
    None
}

/// Open a session; returns its token (shown once) and expiry.
pub async fn start_session(app: &App, tenant: &str, user: &str) -> Result<(String, Millis), ApiError> {
    let token = format!("hs_{}", hex::encode(rand::random::<[u8; 32]>()));
    let expires_at = herald_core::now_ms() + idle_ms(app);
    let s = Session { tenant: tenant.into(), user: user.into(), expires_at };
    Repo::new(app.config.as_ref(), PLATFORM).put(SESSION, &token_hash(&token), &s).await?;
    Ok((token, expires_at))
}

fn idle_ms(app: &App) -> Millis {
    i64::from(app.cfg.session_idle_minutes) * 60_000
}

pub fn session_cookie(app: &App, token: &str, max_age_secs: i64) -> String {
    let secure = if app.cfg.secure_cookies { "; Secure" } else { "" };
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
    Repo::new(app.config.as_ref(), PLATFORM).delete(SESSION, &token_hash(token)).await.map(|_| ())
}

/// Who is calling, with what they may do and see.
pub struct Caller {
    pub tenant: String,
    pub user: User,
    pub permissions: HashSet<String>,
    pub all_units: bool,
    /// Units in the caller's data scope (subtrees expanded).
    pub units: HashSet<String>,
}

impl Caller {
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.permissions.contains(permission) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorKind::Forbidden, "forbidden", format!("this needs the permission {permission}")))
        }
    }

    pub fn sees_unit(&self, unit: &str) -> bool {
        self.all_units || self.units.contains(unit)
    }

    pub fn repo<'a>(&'a self, app: &'a App) -> Repo<'a> {
        Repo::new(app.config.as_ref(), &self.tenant)
    }
}

fn unauthenticated() -> Failure {
    Failure(ApiError::new(ErrorKind::Unauthenticated, "unauthenticated", "log in first"))
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let token = request_token(parts).ok_or_else(unauthenticated)?;
        let platform = Repo::new(app.config.as_ref(), PLATFORM);
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
        let repo = Repo::new(app.config.as_ref(), &session.tenant);
        let user: User = repo.get(directory::USER, &session.user).await?.ok_or_else(unauthenticated)?;
        let mut permissions = HashSet::new();
        let (mut all_units, mut roots) = (false, Vec::new());
        for id in &user.roles {
            if let Some(role) = repo.get::<Role>(ROLE, id).await? {
                permissions.extend(role.permissions);
                all_units |= role.all_units;
                roots.extend(role.units);
            }
        }
        let mut units = HashSet::new();
        if !all_units && !roots.is_empty() {
            let tree: Vec<Unit> = repo.list(directory::UNIT).await?;
            for r in &roots {
                units.extend(directory::subtree(&tree, r));
            }
        }
        Ok(Caller { tenant: session.tenant, user, permissions, all_units, units })
    }
}
