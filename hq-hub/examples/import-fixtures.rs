//! Writes the tricky call-list workbooks the import is tested on into
//! `hq-hub/tests/fixtures/` (run once, the files are committed; `tests/import_fixtures.rs`
//! imports each through the hub's upload route). Each is the shape a real list arrived in:
//!
//! - `scientific-text.xlsx`: a phone typed as `1.39001E+10` text, an ID number as
//!   `1.10101E+17` text and as an 18-digit number cell, a phone with a fraction;
//! - `token-twenty-digits.xlsx`: the manual's dial-token sheet, with a 20-digit token that
//!   became a number cell (`98765432109876540000`), its scientific text, a 19-digit token,
//!   an apostrophe and lower case;
//! - `apostrophe.xlsx`: `'13800138000` and `'00123` written into the values;
//! - `title-row.xlsx`: a merged title row and an export-time row above the header;
//! - `data-on-later-sheet.xlsx`: an empty first sheet, an instructions sheet, then the list;
//! - `over-long-cell.xlsx`: a 1,500-character remark.
//!
//! `cargo run -p hq-hub --example import-fixtures [DIR]`

use std::path::{Path, PathBuf};

use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

/// A cell to write: text (shared string) or a number cell.
enum Cell<'a> {
    Text(&'a str),
    Number(f64),
    Blank,
}

use Cell::{Blank, Number, Text};

fn write_rows(sheet: &mut Worksheet, first_row: u32, rows: &[&[Cell<'_>]]) -> Result<(), XlsxError> {
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let (r, c) = (first_row + r as u32, c as u16);
            match cell {
                Text(text) => {
                    sheet.write_string(r, c, *text)?;
                }
                Number(value) => {
                    sheet.write_number(r, c, *value)?;
                }
                Blank => {}
            }
        }
    }
    Ok(())
}

/// A workbook with a fixed creation time, so that writing it again gives the same bytes.
fn workbook() -> Result<Workbook, XlsxError> {
    let mut workbook = Workbook::new();
    let created = ExcelDateTime::from_ymd(2024, 5, 31)?;
    workbook.set_properties(&DocProperties::new().set_creation_datetime(&created));
    Ok(workbook)
}

fn save(mut workbook: Workbook, dir: &Path, name: &str) -> Result<(), XlsxError> {
    let path = dir.join(name);
    workbook.save(&path)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn main() -> Result<(), XlsxError> {
    let dir = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    std::fs::create_dir_all(&dir)?;

    let mut book = workbook()?;
    write_rows(
        book.add_worksheet(),
        0,
        &[
            &[Text("手机号码"), Text("姓名"), Text("证件号")],
            &[Text("13800138000"), Text("张三"), Text("110101199001011234")],
            &[Text("1.39001E+10"), Text("李四"), Blank],
            &[Number(13900139000.0), Text("王五"), Text("1.10101E+17")],
            &[Text("13700137000"), Text("赵六"), Number(110101199001011234.0)],
            &[Number(13600136000.5), Text("钱七"), Blank],
            &[Number(13500135000.0), Text("孙八"), Text("110101199001015678")],
        ],
    )?;
    save(book, &dir, "scientific-text.xlsx")?;

    let mut book = workbook()?;
    write_rows(
        book.add_worksheet(),
        0,
        &[
            &[Text("电话号"), Text("归属县市"), Text("套餐名称")],
            &[Text("A207A92E2B93892F5F4C"), Number(301.0), Text("神州行创业卡2011版2型")],
            &[Number(98765432109876543210.0), Number(301.0), Text("神州行创业卡10版4号")],
            &[Text("9.87654E+19"), Number(301.0), Text("神州行家园卡11版3号")],
            &[Text("F84C0F0BD048800BC62"), Number(302.0), Text("神州行家园卡11版3号")],
            &[Text("'4490871F819F2684D41F"), Number(302.0), Text("神州行家园卡11版3号")],
            &[Text("d387afc9826293e0368f"), Number(305.0), Text("神州行家园卡11版3号")],
        ],
    )?;
    save(book, &dir, "token-twenty-digits.xlsx")?;

    let mut book = workbook()?;
    write_rows(
        book.add_worksheet(),
        0,
        &[
            &[Text("手机号码"), Text("姓名"), Text("客户编号")],
            &[Text("'13800138000"), Text("张三"), Text("'00123")],
            &[Text("＇13900139000"), Text("'李四"), Text("00456")],
        ],
    )?;
    save(book, &dir, "apostrophe.xlsx")?;

    let mut book = workbook()?;
    let sheet = book.add_worksheet();
    sheet.merge_range(0, 0, 0, 2, "2024年5月 客户电话名单", &Format::new().set_bold())?;
    write_rows(
        sheet,
        1,
        &[
            &[Text("导出时间：2024-05-31 10:00")],
            &[],
            &[Text("姓名"), Text("手机号码"), Text("客户编号")],
            &[Text("张三"), Text("13800138000"), Text("A001")],
            &[Text("李四"), Number(13900139000.0), Text("A002")],
        ],
    )?;
    save(book, &dir, "title-row.xlsx")?;

    let mut book = workbook()?;
    book.add_worksheet();
    write_rows(book.add_worksheet().set_name("说明")?, 0, &[&[Text("请在“客户名单”工作表填写号码，每行一个客户")]])?;
    write_rows(
        book.add_worksheet().set_name("客户名单")?,
        0,
        &[&[Text("手机号码"), Text("姓名")], &[Text("13800138000"), Text("张三")], &[Text("13900139000"), Text("李四")]],
    )?;
    save(book, &dir, "data-on-later-sheet.xlsx")?;

    let mut book = workbook()?;
    let long = "客户反映".repeat(375);
    write_rows(
        book.add_worksheet(),
        0,
        &[
            &[Text("手机号码"), Text("姓名"), Text("备注")],
            &[Text("13800138000"), Text("张三"), Text(&long)],
            &[Text("13900139000"), Text("李四"), Text("老客户")],
        ],
    )?;
    save(book, &dir, "over-long-cell.xlsx")?;
    Ok(())
}
