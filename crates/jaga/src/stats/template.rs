//! `--format` as docker understands it for `stats`: `table`, `json`, or a Go
//! template made of `{{.Placeholder}}`s, and the table layout of Go's
//! tabwriter (min width 10, padding 3) that docker prints with.

use std::collections::BTreeMap;

use jaga_model::escape_control;

use super::units::{binary_size, decimal_size, percent};
use super::StatsEntry;

/// docker's default `stats` table.
pub const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Container,
    Name,
    Id,
    CpuPerc,
    MemUsage,
    MemPerc,
    NetIo,
    BlockIo,
    Pids,
}

impl Field {
    const ALL: [Field; 9] = [
        Field::Container,
        Field::Name,
        Field::Id,
        Field::CpuPerc,
        Field::MemUsage,
        Field::MemPerc,
        Field::NetIo,
        Field::BlockIo,
        Field::Pids,
    ];

    fn placeholder(self) -> &'static str {
        match self {
            Field::Container => "Container",
            Field::Name => "Name",
            Field::Id => "ID",
            Field::CpuPerc => "CPUPerc",
            Field::MemUsage => "MemUsage",
            Field::MemPerc => "MemPerc",
            Field::NetIo => "NetIO",
            Field::BlockIo => "BlockIO",
            Field::Pids => "PIDs",
        }
    }

    fn header(self) -> &'static str {
        match self {
            Field::Container => "CONTAINER",
            Field::Name => "NAME",
            Field::Id => "CONTAINER ID",
            Field::CpuPerc => "CPU %",
            Field::MemUsage => "MEM USAGE / LIMIT",
            Field::MemPerc => "MEM %",
            Field::NetIo => "NET I/O",
            Field::BlockIo => "BLOCK I/O",
            Field::Pids => "PIDS",
        }
    }

    fn value(self, entry: &StatsEntry, truncate: bool) -> String {
        if entry.invalid {
            return match self {
                Field::Container => escape_control(&entry.container).into_owned(),
                Field::Name => escape_control(&entry.name).into_owned(),
                Field::Id => shown_id(&entry.id, truncate),
                Field::MemUsage => "-- / --".to_owned(),
                _ => "--".to_owned(),
            };
        }
        match self {
            Field::Container => escape_control(&entry.container).into_owned(),
            Field::Name => escape_control(&entry.name).into_owned(),
            Field::Id => shown_id(&entry.id, truncate),
            Field::CpuPerc => percent(entry.cpu_percent),
            Field::MemUsage => format!(
                "{} / {}",
                binary_size(entry.memory_bytes),
                binary_size(entry.memory_limit_bytes)
            ),
            Field::MemPerc => percent(entry.memory_percent),
            Field::NetIo => format!(
                "{} / {}",
                decimal_size(entry.network_rx_bytes),
                decimal_size(entry.network_tx_bytes)
            ),
            Field::BlockIo => format!(
                "{} / {}",
                decimal_size(entry.block_read_bytes),
                decimal_size(entry.block_write_bytes)
            ),
            Field::Pids => entry.pids.to_string(),
        }
    }
}

fn shown_id(id: &str, truncate: bool) -> String {
    if truncate {
        id.get(..12).unwrap_or(id).to_owned()
    } else {
        id.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field(Field),
    /// `{{json .}}`: the whole entry as one JSON object.
    Json,
}

/// A parsed `--format`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    table: bool,
    pieces: Vec<Piece>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("template parsing error: {0}")]
pub struct TemplateError(String);

impl Template {
    /// `table` (docker's default), `json`, `table <template>`, or a template.
    pub fn parse(format: &str) -> Result<Self, TemplateError> {
        let trimmed = format.trim();
        let (table, body) = match trimmed {
            "" | "table" => (true, DEFAULT_TABLE.trim_start_matches("table ")),
            "json" => (false, "{{json .}}"),
            _ => match trimmed.strip_prefix("table") {
                Some(rest) if rest.starts_with(char::is_whitespace) => (true, rest.trim()),
                _ => (false, trimmed),
            },
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Self {
            table,
            pieces: parse_pieces(&body)?,
        })
    }

    pub fn is_table(&self) -> bool {
        self.table
    }

    /// Renders the entries: a header line and aligned columns for a table,
    /// one line per entry otherwise.
    pub fn render(&self, entries: &[StatsEntry], truncate: bool) -> String {
        let mut lines: Vec<String> = Vec::with_capacity(entries.len() + 1);
        if self.table {
            lines.push(self.render_with(|field| field.header().to_owned(), None));
        }
        for entry in entries {
            lines.push(self.render_with(|field| field.value(entry, truncate), Some(entry)));
        }
        let text = lines.join("\n");
        let mut out = if self.table { tabwriter(&text) } else { text };
        if !entries.is_empty() || self.table {
            out.push('\n');
        }
        out
    }

    fn render_with(&self, value: impl Fn(Field) -> String, entry: Option<&StatsEntry>) -> String {
        let mut line = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => line.push_str(text),
                Piece::Field(field) => line.push_str(&value(*field)),
                Piece::Json => {
                    let object: BTreeMap<&str, String> = match entry {
                        Some(_) => Field::ALL
                            .iter()
                            .map(|f| (f.placeholder(), value(*f)))
                            .collect(),
                        None => BTreeMap::new(),
                    };
                    line.push_str(&serde_json::to_string(&object).unwrap_or_default());
                }
            }
        }
        line
    }
}

