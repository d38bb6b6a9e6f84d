//! The site database's schema: the migrations [`Store::open`](super::Store::open) applies in
//! order, counted by SQLite's `user_version`. A released migration is never edited, only
//! appended to.

/// Schema migrations, applied in order; `user_version` counts how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 9: the report engine's facts, cells and version (see the `reports` crate).
    reports::SCHEMA,
    // 10: the site's reports: HQ's report definitions per project (newest version kept),
    // the one-time backfill of the attempts and records written before 9 (`reports.rs`
    // runs it when this is 0), and the per-batch detail's index.
    "CREATE TABLE report_defs (
        project_id INTEGER PRIMARY KEY,
        version INTEGER NOT NULL,
        definitions TEXT NOT NULL
    );
    INSERT INTO report_meta (key, value) VALUES ('site_backfill', 0);
    CREATE INDEX attempts_batch_row ON attempts (batch_id, row_id, attempt_id);",
    // 11: callbacks (A7): for "this agent only" (`agent`) or "anyone in the task" (`task`),
    // when a due callback of an absent agent was handed to its task, and the grace period
    // (minutes, the site admin's) before that hand-over.
    "ALTER TABLE callbacks ADD COLUMN scope TEXT NOT NULL DEFAULT 'agent';
    ALTER TABLE callbacks ADD COLUMN handed_over_at INTEGER;
    CREATE TABLE desk_settings (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        callback_grace_minutes INTEGER NOT NULL DEFAULT 10
    );
    INSERT INTO desk_settings (id, callback_grace_minutes) VALUES (1, 10);",
    // 12: a task is a project's (sub-project's) at the site, not a batch's: its agents,
    // parameters and start / stop live in `project_tasks` and every batch of the project is
    // dialed under it. A project's task takes the settings of its running batch (the newest
    // import if several), else of its newest batch; it runs if any of its batches not ended
    // by HQ ran. The per-batch columns stay as a mirror the triggers keep (readers that work
    // per batch, such as the one-click claim and the live wall, read them); only
    // `project_tasks` and `project_task_agents` are written.
    "CREATE TABLE project_tasks (
        project_id INTEGER PRIMARY KEY,
        running INTEGER NOT NULL DEFAULT 0,
        ratio INTEGER NOT NULL DEFAULT 1,
        max_concurrency INTEGER NOT NULL DEFAULT 1,
        ring_seconds INTEGER NOT NULL DEFAULT 35,
        dial_mode TEXT NOT NULL DEFAULT 'predictive',
        caller TEXT NOT NULL DEFAULT '',
        cool_down INTEGER NOT NULL DEFAULT 3,
        queue_timeout INTEGER NOT NULL DEFAULT 35,
        routing TEXT NOT NULL DEFAULT 'longest_idle',
        answer_mode TEXT NOT NULL DEFAULT 'auto',
        pacing TEXT NOT NULL DEFAULT 'fixed',
        abandon_cap REAL NOT NULL DEFAULT 3.0,
        hold_music INTEGER
    );
    CREATE TABLE project_task_agents (
        project_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users (user_id),
        PRIMARY KEY (project_id, user_id)
    );
    INSERT INTO project_tasks (project_id, running, ratio, max_concurrency, ring_seconds, dial_mode, caller, cool_down, queue_timeout, routing, answer_mode, pacing, abandon_cap, hold_music)
    SELECT b.project_id,
           EXISTS (SELECT 1 FROM batches x WHERE x.project_id = b.project_id AND x.running = 1
                   AND COALESCE(x.control_priority, x.manifest_priority, 2) <> 0),
           b.ratio, b.max_concurrency, b.ring_seconds, b.dial_mode, b.caller, b.cool_down,
           b.queue_timeout, b.routing, b.answer_mode, b.pacing, b.abandon_cap, b.hold_music
    FROM batches b
    WHERE b.project_id IS NOT NULL
      AND b.batch_id = (SELECT x.batch_id FROM batches x WHERE x.project_id = b.project_id
                        ORDER BY x.running DESC, x.imported_at DESC, x.batch_id DESC LIMIT 1);
    INSERT OR IGNORE INTO project_task_agents (project_id, user_id)
    SELECT b.project_id, ta.user_id FROM task_agents ta JOIN batches b ON b.batch_id = ta.batch_id
    WHERE b.batch_id = (SELECT x.batch_id FROM batches x WHERE x.project_id = b.project_id
                        ORDER BY x.running DESC, x.imported_at DESC, x.batch_id DESC LIMIT 1);
    UPDATE batches SET (running, ratio, max_concurrency, ring_seconds, dial_mode, caller, cool_down, queue_timeout, routing, answer_mode, pacing, abandon_cap, hold_music) =
        (SELECT t.running, t.ratio, t.max_concurrency, t.ring_seconds, t.dial_mode, t.caller, t.cool_down, t.queue_timeout, t.routing, t.answer_mode, t.pacing, t.abandon_cap, t.hold_music FROM project_tasks t WHERE t.project_id = batches.project_id)
    WHERE project_id IN (SELECT project_id FROM project_tasks);
    DELETE FROM task_agents WHERE batch_id IN
        (SELECT batch_id FROM batches WHERE project_id IN (SELECT project_id FROM project_tasks));
    INSERT OR IGNORE INTO task_agents (batch_id, user_id)
    SELECT b.batch_id, a.user_id FROM batches b JOIN project_task_agents a ON a.project_id = b.project_id;
    CREATE TRIGGER project_task_written AFTER UPDATE ON project_tasks BEGIN
        UPDATE batches SET (running, ratio, max_concurrency, ring_seconds, dial_mode, caller, cool_down, queue_timeout, routing, answer_mode, pacing, abandon_cap, hold_music) = (NEW.running, NEW.ratio, NEW.max_concurrency, NEW.ring_seconds, NEW.dial_mode, NEW.caller, NEW.cool_down, NEW.queue_timeout, NEW.routing, NEW.answer_mode, NEW.pacing, NEW.abandon_cap, NEW.hold_music)
        WHERE project_id = NEW.project_id;
    END;
    CREATE TRIGGER project_task_created AFTER INSERT ON project_tasks BEGIN
        UPDATE batches SET (running, ratio, max_concurrency, ring_seconds, dial_mode, caller, cool_down, queue_timeout, routing, answer_mode, pacing, abandon_cap, hold_music) = (NEW.running, NEW.ratio, NEW.max_concurrency, NEW.ring_seconds, NEW.dial_mode, NEW.caller, NEW.cool_down, NEW.queue_timeout, NEW.routing, NEW.answer_mode, NEW.pacing, NEW.abandon_cap, NEW.hold_music)
        WHERE project_id = NEW.project_id;
    END;
    CREATE TRIGGER batch_joins_project AFTER UPDATE OF project_id ON batches
    WHEN NEW.project_id IS NOT NULL
     AND EXISTS (SELECT 1 FROM project_tasks t WHERE t.project_id = NEW.project_id) BEGIN
        UPDATE batches SET (running, ratio, max_concurrency, ring_seconds, dial_mode, caller, cool_down, queue_timeout, routing, answer_mode, pacing, abandon_cap, hold_music) =
            (SELECT t.running, t.ratio, t.max_concurrency, t.ring_seconds, t.dial_mode, t.caller, t.cool_down, t.queue_timeout, t.routing, t.answer_mode, t.pacing, t.abandon_cap, t.hold_music FROM project_tasks t WHERE t.project_id = NEW.project_id)
        WHERE batch_id = NEW.batch_id;
        DELETE FROM task_agents WHERE batch_id = NEW.batch_id;
        INSERT OR IGNORE INTO task_agents (batch_id, user_id)
        SELECT NEW.batch_id, user_id FROM project_task_agents WHERE project_id = NEW.project_id;
    END;
    CREATE TRIGGER project_task_agent_added AFTER INSERT ON project_task_agents BEGIN
        INSERT OR IGNORE INTO task_agents (batch_id, user_id)
        SELECT batch_id, NEW.user_id FROM batches WHERE project_id = NEW.project_id;
    END;
    CREATE TRIGGER project_task_agent_removed AFTER DELETE ON project_task_agents BEGIN
        DELETE FROM task_agents WHERE user_id = OLD.user_id
          AND batch_id IN (SELECT batch_id FROM batches WHERE project_id = OLD.project_id);
    END;",
    // 13: edit after create (`account_edits`): a disabled account cannot sign in.
    "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;",
    // 14: the box as a product. HQ's name of the site (`DownEvent::SiteProfile`, newest
    // version wins); and where the outbox stood in a backup this store was restored from,
    // until HQ's first answer after the restore (`link::realign_after_restore`).
    "CREATE TABLE site_profile (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        name TEXT NOT NULL
    );
    ALTER TABLE sync_state ADD COLUMN restored_outbox_seq INTEGER;",
    // 15: how many days recordings are kept, as HQ last set it (`retention`).
    "CREATE TABLE recording_retention (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        days INTEGER
    );",
    // 16: priority between the site's tasks (下发任务管理, the arbiter's first key), set on
    // the project's task page; none set, the highest of the task's batches counts.
    "ALTER TABLE project_tasks ADD COLUMN priority INTEGER;",
    // 17: shared batches' leases (`leases`): each lease HQ granted (its rows are the batch's
    // rows with `chunk_idx` = the lease id) and whether it went back; per pooled batch, the
    // site's requests for more and HQ's last answer.
    "CREATE TABLE leases (
        lease_id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL,
        granted_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'returned'))
    );
    CREATE INDEX leases_open ON leases (state, expires_at);
    CREATE TABLE pool_batches (
        batch_id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL DEFAULT 0,
        answered INTEGER NOT NULL DEFAULT 0,
        asked_at INTEGER NOT NULL DEFAULT 0,
        dry_until INTEGER NOT NULL DEFAULT 0,
        refill_below INTEGER NOT NULL DEFAULT 0,
        recalled INTEGER NOT NULL DEFAULT 0
    );",
    // 18: the fields HQ keeps out of a project's list columns (列表显示), newest version
    // kept; `record` is 0 for a customer field, 1 for a business-record field. A project
    // with no row in `list_columns` lists every field.
    "CREATE TABLE list_columns (project_id INTEGER PRIMARY KEY, version INTEGER NOT NULL);
     CREATE TABLE unlisted_fields (project_id INTEGER NOT NULL, record INTEGER NOT NULL, key TEXT NOT NULL,
                                   PRIMARY KEY (project_id, record, key));",
    // 19: the site admin's business-record form of calls under no project (batch 0), as
    // JSON field definitions; none: the built-in note (`default_form`).
    "ALTER TABLE desk_settings ADD COLUMN default_form TEXT;",
    // 20: each call's audio quality per leg as the lines measured it (`quality`): loss in
    // per cent, RFC 3550 jitter in ms, E-model MOS; NULL for a leg that sent nothing.
    "CREATE TABLE call_quality (
        attempt_id INTEGER PRIMARY KEY,
        customer_loss REAL, customer_jitter_ms REAL, customer_mos REAL,
        agent_loss REAL, agent_jitter_ms REAL, agent_mos REAL
    );",
];
