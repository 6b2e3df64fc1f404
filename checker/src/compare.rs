//! Comparing a cell's fresh outputs with the verified ones stored in the
//! source notebook, as its `metadata.conclab.compare` says.
//!
//! The one place that decides what counts as "the same output": `validate`
//! (CI's gate on the stored outputs) and grading both call it, so a notebook
//! that passes in CI cannot fail for learners over a comparison.
//! Pattern replacements use the `regex` crate's `$1` syntax.

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::{NoExpand, Regex};
use serde_json::Value;
use similar::algorithms::{Capture, Replace, myers};
use similar::{DiffOp, DiffTag, group_diff_ops};

use crate::settings::{Compare, CompareMode, Redaction};

/// Why fresh outputs do not match the stored ones, ready to show a learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// One line saying what differs, e.g. `stdout differs from the verified
    /// output`.
    pub message: String,
    /// A unified diff from `expected` (stored) to `got` (fresh), cut after
    /// about 40 lines; empty when there is nothing to diff (a bad regex).
    pub diff: String,
}

/// Lines of diff shown before the rest is summarised: a learner needs the
/// first difference, not a screenful.
const MAX_DIFF_LINES: usize = 40;

/// Context lines around each change, as `difflib.unified_diff`.
const CONTEXT: usize = 3;

/// How long the diff may search for the smallest edit before settling for a
/// coarser one: huge unrelated outputs must not stall grading.
const DIFF_TIME: Duration = Duration::from_secs(1);

/// The lines Python's `str.splitlines` splits on besides `\r\n`.
const LINE_BREAKS: &[char] = &[
    '\n', '\r', '\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\u{85}', '\u{2028}', '\u{2029}',
];

