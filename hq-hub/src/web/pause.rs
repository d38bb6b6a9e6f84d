//! What 一键启停's pause would stop, said before it happens: the task list's confirmation
//! names how many batches and sites a pause of every project, or of one category, affects.
//!
//! The counts follow the store's rule for a pause (`Store::one_click`): every batch in the
//! caller's scope that is neither ended (priority 0) nor paused already (priority 1).

use std::collections::{BTreeSet, HashMap};

use super::Tr;
use crate::store::{BatchSummary, Category, Project};

/// The confirmation texts of the one-click form: one for every project, one per category.
pub struct PausePrompts {
    pub all: String,
    by_category: HashMap<i64, String>,
}

impl PausePrompts {
    /// The prompts for `batches` (already filtered by the caller's scope).
    pub fn new(tr: Tr, batches: &[BatchSummary], projects: &[Project], categories: &[Category]) -> PausePrompts {
        let category_of: HashMap<i64, i64> = projects.iter().map(|p| (p.id, p.category_id)).collect();
        let pausable: Vec<&BatchSummary> = batches.iter().filter(|b| !b.ended && b.priority > 1).collect();
        let text = |only: Option<i64>| {
            let hit: Vec<&&BatchSummary> =
                pausable.iter().filter(|b| only.is_none() || category_of.get(&b.project_id).copied() == only).collect();
            let sites: BTreeSet<i64> = hit.iter().map(|b| b.site_id).collect();
            prompt(tr, hit.len(), sites.len())
        };
        PausePrompts { all: text(None), by_category: categories.iter().map(|c| (c.id, text(Some(c.id)))).collect() }
    }

    /// The prompt for one category's pause.
    pub fn category(&self, id: &i64) -> &str {
        self.by_category.get(id).map(String::as_str).unwrap_or_default()
    }
}

fn prompt(tr: Tr, batches: usize, sites: usize) -> String {
    if tr.is_en() {
        format!(
            "This pauses {batches} batch(es) at {sites} site(s): those sites stop dialing them until you start them again. Pause?"
        )
    } else {
        format!("将暂停 {batches} 个批次，涉及 {sites} 个职场：这些职场将停止拨打，直到再次一键启动。确定暂停？")
    }
}
