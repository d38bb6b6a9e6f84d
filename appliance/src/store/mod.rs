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
//!
//! One file per responsibility, each an `impl Store` block with its own types; this file
//! holds the [`Store`] itself, opening it, and the helpers every part shares:
//!
//! - `schema`: the migrations.
//! - `accounts`: accounts, extensions, site roles and the agents' desk settings
//!   (`sessions`: their web sessions).
//! - `tasks`: the batches as tasks, their parameters, settings and agents.
//! - `attribution`: the site's and HQ's attribution rules and allocation.
//! - `dialing`: the predictive dialer's claims, attempts and their end.
//! - `manual`: agents' own calls (my projects, one-click, callbacks called, call back now).
//! - `popup`: the popup of a call put through.
//! - `records`: business records, call records, customers and their edits.
//! - `callbacks`: scheduled callbacks.
//! - `viewer`: who reads and what they may see (number masking, hidden fields).
//! - `link`: down-log apply, batch verification, the outbox and `impl SiteStore`.
//! - `hq`: HQ's gates and controls; `notices`: voice files and announcements.
//! - `reports`: the report engine's facts written with each attempt and record, HQ's
//!   report definitions, and the site's report reads.
//! - `retention`: how long recordings are kept (HQ's setting) and their deletion.
//! - `quality`: each call's audio quality per leg (loss, jitter, MOS) as the lines measured it.

mod accounts;
mod account_edits;
mod attribution;
mod callback_edit;
mod callbacks;
mod default_form;
mod dialing;
mod health;
mod hq;
mod leases;
mod inbound;
mod link;
mod list_columns;
mod live;
mod manual;
mod notices;
mod popup;
mod quality;
mod records;
mod reports;
mod retention;
#[cfg(test)]
mod migration_tests;
mod schema;
mod restore;
mod sessions;
mod tasks;
mod task_list;
mod typed_dial;
mod viewer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sync_protocol::{ProjectDef, UpEvent};
use tokio::sync::Notify;

pub use accounts::{AgentSettings, CreateExtensionError, CreateUserError, Extension, Module, Role, RoleError, SiteRole, User};
pub use attribution::{AllocationReport, AttributionError, SiteRule, attribute};
pub use callbacks::{CallbackError, CallbackScope, CallbackView, DueCallback};
pub use callback_edit::CallbackEdit;
pub use default_form::{DefaultFormError, FormField};
pub use dialing::{AttemptEnd, ClaimedNumber};
pub use restore::{ID_GAP, mark_restored};
pub use health::HealthFigures;
pub use inbound::InboundClaim;
pub use quality::{LegFigures, PoorCall, StoredQuality, POOR_LOSS_PERCENT, POOR_MOS};
pub use hq::{AbandonRates, AgentCounts, HqListedView, china_minute};
pub use list_columns::Unlisted;
pub use live::{BoardAgent, LiveBoard};
pub use manual::{ManualClaim, ManualDialError, MyProject};
pub use notices::{AnnouncementView, VoiceFileView};
pub use popup::{Popup, PopupField, RecordField};
pub use reports::NumberAttempt;
pub use retention::RetentionPass;
pub use records::{CallFilter, CallRecordView, CustomerPage, CustomerView, EditCustomerError, SaveRecordError};
pub use tasks::{
    ANSWER_MODES, HqBound, Line, PACING_MODES, ROUTING_RULES, SiteDialMode, StartTaskError, TaskExtras, TaskParams,
    TaskSettings, TaskSettingsError, TaskStatus, TaskSummary, suggested_max_concurrency,
};
pub use task_list::ProjectTaskView;
pub use typed_dial::TypedDialError;
pub use viewer::{Viewer, mask_phone, visible_fields};

use hq::hex_of;
use link::WrittenHash;
use schema::MIGRATIONS;

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
    /// The reports' one-time backfill of the attempts written before them failed.
    #[error("cannot fill the reports of site database {path}: {source}")]
    Backfill { path: PathBuf, source: DbError },
    /// The database was written by a newer build than this one.
    #[error(
        "site database {path} has schema version {found}, newer than this build's {known}; \
         install the newer appliance build"
    )]
    TooNew { path: PathBuf, found: i64, known: usize },
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
    /// The driver's board and since when each agent is in its state, for HQ's wall.
    live: Mutex<live::LiveMemory>,
    /// Batches whose rows were hashed as they were written (see [`WrittenHash`]). Lives
    /// in memory only: after a restart a batch is checked by reading it back.
    written: Mutex<std::collections::HashMap<u64, WrittenHash>>,
    /// The report engine, fed after each commit that gave it facts (see `reports`).
    reports: std::sync::RwLock<Arc<::reports::Engine>>,
}

fn corrupt(what: &'static str, detail: impl ToString) -> DbError {
    DbError::Corrupt { what, detail: detail.to_string() }
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
        reports::backfill(&tx).map_err(|source| OpenError::Backfill { path: path.clone(), source })?;
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
            live: Mutex::new(live::LiveMemory::default()),
            written: Mutex::new(std::collections::HashMap::new()),
            reports: std::sync::RwLock::new(Arc::new(::reports::Engine::site(::reports::Zone::china()))),
        })
    }

    /// Where the database file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this build writes (a backup newer than it is refused).
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
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
