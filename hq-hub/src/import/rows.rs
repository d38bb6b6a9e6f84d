//! One data row, judged ([`judge_row`], pure: the row's cells, the header and the project
//! in, the row's verdict out), and the parse's running state over the rows ([`RowState`]:
//! the row cap, repeats of a number, where the good rows go).

use std::collections::HashMap;

use calamine::DataRef;

use super::cells::{cut_point, is_blank, phone_from_cell, token_from_cell, write_cell, CellError};
use super::header::Header;
use super::{ImportError, Limits, ParseOptions, MAX_FIELD_CHARS};
use crate::phone;
use crate::store::{BadRow, FieldValuesBuilder, GoodRow, PhoneMode, Project};

/// Where the parse puts the good rows.
pub(super) trait RowSink {
    /// The sheet announces about `rows` data rows (a hint for reserving).
    fn announced(&mut self, rows: usize);
    /// A good row, as soon as it is judged.
    fn keep(&mut self, row: GoodRow);
}

/// Kept in memory (the filter's re-read, tests).
impl RowSink for Vec<GoodRow> {
    fn announced(&mut self, rows: usize) {
        // Reserve, so that the kept rows are not copied over and over while the vector grows.
        self.reserve(rows);
    }

    fn keep(&mut self, row: GoodRow) {
        self.push(row);
    }
}

/// One data row, judged.
#[derive(Debug)]
pub(super) enum Judged {
    /// Every cell is blank: not a data row (not counted, not reported).
    Blank,
    /// Worth keeping (if its number is not a repeat), with warnings about what was changed.
    Keep { phone: String, warnings: Vec<BadRow> },
    /// Every reason it is not kept.
    Reject(Vec<BadRow>),
}

/// Judges one row under the header for the project: blank, or the phone cell then each
/// custom field (whose values go into `values`, a reused buffer: the caller takes them when
/// the row is kept). Whether a kept number repeats an earlier row is decided across rows,
/// by [`RowState::data_row`].
pub(super) fn judge_row(
    row_number: u32,
    cells: &[DataRef<'_>],
    head: &Header,
    project: &Project,
    limits: Limits,
    values: &mut FieldValuesBuilder,
) -> Judged {
    if cells.iter().all(is_blank) {
        return Judged::Blank;
    }
    let empty = DataRef::Empty;
    let mut problems: Vec<BadRow> = Vec::new();
    let mut warnings: Vec<BadRow> = Vec::new();
    let cell = cells.get(head.phone_col).unwrap_or(&empty);
    let phone = match project.phone_mode {
        PhoneMode::Number => phone_from_cell(cell),
        PhoneMode::Token => token_from_cell(cell, limits.token_length),
    };
    let phone = match phone {
        Ok(number) => Some(number),
        Err(err) => {
            problems.push(err.bad_row(row_number, &head.headers[head.phone_col]));
            None
        }
    };
    for (field, column) in project.customer_fields.iter().zip(&head.field_columns) {
        let Some(column) = column else {
            let _ = values.push_with(|_| Ok::<(), ()>(()));
            continue;
        };
        let header_text = &head.headers[*column];
        let mut cut_from = None;
        let written = values.push_with(|out| {
            let start = out.len();
            write_cell(cells.get(*column).unwrap_or(&empty), out)?;
            if let Some((cut, chars)) = cut_point(&out[start..], MAX_FIELD_CHARS) {
                out.truncate(start + cut);
                cut_from = Some(chars);
            }
            Ok::<(), CellError>(())
        });
        let value = match written {
            Ok(value) => value,
            Err(err) => {
                problems.push(err.bad_row(row_number, header_text));
                continue;
            }
        };
        if let Err((reason, reason_zh)) = field.check_value(value) {
            problems.push(BadRow { row: row_number, column: header_text.clone(), reason, reason_zh });
            continue;
        }
        if let Some(chars) = cut_from {
            warnings.push(BadRow {
                row: row_number,
                column: header_text.clone(),
                reason: format!("the value has {chars} characters, more than the {MAX_FIELD_CHARS} a field holds: it was cut to its first {MAX_FIELD_CHARS}"),
                reason_zh: format!("内容有 {chars} 个字符，超过字段上限 {MAX_FIELD_CHARS}：已截断为前 {MAX_FIELD_CHARS} 个字符"),
            });
        }
    }
    match phone {
        Some(phone) if problems.is_empty() => Judged::Keep { phone, warnings },
        _ => Judged::Reject(problems),
    }
}

/// Whether `n_rows` data rows are past the cap.
pub(super) fn over_cap(n_rows: u64, max_rows: usize) -> bool {
    n_rows > max_rows as u64
}

/// The parse's running state over the data rows.
pub(super) struct RowState<'s> {
    pub(super) sink: &'s mut dyn RowSink,
    pub(super) n_good: u64,
    pub(super) n_rows: u64,
    pub(super) bad: Vec<BadRow>,
    pub(super) warnings: Vec<BadRow>,
    // First row of each number: normalised numbers are digits, keyed as one u64
    // ([`phone::number_key`]); dial tokens (too long for that) by their text.
    pub(super) first_seen: HashMap<u64, u32>,
    pub(super) first_seen_tokens: HashMap<String, u32>,
    // Blank rows since the last row with data: at the end, the trailing empty rows.
    pub(super) blank_run: u64,
    pub(super) total: u64,
    pub(super) values: FieldValuesBuilder,
}

