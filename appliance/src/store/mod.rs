//! The site's SQLite store: the only place the appliance keeps state.
//!
//! - Opened in WAL mode with `synchronous=FULL`; the schema is a list of migrations applied
//!   in order and counted by SQLite's `user_version` (never edit a released migration, append).
//! - The store's epoch is a random number drawn when the store is created; with the outbox
//!   sequence it names every upward event `(site, epoch, seq)`.
//! - Every change that HQ must learn about (a finished attempt, a saved business record)
//!   writes its [`UpEvent`] into the outbox in the *same* transaction as the change.
//! - Every down-log entry is applied in the same transaction as the down cursor moves, and an
//!   entry at or below the cursor changes nothing, so a replayed entry is harmless.
//! - A batch's rows become dialable only once its manifest's row count and [`rows_hash`]
//!   match the rows stored, in chunk then row order.
//!
//! The link reaches the store through [`sync_link::SiteStore`]; the web and the dialer
//! driver call the inherent methods.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sync_link::{SiteStore, StoreResult};
use sync_protocol::{
    AttemptKind, BatchChunk, BatchControl, BatchManifest, BusinessRecord, CallAttempt, DownEntry,
    DownEvent, FieldDef, FieldKind, HangupSide, Outcome, ProjectDef, UpEntry, UpEvent,
};
use tokio::sync::Notify;

mod hq;
mod notices;
mod sessions;
mod work;

use hq::hex_of;
pub use hq::{AbandonRates, AgentCounts, HqListedView, china_minute};
pub use notices::{AnnouncementView, VoiceFileView};
pub use work::*;

/// Schema migrations, applied in order; `user_version` counts how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: the skeleton's schema.
    "CREATE TABLE sync_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        epoch INTEGER NOT NULL,
        down_applied INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        payload BLOB NOT NULL
    );
    CREATE TABLE projects (
        project_id INTEGER PRIMARY KEY,
        version INTEGER NOT NULL,
        def BLOB NOT NULL
    );
    CREATE TABLE batches (
        batch_id INTEGER PRIMARY KEY,
        project_id INTEGER,
        name TEXT,
        manifest_priority INTEGER,
        imported_at INTEGER,
        n_rows INTEGER,
        n_chunks INTEGER,
        rows_hash BLOB,
        verified INTEGER NOT NULL DEFAULT 0,
        verify_error TEXT,
        control_version INTEGER,
        control_priority INTEGER,
        running INTEGER NOT NULL DEFAULT 0,
        ratio INTEGER NOT NULL DEFAULT 1,
        max_concurrency INTEGER NOT NULL DEFAULT 1,
        ring_seconds INTEGER NOT NULL DEFAULT 35
    );
    CREATE TABLE batch_rows (
        batch_id INTEGER NOT NULL,
        chunk_idx INTEGER NOT NULL,
        row_idx INTEGER NOT NULL,
        row_id INTEGER NOT NULL,
        phone TEXT NOT NULL,
        fields BLOB NOT NULL,
        status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'dialing', 'done')),
        PRIMARY KEY (batch_id, chunk_idx, row_idx)
    );
    CREATE INDEX batch_rows_new ON batch_rows (batch_id, status);
    CREATE TABLE extensions (
        extension TEXT PRIMARY KEY,
        password TEXT NOT NULL
    );
    CREATE TABLE users (
        user_id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'agent')),
        name TEXT NOT NULL,
        extension TEXT REFERENCES extensions (extension)
    );
    CREATE TABLE attempts (
        attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
        batch_id INTEGER NOT NULL,
        chunk_idx INTEGER NOT NULL,
        row_idx INTEGER NOT NULL,
        row_id INTEGER NOT NULL,
        phone TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('dialing', 'done')),
        started_at INTEGER NOT NULL,
        answered_at INTEGER,
        ended_at INTEGER,
        outcome TEXT,
        hangup_side TEXT,
        agent TEXT,
        talk_seconds INTEGER NOT NULL DEFAULT 0,
        recording_path TEXT,
        recording_sha256 TEXT
    );
    CREATE INDEX attempts_dialing ON attempts (phone, state);
    CREATE TABLE business_records (
        attempt_id INTEGER PRIMARY KEY REFERENCES attempts (attempt_id),
        agent TEXT NOT NULL,
        saved_at INTEGER NOT NULL,
        record_values TEXT NOT NULL
    );",
    // 2: the site's working day: task settings and agents, ownership of numbers, site
    // attribution rules, callbacks, site roles, agents' desk settings, customer edits.
    "ALTER TABLE batches ADD COLUMN dial_mode TEXT NOT NULL DEFAULT 'predictive';
    ALTER TABLE batches ADD COLUMN caller TEXT NOT NULL DEFAULT '';
    ALTER TABLE batches ADD COLUMN cool_down INTEGER NOT NULL DEFAULT 3;
    ALTER TABLE batches ADD COLUMN queue_timeout INTEGER NOT NULL DEFAULT 35;
    ALTER TABLE batches ADD COLUMN routing TEXT NOT NULL DEFAULT 'longest_idle';
    ALTER TABLE batches ADD COLUMN answer_mode TEXT NOT NULL DEFAULT 'auto';
    ALTER TABLE batch_rows ADD COLUMN owner TEXT;
    CREATE INDEX batch_rows_owner ON batch_rows (owner, status);
    CREATE TABLE task_agents (
        batch_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users (user_id),
        PRIMARY KEY (batch_id, user_id)
    );
    CREATE TABLE site_rules (
        project_id INTEGER NOT NULL,
        position INTEGER NOT NULL,
        all_match INTEGER NOT NULL,
        conditions TEXT NOT NULL,
        agent TEXT NOT NULL,
        PRIMARY KEY (project_id, position)
    );
    CREATE TABLE hq_rules (
        project_id INTEGER PRIMARY KEY,
        version INTEGER NOT NULL,
        rules BLOB NOT NULL
    );
    CREATE TABLE callbacks (
        callback_id INTEGER PRIMARY KEY AUTOINCREMENT,
        batch_id INTEGER NOT NULL,
        chunk_idx INTEGER NOT NULL,
        row_idx INTEGER NOT NULL,
        row_id INTEGER NOT NULL,
        phone TEXT NOT NULL,
        agent TEXT NOT NULL,
        created_by TEXT NOT NULL,
        title TEXT NOT NULL,
        note TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('new', 'waiting', 'done', 'cancelled')),
        created_at INTEGER NOT NULL,
        done_at INTEGER
    );
    CREATE INDEX callbacks_due ON callbacks (state, due_at);
    ALTER TABLE attempts ADD COLUMN kind TEXT NOT NULL DEFAULT 'predictive';
    ALTER TABLE attempts ADD COLUMN callback_id INTEGER;
    ALTER TABLE attempts ADD COLUMN popped INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE site_roles (
        role_id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        modules TEXT NOT NULL
    );
    ALTER TABLE users ADD COLUMN site_role INTEGER REFERENCES site_roles (role_id);
    CREATE TABLE agent_settings (
        user_id INTEGER PRIMARY KEY REFERENCES users (user_id),
        caller TEXT NOT NULL DEFAULT '',
        popup_timing TEXT NOT NULL DEFAULT 'answer',
        popup_page TEXT NOT NULL DEFAULT 'default'
    );
    CREATE TABLE customer_edits (
        batch_id INTEGER NOT NULL,
        row_id INTEGER NOT NULL,
        field TEXT NOT NULL,
        value TEXT NOT NULL,
        agent TEXT NOT NULL,
        edited_at INTEGER NOT NULL,
        PRIMARY KEY (batch_id, row_id, field)
    );",
    // 3: HQ's guards that hold offline (black list, project run state and calling windows,
    // one-click stops), link settings, and which recordings HQ already holds.
    "CREATE TABLE blacklist (
        phone TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        listed INTEGER NOT NULL,
        note TEXT NOT NULL
    );
    CREATE TABLE project_run (
        project_id INTEGER PRIMARY KEY,
        settings_version INTEGER,
        control_version INTEGER,
        popup_on_ring INTEGER,
        hq_state TEXT NOT NULL DEFAULT 'running' CHECK (hq_state IN ('running', 'paused', 'ended'))
    );
    CREATE TABLE calling_windows (
        project_id INTEGER NOT NULL,
        start_minute INTEGER NOT NULL,
        end_minute INTEGER NOT NULL
    );
    CREATE INDEX calling_windows_project ON calling_windows (project_id);
    CREATE TABLE one_click (
        scope TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        start INTEGER NOT NULL
    );
    CREATE TABLE link_settings (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        settings BLOB NOT NULL
    );
    ALTER TABLE sync_state ADD COLUMN heard_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE attempts ADD COLUMN recording_uploaded INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX attempts_recording_pending ON attempts (recording_uploaded, attempt_id)
        WHERE recording_sha256 IS NOT NULL;",
    // 4: how a task paces (the manual's fixed ratio, progressive, or adaptive under an
    // abandon-rate cap in per cent).
    "ALTER TABLE batches ADD COLUMN pacing TEXT NOT NULL DEFAULT 'fixed';
    ALTER TABLE batches ADD COLUMN abandon_cap REAL NOT NULL DEFAULT 3.0;",
    // 5: HQ's voice library and announcements; a task's hold music (a voice file, or none).
    "CREATE TABLE voice_files (
        voice_id INTEGER PRIMARY KEY,
        version  INTEGER NOT NULL,
        name     TEXT NOT NULL,
        kind     TEXT NOT NULL,
        sha256   TEXT NOT NULL,
        size     INTEGER NOT NULL,
        deleted  INTEGER NOT NULL
    );
    CREATE TABLE announcements (
        announcement_id INTEGER PRIMARY KEY,
        version         INTEGER NOT NULL,
        title           TEXT NOT NULL,
        body            TEXT NOT NULL,
        published_at    INTEGER NOT NULL,
        expires_at      INTEGER,
        withdrawn       INTEGER NOT NULL
    );
    ALTER TABLE batches ADD COLUMN hold_music INTEGER;",
    // Web sessions survive a restart; only a hash of each cookie's token is kept (see
    // `sessions.rs`).
    "CREATE TABLE web_sessions (
        token_hash TEXT PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL
    );
    CREATE INDEX web_sessions_user ON web_sessions (user_id);",
    // 7: HQ's white list rides with the black list (one version per number across both,
    // so a move from one list to the other is one change): `listed` stays "on the black
    // list", which every claim checks; `white` is shown to the site's staff.
    "ALTER TABLE blacklist ADD COLUMN white INTEGER NOT NULL DEFAULT 0;",
    // 8: HQ's project status from the project settings (`running`: 1, 0, or NULL when HQ
    // leaves it to the site), kept apart from `hq_state`, which HQ's project controls set:
    // HQ handing the status back to the site must not lift a pause a control made.
    "ALTER TABLE project_run ADD COLUMN settings_running INTEGER;",
];

