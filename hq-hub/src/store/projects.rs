//! Project categories (项目分类, add only) and sub-projects (子项目) with their custom
//! customer fields (客户资料字段), business-record fields (业务记录字段), script (话术) and
//! the "hide middle four digits" setting.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::sites::is_unique_violation;
use super::{now_unix, DbError, Store};

/// A project category.
#[derive(Debug, Clone, Serialize)]
pub struct Category {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

/// The type of a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldSpecKind {
    Text,
    SingleChoice,
}

/// A custom field as HQ defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Variable name (`[a-z][a-z0-9_]*`), unique in its list.
    pub key: String,
    /// Title shown to people, also matched against spreadsheet headers.
    pub title: String,
    pub kind: FieldSpecKind,
    /// Options of a single-choice field, in display order; empty for text.
    #[serde(default)]
    pub options: Vec<String>,
}

impl FieldSpec {
    /// The wire form sent to sites.
    pub fn to_wire(&self) -> sync_protocol::FieldDef {
        let kind = match self.kind {
            FieldSpecKind::Text => sync_protocol::FieldKind::Text,
            FieldSpecKind::SingleChoice => sync_protocol::FieldKind::SingleChoice(self.options.clone()),
        };
        sync_protocol::FieldDef {
            key: self.key.clone(),
            title: self.title.clone(),
            kind,
            required: false,
            read_only: false,
            hidden: false,
        }
    }
}

/// What is needed to create a sub-project.
#[derive(Debug, Clone, Deserialize)]
pub struct NewProject {
    pub category_id: i64,
    pub name: String,
    #[serde(default)]
    pub script: String,
    #[serde(default)]
    pub hide_middle_digits: bool,
    #[serde(default)]
    pub customer_fields: Vec<FieldSpec>,
    #[serde(default)]
    pub record_fields: Vec<FieldSpec>,
}

/// A sub-project.
#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub id: i64,
    pub category_id: i64,
    pub category_name: String,
    pub name: String,
    pub script: String,
    pub hide_middle_digits: bool,
    pub customer_fields: Vec<FieldSpec>,
    pub record_fields: Vec<FieldSpec>,
    /// Bumped on every change of the definition; sites keep the newest they were sent.
    pub version: i64,
    pub created_at: i64,
}

impl Project {
    /// The definition sent down to sites.
    pub fn to_wire(&self) -> sync_protocol::ProjectDef {
        sync_protocol::ProjectDef {
            project_id: self.id as u64,
            category: self.category_name.clone(),
            name: self.name.clone(),
            script: self.script.clone(),
            hide_middle_digits: self.hide_middle_digits,
            customer_fields: self.customer_fields.iter().map(FieldSpec::to_wire).collect(),
            record_fields: self.record_fields.iter().map(FieldSpec::to_wire).collect(),
            params: sync_protocol::ProjectParams::default(),
            version: self.version as u64,
        }
    }
}

