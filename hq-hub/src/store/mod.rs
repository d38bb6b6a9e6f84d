//! The hub's store: every SQL statement of the hub lives under this module.
//!
//! - One SQLite file (`data_dir/hub.sqlite3`) in WAL mode with `synchronous=FULL`, so that
//!   nothing is acknowledged to a site before it is on disk.
//! - Migrations are an ordered list of SQL scripts ([`MIGRATIONS`]); `PRAGMA user_version`
//!   records how many ran. A released migration is never edited, only appended to.
//! - All calls are blocking: web handlers wrap them in `spawn_blocking`, the sync link calls
//!   them through [`sync_link::HubStore`] (implemented in `link`).
//! - Keeping SQL here and nowhere else is what lets a PostgreSQL store replace this one
//!   later without touching the web or import code.

mod access;
mod accounts;
mod across;
mod batches;
mod calls;
mod control;
mod down;
mod edits;
mod paging;
mod pools;
mod recovery;
mod account_edits;
mod files;
mod filter;
mod health;
mod link;
mod lists;
mod notices;
mod one_click;
mod project_access;
mod projects;
mod recordings;
mod report_defs;
mod report_facts;
mod retention;
mod sites;
mod sync_up;
mod today;
mod upgrades;
mod wall;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use tokio::sync::Notify;

pub use across::{AcrossError, AcrossQuery, BusinessData, CustomerData, DataColumn, DataPage, DataValue, MAX_PAGE_ROWS};
pub use access::{AccessError, AccountView, Group, NewAccount, Role, Scope, MODULES};
pub use accounts::{Account, InitAdminError, LoginError};
pub use batches::{
    AttributionRule, BatchSummary, DispatchError, DispatchKind, DispatchOutcome, DispatchRequest, ExclusivePart,
    RecordView, RemovedRow,
};
pub use calls::{CallCursor, CallPage, CallQualityView, LegQualityView, CallQuery, CallRecord, CallRecording, CallView, Direction, PhoneMatch, RecordValue, MAX_PAGE as MAX_CALL_PAGE};
pub use control::{AttributionError, BatchControlError, BatchNumber, HqLinkSettings, LinkSettingsError, OneClickAction, MIN_UPLOAD_BYTES_PER_SEC};
pub use files::{
    BadRow, ColumnMatch, FieldValues, FieldValuesBuilder, FileImport, FileSummary, GoodRow, ImportReport, SaveImportError, IMPORT_CHUNK_ROWS,
};
pub use filter::{FilterCondition, FilterError, FilterJudgement, FilterOutcome, FilterScope, FilterSettings};
pub use down::{DownError, DownLogEntry};
pub use paging::{ListWindow, Paged, RecordWindow};
pub use pools::{LeaseView, PoolError, PoolSettings, PoolSite, PoolView};
pub use edits::{DefinitionEdit, NumberPage, ProjectUsage, NUMBERS_PAGE};
pub use account_edits::{AccountEdit, AccountEditError};
pub use link::AlarmView;
pub use lists::{ListError, ListKind, ListedNumber};
pub use notices::{
    check_wav, parse_voice_kind, voice_kind_key, AnnouncementError, AnnouncementText, AnnouncementView, VoiceDeleteError,
    VoiceFileView, VoiceUpload, VoiceUploadError, WavError, WavInfo, MAX_VOICE_BYTES,
};
pub use report_defs::{ReportDefError, StoredReport};
pub use retention::{RetentionError, MAX_RETENTION_DAYS};
pub use health::SiteHealth;
pub use recordings::{LiveFiguresView, RecordingFetch, RecordingRequestError, VoiceFileError};
pub use sync_up::{AgentStateView, CallbackView, ControlReportView, CustomerEditView};
pub use today::{day_start, HourCounts};
pub use wall::WallSite;
pub use projects::{
    CallingWindow, Category, CreateCategoryError, CreateProjectError, DialModeSetting, FieldSpec, FieldSpecKind,
    NewProject, PhoneMode, PopupTiming, Project, ProjectAccessError, ProjectAdmin, ProjectEdit, ProjectSettings,
    ProjectStatus, check_token_length, DEFAULT_TOKEN_LENGTH, TOKEN_LENGTHS,
};
pub use sites::{
    CreateSiteError, EnrollError, EnrollmentCode, EnrollmentCodeError, RetireError, RetiredBox, Site, DEFAULT_ENROLLMENT_CODE_TTL,
};