/// A failure of the database itself (disk, SQLite, a stored blob that no longer decodes).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused or failed the statement.
    #[error("site database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored blob could not be decoded; the database was written by an incompatible build.
    #[error("site database holds an unreadable {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

/// Why [`Store::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    /// SQLite could not open the file or apply the migrations.
    #[error("cannot open site database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    /// The database was written by a newer build than this one.
    #[error(
        "site database {path} has schema version {found}, newer than this build's {known}; \
         install the newer appliance build"
    )]
    TooNew { path: PathBuf, found: i64, known: usize },
}

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

/// Why a task could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartTaskError {
    /// No batch with that id was received from HQ.
    #[error("batch {0} is unknown at this site")]
    NoSuchBatch(u64),
    /// The batch's rows are not all here, or did not match the manifest.
    #[error("batch {batch_id} is not dialable yet: {reason}")]
    NotReady { batch_id: u64, reason: String },
    /// HQ ended the batch (priority 0); it can never be started again.
    #[error("batch {0} was ended by HQ and cannot be started")]
    Ended(u64),
    /// The batch's project definition has not arrived.
    #[error("batch {batch_id}: project {project_id} has not arrived from HQ yet")]
    NoProject { batch_id: u64, project_id: u64 },
    /// A parameter is out of range.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a business record could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveRecordError {
    /// No attempt with that id.
    #[error("call {0} does not exist")]
    NoSuchAttempt(u64),
    /// The call was bridged to another agent (or to none).
    #[error("call {0} was not yours; only the agent who took it can save its record")]
    NotYours(u64),
    /// A value failed the project's form rules; the message names the field.
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

/// The site's parameters for running a task (a batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskParams {
    /// Calls per available agent, 1..=10.
    pub ratio: u32,
    pub max_concurrency: u32,
    pub ring_seconds: u32,
}

/// One task (a batch received from HQ) as the site admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSummary {
    pub batch_id: u64,
    pub name: String,
    pub project: String,
    pub numbers: u64,
    pub dialed: u64,
    pub connected: u64,
    pub status: TaskStatus,
    pub params: TaskParams,
    /// Why the batch is not dialable, when it is not.
    pub problem: Option<String>,
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Rows still arriving, or the manifest did not check out.
    Receiving,
    /// Dialable, not started at this site (未启动).
    NotStarted,
    /// Started at this site and not paused by HQ.
    Running,
    /// HQ set priority 1.
    Paused,
    /// HQ set priority 0.
    Ended,
}

impl TaskStatus {
    /// The stable name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Receiving => "receiving",
            TaskStatus::NotStarted => "not_started",
            TaskStatus::Running => "running",
            TaskStatus::Paused => "paused",
            TaskStatus::Ended => "ended",
        }
    }
}

/// A number taken for dialing: the attempt row is already written as "dialing".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedNumber {
    pub attempt_id: u64,
    pub batch_id: u64,
    pub row_id: u64,
    pub phone: String,
}

/// How an attempt ended, as the dialer driver learned it from the lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd {
    pub outcome: Outcome,
    pub hangup_side: Option<HangupSide>,
    pub ended_at: i64,
    pub recording_path: Option<PathBuf>,
    pub recording_sha256: Option<String>,
}

/// What an agent's browser shows when a call is put through.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Popup {
    pub attempt_id: u64,
    /// Masked (first three and last four digits) when the project hides middle digits.
    pub phone: String,
    pub fields: Vec<PopupField>,
    pub script: String,
    pub record_fields: Vec<RecordField>,
}

/// One customer field in the popup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PopupField {
    pub key: String,
    pub title: String,
    pub value: String,
}

/// One field of the business-record form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordField {
    pub key: String,
    pub title: String,
    /// "text" or "single_choice".
    pub kind: &'static str,
    pub options: Vec<String>,
    pub required: bool,
}

/// The site's store. Cheap to share behind an `Arc`; one connection, serialised by a mutex,
/// which suits SQLite's single writer and keeps every transaction short.
pub struct Store {
    conn: Mutex<Connection>,
    epoch: u64,
    notify: Arc<Notify>,
    path: PathBuf,
    /// The site's lines (trunks and their channel counts), told by the appliance at start;
    /// task parameters are checked against them.
    lines: Mutex<Vec<Line>>,
    /// A second, read-only connection for the popup: WAL lets it read while the main
    /// connection is flushing a write, so a popup never waits for a disk flush.
    reader: Mutex<Connection>,
    /// Calls put through to an agent whose bridge is queued for writing but not on disk yet
    /// (attempt → agent): the agent may already save the call's record.
    pending_agents: Mutex<std::collections::HashMap<u64, String>>,
    /// When the link last showed HQ was there (unix seconds): a control change arriving
    /// now was made at HQ after this, so what was dialed since may have gone against it.
    link_heard_at: AtomicI64,
    /// When the link last polled the live figures (unix seconds), see `heard_from_link`.
    link_tick_at: AtomicI64,
    /// Agents by state as the desk last told, for the live figures.
    agent_counts: Mutex<AgentCounts>,
    /// Batches whose rows were hashed as they were written (see [`WrittenHash`]). Lives
    /// in memory only: after a restart a batch is checked by reading it back.
    written: Mutex<std::collections::HashMap<u64, WrittenHash>>,
}

fn corrupt(what: &'static str, detail: impl ToString) -> DbError {
    DbError::Corrupt { what, detail: detail.to_string() }
}

/// Masks the middle of a number: first three and last four digits stay visible.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let mut masked: String = chars[..3].iter().collect();
    masked.push_str(&"*".repeat(chars.len() - 7));
    masked.extend(&chars[chars.len() - 4..]);
    masked
}

/// The [`AttemptKind`] of an attempt from the path that wrote it (`attempts.kind`:
/// `predictive` by the task's dialer, `one_click` and `callback` by an agent's own call,
/// `manual` for a number dialed by hand).
fn attempt_kind(kind: &str) -> AttemptKind {
    match kind {
        "one_click" => AttemptKind::OneClick,
        "callback" => AttemptKind::Callback,
        "manual" => AttemptKind::Manual,
        "inbound" => AttemptKind::Inbound,
        "ivr" => AttemptKind::Ivr,
        _ => AttemptKind::Predictive,
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Connected => "connected",
        Outcome::Busy => "busy",
        Outcome::NoAnswer => "no_answer",
        Outcome::Rejected => "rejected",
        Outcome::Failed => "failed",
        Outcome::Abandoned => "abandoned",
        Outcome::AgentMissed => "agent_missed",
        _ => "failed",
    }
}

fn hangup_name(side: HangupSide) -> &'static str {
    match side {
        HangupSide::Customer => "customer",
        HangupSide::Agent => "agent",
        HangupSide::System => "system",
    }
}

