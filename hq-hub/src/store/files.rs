//! Uploaded files (文件管理) and their imported rows.
//!
//! The uploaded bytes are kept under `data_dir/files/<id>.xlsx` (the console offers them for
//! download, and a filter on another phone column reads the sheet again).
//!
//! A file is stored through a [`FileImport`]: its row is created hidden (`status =
//! 'importing'`, `deleted = 1`), its good rows are appended in chunks, each chunk its own
//! short transaction (so an import of a million rows can run alongside the parse without
//! holding the store from the sync link for seconds), and [`FileImport::finish`] shows the
//! file, its report and its copy in one last transaction. A failed or abandoned import
//! deletes what it wrote; one cut short by a crash is deleted when the store opens next. So
//! a failed import leaves nothing anyone can see, and soon nothing at all.

use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{now_unix, DbError, Store};

/// One row the import rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct BadRow {
    /// The spreadsheet's row number (1 is the header row).
    pub row: u32,
    /// The column's header text.
    pub column: String,
    /// What is wrong and how to fix it (English).
    pub reason: String,
    /// The same in Simplified Chinese, for the console.
    pub reason_zh: String,
}

/// How a project field was matched to a column (数据匹配), or why it was not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct ColumnMatch {
    pub field_key: String,
    pub field_title: String,
    /// The matched column's header, if any.
    pub column: Option<String>,
    /// Why no column matched (English and Chinese), following the manual's list: header not
    /// text, special characters, or simply no such column.
    pub reason: Option<String>,
    pub reason_zh: Option<String>,
}

/// The outcome of importing one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct ImportReport {
    /// Data rows in the sheet (trailing empty rows not counted).
    pub n_rows: u64,
    /// Rows kept.
    pub n_good: u64,
    pub bad: Vec<BadRow>,
    /// The header of the column used for phone numbers.
    pub phone_column: String,
    /// Titles of the project's custom customer fields that no column matched (their values
    /// are left empty).
    pub unmatched_fields: Vec<String>,
    /// Field-by-field column matching.
    #[serde(default)]
    pub columns: Vec<ColumnMatch>,
    /// Empty rows at the end of the sheet that were ignored (文档末尾空行).
    #[serde(default)]
    pub trailing_empty_rows: u64,
    /// Header cells that were not text or held special characters, and how they were read.
    #[serde(default)]
    pub header_warnings: Vec<String>,
    /// The name of the sheet the rows were read from (the first with data).
    #[serde(default)]
    pub sheet: String,
    /// Kept rows whose values were changed to be stored (an over-long value cut), with why.
    #[serde(default)]
    pub warnings: Vec<BadRow>,
}

/// A row that passed the import.
#[derive(Debug, Clone, PartialEq)]
pub struct GoodRow {
    pub row_number: u32,
    pub phone: String,
    /// Custom field values, one per field of the project's `customer_fields`, in that
    /// order (the keys are the project's: a million rows need not carry a million copies).
    pub fields: FieldValues,
}

/// A row's custom field values in two allocations (the text, and where each value ends)
/// instead of one per value: an import keeps up to a million of these in memory.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FieldValues {
    text: Box<str>,
    ends: Box<[u32]>,
}

impl FieldValues {
    /// Value `idx`, if the row has that many.
    pub fn get(&self, idx: usize) -> Option<&str> {
        let end = *self.ends.get(idx)? as usize;
        let start = if idx == 0 { 0 } else { self.ends[idx - 1] as usize };
        self.text.get(start..end)
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.ends.len()).map(|idx| self.get(idx).unwrap_or_default())
    }
}

