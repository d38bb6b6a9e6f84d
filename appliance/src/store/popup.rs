//! The popup (弹屏): what an agent's browser shows when a call is put through or, on ring,
//! while it rings: the customer's visible fields, the script and the business-record form.

use rusqlite::{Connection, OptionalExtension, params};
use sync_protocol::{FieldDef, FieldKind, mask_middle_digits};

use super::records::row_values;
use super::{DbError, Store, Viewer, load_project, visible_fields};

/// What an agent's browser shows when a call is put through.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Popup {
    pub attempt_id: u64,
    /// Masked when the project hides the middle digits, when the agent pops on ring, and
    /// when the project's definition is missing (see [`Viewer::phone`]).
    pub phone: String,
    pub fields: Vec<PopupField>,
    pub script: String,
    pub record_fields: Vec<RecordField>,
    /// The call is still on the lines (false: ended, only its record is left to save), so a
    /// desk page opened later shows the right call state.
    pub live: bool,
    /// The customer called the site (呼入): the desk marks the popup so. An unknown
    /// caller's popup has the number and no field, script or form of a project.
    pub inbound: bool,
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

impl Store {
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
        type Found = (u64, u32, u32, String, Option<u64>, u64, Option<String>, bool, bool);
        let found: Option<Found> = conn
            .query_row(
                "SELECT a.batch_id, a.chunk_idx, a.row_idx, a.phone, b.project_id, a.row_id, a.agent, a.state = 'dialing',
                        a.kind = 'inbound'
                 FROM attempts a LEFT JOIN batches b ON b.batch_id = a.batch_id
                 WHERE a.attempt_id = ?1",
                [attempt_id],
                |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?, row.get(8)?))
                },
            )
            .optional()?;
        let Some((batch_id, chunk_idx, row_idx, phone, project_id, row_id, agent, live, inbound)) = found else {
            return Ok(None);
        };
        // A number the agent typed that is no customer, or an unknown caller (inbound, batch 0),
        // has no row: an empty customer card.
        let fields_blob: Option<Vec<u8>> = conn
            .query_row(
                "SELECT fields FROM batch_rows WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
                params![batch_id, chunk_idx, row_idx],
                |row| row.get(0),
            )
            .optional()?;
        let values = match &fields_blob {
            Some(blob) => row_values(&conn, batch_id, row_id, blob)?,
            None => Default::default(),
        };
        // An agent who pops on ring sees the number as first three and last four digits for
        // the whole call (manual 3.2.1.1), whatever the project says.
        let agent = agent_override.map(str::to_string).or(agent);
        let ring_mask = match &agent {
            Some(agent) => pops_on_ring(&conn, agent, project_id)?,
            None => false,
        };
        let def = load_project(&conn, project_id.unwrap_or_default())?;
        // Built through the same `Viewer` as every other view, so a popup whose project
        // definition is missing fails closed (number masked, no field shown) like the lists.
        // The popup does not unmask by role (it never did): it is the agent desk's view.
        let viewer = Viewer { username: agent.unwrap_or_default(), unmask: false };
        let phone = if ring_mask { mask_middle_digits(&phone) } else { viewer.phone(def.as_ref(), &phone) };
        let record_fields = match (&def, project_id) {
            (Some(def), _) => def.record_fields.iter().filter(|field| !field.hidden).map(record_field).collect(),
            (None, None) => super::default_form::default_record_fields_in(&conn)?.iter().map(record_field).collect(),
            // A project whose definition is missing fails closed.
            (None, Some(_)) => Vec::new(),
        };
        Ok(Some(Popup {
            attempt_id,
            phone,
            fields: visible_fields(def.as_ref(), &values),
            script: def.map(|def| def.script).unwrap_or_default(),
            record_fields,
            live,
            inbound,
        }))
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

/// Whether the agent (by username) gets the popup while ringing in `project_id`: HQ's
/// project setting when HQ set one, otherwise the agent's own choice.
pub(super) fn pops_on_ring(conn: &Connection, agent: &str, project_id: Option<u64>) -> Result<bool, DbError> {
    if let Some(project_id) = project_id {
        let hq: Option<Option<bool>> = conn
            .query_row("SELECT popup_on_ring FROM project_run WHERE project_id = ?1", [project_id], |row| row.get(0))
            .optional()?;
        if let Some(Some(hq)) = hq {
            return Ok(hq);
        }
    }
    let timing: Option<String> = conn
        .query_row(
            "SELECT s.popup_timing FROM agent_settings s JOIN users u ON u.user_id = s.user_id
             WHERE u.username = ?1",
            [agent],
            |row| row.get(0),
        )
        .optional()?;
    Ok(timing.as_deref() == Some("ring"))
}
