//! Test cells from the source, made immune to shadowing by the learner.
//!
//! evcxr keeps every item a cell defines, macros included: a solution cell
//! with `macro_rules! assert_eq { ($($t:tt)*) => {} }` would turn every later
//! assertion into nothing, and a `mod labkit { … }` would stand in for the
//! real crate. So before a test cell runs, std's macros and labkit are named
//! by absolute path (`::std::assert_eq!`, `::labkit::`), which no item of
//! the learner's can shadow. Strings, characters and comments are left as
//! they are, so messages and outputs do not change.

/// std macros a test may use; each becomes `::std::NAME!`.
const MACROS: &[&str] = &[
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "panic",
    "unreachable",
    "unimplemented",
    "todo",
    "println",
    "print",
    "eprintln",
    "eprint",
    "format",
    "write",
    "writeln",
    "vec",
    "matches",
];

/// Crates a test may use; `NAME::` becomes `::NAME::`.
const CRATES: &[&str] = &["labkit", "serde_json", "crossbeam", "rayon", "std"];

/// `code` with std's macros and the lab's crates named by absolute path.
pub fn harden(code: &str) -> String {
    let hardened = absolute_paths(code);
    // evcxr reads a leading line that starts with `:` as a command (`:dep`).
    let first_code_line = hardened
        .lines()
        .find(|line| !line.trim().is_empty() && !line.starts_with("//"));
    if first_code_line.is_some_and(|line| line.trim_start().starts_with(':')) {
        format!("();\n{hardened}")
    } else {
        hardened
    }
}

fn absolute_paths(code: &str) -> String {
    let bytes = code.as_bytes();
    let mut out = String::with_capacity(code.len() + 64);
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let skip = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |end| end + 2)
        } else if let Some(len) = raw_string(rest) {
            len
        } else if rest.starts_with('"') || rest.starts_with("b\"") {
            quoted(rest, rest.find('"').expect("starts with a quote"), '"')
        } else if rest.starts_with('\'') {
            char_literal(rest)
        } else {
            0
        };
        if skip > 0 {
            out.push_str(&rest[..skip]);
            i += skip;
            continue;
        }
        let c = rest.chars().next().expect("not at the end");
        if c.is_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..len];
            let after = &rest[len..];
            if !follows_path(&out) {
                if MACROS.contains(&word) && after.starts_with('!') && !after.starts_with("!=") {
                    out.push_str("::std::");
                } else if CRATES.contains(&word) && after.starts_with("::") {
                    out.push_str("::");
                }
            }
            out.push_str(word);
            i += len;
            continue;
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Whether the text so far ends a path or a field access (`x::`, `x.`, a
/// `use` list) or an identifier, after which a name is not a fresh path.
fn follows_path(before: &str) -> bool {
    let trimmed = before.trim_end();
    trimmed.ends_with("::")
        || trimmed.ends_with('.')
        || trimmed.ends_with('{') && trimmed.trim_end_matches('{').trim_end().ends_with("::")
        || trimmed.ends_with(',') && inside_use_list(trimmed)
        || before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
        || trimmed.ends_with("macro_rules!")
        || trimmed.ends_with("fn")
        || trimmed.ends_with("mod")
}

/// Inside `use a::{b, c}`: the names after commas are not fresh paths.
fn inside_use_list(before: &str) -> bool {
    match (before.rfind("::{"), before.rfind('}')) {
        (Some(open), Some(close)) => open > close,
        (Some(_), None) => true,
        _ => false,
    }
}

/// The length of a raw string literal at the start of `text`, if one is.
fn raw_string(text: &str) -> Option<usize> {
    let start = if text.starts_with("br") {
        2
    } else if text.starts_with('r') {
        1
    } else {
        return None;
    };
    let hashes = text[start..].chars().take_while(|&c| c == '#').count();
    if !text[start + hashes..].starts_with('"') {
        return None;
    }
    let close = format!("\"{}", "#".repeat(hashes));
    let body = start + hashes + 1;
    Some(
        text[body..]
            .find(&close)
            .map_or(text.len(), |end| body + end + close.len()),
    )
}

/// The length of a quoted literal whose opening `quote` is at `open`.
fn quoted(text: &str, open: usize, quote: char) -> usize {
    let mut escaped = false;
    for (offset, c) in text[open + 1..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == quote => return open + 1 + offset + 1,
            _ => {}
        }
    }
    text.len()
}

/// A char literal (`'x'`, `'\n'`), or just the quote of a lifetime (`'a`).
fn char_literal(text: &str) -> usize {
    let mut chars = text[1..].chars();
    match (chars.next(), chars.next()) {
        (Some('\\'), _) => quoted(text, 0, '\''),
        (Some(c), Some('\'')) => 1 + c.len_utf8() + 1,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::{absolute_paths, harden};

    #[test]
    fn a_cell_never_starts_with_what_evcxr_reads_as_a_command() {
        assert_eq!(
            harden("// a test\nassert!(true);"),
            "();\n// a test\n::std::assert!(true);"
        );
        assert_eq!(
            harden("let x = 1;\nassert!(x == 1);"),
            "let x = 1;\n::std::assert!(x == 1);"
        );
    }

    #[test]
    fn std_macros_and_lab_crates_get_absolute_paths() {
        assert_eq!(
            absolute_paths(r#"assert_eq!(f(), vec![1]); let t = labkit::timeline::record(|| 1);"#),
            r#"::std::assert_eq!(f(), ::std::vec![1]); let t = ::labkit::timeline::record(|| 1);"#
        );
    }

    #[test]
    fn strings_chars_and_comments_stay_as_they_are() {
        let code = r##"assert!(x, "inside labkit::in_span(\"fetch\", i, ..) or assert!"); // println!("x")
let c = '"'; let r = r#"labkit::x "# ; /* vec![] */ let l: &'static str = "";"##;
        let hardened = absolute_paths(code);
        assert!(hardened.starts_with(
            r#"::std::assert!(x, "inside labkit::in_span(\"fetch\", i, ..) or assert!");"#
        ));
        assert!(hardened.contains(r#"// println!("x")"#));
        assert!(hardened.contains(r##"r#"labkit::x "#"##));
        assert!(hardened.contains("/* vec![] */"));
        assert!(hardened.contains("&'static str"));
    }

    #[test]
    fn paths_methods_and_comparisons_are_not_touched() {
        assert_eq!(
            absolute_paths("::std::assert!(a != b); x.print(); std::io::stdout(); a!=b"),
            "::std::assert!(a != b); x.print(); ::std::io::stdout(); a!=b"
        );
        assert_eq!(
            absolute_paths("use std::{fmt, io};"),
            "use ::std::{fmt, io};"
        );
        assert_eq!(absolute_paths("my_assert!(x)"), "my_assert!(x)");
    }
}