impl std::fmt::Debug for FieldValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> FromIterator<S> for FieldValues {
    fn from_iter<I: IntoIterator<Item = S>>(values: I) -> Self {
        let mut builder = FieldValuesBuilder::default();
        for value in values {
            builder.push_with(|out| {
                out.push_str(value.as_ref());
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap_or_default();
        }
        builder.finish()
    }
}

impl From<Vec<String>> for FieldValues {
    fn from(values: Vec<String>) -> Self {
        values.into_iter().collect()
    }
}

/// Assembles [`FieldValues`] row after row in one reused buffer, so a value is written
/// once, straight from the cell, and each finished row costs two exact-size allocations.
#[derive(Default)]
pub struct FieldValuesBuilder {
    text: String,
    ends: Vec<u32>,
}

impl FieldValuesBuilder {
    /// Appends the value `write` appends to the buffer and answers it. If `write` fails
    /// the value is left empty (the row is then reported, not kept) and its error returned.
    pub fn push_with<E>(&mut self, write: impl FnOnce(&mut String) -> Result<(), E>) -> Result<&str, E> {
        let start = self.text.len();
        let written = write(&mut self.text);
        if written.is_err() {
            self.text.truncate(start);
        }
        // Values are at most a few thousand bytes and rows a few hundred values.
        self.ends.push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
        written.map(|()| &self.text[start..])
    }

    /// The row's values; the builder is empty again.
    pub fn finish(&mut self) -> FieldValues {
        let values = FieldValues { text: self.text.as_str().into(), ends: self.ends.as_slice().into() };
        self.text.clear();
        self.ends.clear();
        values
    }
}

/// A file in the file list.
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct FileSummary {
    pub id: i64,
    pub project_id: i64,
    pub project_name: String,
    pub file_name: String,
    /// `upload` (本地上传), later also `system` (系统生成).
    pub source: String,
    /// `unprocessed` (未处理) or `done` (完成, dispatched at least once).
    pub status: String,
    pub created_at: i64,
    pub creator: String,
    pub n_rows: i64,
    pub n_good: i64,
    /// 备注 (a filter result says where it came from).
    pub remark: String,
}

/// Failure to store an import.
#[derive(Debug, thiserror::Error)]
pub enum SaveImportError {
    /// The project does not exist.
    #[error("sub-project {0} does not exist: choose an existing sub-project")]
    UnknownProject(i64),
    /// The uploaded copy could not be written.
    #[error("cannot store the uploaded file at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Rows per transaction when a file's rows are appended.
pub const IMPORT_CHUNK_ROWS: usize = 20_000;

/// Rows inserted by one statement (4 parameters each, well under SQLite's limit).
const ROWS_PER_INSERT: usize = 64;

/// `INSERT INTO import_rows … VALUES (…), (…) …` for `n` rows (1 to [`ROWS_PER_INSERT`]);
/// built once per count and kept, as the statement cache keys on the text.
fn insert_rows_sql(n: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=ROWS_PER_INSERT)
            .map(|n| {
                let values = vec!["(?, ?, ?, ?)"; n.max(1)].join(", ");
                format!("INSERT INTO import_rows (file_id, row_number, phone, fields) VALUES {values}")
            })
            .collect()
    });
    all[n.min(ROWS_PER_INSERT)].as_str()
}

/// A file being stored (see the module doc): [`Store::begin_file`], then [`keep_copy`]
/// and [`append`] in any order, then [`finish`]. Dropped unfinished, it deletes what it
/// wrote.
///
/// [`keep_copy`]: FileImport::keep_copy
/// [`append`]: FileImport::append
/// [`finish`]: FileImport::finish
pub struct FileImport<'s> {
    store: &'s Store,
    file_id: i64,
    /// The project's field keys, in the order of [`GoodRow::fields`].
    keys: Vec<String>,
    /// Reused buffers for the JSON of the rows of one insert statement.
    json: Vec<String>,
    /// The copy written so far (`<id>.xlsx.part`) and its final name.
    copy: Option<(PathBuf, PathBuf)>,
    finished: bool,
}

