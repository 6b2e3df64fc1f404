//! Whether a cell is ready to run: a lexical scan of brackets, strings and
//! comments, for `is_complete_request` (what a console asks before it runs
//! what was typed, or opens a new line instead).

/// The answer to "can this code run as it is?".
#[derive(Debug, PartialEq, Eq)]
pub enum Completeness {
    /// Every bracket, string and comment is closed.
    Complete,
    /// Something is still open; `indent` is what the next line should start with.
    Incomplete { indent: String },
    /// A closing bracket that matches nothing: more input cannot fix it.
    Invalid,
}

/// Scans `code` the way rustc's lexer would for brackets, strings, raw
/// strings, character literals, lifetimes and (nested) comments.
pub fn check(code: &str) -> Completeness {
    let chars: Vec<char> = code.chars().collect();
    let mut open: Vec<char> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => match skip_block_comment(&chars, i) {
                Some(end) => i = end,
                None => {
                    return Completeness::Incomplete {
                        indent: String::new(),
                    };
                }
            },
            '"' => match skip_string(&chars, i + 1) {
                Some(end) => i = end,
                None => {
                    return Completeness::Incomplete {
                        indent: String::new(),
                    };
                }
            },
            'r' | 'b' | 'c' if starts_token(&chars, i) => {
                if let Some(hashes_at) = raw_string_start(&chars, i) {
                    match skip_raw_string(&chars, hashes_at) {
                        Some(end) => i = end,
                        None => {
                            return Completeness::Incomplete {
                                indent: String::new(),
                            };
                        }
                    }
                } else {
                    i += 1;
                }
                continue;
            }
            '\'' => {
                i = skip_char_or_lifetime(&chars, i);
                continue;
            }
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let expected = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(expected) {
                    return Completeness::Invalid;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if open.is_empty() {
        Completeness::Complete
    } else {
        Completeness::Incomplete {
            indent: "    ".repeat(open.len()),
        }
    }
}

/// Whether position `i` starts a token (is not inside an identifier).
fn starts_token(chars: &[char], i: usize) -> bool {
    i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// For `r"`, `r#"`, `br"`, `cr#"` at `i`: the index of the first `#` or `"`
/// after the `r`.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    let r_at = match chars[i] {
        'r' => i,
        'b' | 'c' if chars.get(i + 1) == Some(&'r') => i + 1,
        _ => return None,
    };
    let mut j = r_at + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some(r_at + 1)
}

/// From the first `#` or `"` of a raw string, the index just past its end.
fn skip_raw_string(chars: &[char], start: usize) -> Option<usize> {
    let hashes = chars[start..].iter().take_while(|&&c| c == '#').count();
    let mut i = start + hashes + 1;
    while i < chars.len() {
        if chars[i] == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    None
}

/// From just after an opening `"`, the index just past the closing one.
fn skip_string(chars: &[char], mut i: usize) -> Option<usize> {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// From `/*`, the index just past the matching `*/`; comments nest.
fn skip_block_comment(chars: &[char], mut i: usize) -> Option<usize> {
    let mut depth = 0;
    while i + 1 < chars.len() {
        match (chars[i], chars[i + 1]) {
            ('/', '*') => {
                depth += 1;
                i += 2;
            }
            ('*', '/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// From a `'`: past a character literal (`'a'`, `'\n'`, `'\u{1F600}'`), or
/// past the quote of a lifetime or label (`'a`, `'static`).
fn skip_char_or_lifetime(chars: &[char], i: usize) -> usize {
    match (chars.get(i + 1), chars.get(i + 2)) {
        (Some('\\'), _) => {
            let mut j = i + 2;
            while j < chars.len() && chars[j] != '\'' && chars[j] != '\n' {
                j += 1;
            }
            j + 1
        }
        (Some(_), Some('\'')) => i + 3,
        _ => i + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incomplete(code: &str) -> bool {
        matches!(check(code), Completeness::Incomplete { .. })
    }

    #[test]
    fn closed_code_is_complete() {
        for code in [
            "",
            "1 + 2",
            "fn f() {}",
            "let s = \"a { b\";",
            "let s = r#\"quote \" and { brace\"#;",
            "let c = '{';",
            "let c = '\\'';",
            "fn f<'a>(x: &'a str) -> &'a str { x }",
            "// an open { in a comment",
            "/* nested /* comment */ with { */ 1",
            "let b = b'{';",
            "let u = '\\u{7b}';",
            "'outer: loop { break 'outer; }",
        ] {
            assert_eq!(check(code), Completeness::Complete, "{code}");
        }
    }

    #[test]
    fn open_brackets_strings_and_comments_are_incomplete() {
        for code in [
            "fn f() {",
            "let v = vec![1, 2,",
            "let s = \"abc",
            "let s = r##\"abc\"#",
            "/* open comment",
            "/* nested /* only one closed */",
            "let s = \"escaped quote \\\"",
        ] {
            assert!(incomplete(code), "{code}");
        }
    }

    #[test]
    fn indent_follows_depth() {
        assert_eq!(
            check("fn f() {\n    if x {"),
            Completeness::Incomplete {
                indent: " ".repeat(8)
            }
        );
    }

    #[test]
    fn a_stray_or_mismatched_closer_is_invalid() {
        for code in ["fn f() }", ")", "let v = [1, 2);", "{ ( }"] {
            assert_eq!(check(code), Completeness::Invalid, "{code}");
        }
    }
}