// The named redactions, as REDACTIONS in lab_notebooks.py; compiled once
// because every compared cell uses them.
static TIMES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d+(\.\d+)?\s?(ns|µs|us|ms|s)\b").expect("valid regex"));
static ADDRESSES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"0x[0-9a-fA-F]+").expect("valid regex"));
static IDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(ThreadId\(\d+\)|#\d+)").expect("valid regex"));
static PIDS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\bpid \d+\b").expect("valid regex"));

/// A named redaction's regex and its (literal) replacement.
fn redaction(name: Redaction) -> (&'static Regex, &'static str) {
    match name {
        Redaction::Times => (&TIMES, "<time>"),
        Redaction::Addresses => (&ADDRESSES, "<address>"),
        Redaction::Ids => (&IDS, "<id>"),
        Redaction::Pids => (&PIDS, "pid <pid>"),
    }
}

/// A cell's outputs as comparable items `(kind, text)`, as `output_text` in
/// `lab_notebooks.py`. Kinds are `stream:<name>`, `execute_result:<mimes>`,
/// `display_data:<mimes>` (MIME types sorted, comma-separated) and `error`.
/// Consecutive stream outputs of the same name are joined, because how text
/// is split into messages depends on timing; other output types are skipped.
pub fn output_items(outputs: &[Value]) -> Vec<(String, String)> {
    let mut items: Vec<(String, String)> = Vec::new();
    for output in outputs {
        match output.get("output_type").and_then(Value::as_str) {
            Some("stream") => {
                let name = output.get("name").and_then(Value::as_str).unwrap_or("");
                let kind = format!("stream:{name}");
                let text = text_of(output.get("text"));
                match items.last_mut() {
                    Some((last, joined)) if *last == kind => joined.push_str(&text),
                    _ => items.push((kind, text)),
                }
            }
            Some(kind @ ("execute_result" | "display_data")) => {
                let data = output.get("data").and_then(Value::as_object);
                let mut mimes: Vec<&str> = data
                    .map(|data| data.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                mimes.sort_unstable();
                let text = text_of(data.and_then(|data| data.get("text/plain")));
                items.push((format!("{kind}:{}", mimes.join(",")), text));
            }
            Some("error") => {
                let field = |key| output.get(key).and_then(Value::as_str).unwrap_or("");
                items.push((
                    "error".to_string(),
                    format!("{}: {}", field("ename"), field("evalue")),
                ));
            }
            _ => {}
        }
    }
    items
}

/// nbformat multiline text: a string or a list of strings to concatenate.
/// stderr joined into one item at the end: the kernel keeps stdout in
/// order with displays, but (like ipykernel) not stderr's place between them.
fn streams_apart(items: Vec<(String, String)>) -> Vec<(String, String)> {
    const STDERR: &str = "stream:stderr";
    let (stderr, mut rest): (Vec<_>, Vec<_>) =
        items.into_iter().partition(|(kind, _)| kind == STDERR);
    // Stdout items that were split by stderr become one again.
    rest.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0 && later.0.starts_with("stream:");
        if same {
            earlier.1.push_str(&later.1);
        }
        same
    });
    if !stderr.is_empty() {
        rest.push((
            STDERR.to_owned(),
            stderr.into_iter().map(|(_, text)| text).collect(),
        ));
    }
    rest
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

/// Checks that every regex in `settings.patterns` compiles, so a source
/// notebook's mistake is reported when it is validated, not while grading.
/// The error is one line naming the regex.
pub fn validate_patterns(settings: &Compare) -> Result<(), String> {
    compile_patterns(settings).map(drop)
}

/// The patterns' regexes, each with its replacement.
fn compile_patterns(settings: &Compare) -> Result<Vec<(Regex, &str)>, String> {
    settings
        .patterns
        .iter()
        .map(|pattern| match Regex::new(&pattern.regex) {
            Ok(regex) => Ok((regex, pattern.replace.as_str())),
            Err(error) => Err(format!(
                "bad regex in metadata.conclab.compare.patterns: {:?}: {}",
                pattern.regex,
                one_line(&error)
            )),
        })
        .collect()
}

/// A regex error on one line: syntax errors repeat the pattern with a caret
/// over several lines, of which the last (`error: …`) says what is wrong.
fn one_line(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text.lines().last().unwrap_or("");
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// Named redactions first, then the patterns, in order (as `sanitize`).
fn sanitize(text: &str, redact: &[Redaction], patterns: &[(Regex, &str)]) -> String {
    let mut text = text.to_string();
    for &name in redact {
        let (regex, replacement) = redaction(name);
        text = regex.replace_all(&text, NoExpand(replacement)).into_owned();
    }
    for (regex, replacement) in patterns {
        text = regex.replace_all(&text, *replacement).into_owned();
    }
    text
}

/// Python's `str.splitlines()`: every line break Python knows, `\r\n` as one,
/// no empty last line for a trailing break.
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(LINE_BREAKS) {
        lines.push(&rest[..at]);
        let after = &rest[at..];
        let width = if after.starts_with("\r\n") {
            2
        } else {
            after.chars().next().map_or(1, char::len_utf8)
        };
        rest = &after[width..];
    }
    if !rest.is_empty() {
        lines.push(rest);
    }
    lines
}

/// Same number of lines and each equal, or the stored one is the wildcard.
fn lines_match(stored: &[&str], fresh: &[&str], wildcard: Option<&str>) -> bool {
    stored.len() == fresh.len()
        && stored
            .iter()
            .zip(fresh)
            .all(|(s, f)| s == f || Some(*s) == wildcard)
}

/// Compares a cell's fresh outputs with the stored (verified) ones as
/// `settings` says; `Err` describes the first difference. Both are nbformat 4
/// `outputs` arrays. Modes: `exact` compares text line by line; `sanitized`
/// first applies the redactions and patterns; `unordered` also sorts the
/// lines; `shape` compares only the kinds of output; `ignore` passes. In every
/// text mode a stored line equal to `settings.wildcard` matches any one line.
/// In the modes that use them, a regex in `patterns` that does not compile is
/// a mismatch, never a panic.
pub fn compare(stored: &[Value], fresh: &[Value], settings: &Compare) -> Result<(), Mismatch> {
    if settings.mode == CompareMode::Ignore {
        return Ok(());
    }
    let text_modes = [CompareMode::Sanitized, CompareMode::Unordered];
    let patterns = if text_modes.contains(&settings.mode) {
        compile_patterns(settings).map_err(|message| Mismatch {
            message,
            diff: String::new(),
        })?
    } else {
        Vec::new()
    };

    let stored = streams_apart(output_items(stored));
    let fresh = streams_apart(output_items(fresh));
    let stored_kinds: Vec<&str> = stored.iter().map(|(kind, _)| kind.as_str()).collect();
    let fresh_kinds: Vec<&str> = fresh.iter().map(|(kind, _)| kind.as_str()).collect();
    if stored_kinds != fresh_kinds {
        return Err(Mismatch {
            message: format!(
                "output kinds differ: expected [{}], got [{}]",
                stored_kinds.join(", "),
                fresh_kinds.join(", ")
            ),
            diff: unified_diff(&stored_kinds, &fresh_kinds, None),
        });
    }
    if settings.mode == CompareMode::Shape {
        return Ok(());
    }

    let wildcard = settings.wildcard.as_deref();
    for (index, ((kind, old), (_, new))) in stored.iter().zip(&fresh).enumerate() {
        let (old, new) = if text_modes.contains(&settings.mode) {
            (
                Cow::Owned(sanitize(old, &settings.redact, &patterns)),
                Cow::Owned(sanitize(new, &settings.redact, &patterns)),
            )
        } else {
            (Cow::Borrowed(old.as_str()), Cow::Borrowed(new.as_str()))
        };
        let mut old_lines = split_lines(&old);
        let mut new_lines = split_lines(&new);
        if settings.mode == CompareMode::Unordered {
            old_lines.sort_unstable();
            new_lines.sort_unstable();
        }
        if !lines_match(&old_lines, &new_lines, wildcard) {
            let mut what = describe(kind);
            if stored_kinds.iter().filter(|k| *k == kind).count() > 1 {
                what = format!("{what} (output {})", index + 1);
            }
            return Err(Mismatch {
                message: format!("{what} differs from the verified output"),
                diff: unified_diff(&old_lines, &new_lines, wildcard),
            });
        }
    }
    Ok(())
}

/// An item kind in a learner's words: `stdout`, `the result`, ….
fn describe(kind: &str) -> String {
    match kind.split_once(':') {
        Some(("stream", name)) => name.to_string(),
        Some(("execute_result", _)) => "the result".to_string(),
        Some(("display_data", _)) => "the displayed output".to_string(),
        _ if kind == "error" => "the error".to_string(),
        _ => kind.to_string(),
    }
}

/// A stored line for the diff: the wildcard is equal to any fresh line, so a
/// line it matched is context, not a change.
struct StoredLine<'a> {
    text: &'a str,
    any: bool,
}

