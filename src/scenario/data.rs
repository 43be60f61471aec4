//! `data:`: scenario feeders. A CSV file whose header names the columns; each
//! connection is bound to one data row, and the row's cells become template
//! variables `{{data.COLUMN}}`.
//!
//! CSV dialect (RFC 4180 plus what spreadsheets write): comma separator;
//! CRLF or LF line ends; a UTF-8 BOM at the start is ignored; a field is
//! quoted only when `"` is its first character, and then may contain commas,
//! line breaks (kept verbatim) and `""` for a literal quote; text after a
//! closing quote up to the next separator is appended as is. Unquoted fields
//! are kept exactly, surrounding whitespace included; header names are
//! trimmed. Completely empty lines are skipped, so a trailing newline does not
//! make an empty row.

use std::path::{Path, PathBuf};

/// `data:` in a scenario. YAML: `{ file: PATH, mode: sequential|random|unique }`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// CSV file, relative to the scenario file. Required.
    pub file: PathBuf,
    /// How rows are assigned to connections. Default sequential.
    #[serde(default)]
    pub mode: DataMode,
}

impl DataSpec {
    /// Loads the feeder, resolving `file` against `scenario_dir` (the
    /// directory holding the scenario file; an absolute `file` is used as
    /// is). Errors name the file as written in the scenario.
    pub fn load(&self, scenario_dir: &Path) -> Result<Feeder, DataError> {
        let label = self.file.display().to_string();
        Feeder::load(&scenario_dir.join(&self.file), &label, self.mode)
    }
}

/// How data rows are assigned to connections. Default sequential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataMode {
    /// Connection i gets row i mod rows (rows are reused). Default.
    #[default]
    Sequential,
    /// Each connection gets a random row (seeded, reproducible).
    Random,
    /// Connection i gets row i; more connections than rows is an error.
    Unique,
}

/// A loaded CSV file: a header row naming the columns, then data rows.
/// Always has at least one column and one row, every row as wide as the header.
#[derive(Debug, Clone, PartialEq)]
pub struct Feeder {
    /// Column names from the header, trimmed, unique and non-empty.
    pub columns: Vec<String>,
    /// Every data cell's text, back to back (one allocation, not one per
    /// cell: a 20 MB file took 480 MB as a `Vec<Vec<String>>`).
    cells: String,
    /// The end of each cell in `cells`, row after row, `columns.len()` a
    /// row.
    ends: Vec<u32>,
    /// How rows are assigned to connections.
    pub mode: DataMode,
    /// The file as given, for messages.
    pub file: String,
}

/// Why a data file could not be used. Messages name the file and, where it
/// applies, the 1-based physical line where the offending row starts.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DataError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read {file}: {reason}")]
    Read {
        /// The file as given.
        file: String,
        /// The I/O error, as text.
        reason: String,
    },
    /// The file has no lines at all, so no header.
    #[error("{file}: empty (no header)")]
    Empty {
        /// The file as given.
        file: String,
    },
    /// A data row has a different number of fields than the header.
    #[error("{file}:{line}: row has {found} fields, the header has {expected} ({detail})")]
    Ragged {
        /// The file as given.
        file: String,
        /// Line where the row starts.
        line: usize,
        /// Fields in the row.
        found: usize,
        /// Columns in the header.
        expected: usize,
        /// `missing column A`, `missing columns A, B`, `extra field` or `extra fields`.
        detail: String,
    },
    /// A quoted field runs to the end of the file.
    #[error("{file}:{line}: unclosed quote")]
    UnclosedQuote {
        /// The file as given.
        file: String,
        /// Line where the row holding the quote starts.
        line: usize,
    },
    /// Two header columns have the same (trimmed) name.
    #[error("{file}: duplicate column {name}")]
    DuplicateColumn {
        /// The file as given.
        file: String,
        /// The repeated name.
        name: String,
    },
    /// A header column is blank.
    #[error("{file}: empty column name in the header")]
    EmptyColumnName {
        /// The file as given.
        file: String,
    },
    /// The file has a header but no data rows.
    #[error("{file}: no data rows")]
    NoRows {
        /// The file as given.
        file: String,
    },
    /// Unique mode with fewer rows than connections.
    #[error(
        "{file} has {rows} rows but unique mode needs one per connection \
         ({connections} connections)"
    )]
    NotEnoughRows {
        /// The file as given.
        file: String,
        /// Data rows in the file.
        rows: usize,
        /// Connections the scenario opens.
        connections: u64,
    },
}

