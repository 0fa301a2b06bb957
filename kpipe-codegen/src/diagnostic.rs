//! Collected, span-accurate problems of one pipeline definition.
//!
//! Every phase after tokenising pushes into one [`Diagnostics`] and keeps going, so the
//! user sees all problems of one invocation at once. The macro frontend turns them into
//! `compile_error!`s at their spans; the build.rs frontend renders them rustc-style.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use std::fmt::Display;

/// A source range as two token spans (first and last token), like `syn::Error::new_spanned`
/// keeps them, so that one diagnostic can cover a whole construct on stable Rust.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub(crate) start: Span,
    pub(crate) end: Span,
}

impl Range {
    /// A range of a single span.
    pub fn span(span: Span) -> Self {
        Range {
            start: span,
            end: span,
        }
    }

    /// The range covered by some tokens (first to last token).
    pub fn of(tokens: &dyn ToTokens) -> Self {
        let mut iter = tokens.to_token_stream().into_iter();
        let Some(first) = iter.next() else {
            return Range::span(Span::call_site());
        };
        let start = first.span();
        let end = iter.last().map_or(start, |t| t.span());
        Range { start, end }
    }

    /// The primary span (the first token), where rustc puts the caret in a proc macro.
    pub fn start(&self) -> Span {
        self.start
    }

    fn tokens(&self) -> TokenStream {
        let mut a = proc_macro2::Punct::new('<', proc_macro2::Spacing::Alone);
        a.set_span(self.start);
        let mut b = proc_macro2::Punct::new('>', proc_macro2::Spacing::Alone);
        b.set_span(self.end);
        let mut ts = TokenStream::new();
        a.to_tokens(&mut ts);
        b.to_tokens(&mut ts);
        ts
    }
}

impl From<Span> for Range {
    fn from(span: Span) -> Self {
        Range::span(span)
    }
}

/// One problem in a pipeline definition.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub(crate) range: Range,
    pub(crate) message: String,
    pub(crate) notes: Vec<String>,
    pub(crate) related: Vec<(Range, String)>,
}

impl Diagnostic {
    /// Adds a `help:`/`note:` line (written with its prefix, e.g. `"help: ..."`).
    pub fn note(&mut self, note: impl Display) -> &mut Self {
        self.notes.push(note.to_string());
        self
    }

    /// Adds a secondary location such as "first defined here".
    pub fn related(&mut self, range: impl Into<Range>, message: impl Display) -> &mut Self {
        self.related.push((range.into(), message.to_string()));
        self
    }

    /// The main message, without notes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The notes (`help: ...`, `note: ...`).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The message with its notes, for `compile_error!`: a proc macro on stable Rust has only
    /// the message, so the notes follow it on lines of their own (rustc indents them), and a
    /// related place becomes a note with its line and column (see [`Diagnostic::related`]).
    fn full_message(&self) -> String {
        let mut msg = self.message.clone();
        for (range, related) in &self.related {
            msg.push_str("\n= note: ");
            msg.push_str(&with_location(related, range.start));
        }
        for note in &self.notes {
            msg.push_str("\n= ");
            msg.push_str(note);
        }
        msg
    }
}

/// "first defined here" -> "first defined at line 5, column 16" (or the location appended).
fn with_location(message: &str, span: Span) -> String {
    let at = span.start();
    let place = format!("at line {}, column {}", at.line, at.column + 1);
    match message.find("here") {
        Some(i) => format!("{}{place}{}", &message[..i], &message[i + 4..]),
        None => format!("{message} ({place})"),
    }
}

/// Where a range starts, to report in source order.
fn position(range: &Range) -> (usize, usize) {
    let at = range.start.start();
    (at.line, at.column)
}

/// Collects every problem so that one bad stage does not hide the next.
#[derive(Debug, Default)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records an error at `range` and returns it for notes.
    pub fn error(&mut self, range: impl Into<Range>, message: impl Display) -> &mut Diagnostic {
        self.list.push(Diagnostic {
            range: range.into(),
            message: message.to_string(),
            notes: Vec::new(),
            related: Vec::new(),
        });
        self.list.last_mut().expect("just pushed")
    }

    /// Records an error covering `tokens`.
    pub fn error_spanned(
        &mut self,
        tokens: &dyn ToTokens,
        message: impl Display,
    ) -> &mut Diagnostic {
        self.error(Range::of(tokens), message)
    }

    /// Records a syn error (a syntax error from a `Parse` impl).
    pub fn syn(&mut self, err: syn::Error) {
        for e in err {
            let span = e.span();
            self.error(span, e.to_string());
        }
    }

    /// True when nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The number of errors.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The collected diagnostics, in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter()
    }

    /// Macro frontend: one combined `syn::Error`, in source order. Notes and related places
    /// go into each error's message (see `Diagnostic::full_message`): one mistake, one error.
    pub fn into_syn_error(mut self) -> Option<syn::Error> {
        self.list.sort_by_key(|d| position(&d.range));
        let mut out: Option<syn::Error> = None;
        for d in self.list {
            let e = syn::Error::new_spanned(d.range.tokens(), d.full_message());
            match &mut out {
                Some(all) => all.combine(e),
                None => out = Some(e),
            }
        }
        out
    }

    /// [`Diagnostics::into_syn_error`] as `compile_error!`s; empty when there were none.
    pub fn into_compile_error(self) -> TokenStream {
        self.into_syn_error()
            .map(|e| e.into_compile_error())
            .unwrap_or_default()
    }
}

/// The closest known word to `word`, for "did you mean" notes.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["retention", "partition_key", "capacity"];
        assert_eq!(did_you_mean("retension", keys), Some("retention"));
        assert_eq!(did_you_mean("partition_keys", keys), Some("partition_key"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }

    #[test]
    fn collects_all_errors_with_notes() {
        let mut d = Diagnostics::default();
        d.error(Span::call_site(), "first").note("help: fix it");
        d.error(Span::call_site(), "second")
            .related(Span::call_site(), "first defined here");
        assert_eq!(d.len(), 2);
        let all: Vec<String> = d
            .into_syn_error()
            .unwrap()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        // One error per mistake: the related place is a note with its line and column.
        assert_eq!(
            all,
            [
                "first\n= help: fix it",
                "second\n= note: first defined at line 1, column 1"
            ]
        );
    }
}
