//! Site accounts and what they may do: admins and agents with their argon2 password hashes,
//! the agents' extensions (SIP accounts), site roles (named sets of permission
//! [`Module`]s) and the agents' own desk settings. Web sessions live in `sessions.rs`.

use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, Store, TaskSettingsError};

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Usernames are unique on the site.
    #[error("username \"{0}\" is already taken; choose another")]
    Taken(String),
    /// An agent account must name an extension created beforehand.
    #[error("extension \"{0}\" does not exist; create the extension first")]
    NoSuchExtension(String),
    /// Empty or overlong username, name or password.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why an extension could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateExtensionError {
    /// Extensions are unique on the site.
    #[error("extension \"{0}\" already exists")]
    Taken(String),
    /// An extension is 2 to 8 digits; a password at least 6 characters.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A site account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: u64,
    pub username: String,
    pub role: Role,
    pub name: String,
    pub extension: Option<String>,
}

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Site admin (职场管理员): extensions, accounts, tasks, monitoring.
    Admin,
    /// Agent (坐席): the agent desk only.
    Agent,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }
}

/// An agent phone's SIP account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub extension: String,
    pub password: String,
}

impl Store {
    /// Creates an account with an argon2 hash of `password`; returns its id.
    pub fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
        name: &str,
        extension: Option<&str>,
    ) -> Result<u64, CreateUserError> {
        let username = username.trim();
        if username.is_empty() || username.chars().count() > 32 {
            return Err(CreateUserError::Invalid(
                "username must be 1 to 32 characters".to_string(),
            ));
        }
        if password.chars().count() < 6 {
            return Err(CreateUserError::Invalid(format!(
                "password for \"{username}\" must be at least 6 characters"
            )));
        }
        if role == Role::Agent && extension.is_none() {
            return Err(CreateUserError::Invalid(format!(
                "agent \"{username}\" needs an extension"
            )));
        }
        let hash = hash_password(password);
        let conn = self.lock();
        if let Some(extension) = extension {
            let exists: bool = conn
                .query_row("SELECT 1 FROM extensions WHERE extension = ?1", [extension], |_| {
                    Ok(true)
                })
                .optional()
                .map_err(DbError::from)?
                .unwrap_or(false);
            if !exists {
                return Err(CreateUserError::NoSuchExtension(extension.to_string()));
            }
        }
        let inserted = conn.execute(
            "INSERT INTO users (username, password_hash, role, name, extension)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![username, hash, role.as_str(), name.trim(), extension],
        );
        match inserted {
            Ok(_) => Ok(conn.last_insert_rowid() as u64),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(CreateUserError::Taken(username.to_string()))
            }
            Err(error) => Err(DbError::from(error).into()),
        }
    }

    /// Replaces an account's password (used by `init-admin` on an existing admin).
    pub fn set_password(&self, username: &str, password: &str) -> Result<bool, DbError> {
        let hash = hash_password(password);
        let changed = self
            .lock()
            .execute("UPDATE users SET password_hash = ?1 WHERE username = ?2", params![hash, username])?;
        Ok(changed > 0)
    }

    /// The account if `username` and `password` match.
    pub fn verify_login(&self, username: &str, password: &str) -> Result<Option<User>, DbError> {
        let found: Option<(u64, String)> = self
            .lock()
            .query_row(
                "SELECT user_id, password_hash FROM users WHERE username = ?1 AND disabled = 0",
                [username.trim()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        // An unknown user costs the same argon2 work as a wrong password (no timing hint
        // about which usernames exist).
        if !web_guard::verify_or_dummy(found.as_ref().map(|(_, hash)| hash.as_str()), password) {
            return Ok(None);
        }
        let Some((user_id, _)) = found else { return Ok(None) };
        self.user(user_id)
    }

    /// One account by id.
    pub fn user(&self, user_id: u64) -> Result<Option<User>, DbError> {
        let conn = self.lock();
        let user = conn
            .query_row(
                "SELECT user_id, username, role, name, extension FROM users WHERE user_id = ?1",
                [user_id],
                user_from_row,
            )
            .optional()?;
        Ok(user)
    }

    /// Every account, oldest first.
    pub fn users(&self) -> Result<Vec<User>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT user_id, username, role, name, extension FROM users ORDER BY user_id",
        )?;
        let users = statement.query_map([], user_from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(users)
    }

    /// Creates an agent phone account.
    pub fn create_extension(&self, extension: &str, password: &str) -> Result<(), CreateExtensionError> {
        let extension = extension.trim();
        if !(2..=8).contains(&extension.len()) || !extension.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CreateExtensionError::Invalid(format!(
                "extension \"{extension}\" must be 2 to 8 digits"
            )));
        }
        if password.chars().count() < 6 {
            return Err(CreateExtensionError::Invalid(format!(
                "password of extension {extension} must be at least 6 characters"
            )));
        }
        let inserted = self.lock().execute(
            "INSERT INTO extensions (extension, password) VALUES (?1, ?2)",
            params![extension, password],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(CreateExtensionError::Taken(extension.to_string()))
            }
            Err(error) => Err(DbError::from(error).into()),
        }
    }

    /// Every extension, in number order.
    pub fn extensions(&self) -> Result<Vec<Extension>, DbError> {
        let conn = self.lock();
        let mut statement =
            conn.prepare("SELECT extension, password FROM extensions ORDER BY extension")?;
        let extensions = statement
            .query_map([], |row| Ok(Extension { extension: row.get(0)?, password: row.get(1)? }))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(extensions)
    }
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(2)?;
    Ok(User {
        user_id: row.get(0)?,
        username: row.get(1)?,
        role: if role == "admin" { Role::Admin } else { Role::Agent },
        name: row.get(3)?,
        extension: row.get(4)?,
    })
}

