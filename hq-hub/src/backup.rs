//! `hq-hub backup --to DIR` and `hq-hub restore --from DIR`.
//!
//! A backup, taken while the hub runs: the store (`hub.sqlite3`, SQLite's online backup),
//! the link's CA (`ca/`: without it no enrolled box trusts a rebuilt hub) and the
//! configuration file when one is given, with a manifest (`web_guard::backup`). Uploaded
//! spreadsheets and recordings are files of their own, kept by the server's file backup.
//! A restore puts them back into a data directory (the hub stopped), moving what it
//! replaces aside into `replaced-<time>/`.

use std::path::{Path, PathBuf};

use web_guard::backup::{self, BackupError};

use crate::store::Store;

/// The manifest's `kind` of a hub's backup.
pub const KIND: &str = "HQ hub";
const DATABASE: &str = "hub.sqlite3";
const CA: &str = "ca";
const CONFIG: &str = "hub.toml";

/// Backs up the hub whose data directory is `data_dir` (and its configuration file, if
/// given) into the new directory `to`.
pub fn backup(data_dir: &Path, config: Option<&Path>, to: &Path) -> Result<(), BackupError> {
    let database = data_dir.join(DATABASE);
    if !database.exists() {
        return Err(BackupError::Io {
            path: database,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no hub store here; give the hub's data directory (--data)"),
        });
    }
    backup::create_target(to)?;
    backup::copy_database(&database, &to.join(DATABASE))?;
    if data_dir.join(CA).exists() {
        backup::copy_tree(&data_dir.join(CA), &to.join(CA))?;
    }
    if let Some(config) = config {
        backup::copy_tree(config, &to.join(CONFIG))?;
    }
    let schema = rusqlite::Connection::open(to.join(DATABASE))
        .and_then(|conn| conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)))
        .map_err(|source| BackupError::Sqlite { path: to.join(DATABASE), source })?;
    backup::write_manifest(to, KIND, schema, serde_json::json!({ "software": env!("CARGO_PKG_VERSION") }))
}

/// Restores the backup in `from` into `data_dir` (the hub stopped); the configuration file
/// it holds, if any, is written to `config` when given. Returns where the replaced files went.
pub fn restore(from: &Path, data_dir: &Path, config: Option<&Path>) -> Result<Option<PathBuf>, BackupError> {
    backup::check_backup(from, KIND, DATABASE, Store::schema_version())?;
    std::fs::create_dir_all(data_dir).map_err(|source| BackupError::Io { path: data_dir.to_path_buf(), source })?;
    let aside = backup::set_aside(data_dir, &[DATABASE, CA])?;
    backup::copy_tree(&from.join(DATABASE), &data_dir.join(DATABASE))?;
    if from.join(CA).exists() {
        backup::copy_tree(&from.join(CA), &data_dir.join(CA))?;
    }
    if let (Some(config), true) = (config, from.join(CONFIG).exists()) {
        backup::copy_tree(&from.join(CONFIG), config)?;
    }
    Ok(aside)
}