/// What `split_records` calls for each record: its first line and fields.
type OnRecord<'a> = dyn FnMut(usize, &[String]) -> Result<(), DataError> + 'a;

/// Splits CSV text (BOM already removed) into records, skipping empty
/// lines, and hands each to `record` with the line it starts on; the
/// fields' buffer is reused, so only what `record` keeps stays in memory.
fn split_records(text: &str, label: &str, record: &mut OnRecord<'_>) -> Result<(), DataError> {
    let b = text.as_bytes();
    let n = b.len();
    let (mut i, mut line) = (0, 1);
    let mut fields: Vec<String> = Vec::new();
    while i < n {
        // A completely empty line (LF, CRLF, or a lone CR at the very end).
        if b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1).is_none_or(|&c| c == b'\n')) {
            line += usize::from(b[i] == b'\n');
            i += 1;
            continue;
        }
        let start_line = line;
        fields.clear();
        loop {
            let mut field = String::new();
            if i < n && b[i] == b'"' {
                i += 1;
                loop {
                    let Some(q) = text[i..].find('"').map(|q| i + q) else {
                        let (file, line) = (label.to_string(), start_line);
                        return Err(DataError::UnclosedQuote { file, line });
                    };
                    field.push_str(&text[i..q]);
                    line += b[i..q].iter().filter(|&&c| c == b'\n').count();
                    i = q + 1;
                    if i < n && b[i] == b'"' {
                        field.push('"');
                        i += 1;
                    } else {
                        break;
                    }
                }
            }
            // Unquoted text (or text after a closing quote) up to `,` or a line end.
            let start = i;
            while i < n && b[i] != b',' && b[i] != b'\n' {
                i += 1;
            }
            let mut end = i;
            if end > start && b[end - 1] == b'\r' && (i == n || b[i] == b'\n') {
                end -= 1;
            }
            field.push_str(&text[start..end]);
            fields.push(field);
            if i < n && b[i] == b',' {
                i += 1;
                continue;
            }
            if i < n {
                i += 1; // the '\n'
                line += 1;
            }
            break;
        }
        record(start_line, &fields)?;
    }
    Ok(())
}

