//! The host's RPM database read without the host's `rpm`: `rpmdb.sqlite`
//! (Fedora 33+, RHEL 9, openSUSE) opened read-only and immutable, so
//! nothing on the host changes, and each package header parsed for its
//! name, version, file list and changelog.

use std::path::Path;

use jaga_audit::distro::{parse_rpm_changelog, FixRecord, InstalledPackage, PackageManager};

pub(super) const TAG_NAME: u32 = 1000;
pub(super) const TAG_VERSION: u32 = 1001;
pub(super) const TAG_RELEASE: u32 = 1002;
pub(super) const TAG_EPOCH: u32 = 1003;
pub(super) const TAG_CHANGELOGNAME: u32 = 1081;
pub(super) const TAG_CHANGELOGTEXT: u32 = 1082;
pub(super) const TAG_DIRINDEXES: u32 = 1116;
pub(super) const TAG_BASENAMES: u32 = 1117;
pub(super) const TAG_DIRNAMES: u32 = 1118;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// The package whose file list names one of `candidates`; `Ok(None)` when
/// none does.
pub fn find_owner(db: &Path, candidates: &[String]) -> Result<Option<InstalledPackage>, String> {
    use rusqlite::OpenFlags;
    let uri = format!("file:{}?immutable=1", db.display());
    let connection = rusqlite::Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    let fail = |e: rusqlite::Error| format!("cannot read {}: {e}", db.display());
    let mut statement = connection
        .prepare("SELECT blob FROM Packages")
        .map_err(fail)?;
    let mut rows = statement.query([]).map_err(fail)?;
    let mut unreadable = 0usize;
    while let Some(row) = rows.next().map_err(fail)? {
        let blob: Vec<u8> = row.get(0).map_err(fail)?;
        let Some(header) = Header::parse(&blob) else {
            unreadable += 1;
            continue;
        };
        if header.files().iter().any(|f| candidates.contains(f)) {
            return Ok(Some(header.package(db)));
        }
    }
    if unreadable > 0 {
        tracing::debug!(db = %db.display(), unreadable, "rpm headers skipped");
    }
    Ok(None)
}

/// An RPM header as rpmdb stores it: entry count, data length, the index
/// entries (tag, type, offset, count; big-endian) and the data.
pub struct Header<'a> {
    index: Vec<(u32, u32, usize, usize)>,
    data: &'a [u8],
}