/// The wall clock in unix seconds (what attempts and records are stamped with).
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Store {
    /// Opens (or creates) `site.db` in `data_dir`, applying pending migrations.
    pub fn open(data_dir: &Path) -> Result<Store, OpenError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| OpenError::DataDir { path: data_dir.to_path_buf(), source })?;
        let path = data_dir.join("site.db");
        let sqlite = |source| OpenError::Sqlite { path: path.clone(), source };
        let mut conn = Connection::open(&path).map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite)?;
        let version: i64 =
            conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(sqlite)?;
        if version as usize > MIGRATIONS.len() || version < 0 {
            return Err(OpenError::TooNew { path, found: version, known: MIGRATIONS.len() });
        }
        let tx = conn.transaction().map_err(sqlite)?;
        for migration in &MIGRATIONS[version as usize..] {
            tx.execute_batch(migration).map_err(sqlite)?;
        }
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64).map_err(sqlite)?;
        // The epoch is drawn once, when the store is created; it never changes afterwards.
        let fresh_epoch = rand::random::<u64>();
        tx.execute(
            "INSERT OR IGNORE INTO sync_state (id, epoch, down_applied) VALUES (1, ?1, 0)",
            params![fresh_epoch as i64],
        )
        .map_err(sqlite)?;
        let (epoch, heard_at): (i64, i64) = tx
            .query_row("SELECT epoch, heard_at FROM sync_state WHERE id = 1", [], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        let reader = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
        reader.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite)?;
        Ok(Store {
            reader: Mutex::new(reader),
            conn: Mutex::new(conn),
            epoch: epoch as u64,
            notify: Arc::new(Notify::new()),
            path,
            lines: Mutex::new(Vec::new()),
            pending_agents: Mutex::new(std::collections::HashMap::new()),
            link_heard_at: AtomicI64::new(heard_at),
            link_tick_at: AtomicI64::new(0),
            agent_counts: Mutex::new(AgentCounts::default()),
            written: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Where the database file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's epoch (see the module doc).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (the transaction
        // rolls back on drop), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // ---- accounts and extensions ----

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
                "SELECT user_id, password_hash FROM users WHERE username = ?1",
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

    // ---- tasks ----

    /// Every batch the site has heard of, newest import first.
    pub fn tasks(&self) -> Result<Vec<TaskSummary>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT b.batch_id, b.name, b.project_id, b.verified, b.verify_error,
                    b.control_priority, b.manifest_priority, b.running,
                    b.ratio, b.max_concurrency, b.ring_seconds,
                    (SELECT COUNT(*) FROM batch_rows r WHERE r.batch_id = b.batch_id),
                    (SELECT COUNT(*) FROM batch_rows r WHERE r.batch_id = b.batch_id AND r.status <> 'new'),
                    (SELECT COUNT(*) FROM attempts a WHERE a.batch_id = b.batch_id AND a.outcome = 'connected'),
                    p.def,
                    (SELECT CASE WHEN pr.hq_state = 'running' AND pr.settings_running = 0 THEN 'paused'
                                 ELSE pr.hq_state END
                     FROM project_run pr WHERE pr.project_id = b.project_id),
                    EXISTS (SELECT 1 FROM one_click oc WHERE oc.start = 0
                            AND (oc.scope = 'site' OR oc.scope = 'project:' || b.project_id
                                 OR oc.scope = 'batch:' || b.batch_id))
             FROM batches b LEFT JOIN projects p ON p.project_id = b.project_id
             ORDER BY b.imported_at DESC, b.batch_id DESC",
        )?;
        let mut rows = statement.query([])?;
        let mut tasks = Vec::new();
        while let Some(row) = rows.next()? {
            let batch_id: u64 = row.get(0)?;
            let name: Option<String> = row.get(1)?;
            let verified: bool = row.get(3)?;
            let verify_error: Option<String> = row.get(4)?;
            let control_priority: Option<u8> = row.get(5)?;
            let manifest_priority: Option<u8> = row.get(6)?;
            let running: bool = row.get(7)?;
            let def: Option<Vec<u8>> = row.get(14)?;
            let project = match def {
                Some(bytes) => postcard::from_bytes::<ProjectDef>(&bytes)
                    .map_err(|e| corrupt("project definition", e))?
                    .name,
                None => String::new(),
            };
            // HQ's project state and one-click stops hold the batch as a batch control does.
            let hq_state: Option<String> = row.get(15)?;
            let stopped: bool = row.get(16)?;
            let priority = match (control_priority.or(manifest_priority).unwrap_or(2), hq_state.as_deref()) {
                (_, Some("ended")) => 0,
                (0, _) => 0,
                (_, Some("paused")) => 1,
                (_, _) if stopped => 1,
                (priority, _) => priority,
            };
            let status = if priority == 0 {
                TaskStatus::Ended
            } else if !verified {
                TaskStatus::Receiving
            } else if priority == 1 {
                TaskStatus::Paused
            } else if running {
                TaskStatus::Running
            } else {
                TaskStatus::NotStarted
            };
            let problem = if verified {
                None
            } else {
                Some(verify_error.unwrap_or_else(|| "waiting for the batch manifest".to_string()))
            };
            tasks.push(TaskSummary {
                batch_id,
                name: name.unwrap_or_else(|| format!("batch {batch_id}")),
                project,
                numbers: row.get(11)?,
                dialed: row.get(12)?,
                connected: row.get(13)?,
                status,
                params: TaskParams {
                    ratio: row.get(8)?,
                    max_concurrency: row.get(9)?,
                    ring_seconds: row.get(10)?,
                },
                problem,
            });
        }
        Ok(tasks)
    }

    /// The site admin starts a task with these parameters. HQ-bound parameters of the
    /// project override the site's values.
    pub fn start_task(&self, batch_id: u64, params: TaskParams) -> Result<TaskParams, StartTaskError> {
        if !(1..=10).contains(&params.ratio) {
            return Err(StartTaskError::Invalid(format!(
                "predictive ratio 1:{} is out of range; choose 1:1 to 1:10",
                params.ratio
            )));
        }
        if !(1..=1000).contains(&params.max_concurrency) {
            return Err(StartTaskError::Invalid(format!(
                "max concurrency {} is out of range; choose 1 to 1000",
                params.max_concurrency
            )));
        }
        if !(5..=120).contains(&params.ring_seconds) {
            return Err(StartTaskError::Invalid(format!(
                "ring duration {} s is out of range; choose 5 to 120 (advice: 35-40)",
                params.ring_seconds
            )));
        }
        let conn = self.lock();
        // (project, verified, why not, HQ's control priority, the manifest's priority)
        type BatchGate = (Option<u64>, bool, Option<String>, Option<u8>, Option<u8>);
        let found: Option<BatchGate> = conn
            .query_row(
                "SELECT project_id, verified, verify_error, control_priority, manifest_priority
                 FROM batches WHERE batch_id = ?1",
                [batch_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((project_id, verified, verify_error, control, manifest)) = found else {
            return Err(StartTaskError::NoSuchBatch(batch_id));
        };
        if control.or(manifest) == Some(0) {
            return Err(StartTaskError::Ended(batch_id));
        }
        if !verified {
            return Err(StartTaskError::NotReady {
                batch_id,
                reason: verify_error.unwrap_or_else(|| "waiting for the batch manifest".into()),
            });
        }
        let project_id = project_id.unwrap_or_default();
        let def = load_project(&conn, project_id)?
            .ok_or(StartTaskError::NoProject { batch_id, project_id })?;
        // A value HQ sets binds every site (H5); a value it leaves unset is the site's own.
        let effective = TaskParams {
            ratio: def.params.ratio.unwrap_or(params.ratio).clamp(1, 10),
            max_concurrency: def.params.max_concurrency.unwrap_or(params.max_concurrency).max(1),
            ring_seconds: match def.params.ring_seconds {
                Some(seconds) if seconds > 0 => seconds,
                _ => params.ring_seconds,
            },
        };
        let caller: String =
            conn.query_row("SELECT caller FROM batches WHERE batch_id = ?1", [batch_id], |row| row.get(0)).map_err(DbError::from)?;
        // S2: max concurrency never above the caller's line count, or numbers are burnt on
        // calls no line can carry (数据空跑). A value HQ bound is HQ's to answer for.
        if def.params.max_concurrency.is_none()
            && let Some(channels) = self.caller_channels(&caller)
            && effective.max_concurrency > channels
        {
            let which = if caller.is_empty() { "the site's lines".to_string() } else { format!("caller {caller}") };
            return Err(StartTaskError::Invalid(format!(
                "max concurrency {} is above the {channels} lines of {which}; choose at most {channels}",
                effective.max_concurrency
            )));
        }
        conn.execute(
            "UPDATE batches SET running = 1, ratio = ?2, max_concurrency = ?3, ring_seconds = ?4
             WHERE batch_id = ?1",
            params![batch_id, effective.ratio, effective.max_concurrency, effective.ring_seconds],
        )
        .map_err(DbError::from)?;
        Ok(effective)
    }

    /// The site admin stops a task. Returns whether the batch exists.
    pub fn stop_task(&self, batch_id: u64) -> Result<bool, DbError> {
        let changed =
            self.lock().execute("UPDATE batches SET running = 0 WHERE batch_id = ?1", [batch_id])?;
        Ok(changed > 0)
    }

    /// Tasks that should be dialing now: started here, verified, and not paused or ended.
    pub fn dialable_tasks(&self) -> Result<Vec<(u64, TaskParams)>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT batch_id, ratio, max_concurrency, ring_seconds FROM batches
             WHERE running = 1 AND verified = 1 AND dial_mode = 'predictive'
               AND COALESCE(control_priority, manifest_priority, 2) >= 2
             ORDER BY batch_id",
        )?;
        let tasks = statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    TaskParams {
                        ratio: row.get(1)?,
                        max_concurrency: row.get(2)?,
                        ring_seconds: row.get(3)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(tasks)
    }

    // ---- dialing ----

    /// Takes the next number of `batch_id` and writes its attempt as "dialing", in one
    /// transaction. Order: batch priority (desc), import time, then row order; a number that
    /// has an attempt in progress anywhere on the site is skipped. `None` when nothing is left.
    pub fn claim_next_number(&self, batch_id: u64) -> Result<Option<ClaimedNumber>, DbError> {
        Ok(self.claim_next_numbers(batch_id, 1)?.pop())
    }

    /// Takes up to `n` numbers of `batch_id` in one transaction (one disk flush for a whole
    /// wave of dials), in the order [`Store::claim_next_number`] takes them.
    pub fn claim_next_numbers(&self, batch_id: u64, n: usize) -> Result<Vec<ClaimedNumber>, DbError> {
        self.claim_next_numbers_at(batch_id, n, now_unix())
    }

    /// [`Store::claim_next_numbers`] as if the clock read `now` (unix seconds): HQ's
    /// calling windows are judged at that time.
    pub fn claim_next_numbers_at(&self, batch_id: u64, n: usize, now: i64) -> Result<Vec<ClaimedNumber>, DbError> {
        let minute = hq::china_minute(now);
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let sql = format!(
            "SELECT r.chunk_idx, r.row_idx, r.row_id, r.phone
             FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
             WHERE r.batch_id = ?1 AND r.status = 'new' AND b.verified = 1
               AND COALESCE(b.control_priority, b.manifest_priority, 2) >= 2
               AND NOT EXISTS (SELECT 1 FROM attempts a
                               WHERE a.phone = r.phone AND a.state = 'dialing')
               {gates}
             ORDER BY COALESCE(b.control_priority, b.manifest_priority) DESC,
                      b.imported_at, r.chunk_idx, r.row_idx
             LIMIT 1",
            gates = hq::HQ_GATES
        );
        // Prepared once per connection and reused by every claim of every wave.
        let mut next_row = tx.prepare_cached(&sql)?;
        let mut claimed = Vec::new();
        for _ in 0..n {
            let next: Option<(u32, u32, u64, String)> = next_row
                .query_row(params![batch_id, minute], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
                .optional()?;
            let Some((chunk_idx, row_idx, row_id, phone)) = next else { break };
            tx.execute(
                "UPDATE batch_rows SET status = 'dialing'
                 WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
                params![batch_id, chunk_idx, row_idx],
            )?;
            tx.execute(
                "INSERT INTO attempts (batch_id, chunk_idx, row_idx, row_id, phone, state, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'dialing', ?6)",
                params![batch_id, chunk_idx, row_idx, row_id, phone, now_unix()],
            )?;
            let attempt_id = tx.last_insert_rowid() as u64;
            claimed.push(ClaimedNumber { attempt_id, batch_id, row_id, phone });
        }
        drop(next_row);
        tx.commit()?;
        Ok(claimed)
    }

    /// The customer answered.
    pub fn mark_answered(&self, attempt_id: u64, at: i64) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE attempts SET answered_at = ?2 WHERE attempt_id = ?1 AND answered_at IS NULL",
            params![attempt_id, at],
        )?;
        Ok(())
    }

    /// The agent's desk was shown the popup of an agent's own call: from now on it stays
    /// open (and comes back after a reload) until its record is saved.
    pub fn mark_popped(&self, attempt_id: u64) -> Result<(), DbError> {
        self.lock().execute("UPDATE attempts SET popped = 1 WHERE attempt_id = ?1", [attempt_id])?;
        Ok(())
    }

    /// The customer answered at `answered_at` and the call was put through to `agent`, in
    /// one write.
    pub fn mark_answered_and_bridged(&self, attempt_id: u64, answered_at: i64, agent: &str) -> Result<(), DbError> {
        let written = self.lock().execute(
            "UPDATE attempts SET answered_at = COALESCE(answered_at, ?2), agent = ?3 WHERE attempt_id = ?1",
            params![attempt_id, answered_at, agent],
        );
        self.pending().remove(&attempt_id);
        written?;
        Ok(())
    }

    fn pending(&self) -> MutexGuard<'_, std::collections::HashMap<u64, String>> {
        // One insert or remove per use: a poisoned map is still consistent.
        self.pending_agents.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The dialer put `attempt_id` through to `agent` and queued the write: until it lands,
    /// the agent is known to be the call's owner all the same.
    pub fn note_bridge(&self, attempt_id: u64, agent: &str) {
        self.pending().insert(attempt_id, agent.to_string());
    }

    /// The call was put through to `agent` (username).
    pub fn mark_bridged(&self, attempt_id: u64, agent: &str) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE attempts SET agent = ?2 WHERE attempt_id = ?1",
            params![attempt_id, agent],
        )?;
        Ok(())
    }

    /// Writes the attempt's final outcome, marks its number done and queues the
    /// [`UpEvent::CallAttempt`] in the outbox, all in one transaction.
    pub fn finish_attempt(&self, attempt_id: u64, end: &AttemptEnd) -> Result<CallAttempt, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let (batch_id, chunk_idx, row_idx, row_id, started_at, answered_at, agent, state, kind): (
            u64,
            u32,
            u32,
            u64,
            i64,
            Option<i64>,
            Option<String>,
            String,
            String,
        ) = tx.query_row(
            "SELECT batch_id, chunk_idx, row_idx, row_id, started_at, answered_at, agent, state, kind
             FROM attempts WHERE attempt_id = ?1",
            [attempt_id],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                ))
            },
        )?;
        let talk_seconds = match (end.outcome, answered_at) {
            (Outcome::Connected, Some(answered)) => (end.ended_at - answered).max(0) as u32,
            _ => 0,
        };
        let attempt = CallAttempt {
            attempt_id,
            batch_id,
            row_id,
            started_at,
            answered_at,
            ended_at: end.ended_at,
            outcome: end.outcome,
            hangup_side: end.hangup_side,
            agent,
            talk_seconds,
            recording_sha256: end.recording_sha256.clone(),
            kind: attempt_kind(&kind),
        };
        if state == "done" {
            // Already finished (a duplicate end event): nothing new to report.
            return Ok(attempt);
        }
        tx.execute(
            "UPDATE attempts SET state = 'done', ended_at = ?2, outcome = ?3, hangup_side = ?4,
                    talk_seconds = ?5, recording_path = ?6, recording_sha256 = ?7
             WHERE attempt_id = ?1",
            params![
                attempt_id,
                end.ended_at,
                outcome_name(end.outcome),
                end.hangup_side.map(hangup_name),
                talk_seconds,
                end.recording_path.as_ref().map(|p| p.to_string_lossy().into_owned()),
                end.recording_sha256,
            ],
        )?;
        tx.execute(
            "UPDATE batch_rows SET status = 'done'
             WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
            params![batch_id, chunk_idx, row_idx],
        )?;
        push_outbox(&tx, &UpEvent::CallAttempt(attempt.clone()))?;
        tx.commit()?;
        self.notify.notify_one();
        Ok(attempt)
    }

    /// Attempts left "dialing" by a crash or power cut: their calls died with the process.
    /// Each is finished as failed (and reported), so its number is not stuck.
    pub fn recover_interrupted(&self) -> Result<usize, DbError> {
        let ids: Vec<u64> = {
            let conn = self.lock();
            let mut statement =
                conn.prepare("SELECT attempt_id FROM attempts WHERE state = 'dialing'")?;
            statement.query_map([], |row| row.get(0))?.collect::<Result<Vec<_>, _>>()?
        };
        for attempt_id in &ids {
            self.finish_attempt(
                *attempt_id,
                &AttemptEnd {
                    outcome: Outcome::Failed,
                    hangup_side: Some(HangupSide::System),
                    ended_at: now_unix(),
                    recording_path: None,
                    recording_sha256: None,
                },
            )?;
        }
        Ok(ids.len())
    }

    /// The popup for an attempt, with the project's masking applied.
    pub fn popup(&self, attempt_id: u64) -> Result<Option<Popup>, DbError> {
        self.popup_for(attempt_id, None)
    }

    /// The popup of an attempt for `agent` (username), who may not be written on the
    /// attempt yet: the dialer builds the popup before it records the bridge, so the agent's
    /// screen never waits for a disk write.
    pub fn popup_for(&self, attempt_id: u64, agent_override: Option<&str>) -> Result<Option<Popup>, DbError> {
        // See `reader`: the same reasoning as `lock` makes a poisoned reader safe to use.
        let conn = self.reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        type Found = (u64, u32, u32, String, Option<u64>, u64, Option<String>);
        let found: Option<Found> = conn
            .query_row(
                "SELECT a.batch_id, a.chunk_idx, a.row_idx, a.phone, b.project_id, a.row_id, a.agent
                 FROM attempts a JOIN batches b ON b.batch_id = a.batch_id
                 WHERE a.attempt_id = ?1",
                [attempt_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?)),
            )
            .optional()?;
        let Some((batch_id, chunk_idx, row_idx, phone, project_id, row_id, agent)) = found else {
            return Ok(None);
        };
        let fields_blob: Vec<u8> = conn.query_row(
            "SELECT fields FROM batch_rows WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
            params![batch_id, chunk_idx, row_idx],
            |row| row.get(0),
        )?;
        let values = work::row_values(&conn, batch_id, row_id, &fields_blob)?;
        // An agent who pops on ring sees the number as first three and last four digits for
        // the whole call (manual 3.2.1.1), whatever the project says.
        let agent = agent_override.map(str::to_string).or(agent);
        let ring_mask = match &agent {
            Some(agent) => work::pops_on_ring(&conn, agent, project_id)?,
            None => false,
        };
        let def = load_project(&conn, project_id.unwrap_or_default())?;
        let Some(def) = def else {
            // No project definition: show the number and raw values, nothing to mask by.
            return Ok(Some(Popup {
                attempt_id,
                phone: if ring_mask { mask_phone(&phone) } else { phone },
                fields: values
                    .into_iter()
                    .map(|(key, value)| PopupField { title: key.clone(), key, value })
                    .collect(),
                script: String::new(),
                record_fields: Vec::new(),
            }));
        };
        let fields = def
            .customer_fields
            .iter()
            .filter(|field| !field.hidden)
            .map(|field| PopupField {
                key: field.key.clone(),
                title: field.title.clone(),
                value: values
                    .iter()
                    .find(|(key, _)| *key == field.key)
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let record_fields = def
            .record_fields
            .iter()
            .filter(|field| !field.hidden)
            .map(record_field)
            .collect();
        Ok(Some(Popup {
            attempt_id,
            phone: if def.hide_middle_digits || ring_mask { mask_phone(&phone) } else { phone },
            fields,
            script: def.script.clone(),
            record_fields,
        }))
    }

    /// Attempts bridged to `agent` whose business record is not saved yet, oldest first.
    pub fn unsaved_attempts(&self, agent: &str) -> Result<Vec<u64>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT a.attempt_id FROM attempts a
             WHERE a.agent = ?1 AND (a.kind = 'predictive' OR a.popped = 1)
               AND NOT EXISTS (SELECT 1 FROM business_records r WHERE r.attempt_id = a.attempt_id)
             ORDER BY a.attempt_id",
        )?;
        let ids = statement.query_map([agent], |row| row.get(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// Saves (or re-saves) the business record of an attempt taken by `agent`, checked
    /// against the project's form, with its [`UpEvent::BusinessRecord`] in the same
    /// transaction.
    pub fn save_record(
        &self,
        attempt_id: u64,
        agent: &str,
        values: &[(String, String)],
    ) -> Result<BusinessRecord, SaveRecordError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let found: Option<(u64, u64, Option<String>, Option<u64>)> = tx
            .query_row(
                "SELECT a.batch_id, a.row_id, a.agent, b.project_id
                 FROM attempts a JOIN batches b ON b.batch_id = a.batch_id
                 WHERE a.attempt_id = ?1",
                [attempt_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((batch_id, row_id, owner, project_id)) = found else {
            return Err(SaveRecordError::NoSuchAttempt(attempt_id));
        };
        let owner = owner.or_else(|| self.pending().get(&attempt_id).cloned());
        if owner.as_deref() != Some(agent) {
            return Err(SaveRecordError::NotYours(attempt_id));
        }
        let def = load_project(&tx, project_id.unwrap_or_default())?;
        let record_fields = def.map(|def| def.record_fields).unwrap_or_default();
        let checked = check_record(&record_fields, values)?;
        let record = BusinessRecord {
            attempt_id,
            batch_id,
            row_id,
            agent: agent.to_string(),
            saved_at: now_unix(),
            values: checked,
        };
        let values_json = serde_json::to_string(&record.values)
            .map_err(|e| corrupt("business record values", e))?;
        tx.execute(
            "INSERT INTO business_records (attempt_id, agent, saved_at, record_values)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (attempt_id) DO UPDATE
             SET agent = excluded.agent, saved_at = excluded.saved_at,
                 record_values = excluded.record_values",
            params![attempt_id, agent, record.saved_at, values_json],
        )
        .map_err(DbError::from)?;
        push_outbox(&tx, &UpEvent::BusinessRecord(record.clone()))?;
        tx.commit().map_err(DbError::from)?;
        self.notify.notify_one();
        Ok(record)
    }

    /// Entries waiting in the outbox (not yet acknowledged by HQ).
    pub fn outbox_len(&self) -> Result<u64, DbError> {
        Ok(self.lock().query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))?)
    }

    /// The down-log position (last entry committed).
    pub fn down_applied(&self) -> Result<u64, DbError> {
        let applied: i64 = self
            .lock()
            .query_row("SELECT down_applied FROM sync_state WHERE id = 1", [], |row| row.get(0))?;
        Ok(applied as u64)
    }

    /// Applies one down-log entry (see [`SiteStore::apply_down`]).
    pub fn apply_down_entry(&self, entry: &DownEntry) -> Result<(), DbError> {
        self.apply_down_entries(std::slice::from_ref(entry))
    }

    /// Applies consecutive down-log entries in one transaction and moves the down cursor to
    /// the last (see [`SiteStore::apply_down_batch`]). Entries at or below the cursor are
    /// skipped. A run of batch chunks and manifests has each touched batch checked against
    /// its manifest once, when the run ends or before any other kind of entry (which may
    /// look at whether a batch is dialable): a million-row batch is hundreds of chunks,
    /// and checking it after each would read it hundreds of times.
    pub fn apply_down_entries(&self, entries: &[DownEntry]) -> Result<(), DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let applied: i64 =
            tx.query_row("SELECT down_applied FROM sync_state WHERE id = 1", [], |row| row.get(0))?;
        let applied = applied as u64;
        let heard_at = self.link_heard_at.load(std::sync::atomic::Ordering::Relaxed);
        let mut position = applied;
        let mut wrote_outbox = false;
        // Batches written by the current run of chunks and manifests, not yet checked.
        let mut unchecked: Vec<u64> = Vec::new();
        // The written-rows hashes of the batches this call touches, taken out of the store's
        // map and put back only once the transaction commits: a rolled-back write must not
        // leave a hash of rows that are not there.
        let mut kept = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut written: std::collections::HashMap<u64, Option<WrittenHash>> = std::collections::HashMap::new();
        let mut dialable: Vec<u64> = Vec::new();
        let check = |tx: &Transaction<'_>,
                     unchecked: &mut Vec<u64>,
                     written: &std::collections::HashMap<u64, Option<WrittenHash>>,
                     dialable: &mut Vec<u64>|
         -> Result<(), DbError> {
            for batch_id in unchecked.drain(..) {
                if verify_batch(tx, batch_id, written.get(&batch_id).and_then(Option::as_ref))? {
                    dialable.push(batch_id);
                }
            }
            Ok(())
        };
        for entry in entries {
            if entry.seq <= position {
                continue;
            }
            position = entry.seq;
            let batch_id = match &entry.event {
                DownEvent::BatchChunk(chunk) => Some(chunk.batch_id),
                DownEvent::BatchManifest(manifest) => Some(manifest.batch_id),
                _ => None,
            };
            match batch_id {
                Some(batch_id) => {
                    if !unchecked.contains(&batch_id) {
                        unchecked.push(batch_id);
                    }
                    written.entry(batch_id).or_insert_with(|| kept.remove(&batch_id));
                }
                None => check(&tx, &mut unchecked, &written, &mut dialable)?,
            }
            match &entry.event {
                DownEvent::Project(def) => apply_project(&tx, def)?,
                DownEvent::BatchChunk(chunk) => {
                    if let Some(state) = written.get_mut(&chunk.batch_id) {
                        *state = WrittenHash::follow(&tx, state.take(), chunk)?;
                    }
                    apply_chunk(&tx, chunk)?
                }
                DownEvent::BatchManifest(manifest) => apply_manifest(&tx, manifest)?,
                DownEvent::BatchControl(control) => {
                    let applied = apply_control(&tx, control)?;
                    hq::report_control(&tx, sync_protocol::ControlTarget::Batch(control.batch_id), control.version, applied, heard_at)?;
                    wrote_outbox = true;
                }
                DownEvent::AttributionRules(rules) => work::apply_hq_rules(&tx, rules)?,
                DownEvent::BlackList(change) => hq::apply_blacklist(&tx, change)?,
                DownEvent::PhoneList(change) => hq::apply_phone_list(&tx, change)?,
                DownEvent::ProjectSettings(settings) => hq::apply_project_settings(&tx, settings)?,
                DownEvent::LinkSettings(settings) => hq::apply_link_settings(&tx, settings)?,
                DownEvent::ProjectControl(control) => {
                    hq::apply_project_control(&tx, control, heard_at)?;
                    wrote_outbox = true;
                }
                DownEvent::OneClick(control) => {
                    hq::apply_one_click(&tx, control, heard_at)?;
                    wrote_outbox = true;
                }
                DownEvent::VoiceFile(voice) => notices::apply_voice_file(&tx, voice)?,
                DownEvent::Announcement(notice) => notices::apply_announcement(&tx, notice)?,
                other => {
                    // A newer hub sent something this build does not know; skipping it keeps the
                    // link moving, and the log line tells the technician to upgrade.
                    tracing::warn!(seq = entry.seq, event = ?other, "unknown down event skipped; upgrade the appliance");
                }
            }
        }
        if position == applied {
            return Ok(());
        }
        check(&tx, &mut unchecked, &written, &mut dialable)?;
        for &batch_id in &dialable {
            // HQ's attribution rules give the arrived rows to their agents (unless the site
            // keeps rules of its own for the project, which its admin applies).
            work::allocate_by_hq_rules(&tx, batch_id)?;
        }
        tx.execute(
            "UPDATE sync_state SET down_applied = ?1, heard_at = ?2 WHERE id = 1",
            params![position as i64, heard_at],
        )?;
        tx.commit()?;
        // A batch that checked out needs its hash no more; the others keep following.
        for (batch_id, state) in written {
            if let Some(state) = state
                && !dialable.contains(&batch_id)
            {
                kept.insert(batch_id, state);
            }
        }
        drop(kept);
        if wrote_outbox {
            self.notify.notify_one();
        }
        Ok(())
    }

    fn outbox_entries(&self, after_seq: u64, limit: usize) -> Result<Vec<UpEntry>, DbError> {
        let conn = self.lock();
        let mut statement =
            conn.prepare("SELECT seq, payload FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let mut rows = statement.query(params![after_seq as i64, limit as i64])?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let payload: Vec<u8> = row.get(1)?;
            let event: UpEvent =
                postcard::from_bytes(&payload).map_err(|e| corrupt("outbox entry", e))?;
            entries.push(UpEntry { epoch: self.epoch, seq: seq as u64, event });
        }
        Ok(entries)
    }

    fn drop_acked(&self, epoch: u64, seq: u64) -> Result<(), DbError> {
        if epoch != self.epoch {
            // An acknowledgement for another epoch says nothing about this outbox.
            tracing::warn!(epoch, ours = self.epoch, "outbox acknowledgement for a foreign epoch ignored");
            return Ok(());
        }
        self.lock().execute("DELETE FROM outbox WHERE seq <= ?1", [seq as i64])?;
        Ok(())
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

fn hash_password(password: &str) -> String {
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

fn push_outbox(tx: &Transaction<'_>, event: &UpEvent) -> Result<u64, DbError> {
    let payload = postcard::to_stdvec(event).map_err(|e| corrupt("outbox entry", e))?;
    tx.execute("INSERT INTO outbox (payload) VALUES (?1)", [payload])?;
    Ok(tx.last_insert_rowid() as u64)
}

fn load_project(conn: &Connection, project_id: u64) -> Result<Option<ProjectDef>, DbError> {
    let blob: Option<Vec<u8>> = conn
        .query_row("SELECT def FROM projects WHERE project_id = ?1", [project_id], |row| row.get(0))
        .optional()?;
    match blob {
        Some(bytes) => Ok(Some(
            postcard::from_bytes(&bytes).map_err(|e| corrupt("project definition", e))?,
        )),
        None => Ok(None),
    }
}

fn record_field(field: &FieldDef) -> RecordField {
    let (kind, options) = match &field.kind {
        FieldKind::SingleChoice(options) => ("single_choice", options.clone()),
        FieldKind::Text => ("text", Vec::new()),
        _ => ("text", Vec::new()),
    };
    RecordField { key: field.key.clone(), title: field.title.clone(), kind, options, required: field.required }
}

/// Checks submitted values against the form; returns them in the form's order.
fn check_record(
    fields: &[FieldDef],
    values: &[(String, String)],
) -> Result<Vec<(String, String)>, SaveRecordError> {
    for (key, _) in values {
        if !fields.iter().any(|field| field.key == *key && !field.hidden && !field.read_only) {
            return Err(SaveRecordError::Invalid(format!(
                "field \"{key}\" is not an editable field of this project's business record"
            )));
        }
    }
    let mut checked = Vec::new();
    for field in fields.iter().filter(|field| !field.hidden && !field.read_only) {
        let value = values
            .iter()
            .find(|(key, _)| *key == field.key)
            .map(|(_, value)| value.trim().to_string())
            .unwrap_or_default();
        if value.is_empty() {
            if field.required {
                return Err(SaveRecordError::Invalid(format!(
                    "field \"{}\" ({}) is required",
                    field.title, field.key
                )));
            }
            continue;
        }
        if value.chars().count() > 2000 {
            return Err(SaveRecordError::Invalid(format!(
                "field \"{}\" is longer than 2000 characters",
                field.title
            )));
        }
        if let FieldKind::SingleChoice(options) = &field.kind
            && !options.contains(&value)
        {
            return Err(SaveRecordError::Invalid(format!(
                "field \"{}\": \"{value}\" is not one of its options ({})",
                field.title,
                options.join(" / ")
            )));
        }
        checked.push((field.key.clone(), value));
    }
    Ok(checked)
}

fn apply_project(tx: &Transaction<'_>, def: &ProjectDef) -> Result<(), DbError> {
    let bytes = postcard::to_stdvec(def).map_err(|e| corrupt("project definition", e))?;
    tx.execute(
        "INSERT INTO projects (project_id, version, def) VALUES (?1, ?2, ?3)
         ON CONFLICT (project_id) DO UPDATE SET version = excluded.version, def = excluded.def
         WHERE excluded.version > projects.version",
        params![def.project_id, def.version as i64, bytes],
    )?;
    Ok(())
}

fn ensure_batch(tx: &Transaction<'_>, batch_id: u64) -> Result<(), DbError> {
    tx.execute("INSERT OR IGNORE INTO batches (batch_id) VALUES (?1)", [batch_id])?;
    Ok(())
}

/// Rows one `INSERT` of a chunk carries (six parameters each, far below SQLite's limit).
const ROWS_PER_INSERT: usize = 50;

/// Inserts (or replaces) `n` rows of a chunk; see [`apply_chunk`].
fn upsert_rows_sql(n: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?, ?)"; n].join(", ");
    format!(
        "INSERT INTO batch_rows (batch_id, chunk_idx, row_idx, row_id, phone, fields)
         VALUES {values}
         ON CONFLICT (batch_id, chunk_idx, row_idx) DO UPDATE
         SET status = CASE WHEN batch_rows.row_id = excluded.row_id
                           THEN batch_rows.status ELSE 'new' END,
             row_id = excluded.row_id, phone = excluded.phone, fields = excluded.fields"
    )
}

static UPSERT_ROWS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| upsert_rows_sql(ROWS_PER_INSERT));
static UPSERT_ONE_ROW_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| upsert_rows_sql(1));