impl Feeder {
    /// Reads and parses `path`; `label` is how the file is named in errors.
    pub fn load(path: &Path, label: &str, mode: DataMode) -> Result<Feeder, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::Read {
            file: label.to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, label, mode)
    }

    /// Parses CSV text (for tests and load): the first non-empty record is
    /// the header, every later one a data row of the same width.
    pub fn parse(text: &str, label: &str, mode: DataMode) -> Result<Feeder, DataError> {
        let file = label.to_string();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.len() > u32::MAX as usize {
            return Err(DataError::Read {
                file,
                reason: "larger than 4 GiB".into(),
            });
        }
        let mut columns: Option<Vec<String>> = None;
        let (mut cells, mut ends) = (String::new(), Vec::new());
        split_records(text, label, &mut |line, fields| {
            let Some(columns) = &columns else {
                let mut names: Vec<String> = Vec::with_capacity(fields.len());
                for name in fields {
                    let name = name.trim();
                    if name.is_empty() {
                        return Err(DataError::EmptyColumnName { file: file.clone() });
                    }
                    if names.iter().any(|c| c == name) {
                        let name = name.to_string();
                        return Err(DataError::DuplicateColumn {
                            file: file.clone(),
                            name,
                        });
                    }
                    names.push(name.to_string());
                }
                columns = Some(names);
                return Ok(());
            };
            let (found, expected) = (fields.len(), columns.len());
            if found != expected {
                let missing = &columns[found.min(expected)..];
                let detail = match found < expected {
                    true if missing.len() == 1 => format!("missing column {}", missing[0]),
                    true => format!("missing columns {}", missing.join(", ")),
                    false if found == expected + 1 => "extra field".to_string(),
                    false => "extra fields".to_string(),
                };
                return Err(DataError::Ragged {
                    file: file.clone(),
                    line,
                    found,
                    expected,
                    detail,
                });
            }
            for f in fields {
                cells.push_str(f);
                ends.push(cells.len() as u32);
            }
            Ok(())
        })?;
        let Some(columns) = columns else {
            return Err(DataError::Empty { file });
        };
        if ends.is_empty() {
            return Err(DataError::NoRows { file });
        }
        cells.shrink_to_fit();
        ends.shrink_to_fit();
        Ok(Feeder {
            columns,
            cells,
            ends,
            mode,
            file,
        })
    }

    /// Errors when `mode` is unique and there are fewer rows than
    /// `connections`; other modes always fit.
    pub fn check_capacity(&self, connections: u64) -> Result<(), DataError> {
        if self.mode == DataMode::Unique && (self.rows() as u64) < connections {
            return Err(DataError::NotEnoughRows {
                file: self.file.clone(),
                rows: self.rows(),
                connections,
            });
        }
        Ok(())
    }

    /// The row for connection `conn` (0-based): sequential → conn % rows,
    /// unique → conn (None when past the end), random → a row chosen by
    /// `rng` (seed it for reproducible runs). Cells are in `columns` order.
    pub fn row_for(&self, conn: u64, rng: &mut fastrand::Rng) -> Option<Vec<&str>> {
        let rows = self.rows();
        if rows == 0 {
            return None;
        }
        let index = match self.mode {
            DataMode::Sequential => (conn % rows as u64) as usize,
            DataMode::Unique => usize::try_from(conn).ok()?,
            DataMode::Random => rng.usize(..rows),
        };
        self.row(index)
    }

    /// Row `index`'s cells, in `columns` order.
    pub fn row(&self, index: usize) -> Option<Vec<&str>> {
        let w = self.columns.len();
        if index >= self.rows() {
            return None;
        }
        Some(
            (index * w..(index + 1) * w)
                .map(|c| {
                    let begin = if c == 0 { 0 } else { self.ends[c - 1] as usize };
                    &self.cells[begin..self.ends[c] as usize]
                })
                .collect(),
        )
    }

    /// Index of column `name` (exact, case-sensitive match), if present.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// Number of data rows (the header not counted); at least one.
    pub fn rows(&self) -> usize {
        self.ends.len() / self.columns.len().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Feeder, DataError> {
        Feeder::parse(text, "users.csv", DataMode::Sequential)
    }

    fn all_rows(f: &Feeder) -> Vec<Vec<&str>> {
        (0..f.rows()).map(|i| f.row(i).unwrap()).collect()
    }

    fn firsts(f: &Feeder, seed: u64, conns: u64) -> Vec<String> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..conns)
            .map(|c| f.row_for(c, &mut rng).unwrap()[0].to_string())
            .collect()
    }

    #[test]
    fn quoted_fields_commas_escaped_quotes_and_newlines() {
        let f = parse("name,note\n\"Doe, Jane\",\"say \"\"hi\"\"\"\nbob,\"two\nlines\"\n\"\",x\n");
        let f = f.unwrap();
        assert_eq!(f.columns, ["name", "note"]);
        let rows = all_rows(&f);
        assert_eq!(rows[0], ["Doe, Jane", "say \"hi\""]);
        assert_eq!(rows[1..], [["bob", "two\nlines"], ["", "x"]]);
        assert_eq!(f.rows(), 3);
        assert_eq!(f.column("note"), Some(1));
        assert_eq!(f.column("nope"), None);
    }

    #[test]
    fn crlf_bom_whitespace_and_empty_lines() {
        let f = parse("\u{feff} id , token \r\n1, a b \r\n\r\n\"x\r\ny\",\"2\"\r\n\r\n").unwrap();
        assert_eq!(f.columns, ["id", "token"]);
        assert_eq!(all_rows(&f), [["1", " a b "], ["x\r\ny", "2"]]);
        // No trailing newline; a quote inside an unquoted field is literal.
        assert_eq!(all_rows(&parse("a\nx\"y").unwrap()), [["x\"y"]]);
        // A trailing comma is an empty last field.
        assert_eq!(all_rows(&parse("a,b\n1,\n").unwrap()), [["1", ""]]);
    }

    #[test]
    fn error_messages() {
        let err = |csv| parse(csv).unwrap_err().to_string();
        let m = "users.csv:4: row has 1 fields, the header has 3 (missing columns b, c)";
        assert_eq!(err("a,b,c\n1,2,3\n\n1\n"), m);
        let m = "users.csv:4: row has 2 fields, the header has 3 (missing column c)";
        assert_eq!(err("a,b,c\n\"1\n\",2,3\n1,2\n"), m);
        let m = "users.csv:2: row has 3 fields, the header has 2 (extra field)";
        assert_eq!(err("a,b\r\n1,2,3\r\n"), m);
        assert_eq!(err("a,b\n1,2\n3,\"4\n5\n"), "users.csv:3: unclosed quote");
        assert_eq!(err("id, name,id\n1\n"), "users.csv: duplicate column id");
        let m = "users.csv: empty column name in the header";
        assert_eq!(err("a,,b\n1,2,3\n"), m);
        assert_eq!(err("a,b\n\n"), "users.csv: no data rows");
        assert_eq!(err(""), "users.csv: empty (no header)");
        assert_eq!(err("\u{feff}\r\n\n"), "users.csv: empty (no header)");
    }

    #[test]
    fn load_reads_files_and_names_them_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("u.csv"), "user\nann\n").unwrap();
        let spec: DataSpec = serde_yaml::from_str("{ file: u.csv, mode: unique }").unwrap();
        let f = spec.load(dir.path()).unwrap();
        assert_eq!(f.file, "u.csv");
        assert_eq!(f.mode, DataMode::Unique);
        let e = Feeder::load(&dir.path().join("gone.csv"), "gone.csv", DataMode::Random);
        let msg = e.unwrap_err().to_string();
        let ok = msg.starts_with("cannot read gone.csv: ") && msg.len() > 22;
        assert!(ok, "{msg}");
    }

    #[test]
    fn sequential_wraps() {
        let f = parse("n\na\nb\nc\n").unwrap();
        assert_eq!(firsts(&f, 1, 7), ["a", "b", "c", "a", "b", "c", "a"]);
        assert!(f.check_capacity(1_000).is_ok());
    }

    #[test]
    fn unique_ends_and_checks_capacity() {
        let f = Feeder::parse("n\na\nb\n", "users.csv", DataMode::Unique).unwrap();
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(firsts(&f, 1, 2), ["a", "b"]);
        assert_eq!(f.row_for(2, &mut rng), None);
        assert_eq!(f.row_for(u64::MAX, &mut rng), None);
        assert!(f.check_capacity(2).is_ok());
        let msg = "users.csv has 2 rows but unique mode needs one per connection (3 connections)";
        assert_eq!(f.check_capacity(3).unwrap_err().to_string(), msg);
    }

    #[test]
    fn random_is_reproducible_and_covers_rows() {
        let f = Feeder::parse("n\n0\n1\n2\n3\n4\n", "users.csv", DataMode::Random).unwrap();
        let a = firsts(&f, 42, 200);
        assert_eq!(a, firsts(&f, 42, 200));
        assert_ne!(a, firsts(&f, 43, 200));
        let mut seen = a.clone();
        seen.sort();
        seen.dedup();
        assert!(seen.len() >= 4, "only saw {seen:?}");
        assert!(f.check_capacity(1_000).is_ok());
    }

    #[test]
    fn data_spec_yaml() {
        let yaml = serde_yaml::from_str::<DataSpec>;
        let s = yaml("file: users.csv").unwrap();
        assert_eq!(s.file, PathBuf::from("users.csv"));
        assert_eq!(s.mode, DataMode::Sequential);
        let s = yaml("{ file: d/u.csv, mode: random }").unwrap();
        assert_eq!(s.mode, DataMode::Random);
        let err = |text| yaml(text).unwrap_err().to_string();
        let e = err("{ file: u.csv, mode: shuffle }");
        assert!(e.contains("unknown variant `shuffle`"), "{e}");
        let e = err("{ file: u.csv, loop: true }");
        assert!(e.contains("unknown field `loop`"), "{e}");
        let e = err("mode: random");
        assert!(e.contains("missing field `file`"), "{e}");
    }
}
