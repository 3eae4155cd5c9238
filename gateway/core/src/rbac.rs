//! Roles and function permissions (RBAC) as the admin service stores them
//! (documents of kind `role`), and the rules on them: the one permission
//! type (organised app → menu → button), each permission's data scope, the
//! apps that gate permissions, and what a caller may grant. The admin checks
//! its callers with these; the gateway finds a tenant's cost managers with them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Millis;
use crate::directory::{Unit, subtree};
use crate::error::{ApiError, ErrorKind};

pub const ROLE: &str = "role";

/// A function permission. Roles store permissions by id ("push.view", …)
/// as strings, so a role holding an id this build does not know still loads
/// (it grants nothing here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    DirectoryView,
    DirectoryEdit,
    AppsView,
    AppsManage,
    RolesView,
    RolesManage,
    PushView,
    PushEdit,
    PushSend,
    TieredView,
    TieredEdit,
    AccountsView,
    AccountsEdit,
    CostView,
    CostManage,
    ReportsView,
    /// Set or reset another user's password or login (one's own needs the current password instead).
    UsersPassword,
}

impl Permission {
    /// The catalogue, in the order the console lists it.
    pub const ALL: [Permission; 17] = [
        Permission::DirectoryView,
        Permission::DirectoryEdit,
        Permission::AppsView,
        Permission::AppsManage,
        Permission::RolesView,
        Permission::RolesManage,
        Permission::PushView,
        Permission::PushEdit,
        Permission::PushSend,
        Permission::TieredView,
        Permission::TieredEdit,
        Permission::AccountsView,
        Permission::AccountsEdit,
        Permission::CostView,
        Permission::CostManage,
        Permission::ReportsView,
        Permission::UsersPassword,
    ];

    /// Added after the first release: roles that held every earlier permission get these on upgrade.
    pub const NEW: &[Permission] = &[Permission::UsersPassword];

    /// The id roles store and the API shows.
    pub fn as_str(self) -> &'static str {
        self.entry().0
    }

    /// The console menu it belongs to.
    pub fn menu(self) -> &'static str {
        self.entry().1
    }

    /// The app it belongs to: one of `APPS`, or `BASE_APP` (always on).
    pub fn app(self) -> &'static str {
        match self.menu() {
            "push" => "messaging",
            "tiered" => "tiered-push",
            "reports" => "reports",
            _ => BASE_APP,
        }
    }

    /// Whether its data scope limits what it lists and acts on (data tied to
    /// org units: the directory, pushes and their targets, reports). Others
    /// keep a scope too (it bounds what their holder may grant) that filters nothing.
    pub fn scoped(self) -> bool {
        matches!(self.menu(), "directory" | "push" | "reports")
    }

    /// "menu" (see the menu) or "button" (act in it).
    pub fn kind(self) -> &'static str {
        self.entry().2
    }

    /// The permission of an id; None for an id this build does not know.
    pub fn parse(id: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == id)
    }

    /// (id, menu, kind)
    fn entry(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Permission::DirectoryView => ("directory.view", "directory", "menu"),
            Permission::DirectoryEdit => ("directory.edit", "directory", "button"),
            Permission::AppsView => ("apps.view", "apps", "menu"),
            Permission::AppsManage => ("apps.manage", "apps", "button"),
            Permission::RolesView => ("roles.view", "roles", "menu"),
            Permission::RolesManage => ("roles.manage", "roles", "button"),
            Permission::PushView => ("push.view", "push", "menu"),
            Permission::PushEdit => ("push.edit", "push", "button"),
            Permission::PushSend => ("push.send", "push", "button"),
            Permission::TieredView => ("tiered.view", "tiered", "menu"),
            Permission::TieredEdit => ("tiered.edit", "tiered", "button"),
            Permission::AccountsView => ("accounts.view", "accounts", "menu"),
            Permission::AccountsEdit => ("accounts.edit", "accounts", "button"),
            Permission::CostView => ("cost.view", "cost", "menu"),
            Permission::CostManage => ("cost.manage", "cost", "button"),
            Permission::ReportsView => ("reports.view", "reports", "menu"),
            Permission::UsersPassword => ("users.password", "directory", "button"),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The apps of the market, in the order the console lists them; a permission
/// of an app the tenant has not enabled grants nothing (403 `app_disabled`).
pub const APPS: [&str; 3] = ["messaging", "tiered-push", "reports"];
/// The app of the platform's own menus (directory, apps, roles, accounts, cost): always on.
pub const BASE_APP: &str = "base";
/// Documents of this kind (id = the app) record the tenant's enabled apps.
pub const APP: &str = "app";
/// The config store's platform-wide documents (the tenant `*`).
pub const PLATFORM: &str = "*";
/// The platform's migration marker (kind `migration`) the admin writes once
/// every earlier tenant has its apps recorded: from then on a tenant without
/// an app's record has it disabled, and the gateway refuses its features too.
pub const APPS_GATE: (&str, &str) = ("migration", "apps.gate");

/// The record of an enabled app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enablement {
    pub app: String,
    pub enabled_at: Millis,
    pub enabled_by: String,
}