/// Schema migrations, applied in order; `user_version` is the number already applied.
const MIGRATIONS: &[&str] = &[
    // 1: the walking skeleton's schema.
    r#"
    CREATE TABLE accounts (
        id            INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        is_admin      INTEGER NOT NULL,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE sites (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL,
        enrolled_at INTEGER,
        disabled    INTEGER NOT NULL DEFAULT 0,
        online      INTEGER NOT NULL DEFAULT 0,
        link_since  INTEGER,
        down_acked  INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE enrollment_codes (
        code_hash  TEXT PRIMARY KEY,
        site_id    INTEGER NOT NULL REFERENCES sites(id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
    );
    CREATE TABLE categories (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE projects (
        id                 INTEGER PRIMARY KEY,
        category_id        INTEGER NOT NULL REFERENCES categories(id),
        name               TEXT NOT NULL,
        script             TEXT NOT NULL,
        hide_middle_digits INTEGER NOT NULL,
        customer_fields    TEXT NOT NULL,
        record_fields      TEXT NOT NULL,
        version            INTEGER NOT NULL,
        created_at         INTEGER NOT NULL,
        UNIQUE (category_id, name)
    );
    CREATE TABLE files (
        id          INTEGER PRIMARY KEY,
        project_id  INTEGER NOT NULL REFERENCES projects(id),
        file_name   TEXT NOT NULL,
        stored_path TEXT NOT NULL,
        source      TEXT NOT NULL,
        status      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        creator     TEXT NOT NULL,
        n_rows      INTEGER NOT NULL,
        n_good      INTEGER NOT NULL,
        report      TEXT NOT NULL
    );
    CREATE TABLE import_rows (
        id         INTEGER PRIMARY KEY,
        file_id    INTEGER NOT NULL REFERENCES files(id),
        row_number INTEGER NOT NULL,
        phone      TEXT NOT NULL,
        fields     TEXT NOT NULL
    );
    CREATE INDEX import_rows_file ON import_rows(file_id, id);
    CREATE TABLE batches (
        id          INTEGER PRIMARY KEY,
        file_id     INTEGER NOT NULL REFERENCES files(id),
        project_id  INTEGER NOT NULL REFERENCES projects(id),
        site_id     INTEGER NOT NULL REFERENCES sites(id),
        name        TEXT NOT NULL,
        priority    INTEGER NOT NULL,
        n_rows      INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        creator     TEXT NOT NULL
    );
    -- One row per (batch, customer row): its id is the hub-wide row id sent to the site.
    CREATE TABLE batch_rows (
        id            INTEGER PRIMARY KEY,
        batch_id      INTEGER NOT NULL REFERENCES batches(id),
        import_row_id INTEGER NOT NULL REFERENCES import_rows(id),
        phone         TEXT NOT NULL
    );
    CREATE INDEX batch_rows_batch ON batch_rows(batch_id, id);
    -- Which project definition version each site was last sent.
    CREATE TABLE sent_projects (
        site_id    INTEGER NOT NULL REFERENCES sites(id),
        project_id INTEGER NOT NULL REFERENCES projects(id),
        version    INTEGER NOT NULL,
        PRIMARY KEY (site_id, project_id)
    );
    CREATE TABLE down_log (
        site_id    INTEGER NOT NULL REFERENCES sites(id),
        seq        INTEGER NOT NULL,
        event      TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (site_id, seq)
    );
    CREATE TABLE up_applied (
        site_id      INTEGER NOT NULL,
        epoch        INTEGER NOT NULL,
        seq          INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        applied_at   INTEGER NOT NULL,
        UNIQUE (site_id, epoch, seq)
    );
    CREATE TABLE call_attempts (
        site_id          INTEGER NOT NULL,
        attempt_id       INTEGER NOT NULL,
        batch_id         INTEGER NOT NULL,
        row_id           INTEGER NOT NULL,
        started_at       INTEGER NOT NULL,
        answered_at      INTEGER,
        ended_at         INTEGER NOT NULL,
        outcome          TEXT NOT NULL,
        hangup_side      TEXT,
        agent            TEXT,
        talk_seconds     INTEGER NOT NULL,
        recording_sha256 TEXT,
        PRIMARY KEY (site_id, attempt_id)
    );
    CREATE INDEX call_attempts_batch ON call_attempts(batch_id);
    CREATE TABLE business_records (
        site_id    INTEGER NOT NULL,
        attempt_id INTEGER NOT NULL,
        batch_id   INTEGER NOT NULL,
        row_id     INTEGER NOT NULL,
        agent      TEXT NOT NULL,
        saved_at   INTEGER NOT NULL,
        record     TEXT NOT NULL,
        PRIMARY KEY (site_id, attempt_id)
    );
    CREATE INDEX business_records_batch ON business_records(batch_id);
    CREATE TABLE alarms (
        id         INTEGER PRIMARY KEY,
        site_id    INTEGER,
        kind       TEXT NOT NULL,
        message    TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    "#,
    // 2: enrollment proves knowledge of the code with an HMAC keyed by it, so the hub needs
    // the code itself while it is pending; it is erased when used (expired ones are never
    // offered).
    r#"
    ALTER TABLE enrollment_codes ADD COLUMN pending_code TEXT;
    "#,
    // 3: the console proper: project parameters and access, roles and data scopes, file
    // remarks, batch control, attribution rules, black/white lists, filter settings.
    r#"
    ALTER TABLE projects ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE projects ADD COLUMN phone_mode TEXT NOT NULL DEFAULT 'number';
    ALTER TABLE projects ADD COLUMN template_id INTEGER;
    CREATE TABLE project_sites (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        site_id    INTEGER NOT NULL REFERENCES sites(id),
        PRIMARY KEY (project_id, site_id)
    );
    CREATE TABLE project_admins (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        site_ids   TEXT NOT NULL,
        PRIMARY KEY (project_id, account_id)
    );
    CREATE TABLE roles (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        modules    TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE account_groups (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    ALTER TABLE accounts ADD COLUMN role_id INTEGER REFERENCES roles(id);
    ALTER TABLE accounts ADD COLUMN group_id INTEGER REFERENCES account_groups(id);
    -- JSON array of site ids; NULL = every site (admins).
    ALTER TABLE accounts ADD COLUMN scope_sites TEXT;
    ALTER TABLE files ADD COLUMN remark TEXT NOT NULL DEFAULT '';
    ALTER TABLE files ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE batches ADD COLUMN control_version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE batches ADD COLUMN resume_priority INTEGER;
    ALTER TABLE batches ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE batches ADD COLUMN description TEXT NOT NULL DEFAULT '';
    ALTER TABLE batches ADD COLUMN kind TEXT NOT NULL DEFAULT 'shared';
    CREATE INDEX batch_rows_phone ON batch_rows(phone);
    CREATE INDEX call_attempts_started ON call_attempts(started_at);
    CREATE TABLE attribution_rules (
        id         INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        field_key  TEXT NOT NULL,
        value      TEXT NOT NULL,
        site_id    INTEGER NOT NULL REFERENCES sites(id),
        agent      TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE phone_lists (
        phone      TEXT PRIMARY KEY,
        list       TEXT NOT NULL CHECK (list IN ('black', 'white')),
        note       TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        creator    TEXT NOT NULL
    );
    CREATE TABLE filter_settings (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
        settings   TEXT NOT NULL
    );
    "#,
    // 4: the sync link's other site-owned data: customer edits, callbacks, agent state
    // changes and control reports (each keyed so that a replay changes nothing), the latest
    // live figures per site, and the recordings HQ holds (files under `recordings/`).
    r#"
    CREATE TABLE site_customer_edits (
        site_id   INTEGER NOT NULL,
        epoch     INTEGER NOT NULL,
        edit_id   INTEGER NOT NULL,
        batch_id  INTEGER NOT NULL,
        row_id    INTEGER NOT NULL,
        agent     TEXT NOT NULL,
        edited_at INTEGER NOT NULL,
        changes   TEXT NOT NULL,
        PRIMARY KEY (site_id, epoch, edit_id)
    );
    CREATE INDEX site_customer_edits_row ON site_customer_edits(batch_id, row_id);
    CREATE TABLE site_callbacks (
        site_id     INTEGER NOT NULL,
        epoch       INTEGER NOT NULL,
        callback_id INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        batch_id    INTEGER NOT NULL,
        row_id      INTEGER NOT NULL,
        agent       TEXT,
        due_at      INTEGER NOT NULL,
        note        TEXT NOT NULL,
        state       TEXT NOT NULL,
        changed_at  INTEGER NOT NULL,
        PRIMARY KEY (site_id, epoch, callback_id)
    );
    CREATE INDEX site_callbacks_batch ON site_callbacks(batch_id);
    CREATE TABLE site_agent_states (
        site_id      INTEGER NOT NULL,
        epoch        INTEGER NOT NULL,
        seq          INTEGER NOT NULL,
        agent        TEXT NOT NULL,
        state        TEXT NOT NULL,
        break_reason TEXT,
        at           INTEGER NOT NULL,
        PRIMARY KEY (site_id, epoch, seq)
    );
    CREATE INDEX site_agent_states_agent ON site_agent_states(site_id, agent, at);
    CREATE TABLE site_control_reports (
        site_id               INTEGER NOT NULL,
        target                TEXT NOT NULL,
        version               INTEGER NOT NULL,
        applied_at            INTEGER NOT NULL,
        dialed_before_applied INTEGER NOT NULL,
        calls_in_progress     INTEGER NOT NULL,
        applied               INTEGER NOT NULL,
        PRIMARY KEY (site_id, target, version)
    );
    CREATE TABLE site_live_figures (
        site_id     INTEGER PRIMARY KEY,
        taken_at_ms INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        figures     TEXT NOT NULL
    );
    CREATE TABLE site_recordings (
        site_id     INTEGER NOT NULL,
        sha256      TEXT NOT NULL,
        size        INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (site_id, sha256)
    );
    "#,
    // 5: the data filter reads the attempts of the file's rows only: this index answers
    // "batch B's row R's attempts since T, with site and whether answered" without the
    // table (a month of a busy hub is tens of millions of attempts; reading them all took
    // longer than the filter may). It leads with the batch so that a day's attempts, which
    // are of the few batches being dialed, mostly in row order, land on a few pages instead
    // of all over it; and it replaces the batch-only index (its prefix serves the same
    // queries), so applying an attempt still updates as many indexes as before. The phone
    // index carries the batch too, so that finding a file's numbers' rows reads no table.
    r#"
    CREATE INDEX call_attempts_batch_row ON call_attempts(batch_id, row_id, started_at, site_id, answered_at);
    DROP INDEX call_attempts_batch;
    CREATE INDEX batch_rows_phone_batch ON batch_rows(phone, batch_id);
    DROP INDEX batch_rows_phone;
    "#,
    // 6: the voice library (语音库) and announcements (公告管理), both published to every site
    // (see `notices`). Each row is the current version; the versions themselves travel in
    // the sites' down logs. A voice file's name is unique among those not deleted (checked
    // in the store: a deleted file's name may be used again).
    r#"
    CREATE TABLE voice_files (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('hold_music', 'prompt')),
        sha256      TEXT NOT NULL,
        size        INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        version     INTEGER NOT NULL,
        deleted     INTEGER NOT NULL DEFAULT 0,
        uploaded_at INTEGER NOT NULL,
        uploaded_by TEXT NOT NULL
    );
    CREATE TABLE announcements (
        id           INTEGER PRIMARY KEY,
        version      INTEGER NOT NULL,
        title        TEXT NOT NULL,
        body         TEXT NOT NULL,
        published_at INTEGER NOT NULL,
        expires_at   INTEGER,
        withdrawn    INTEGER NOT NULL DEFAULT 0,
        created_by   TEXT NOT NULL
    );
    "#,
    // 7: a token project's dial-token length (hex digits); the manual's are 20.
    r#"
    ALTER TABLE projects ADD COLUMN token_length INTEGER NOT NULL DEFAULT 20;
    "#,
    // 8: HQ's lists go down to the sites (see `lists`), and attempts carry their kind.
    // - `phone_list_versions` keeps each number's version across add / remove / add (a
    //   removed number's `phone_lists` row is gone, but a site must still see the next
    //   change as newer than the removal).
    // - `call_attempts.kind`: the path that dialed (predictive, one_click, callback, manual,
    //   ...). Attempts synced before sites reported it hold `unrecorded` and are counted by
    //   the data filter as they were before. The filter's covering index gains the kind so
    //   that it still reads no table.
    r#"
    CREATE TABLE phone_list_versions (
        phone   TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    );
    INSERT INTO phone_list_versions (phone, version) SELECT phone, 1 FROM phone_lists;
    ALTER TABLE call_attempts ADD COLUMN kind TEXT NOT NULL DEFAULT 'unrecorded';
    DROP INDEX call_attempts_batch_row;
    CREATE INDEX call_attempts_batch_row ON call_attempts(batch_id, row_id, started_at, site_id, answered_at, kind);
    "#,
    // 9: enrollment (see `sites`). A code is kept only as the key its proofs use, derived
    // from it, never as the code; codes pending at the upgrade are dropped with the old
    // table (they were kept in plain form): HQ mints new ones. Each enrolled box's
    // certificate is its site's identity until HQ retires it, one current identity per
    // site; a site enrolled by an older hub gets an identity whose certificate is pinned at
    // its next connection.
    r#"
    DROP TABLE enrollment_codes;
    CREATE TABLE enrollment_codes (
        id          INTEGER PRIMARY KEY,
        site_id     INTEGER NOT NULL REFERENCES sites(id),
        proof_key   BLOB NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        used_at     INTEGER,
        replaced_at INTEGER
    );
    CREATE INDEX enrollment_codes_site ON enrollment_codes(site_id);
    CREATE TABLE site_identities (
        id          INTEGER PRIMARY KEY,
        site_id     INTEGER NOT NULL REFERENCES sites(id),
        cert_sha256 TEXT UNIQUE,
        enrolled_at INTEGER NOT NULL,
        retired_at  INTEGER,
        retired_by  TEXT
    );
    CREATE UNIQUE INDEX site_identities_current ON site_identities(site_id) WHERE retired_at IS NULL;
    INSERT INTO site_identities (site_id, cert_sha256, enrolled_at)
        SELECT id, NULL, enrolled_at FROM sites WHERE enrolled_at IS NOT NULL;
    "#,
    // 10: HQ's controls that go down the link (see `control`): the one-click state per
    // project (HQ's word for the whole project) and per (project, site) with the version
    // last sent there; the version of each project's attribution rule list and the sites
    // that were sent one (so a site whose rules are all removed is sent the empty list);
    // the link settings every site is sent (one row).
    r#"
    CREATE TABLE one_click_projects (
        project_id INTEGER PRIMARY KEY REFERENCES projects(id),
        start      INTEGER NOT NULL,
        changed_at INTEGER NOT NULL
    );
    CREATE TABLE one_click_sites (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        site_id    INTEGER NOT NULL REFERENCES sites(id),
        start      INTEGER NOT NULL,
        version    INTEGER NOT NULL,
        PRIMARY KEY (project_id, site_id)
    );
    ALTER TABLE projects ADD COLUMN rules_version INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE attribution_sent (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        site_id    INTEGER NOT NULL REFERENCES sites(id),
        PRIMARY KEY (project_id, site_id)
    );
    CREATE TABLE link_settings (
        id                             INTEGER PRIMARY KEY CHECK (id = 1),
        version                        INTEGER NOT NULL,
        recording_upload_bytes_per_sec INTEGER,
        changed_at                     INTEGER NOT NULL,
        changed_by                     TEXT NOT NULL
    );
    "#,
    // 11: a project's business records across its sites (H26, see `across`) page newest
    // saved first, through one batch's records in that order or, for a project of many
    // batches, all records in that order: these indexes give the order and the keyset
    // cursor's range without sorting a project's records for each page. The batch one
    // replaces the batch-only index (its prefix serves the same queries). (`IF [NOT]
    // EXISTS`: the upgrade tests rebuild older schemas from the newest, which has them.)
    r#"
    CREATE INDEX IF NOT EXISTS business_records_saved ON business_records(saved_at, site_id, attempt_id);
    CREATE INDEX IF NOT EXISTS business_records_batch_saved ON business_records(batch_id, saved_at, site_id, attempt_id);
    DROP INDEX IF EXISTS business_records_batch;
    "#,
    // 12: the report engine's own tables (facts, per-hour cells, version), see `report_facts`.
    reports::SCHEMA,
    // 13: report definitions per sub-project, and the backfill of attempts synced before.
    report_facts::DEFINITIONS_MIGRATION,
    // 14: each site's last wall snapshot (职场监控管理), kept so that an offline site shows
    // its last known state after a restart (see `wall`).
    r#"
    CREATE TABLE site_live (
        site_id        INTEGER PRIMARY KEY REFERENCES sites(id),
        received_at_ms INTEGER NOT NULL,
        snapshot       TEXT NOT NULL
    );
    "#,
    // 15: call records at HQ (see `calls`). Each attempt keeps its number's last four
    // digits, copied from the batch row, so a number is found through an index; and each
    // selective filter has an index ending in the page key (started_at, site_id,
    // attempt_id), so a page of a filtered month is read in key order, never sorted. The
    // time index replaces the plain `started_at` one (its prefix serves the same queries).
    r#"
    ALTER TABLE call_attempts ADD COLUMN phone_last4 TEXT;
    UPDATE call_attempts SET phone_last4 =
        (SELECT substr(br.phone, -4) FROM batch_rows br WHERE br.id = call_attempts.row_id);
    CREATE INDEX calls_time ON call_attempts(started_at, site_id, attempt_id);
    DROP INDEX call_attempts_started;
    CREATE INDEX calls_site_time ON call_attempts(site_id, started_at, attempt_id);
    CREATE INDEX calls_last4_time ON call_attempts(phone_last4, started_at, site_id, attempt_id);
    CREATE INDEX calls_agent_time ON call_attempts(agent, started_at, site_id, attempt_id);
    CREATE INDEX calls_batch_time ON call_attempts(batch_id, started_at, site_id, attempt_id);
    "#,
    // 16: the agent's extension of each call (the site sends it with `CallAttemptDetail`),
    // so the call search can filter on it. No index of its own: an extension is searched
    // with the time, site or agent filters whose indexes already narrow the month, and
    // every index more slows the link's intake (see the call search benchmark).
    r#"
    ALTER TABLE call_attempts ADD COLUMN extension TEXT;
    "#,
    // 17: edit after create (see `edits`, `account_edits`): the names a renamed project had
    // and until when (call records keep the name of their time), archiving, disabled
    // accounts.
    r#"
    CREATE TABLE project_names (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        name       TEXT NOT NULL,
        until_at   INTEGER NOT NULL
    );
    CREATE INDEX project_names_project ON project_names(project_id, until_at);
    ALTER TABLE projects ADD COLUMN archived_at INTEGER;
    ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    "#,
    // 18 and 19: a lighter write per synced attempt. The report facts keyed by (site,
    // attempt) alone (one B-tree, see `reports::FACTS_WITHOUT_ROWID`); the agent index holds
    // only the calls an agent took (most predictive attempts reach none, and a search by
    // agent never looks for the others: `agent = ?` implies the index's condition).
    reports::FACTS_WITHOUT_ROWID,
    r#"
    DROP INDEX calls_agent_time;
    CREATE INDEX calls_agent_time ON call_attempts(agent, started_at, site_id, attempt_id) WHERE agent IS NOT NULL;
    "#,
    // 20: rolling upgrades. Down entries held back from a site whose protocol is older than
    // their event (it got a stand-in at that seq), kept until it speaks a version that reads
    // them; and the version each site spoke at its last hello.
    r#"
    CREATE TABLE down_held (
        site_id INTEGER NOT NULL REFERENCES sites(id),
        seq     INTEGER NOT NULL,
        since   INTEGER NOT NULL,
        event   TEXT NOT NULL,
        held_at INTEGER NOT NULL,
        PRIMARY KEY (site_id, seq)
    );
    ALTER TABLE sites ADD COLUMN protocol_version INTEGER;
    "#,
    // 21: how many days each site keeps its recordings (see `retention`); the version rises
    // with every change and goes down the site's log with it.
    r#"
    ALTER TABLE sites ADD COLUMN recording_retention_days INTEGER;
    ALTER TABLE sites ADD COLUMN retention_version INTEGER NOT NULL DEFAULT 0;
    "#,
    // 22: shared batches as one pool (see `pools`): the pool's numbers and their state, the
    // leases of blocks of them to sites, HQ's recalls; a site's batch of a pool names it.
    r#"
    CREATE TABLE pools (
        id              INTEGER PRIMARY KEY,
        project_id      INTEGER NOT NULL REFERENCES projects(id),
        file_id         INTEGER NOT NULL REFERENCES files(id),
        name            TEXT NOT NULL,
        lease_hours     REAL NOT NULL DEFAULT 2,
        lease_lifetime_s INTEGER NOT NULL DEFAULT 86400,
        min_block       INTEGER NOT NULL DEFAULT 200,
        created_at      INTEGER NOT NULL
    );
    CREATE TABLE pool_numbers (
        id            INTEGER PRIMARY KEY,
        pool_id       INTEGER NOT NULL REFERENCES pools(id),
        import_row_id INTEGER NOT NULL REFERENCES import_rows(id),
        phone         TEXT NOT NULL,
        state         TEXT NOT NULL DEFAULT 'pooled' CHECK (state IN ('pooled', 'leased', 'dialed')),
        site_id       INTEGER,
        lease_id      INTEGER,
        row_id        INTEGER,
        UNIQUE (pool_id, import_row_id)
    );
    CREATE INDEX pool_numbers_state ON pool_numbers(pool_id, state, id);
    CREATE INDEX pool_numbers_row ON pool_numbers(row_id);
    CREATE INDEX pool_numbers_lease ON pool_numbers(lease_id);
    CREATE TABLE leases (
        id          INTEGER PRIMARY KEY,
        pool_id     INTEGER NOT NULL REFERENCES pools(id),
        site_id     INTEGER NOT NULL REFERENCES sites(id),
        batch_id    INTEGER NOT NULL REFERENCES batches(id),
        request_id  INTEGER NOT NULL,
        granted_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        n_rows      INTEGER NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('open', 'recalling', 'closed')),
        forced      INTEGER NOT NULL DEFAULT 0,
        dialed      INTEGER NOT NULL DEFAULT 0,
        returned    INTEGER NOT NULL DEFAULT 0,
        dialed_twice INTEGER NOT NULL DEFAULT 0,
        closed_at   INTEGER
    );
    CREATE INDEX leases_batch ON leases(batch_id, state);
    CREATE TABLE lease_recalls (
        id         INTEGER PRIMARY KEY,
        batch_id   INTEGER NOT NULL REFERENCES batches(id),
        lease_id   INTEGER,
        forced     INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    ALTER TABLE batches ADD COLUMN pool_id INTEGER;
    ALTER TABLE batches ADD COLUMN lease_request INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE batches ADD COLUMN pool_recalled INTEGER NOT NULL DEFAULT 0;
    "#,
    // 23: a call's report fact in its own `call_attempts` row, its record's values in
    // `business_records`: one row written per synced attempt instead of two (see
    // `report_facts`); `report_facts` becomes a view.
    report_facts::FACTS_IN_CALLS_MIGRATION,
    // 24: the applied outbox entries keyed by `(site, epoch, seq)` alone (one B-tree per entry
    // instead of a table and its key index): every synced entry writes one.
    r#"
    CREATE TABLE up_applied_keyed (
        site_id      INTEGER NOT NULL,
        epoch        INTEGER NOT NULL,
        seq          INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        applied_at   INTEGER NOT NULL,
        PRIMARY KEY (site_id, epoch, seq)
    ) WITHOUT ROWID;
    INSERT INTO up_applied_keyed (site_id, epoch, seq, content_hash, applied_at)
        SELECT site_id, epoch, seq, content_hash, applied_at FROM up_applied;
    DROP TABLE up_applied;
    ALTER TABLE up_applied_keyed RENAME TO up_applied;
    "#,
    // 25: a call's audio quality per leg as the site measured it (protocol 4), beside its
    // attempt: it may arrive before the attempt, so it is its own table, not attempt columns.
    r#"
    CREATE TABLE call_quality (
        site_id            INTEGER NOT NULL,
        attempt_id         INTEGER NOT NULL,
        customer_loss      REAL,
        customer_jitter_ms REAL,
        customer_mos       REAL,
        agent_loss         REAL,
        agent_jitter_ms    REAL,
        agent_mos          REAL,
        PRIMARY KEY (site_id, attempt_id)
    ) WITHOUT ROWID;
    "#,
];

/// Failure to open the store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    /// SQLite refused to open or configure the database file.
    #[error("cannot open database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    /// A schema migration failed; the database is left at the previous version.
    #[error("migration {number} failed: {source}")]
    Migration { number: usize, source: rusqlite::Error },
    /// The database was written by a newer hub than this one.
    #[error(
        "database schema version {found} is newer than this hub knows ({known}); run a newer hq-hub"
    )]
    TooNew { found: usize, known: usize },
}

/// A plain database failure (disk, corruption, a bug in a statement).
#[derive(Debug, thiserror::Error)]
#[error("database error: {0}")]
pub struct DbError(#[from] pub rusqlite::Error);

/// The hub's store. Cheap to share behind an [`Arc`].
pub struct Store {
    conn: Mutex<Connection>,
    files_dir: PathBuf,
    /// Wakes each site's link when its down log grows.
    down_notifies: Mutex<HashMap<u64, Arc<Notify>>>,
    /// Lifetime of enrollment codes minted from now on (`serve --enrollment-code-ttl`).
    enrollment_ttl_secs: AtomicI64,
    /// The report engine's cubes, kept in step with every sync-up commit.
    reports: reports::Engine,
    /// Each site's latest wall snapshot and link state, in memory (see `wall`).
    wall: wall::Wall,
}

impl Store {
    /// The schema version this build writes (a backup newer than it is refused).
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
    }

    /// Opens (creating if needed) the store under `data_dir` and runs pending migrations;
    /// reports count in China time.
    pub fn open(data_dir: &Path) -> Result<Store, OpenError> {
        Store::open_with_report_zone(data_dir, reports::Zone::china())
    }

    /// [`Store::open`] with reports counting local hours and days in `zone`.
    pub fn open_with_report_zone(data_dir: &Path, zone: reports::Zone) -> Result<Store, OpenError> {
        let files_dir = data_dir.join("files");
        for dir in [data_dir, files_dir.as_path()] {
            std::fs::create_dir_all(dir)
                .map_err(|source| OpenError::CreateDir { path: dir.to_path_buf(), source })?;
        }
        let path = data_dir.join("hub.sqlite3");
        let open_err = |source| OpenError::Open { path: path.clone(), source };
        let mut conn = Connection::open(&path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        migrate(&mut conn)?;
        report_facts::backfill(&mut conn).map_err(|e| open_err(report_facts::db_error(e).0))?;
        Store::discard_unfinished_imports(&conn, &files_dir).map_err(open_err)?;
        // No link is up before this hub's link server runs: a site marked online was so
        // when the hub last stopped, and is offline since now until it reconnects.
        conn.execute("UPDATE sites SET online = 0, link_since = ?1 WHERE online = 1", [now_unix()]).map_err(open_err)?;
        let wall = wall::Wall::load(&conn).map_err(open_err)?;
        Ok(Store {
            conn: Mutex::new(conn),
            files_dir,
            down_notifies: Mutex::new(HashMap::new()),
            enrollment_ttl_secs: AtomicI64::new(sites::DEFAULT_ENROLLMENT_CODE_TTL.as_secs() as i64),
            reports: reports::Engine::hub(zone),
            wall,
        })
    }

    /// Where uploaded files are kept.
    pub fn files_dir(&self) -> &Path {
        &self.files_dir
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done transaction behind
        // (rusqlite rolls back on drop), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The notifier that wakes `site`'s link when its down log grows.
    pub fn down_notify_for(&self, site: u64) -> Arc<Notify> {
        let mut map = self.down_notifies.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(site).or_default().clone()
    }
}

fn migrate(conn: &mut Connection) -> Result<(), OpenError> {
    let version: usize = conn
        .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
        .map_err(|source| OpenError::Migration { number: 0, source })?
        .try_into()
        .unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(OpenError::TooNew { found: version, known: MIGRATIONS.len() });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let number = index + 1;
        let err = |source| OpenError::Migration { number, source };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", number as i64).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

/// Now, in unix seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Whether `err` is a UNIQUE (or other constraint) violation: the store's answer to "that
/// name is taken" without a racy look-up first.
fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Hex SHA-256 of a secret (session tokens and enrollment codes are stored only hashed).
fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_twice_keeps_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let store = Store::open(dir.path()).unwrap();
        let version: i64 =
            store.conn().pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let mode: String =
            store.conn().pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_store_from_before_the_filter_index_gets_it_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A hub store as version 4 left it: no row index on the attempts.
            let store = Store::open(dir.path()).unwrap();
            let conn = store.conn();
            conn.execute_batch(calls::UNDO_MIGRATION).unwrap();
            conn.execute_batch(
                "DROP INDEX call_attempts_batch_row; CREATE INDEX call_attempts_batch ON call_attempts(batch_id);
                 DROP INDEX batch_rows_phone_batch; CREATE INDEX batch_rows_phone ON batch_rows(phone);
                 DROP TABLE voice_files; DROP TABLE announcements;
                 ALTER TABLE projects DROP COLUMN token_length;
                 DROP TABLE phone_list_versions; ALTER TABLE call_attempts DROP COLUMN kind;
                 DROP TABLE site_identities; DROP TABLE enrollment_codes;
                 CREATE TABLE enrollment_codes (code_hash TEXT PRIMARY KEY, site_id INTEGER NOT NULL,
                     created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER, pending_code TEXT);
                 DROP TABLE one_click_projects; DROP TABLE one_click_sites; DROP TABLE attribution_sent;
                 DROP TABLE link_settings; ALTER TABLE projects DROP COLUMN rules_version;
                 DROP TABLE report_facts; DROP TABLE report_cells; DROP TABLE report_meta;
                 DROP TABLE report_definitions; ALTER TABLE projects DROP COLUMN reports_version;
                 DROP TABLE site_live;
                 PRAGMA user_version = 4;",
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let conn = store.conn();
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT site_id, answered_at IS NOT NULL FROM call_attempts
                 WHERE batch_id = 3 AND row_id = 7 AND started_at >= 0
                   AND kind IN ('predictive', 'one_click', 'unrecorded')",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("COVERING INDEX call_attempts_batch_row"), "{plan}");
        let plan: String = conn
            .query_row("EXPLAIN QUERY PLAN SELECT id, batch_id FROM batch_rows WHERE phone = '13800138000'", [], |r| r.get(3))
            .unwrap();
        assert!(plan.contains("COVERING INDEX batch_rows_phone_batch"), "{plan}");
    }

    #[test]
    fn upgrading_erases_plain_codes_and_keeps_enrolled_sites_enrolled() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A hub store as version 6 left it (none of migrations 7 to 11): a pending code
            // in plain form, an enrolled site.
            let store = Store::open(dir.path()).unwrap();
            let conn = store.conn();
            conn.execute_batch(calls::UNDO_MIGRATION).unwrap();
            conn.execute_batch(
                "DROP TABLE site_identities; DROP TABLE enrollment_codes;
                 CREATE TABLE enrollment_codes (code_hash TEXT PRIMARY KEY, site_id INTEGER NOT NULL,
                     created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER, pending_code TEXT);
                 INSERT INTO sites (id, name, created_at, enrolled_at) VALUES (1, 'old', 1, 2), (2, 'new', 1, NULL);
                 INSERT INTO enrollment_codes VALUES ('h', 2, 1, 99999999999, NULL, 'ABCDEFGH2345');
                 ALTER TABLE projects DROP COLUMN token_length;
                 DROP TABLE phone_list_versions; DROP INDEX call_attempts_batch_row; ALTER TABLE call_attempts DROP COLUMN kind;
                 CREATE INDEX call_attempts_batch_row ON call_attempts(batch_id, row_id, started_at, site_id, answered_at);
                 DROP TABLE one_click_projects; DROP TABLE one_click_sites; DROP TABLE attribution_sent;
                 DROP TABLE link_settings; ALTER TABLE projects DROP COLUMN rules_version;
                 DROP TABLE report_facts; DROP TABLE report_cells; DROP TABLE report_meta;
                 DROP TABLE report_definitions; ALTER TABLE projects DROP COLUMN reports_version;
                 DROP TABLE site_live;
                 PRAGMA user_version = 6;",
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let conn = store.conn();
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let codes: i64 = conn.query_row("SELECT COUNT(*) FROM enrollment_codes", [], |r| r.get(0)).unwrap();
        assert_eq!(codes, 0, "the plain pending code is gone");
        drop(conn);
        let sites = store.list_sites().unwrap();
        assert!(sites[0].enrolled && sites[0].box_certificate.is_none(), "{sites:?}");
        assert!(!sites[1].enrolled);
    }
}