/// A fresh line for the diff.
struct FreshLine<'a>(&'a str);

impl PartialEq<StoredLine<'_>> for FreshLine<'_> {
    fn eq(&self, stored: &StoredLine<'_>) -> bool {
        stored.any || stored.text == self.0
    }
}

/// A unified diff in `difflib.unified_diff`'s format, headers `expected` and
/// `got`, cut after [`MAX_DIFF_LINES`] lines.
fn unified_diff(stored: &[&str], fresh: &[&str], wildcard: Option<&str>) -> String {
    let deadline = Some(Instant::now() + DIFF_TIME);
    // Equal lines first, so the wildcard cannot take a line that matches
    // exactly; then the wildcard only inside what is left changed.
    let mut hook = Replace::new(Capture::new());
    let Ok(()) = myers::diff_deadline(
        &mut hook,
        stored,
        0..stored.len(),
        fresh,
        0..fresh.len(),
        deadline,
    );
    let old: Vec<StoredLine> = stored
        .iter()
        .map(|&text| StoredLine {
            text,
            any: Some(text) == wildcard,
        })
        .collect();
    let new: Vec<FreshLine> = fresh.iter().map(|&text| FreshLine(text)).collect();
    let mut ops: Vec<DiffOp> = Vec::new();
    for op in hook.into_inner().into_ops() {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        if tag == DiffTag::Replace && wildcard.is_some() {
            let mut hook = Replace::new(Capture::new());
            let Ok(()) = myers::diff_deadline(
                &mut hook,
                &old[..],
                old_range,
                &new[..],
                new_range,
                deadline,
            );
            ops.extend(hook.into_inner().into_ops());
        } else {
            ops.push(op);
        }
    }
    let ops = merge_equal(ops);

    let mut lines = vec!["--- expected".to_string(), "+++ got".to_string()];
    for group in group_diff_ops(ops, CONTEXT) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        lines.push(format!(
            "@@ -{} +{} @@",
            hunk_range(first.old_range().start, last.old_range().end),
            hunk_range(first.new_range().start, last.new_range().end),
        ));
        for op in &group {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            match tag {
                DiffTag::Equal => lines.extend(old_range.map(|i| format!(" {}", stored[i]))),
                DiffTag::Delete | DiffTag::Insert | DiffTag::Replace => {
                    lines.extend(old_range.map(|i| format!("-{}", stored[i])));
                    lines.extend(new_range.map(|i| format!("+{}", fresh[i])));
                }
            }
        }
    }
    if lines.len() > MAX_DIFF_LINES {
        let more = lines.len() - MAX_DIFF_LINES;
        lines.truncate(MAX_DIFF_LINES);
        let noun = if more == 1 { "line" } else { "lines" };
        lines.push(format!("… {more} more {noun}"));
    }
    lines.join("\n")
}

