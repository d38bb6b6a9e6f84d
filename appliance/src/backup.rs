//! `appliance backup --to DIR` and `appliance restore --from DIR`.
//!
//! A backup, taken while the box runs: the store (SQLite's online backup), the site
//! identity (key, certificate, HQ's CA, the hub's address) and `appliance.toml`, with a
//! manifest (`web_guard::backup`). Recordings are not in it: those HQ has are safe there,
//! and a restored box uploads the ones it still has on its disk.
//!
//! A restore puts them back into a data directory (the service stopped), moving what it
//! replaces aside into `replaced-<time>/`, then opens the store (migrating an older backup)
//! and marks it restored (`store::mark_restored`), so its next connection finds its place
//! at HQ without reusing a number HQ already holds.

use std::path::{Path, PathBuf};

use web_guard::backup::{self, BackupError};

use crate::store::{self, Store};
use crate::sync::identity_dir;

/// The manifest's `kind` of a box's backup.
pub const KIND: &str = "site appliance";
const DATABASE: &str = "site.db";
const CONFIG: &str = "appliance.toml";
const IDENTITY: &str = "identity";

/// What a backup or restore did, for the command to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The outbox seq the store stood at.
    pub outbox_seq: i64,
    /// Whether the site identity was included.
    pub identity: bool,
    /// Where a restore moved what it replaced.
    pub set_aside: Option<PathBuf>,
}

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("{0}: no store here; give the box's data directory (--data)")]
    NoStore(PathBuf),
    #[error("opening the restored store: {0}")]
    Open(#[from] store::OpenError),
    #[error("marking the restored store: {0}")]
    Mark(String),
}

/// Backs up the box whose data directory is `data_dir` into the new directory `to`.
pub fn backup(data_dir: &Path, to: &Path) -> Result<Done, Error> {
    let database = data_dir.join(DATABASE);
    if !database.exists() {
        return Err(Error::NoStore(data_dir.to_path_buf()));
    }
    backup::create_target(to)?;
    backup::copy_database(&database, &to.join(DATABASE))?;
    let identity = identity_dir(data_dir).exists();
    if identity {
        backup::copy_tree(&identity_dir(data_dir), &to.join(IDENTITY))?;
    }
    if data_dir.join(CONFIG).exists() {
        backup::copy_tree(&data_dir.join(CONFIG), &to.join(CONFIG))?;
    }
    let copy = rusqlite::Connection::open(to.join(DATABASE)).map_err(|e| Error::Mark(e.to_string()))?;
    let (schema, outbox_seq): (i64, i64) = copy
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version),
                    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| Error::Mark(e.to_string()))?;
    let fields = serde_json::json!({ "software": env!("CARGO_PKG_VERSION"), "outbox_seq": outbox_seq, "identity": identity });
    backup::write_manifest(to, KIND, schema, fields)?;
    Ok(Done { outbox_seq, identity, set_aside: None })
}

/// Restores the backup in `from` into the data directory `data_dir` (the box stopped).
pub fn restore(from: &Path, data_dir: &Path) -> Result<Done, Error> {
    backup::check_backup(from, KIND, DATABASE, Store::schema_version())?;
    std::fs::create_dir_all(data_dir).map_err(|source| BackupError::Io { path: data_dir.to_path_buf(), source })?;
    let set_aside = backup::set_aside(data_dir, &[DATABASE, IDENTITY, CONFIG])?;
    backup::copy_tree(&from.join(DATABASE), &data_dir.join(DATABASE))?;
    let identity = from.join(IDENTITY).exists();
    if identity {
        backup::copy_tree(&from.join(IDENTITY), &identity_dir(data_dir))?;
    }
    if from.join(CONFIG).exists() {
        backup::copy_tree(&from.join(CONFIG), &data_dir.join(CONFIG))?;
    }
    // Migrate a backup of an older release, then mark it.
    drop(Store::open(data_dir)?);
    let mut conn = rusqlite::Connection::open(data_dir.join(DATABASE)).map_err(|e| Error::Mark(e.to_string()))?;
    let outbox_seq = store::mark_restored(&mut conn).map_err(|e| Error::Mark(e.to_string()))?;
    Ok(Done { outbox_seq, identity, set_aside })
}
