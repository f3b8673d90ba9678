//! Problems found in an operator's file (configuration or device profile), each pointing at the
//! file, line, column and the item at fault, so that a refused start says exactly what to fix.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// The offending item, as a dotted TOML path (`device[1].serial.baud`).
    pub item: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: `{}`: {}", self.file.display(), self.line, self.column, self.item, self.message)
    }
}

/// All the problems found in one or more files; refusing to start shows every one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostic {
    /// A problem with a whole file or folder (cannot read it), pointed at its start.
    pub fn whole_file(file: &Path, item: &str, message: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), line: 1, column: 1, item: item.into(), message: message.into() }
    }
}

/// Reads an operator's file, or says why not.
pub fn read_source(path: &Path) -> Result<String, Diagnostics> {
    std::fs::read_to_string(path)
        .map_err(|e| Diagnostics(vec![Diagnostic::whole_file(path, "(file)", format!("cannot read: {e}"))]))
}

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when no problem was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

/// A source text and its name, able to turn byte spans into line and column.
pub struct SourceFile<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl<'a> SourceFile<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self { path, text }
    }

    /// 1-based (line, column) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before.get(line_start..).map(|s| s.chars().count()).unwrap_or(0) + 1;
        (line, column)
    }

    /// A diagnostic at a span.
    pub fn at(&self, span: Range<usize>, item: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.line_col(span.start);
        Diagnostic { file: self.path.to_path_buf(), line, column, item: item.into(), message: message.into() }
    }

    /// A diagnostic for a TOML syntax or schema error (unknown key, wrong type, missing key). The
    /// item is the dotted key at the error (`mqtt.url`), found from the span and the table header
    /// above it.
    pub fn from_toml_error(&self, err: &toml::de::Error) -> Diagnostic {
        let span = err.span().unwrap_or(0..0);
        let start = span.start.min(self.text.len());
        let before = self.text.get(..start).unwrap_or("");
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let on_line = before.get(line_start..).unwrap_or("");
        let snippet = self.text.get(span.clone()).unwrap_or("").trim();
        // `key = <value at fault>` or `<key at fault> = ...`
        let key = match on_line.trim_end().strip_suffix('=') {
            Some(k) => k.trim().to_string(),
            None => snippet.split(['=', '\n']).next().unwrap_or("").trim().to_string(),
        };
        let table = before
            .get(..line_start)
            .unwrap_or("")
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(['[', ']']).trim().to_string());
        let item = if key.is_empty() || key.starts_with('[') {
            if key.starts_with('[') {
                key.trim_matches(['[', ']']).to_string()
            } else {
                "(document)".to_string()
            }
        } else {
            match table {
                Some(t) => format!("{t}.{key}"),
                None => key,
            }
        };
        self.at(span, item, err.message().trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        let src = SourceFile::new(Path::new("x.toml"), text);
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        let e_pos = text.find(" = 2").unwrap();
        assert_eq!(src.line_col(e_pos), (2, 3));
    }

    #[test]
    fn a_diagnostic_names_file_line_column_and_item() {
        let src = SourceFile::new(Path::new("/etc/spokegate/config.toml"), "x\ny = 3\n");
        let d = src.at(2..3, "gateway.y", "unknown key");
        assert_eq!(d.to_string(), "/etc/spokegate/config.toml:2:1: `gateway.y`: unknown key");
    }
}