/// Joins neighbouring `Equal` ops (from the two passes) so context is
/// trimmed and hunks are split as for a single diff.
fn merge_equal(ops: Vec<DiffOp>) -> Vec<DiffOp> {
    let mut merged: Vec<DiffOp> = Vec::with_capacity(ops.len());
    for op in ops {
        if let (Some(DiffOp::Equal { len, .. }), DiffOp::Equal { len: more, .. }) =
            (merged.last_mut(), &op)
        {
            *len += more;
            continue;
        }
        merged.push(op);
    }
    merged
}

/// A hunk's line range as difflib writes it: `start,length`, 1-based; just
/// `start` for one line; the line before for an empty range.
fn hunk_range(start: usize, end: usize) -> String {
    match end - start {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        length => format!("{},{length}", start + 1),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::settings::Pattern;

    fn stdout(text: &str) -> Value {
        json!({"output_type": "stream", "name": "stdout", "text": text})
    }

    fn stderr(text: &str) -> Value {
        json!({"output_type": "stream", "name": "stderr", "text": text})
    }

    fn error(ename: &str, evalue: &str) -> Value {
        json!({"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []})
    }

    fn mode(mode: CompareMode) -> Compare {
        Compare {
            mode,
            ..Compare::default()
        }
    }

    fn with_redact(mode_: CompareMode, redact: &[Redaction]) -> Compare {
        Compare {
            redact: redact.to_vec(),
            ..mode(mode_)
        }
    }

    fn with_wildcard(mode_: CompareMode, wildcard: &str) -> Compare {
        Compare {
            wildcard: Some(wildcard.to_string()),
            ..mode(mode_)
        }
    }

    fn with_pattern(mode_: CompareMode, regex: &str, replace: &str) -> Compare {
        Compare {
            patterns: vec![Pattern {
                regex: regex.to_string(),
                replace: replace.to_string(),
            }],
            ..mode(mode_)
        }
    }

    fn check(stored: &[Value], fresh: &[Value], settings: &Compare) -> Result<(), Mismatch> {
        compare(stored, fresh, settings)
    }

    #[test]
    fn exact_passes_on_equal_text() {
        let out = [stdout("a\nb\n")];
        assert_eq!(check(&out, &out, &mode(CompareMode::Exact)), Ok(()));
    }

    #[test]
    fn exact_fails_on_different_text() {
        let err = check(
            &[stdout("a\nb\n")],
            &[stdout("a\nc\n")],
            &mode(CompareMode::Exact),
        )
        .unwrap_err();
        assert_eq!(err.message, "stdout differs from the verified output");
        assert_eq!(
            err.diff,
            "--- expected\n+++ got\n@@ -1,2 +1,2 @@\n a\n-b\n+c"
        );
    }

    #[test]
    fn exact_does_not_redact() {
        let settings = with_redact(CompareMode::Exact, &[Redaction::Times]);
        let err = check(&[stdout("took 12 ms")], &[stdout("took 7.5 s")], &settings);
        assert!(err.is_err());
    }

    #[test]
    fn line_breaks_follow_python_splitlines() {
        // A trailing newline and \r\n versus \n do not count as differences.
        let settings = mode(CompareMode::Exact);
        assert_eq!(
            check(&[stdout("a\nb\n")], &[stdout("a\r\nb")], &settings),
            Ok(())
        );
        assert_eq!(split_lines("a\rb\u{2028}c\n\n"), ["a", "b", "c", ""]);
        assert!(split_lines("").is_empty());
    }

    #[test]
    fn sanitized_redacts_times() {
        let settings = with_redact(CompareMode::Sanitized, &[Redaction::Times]);
        assert_eq!(
            check(
                &[stdout("took 12 ms\n")],
                &[stdout("took 7.5 s\n")],
                &settings
            ),
            Ok(())
        );
        assert_eq!(
            check(&[stdout("took 3µs")], &[stdout("took 40ns")], &settings),
            Ok(())
        );
    }

    #[test]
    fn sanitized_redacts_addresses_ids_and_pids() {
        let settings = with_redact(
            CompareMode::Sanitized,
            &[Redaction::Addresses, Redaction::Ids, Redaction::Pids],
        );
        let stored = [stdout("ThreadId(2) at 0x7f3a00 task #4 in pid 4242\n")];
        let fresh = [stdout("ThreadId(17) at 0xdeadbeef task #12 in pid 7\n")];
        assert_eq!(check(&stored, &fresh, &settings), Ok(()));
    }

    #[test]
    fn sanitized_fails_when_text_differs_after_redaction() {
        let settings = with_redact(CompareMode::Sanitized, &[Redaction::Times]);
        let err = check(
            &[stdout("sum = 10, took 12 ms\n")],
            &[stdout("sum = 11, took 9 ms\n")],
            &settings,
        )
        .unwrap_err();
        // The diff shows the redacted text: that is what was compared.
        assert_eq!(
            err.diff,
            "--- expected\n+++ got\n@@ -1 +1 @@\n-sum = 10, took <time>\n+sum = 11, took <time>"
        );
    }

    #[test]
    fn sanitized_applies_patterns_with_captures() {
        let settings = with_pattern(
            CompareMode::Sanitized,
            r"panicked at [^\n]*:\d+:\d+:",
            "panicked at <location>:",
        );
        let stored = [stderr("thread 'main' panicked at src/lib.rs:3:5:\nboom\n")];
        let fresh = [stderr("thread 'main' panicked at src/lib.rs:40:9:\nboom\n")];
        assert_eq!(check(&stored, &fresh, &settings), Ok(()));

        let settings = with_pattern(CompareMode::Sanitized, r"worker (\d+)", "w$1");
        assert_eq!(
            check(&[stdout("w3")], &[stdout("worker 3")], &settings),
            Ok(())
        );
    }

    #[test]
    fn unordered_passes_on_lines_in_any_order() {
        let settings = with_redact(CompareMode::Unordered, &[Redaction::Times]);
        let stored = [stdout("task 1 done in 3 ms\ntask 2 done in 5 ms\ntask 3\n")];
        let fresh = [stdout("task 3\ntask 2 done in 1 ms\ntask 1 done in 9 ms\n")];
        assert_eq!(check(&stored, &fresh, &settings), Ok(()));
    }

    #[test]
    fn unordered_fails_on_different_lines() {
        let settings = mode(CompareMode::Unordered);
        // Lines are a multiset: a duplicate does not stand in for a missing one.
        let err = check(&[stdout("a\nb\nb\n")], &[stdout("b\na\na\n")], &settings).unwrap_err();
        assert_eq!(err.message, "stdout differs from the verified output");
        assert_eq!(
            err.diff,
            "--- expected\n+++ got\n@@ -1,3 +1,3 @@\n a\n-b\n+a\n b"
        );
    }

    #[test]
    fn shape_compares_only_kinds() {
        let settings = mode(CompareMode::Shape);
        assert_eq!(
            check(&[stdout("1 2 3")], &[stdout("3 1 2\n4")], &settings),
            Ok(())
        );
        let err = check(
            &[stdout("ok\n")],
            &[stdout("ok\n"), error("Error", "boom")],
            &settings,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "output kinds differ: expected [stream:stdout], got [stream:stdout, error]"
        );
        assert_eq!(
            err.diff,
            "--- expected\n+++ got\n@@ -1 +1,2 @@\n stream:stdout\n+error"
        );
    }

    #[test]
    fn kinds_are_compared_in_text_modes_too() {
        let err = check(&[stdout("x")], &[stderr("x")], &mode(CompareMode::Exact)).unwrap_err();
        assert_eq!(
            err.message,
            "output kinds differ: expected [stream:stdout], got [stream:stderr]"
        );
    }

    #[test]
    fn ignore_passes_anything() {
        let settings = mode(CompareMode::Ignore);
        assert_eq!(
            check(&[stdout("a")], &[error("E", "x"), stderr("b")], &settings),
            Ok(())
        );
    }

    #[test]
    fn wildcard_line_matches_any_one_line() {
        let settings = with_wildcard(CompareMode::Exact, "...");
        let stored = [stdout("start\n...\nend\n")];
        assert_eq!(
            check(&stored, &[stdout("start\nrandom 8271\nend\n")], &settings),
            Ok(())
        );
        // Exactly one line: not zero, not two.
        let err = check(&stored, &[stdout("start\nend\n")], &settings).unwrap_err();
        assert_eq!(
            err.diff,
            "--- expected\n+++ got\n@@ -1,3 +1,2 @@\n start\n-...\n end"
        );
        let err = check(&stored, &[stdout("start\nx\ny\nend\n")], &settings).unwrap_err();
        // The line the wildcard matched is context, not a change.
        assert_eq!(
            err.diff,
            "--- expected\n+++ got\n@@ -1,3 +1,4 @@\n start\n ...\n+y\n end"
        );
        // Only a stored wildcard is special.
        let err = check(&[stdout("x\n")], &[stdout("...\n")], &settings);
        assert!(err.is_err());
    }

    #[test]
    fn stderr_may_come_anywhere_among_stdout() {
        let stored = [stderr("warn\n"), stdout("a\n"), stdout("b\n")];
        let fresh = [stdout("a\n"), stderr("warn\n"), stdout("b\n")];
        assert!(check(&stored, &fresh, &mode(CompareMode::Exact)).is_ok());
        let wrong = [stdout("a\n"), stdout("b\n"), stderr("other\n")];
        assert!(check(&stored, &wrong, &mode(CompareMode::Exact)).is_err());
    }

    #[test]
    fn list_text_equals_string_text() {
        let stored = [json!({"output_type": "stream", "name": "stdout", "text": ["a\n", "b\n"]})];
        assert_eq!(
            check(&stored, &[stdout("a\nb\n")], &mode(CompareMode::Exact)),
            Ok(())
        );
        let result = |text: Value| {
            json!({
                "output_type": "execute_result",
                "execution_count": 1,
                "metadata": {},
                "data": {"text/plain": text},
            })
        };
        assert_eq!(
            check(
                &[result(json!(["[1,\n", " 2]"]))],
                &[result(json!("[1,\n 2]"))],
                &mode(CompareMode::Exact)
            ),
            Ok(())
        );
    }

    #[test]
    fn split_stream_messages_are_joined() {
        let stored = [stdout("one\ntwo\nthree\n")];
        let fresh = [stdout("one\ntw"), stdout("o\n"), stdout("three\n")];
        assert_eq!(check(&stored, &fresh, &mode(CompareMode::Exact)), Ok(()));
        assert_eq!(
            output_items(&fresh),
            [("stream:stdout".to_string(), "one\ntwo\nthree\n".to_string())]
        );
    }

    #[test]
    fn streams_of_different_names_are_not_joined() {
        let items = output_items(&[stdout("a"), stderr("b"), stdout("c")]);
        let kinds: Vec<&str> = items.iter().map(|(kind, _)| kind.as_str()).collect();
        assert_eq!(kinds, ["stream:stdout", "stream:stderr", "stream:stdout"]);
        let err = check(
            &[stdout("a"), stderr("b"), stdout("c")],
            &[stdout("a"), stderr("b"), stdout("d")],
            &mode(CompareMode::Exact),
        )
        .unwrap_err();
        // For comparison stdout is one block, stderr another.
        assert_eq!(err.message, "stdout differs from the verified output");
    }

    #[test]
    fn rich_outputs_are_keyed_by_sorted_mime_types() {
        let display = json!({
            "output_type": "display_data",
            "metadata": {},
            "data": {"text/plain": "<table>", "text/html": "<b>x</b>"},
        });
        assert_eq!(
            output_items(&[display]),
            [(
                "display_data:text/html,text/plain".to_string(),
                "<table>".to_string()
            )]
        );
    }

    #[test]
    fn pictures_compare_by_kind_and_text_not_pixels() {
        // Two runs never draw the same timeline: the picture's bytes (SVG or
        // PNG) are not compared, its MIME types and text/plain are.
        let picture = |svg: &str, png: &str| {
            json!({
                "output_type": "display_data",
                "metadata": {"image/png": {"width": 720, "height": 92}},
                "data": {"image/svg+xml": svg, "image/png": png, "text/plain": "[SVG]"},
            })
        };
        let exact = mode(CompareMode::Exact);
        assert_eq!(
            check(
                &[picture("<svg>a</svg>", "iVBORa")],
                &[picture("<svg>b</svg>", "iVBORb")],
                &exact
            ),
            Ok(())
        );
        let svg_only = json!({
            "output_type": "display_data",
            "metadata": {},
            "data": {"image/svg+xml": "<svg/>", "text/plain": "[SVG]"},
        });
        let err = check(&[picture("<svg/>", "iVBOR")], &[svg_only], &exact).unwrap_err();
        assert_eq!(
            err.message,
            "output kinds differ: expected [display_data:image/png,image/svg+xml,text/plain], \
             got [display_data:image/svg+xml,text/plain]"
        );
    }

    #[test]
    fn error_outputs_compare_name_and_value() {
        let settings = mode(CompareMode::Exact);
        let stored = [error("Error", "index out of bounds")];
        assert_eq!(
            output_items(&stored),
            [(
                "error".to_string(),
                "Error: index out of bounds".to_string()
            )]
        );
        assert_eq!(
            check(&stored, &[error("Error", "index out of bounds")], &settings),
            Ok(())
        );
        let err = check(&stored, &[error("Error", "deadlock")], &settings).unwrap_err();
        assert_eq!(err.message, "the error differs from the verified output");
        assert_eq!(
            err.diff,
            "--- expected\n+++ got\n@@ -1 +1 @@\n-Error: index out of bounds\n+Error: deadlock"
        );
    }

    #[test]
    fn bad_pattern_is_a_mismatch_not_a_panic() {
        let settings = with_pattern(CompareMode::Sanitized, "(unclosed", "x");
        let err = check(&[stdout("a")], &[stdout("a")], &settings).unwrap_err();
        assert_eq!(
            err.message,
            r#"bad regex in metadata.conclab.compare.patterns: "(unclosed": unclosed group"#
        );
        assert_eq!(err.diff, "");
        assert_eq!(validate_patterns(&settings), Err(err.message));
        let good = with_pattern(CompareMode::Sanitized, r"\d+", "N");
        assert_eq!(validate_patterns(&good), Ok(()));
    }

    #[test]
    fn long_diffs_are_cut() {
        let stored: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let fresh: String = (0..100).map(|i| format!("row {i}\n")).collect();
        let err = check(
            &[stdout(&stored)],
            &[stdout(&fresh)],
            &mode(CompareMode::Exact),
        )
        .unwrap_err();
        let lines: Vec<&str> = err.diff.lines().collect();
        assert_eq!(lines.len(), MAX_DIFF_LINES + 1);
        // 2 headers, 1 hunk header and 200 changed lines, 40 shown.
        assert_eq!(lines[MAX_DIFF_LINES], "… 163 more lines");
    }

    #[test]
    fn what_a_learner_sees() {
        let settings = Compare {
            redact: vec![Redaction::Times],
            ..with_wildcard(CompareMode::Sanitized, "...")
        };
        let stored = [stdout(
            "spawned 4 workers\n...\nworker 0 got 25 tasks\nworker 1 got 25 tasks\n\
             worker 2 got 25 tasks\nworker 3 got 25 tasks\ntotal: 100 in 12 ms\n",
        )];
        let fresh = [stdout(
            "spawned 4 workers\nready\nworker 0 got 25 tasks\nworker 1 got 25 tasks\n\
             worker 2 got 50 tasks\ntotal: 100 in 3.2 s\n",
        )];
        let err = check(&stored, &fresh, &settings).unwrap_err();
        insta::assert_snapshot!(format!("{}\n{}", err.message, err.diff), @r"
        stdout differs from the verified output
        --- expected
        +++ got
        @@ -2,6 +2,5 @@
         ...
         worker 0 got 25 tasks
         worker 1 got 25 tasks
        -worker 2 got 25 tasks
        -worker 3 got 25 tasks
        +worker 2 got 50 tasks
         total: 100 in <time>
        ");
    }
}
