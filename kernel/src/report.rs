//! What a learner reads when a cell fails: one Jupyter error (ename, evalue,
//! traceback) per cell, whatever went wrong.

use evcxr::CompilationError;

use crate::final_value::Inserted;
use crate::output::Panic;

/// A cell's failure, ready to send as an `error` output and in the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// The kind of failure: `CompileError`, `Panic`, `Interrupted`, ...
    pub ename: String,
    /// One line saying what happened.
    pub evalue: String,
    /// The full explanation, one entry per line.
    pub traceback: Vec<String>,
}

impl CellError {
    /// A failure described by one message.
    pub fn new(ename: &str, evalue: impl Into<String>, traceback: Vec<String>) -> CellError {
        CellError {
            ename: ename.to_owned(),
            evalue: evalue.into(),
            traceback,
        }
    }

    /// rustc's errors, each pointing into the cell's own lines; `inserted`
    /// says where the kernel added code around the cell's final place (see
    /// [`crate::final_value`]). Errors in its probe repeat the learner's,
    /// or say what the kernel already acted on: they are left out.
    pub fn compile(
        errors: &[CompilationError],
        cell: &str,
        inserted: Option<Inserted>,
    ) -> CellError {
        let learners: Vec<&CompilationError> = errors
            .iter()
            .filter(|error| !inserted.is_some_and(|at| in_probe(error, &at)))
            .collect();
        let errors = if learners.is_empty() {
            errors.iter().collect()
        } else {
            learners
        };
        let mut traceback = Vec::new();
        for error in errors.iter().copied() {
            if !traceback.is_empty() {
                traceback.push(String::new());
            }
            render_compilation_error(error, cell, inserted, &mut traceback);
        }
        let evalue = errors
            .first()
            .map(|e| e.message())
            .unwrap_or_else(|| "the cell did not compile".to_owned());
        CellError::new("CompileError", evalue, traceback)
    }

    /// The cell's own thread panicked.
    pub fn panic(panic: Option<&Panic>) -> CellError {
        let Some(panic) = panic else {
            return CellError::new(
                "Panic",
                "the cell panicked",
                vec!["thread 'main' panicked (see the output above)".into()],
            );
        };
        let mut traceback = Vec::new();
        // Locations in evcxr's generated wrapper (src/lib.rs) mean nothing to a
        // learner; locations in a crate (labkit, a dependency) do.
        if panic.location.is_empty() || panic.location.starts_with("src/lib.rs") {
            traceback.push("thread 'main' panicked:".to_owned());
        } else {
            traceback.push(format!("thread 'main' panicked at {}:", panic.location));
        }
        traceback.extend(panic.message.lines().map(str::to_owned));
        CellError::new("Panic", panic.message.clone(), traceback)
    }
}

/// Whether `error` is reported in the probe the kernel put before the
/// cell's final variable.
pub fn in_probe(error: &CompilationError, at: &Inserted) -> bool {
    error
        .primary_spanned_message()
        .and_then(|message| message.span)
        .is_some_and(|span| at.in_probe(span.start_line, span.start_column))
}

/// Renders one error like rustc does, with line numbers of the cell:
///
/// ```text
/// error[E0308]: mismatched types
///  --> cell:1:14
///   |
/// 1 | let x: i32 = "s";
///   |              ^^^ expected `i32`, found `&str`
/// ```
fn render_compilation_error(
    error: &CompilationError,
    cell: &str,
    inserted: Option<Inserted>,
    out: &mut Vec<String>,
) {
    if !error.is_from_user_code() {
        out.extend(error.rendered().lines().map(str::to_owned));
        return;
    }
    let level = error.level();
    match error.code() {
        Some(code) => out.push(format!("{level}[{code}]: {}", error.message())),
        None => out.push(format!("{level}: {}", error.message())),
    }
    let lines: Vec<&str> = cell.lines().collect();
    let spans: Vec<_> = error
        .spanned_messages()
        .iter()
        .filter_map(|m| m.span.map(|span| (span, m)))
        .map(|(mut span, m)| {
            if let Some(inserted) = inserted {
                span.start_column = inserted.column_in_cell(span.start_line, span.start_column);
                span.end_column = inserted.column_in_cell(span.end_line, span.end_column);
            }
            (span, m)
        })
        .collect();
    let width = spans
        .iter()
        .map(|(span, _)| span.end_line.to_string().len())
        .max()
        .unwrap_or(1);
    let gutter = " ".repeat(width);
    if let Some((first, _)) = spans.first() {
        out.push(format!(
            "{gutter}--> cell:{}:{}",
            first.start_line, first.start_column
        ));
        out.push(format!("{gutter} |"));
    }
    // rustc's layout: each source line once, then one marker line per span
    // on it, primary first.
    let mut by_line: Vec<(usize, Vec<usize>)> = Vec::new();
    for (index, (span, _)) in spans.iter().enumerate() {
        match by_line
            .iter_mut()
            .find(|(line, _)| *line == span.start_line)
        {
            Some((_, entries)) => entries.push(index),
            None => by_line.push((span.start_line, vec![index])),
        }
    }
    by_line.sort_by_key(|(line, _)| *line);
    for (line, mut entries) in by_line {
        let Some(source) = lines.get(line.saturating_sub(1)) else {
            continue;
        };
        out.push(format!("{line:>width$} | {source}"));
        entries.sort_by_key(|&i| (!spans[i].1.is_primary, spans[i].0.start_column));
        for (span, message) in entries.into_iter().map(|i| &spans[i]) {
            let start = span.start_column.saturating_sub(1);
            let end = if span.end_line == span.start_line {
                span.end_column.saturating_sub(1).max(start + 1)
            } else {
                source.chars().count().max(start + 1)
            };
            let marker = if message.is_primary { '^' } else { '-' };
            let underline: String = std::iter::repeat_n(marker, end - start).collect();
            let label = if message.label.is_empty() {
                String::new()
            } else {
                format!(" {}", message.label)
            };
            out.push(format!(
                "{gutter} | {}{underline}{label}",
                " ".repeat(start)
            ));
        }
    }
    for help in error.help() {
        out.push(format!("{gutter} = help: {help}"));
    }
    if let Some(hint) = error.evcxr_extra_hint() {
        out.push(format!("{gutter} = note: {hint}"));
    }
}