/// Failure to add a category.
#[derive(Debug, thiserror::Error)]
pub enum CreateCategoryError {
    /// The name is empty.
    #[error("category name is empty: type a name such as 套餐类")]
    EmptyName,
    /// Categories are add-only and unique by name.
    #[error("a category named {0:?} already exists (categories cannot be renamed or deleted): choose another name")]
    Duplicate(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Failure to create a sub-project.
#[derive(Debug, thiserror::Error)]
pub enum CreateProjectError {
    /// The category does not exist.
    #[error("category {0} does not exist: create the category first")]
    UnknownCategory(i64),
    /// The name is empty.
    #[error("sub-project name is empty: type a name")]
    EmptyName,
    /// The category already has a sub-project with this name.
    #[error("this category already has a sub-project named {0:?}: choose another name")]
    Duplicate(String),
    /// A custom field is not valid.
    #[error("{list} {number}: {reason}")]
    InvalidField { list: &'static str, number: usize, reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && key.len() <= 40
}

/// Checks and tidies one list of fields (trims titles and options).
fn clean_fields(list: &'static str, fields: &[FieldSpec], reserved: &[&str]) -> Result<Vec<FieldSpec>, CreateProjectError> {
    let mut cleaned: Vec<FieldSpec> = Vec::with_capacity(fields.len());
    for (index, field) in fields.iter().enumerate() {
        let number = index + 1;
        let invalid = |reason: String| CreateProjectError::InvalidField { list, number, reason };
        let key = field.key.trim().to_string();
        let title = field.title.trim().to_string();
        if !valid_key(&key) {
            return Err(invalid(format!(
                "variable name {key:?} is not valid: use lower-case letters, digits and '_', starting with a letter"
            )));
        }
        if reserved.contains(&key.as_str()) {
            return Err(invalid(format!("variable name {key:?} is reserved for a system field: choose another")));
        }
        if title.is_empty() {
            return Err(invalid("title is empty: give the field a title".to_string()));
        }
        if cleaned.iter().any(|f| f.key == key) {
            return Err(invalid(format!("variable name {key:?} is used twice: make it unique")));
        }
        if cleaned.iter().any(|f| f.title == title) {
            return Err(invalid(format!("title {title:?} is used twice: make it unique")));
        }
        let options: Vec<String> = field.options.iter().map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect();
        match field.kind {
            FieldSpecKind::Text => {}
            FieldSpecKind::SingleChoice => {
                if options.is_empty() {
                    return Err(invalid(format!("single choice {title:?} has no options: enter one option per line")));
                }
                for (option_idx, option) in options.iter().enumerate() {
                    if options[..option_idx].contains(option) {
                        return Err(invalid(format!("option {option:?} is listed twice: remove one")));
                    }
                }
            }
        }
        let options = if field.kind == FieldSpecKind::Text { Vec::new() } else { options };
        cleaned.push(FieldSpec { key, title, kind: field.kind, options });
    }
    Ok(cleaned)
}

const PROJECT_SELECT: &str = "SELECT p.id, p.category_id, c.name, p.name, p.script, p.hide_middle_digits,
        p.customer_fields, p.record_fields, p.version, p.created_at
     FROM projects p JOIN categories c ON c.id = p.category_id";

fn project_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    let json_column = |idx: usize| -> rusqlite::Result<Vec<FieldSpec>> {
        let text: String = r.get(idx)?;
        serde_json::from_str(&text)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
    };
    Ok(Project {
        id: r.get(0)?,
        category_id: r.get(1)?,
        category_name: r.get(2)?,
        name: r.get(3)?,
        script: r.get(4)?,
        hide_middle_digits: r.get(5)?,
        customer_fields: json_column(6)?,
        record_fields: json_column(7)?,
        version: r.get(8)?,
        created_at: r.get(9)?,
    })
}

pub(super) fn load_project(conn: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<Project>> {
    conn.query_row(&format!("{PROJECT_SELECT} WHERE p.id = ?1"), [id], project_from_row).optional()
}

impl Store {
    /// Adds a category (add only: there is no rename or delete).
    pub fn create_category(&self, name: &str) -> Result<i64, CreateCategoryError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(CreateCategoryError::EmptyName);
        }
        let conn = self.conn();
        match conn.execute("INSERT INTO categories (name, created_at) VALUES (?1, ?2)", params![name, now_unix()]) {
            Ok(_) => Ok(conn.last_insert_rowid()),
            Err(e) if is_unique_violation(&e) => Err(CreateCategoryError::Duplicate(name.to_string())),
            Err(e) => Err(DbError(e).into()),
        }
    }

    /// All categories, oldest first.
    pub fn list_categories(&self) -> Result<Vec<Category>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, name, created_at FROM categories ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| Ok(Category { id: r.get(0)?, name: r.get(1)?, created_at: r.get(2)? }))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Creates a sub-project after checking its fields.
    pub fn create_project(&self, new: &NewProject) -> Result<i64, CreateProjectError> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(CreateProjectError::EmptyName);
        }
        let customer_fields = clean_fields("customer field", &new.customer_fields, &["phone", "seat", "batch"])?;
        let record_fields = clean_fields("business-record field", &new.record_fields, &["title"])?;
        let customer_json = serde_json::to_string(&customer_fields).map_err(|e| CreateProjectError::InvalidField {
            list: "customer field",
            number: 0,
            reason: e.to_string(),
        })?;
        let record_json = serde_json::to_string(&record_fields).map_err(|e| CreateProjectError::InvalidField {
            list: "business-record field",
            number: 0,
            reason: e.to_string(),
        })?;
        let conn = self.conn();
        let category_exists = conn
            .query_row("SELECT 1 FROM categories WHERE id = ?1", [new.category_id], |_| Ok(()))
            .optional()
            .map_err(DbError)?
            .is_some();
        if !category_exists {
            return Err(CreateProjectError::UnknownCategory(new.category_id));
        }
        let inserted = conn.execute(
            "INSERT INTO projects (category_id, name, script, hide_middle_digits, customer_fields, record_fields, version, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7)",
            params![new.category_id, name, new.script, new.hide_middle_digits, customer_json, record_json, now_unix()],
        );
        match inserted {
            Ok(_) => Ok(conn.last_insert_rowid()),
            Err(e) if is_unique_violation(&e) => Err(CreateProjectError::Duplicate(name.to_string())),
            Err(e) => Err(DbError(e).into()),
        }
    }

    /// One sub-project.
    pub fn project(&self, id: i64) -> Result<Option<Project>, DbError> {
        Ok(load_project(&self.conn(), id)?)
    }

    /// All sub-projects, by category then id.
    pub fn list_projects(&self) -> Result<Vec<Project>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("{PROJECT_SELECT} ORDER BY p.category_id, p.id"))?;
        let rows = stmt.query_map([], project_from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(key: &str, title: &str, kind: FieldSpecKind, options: &[&str]) -> FieldSpec {
        FieldSpec {
            key: key.into(),
            title: title.into(),
            kind,
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn categories_are_unique_and_projects_validated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let category = store.create_category("套餐类").unwrap();
        assert!(matches!(store.create_category("套餐类"), Err(CreateCategoryError::Duplicate(_))));
        assert!(matches!(store.create_category("  "), Err(CreateCategoryError::EmptyName)));

        let mut new = NewProject {
            category_id: category,
            name: "流量包".into(),
            script: "您好".into(),
            hide_middle_digits: true,
            customer_fields: vec![field("name", "姓名", FieldSpecKind::Text, &[])],
            record_fields: vec![field("result", "营销结果", FieldSpecKind::SingleChoice, &[" 成功 ", "失败", ""])],
        };
        let id = store.create_project(&new).unwrap();
        let project = store.project(id).unwrap().unwrap();
        assert_eq!(project.record_fields[0].options, vec!["成功", "失败"]);
        assert_eq!(project.category_name, "套餐类");
        assert!(matches!(store.create_project(&new), Err(CreateProjectError::Duplicate(_))));

        new.name = "其他".into();
        new.customer_fields = vec![field("Name", "姓名", FieldSpecKind::Text, &[])];
        let err = store.create_project(&new).unwrap_err().to_string();
        assert!(err.starts_with("customer field 1: variable name \"Name\" is not valid"), "{err}");
        new.customer_fields = vec![field("phone", "电话", FieldSpecKind::Text, &[])];
        assert!(store.create_project(&new).unwrap_err().to_string().contains("reserved"));
        new.customer_fields = vec![];
        new.record_fields = vec![field("result", "结果", FieldSpecKind::SingleChoice, &[])];
        assert!(store.create_project(&new).unwrap_err().to_string().contains("one option per line"));
        new.category_id = 77;
        new.record_fields = vec![];
        assert!(matches!(store.create_project(&new), Err(CreateProjectError::UnknownCategory(77))));
    }
}
