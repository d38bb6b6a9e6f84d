//! The site's roles and accounts changed after creation (账号管理 / 角色管理): a role's name
//! and modules, disabling an account (its sessions end at once; it cannot sign in), and a
//! new random password (shown once; the old sessions end too).

use rusqlite::{params, OptionalExtension};

use super::accounts::hash_password;
use super::{DbError, Module, RoleError, Store};

impl Store {
    /// Renames a role and replaces its modules; its accounts have them on their next request.
    pub fn update_role(&self, role_id: u64, name: &str, modules: &[Module]) -> Result<bool, RoleError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 32 {
            return Err(RoleError::Invalid("role name must be 1 to 32 characters".to_string()));
        }
        let names: Vec<&str> = modules.iter().map(|module| module.as_str()).collect();
        let conn = self.lock();
        match conn.execute("UPDATE site_roles SET name = ?2, modules = ?3 WHERE role_id = ?1", params![role_id, name, names.join(",")]) {
            Ok(changed) => Ok(changed > 0),
            Err(rusqlite::Error::SqliteFailure(error, _)) if error.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(RoleError::Taken(name.to_string()))
            }
            Err(error) => Err(DbError::from(error).into()),
        }
    }

    /// Whether account `user_id` is disabled; `None` if there is no such account.
    pub fn user_disabled(&self, user_id: u64) -> Result<Option<bool>, DbError> {
        Ok(self.lock().query_row("SELECT disabled FROM users WHERE user_id = ?1", [user_id], |row| row.get(0)).optional()?)
    }

    /// Disables (ending its sessions) or enables an account; false if there is none.
    pub fn set_user_disabled(&self, user_id: u64, disabled: bool) -> Result<bool, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let changed = tx.execute("UPDATE users SET disabled = ?2 WHERE user_id = ?1", params![user_id, disabled])?;
        if disabled {
            tx.execute("DELETE FROM web_sessions WHERE user_id = ?1", [user_id])?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    /// Gives an account a new random password and ends its sessions; `None` if there is no
    /// such account.
    pub fn reset_user_password(&self, user_id: u64) -> Result<Option<String>, DbError> {
        let password = crate::random_password(12);
        let hash = hash_password(&password);
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let changed = tx.execute("UPDATE users SET password_hash = ?2 WHERE user_id = ?1", params![user_id, hash])?;
        tx.execute("DELETE FROM web_sessions WHERE user_id = ?1", [user_id])?;
        tx.commit()?;
        Ok((changed > 0).then_some(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Role;

    #[test]
    fn roles_are_edited_and_a_disabled_account_cannot_sign_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let role = store.create_role("线管", &[Module::parse("data").unwrap()]).unwrap();
        store.create_role("值班长", &[]).unwrap();
        assert!(store.update_role(role, "线管组", &[Module::parse("data").unwrap(), Module::parse("tasks").unwrap()]).unwrap());
        let edited = store.roles().unwrap().into_iter().find(|r| r.role_id == role).unwrap();
        assert_eq!((edited.name.as_str(), edited.modules.len()), ("线管组", 2));
        assert!(matches!(store.update_role(role, "值班长", &[]), Err(RoleError::Taken(_))));
        assert!(!store.update_role(999, "无", &[]).unwrap());

        let user = store.create_user("li", "li-secret-1", Role::Admin, "小李", None).unwrap();
        let token = store.open_session(user, 1_000).unwrap();
        assert_eq!(store.session_user(&token, 1_001, 3600).unwrap(), Some(user));
        assert!(store.set_user_disabled(user, true).unwrap());
        assert_eq!(store.user_disabled(user).unwrap(), Some(true));
        assert_eq!(store.session_user(&token, 1_002, 3600).unwrap(), None, "the session ended");
        assert!(store.verify_login("li", "li-secret-1").unwrap().is_none(), "no sign-in while disabled");
        store.set_user_disabled(user, false).unwrap();
        assert!(store.verify_login("li", "li-secret-1").unwrap().is_some());

        let token = store.open_session(user, 2_000).unwrap();
        let password = store.reset_user_password(user).unwrap().unwrap();
        assert_eq!(store.session_user(&token, 2_001, 3600).unwrap(), None);
        assert!(store.verify_login("li", "li-secret-1").unwrap().is_none());
        assert!(store.verify_login("li", &password).unwrap().is_some());
        assert_eq!(store.reset_user_password(999).unwrap(), None);
    }
}