fn apply_chunk(tx: &Transaction<'_>, chunk: &BatchChunk) -> Result<(), DbError> {
    ensure_batch(tx, chunk.batch_id)?;
    // A re-sent chunk replaces the earlier copy; a row whose id did not change keeps its
    // dialing status so that a resend never makes a dialed number dialable again.
    // Statements carrying ROWS_PER_INSERT rows each (prepared once per connection, then
    // cached) and one encoding buffer reused across rows: at 2,000 rows a chunk,
    // re-preparing the SQL and allocating a fresh buffer for each row was most of the
    // apply time, and then running one statement per row was a third of what remained.
    let mut upsert = tx.prepare_cached(&UPSERT_ROWS_SQL)?;
    let mut upsert_one = tx.prepare_cached(&UPSERT_ONE_ROW_SQL)?;
    let batch_id = chunk.batch_id as i64;
    let chunk_idx = i64::from(chunk.chunk_idx);
    let mut fields = Vec::with_capacity(256);
    let mut bind = |statement: &mut rusqlite::CachedStatement<'_>, slot: usize, row_idx: usize, row: &sync_protocol::CustomerRow| {
        fields.clear();
        fields = postcard::to_extend(&row.fields, std::mem::take(&mut fields)).map_err(|e| corrupt("customer row", e))?;
        let first = slot * 6;
        statement.raw_bind_parameter(first + 1, batch_id)?;
        statement.raw_bind_parameter(first + 2, chunk_idx)?;
        statement.raw_bind_parameter(first + 3, row_idx as i64)?;
        statement.raw_bind_parameter(first + 4, row.row_id as i64)?;
        statement.raw_bind_parameter(first + 5, row.phone.as_str())?;
        // Blobs are bound as copies (SQLITE_TRANSIENT), so the buffer can be reused.
        statement.raw_bind_parameter(first + 6, fields.as_slice())?;
        Ok::<(), DbError>(())
    };
    let mut blocks = chunk.rows.chunks_exact(ROWS_PER_INSERT);
    for (block_idx, block) in blocks.by_ref().enumerate() {
        for (slot, row) in block.iter().enumerate() {
            bind(&mut upsert, slot, block_idx * ROWS_PER_INSERT + slot, row)?;
        }
        upsert.raw_execute()?;
    }
    let done = chunk.rows.len() - blocks.remainder().len();
    for (offset, row) in blocks.remainder().iter().enumerate() {
        bind(&mut upsert_one, 0, done + offset, row)?;
        upsert_one.raw_execute()?;
    }
    drop(upsert_one);
    drop(upsert);
    tx.execute(
        "DELETE FROM batch_rows WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx >= ?3",
        params![chunk.batch_id, chunk.chunk_idx, chunk.rows.len() as u32],
    )?;
    // Checked against the manifest by the caller, once per run of chunks.
    Ok(())
}

