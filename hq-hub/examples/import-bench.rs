//! Import benchmark: a 1,000,000-row × 10-column Chinese call list (2 % of phones stored as
//! numbers, 1 % malformed, a shared-string table as Excel saves it) read three ways in the
//! same run, each in its own process so that peak RSS is its own:
//!
//! - `ours`: the hub's import as the console runs it, minus HTTP: `import_xlsx` (parse,
//!   normalise, validate, duplicate check, while a second thread stores the good rows and
//!   the file copy into a fresh hub store on disk: SQLite, WAL, synchronous=FULL), and the
//!   bad-rows sheet;
//! - `parse`: our parse alone, the good rows kept in memory (what storing adds is the
//!   difference);
//! - `calamine`: calamine's bare streaming cells reader, touching every cell;
//! - `openpyxl`: openpyxl in read-only mode, values only (python3 with openpyxl installed;
//!   pass its interpreter with `--python`, default `target/schemathesis-venv/bin/python`).
//!
//! `cargo run --release -p hq-hub --example import-bench -- [--rows N] [--python PATH] [--no-openpyxl]`
//! prints one line per reader (wall seconds, peak RSS MB) and the ratios.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use calamine::{Reader, Xlsx};

use hq_hub::import::{import_xlsx, parse_xlsx_with, ParseOptions};
use hq_hub::store::{FieldSpec, NewProject, PhoneMode, ProjectSettings, Store};

const HEADERS: [&str; 10] = ["手机号码", "客户姓名", "地市", "套餐名称", "档次", "指定团队", "备注", "证件尾号", "月消费", "入网日期"];

/// Peak resident set size of this process, MB (Linux `VmHWM`).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU seconds (user + system, every thread) this process used so far: unlike wall time,
/// it does not grow when other work shares the machine's cores.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th
    // and 13th, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0
}

