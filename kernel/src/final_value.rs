//! A cell ending in a plain variable (`v`, `point.x`, `v[0]`) is shown
//! through `&v`.
//!
//! evcxr shows a cell's value by compiling `(value).evcxr_display();`. The
//! kernel's blanket `evcxr_display` for `Debug` types (see
//! [`crate::prelude::runner_setup`]) takes `&mut self` so that a crate's or a
//! type's own `evcxr_display(&self)` wins over it; rustc then needs `&mut v`,
//! which a variable declared without `mut` does not allow. `(&v)` is a
//! temporary, which can always be borrowed mutably, and shows the same.

/// Where the kernel put the `&`: its 1-based line and column in the cell.
/// Error spans on that line after it are one column too far right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// The line of the cell.
    pub line: usize,
    /// The column the `&` now occupies.
    pub column: usize,
}

impl Inserted {
    /// Maps a column rustc reported on the rewritten code back to the cell.
    pub fn column_in_cell(&self, line: usize, column: usize) -> usize {
        if line == self.line && column > self.column {
            column - 1
        } else {
            column
        }
    }
}

/// The cell with `&` before its final value when that value is a plain
/// place (a path, field or simple index), and where it was put; `None` to run
/// it as is. The place must stand after the last `;` of the last line, or
/// alone on the last line after a line that ended a statement.
pub fn borrow_final_place(code: &str) -> Option<(String, Inserted)> {
    let lines: Vec<&str> = code.lines().collect();
    let (index, last) = lines
        .iter()
        .enumerate()
        .rev()
        .find(|(_, line)| !line.trim().is_empty())?;
    // `let v = ..; v` on one line: what follows the last `;`. A `;` in a
    // string or an array type leaves text that is not a place.
    let (offset, place) = match last.rfind(';') {
        Some(semicolon) => (semicolon + 1, &last[semicolon + 1..]),
        None => (0, *last),
    };
    let offset = offset + (place.len() - place.trim_start().len());
    let place = place.trim();
    if !is_place(place) {
        return None;
    }
    if offset == last.len() - last.trim_start().len() {
        // Alone on its line: the line before must have ended a statement, or
        // the "place" may be the end of a longer expression (`a +\n b`).
        let previous = lines[..index]
            .iter()
            .rev()
            .map(|line| line.trim())
            .find(|line| !line.is_empty() && !line.starts_with("//"));
        if let Some(previous) = previous
            && !(previous.ends_with(';') || previous.ends_with('}') || is_command(previous))
        {
            return None;
        }
    }
    let start: usize = lines[..index].iter().map(|l| l.len() + 1).sum::<usize>() + offset;
    // `lines()` also takes "\r\n" as one line end; give up on such cells.
    let start = code.get(start..)?.starts_with(place).then_some(start)?;
    let mut rewritten = String::with_capacity(code.len() + 1);
    rewritten.push_str(&code[..start]);
    rewritten.push('&');
    rewritten.push_str(&code[start..]);
    Some((
        rewritten,
        Inserted {
            line: index + 1,
            column: last[..offset].chars().count() + 1,
        },
    ))
}

/// An evcxr command line (`:dep ...`) or shell line (`!ls`).
fn is_command(line: &str) -> bool {
    line.starts_with(':') || line.starts_with('!')
}

/// `name`, `a::b`, `p.x`, `p.0.y`, optionally ending in one `[...]` index
/// without brackets inside it.
fn is_place(text: &str) -> bool {
    let path = match text.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((path, index)) if !index.contains(['[', ']']) && !index.trim().is_empty() => path,
        Some(_) => return false,
        None => text,
    };
    let mut parts = path.split("::").flat_map(|p| p.split('.'));
    let Some(first) = parts.next() else {
        return false;
    };
    let ident = |p: &str| {
        p.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    const KEYWORDS: [&str; 8] = [
        "true", "false", "break", "continue", "return", "self", "Self", "crate",
    ];
    ident(first)
        && !KEYWORDS.contains(&first)
        && parts.all(|p| ident(p) || (!p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(code: &str) -> Option<String> {
        borrow_final_place(code).map(|(code, _)| code)
    }

    #[test]
    fn a_final_variable_is_borrowed() {
        assert_eq!(
            rewritten("let v = vec![1];\nv").as_deref(),
            Some("let v = vec![1];\n&v")
        );
        assert_eq!(rewritten("v").as_deref(), Some("&v"));
        assert_eq!(
            rewritten("let v: Vec<u32> = Vec::new(); v[3]").as_deref(),
            Some("let v: Vec<u32> = Vec::new(); &v[3]")
        );
        assert_eq!(rewritten("  p.0.x\n\n").as_deref(), Some("  &p.0.x\n\n"));
        assert_eq!(
            rewritten("if a { b; }\nm[\"k\"]").as_deref(),
            Some("if a { b; }\n&m[\"k\"]")
        );
        assert_eq!(
            rewritten(":dep image = \"0.23\"\nstd::f64::consts::PI").as_deref(),
            Some(":dep image = \"0.23\"\n&std::f64::consts::PI")
        );
        let (_, at) = borrow_final_place("let v = 1;\n  v").unwrap();
        assert_eq!(at, Inserted { line: 2, column: 3 });
        assert_eq!(at.column_in_cell(2, 4), 3);
        assert_eq!(at.column_in_cell(1, 4), 4);
    }

    #[test]
    fn other_endings_are_left_alone() {
        for code in [
            "vec![1, 2]",
            "1 + 2",
            "v.len()",
            "let total = a +\n    b",
            "foo(a,\n    b)",
            "v;",
            "true",
            "fn f() {}",
            "let x = 1;\n&x",
            "m[v[0]]",
            "let a = [0u8; 3]",
            "let s = \"a; b\"",
            "x; y.len()",
            "",
        ] {
            assert_eq!(rewritten(code), None, "{code:?}");
        }
    }
}