fn apply_manifest(tx: &Transaction<'_>, manifest: &BatchManifest) -> Result<(), DbError> {
    ensure_batch(tx, manifest.batch_id)?;
    tx.execute(
        "UPDATE batches SET project_id = ?2, name = ?3, manifest_priority = ?4, imported_at = ?5,
                n_rows = ?6, n_chunks = ?7, rows_hash = ?8
         WHERE batch_id = ?1",
        params![
            manifest.batch_id,
            manifest.project_id,
            manifest.name,
            manifest.priority,
            manifest.imported_at,
            manifest.n_rows as i64,
            manifest.n_chunks,
            manifest.rows_hash.to_vec(),
        ],
    )?;
    // Checked against the stored rows by the caller, once per run of chunks.
    Ok(())
}

/// [`rows_hash`] fed one row at a time from borrowed parts: the same length-prefixed
/// SHA-256 (a test holds the two equal), without building a `CustomerRow` per row.
#[derive(Default, Clone)]
struct RowsHasher(sha2::Sha256);

impl RowsHasher {
    fn put(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn row<'a>(&mut self, row_id: u64, phone: &str, fields: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.put(&row_id.to_le_bytes());
        self.put(phone.as_bytes());
        for (key, value) in fields {
            self.put(key.as_bytes());
            self.put(value.as_bytes());
        }
    }