fn parse_pieces(body: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError(format!("unclosed action in '{body}'")))?;
        let action = after[..end].trim();
        pieces.push(parse_action(action)?);
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

fn parse_action(action: &str) -> Result<Piece, TemplateError> {
    if action == "json ." {
        return Ok(Piece::Json);
    }
    let name = action.strip_prefix('.').unwrap_or("");
    Field::ALL
        .iter()
        .find(|f| f.placeholder() == name)
        .map(|f| Piece::Field(*f))
        .ok_or_else(|| {
            let known: Vec<String> = Field::ALL
                .iter()
                .map(|f| format!(".{}", f.placeholder()))
                .collect();
            TemplateError(format!(
                "can't evaluate '{{{{{action}}}}}': placeholders are {} and {{{{json .}}}}",
                known.join(" ")
            ))
        })
}

/// Go's `tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)`: every tab-terminated cell
/// is padded to its column's widest cell plus 3, at least 10; the last cell of
/// a line is written as it is.
pub fn tabwriter(text: &str) -> String {
    let rows: Vec<Vec<&str>> = text
        .split('\n')
        .map(|line| line.split('\t').collect())
        .collect();
    let columns = rows
        .iter()
        .map(|r| r.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    let mut widths = vec![10usize; columns];
    for row in &rows {
        for (index, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[index] = widths[index].max(cell.chars().count() + 3);
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    for (line_index, row) in rows.iter().enumerate() {
        if line_index > 0 {
            out.push('\n');
        }
        let last = row.len().saturating_sub(1);
        for (index, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if index < last {
                for _ in cell.chars().count()..widths[index] {
                    out.push(' ');
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> StatsEntry {
        StatsEntry {
            cpu_percent: 0.0,
            memory_bytes: 331_776.0,
            memory_limit_bytes: 25_275_109_376.0,
            memory_percent: 0.001_312,
            ..StatsEntry::empty(
                "aa92ba5573eb".into(),
                "aa92ba5573ebf2e5e25e2530d35a6e42954379647966e4757a37355f8b290169".into(),
                "t1".into(),
            )
        }
    }

    #[test]
    fn default_table_matches_docker_byte_for_byte() {
        // Captured from `docker stats --no-stream` (CLI 28.2) for the same figures.
        let expected = "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS\n\
                        aa92ba5573eb   t1        0.00%     324KiB / 23.54GiB   0.00%     0B / 0B   0B / 0B     0\n";
        let out = Template::parse("").unwrap().render(&[entry()], true);
        assert_eq!(out, expected);
        assert_eq!(
            Template::parse("table").unwrap().render(&[entry()], true),
            expected
        );
    }

    #[test]
    fn json_matches_docker_keys_and_order() {
        let out = Template::parse("json").unwrap().render(&[entry()], true);
        assert_eq!(
            out,
            "{\"BlockIO\":\"0B / 0B\",\"CPUPerc\":\"0.00%\",\"Container\":\"aa92ba5573eb\",\"ID\":\"aa92ba5573eb\",\"MemPerc\":\"0.00%\",\"MemUsage\":\"324KiB / 23.54GiB\",\"Name\":\"t1\",\"NetIO\":\"0B / 0B\",\"PIDs\":\"0\"}\n"
        );
    }

    #[test]
    fn custom_template_and_escapes() {
        let out = Template::parse("{{.Name}}\\t{{ .MemUsage }}|{{.Container}}")
            .unwrap()
            .render(&[entry()], true);
        assert_eq!(out, "t1\t324KiB / 23.54GiB|aa92ba5573eb\n");
        let out = Template::parse("table {{.Name}}\\t{{.PIDs}}")
            .unwrap()
            .render(&[entry()], true);
        assert_eq!(out, "NAME      PIDS\nt1        0\n");
    }

    #[test]
    fn no_trunc_shows_full_id() {
        let out = Template::parse("{{.ID}}")
            .unwrap()
            .render(&[entry()], false);
        assert_eq!(out.trim_end().len(), 64);
    }

    #[test]
    fn invalid_entry_shows_dashes() {
        let mut e = entry();
        e.invalid = true;
        let out = Template::parse(
            "{{.CPUPerc}} {{.MemUsage}} {{.MemPerc}} {{.NetIO}} {{.BlockIO}} {{.PIDs}}",
        )
        .unwrap()
        .render(&[e], true);
        assert_eq!(out, "-- -- / -- -- -- -- --\n");
    }

    #[test]
    fn unknown_placeholder_is_an_error() {
        let err = Template::parse("{{.Cpu}}").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("template parsing error: can't evaluate '{{.Cpu}}'"),
            "{err}"
        );
        assert!(Template::parse("{{.Name").is_err());
    }

    #[test]
    fn tabwriter_pads_to_min_ten_plus_three() {
        assert_eq!(
            tabwriter("a\tbb\tc\nlonger-cell\tx\ty"),
            "a             bb        c\nlonger-cell   x         y"
        );
    }
}
