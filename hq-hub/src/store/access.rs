//! Roles (角色), groups (分组部门), sub-admin accounts (子管理员) and data permission (数据权限).
//!
//! A role is a set of permission modules from the manual's module tree ([`MODULES`]). A
//! sub-admin account has one role, an optional group and a data scope: the sites whose data
//! it may see. Which projects it sees follows from being a project admin (项目管理员): a
//! sub-admin sees a project it administers, and of that project only the sites it was given
//! there (already limited to its scope). Admins see everything. [`Scope`] is computed once per
//! request and every list, page, export and download filters through it.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::accounts::hash_password;
use super::{is_unique_violation, now_unix, Account, DbError, Store};

/// The permission modules of the manual's module tree (1.3.1): `(key, Chinese, English)`.
pub const MODULES: &[(&str, &str, &str)] = &[
    ("cti.home", "CTI 管理 / 首页", "CTI / Home"),
    ("cti.lists", "CTI 管理 / 黑白名单设置", "CTI / Black and white lists"),
    ("cti.ivr", "CTI 管理 / 语音导航管理", "CTI / IVR"),
    ("cti.voice", "CTI 管理 / 语音库", "CTI / Voice library"),
    ("accounts.accounts", "账号权限管理 / 账号管理", "Accounts / Accounts"),
    ("accounts.roles", "账号权限管理 / 角色管理", "Accounts / Roles"),
    ("accounts.groups", "账号权限管理 / 分组部门", "Accounts / Groups"),
    ("data.customer", "综合管理后台 / 职场数据管理 / 客户资料", "Back office / Site data / Customer data"),
    ("data.business", "综合管理后台 / 职场数据管理 / 业务资料", "Back office / Site data / Business records"),
    ("data.settings", "综合管理后台 / 职场数据管理 / 系统设置", "Back office / Site data / Project settings"),
    ("data.batches", "综合管理后台 / 职场数据管理 / 下发任务管理", "Back office / Site data / Batches"),
    ("data.files", "综合管理后台 / 职场数据管理 / 文件管理", "Back office / Site data / Files"),
    ("data.recordings", "综合管理后台 / 职场数据管理 / 录音管理", "Back office / Site data / Recordings"),
    ("site.business", "职场业务数据", "Site business data"),
    ("site.calls", "职场通话记录", "Site call records"),
    ("site.monitor", "职场监控管理", "Site monitoring"),
    ("reports", "数据报表管理", "Reports"),
    ("billing", "计费账户信息", "Billing"),
    ("notices", "公告管理", "Notices"),
];

/// A role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub modules: Vec<String>,
}

/// A group (department).
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct Group {
    pub id: i64,
    pub name: String,
}

/// An account as the account list shows it.
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct AccountView {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
    pub role_id: Option<i64>,
    pub role_name: Option<String>,
    pub group_id: Option<i64>,
    pub group_name: Option<String>,
    /// `None` = every site.
    pub site_ids: Option<Vec<i64>>,
    pub created_at: i64,
    /// Disabled accounts cannot log in (账号已停用).
    pub disabled: bool,
}

/// A new sub-admin account.
#[derive(Debug, Clone, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct NewAccount {
    pub username: String,
    pub password: String,
    pub role_id: i64,
    #[serde(default)]
    pub group_id: Option<i64>,
    /// The data scope: sites whose data the account sees.
    #[serde(default)]
    pub site_ids: Vec<i64>,
}

