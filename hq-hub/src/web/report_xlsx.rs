//! A report as an `.xlsx`: the same table the preview shows (words, not keys; days in the
//! report's zone, China time by default), then a native Excel chart beside it drawing the same
//! series as the console's chart, so the sheet is read the way the page is.
//!
//! Layout: row 1 the title, row 2 the range and the export time, row 4 the headers, the rows
//! below, the total last. Counts are numbers and ratios are numbers formatted as percentages,
//! so the sheet sums and sorts.

use rust_xlsxwriter::{Chart, ChartType, Format, Workbook, XlsxError};

use super::report_run::ReportView;
use super::{format_time, Tr};

/// The sheet's name (Excel allows at most 31 characters and no `[]:*?/\`).
const SHEET: &str = "报表";
/// The header row (0-based).
const HEADER_ROW: u32 = 3;

/// The workbook of `view`, exported at `now` (unix seconds).
pub fn report_xlsx(tr: Tr, view: &ReportView, now: i64) -> Result<Vec<u8>, XlsxError> {
    let t = tr.text();
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let percent = Format::new().set_num_format("0.00%");
    let sheet = workbook.add_worksheet();
    sheet.set_name(SHEET)?;
    sheet.write_with_format(0, 0, view.title.as_str(), &Format::new().set_bold().set_font_size(14))?;
    sheet.write(1, 0, format!("{}：{}    {}：{}", t.reports_time, view.range, t.reports_exported_at, format_time(now)))?;
    for (col, header) in view.headers.iter().enumerate() {
        sheet.write_with_format(HEADER_ROW, col as u16, header.as_str(), &bold)?;
        sheet.set_column_width(col as u16, if col < view.tag_count { 22 } else { 14 })?;
    }
    for (line, row) in (HEADER_ROW + 1..).zip(view.rows.iter().chain(std::iter::once(&view.total))) {
        for (col, label) in row.labels.iter().enumerate() {
            sheet.write(line, col as u16, label.as_str())?;
        }
        for (i, value) in row.values.iter().enumerate() {
            let col = (view.tag_count + i) as u16;
            match (value, view.ratio.get(i).copied().unwrap_or(false)) {
                (Some(v), true) => sheet.write_with_format(line, col, *v, &percent)?,
                (Some(v), false) => sheet.write(line, col, *v)?,
                (None, _) => sheet.write(line, col, "")?,
            };
        }
    }
    if !view.rows.is_empty() && view.tag_count > 0 && !view.chart.series.is_empty() {
        let chart = chart(view)?;
        sheet.insert_chart(HEADER_ROW, (view.headers.len() + 1) as u16, &chart)?;
    }
    workbook.save_to_buffer()
}

/// Bars per team / agent / project, a line over hours or days: the rows (not the total) of
/// the chart's series, categories from the first tag's column.
fn chart(view: &ReportView) -> Result<Chart, XlsxError> {
    let kind = if view.chart.kind == "line" { ChartType::Line } else { ChartType::Column };
    let mut chart = Chart::new(kind);
    chart.title().set_name(view.title.as_str());
    let first = HEADER_ROW + 1;
    let last = HEADER_ROW + view.rows.len() as u32;
    let label_col = (view.tag_count - 1) as u16;
    for &i in &view.chart.series {
        let col = (view.tag_count + i) as u16;
        chart
            .add_series()
            .set_name((SHEET, HEADER_ROW, col))
            .set_categories((SHEET, first, view.chart.label_from as u16, last, label_col))
            .set_values((SHEET, first, col, last, col));
    }
    chart.set_width(640).set_height(360);
    Ok(chart)
}