impl FileImport<'_> {
    /// The id the file will have.
    pub fn id(&self) -> i64 {
        self.file_id
    }

    /// Writes the file's bytes to disk (synced) under a temporary name; [`finish`] renames
    /// it into place.
    ///
    /// [`finish`]: FileImport::finish
    pub fn keep_copy(&mut self, bytes: &[u8]) -> Result<(), SaveImportError> {
        let path = self.store.files_dir.join(format!("{}.xlsx", self.file_id));
        let temp = self.store.files_dir.join(format!("{}.xlsx.part", self.file_id));
        let write = std::fs::write(&temp, bytes).and_then(|()| std::fs::File::open(&temp)?.sync_all());
        if let Err(source) = write {
            let _ = std::fs::remove_file(&temp);
            return Err(SaveImportError::Io { path: temp, source });
        }
        self.copy = Some((temp, path));
        Ok(())
    }

    /// Appends good rows, in one committed (still hidden) transaction.
    pub fn append(&mut self, rows: &[GoodRow]) -> Result<(), SaveImportError> {
        let keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        self.json.resize_with(ROWS_PER_INSERT, || String::with_capacity(256));
        let mut conn = self.store.conn();
        let tx = conn.transaction().map_err(DbError)?;
        // Rows go in `ROWS_PER_INSERT` to a statement: one statement run per row costs
        // about as much as building the row again.
        for group in rows.chunks(ROWS_PER_INSERT) {
            let mut insert = tx.prepare_cached(insert_rows_sql(group.len())).map_err(DbError)?;
            for (idx, (row, json)) in group.iter().zip(self.json.iter_mut()).enumerate() {
                json.clear();
                fields_json(&keys, &row.fields, json);
                let at = idx * 4;
                insert.raw_bind_parameter(at + 1, self.file_id).map_err(DbError)?;
                insert.raw_bind_parameter(at + 2, row.row_number).map_err(DbError)?;
                insert.raw_bind_parameter(at + 3, row.phone.as_str()).map_err(DbError)?;
                insert.raw_bind_parameter(at + 4, json.as_str()).map_err(DbError)?;
            }
            insert.raw_execute().map_err(DbError)?;
        }
        tx.commit().map_err(DbError)?;
        Ok(())
    }

    /// Shows the file: its counts, report and copy, in one transaction. Answers its id.
    pub fn finish(mut self, report: &ImportReport) -> Result<i64, SaveImportError> {
        let report_json = serde_json::to_string(report).map_err(|e| DbError(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        let stored_name = match &self.copy {
            Some((temp, path)) => {
                std::fs::rename(temp, path).map_err(|source| SaveImportError::Io { path: path.clone(), source })?;
                format!("{}.xlsx", self.file_id)
            }
            None => String::new(),
        };
        let committed = self.store.conn().execute(
            "UPDATE files SET status = 'unprocessed', deleted = 0, stored_path = ?2, n_rows = ?3, n_good = ?4, report = ?5
             WHERE id = ?1 AND status = 'importing'",
            params![self.file_id, stored_name, report.n_rows as i64, report.n_good as i64, report_json],
        );
        match committed {
            Ok(1) => {
                self.finished = true;
                Ok(self.file_id)
            }
            // The row was discarded under us (a second store opened on the same directory).
            Ok(_) => Err(DbError(rusqlite::Error::QueryReturnedNoRows).into()),
            // Dropping `self` deletes the rows and the copy: the file never became visible.
            Err(e) => Err(DbError(e).into()),
        }
    }
}

impl Drop for FileImport<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let conn = self.store.conn();
        if let Err(e) = discard_file(&conn, &self.store.files_dir, self.file_id) {
            // Left hidden; the next open of the store deletes it.
            tracing::warn!(file_id = self.file_id, error = %e, "cannot delete an unfinished import now; it is deleted at the next start");
        }
    }
}

