//! Changing roles and sub-admin accounts after they were created (账号权限管理): a role's
//! name and modules; an account's role, group and data scope; a new password; disabling
//! and enabling.
//!
//! - A disabled account cannot log in and its open sessions end at once (they are deleted
//!   in the same statement batch as the flag), so disabling is the way to lock someone out.
//! - A reset password is random and shown once to the admin who reset it; the account's
//!   sessions end too, so the old password's sessions do not outlive it.
//! - Admin accounts are not edited here: they hold everything, and disabling the last one
//!   would lock HQ out of its own console.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension};
use serde::Deserialize;

use super::accounts::{hash_password, random_password};
use super::{is_unique_violation, DbError, Store, MODULES};

/// An account's role, group and data scope, as the editor sends them.
#[derive(Debug, Clone, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct AccountEdit {
    pub role_id: i64,
    #[serde(default)]
    pub group_id: Option<i64>,
    /// The data scope: sites whose data the account sees.
    #[serde(default)]
    pub site_ids: Vec<i64>,
}

/// Failure to change a role or an account.
#[derive(Debug, thiserror::Error)]
pub enum AccountEditError {
    #[error("account {0} does not exist")]
    UnknownAccount(i64),
    #[error("role {0} does not exist")]
    UnknownRole(i64),
    #[error("group {0} does not exist")]
    UnknownGroup(i64),
    #[error("site {0} does not exist: pick sites from the site register")]
    UnknownSite(i64),
    #[error("module {0:?} is not in the module tree")]
    UnknownModule(String),
    #[error("the role name is empty: type a name")]
    EmptyName,
    #[error("a role named {0:?} already exists: choose another name")]
    Duplicate(String),
    #[error("account {0} is an admin: admins hold every module and cannot be edited or disabled here")]
    Admin(i64),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl AccountEditError {
    /// The same in Chinese, for the console.
    pub fn zh(&self) -> String {
        match self {
            AccountEditError::UnknownAccount(id) => format!("账号 {id} 不存在"),
            AccountEditError::UnknownRole(id) => format!("角色 {id} 不存在"),
            AccountEditError::UnknownGroup(id) => format!("分组 {id} 不存在"),
            AccountEditError::UnknownSite(id) => format!("职场 {id} 不存在：请从职场列表中选择"),
            AccountEditError::UnknownModule(key) => format!("权限模块“{key}”不存在"),
            AccountEditError::EmptyName => "角色名称为空：请填写名称".to_string(),
            AccountEditError::Duplicate(name) => format!("角色“{name}”已存在：请换一个名称"),
            AccountEditError::Admin(_) => "管理员账号拥有全部权限，不能在此修改或停用".to_string(),
            AccountEditError::Hash(e) => format!("无法生成密码：{e}"),
            AccountEditError::Db(e) => format!("数据库错误：{e}"),
        }
    }
}

impl From<rusqlite::Error> for AccountEditError {
    fn from(e: rusqlite::Error) -> Self {
        AccountEditError::Db(DbError(e))
    }
}

impl Store {
    /// Renames a role and replaces its modules; its accounts have the new modules from
    /// their next request on.
    pub fn update_role(&self, id: i64, name: &str, modules: &[String]) -> Result<(), AccountEditError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(AccountEditError::EmptyName);
        }
        let mut keys = BTreeSet::new();
        for module in modules {
            if !MODULES.iter().any(|(key, _, _)| key == module) {
                return Err(AccountEditError::UnknownModule(module.clone()));
            }
            keys.insert(module.clone());
        }
        let json = serde_json::Value::from(keys.into_iter().collect::<Vec<_>>()).to_string();
        match self.conn().execute("UPDATE roles SET name = ?2, modules = ?3 WHERE id = ?1", params![id, name, json]) {
            Ok(0) => Err(AccountEditError::UnknownRole(id)),
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(AccountEditError::Duplicate(name.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether account `id` is an admin; an error if it does not exist.
    fn account_is_admin(conn: &rusqlite::Connection, id: i64) -> Result<bool, AccountEditError> {
        conn.query_row("SELECT is_admin FROM accounts WHERE id = ?1", [id], |r| r.get(0))
            .optional()?
            .ok_or(AccountEditError::UnknownAccount(id))
    }

    /// Changes a sub-admin's role, group and data scope.
    pub fn edit_account(&self, id: i64, edit: &AccountEdit) -> Result<(), AccountEditError> {
        let conn = self.conn();
        if Self::account_is_admin(&conn, id)? {
            return Err(AccountEditError::Admin(id));
        }
        let exists = |sql: &str, key: i64| -> Result<bool, AccountEditError> {
            Ok(conn.query_row(sql, [key], |_| Ok(())).optional()?.is_some())
        };
        if !exists("SELECT 1 FROM roles WHERE id = ?1", edit.role_id)? {
            return Err(AccountEditError::UnknownRole(edit.role_id));
        }
        if let Some(group) = edit.group_id
            && !exists("SELECT 1 FROM account_groups WHERE id = ?1", group)?
        {
            return Err(AccountEditError::UnknownGroup(group));
        }
        let mut sites = edit.site_ids.clone();
        sites.sort_unstable();
        sites.dedup();
        for site in &sites {
            if !exists("SELECT 1 FROM sites WHERE id = ?1", *site)? {
                return Err(AccountEditError::UnknownSite(*site));
            }
        }
        conn.execute(
            "UPDATE accounts SET role_id = ?2, group_id = ?3, scope_sites = ?4 WHERE id = ?1",
            params![id, edit.role_id, edit.group_id, serde_json::Value::from(sites).to_string()],
        )?;
        Ok(())
    }

    /// Disables (or enables again) a sub-admin; disabling ends its sessions.
    pub fn set_account_disabled(&self, id: i64, disabled: bool) -> Result<(), AccountEditError> {
        let mut conn = self.conn();
        if Self::account_is_admin(&conn, id)? {
            return Err(AccountEditError::Admin(id));
        }
        let tx = conn.transaction()?;
        tx.execute("UPDATE accounts SET disabled = ?2 WHERE id = ?1", params![id, disabled])?;
        if disabled {
            tx.execute("DELETE FROM sessions WHERE account_id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Gives a sub-admin a new random password (returned, to be shown once) and ends its
    /// sessions.
    pub fn reset_password(&self, id: i64) -> Result<String, AccountEditError> {
        let mut conn = self.conn();
        if Self::account_is_admin(&conn, id)? {
            return Err(AccountEditError::Admin(id));
        }
        let password = random_password();
        let hash = hash_password(&password).map_err(|e| AccountEditError::Hash(e.to_string()))?;
        let tx = conn.transaction()?;
        tx.execute("UPDATE accounts SET password_hash = ?2 WHERE id = ?1", params![id, hash])?;
        tx.execute("DELETE FROM sessions WHERE account_id = ?1", [id])?;
        tx.commit()?;
        Ok(password)
    }
}
