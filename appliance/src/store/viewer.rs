//! Who reads, and what they may see: every view that carries a phone number or customer
//! fields is built through [`Viewer`], so a hidden field or a masked number is never in the
//! value handed to the web layer in the first place.

use std::collections::HashMap;

use rusqlite::Connection;
use sync_protocol::{ProjectDef, mask_middle_digits};

use super::{DbError, PopupField, load_project};

/// The one masking rule, shared with HQ (see [`mask_middle_digits`]), under the name the
/// dialer driver knows it by.
pub use sync_protocol::mask_middle_digits as mask_phone;

/// Who is reading: decides masking. Built by the web layer from the session, never from
/// the request's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub username: String,
    /// Whether the account's role may see numbers whose middle digits the project hides.
    pub unmask: bool,
}

impl Viewer {
    /// The phone as this viewer may see it.
    pub fn phone(&self, def: Option<&ProjectDef>, phone: &str) -> String {
        // Without the project's definition the store cannot know it is unmasked: mask.
        let hide = def.is_none_or(|def| def.hide_middle_digits);
        if hide && !self.unmask { mask_middle_digits(phone) } else { phone.to_string() }
    }
}

/// The customer fields anyone at the site may see: hidden fields never leave the store.
pub fn visible_fields(def: Option<&ProjectDef>, values: &[(String, String)]) -> Vec<PopupField> {
    let Some(def) = def else { return Vec::new() };
    def.customer_fields
        .iter()
        .filter(|field| !field.hidden)
        .map(|field| PopupField {
            key: field.key.clone(),
            title: field.title.clone(),
            value: values.iter().find(|(key, _)| *key == field.key).map(|(_, v)| v.clone()).unwrap_or_default(),
        })
        .collect()
}

/// Project definitions read once per listing.
#[derive(Default)]
pub(super) struct DefCache {
    defs: HashMap<u64, Option<ProjectDef>>,
}

impl DefCache {
    pub(super) fn get(&mut self, conn: &Connection, project_id: Option<u64>) -> Result<Option<&ProjectDef>, DbError> {
        let project_id = project_id.unwrap_or_default();
        if let std::collections::hash_map::Entry::Vacant(slot) = self.defs.entry(project_id) {
            slot.insert(load_project(conn, project_id)?);
        }
        Ok(self.defs.get(&project_id).and_then(Option::as_ref))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_masks_unless_allowed() {
        let masked = Viewer { username: "x".into(), unmask: false };
        let full = Viewer { username: "x".into(), unmask: true };
        assert_eq!(masked.phone(None, "13800138000"), "138****8000");
        assert_eq!(full.phone(None, "13800138000"), "13800138000");
    }
}