/// Deletes a hidden, unfinished file: its rows, its row and its copy.
fn discard_file(conn: &Connection, files_dir: &std::path::Path, file_id: i64) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute("DELETE FROM import_rows WHERE file_id = ?1", [file_id])?;
    tx.execute("DELETE FROM files WHERE id = ?1 AND status = 'importing'", [file_id])?;
    tx.commit()?;
    for name in [format!("{file_id}.xlsx.part"), format!("{file_id}.xlsx")] {
        let _ = std::fs::remove_file(files_dir.join(name));
    }
    Ok(())
}

pub(super) const FILE_SELECT: &str = "SELECT f.id, f.project_id, p.name, f.file_name, f.source, f.status, f.created_at,
        f.creator, f.n_rows, f.n_good, f.report, f.remark FROM files f JOIN projects p ON p.id = f.project_id";

pub(super) fn file_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileSummary> {
    Ok(FileSummary {
        id: r.get(0)?,
        project_id: r.get(1)?,
        project_name: r.get(2)?,
        file_name: r.get(3)?,
        source: r.get(4)?,
        status: r.get(5)?,
        created_at: r.get(6)?,
        creator: r.get(7)?,
        n_rows: r.get(8)?,
        n_good: r.get(9)?,
        remark: r.get(11)?,
    })
}

impl Store {
    /// Stores an uploaded file, its good rows and its report; returns the file id.
    pub fn save_import(
        &self,
        project_id: i64,
        file_name: &str,
        bytes: &[u8],
        creator: &str,
        rows: &[GoodRow],
        report: &ImportReport,
    ) -> Result<i64, SaveImportError> {
        self.save_file(project_id, file_name, bytes, creator, rows, report, "upload", "")
    }

    /// Stores a file of any source (`upload` or `system` for generated ones) with a remark.
    #[allow(clippy::too_many_arguments)] // mirrors the file list's columns one to one
    pub fn save_file(
        &self,
        project_id: i64,
        file_name: &str,
        bytes: &[u8],
        creator: &str,
        rows: &[GoodRow],
        report: &ImportReport,
        source: &str,
        remark: &str,
    ) -> Result<i64, SaveImportError> {
        let mut file = self.begin_file(project_id, file_name, creator, source, remark)?;
        file.keep_copy(bytes)?;
        for chunk in rows.chunks(IMPORT_CHUNK_ROWS) {
            file.append(chunk)?;
        }
        file.finish(report)
    }

