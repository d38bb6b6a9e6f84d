//! Length limits of every name and text field the console accepts, checked before anything
//! is stored, with the limit and the actual length in the error (`name: at most 100
//! characters (got 153)` / `名称最多 100 个字符（现为 153 个）`). Lengths count characters,
//! not bytes, so a Chinese name has the same limit as a Latin one.

use super::{ApiError, Tr};
use crate::store::{AttributionRule, ExclusivePart, FieldSpec, NewAccount, NewProject, ProjectEdit};

/// Site, category, sub-project, role, group, batch names.
pub const NAME: usize = 100;
/// A login name.
pub const USERNAME: usize = 64;
/// A password (argon2 hashes any length; this bounds the work one request can ask for).
pub const PASSWORD: usize = 128;
/// A sub-project's call script.
pub const SCRIPT: usize = 20_000;
/// A field's key.
pub const FIELD_KEY: usize = 64;
/// A field's title, one choice option.
pub const FIELD_TEXT: usize = 100;
/// A field's default value, an attribution rule's value, a list note, a remark.
pub const SHORT_TEXT: usize = 200;
/// A batch's description.
pub const DESCRIPTION: usize = 500;

/// A field that is too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    pub field: String,
    pub field_zh: String,
    pub max: usize,
    pub got: usize,
}

impl TooLong {
    pub fn en(&self) -> String {
        format!("{}: at most {} characters (got {})", self.field, self.max, self.got)
    }

    pub fn zh(&self) -> String {
        format!("{}最多 {} 个字符（现为 {} 个）", self.field_zh, self.max, self.got)
    }

    /// In the page's language.
    pub fn text(&self, tr: Tr) -> String {
        if tr.is_en() { self.en() } else { self.zh() }
    }
}

impl From<TooLong> for ApiError {
    fn from(err: TooLong) -> Self {
        ApiError::bad_request(err.en())
    }
}

/// `value` has at most `max` characters.
pub fn check(field: impl Into<String>, field_zh: impl Into<String>, value: &str, max: usize) -> Result<(), TooLong> {
    let got = value.chars().count();
    if got > max { Err(TooLong { field: field.into(), field_zh: field_zh.into(), max, got }) } else { Ok(()) }
}

/// A name (site, category, role, group).
pub fn name(value: &str) -> Result<(), TooLong> {
    check("name", "名称", value, NAME)
}

fn fields(list: &[FieldSpec], en: &str, zh: &str) -> Result<(), TooLong> {
    for (i, field) in list.iter().enumerate() {
        let n = i + 1;
        check(format!("{en} {n} key"), format!("{zh}第 {n} 项的键"), &field.key, FIELD_KEY)?;
        check(format!("{en} {n} title"), format!("{zh}第 {n} 项的标题"), &field.title, FIELD_TEXT)?;
        check(format!("{en} {n} default"), format!("{zh}第 {n} 项的默认值"), &field.default, SHORT_TEXT)?;
        for option in &field.options {
            check(format!("{en} {n} option"), format!("{zh}第 {n} 项的选项"), option, FIELD_TEXT)?;
        }
    }
    Ok(())
}

/// A sub-project's definition: name, script and every field.
pub fn project(new: &NewProject) -> Result<(), TooLong> {
    definition(&new.name, &new.script, &new.customer_fields, &new.record_fields)
}

/// A replaced definition.
pub fn project_edit(edit: &ProjectEdit) -> Result<(), TooLong> {
    definition(&edit.name, &edit.script, &edit.customer_fields, &edit.record_fields)
}

fn definition(name_text: &str, script: &str, customer: &[FieldSpec], record: &[FieldSpec]) -> Result<(), TooLong> {
    name(name_text)?;
    check("script", "话术", script, SCRIPT)?;
    fields(customer, "customer field", "客户字段")?;
    fields(record, "record field", "业务字段")
}

/// A dispatch: batch name, description, exclusive batches' names.
pub fn dispatch(name_text: &str, description: &str, parts: &[ExclusivePart]) -> Result<(), TooLong> {
    check("name", "任务名称", name_text, NAME)?;
    check("description", "任务描述", description, DESCRIPTION)?;
    for (i, part) in parts.iter().enumerate() {
        check(format!("exclusive batch {} name", i + 1), format!("第 {} 个独占任务的名称", i + 1), &part.name, NAME)?;
    }
    Ok(())
}

/// Attribution rules: value and agent of each.
pub fn rules(list: &[AttributionRule]) -> Result<(), TooLong> {
    for (i, rule) in list.iter().enumerate() {
        let n = i + 1;
        check(format!("rule {n} value"), format!("第 {n} 条规则的值"), &rule.value, SHORT_TEXT)?;
        check(format!("rule {n} agent"), format!("第 {n} 条规则的坐席"), &rule.agent, USERNAME)?;
    }
    Ok(())
}

/// A new sub-admin account.
pub fn account(new: &NewAccount) -> Result<(), TooLong> {
    check("username", "账号", &new.username, USERNAME)?;
    check("password", "密码", &new.password, PASSWORD)
}

/// The login form.
pub fn login(username: &str, password: &str) -> Result<(), TooLong> {
    check("username", "账号", username, USERNAME)?;
    check("password", "密码", password, PASSWORD)
}

/// A file's remark.
pub fn remark(value: &str) -> Result<(), TooLong> {
    check("remark", "备注", value, SHORT_TEXT)
}

/// A black / white list note.
pub fn note(value: &str) -> Result<(), TooLong> {
    check("note", "备注", value, SHORT_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_field_the_limit_and_the_length() {
        let long = "职".repeat(153);
        let err = name(&long).unwrap_err();
        assert_eq!(err.en(), "name: at most 100 characters (got 153)");
        assert_eq!(err.zh(), "名称最多 100 个字符（现为 153 个）");
        assert!(name(&"职".repeat(100)).is_ok(), "characters count, not bytes");
        let parts = [ExclusivePart { name: "a".repeat(101), count: 1, site_id: 1 }];
        assert_eq!(dispatch("x", "", &parts).unwrap_err().en(), "exclusive batch 1 name: at most 100 characters (got 101)");
        assert_eq!(login("admin", &"p".repeat(129)).unwrap_err().en(), "password: at most 128 characters (got 129)");
    }
}
