//! Diagnostics rendered rustc-style for build scripts (codespan-reporting), using
//! proc-macro2's `span-locations` to map spans back to the `.kpipe` source.

use crate::diagnostic::{Diagnostics, Range};
use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Config};
use std::ops::Range as Bytes;
use std::path::Path;

/// Byte offset of a line/column (1-based line, 0-based column in chars) in `source`.
fn offset(line_starts: &[usize], source: &str, lc: proc_macro2::LineColumn) -> usize {
    let Some(&start) = line_starts.get(lc.line.saturating_sub(1)) else {
        return source.len();
    };
    source[start..]
        .char_indices()
        .nth(lc.column)
        .map_or(source.len(), |(i, _)| start + i)
}

fn bytes(line_starts: &[usize], source: &str, r: &Range) -> Bytes<usize> {
    let a = offset(line_starts, source, r.start.start());
    let b = offset(line_starts, source, r.end.end()).max(a);
    a..b
}

/// Renders every diagnostic against the file's source.
pub(crate) fn render(diags: &Diagnostics, path: &Path, source: &str) -> String {
    let file = SimpleFile::new(path.display().to_string(), source);
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(source.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut sorted: Vec<_> = diags.iter().collect();
    sorted.sort_by_key(|d| bytes(&line_starts, source, &d.range).start);
    let config = Config::default();
    let mut out = Vec::new();
    for d in sorted {
        let mut labels = vec![Label::primary((), bytes(&line_starts, source, &d.range))];
        for (range, msg) in &d.related {
            labels.push(Label::secondary((), bytes(&line_starts, source, range)).with_message(msg));
        }
        let diagnostic = Diagnostic::error()
            .with_message(&d.message)
            .with_labels(labels)
            .with_notes(d.notes.clone());
        let mut writer = codespan_reporting::term::termcolor::NoColor::new(&mut out);
        if term::emit(&mut writer, &config, &file, &diagnostic).is_err() {
            out.extend_from_slice(format!("error: {}\n", d.message).as_bytes());
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