    fn finish(self) -> [u8; 32] {
        use sha2::Digest;
        self.0.finalize().into()
    }
}

/// A batch's rows hashed as they were written, so the manifest check need not read a
/// million rows back.
///
/// It holds only while the batch's stored rows are exactly the rows of chunks
/// `0..next_chunk`, each written once, in order, into a batch that held no rows, by the
/// same transactions that hashed them (the store keeps it only after they commit). Any
/// other write breaks the chain ([`WrittenHash::follow`] answers `None`) and the batch is
/// checked by reading its rows back, as after a restart. Dialing and ownership change a
/// row's status and owner, which the hash does not cover; nothing else writes the rows.
#[derive(Clone, Default)]
struct WrittenHash {
    next_chunk: u32,
    rows: i64,
    hasher: RowsHasher,
}

impl WrittenHash {
    /// The state after `chunk` is written (call before writing it): the chain goes on if
    /// this is the next chunk, starts at chunk 0 of a batch holding no rows, and breaks
    /// otherwise.
    fn follow(tx: &Transaction<'_>, state: Option<WrittenHash>, chunk: &BatchChunk) -> Result<Option<WrittenHash>, DbError> {
        let mut state = match state {
            Some(state) if chunk.chunk_idx > 0 && state.next_chunk == chunk.chunk_idx => state,
            _ if chunk.chunk_idx == 0 => {
                let holds_rows: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM batch_rows WHERE batch_id = ?1)",
                    [chunk.batch_id],
                    |row| row.get(0),
                )?;
                if holds_rows {
                    return Ok(None);
                }
                WrittenHash::default()
            }
            _ => return Ok(None),
        };
        for row in &chunk.rows {
            state.hasher.row(row.row_id, &row.phone, row.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        state.rows += chunk.rows.len() as i64;
        state.next_chunk += 1;
        Ok(Some(state))
    }
}

