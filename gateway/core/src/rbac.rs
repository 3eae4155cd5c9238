//! Roles and function permissions (RBAC) as the admin service stores them
//! (documents of kind `role`). The one permission type: the admin checks its
//! callers with it, and the gateway finds a tenant's cost managers with it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Millis;

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

/// A role: function permissions (stored by id) and data scope.
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

impl Role {
    /// Whether the role grants `p`.
    pub fn grants(&self, p: Permission) -> bool {
        self.permissions.iter().any(|q| q == p.as_str())
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
    }
}