/// A data scope: every org unit, or these units and their subtrees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub all_units: bool,
    #[serde(default)]
    pub units: Vec<String>,
}

impl Scope {
    /// Widen to cover `other` too.
    pub fn merge(&mut self, other: &Scope) {
        self.all_units |= other.all_units;
        for u in &other.units {
            if !self.units.contains(u) {
                self.units.push(u.clone());
            }
        }
    }
}

/// One function permission of a role with its data scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "push.view", "all_units": false, "units": ["01J9Z8Q4K0"]}))]
pub struct Grant {
    /// Permission id (see `GET /permissions`).
    #[schema(example = "push.view")]
    pub id: String,
    /// Data scope: every org unit…
    #[serde(default)]
    pub all_units: bool,
    /// …or these units and their subtrees.
    #[serde(default)]
    pub units: Vec<String>,
}

impl Grant {
    pub fn scope(&self) -> Scope {
        Scope { all_units: self.all_units, units: self.units.clone() }
    }
}

/// A role: a description, and function permissions each with its data scope.
/// Stored roles of the first format (permission ids and one data scope for
/// the whole role) load with that scope on each permission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredRole")]
pub struct Role {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<Grant>,
    #[serde(default)]
    pub created_at: Millis,
}

/// A role as stored, in either format.
#[derive(Deserialize)]
struct StoredRole {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: Vec<StoredGrant>,
    /// First format: the role's one data scope…
    #[serde(default)]
    all_units: bool,
    #[serde(default)]
    units: Vec<String>,
    #[serde(default)]
    created_at: Millis,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StoredGrant {
    /// …and permission ids.
    Id(String),
    Scoped(Grant),
}

impl From<StoredRole> for Role {
    fn from(s: StoredRole) -> Role {
        let permissions = s
            .permissions
            .into_iter()
            .map(|g| match g {
                StoredGrant::Id(id) => Grant { id, all_units: s.all_units, units: s.units.clone() },
                StoredGrant::Scoped(g) => g,
            })
            .collect();
        Role { id: s.id, name: s.name, description: s.description, permissions, created_at: s.created_at }
    }
}

impl Role {
    /// Whether the role grants `p` (on any scope).
    pub fn grants(&self, p: Permission) -> bool {
        self.permissions.iter().any(|g| g.id == p.as_str())
    }
}

/// What a set of roles grants: each permission with its data scope (the
/// union of the roles' scopes for it; unit subtrees by their roots).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rights(pub BTreeMap<String, Scope>);

impl Rights {
    pub fn of<'r>(roles: impl IntoIterator<Item = &'r Role>) -> Rights {
        let mut r = Rights::default();
        for role in roles {
            for g in &role.permissions {
                r.0.entry(g.id.clone()).or_default().merge(&g.scope());
            }
        }
        r
    }

    /// The rights of `user` given the tenant's roles.
    pub fn of_user(user: &crate::directory::User, roles: &[Role]) -> Rights {
        Rights::of(roles.iter().filter(|r| user.roles.contains(&r.id)))
    }