/// Marks the batch dialable if its stored rows match its manifest, or records why not;
/// answers whether it is dialable. `written` is the batch's rows hashed as they were
/// written, if the chain held (see [`WrittenHash`]); without it the rows are read back.
fn verify_batch(tx: &Transaction<'_>, batch_id: u64, written: Option<&WrittenHash>) -> Result<bool, DbError> {
    let (n_rows, n_chunks, expected_hash): (Option<i64>, Option<u32>, Option<Vec<u8>>) = tx
        .query_row(
            "SELECT n_rows, n_chunks, rows_hash FROM batches WHERE batch_id = ?1",
            [batch_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
    let (Some(n_rows), Some(n_chunks), Some(expected_hash)) = (n_rows, n_chunks, expected_hash)
    else {
        return Ok(false); // no manifest yet: stays not dialable
    };
    let (n_stored, max_chunk, hash) = match written {
        Some(written) => (written.rows, written.next_chunk.checked_sub(1), written.hasher.clone().finish()),
        None => read_back(tx, batch_id)?,
    };
    let problem = if n_stored != n_rows {
        Some(format!("batch {batch_id}: manifest says {n_rows} rows, {n_stored} received so far"))
    } else if max_chunk.is_some_and(|m| m >= n_chunks) {
        Some(format!("batch {batch_id}: a chunk index is beyond the manifest's {n_chunks} chunks"))
    } else if hash.as_slice() != expected_hash.as_slice() {
        Some(format!(
            "batch {batch_id}: rows hash does not match the manifest; HQ must re-send the batch"
        ))
    } else {
        None
    };
    match &problem {
        Some(reason) => tracing::warn!(batch_id, %reason, "batch not dialable"),
        None => tracing::info!(batch_id, n_rows, "batch verified and dialable"),
    }
    tx.execute(
        "UPDATE batches SET verified = ?2, verify_error = ?3 WHERE batch_id = ?1",
        params![batch_id, problem.is_none(), problem],
    )?;
    Ok(problem.is_none())
}

/// The batch's stored rows: how many, the highest chunk index, and their [`rows_hash`].
fn read_back(tx: &Transaction<'_>, batch_id: u64) -> Result<(i64, Option<u32>, [u8; 32]), DbError> {
    // One pass over the stored rows, hashed as they stream by: each row's fields are read
    // borrowed from the stored bytes, never built into owned rows, so checking a batch of
    // a million rows costs no more memory than one row.
    let mut statement = tx.prepare(
        "SELECT chunk_idx, row_id, phone, fields FROM batch_rows WHERE batch_id = ?1
         ORDER BY chunk_idx, row_idx",
    )?;
    let mut rows = statement.query([batch_id])?;
    let mut hasher = RowsHasher::default();
    let mut n_stored: i64 = 0;
    let mut max_chunk: Option<u32> = None;
    while let Some(row) = rows.next()? {
        let chunk_idx: u32 = row.get(0)?;
        max_chunk = Some(max_chunk.map_or(chunk_idx, |m| m.max(chunk_idx)));
        let row_id: i64 = row.get(1)?;
        let phone = row.get_ref(2)?.as_str().map_err(|e| corrupt("customer row", e))?;
        let blob = row.get_ref(3)?.as_blob().map_err(|e| corrupt("customer row", e))?;
        let fields: Vec<(&str, &str)> = postcard::from_bytes(blob).map_err(|e| corrupt("customer row", e))?;
        hasher.row(row_id as u64, phone, fields.iter().copied());
        n_stored += 1;
    }
    Ok((n_stored, max_chunk, hasher.finish()))
}

/// Applies a batch control if it is newer than the last; returns whether it was.
fn apply_control(tx: &Transaction<'_>, control: &BatchControl) -> Result<bool, DbError> {
    ensure_batch(tx, control.batch_id)?;
    let changed = tx.execute(
        "UPDATE batches SET control_version = ?2, control_priority = ?3
         WHERE batch_id = ?1 AND (control_version IS NULL OR control_version < ?2)",
        params![control.batch_id, control.version as i64, control.priority],
    )?;
    Ok(changed > 0)
}

fn link_error(error: DbError) -> sync_link::StoreError {
    sync_link::StoreError::Other(error.to_string())
}

impl SiteStore for Store {
    fn sync_position(&self) -> StoreResult<(u64, u64)> {
        Ok((self.epoch, self.down_applied().map_err(link_error)?))
    }

    fn outbox_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<UpEntry>> {
        self.outbox_entries(after_seq, limit).map_err(link_error)
    }

    fn outbox_acked(&self, epoch: u64, seq: u64) -> StoreResult<()> {
        self.drop_acked(epoch, seq).map_err(link_error)
    }

    fn apply_down(&self, entry: &DownEntry) -> StoreResult<()> {
        self.apply_down_entry(entry).map_err(link_error)
    }

    fn apply_down_batch(&self, entries: &[DownEntry]) -> StoreResult<()> {
        self.apply_down_entries(entries).map_err(link_error)
    }

    fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    fn pending_recordings(&self, limit: usize) -> StoreResult<Vec<sync_link::blob::BlobRef>> {
        self.recordings_to_upload(limit).map_err(link_error)
    }

    fn open_recording(&self, sha256: &[u8; 32]) -> StoreResult<Option<sync_link::blob::OpenBlob>> {
        self.open_recording_file(sha256).map_err(link_error)
    }

    fn recording_uploaded(&self, sha256: &[u8; 32]) -> StoreResult<()> {
        self.mark_recording_uploaded(sha256).map_err(link_error)
    }

    fn voice_held(&self, sha256: &[u8; 32]) -> StoreResult<u64> {
        self.voice_held_bytes(sha256).map_err(|error| sync_link::StoreError::Other(error.to_string()))
    }

    fn voice_append(&self, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> StoreResult<()> {
        self.voice_append_bytes(sha256, offset, bytes).map_err(|error| sync_link::StoreError::Other(error.to_string()))
    }

    fn voice_finish(&self, sha256: &[u8; 32]) -> StoreResult<sync_link::blob::BlobCheck> {
        self.voice_finish_bytes(sha256).map_err(|error| sync_link::StoreError::Other(error.to_string()))
    }

    fn link_settings(&self) -> StoreResult<Option<sync_protocol::LinkSettings>> {
        self.stored_link_settings().map_err(link_error)
    }

    fn live_figures(&self) -> StoreResult<Option<sync_protocol::LiveFigures>> {
        // Polled every 500 ms, only while the session is up: its rhythm tells when HQ
        // was last known to be there (see `Store::heard_from_link`).
        self.heard_from_link();
        self.figures_now().map(Some).map_err(link_error)
    }
}

#[cfg(test)]
mod tests {
    use sync_protocol::{CustomerRow, rows_hash};

    use super::*;

    #[test]
    fn streaming_rows_hash_equals_the_protocols() {
        let rows: Vec<CustomerRow> = (0..50u64)
            .map(|i| CustomerRow {
                row_id: i * 7 + 1,
                phone: format!("1380013{i:04}"),
                fields: (0..(i % 4)).map(|f| (format!("k{f}"), format!("值{i}-{f}"))).collect(),
            })
            .collect();
        let mut hasher = RowsHasher::default();
        for row in &rows {
            let fields: Vec<(&str, &str)> = row.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            hasher.row(row.row_id, &row.phone, fields.iter().copied());
        }
        assert_eq!(hasher.finish(), rows_hash(&rows));
    }

    fn test_rows(n: u64) -> Vec<CustomerRow> {
        (1..=n)
            .map(|i| CustomerRow {
                row_id: i,
                phone: format!("1380013{i:04}"),
                fields: vec![("name".to_owned(), format!("客户{i}")), ("city".to_owned(), "上海".to_owned())],
            })
            .collect()
    }

    /// The batch's chunks (`per` rows each) at seqs from `first_seq`, then its manifest.
    fn batch(first_seq: u64, batch_id: u64, rows: &[CustomerRow], per: usize) -> Vec<DownEntry> {
        let mut events: Vec<DownEvent> = rows
            .chunks(per)
            .enumerate()
            .map(|(idx, chunk)| {
                DownEvent::BatchChunk(BatchChunk { batch_id, chunk_idx: idx as u32, rows: chunk.to_vec() })
            })
            .collect();
        events.push(DownEvent::BatchManifest(BatchManifest {
            batch_id,
            project_id: 1,
            name: format!("batch {batch_id}"),
            priority: 50,
            imported_at: 1,
            n_rows: rows.len() as u64,
            n_chunks: rows.len().div_ceil(per) as u32,
            rows_hash: rows_hash(rows),
        }));
        events.into_iter().enumerate().map(|(i, event)| DownEntry { seq: first_seq + i as u64, event }).collect()
    }

    /// (verified, verify_error, stored rows) of a batch.
    fn batch_state(store: &Store, batch_id: u64) -> (bool, Option<String>, i64) {
        store
            .lock()
            .query_row(
                "SELECT verified, verify_error, (SELECT COUNT(*) FROM batch_rows WHERE batch_id = ?1)
                 FROM batches WHERE batch_id = ?1",
                [batch_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .expect("batch state")
    }

    fn following(store: &Store, batch_id: u64) -> Option<u32> {
        store.written.lock().expect("written").get(&batch_id).map(|state| state.next_chunk)
    }

    #[test]
    fn a_run_of_entries_commits_in_one_call_and_replays_as_a_no_op() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let rows = test_rows(10);
        let entries = batch(1, 7, &rows, 3); // 4 chunks and the manifest: seqs 1..=5
        store.apply_down_batch(&entries[..2]).expect("first run");
        assert_eq!(store.down_applied().expect("position"), 2);
        assert_eq!(following(&store, 7), Some(2), "the chain follows the chunks as written");
        assert!(!batch_state(&store, 7).0);
        store.apply_down_batch(&entries[2..]).expect("second run");
        assert_eq!(store.down_applied().expect("position"), 5);
        assert_eq!(batch_state(&store, 7), (true, None, 10));
        assert_eq!(following(&store, 7), None, "a checked batch needs its hash no more");
        // The whole log again, in one call and one by one: nothing changes, the cursor stays.
        store.apply_down_batch(&entries).expect("replay");
        for entry in &entries {
            store.apply_down(entry).expect("replay one");
        }
        assert_eq!(store.down_applied().expect("position"), 5);
        assert_eq!(batch_state(&store, 7), (true, None, 10));
    }

    #[test]
    fn rows_hashed_as_written_catch_a_row_changed_in_transit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let rows = test_rows(6);
        let mut entries = batch(1, 8, &rows, 2);
        if let DownEvent::BatchChunk(chunk) = &mut entries[1].event {
            chunk.rows[1].fields[0].1 = "someone else".to_owned();
        }
        store.apply_down_batch(&entries).expect("apply");
        let (verified, problem, stored) = batch_state(&store, 8);
        assert!(!verified);
        assert!(problem.unwrap_or_default().contains("hash"));
        assert_eq!(stored, 6);
        assert_eq!(following(&store, 8), Some(3), "checked against the rows as written, and kept");
        // HQ re-sends the chunk: the chain is broken (chunk 1 again), so the batch is read
        // back, and now it checks out.
        let resent = DownEntry { seq: 10, event: DownEvent::BatchChunk(BatchChunk { batch_id: 8, chunk_idx: 1, rows: rows[2..4].to_vec() }) };
        store.apply_down_batch(std::slice::from_ref(&resent)).expect("resend");
        assert_eq!(following(&store, 8), None);
        assert_eq!(batch_state(&store, 8), (true, None, 6));
    }

    #[test]
    fn a_broken_chain_falls_back_to_reading_the_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rows = test_rows(9);
        // A restart halfway: the chain is lost with the process, the rest is read back.
        let entries = batch(1, 9, &rows, 3);
        {
            let store = Store::open(dir.path()).expect("open");
            store.apply_down_batch(&entries[..2]).expect("before the restart");
        }
        let store = Store::open(dir.path()).expect("reopen");
        store.apply_down_batch(&entries[2..]).expect("after the restart");
        assert_eq!(following(&store, 9), None);
        assert_eq!(batch_state(&store, 9), (true, None, 9));

        // Chunks out of order: read back, and the batch still checks out.
        let mut shuffled = batch(100, 10, &rows, 3);
        shuffled.swap(0, 1);
        for (i, entry) in shuffled.iter_mut().enumerate() {
            entry.seq = 100 + i as u64;
        }
        store.apply_down_batch(&shuffled).expect("shuffled");
        assert_eq!(batch_state(&store, 10), (true, None, 9));

        // A batch sent again with fewer chunks into rows already held: the chain does not
        // start (chunk 0 into a batch with rows), so the leftover chunk is counted.
        let shorter = test_rows(6);
        let again = batch(200, 10, &shorter, 3);
        store.apply_down_batch(&again).expect("again");
        let (verified, problem, stored) = batch_state(&store, 10);
        assert!(!verified, "{problem:?}");
        assert_eq!(stored, 9);
        assert!(problem.unwrap_or_default().contains("6 rows"));
    }

    #[test]
    fn rows_inserted_many_to_a_statement_read_back_whole_and_a_resend_keeps_their_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        // Two full statements and 20 rows one by one.
        let mut rows = test_rows(2 * ROWS_PER_INSERT as u64 + 20);
        let entries = batch(1, 12, &rows, rows.len());
        store.apply_down_batch(&entries).expect("apply");
        assert_eq!(batch_state(&store, 12), (true, None, rows.len() as i64));
        {
            let mut conn = store.lock();
            let tx = conn.transaction().expect("tx");
            let (n, max_chunk, hash) = read_back(&tx, 12).expect("read back");
            assert_eq!((n, max_chunk, hash), (rows.len() as i64, Some(0), rows_hash(&rows)));
            tx.execute("UPDATE batch_rows SET status = 'dialing' WHERE batch_id = 12 AND row_idx IN (55, 110)", [])
                .expect("dial");
            tx.commit().expect("commit");
        }
        // The same chunk again keeps what was dialed; a row whose id changed is new again.
        rows[110].row_id = 9_999;
        let resent = DownEntry { seq: 10, event: DownEvent::BatchChunk(BatchChunk { batch_id: 12, chunk_idx: 0, rows: rows.clone() }) };
        store.apply_down_batch(std::slice::from_ref(&resent)).expect("resend");
        let status = |row_idx: i64| -> String {
            store
                .lock()
                .query_row("SELECT status FROM batch_rows WHERE batch_id = 12 AND row_idx = ?1", [row_idx], |row| row.get(0))
                .expect("status")
        };
        assert_eq!(status(55), "dialing");
        assert_eq!(status(110), "new");
        let (verified, problem, stored) = batch_state(&store, 12);
        assert!(!verified && problem.unwrap_or_default().contains("hash"), "row 110 no longer matches the manifest");
        assert_eq!(stored, rows.len() as i64);
    }

    #[test]
    fn a_batch_is_checked_before_a_later_entry_in_the_same_run_looks_at_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let rows = test_rows(4);
        let mut entries = batch(1, 11, &rows, 2);
        // A one-click start starts only dialable batches: in the same run as the batch, it
        // must see the batch already checked against its manifest.
        entries.push(DownEntry {
            seq: 4,
            event: DownEvent::OneClick(sync_protocol::OneClickControl {
                scope: sync_protocol::ControlScope::Batch(11),
                version: 1,
                start: true,
            }),
        });
        store.apply_down_batch(&entries).expect("apply");
        assert_eq!(batch_state(&store, 11), (true, None, 4));
        let running: bool = store
            .lock()
            .query_row("SELECT running FROM batches WHERE batch_id = 11", [], |row| row.get(0))
            .expect("running");
        assert!(running, "the start saw the batch dialable");
        assert_eq!(store.down_applied().expect("position"), 4);
    }
}
