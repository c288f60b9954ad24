//! Where alerts go once stored.

pub mod alert_file;