impl<'a> Header<'a> {
    pub fn parse(blob: &'a [u8]) -> Option<Self> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(blob.get(at..at + 4)?.try_into().ok()?))
        };
        let entries = word(0)? as usize;
        let data_len = word(4)? as usize;
        let data_start = 8usize.checked_add(entries.checked_mul(16)?)?;
        let data = blob.get(data_start..data_start.checked_add(data_len)?)?;
        let mut index = Vec::with_capacity(entries);
        for k in 0..entries {
            let at = 8 + k * 16;
            index.push((
                word(at)?,
                word(at + 4)?,
                word(at + 8)? as usize,
                word(at + 12)? as usize,
            ));
        }
        Some(Self { index, data })
    }

    fn entry(&self, tag: u32) -> Option<(u32, usize, usize)> {
        self.index
            .iter()
            .find(|(t, ..)| *t == tag)
            .map(|(_, kind, offset, count)| (*kind, *offset, *count))
    }

    /// A string tag; the first of a string array or i18n string.
    pub fn string(&self, tag: u32) -> Option<String> {
        self.strings(tag)?.into_iter().next()
    }

    pub fn strings(&self, tag: u32) -> Option<Vec<String>> {
        let (kind, offset, count) = self.entry(tag)?;
        if !matches!(kind, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
            return None;
        }
        let count = if kind == TYPE_STRING { 1 } else { count };
        let mut out = Vec::with_capacity(count.min(65_536));
        let mut rest = self.data.get(offset..)?;
        for _ in 0..count {
            let end = rest.iter().position(|b| *b == 0)?;
            out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            rest = &rest[end + 1..];
        }
        Some(out)
    }

    pub fn numbers(&self, tag: u32) -> Option<Vec<u32>> {
        let (kind, offset, count) = self.entry(tag)?;
        if kind != TYPE_INT32 {
            return None;
        }
        let bytes = self
            .data
            .get(offset..offset.checked_add(count.checked_mul(4)?)?)?;
        Some(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }

    /// Every file, as dirname + basename.
    pub fn files(&self) -> Vec<String> {
        let (Some(dirs), Some(bases), Some(indexes)) = (
            self.strings(TAG_DIRNAMES),
            self.strings(TAG_BASENAMES),
            self.numbers(TAG_DIRINDEXES),
        ) else {
            return Vec::new();
        };
        bases
            .iter()
            .zip(indexes)
            .filter_map(|(base, i)| Some(format!("{}{base}", dirs.get(i as usize)?)))
            .collect()
    }

    /// `[epoch:]version-release`.
    pub fn evr(&self) -> String {
        let version = self.string(TAG_VERSION).unwrap_or_default();
        let release = self.string(TAG_RELEASE).unwrap_or_default();
        match self.numbers(TAG_EPOCH).and_then(|e| e.first().copied()) {
            Some(epoch) if epoch > 0 => format!("{epoch}:{version}-{release}"),
            _ => format!("{version}-{release}"),
        }
    }

    fn package(&self, db: &Path) -> InstalledPackage {
        let name = self.string(TAG_NAME).unwrap_or_default();
        let names = self.strings(TAG_CHANGELOGNAME).unwrap_or_default();
        let texts = self.strings(TAG_CHANGELOGTEXT).unwrap_or_default();
        // The text `rpm -q --changelog` prints, less the dates.
        let text: String = names
            .iter()
            .zip(&texts)
            .map(|(heading, body)| format!("* {heading}\n{body}\n\n"))
            .collect();
        let fixes = if names.is_empty() {
            Err(format!(
                "the header of {name} in {} has no changelog",
                db.display()
            ))
        } else {
            Ok(FixRecord {
                source: format!("the changelog of {name} in {}", db.display()),
                entries: parse_rpm_changelog(&text),
            })
        };
        InstalledPackage {
            binary: String::new(),
            manager: PackageManager::Rpm,
            version: self.evr(),
            name,
            fixes,
        }
    }
}

/// Builds a header blob, for tests here and in the parent module.
#[cfg(test)]
pub fn build_header(tags: &[(u32, HeaderValue)]) -> Vec<u8> {
    let mut index = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    for (tag, value) in tags {
        let (kind, count) = match value {
            HeaderValue::Int(n) => {
                while !data.len().is_multiple_of(4) {
                    data.push(0);
                }
                let offset = data.len();
                for x in n {
                    data.extend_from_slice(&x.to_be_bytes());
                }
                index.push((*tag, TYPE_INT32, offset, n.len()));
                continue;
            }
            HeaderValue::Str(s) => (TYPE_STRING, s.len()),
            HeaderValue::Strs(s) => (TYPE_STRING_ARRAY, s.len()),
        };
        let offset = data.len();
        let strings: Vec<&String> = match value {
            HeaderValue::Str(s) | HeaderValue::Strs(s) => s.iter().collect(),
            HeaderValue::Int(_) => Vec::new(),
        };
        for s in strings {
            data.extend_from_slice(s.as_bytes());
            data.push(0);
        }
        index.push((
            *tag,
            kind,
            offset,
            if kind == TYPE_STRING { 1 } else { count },
        ));
    }
    let mut blob = Vec::new();
    blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
    blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
    for (tag, kind, offset, count) in index {
        for word in [tag, kind, offset as u32, count as u32] {
            blob.extend_from_slice(&word.to_be_bytes());
        }
    }
    blob.extend_from_slice(&data);
    blob
}

#[cfg(test)]
pub enum HeaderValue {
    Int(Vec<u32>),
    /// One string (a one-element list).
    Str(Vec<String>),
    Strs(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_lying_headers_are_refused_not_read_past() {
        assert!(Header::parse(&[]).is_none());
        assert!(Header::parse(&[0, 0, 0, 1, 0, 0, 0, 0]).is_none());
        // One entry claiming data beyond the blob.
        let mut blob = vec![0, 0, 0, 1, 0, 0, 0, 2];
        blob.extend_from_slice(&[0, 0, 3, 232, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 5]);
        blob.extend_from_slice(b"a\0");
        let header = Header::parse(&blob).unwrap();
        assert_eq!(header.strings(TAG_NAME), None);
        assert_eq!(header.numbers(TAG_NAME), None);
    }
}