pub(super) fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    // 16 random bytes always encode to a valid salt, and argon2's default parameters are
    // within its limits, so neither step fails; if one ever did, the empty hash stored
    // matches no password, which fails closed.
    let Ok(salt) = SaltString::encode_b64(&rand::random::<[u8; 16]>()) else {
        return String::new();
    };
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .unwrap_or_default()
}

/// A permission module a site role may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    /// Site admin: tasks, their parameters and agents, starting and stopping.
    Tasks,
    /// Site admin: extensions and their credentials.
    Extensions,
    /// Site admin: roles and accounts.
    Accounts,
    /// Site admin: attribution rules and allocation.
    Attribution,
    /// Site admin: project data (customers, business data, callbacks).
    Data,
    /// Site admin: exports of results and recordings.
    Export,
    /// Site admin: queue monitoring.
    Monitor,
    /// Sees numbers whose middle digits the project hides.
    FullNumbers,
    /// Agent: own call records and playing their recordings.
    Records,
    /// Agent: downloading own recordings.
    Download,
    /// Agent: own customers.
    Customers,
    /// Agent: callbacks.
    Callbacks,
}

impl Module {
    pub const ADMIN: [Module; 8] = [
        Module::Tasks,
        Module::Extensions,
        Module::Accounts,
        Module::Attribution,
        Module::Data,
        Module::Export,
        Module::Monitor,
        Module::FullNumbers,
    ];
    pub const AGENT: [Module; 4] = [Module::Records, Module::Download, Module::Customers, Module::Callbacks];

    pub fn as_str(self) -> &'static str {
        match self {
            Module::Tasks => "tasks",
            Module::Extensions => "extensions",
            Module::Accounts => "accounts",
            Module::Attribution => "attribution",
            Module::Data => "data",
            Module::Export => "export",
            Module::Monitor => "monitor",
            Module::FullNumbers => "full_numbers",
            Module::Records => "records",
            Module::Download => "download",
            Module::Customers => "customers",
            Module::Callbacks => "callbacks",
        }
    }

    pub fn parse(name: &str) -> Option<Module> {
        Module::ADMIN.into_iter().chain(Module::AGENT).find(|module| module.as_str() == name)
    }
}

/// A site role: a named set of modules.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SiteRole {
    pub role_id: u64,
    pub name: String,
    pub modules: Vec<Module>,
}