fn generate(path: &Path, rows: u32) -> anyhow::Result<()> {
    let surnames = ["张", "王", "李", "赵", "陈", "刘", "杨", "黄", "周", "吴"];
    let given = ["伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "军"];
    let cities = ["杭州市", "宁波市", "温州市", "嘉兴市", "湖州市", "绍兴市", "金华市", "衢州市", "舟山市", "台州市", "丽水市"];
    let plans = ["5G畅享129元", "5G畅享169元", "融合宽带199元", "流量包30元", "亲情套餐59元"];
    let levels = ["A", "B", "C", "D"];
    let teams = ["一组", "二组", "三组", "四组", "五组"];
    let notes = ["", "老客户", "有宽带", "夜间勿扰", "已办副卡"];
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (col, header) in HEADERS.iter().enumerate() {
        sheet.write_string(0, col as u16, *header)?;
    }
    for row in 1..=rows {
        let n = row as u64;
        // Distinct mobile numbers 130… to 199…
        let phone = 13_000_000_000u64 + n * 7919 % 6_999_999_999;
        match row % 100 {
            // 2 %: the phone typed as a number (Excel shows 1.3E+10).
            0 | 50 => sheet.write_number(row, 0, phone as f64)?,
            // 1 %: malformed.
            7 => sheet.write_string(row, 0, format!("1{}x", n % 1000))?,
            _ => sheet.write_string(row, 0, phone.to_string())?,
        };
        let pick = |options: &[&'static str], salt: u64| options[((n * 31 + salt) % options.len() as u64) as usize];
        sheet.write_string(row, 1, format!("{}{}", pick(&surnames, 1), pick(&given, 7)))?;
        sheet.write_string(row, 2, pick(&cities, 3))?;
        sheet.write_string(row, 3, pick(&plans, 5))?;
        sheet.write_string(row, 4, pick(&levels, 11))?;
        sheet.write_string(row, 5, pick(&teams, 13))?;
        sheet.write_string(row, 6, pick(&notes, 17))?;
        sheet.write_string(row, 7, format!("{:04}", n % 10_000))?;
        sheet.write_number(row, 8, (n % 300) as f64 + 0.5)?;
        sheet.write_string(row, 9, format!("20{:02}-{:02}-{:02}", 10 + n % 15, 1 + n % 12, 1 + n % 28))?;
    }
    workbook.save(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The sub-project the list is imported into: one text field per non-phone column.
fn new_project(category_id: i64) -> NewProject {
    NewProject {
        category_id,
        name: "基准".into(),
        template_id: None,
        script: String::new(),
        hide_middle_digits: true,
        customer_fields: HEADERS[1..].iter().enumerate().map(|(i, h)| FieldSpec::text(&format!("f{i}"), h)).collect(),
        record_fields: Vec::new(),
        settings: ProjectSettings::default(),
        phone_mode: PhoneMode::Number,
    }
}

/// One reader over the file; prints `RESULT seconds peak_mb detail`.
fn run_one(mode: &str, path: &Path) -> anyhow::Result<()> {
    let start = Instant::now();
    let detail = match mode {
        "ours" => {
            let data = tempfile::tempdir_in(path.parent().context("file has a directory")?)?;
            let store = Store::open(data.path())?;
            let category = store.create_category("套餐类")?;
            let project_id = store.create_project(&new_project(category))?;
            let project = store.project(project_id)?.context("project just created")?;
            let bytes = std::fs::read(path)?;
            let (file_id, report) = import_xlsx(&store, &project, "bench.xlsx", &bytes, "bench", &ParseOptions::default())?;
            let stored_s = start.elapsed().as_secs_f64();
            let sheet = hq_hub::export::bad_rows_xlsx(&report.bad, false)?;
            let (_, stored_rows) = store.count_files_and_rows()?;
            anyhow::ensure!(stored_rows as u64 == report.n_good, "stored {stored_rows} rows of {}", report.n_good);
            format!(
                "good {} bad {} stored in file {file_id}; parsed and stored {stored_s:.2} s, report {} bytes",
                report.n_good,
                report.bad.len(),
                sheet.len()
            )
        }
        "parse" => {
            // The parse alone, rows kept in memory: what storing adds is ours − this.
            let data = tempfile::tempdir_in(path.parent().context("file has a directory")?)?;
            let store = Store::open(data.path())?;
            let category = store.create_category("套餐类")?;
            let project_id = store.create_project(&new_project(category))?;
            let project = store.project(project_id)?.context("project just created")?;
            let bytes = std::fs::read(path)?;
            let parsed = parse_xlsx_with("bench.xlsx", &bytes, &project, &ParseOptions::default())?;
            format!("good {} bad {}", parsed.rows.len(), parsed.report.bad.len())
        }
        "calamine" => {
            let bytes = std::fs::read(path)?;
            let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes))?;
            let name = workbook.sheet_names().first().cloned().context("no sheet")?;
            let mut reader = workbook.worksheet_cells_reader(&name)?;
            let (mut cells, mut chars) = (0u64, 0u64);
            while let Some(cell) = reader.next_cell()? {
                cells += 1;
                if let calamine::DataRef::SharedString(s) = cell.get_value() {
                    chars += s.len() as u64;
                }
            }
            format!("cells {cells} shared-string bytes {chars}")
        }
        other => bail!("unknown mode {other}"),
    };
    println!("RESULT {:.2} {:.0} cpu {:.2} s; {detail}", start.elapsed().as_secs_f64(), peak_rss_mb(), cpu_seconds());
    Ok(())
}

const OPENPYXL: &str = r#"
import sys, time, resource
start = time.time()
import openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=True, data_only=True)
cells = 0
for row in wb.worksheets[0].iter_rows(values_only=True):
    cells += sum(1 for v in row if v is not None)
print("RESULT %.2f %.0f cells %d" % (time.time() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, cells))
"#;

/// Runs a child and returns (seconds, peak MB, detail) from its RESULT line.
fn measure(mut command: Command) -> anyhow::Result<(f64, f64, String)> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("{command:?} failed: {}{}", stdout, String::from_utf8_lossy(&output.stderr));
    }
    let line = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).context("no RESULT line")?;
    let mut parts = line.splitn(3, ' ');
    let seconds: f64 = parts.next().unwrap_or_default().parse()?;
    let peak: f64 = parts.next().unwrap_or_default().parse()?;
    Ok((seconds, peak, parts.next().unwrap_or_default().to_string()))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--child" {
        // `RUST_LOG=hq_hub=debug` shows when the parse and the writer finish.
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
        return run_one(&args[2], Path::new(&args[3]));
    }
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let rows: u32 = value("--rows").map(|v| v.parse()).transpose()?.unwrap_or(1_000_000);
    let python = value("--python").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/schemathesis-venv/bin/python"));
    let dir = tempfile::tempdir()?;
    // `--file PATH`: keep the generated workbook there (and reuse it if it exists), e.g. to
    // profile one reader with `--child ours PATH`.
    let path = value("--file").map(PathBuf::from).unwrap_or_else(|| dir.path().join("calls.xlsx"));
    let started = Instant::now();
    if !path.exists() {
        generate(&path, rows)?;
    }
    let size = std::fs::metadata(&path)?.len();
    println!("generated {rows} rows × 10 columns, {:.1} MB, in {:.1} s", size as f64 / 1e6, started.elapsed().as_secs_f64());

    let exe = std::env::current_exe()?;
    let child = |mode: &str| {
        let mut command = Command::new(&exe);
        command.arg("--child").arg(mode).arg(&path);
        command
    };
    let ours = measure(child("ours"))?;
    let calamine = measure(child("calamine"))?;
    let parse = measure(child("parse"))?;
    // `--no-openpyxl`: the Python reader takes ten times as long as the others.
    let openpyxl = if args.iter().any(|a| a == "--no-openpyxl") {
        None
    } else {
        let mut py = Command::new(&python);
        py.arg("-c").arg(OPENPYXL).arg(&path);
        Some(measure(py).context("openpyxl (pip install openpyxl into the venv, or pass --python)")?)
    };
    let mut readers = vec![("ours (import+store+report)", &ours), ("ours, parse only", &parse), ("calamine cells reader", &calamine)];
    if let Some(openpyxl) = &openpyxl {
        readers.push(("openpyxl read-only", openpyxl));
    }
    for (name, (s, mb, detail)) in readers {
        println!("{name:<28} {s:>7.2} s  {mb:>6.0} MB  {detail}");
    }
    print!("ours / calamine = {:.2}×   parse only / calamine = {:.2}×", ours.0 / calamine.0, parse.0 / calamine.0);
    match &openpyxl {
        Some(openpyxl) => println!("   openpyxl / ours = {:.2}×", openpyxl.0 / ours.0),
        None => println!(),
    }
    Ok(())
}
