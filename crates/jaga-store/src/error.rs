//! What can go wrong with the history database.

use std::io;
use std::path::PathBuf;

/// Every error names the database file (or directory) it concerns, and the
/// container when one is involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The blocking task doing store work ended abnormally.
    #[error("store work stopped: {0}")]
    Stopped(String),

    #[error("cannot create history directory '{}': {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The file could not be opened or is not a SQLite database.
    #[error("cannot open history database '{}': {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The file was written by a newer (or unknown) version of jaga.
    #[error(
        "history database '{}' has schema version '{found}', this jaga reads version {supported}",
        path.display()
    )]
    SchemaVersion {
        path: PathBuf,
        found: String,
        supported: u32,
    },

    /// A statement failed; `action` says what the store was doing.
    #[error("{action} failed in '{}': {source}", path.display())]
    Sqlite {
        action: String,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("cannot encode labels of container '{id}': {source}")]
    EncodeLabels {
        id: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot encode or decode {what}: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// A row this version cannot read back.
    #[error("{what}, in '{}'", path.display())]
    Corrupt { path: PathBuf, what: String },

    /// A prefix matched more than one container id.
    #[error("container '{query}' is ambiguous: {count} container ids start with it")]
    AmbiguousContainer { query: String, count: usize },
}
