//! The site-wide business-record form of calls under no project (batch 0: a number typed by
//! an agent who works no task, an unknown caller). The site admin edits it on the desk
//! settings page; until then it is one free note (备注).
//!
//! A field's key is its label: HQ holds no form for batch 0 and shows such a record's values
//! under their keys, so HQ shows what the agent saw. Renaming a field starts a new key; the
//! records saved before keep the old one, as they were saved.

use rusqlite::{Connection, OptionalExtension};
use sync_protocol::{FieldDef, FieldKind};

use super::{DbError, Store, corrupt};

/// The most fields the form may have.
pub const MAX_FIELDS: usize = 20;
/// The most characters of a label or an option.
pub const MAX_LABEL_CHARS: usize = 30;
/// The most options of a single choice.
pub const MAX_OPTIONS: usize = 20;

/// One field as the site admin edits it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FormField {
    /// What the agent reads; also the value's key.
    pub label: String,
    /// `text` or `single_choice`.
    pub kind: String,
    /// The choices of a single choice (none for text).
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub required: bool,
}

/// Why a form was refused; each names the field by its place (1-based) and label.
#[derive(Debug, thiserror::Error)]
pub enum DefaultFormError {
    #[error("the form needs 1 to 20 fields")]
    Count,
    #[error("field {0}: the label must be 1 to 30 characters")]
    Label(usize),
    #[error("field {0}: the label \"{1}\" is used twice")]
    Duplicate(usize, String),
    #[error("field {0} \"{1}\": kind \"{2}\" is unknown; use text or single_choice")]
    Kind(usize, String, String),
    #[error("field {0} \"{1}\": a single choice needs 1 to 20 options of 1 to 30 characters, none twice")]
    Options(usize, String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The built-in form: one free note.
fn built_in() -> Vec<FieldDef> {
    vec![FieldDef {
        key: "备注".into(),
        title: "备注".into(),
        kind: FieldKind::Text,
        required: false,
        read_only: false,
        hidden: false,
    }]
}

/// The form in force, read on `conn` (the popup's reader or a save's transaction).
pub(super) fn default_record_fields_in(conn: &Connection) -> Result<Vec<FieldDef>, DbError> {
    let saved: Option<Option<String>> =
        conn.query_row("SELECT default_form FROM desk_settings WHERE id = 1", [], |row| row.get(0)).optional()?;
    match saved.flatten() {
        Some(json) => serde_json::from_str(&json).map_err(|e| corrupt("the default record form", e)),
        None => Ok(built_in()),
    }
}

fn fine_label(text: &str) -> bool {
    let chars = text.chars().count();
    (1..=MAX_LABEL_CHARS).contains(&chars)
}

/// The fields checked and turned into the form's definitions.
fn checked(fields: &[FormField]) -> Result<Vec<FieldDef>, DefaultFormError> {
    if fields.is_empty() || fields.len() > MAX_FIELDS {
        return Err(DefaultFormError::Count);
    }
    let mut defs: Vec<FieldDef> = Vec::with_capacity(fields.len());
    for (index, field) in fields.iter().enumerate() {
        let place = index + 1;
        let label = field.label.trim();
        if !fine_label(label) {
            return Err(DefaultFormError::Label(place));
        }
        if defs.iter().any(|def| def.key == label) {
            return Err(DefaultFormError::Duplicate(place, label.to_string()));
        }
        let kind = match field.kind.as_str() {
            "text" => FieldKind::Text,
            "single_choice" => {
                let options: Vec<String> = field.options.iter().map(|option| option.trim().to_string()).collect();
                let distinct = options.iter().enumerate().all(|(at, option)| !options[..at].contains(option));
                if options.is_empty() || options.len() > MAX_OPTIONS || !distinct || !options.iter().all(|o| fine_label(o)) {
                    return Err(DefaultFormError::Options(place, label.to_string()));
                }
                FieldKind::SingleChoice(options)
            }
            other => return Err(DefaultFormError::Kind(place, label.to_string(), other.to_string())),
        };
        defs.push(FieldDef {
            key: label.to_string(),
            title: label.to_string(),
            kind,
            required: field.required,
            read_only: false,
            hidden: false,
        });
    }
    Ok(defs)
}

impl Store {
    /// The form of calls under no project, as the site admin edits it.
    pub fn default_form(&self) -> Result<Vec<FormField>, DbError> {
        let conn = self.lock();
        Ok(default_record_fields_in(&conn)?
            .into_iter()
            .map(|def| {
                let (kind, options) = match def.kind {
                    FieldKind::SingleChoice(options) => ("single_choice", options),
                    _ => ("text", Vec::new()),
                };
                FormField { label: def.title, kind: kind.into(), options, required: def.required }
            })
            .collect())
    }

    /// Saves the form of calls under no project, in the order given; the popups of calls
    /// from now on show it.
    pub fn set_default_form(&self, fields: &[FormField]) -> Result<Vec<FormField>, DefaultFormError> {
        let defs = checked(fields)?;
        let json = serde_json::to_string(&defs).map_err(|e| corrupt("the default record form", e))?;
        {
            let conn = self.lock();
            conn.execute(
                "INSERT INTO desk_settings (id, default_form) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET default_form = excluded.default_form",
                [json],
            )
            .map_err(DbError::from)?;
        }
        Ok(self.default_form()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(label: &str, kind: &str, options: &[&str], required: bool) -> FormField {
        FormField { label: label.into(), kind: kind.into(), options: options.iter().map(|o| o.to_string()).collect(), required }
    }

    #[test]
    fn the_form_is_the_note_until_edited_then_as_saved_and_bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.default_form().unwrap(), vec![field("备注", "text", &[], false)]);
        let form = vec![field("来电原因", "single_choice", &["咨询", "投诉"], true), field(" 备注 ", "text", &[], false)];
        let saved = store.set_default_form(&form).unwrap();
        assert_eq!(saved, vec![field("来电原因", "single_choice", &["咨询", "投诉"], true), field("备注", "text", &[], false)]);
        let keys: Vec<String> = default_record_fields_in(&store.lock()).unwrap().into_iter().map(|def| def.key).collect();
        assert_eq!(keys, ["来电原因", "备注"], "keyed by label, in order");
        let refused = |form: Vec<FormField>| store.set_default_form(&form).unwrap_err().to_string();
        assert_eq!(refused(vec![]), "the form needs 1 to 20 fields");
        assert_eq!(refused(vec![field("a", "text", &[], false), field("", "text", &[], false)]), "field 2: the label must be 1 to 30 characters");
        assert_eq!(refused(vec![field("a", "text", &[], false), field("a", "text", &[], false)]), "field 2: the label \"a\" is used twice");
        assert_eq!(refused(vec![field("a", "date", &[], false)]), "field 1 \"a\": kind \"date\" is unknown; use text or single_choice");
        assert!(refused(vec![field("a", "single_choice", &["x", "x"], false)]).starts_with("field 1 \"a\": a single choice"));
        assert_eq!(store.default_form().unwrap().len(), 2, "a refused form changes nothing");
    }
}
