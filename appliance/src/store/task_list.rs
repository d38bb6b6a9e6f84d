//! 下发任务管理 (manual 2.2.1) as the site admin sees it: one task per project (sub-project),
//! its batches listed inside it in the order they are dialed (higher priority first, equal
//! priority the earlier import first, held and ended ones last), and the priority between
//! tasks the site admin sets (the arbiter's first key when tasks share agents).

use rusqlite::{OptionalExtension, params};

use super::{AbandonRates, DbError, Store, TaskStatus, TaskSummary, china_minute};

/// A project's task at the site with its batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectTaskView {
    pub project_id: u64,
    pub project: String,
    /// Running if started and a batch is dialable; otherwise the most hopeful of its batches.
    pub status: TaskStatus,
    /// Priority between the site's tasks: the site admin's, else the highest of its batches.
    pub priority: u32,
    /// Whether the site admin set `priority` (else it follows the batches).
    pub priority_set: bool,
    /// In dial order.
    pub batches: Vec<TaskSummary>,
}

impl ProjectTaskView {
    /// The batch the task's page and its forms are reached through: the first to dial.
    pub fn lead_batch(&self) -> Option<u64> {
        self.batches.first().map(|batch| batch.batch_id)
    }

    pub fn numbers(&self) -> u64 {
        self.batches.iter().map(|batch| batch.numbers).sum()
    }

    pub fn dialed(&self) -> u64 {
        self.batches.iter().map(|batch| batch.dialed).sum()
    }

    pub fn connected(&self) -> u64 {
        self.batches.iter().map(|batch| batch.connected).sum()
    }
}

/// The dial order of batches within a task (held and ended batches after the dialable).
fn dial_order(batch: &TaskSummary) -> (bool, std::cmp::Reverse<u8>, i64, u64) {
    (batch.priority <= 1, std::cmp::Reverse(batch.priority), batch.imported_at, batch.batch_id)
}

fn task_status(batches: &[TaskSummary]) -> TaskStatus {
    let rank = |status: TaskStatus| match status {
        TaskStatus::Running => 0,
        TaskStatus::NotStarted => 1,
        TaskStatus::Paused => 2,
        TaskStatus::Receiving => 3,
        TaskStatus::Ended => 4,
    };
    batches.iter().map(|batch| batch.status).min_by_key(|status| rank(*status)).unwrap_or(TaskStatus::Receiving)
}

impl Store {
    /// Every project's task with its batches, projects by their newest import first.
    pub fn project_task_list(&self) -> Result<Vec<ProjectTaskView>, DbError> {
        let batches = self.tasks()?;
        let set: std::collections::BTreeMap<u64, u32> = {
            let conn = self.lock();
            let mut statement = conn.prepare("SELECT project_id, priority FROM project_tasks WHERE priority IS NOT NULL")?;
            statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?
        };
        let mut tasks: Vec<ProjectTaskView> = Vec::new();
        // `tasks()` lists the newest import first: a project's place is its newest batch's.
        for batch in batches {
            let Some(project_id) = batch.project_id else { continue };
            match tasks.iter_mut().find(|task| task.project_id == project_id) {
                Some(task) => task.batches.push(batch),
                None => tasks.push(ProjectTaskView {
                    project_id,
                    project: batch.project.clone(),
                    status: TaskStatus::Receiving,
                    priority: 0,
                    priority_set: false,
                    batches: vec![batch],
                }),
            }
        }
        for task in &mut tasks {
            task.batches.sort_by_key(dial_order);
            task.status = task_status(&task.batches);
            let from_batches = task.batches.iter().map(|batch| u32::from(batch.priority)).filter(|p| *p >= 2).max();
            task.priority_set = set.contains_key(&task.project_id);
            task.priority = set.get(&task.project_id).copied().or(from_batches).unwrap_or(2);
        }
        Ok(tasks)
    }

    /// The project's task, reached through any of its batches.
    pub fn project_task_of_batch(&self, batch_id: u64) -> Result<Option<ProjectTaskView>, DbError> {
        let project_id: Option<Option<u64>> = self
            .lock()
            .query_row("SELECT project_id FROM batches WHERE batch_id = ?1", [batch_id], |row| row.get(0))
            .optional()?;
        let Some(Some(project_id)) = project_id else { return Ok(None) };
        Ok(self.project_task_list()?.into_iter().find(|task| task.project_id == project_id))
    }

    /// The site admin sets the task's priority between the site's tasks (2..=100, as HQ's
    /// batch priorities), or `None` to follow its batches again.
    pub fn set_task_priority(&self, project_id: u64, priority: Option<u32>) -> Result<(), DbError> {
        let conn = self.lock();
        let updated =
            conn.execute("UPDATE project_tasks SET priority = ?2 WHERE project_id = ?1", params![project_id, priority])?;
        if updated == 0 {
            conn.execute("INSERT INTO project_tasks (project_id, priority) VALUES (?1, ?2)", params![project_id, priority])?;
        }
        Ok(())
    }

    /// [`AbandonRates`] of the project's task (all its batches) as of `now`.
    pub fn task_abandon_rates(&self, project_id: u64, now: i64) -> Result<AbandonRates, DbError> {
        let midnight = now - china_minute(now) * 60 - now.rem_euclid(60);
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(outcome = 'abandoned'), 0) FROM attempts
             WHERE batch_id IN (SELECT batch_id FROM batches WHERE project_id = ?1)
               AND answered_at IS NOT NULL AND started_at >= ?2",
        )?;
        let mut rate_since = |since: i64| -> Result<Option<f64>, DbError> {
            let (answered, abandoned): (i64, i64) =
                statement.query_row(params![project_id, since], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok((answered > 0).then(|| abandoned as f64 / answered as f64))
        };
        Ok(AbandonRates { today: rate_since(midnight)?, last_30_days: rate_since(now - 30 * 86_400)? })
    }
}