    /// Starts storing a file whose rows come later ([`FileImport::append`]); nothing of it is
    /// visible until [`FileImport::finish`].
    pub fn begin_file(
        &self,
        project_id: i64,
        file_name: &str,
        creator: &str,
        source: &str,
        remark: &str,
    ) -> Result<FileImport<'_>, SaveImportError> {
        // The stored rows name their fields (a project's fields change with new versions), so
        // the keys come from the project the rows were read for.
        let Some(project) = self.project(project_id)? else {
            return Err(SaveImportError::UnknownProject(project_id));
        };
        let keys = project.customer_fields.into_iter().map(|f| f.key).collect();
        let conn = self.conn();
        conn.execute(
            "INSERT INTO files (project_id, file_name, stored_path, source, status, created_at, creator, n_rows, n_good, report, remark, deleted)
             VALUES (?1, ?2, '', ?3, 'importing', ?4, ?5, 0, 0, '{}', ?6, 1)",
            params![project_id, file_name, source, now_unix(), creator, remark],
        )
        .map_err(DbError)?;
        let file_id = conn.last_insert_rowid();
        Ok(FileImport { store: self, file_id, keys, json: Vec::new(), copy: None, finished: false })
    }

    /// Deletes what imports cut short by a crash left (their hidden rows and copies).
    pub(super) fn discard_unfinished_imports(conn: &Connection, files_dir: &std::path::Path) -> rusqlite::Result<()> {
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM files WHERE status = 'importing'")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in ids {
            discard_file(conn, files_dir, id)?;
        }
        Ok(())
    }

    /// Files, newest first; only those of `project_id` if given.
    pub fn list_files(&self, project_id: Option<i64>) -> Result<Vec<FileSummary>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "{FILE_SELECT} WHERE f.deleted = 0 AND (?1 IS NULL OR f.project_id = ?1) ORDER BY f.id DESC"
        ))?;
        let rows = stmt.query_map([project_id], file_from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One file with its import report.
    pub fn file(&self, id: i64) -> Result<Option<(FileSummary, ImportReport)>, DbError> {
        let conn = self.conn();
        let found = conn
            .query_row(&format!("{FILE_SELECT} WHERE f.id = ?1 AND f.deleted = 0"), [id], |r| {
                let summary = file_from_row(r)?;
                let report: String = r.get(10)?;
                Ok((summary, report))
            })
            .optional()?;
        let Some((summary, report_json)) = found else {
            return Ok(None);
        };
        let report = serde_json::from_str(&report_json).map_err(|e| {
            DbError(rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, Box::new(e)))
        })?;
        Ok(Some((summary, report)))
    }

    /// The stored bytes of a file.
    pub fn file_bytes(&self, id: i64) -> Result<Option<Vec<u8>>, SaveImportError> {
        let stored: Option<String> = self
            .conn()
            .query_row("SELECT stored_path FROM files WHERE id = ?1 AND deleted = 0", [id], |r| r.get(0))
            .optional()
            .map_err(DbError)?;
        let Some(stored) = stored else { return Ok(None) };
        let path = self.files_dir.join(stored);
        std::fs::read(&path).map(Some).map_err(|source| SaveImportError::Io { path, source })
    }

    /// Deletes an uploaded file that was never dispatched (its batches keep their rows).
    pub fn delete_file(&self, id: i64) -> Result<bool, DbError> {
        let conn = self.conn();
        Ok(conn.execute("UPDATE files SET deleted = 1 WHERE id = ?1 AND deleted = 0", [id])? > 0)
    }

    /// Sets a file's remark (备注).
    pub fn set_file_remark(&self, id: i64, remark: &str) -> Result<bool, DbError> {
        let conn = self.conn();
        Ok(conn.execute("UPDATE files SET remark = ?2 WHERE id = ?1 AND deleted = 0", params![id, remark.trim()])? > 0)
    }

    /// A file's good rows (for filtering and exports).
    /// Values are in the order of the file's project's current fields (a field the row was
    /// not stored with is empty).
    pub fn file_rows(&self, id: i64) -> Result<Vec<GoodRow>, DbError> {
        let project_id: Option<i64> =
            self.conn().query_row("SELECT project_id FROM files WHERE id = ?1", [id], |r| r.get(0)).optional()?;
        let keys: Vec<String> = match project_id {
            Some(project_id) => {
                self.project(project_id)?.map(|p| p.customer_fields.into_iter().map(|f| f.key).collect()).unwrap_or_default()
            }
            None => Vec::new(),
        };
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT row_number, phone, fields FROM import_rows WHERE file_id = ?1 ORDER BY id")?;
        let rows = stmt
            .query_map([id], |r| {
                let fields: String = r.get(2)?;
                let stored: Vec<(String, String)> = serde_json::from_str(&fields).unwrap_or_default();
                let fields = keys
                    .iter()
                    .map(|key| stored.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_default())
                    .collect();
                Ok(GoodRow { row_number: r.get(0)?, phone: r.get(1)?, fields })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The good rows of file `id` that were dispatched to one of `sites`, each once, in file
    /// order: what a download holds for an account that sees only some of the project's
    /// sites (rows never dispatched belong to no site, so such an account sees none of them).
    pub fn file_rows_dispatched_to(&self, id: i64, sites: &[i64]) -> Result<Vec<GoodRow>, DbError> {
        let allowed: std::collections::BTreeSet<i64> = sites.iter().copied().collect();
        let dispatched: std::collections::BTreeSet<i64> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT DISTINCT br.import_row_id, b.site_id FROM batches b JOIN batch_rows br ON br.batch_id = b.id
                 WHERE b.file_id = ?1",
            )?;
            stmt.query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                .filter_map(|row| match row {
                    Ok((import_row, site)) if allowed.contains(&site) => Some(Ok(import_row)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()?
        };
        if dispatched.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT id FROM import_rows WHERE file_id = ?1 ORDER BY id")?;
            stmt.query_map([id], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        let rows = self.file_rows(id)?;
        Ok(rows.into_iter().zip(ids).filter(|(_, import_row)| dispatched.contains(import_row)).map(|(row, _)| row).collect())
    }

    /// Number of files and imported rows (for tests and the status page).
    pub fn count_files_and_rows(&self) -> Result<(i64, i64), DbError> {
        let conn = self.conn();
        let files = conn.query_row("SELECT COUNT(*) FROM files", [], |r| r.get(0))?;
        let rows = conn.query_row("SELECT COUNT(*) FROM import_rows", [], |r| r.get(0))?;
        Ok((files, rows))
    }
}

/// A row's fields as stored: `[["key","value"],…]`, the JSON of `Vec<(String, String)>`
/// that dispatch reads back, written straight into `out`.
fn fields_json(keys: &[&str], values: &FieldValues, out: &mut String) {
    out.push('[');
    for (idx, (key, value)) in keys.iter().zip(values.iter().chain(std::iter::repeat(""))).enumerate() {
        if idx > 0 {
            out.push(',');
        }
        out.push('[');
        json_string(key, out);
        out.push(',');
        json_string(value, out);
        out.push(']');
    }
    out.push(']');
}

/// `text` as a JSON string literal (RFC 8259 escapes).
fn json_string(text: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    if !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(text);
        out.push('"');
        return;
    }
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_keep_order_empties_and_failed_writes() {
        let mut builder = FieldValuesBuilder::default();
        let write = |text: &'static str| {
            move |out: &mut String| {
                out.push_str(text);
                Ok::<(), &str>(())
            }
        };
        assert_eq!(builder.push_with(write("张三")), Ok("张三"));
        assert_eq!(builder.push_with(write("")), Ok(""));
        let failing = |out: &mut String| {
            out.push_str("half");
            Err("bad")
        };
        assert_eq!(builder.push_with(failing), Err("bad"));
        assert_eq!(builder.push_with(write("A")), Ok("A"));
        let values = builder.finish();
        assert_eq!(values.iter().collect::<Vec<_>>(), vec!["张三", "", "", "A"]);
        assert_eq!((values.len(), values.get(3), values.get(4)), (4, Some("A"), None));
        assert_eq!(format!("{values:?}"), r#"["张三", "", "", "A"]"#);
        // The builder starts the next row empty.
        assert!(builder.finish().is_empty());
        assert_eq!(FieldValues::from(vec!["张三".to_string(), String::new(), String::new(), "A".into()]), values);
    }

    #[test]
    fn fields_json_matches_serde() {
        let keys = ["name", "note", "missing"];
        let values = vec!["张\"三\\".to_string(), "line\nbreak\u{1}\ttab\u{8}\u{c}\u{1f}".to_string()];
        let mut out = String::new();
        fields_json(&keys, &FieldValues::from(values.clone()), &mut out);
        let back: Vec<(String, String)> = serde_json::from_str(&out).unwrap();
        assert_eq!(
            back,
            vec![
                ("name".to_string(), values[0].clone()),
                ("note".to_string(), values[1].clone()),
                ("missing".to_string(), String::new())
            ]
        );
        let expected: Vec<(&str, &str)> = vec![("name", &values[0]), ("note", &values[1]), ("missing", "")];
        assert_eq!(out, serde_json::to_string(&expected).unwrap());
    }
}
