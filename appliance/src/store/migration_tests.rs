//! The move from per-batch tasks to the project's task (migration 12), on a store written by
//! the release before it: its schema is built here from the first ten migrations, filled as
//! that release filled it (batches with their own settings, running flags and agents), then
//! opened by today's code.

use rusqlite::Connection;

use super::schema::MIGRATIONS;
use super::{Store, TaskParams};

/// Migrations of the release that kept tasks per batch.
const PER_BATCH_RELEASE: usize = 10;

fn per_batch_store(dir: &std::path::Path) {
    let mut conn = Connection::open(dir.join("site.db")).expect("sqlite");
    let tx = conn.transaction().expect("tx");
    for migration in &MIGRATIONS[..PER_BATCH_RELEASE] {
        tx.execute_batch(migration).expect("old migration");
    }
    tx.pragma_update(None, "user_version", PER_BATCH_RELEASE as i64).expect("version");
    tx.execute_batch(
        "INSERT INTO extensions (extension, password) VALUES ('8001', 'secret1'), ('8002', 'secret2');
         INSERT INTO users (user_id, username, password_hash, role, name, extension)
         VALUES (1, 'a1', 'x', 'agent', '小王', '8001'), (2, 'a2', 'x', 'agent', '小李', '8002');
         -- Project 7: batch 70 runs with its own settings; 71 was never started.
         INSERT INTO batches (batch_id, project_id, name, manifest_priority, imported_at, verified, running,
                              ratio, max_concurrency, ring_seconds, cool_down, pacing, abandon_cap)
         VALUES (70, 7, 'b70', 50, 100, 1, 1, 3, 6, 40, 5, 'adaptive', 2.5),
                (71, 7, 'b71', 50, 200, 1, 0, 1, 1, 35, 3, 'fixed', 3.0);
         -- Project 8: nothing runs; the newest batch's settings are the task's.
         INSERT INTO batches (batch_id, project_id, name, manifest_priority, imported_at, verified, running, ratio)
         VALUES (80, 8, 'b80', 50, 100, 1, 0, 2), (81, 8, 'b81', 50, 300, 1, 0, 4);
         -- Project 9: its running batch was ended by HQ.
         INSERT INTO batches (batch_id, project_id, name, manifest_priority, control_priority, imported_at, verified, running)
         VALUES (90, 9, 'b90', 50, 0, 100, 1, 1);
         INSERT INTO task_agents (batch_id, user_id) VALUES (70, 1), (81, 2);",
    )
    .expect("old data");
    tx.commit().expect("commit");
}

fn column<T: rusqlite::types::FromSql>(store: &Store, sql: &str) -> T {
    store.lock().query_row(sql, [], |row| row.get(0)).expect(sql)
}

#[test]
fn per_batch_tasks_become_the_projects_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    per_batch_store(dir.path());
    let store = Store::open(dir.path()).expect("open migrates");

    // Project 7 runs, with the settings and agents of the batch that ran.
    assert_eq!(store.dialable_tasks().expect("dialable"), vec![(7, TaskParams { ratio: 3, max_concurrency: 6, ring_seconds: 40 })]);
    let task7 = store.project_task_settings(7).expect("read").expect("exists");
    assert_eq!((task7.extras.cool_down, task7.extras.pacing.as_str(), task7.extras.abandon_cap_percent), (5, "adaptive", 2.5));
    assert_eq!(task7.agents, vec![1]);
    // The batch never started is now dialed under the project's task, with its settings.
    let b71 = store.task_settings(71).expect("read").expect("exists");
    assert_eq!((b71.extras.cool_down, b71.agents.clone()), (5, vec![1]));
    assert_eq!(column::<i64>(&store, "SELECT running FROM batches WHERE batch_id = 71"), 1);
    assert_eq!(column::<i64>(&store, "SELECT ratio FROM batches WHERE batch_id = 71"), 3);

    // Project 8 does not run; its newest batch's settings and agents are the task's.
    assert_eq!(column::<i64>(&store, "SELECT running FROM project_tasks WHERE project_id = 8"), 0);
    assert_eq!(column::<i64>(&store, "SELECT ratio FROM project_tasks WHERE project_id = 8"), 4);
    assert_eq!(store.project_task_settings(8).expect("read").expect("exists").agents, vec![2]);
    assert!(!store.works_task(80, 1).expect("works"), "batch 80 follows the task's agents (a2 only)");

    // Project 9's only running batch was ended: its task does not run.
    assert_eq!(column::<i64>(&store, "SELECT running FROM project_tasks WHERE project_id = 9"), 0);

    // A batch of project 7 arriving after the move joins the running task.
    store.lock().execute_batch("INSERT INTO batches (batch_id) VALUES (72); UPDATE batches SET project_id = 7 WHERE batch_id = 72;").expect("arrive");
    assert_eq!(column::<i64>(&store, "SELECT running FROM batches WHERE batch_id = 72"), 1);
    assert_eq!(store.task_settings(72).expect("read").expect("exists").agents, vec![1]);

    // Reopening runs nothing twice.
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(column::<i64>(&store, "SELECT COUNT(*) FROM project_tasks"), 3);
}