    /// Every permission in the catalogue, each on every unit.
    pub fn is_full(&self) -> bool {
        Permission::ALL.iter().all(|p| self.0.get(p.as_str()).is_some_and(|s| s.all_units))
    }
}

/// The data a permission reaches: every unit, or these (subtrees expanded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reach {
    pub all_units: bool,
    pub units: HashSet<String>,
}

impl Reach {
    pub fn sees(&self, unit: &str) -> bool {
        self.all_units || self.units.contains(unit)
    }

    /// `sees` as a store filter on a document's `field` (None: every unit).
    pub fn filter(&self, field: &str) -> Option<crate::doc_query::DocFilter> {
        let mut units: Vec<&String> = self.units.iter().collect();
        units.sort();
        (!self.all_units)
            .then(|| crate::doc_query::DocFilter::In { field: field.into(), values: units.into_iter().map(|u| u.as_str().into()).collect() })
    }
}

/// 403 for a grant or an edit beyond the caller's own rights.
pub fn beyond(field: impl Into<String>, message: impl Into<crate::i18n::Text>) -> ApiError {
    ApiError::new(ErrorKind::Forbidden, "forbidden", message).with_field(field)
}

/// What a caller holds: each permission with the data it reaches, and the
/// tenant's enabled apps.
#[derive(Debug, Clone, Default)]
pub struct Access {
    rights: Rights,
    reach: HashMap<String, Reach>,
    apps: HashSet<String>,
}

impl Access {
    /// Expand `rights` over the org tree `units`; `apps` are the enabled apps.
    pub fn new(rights: &Rights, units: &[Unit], apps: impl IntoIterator<Item = String>) -> Access {
        let reach = rights
            .0
            .iter()
            .map(|(p, s)| {
                let units = if s.all_units { HashSet::new() } else { s.units.iter().flat_map(|r| subtree(units, r)).collect() };
                (p.clone(), Reach { all_units: s.all_units, units })
            })
            .collect();
        Access { rights: rights.clone(), reach, apps: apps.into_iter().collect() }
    }

    /// The rights behind it (scopes by their root units).
    pub fn rights(&self) -> &Rights {
        &self.rights
    }

    /// The enabled apps (sorted).
    pub fn apps(&self) -> Vec<String> {
        let mut v: Vec<String> = self.apps.iter().cloned().collect();
        v.sort();
        v
    }

    /// Every unit some permission reaches: (all units?, the units).
    pub fn union(&self) -> (bool, HashSet<String>) {
        let all = self.reach.values().any(|r| r.all_units);
        (all, if all { HashSet::new() } else { self.reach.values().flat_map(|r| r.units.iter().cloned()).collect() })
    }

    /// Whether the tenant enabled `app` (the base app always is).
    pub fn app_enabled(&self, app: &str) -> bool {
        app == BASE_APP || self.apps.contains(app)
    }

    /// The check of an operation: the data `p` reaches; 403 `forbidden`
    /// without the permission, 403 `app_disabled` when its app is off.
    pub fn require(&self, p: Permission) -> Result<&Reach, ApiError> {
        let reach = self
            .reach
            .get(p.as_str())
            .ok_or_else(|| ApiError::new(ErrorKind::Forbidden, "forbidden", crate::msg!("rbac.needs_permission", permission = p)))?;
        if !self.app_enabled(p.app()) {
            return Err(ApiError::new(ErrorKind::Forbidden, "app_disabled", crate::msg!("rbac.app_disabled", app = p.app())));
        }
        Ok(reach)
    }

    /// Whether the caller holds `p` (in an enabled app).
    pub fn can(&self, p: Permission) -> bool {
        self.require(p).is_ok()
    }

    /// The permission ids usable: held, in an enabled app (sorted; ids this build does not know are left out).
    pub fn usable(&self) -> Vec<String> {
        let mut v: Vec<String> = self.reach.keys().filter(|p| Permission::parse(p).is_some_and(|p| self.can(p))).cloned().collect();
        v.sort();
        v
    }