impl RowState<'_> {
    /// One data row under `head`.
    pub(super) fn data_row(&mut self, index: u32, row: &[DataRef<'_>], head: &Header, project: &Project, limits: Limits, options: &ParseOptions<'_>) -> Result<(), ImportError> {
        let row_number = index + 1;
        let judged = judge_row(row_number, row, head, project, limits, &mut self.values);
        if let Judged::Blank = judged {
            self.blank_run += 1;
            return Ok(());
        }
        // Rows missing from the sheet's XML between two data rows are blank too.
        self.blank_run = 0;
        self.n_rows += 1;
        if over_cap(self.n_rows, limits.max_rows) {
            return Err(ImportError::TooManyRows { n_rows: (self.total as usize).max(self.n_rows as usize), max: limits.max_rows });
        }
        if let Some(progress) = options.progress
            && self.n_rows.is_multiple_of(5000)
        {
            progress(u64::from(index + 1 - head.row_number), self.total);
        }
        let (phone, warnings) = match judged {
            Judged::Keep { phone, warnings } => (phone, warnings),
            Judged::Blank => return Ok(()),
            Judged::Reject(problems) => {
                self.values.finish();
                self.bad.extend(problems);
                return Ok(());
            }
        };
        let fields = self.values.finish();
        // The number's first row, recorded now if this row is the first (one hash per row:
        // only a row without other problems claims its number).
        let first = match phone::number_key(&phone) {
            Some(key) => *self.first_seen.entry(key).or_insert(row_number),
            None => *self.first_seen_tokens.entry(phone.clone()).or_insert(row_number),
        };
        if first != row_number {
            self.bad.push(BadRow {
                row: row_number,
                column: head.headers[head.phone_col].clone(),
                reason: format!("{phone} repeats row {first}: the number is imported once, delete this row"),
                reason_zh: format!("{phone} 与第 {first} 行重复：同一号码只导入一次，请删除该行"),
            });
            return Ok(());
        }
        self.n_good += 1;
        self.warnings.extend(warnings);
        self.sink.keep(GoodRow { row_number, phone, fields });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use calamine::Data;
    use expect_test::{expect, Expect};

    use super::*;
    use crate::import::cells::cell_ref;
    use crate::import::header::read_header;
    use crate::import::tests::{project, text_rows};
    use crate::import::{MAX_ROWS, ParseOptions};
    use crate::store::DEFAULT_TOKEN_LENGTH;

    /// Each row judged under the header `header` for `project` (tokens of 20): what is
    /// stored, or every reason it is not, and the warnings.
    fn check_rows(project: &Project, header: &[&str], rows: &[Vec<Data>], expect: Expect) {
        let header: Vec<DataRef<'_>> = header.iter().map(|h| DataRef::SharedString(h)).collect();
        let head = read_header(&header, 1, "Sheet1", project, &ParseOptions::default()).unwrap();
        let limits = Limits { max_rows: MAX_ROWS, token_length: DEFAULT_TOKEN_LENGTH };
        let mut values = FieldValuesBuilder::default();
        let mut out = String::new();
        for (idx, row) in rows.iter().enumerate() {
            let cells: Vec<DataRef<'_>> = row.iter().map(cell_ref).collect();
            let row_number = idx as u32 + 2;
            match judge_row(row_number, &cells, &head, project, limits, &mut values) {
                Judged::Keep { phone, warnings } => {
                    let fields: Vec<String> = values
                        .finish()
                        .iter()
                        .map(|v| match v.chars().count() {
                            n if n > 20 => format!("{}…({n} chars)", v.chars().take(2).collect::<String>()),
                            _ => v.to_string(),
                        })
                        .collect();
                    out.push_str(&format!("row {row_number}: keep {phone} {fields:?}\n"));
                    for w in warnings {
                        out.push_str(&format!("  warn {} {}: {} / {}\n", w.row, w.column, w.reason, w.reason_zh));
                    }
                }
                Judged::Blank => out.push_str(&format!("row {row_number}: blank\n")),
                Judged::Reject(problems) => {
                    values.finish();
                    for p in problems {
                        out.push_str(&format!("row {row_number}: reject {} {}: {}\n", p.row, p.column, p.reason));
                    }
                }
            }
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn rows_are_kept_or_refused_whole() {
        let mut rows = text_rows(&[&["'13800138000", "'00123", "A"], &["1.39001E+10", "张三", "A"], &["13900139000", "1.23457E+17", "B"], &["", "", "A"]]);
        rows.push(vec![Data::Float(13700137000.0), Data::Float(110101199001011234.0), Data::String("A".into())]);
        rows.push(vec![Data::Float(13600136000.0), Data::String("长".repeat(MAX_FIELD_CHARS + 500)), Data::String("B".into())]);
        check_rows(
            &project(),
            &["手机号码", "姓名", "level"],
            &rows,
            expect![[r#"
                row 2: keep 13800138000 ["00123", "A"]
                row 3: reject 3 手机号码: "1.39001E+10" is in scientific notation: precision lost in Excel (only the digits shown were kept, the rest are gone); format the column as text and type the full number
                row 4: reject 4 姓名: "1.23457E+17" is in scientific notation: precision lost in Excel (only the digits shown were kept); format the column as text and type the full value
                row 5: reject 5 手机号码: phone is empty: fill in the number or delete the row
                row 6: reject 6 姓名: the number 110101199001011230 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again
                row 7: keep 13600136000 ["长长…(1000 chars)", "B"]
                  warn 7 姓名: the value has 1500 characters, more than the 1000 a field holds: it was cut to its first 1000 / 内容有 1500 个字符，超过字段上限 1000：已截断为前 1000 个字符
            "#]],
        );
    }

    #[test]
    fn token_rows() {
        let mut project = project();
        project.phone_mode = PhoneMode::Token;
        let mut rows = text_rows(&[&["A207A92E2B93892F5F4C", "甲", "A"], &["9.87654E+19", "乙", "A"]]);
        rows.push(vec![Data::Float(98765432109876543210.0), Data::String("丙".into()), Data::String("A".into())]);
        check_rows(
            &project,
            &["电话号", "姓名", "level"],
            &rows,
            expect![[r#"
                row 2: keep A207A92E2B93892F5F4C ["甲", "A"]
                row 3: reject 3 电话号: "9.87654E+19" is in scientific notation: precision lost in Excel (only the digits shown were kept); format the column as text and type the full value
                row 4: reject 4 电话号: the number 98765432109876540000 has more than 15 significant digits: precision lost in Excel (it keeps 15, so these digits are not the ones typed); format the column as text and type the value again
            "#]],
        );
    }

    #[test]
    fn blank_rows_are_passed_over_and_a_single_value_is_a_row() {
        let mut rows = text_rows(&[&["", "", ""], &[" ", "", ""], &["", "", "A"], &[]]);
        rows.push(vec![Data::Empty, Data::String(String::new()), Data::Empty]);
        check_rows(
            &project(),
            &["手机号码", "姓名", "level"],
            &rows,
            expect![[r#"
                row 2: blank
                row 3: blank
                row 4: reject 4 手机号码: phone is empty: fill in the number or delete the row
                row 5: blank
                row 6: blank
            "#]],
        );
    }
}