/// Why a role could not be created or given.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("role name \"{0}\" is already taken")]
    Taken(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Store {
    /// Creates a site role.
    pub fn create_role(&self, name: &str, modules: &[Module]) -> Result<u64, RoleError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 32 {
            return Err(RoleError::Invalid("role name must be 1 to 32 characters".to_string()));
        }
        let names: Vec<&str> = modules.iter().map(|module| module.as_str()).collect();
        let conn = self.lock();
        match conn.execute("INSERT INTO site_roles (name, modules) VALUES (?1, ?2)", params![name, names.join(",")]) {
            Ok(_) => Ok(conn.last_insert_rowid() as u64),
            Err(rusqlite::Error::SqliteFailure(error, _)) if error.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(RoleError::Taken(name.to_string()))
            }
            Err(error) => Err(DbError::from(error).into()),
        }
    }

    /// Every site role.
    pub fn roles(&self) -> Result<Vec<SiteRole>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare("SELECT role_id, name, modules FROM site_roles ORDER BY role_id")?;
        let roles = statement
            .query_map([], |row| {
                let modules: String = row.get(2)?;
                Ok(SiteRole {
                    role_id: row.get(0)?,
                    name: row.get(1)?,
                    modules: modules.split(',').filter_map(Module::parse).collect(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(roles)
    }

    /// Gives an account a role (`None`: the default modules of its kind).
    pub fn assign_role(&self, user_id: u64, role_id: Option<u64>) -> Result<(), RoleError> {
        let conn = self.lock();
        if let Some(role_id) = role_id {
            let exists: Option<u64> = conn
                .query_row("SELECT role_id FROM site_roles WHERE role_id = ?1", [role_id], |row| row.get(0))
                .optional()
                .map_err(DbError::from)?;
            if exists.is_none() {
                return Err(RoleError::Invalid(format!("role {role_id} does not exist")));
            }
        }
        let changed = conn
            .execute("UPDATE users SET site_role = ?2 WHERE user_id = ?1", params![user_id, role_id])
            .map_err(DbError::from)?;
        if changed == 0 {
            return Err(RoleError::Invalid(format!("account {user_id} does not exist")));
        }
        Ok(())
    }

    /// The modules an account holds: its role's (within its kind), or the kind's defaults.
    /// The built-in site admin sees masked numbers like everyone else; only a role granted
    /// "full_numbers" sees them whole.
    pub fn modules_of(&self, user_id: u64) -> Result<Vec<Module>, DbError> {
        let conn = self.lock();
        let found: Option<(String, Option<String>)> = conn
            .query_row(
                "SELECT u.role, r.modules FROM users u LEFT JOIN site_roles r ON r.role_id = u.site_role
                 WHERE u.user_id = ?1",
                [user_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((kind, role_modules)) = found else { return Ok(Vec::new()) };
        let allowed: &[Module] = if kind == "admin" { &Module::ADMIN } else { &Module::AGENT };
        Ok(match role_modules {
            Some(list) => list.split(',').filter_map(Module::parse).filter(|m| allowed.contains(m)).collect(),
            None => allowed.iter().copied().filter(|module| *module != Module::FullNumbers).collect(),
        })
    }

    /// The role an account holds, if any.
    pub fn role_of(&self, user_id: u64) -> Result<Option<u64>, DbError> {
        let conn = self.lock();
        let role: Option<Option<u64>> = conn
            .query_row("SELECT site_role FROM users WHERE user_id = ?1", [user_id], |row| row.get(0))
            .optional()?;
        Ok(role.flatten())
    }
}

/// An agent's extension settings (分机设置).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AgentSettings {
    /// The line their one-click and callback calls go out on; empty = the task's.
    pub caller: String,
    /// "answer" (pop on connect) or "ring" (pop while ringing; the number then always shows
    /// only its first three and last four digits).
    pub popup_timing: String,
    /// The popup page; each project has one ("default").
    pub popup_page: String,
}

impl Default for AgentSettings {
    fn default() -> AgentSettings {
        AgentSettings { caller: String::new(), popup_timing: "answer".into(), popup_page: "default".into() }
    }
}

impl Store {
    /// An agent's desk settings (defaults until saved).
    pub fn agent_settings(&self, user_id: u64) -> Result<AgentSettings, DbError> {
        let conn = self.lock();
        agent_settings_in(&conn, user_id)
    }

    /// Saves an agent's desk settings.
    pub fn set_agent_settings(&self, user_id: u64, settings: &AgentSettings) -> Result<(), TaskSettingsError> {
        if !["answer", "ring"].contains(&settings.popup_timing.as_str()) {
            return Err(TaskSettingsError::Invalid(format!(
                "popup timing \"{}\" is unknown; use answer or ring",
                settings.popup_timing
            )));
        }
        if settings.popup_page != "default" {
            return Err(TaskSettingsError::Invalid(format!(
                "popup page \"{}\" is unknown; each project has one page, \"default\"",
                settings.popup_page
            )));
        }
        if !settings.caller.is_empty() && !self.lines().iter().any(|line| line.name == settings.caller) {
            return Err(TaskSettingsError::Invalid(format!(
                "caller \"{}\" is not one of the site's lines",
                settings.caller
            )));
        }
        self.lock()
            .execute(
                "INSERT INTO agent_settings (user_id, caller, popup_timing, popup_page) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id) DO UPDATE SET caller = excluded.caller,
                    popup_timing = excluded.popup_timing, popup_page = excluded.popup_page",
                params![user_id, settings.caller, settings.popup_timing, settings.popup_page],
            )
            .map_err(DbError::from)?;
        Ok(())
    }
}

pub(super) fn agent_settings_in(conn: &Connection, user_id: u64) -> Result<AgentSettings, DbError> {
    let found = conn
        .query_row(
            "SELECT caller, popup_timing, popup_page FROM agent_settings WHERE user_id = ?1",
            [user_id],
            |row| Ok(AgentSettings { caller: row.get(0)?, popup_timing: row.get(1)?, popup_page: row.get(2)? }),
        )
        .optional()?;
    Ok(found.unwrap_or_default())
}