    /// Whether any permission reaches `unit` (a unit outside every scope is unknown to the caller).
    pub fn sees_any(&self, unit: &str) -> bool {
        self.reach.values().any(|r| r.sees(unit))
    }

    /// The one rule for granting: permission `id` on `scope` only when the
    /// caller holds `id` on at least that scope. The error names `field`
    /// (the permission), `field_all` (all units) or `field_units[j]`.
    pub fn may_grant(&self, field: &str, field_all: &str, field_units: &str, id: &str, scope: &Scope) -> Result<(), ApiError> {
        let Some(own) = self.reach.get(id) else {
            return Err(beyond(field, crate::msg!("rbac.grant_permission", permission = id)));
        };
        if scope.all_units && !own.all_units {
            return Err(beyond(field_all, crate::msg!("rbac.grant_all_units", permission = id)));
        }
        for (j, u) in scope.units.iter().enumerate() {
            if !own.sees(u) {
                return Err(beyond(format!("{field_units}[{j}]"), crate::msg!("rbac.grant_unit", permission = id, unit = u)));
            }
        }
        Ok(())
    }

    /// Refuse acting on something (a role, a user) that holds rights beyond the caller's.
    pub fn covers(&self, field: &str, what: &crate::i18n::Msg, rights: &Rights) -> Result<(), ApiError> {
        for (p, s) in &rights.0 {
            let Some(own) = self.reach.get(p) else {
                return Err(beyond(field, crate::msg!("rbac.holds_permission", permission = p).nested("what", what.clone())));
            };
            if s.all_units && !own.all_units {
                return Err(beyond(field, crate::msg!("rbac.holds_all_units", permission = p).nested("what", what.clone())));
            }
            if let Some(u) = s.units.iter().find(|u| !own.sees(u)) {
                return Err(beyond(field, crate::msg!("rbac.holds_unit", permission = p, unit = u).nested("what", what.clone())));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let ids: std::collections::HashSet<_> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(ids.len(), Permission::ALL.len());
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
            assert_eq!(p.to_string(), p.as_str());
            assert!(["menu", "button"].contains(&p.kind()));
        }
        assert_eq!(Permission::parse("cost.manage"), Some(Permission::CostManage));
        assert_eq!(Permission::parse("no.such"), None);
    }

    #[test]
    fn a_stored_role_with_an_unknown_permission_still_loads() {
        let r: Role = serde_json::from_value(serde_json::json!({
            "id": "r1", "name": "Cost", "permissions": ["cost.manage", "from.a.newer.build"], "all_units": true,
        }))
        .unwrap();
        assert!(r.grants(Permission::CostManage));
        assert!(!r.grants(Permission::CostView));
        assert_eq!(r.permissions.len(), 2, "unknown ids are kept as stored");
        assert!(r.permissions.iter().all(|g| g.all_units), "the role's scope on each");
    }

    fn unit(id: &str, parent: Option<&str>) -> Unit {
        Unit { id: id.into(), name: id.into(), parent: parent.map(Into::into), created_at: 0 }
    }

    fn role(grants: &[(&str, bool, &[&str])]) -> Role {
        let permissions = grants
            .iter()
            .map(|(id, all, us)| Grant { id: id.to_string(), all_units: *all, units: us.iter().map(|u| u.to_string()).collect() })
            .collect();
        Role { id: "r".into(), name: "r".into(), description: String::new(), permissions, created_at: 0 }
    }

    #[test]
    fn a_first_format_role_gets_its_scope_on_each_permission_and_saves_in_the_new_format() {
        let r: Role = serde_json::from_value(serde_json::json!({
            "id": "r1", "name": "East", "permissions": ["push.view", "directory.view"], "all_units": false, "units": ["east"], "created_at": 5,
        }))
        .unwrap();
        assert_eq!(r.description, "");
        assert_eq!(
            r.permissions,
            vec![
                Grant { id: "push.view".into(), all_units: false, units: vec!["east".into()] },
                Grant { id: "directory.view".into(), all_units: false, units: vec!["east".into()] },
            ]
        );
        let saved = serde_json::to_value(&r).unwrap();
        assert!(saved.get("all_units").is_none(), "{saved}");
        assert_eq!(saved["permissions"][0], serde_json::json!({"id": "push.view", "all_units": false, "units": ["east"]}));
        let again: Role = serde_json::from_value(saved).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn each_permission_reaches_its_own_scope() {
        let tree = [unit("root", None), unit("east", Some("root")), unit("sh", Some("east")), unit("south", Some("root"))];
        let a = role(&[("push.view", false, &["east"]), ("directory.view", true, &[])]);
        let b = role(&[("push.view", false, &["south"])]);
        let rights = Rights::of([&a, &b]);
        let access = Access::new(&rights, &tree, ["messaging".to_string()]);
        let push = access.require(Permission::PushView).unwrap();
        assert!(push.sees("sh") && push.sees("south") && !push.sees("root"), "the union of the roles' subtrees");
        assert!(access.require(Permission::DirectoryView).unwrap().sees("root"));
        assert_eq!(access.require(Permission::PushEdit).unwrap_err().code, "forbidden");
        assert!(!rights.is_full());
    }

    #[test]
    fn a_permission_of_a_disabled_app_grants_nothing() {
        let r = role(&[("push.view", true, &[]), ("reports.view", true, &[]), ("directory.view", true, &[])]);
        let access = Access::new(&Rights::of([&r]), &[], ["reports".to_string()]);
        let e = access.require(Permission::PushView).unwrap_err();
        assert_eq!((e.kind, e.code), (ErrorKind::Forbidden, "app_disabled"));
        assert!(access.can(Permission::ReportsView) && access.can(Permission::DirectoryView), "the base app is always on");
        for p in Permission::ALL {
            assert!(p.app() == BASE_APP || APPS.contains(&p.app()), "{p}");
        }
    }

    #[test]
    fn nobody_grants_beyond_their_own_permission_and_scope() {
        let tree = [unit("root", None), unit("east", Some("root")), unit("sh", Some("east")), unit("west", Some("root"))];
        let mgr = role(&[("roles.manage", true, &[]), ("push.view", false, &["east"])]);
        let access = Access::new(&Rights::of([&mgr]), &tree, []);
        let east = |us: &[&str]| Scope { all_units: false, units: us.iter().map(|u| u.to_string()).collect() };
        assert!(access.may_grant("p", "a", "u", "push.view", &east(&["sh"])).is_ok(), "a subtree of one's own");
        assert_eq!(access.may_grant("p", "a", "u", "push.edit", &east(&[])).unwrap_err().field.as_deref(), Some("p"), "a permission not held");
        assert_eq!(access.may_grant("p", "a", "u", "push.view", &Scope { all_units: true, units: vec![] }).unwrap_err().field.as_deref(), Some("a"));
        assert_eq!(access.may_grant("p", "a", "u", "push.view", &east(&["sh", "west"])).unwrap_err().field.as_deref(), Some("u[1]"));
        // Acting on a role or user: every permission and scope must be covered.
        assert!(access.covers("id", &crate::i18n::Msg::verbatim("x"), &Rights::of([&role(&[("push.view", false, &["east"])])])).is_ok());
        assert!(access.covers("id", &crate::i18n::Msg::verbatim("x"), &Rights::of([&role(&[("push.view", true, &[])])])).is_err());
        assert!(
            access
                .covers("id", &crate::i18n::Msg::verbatim("x"), &Rights::of([&role(&[("roles.manage", true, &[]), ("apps.manage", true, &[])])]))
                .is_err()
        );
        // Making oneself administrator: the full catalogue on all units is beyond anyone who lacks it.
        let admin = role(&Permission::ALL.iter().map(|p| (p.as_str(), true, &[][..])).collect::<Vec<_>>());
        assert!(Rights::of([&admin]).is_full());
        assert!(access.covers("roles[0]", &crate::i18n::Msg::verbatim("the role Administrator"), &Rights::of([&admin])).is_err());
    }
}
