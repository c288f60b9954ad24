//! Embedded history for `jaga serve`: raw points per container, per-minute
//! rollups, and what each container was, in one SQLite file.
//!
//! [`HistoryStore::open`] creates `<dir>/history.sqlite3` in WAL mode with
//! `synchronous=NORMAL`: a SIGKILL or power loss loses at most the last
//! transactions, never the file. A collection pass is one transaction
//! ([`HistoryStore::write_points`]); once a minute the caller runs
//! [`HistoryStore::roll_up`] and [`HistoryStore::trim`]. Reads
//! ([`HistoryStore::range`]) use raw points where they are still kept and
//! minute rollups before that. See the `schema` module for the table layout
//! and why it is laid out so.
//!
//! This crate knows nothing about HTTP or the Docker Engine.

mod bucket;
mod error;
mod events;
mod events_schema;
mod schema;
mod store;

pub use error::StoreError;
pub use events::{
    AlertFilter, Committed, Consumed, DeadLetter, DeadLetterKind, EventFilter, EventStore,
    LogCheckpoint, OutputCursor, QueuedAlert, Sequenced, EVENTS_FILE_NAME,
};
pub use events_schema::EVENTS_SCHEMA_VERSION;
pub use schema::SCHEMA_VERSION;
pub use store::{
    ExportedPoint, ExportedRollup, HistoryStore, Retention, RollupExport, StoredContainer,
    TrimReport, FILE_NAME,
};