/// Failure to manage roles, groups or accounts.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A name is empty.
    #[error("{0} is empty: type a name")]
    EmptyName(&'static str),
    /// The name is taken.
    #[error("{what} {name:?} already exists: choose another name")]
    Duplicate { what: &'static str, name: String },
    /// A module key is not in the module tree.
    #[error("module {0:?} is not in the module tree: use one of the keys GET /api/modules lists")]
    UnknownModule(String),
    /// No such role.
    #[error("role {0} does not exist: create the role first")]
    UnknownRole(i64),
    /// No such group.
    #[error("group {0} does not exist: create the group first")]
    UnknownGroup(i64),
    /// No such site.
    #[error("site {0} does not exist: pick sites from the site register")]
    UnknownSite(i64),
    /// The password is too short.
    #[error("the password must have at least 8 characters")]
    WeakPassword,
    /// The username is not usable.
    #[error("username {0:?} is not valid: use letters, digits, '_' or '-'")]
    BadUsername(String),
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for AccessError {
    fn from(e: rusqlite::Error) -> Self {
        AccessError::Db(DbError(e))
    }
}

/// What one account may see and do. Admins: everything.
#[derive(Debug, Clone)]
pub struct Scope {
    pub account: Account,
    /// `None` = all modules.
    modules: Option<BTreeSet<String>>,
    /// `None` = every site.
    sites: Option<BTreeSet<i64>>,
    /// `None` = every project; otherwise project → the sites of it this account manages.
    projects: Option<BTreeMap<i64, BTreeSet<i64>>>,
}

impl Scope {
    /// Everything (admins, and the store's own tests).
    pub fn all(account: Account) -> Scope {
        Scope { account, modules: None, sites: None, projects: None }
    }

    /// Every module, these sites only (the store's tests).
    #[cfg(test)]
    pub(crate) fn for_sites_in_test(account: Account, sites: &[i64]) -> Scope {
        Scope { account, modules: None, sites: Some(sites.iter().copied().collect()), projects: None }
    }

    pub fn is_admin(&self) -> bool {
        self.account.is_admin
    }

    /// Whether the role grants `module`.
    pub fn has_module(&self, module: &str) -> bool {
        self.modules.as_ref().is_none_or(|m| m.contains(module))
    }

    /// The sites of `project` this account's reports may count: `None` for every site (an
    /// admin, or a scope without limits), otherwise the sites it sees in the project.
    pub fn report_sites(&self, project: i64) -> Option<Vec<i64>> {
        let in_project = self.projects.as_ref().map(|p| p.get(&project).cloned().unwrap_or_default());
        match (in_project, &self.sites) {
            (None, None) => None,
            (Some(p), None) => Some(p.into_iter().collect()),
            (None, Some(s)) => Some(s.iter().copied().collect()),
            (Some(p), Some(s)) => Some(p.intersection(s).copied().collect()),
        }
    }

    /// Whether the account may see site `id`'s data at all.
    pub fn site(&self, id: i64) -> bool {
        self.sites.as_ref().is_none_or(|s| s.contains(&id))
    }

    /// Whether the account may see project `id`.
    pub fn project(&self, id: i64) -> bool {
        self.projects.as_ref().is_none_or(|p| p.contains_key(&id))
    }

    /// Whether the account sees project `project` at every one of `sites` (its files may then
    /// be handed out whole; otherwise only the rows dispatched to its own sites).
    pub fn every_project_site(&self, project: i64, sites: &[i64]) -> bool {
        sites.iter().all(|&site| self.project_site(project, site))
    }

    /// Every (project, site) whose data the account may see, for filtering in SQL; `None`
    /// means everything (an admin).
    pub fn project_site_pairs(&self) -> Option<Vec<(i64, i64)>> {
        let projects = self.projects.as_ref()?;
        Some(
            projects
                .iter()
                .flat_map(|(project, sites)| sites.iter().filter(|site| self.site(**site)).map(move |site| (*project, *site)))
                .collect(),
        )
    }

    /// Whether the account may see data of project `project` at site `site`.
    pub fn project_site(&self, project: i64, site: i64) -> bool {
        self.site(site) && self.projects.as_ref().is_none_or(|p| p.get(&project).is_some_and(|s| s.contains(&site)))
    }
}

fn parse_ids(text: Option<String>) -> Option<Vec<i64>> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

impl Store {
    /// The scope of a logged-in account.
    pub fn scope(&self, account: &Account) -> Result<Scope, DbError> {
        if account.is_admin {
            return Ok(Scope::all(account.clone()));
        }
        let conn = self.conn();
        let (modules, sites): (Option<String>, Option<String>) = conn
            .query_row(
                "SELECT r.modules, a.scope_sites FROM accounts a LEFT JOIN roles r ON r.id = a.role_id WHERE a.id = ?1",
                [account.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((None, Some("[]".to_string())));
        let modules: BTreeSet<String> = modules.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or_default();
        let sites: BTreeSet<i64> = parse_ids(sites).unwrap_or_default().into_iter().collect();
        let mut projects = BTreeMap::new();
        let mut stmt = conn.prepare("SELECT project_id, site_ids FROM project_admins WHERE account_id = ?1")?;
        for row in stmt.query_map([account.id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (project, ids) = row?;
            let ids: BTreeSet<i64> = parse_ids(Some(ids)).unwrap_or_default().into_iter().filter(|s| sites.contains(s)).collect();
            projects.insert(project, ids);
        }
        Ok(Scope { account: account.clone(), modules: Some(modules), sites: Some(sites), projects: Some(projects) })
    }

    /// Creates a role from module keys.
    pub fn create_role(&self, name: &str, modules: &[String]) -> Result<i64, AccessError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(AccessError::EmptyName("role name"));
        }
        let mut keys = BTreeSet::new();
        for module in modules {
            if !MODULES.iter().any(|(key, _, _)| key == module) {
                return Err(AccessError::UnknownModule(module.clone()));
            }
            keys.insert(module.clone());
        }
        let json = serde_json::Value::from(keys.into_iter().collect::<Vec<_>>()).to_string();
        let conn = self.conn();
        match conn.execute("INSERT INTO roles (name, modules, created_at) VALUES (?1, ?2, ?3)", params![name, json, now_unix()]) {
            Ok(_) => Ok(conn.last_insert_rowid()),
            Err(e) if is_unique_violation(&e) => Err(AccessError::Duplicate { what: "role", name: name.to_string() }),
            Err(e) => Err(e.into()),
        }
    }

    pub fn list_roles(&self) -> Result<Vec<Role>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, name, modules FROM roles ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| {
                let modules: String = r.get(2)?;
                Ok(Role { id: r.get(0)?, name: r.get(1)?, modules: serde_json::from_str(&modules).unwrap_or_default() })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Creates a group (department).
    pub fn create_group(&self, name: &str) -> Result<i64, AccessError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(AccessError::EmptyName("group name"));
        }
        let conn = self.conn();
        match conn.execute("INSERT INTO account_groups (name, created_at) VALUES (?1, ?2)", params![name, now_unix()]) {
            Ok(_) => Ok(conn.last_insert_rowid()),
            Err(e) if is_unique_violation(&e) => Err(AccessError::Duplicate { what: "group", name: name.to_string() }),
            Err(e) => Err(e.into()),
        }
    }

    pub fn list_groups(&self) -> Result<Vec<Group>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, name FROM account_groups ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok(Group { id: r.get(0)?, name: r.get(1)? }))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Creates a sub-admin account with a role, a group and a data scope.
    pub fn create_account(&self, new: &NewAccount) -> Result<i64, AccessError> {
        let username = new.username.trim();
        let valid = !username.is_empty()
            && username.len() <= 64
            && username.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(AccessError::BadUsername(username.to_string()));
        }
        if new.password.chars().count() < 8 {
            return Err(AccessError::WeakPassword);
        }
        let hash = hash_password(&new.password).map_err(|e| AccessError::Hash(e.to_string()))?;
        let mut sites: Vec<i64> = new.site_ids.clone();
        sites.sort_unstable();
        sites.dedup();
        let conn = self.conn();
        if conn.query_row("SELECT 1 FROM roles WHERE id = ?1", [new.role_id], |_| Ok(())).optional()?.is_none() {
            return Err(AccessError::UnknownRole(new.role_id));
        }
        if let Some(group) = new.group_id
            && conn.query_row("SELECT 1 FROM account_groups WHERE id = ?1", [group], |_| Ok(())).optional()?.is_none()
        {
            return Err(AccessError::UnknownGroup(group));
        }
        for site in &sites {
            if conn.query_row("SELECT 1 FROM sites WHERE id = ?1", [site], |_| Ok(())).optional()?.is_none() {
                return Err(AccessError::UnknownSite(*site));
            }
        }
        let inserted = conn.execute(
            "INSERT INTO accounts (username, password_hash, is_admin, created_at, role_id, group_id, scope_sites)
             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)",
            params![username, hash, now_unix(), new.role_id, new.group_id, serde_json::Value::from(sites).to_string()],
        );
        match inserted {
            Ok(_) => Ok(conn.last_insert_rowid()),
            Err(e) if is_unique_violation(&e) => Err(AccessError::Duplicate { what: "account", name: username.to_string() }),
            Err(e) => Err(e.into()),
        }
    }

    /// Accounts, oldest first.
    pub fn list_accounts(&self) -> Result<Vec<AccountView>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT a.id, a.username, a.is_admin, a.role_id, r.name, a.group_id, g.name, a.scope_sites, a.created_at, a.disabled
             FROM accounts a LEFT JOIN roles r ON r.id = a.role_id LEFT JOIN account_groups g ON g.id = a.group_id ORDER BY a.id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let is_admin: bool = r.get(2)?;
                Ok(AccountView {
                    id: r.get(0)?,
                    username: r.get(1)?,
                    is_admin,
                    role_id: r.get(3)?,
                    role_name: r.get(4)?,
                    group_id: r.get(5)?,
                    group_name: r.get(6)?,
                    site_ids: if is_admin { None } else { Some(parse_ids(r.get(7)?).unwrap_or_default()) },
                    created_at: r.get(8)?,
                    disabled: r.get(9)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
