//! A cell ending in a place (`v`, `point.x`, `v[0]`) shows it as a cell
//! ending in any other value: through its type's own `evcxr_display`,
//! whatever that method's receiver, else with `{:?}`.
//!
//! evcxr shows a cell's value by compiling `(value).evcxr_display();`, and
//! rustc's method lookup tries `value`, `&value`, then `&mut value`. The
//! kernel's blanket `evcxr_display` for `Debug` types takes `&mut self` so
//! that it is found last (see [`crate::prelude::runner_setup`]), which on a
//! place asks for `&mut place`: a variable declared without `mut` refuses.
//! So the kernel has evcxr show `(&ConclabPlace(&place)).conclab_value()`
//! instead: a copy of the place when its type is `Copy` (a temporary, which
//! anything may borrow mutably), else `&place`, on which a type's or a
//! crate's `evcxr_display(&self)` and the blanket one are found as before.
//!
//! What `&place` cannot reach is an `evcxr_display(self)` of a type that is
//! not `Copy`: that method moves its value. For a variable the kernel adds a
//! probe that never runs, `let _ = || (*conclab_probe(&v)).evcxr_display();`,
//! which fails to compile (E0507, a move out of a reference) exactly then;
//! the cell is then run as `(v).evcxr_display();`, a statement, which moves
//! `v` into its method as Rust's `self` says. (As the cell's final value,
//! evcxr would take the move's error as a reason to fall back to `{:?}`.)

/// What the kernel puts around a final place, for the code evcxr runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// The line of the cell the place is on.
    pub line: usize,
    /// The 1-based column at which the place starts in the cell, and at
    /// which the inserted text starts in the code run.
    pub column: usize,
    /// How many characters were inserted before the place.
    pub width: usize,
    /// How many of them, from `column` on, are the probe.
    pub probe: usize,
}

impl Inserted {
    /// Maps a column rustc reported on the code run back to the cell: after
    /// the inserted text, shifted back by its width; within it, the place's.
    pub fn column_in_cell(&self, line: usize, column: usize) -> usize {
        if line != self.line || column <= self.column {
            column
        } else if column >= self.column + self.width {
            column - self.width
        } else {
            self.column
        }
    }

    /// Whether a span starting here is in the probe: not the learner's code.
    pub fn in_probe(&self, line: usize, column: usize) -> bool {
        line == self.line && (self.column..self.column + self.probe).contains(&column)
    }
}

/// The cell's final place, if it ends in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalPlace<'a> {
    code: &'a str,
    /// Byte offset of the place in `code`.
    start: usize,
    place: &'a str,
    line: usize,
    column: usize,
}

impl<'a> FinalPlace<'a> {
    /// The place the cell ends in: a path, field or simple index standing
    /// after the last `;` of the last line, or alone on the last line after
    /// a line that ended a statement. `None` to run the cell as it is.
    pub fn find(code: &'a str) -> Option<FinalPlace<'a>> {
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
        Some(FinalPlace {
            code,
            start,
            place,
            line: index + 1,
            column: last[..offset].chars().count() + 1,
        })
    }

    /// The cell showing the place as a value (see the module's docs), with
    /// the probe when the place is a variable.
    pub fn shown(&self) -> (String, Inserted) {
        let probe = if self.is_variable() {
            format!(
                "let _ = || (*conclab_probe(&{})).evcxr_display(); ",
                self.place
            )
        } else {
            String::new()
        };
        let before = format!("{probe}(&ConclabPlace(&");
        let inserted = self.inserted(&before, probe.chars().count());
        (self.rewrite(&before, ")).conclab_value()"), inserted)
    }

    /// The cell moving the variable into its type's `evcxr_display(self)`,
    /// for when [`FinalPlace::shown`]'s probe found that method; `None` for
    /// a place that is not a variable.
    pub fn moved(&self) -> Option<(String, Inserted)> {
        self.is_variable().then(|| {
            (
                self.rewrite("(", ").evcxr_display();"),
                self.inserted("(", 0),
            )
        })
    }

    /// A variable (or constant) rather than a field or an element: moving a
    /// field would lose the rest of its variable, and nothing can be moved
    /// out of an index.
    fn is_variable(&self) -> bool {
        !self.place.contains(['.', '[', ':'])
    }

    fn inserted(&self, before: &str, probe: usize) -> Inserted {
        Inserted {
            line: self.line,
            column: self.column,
            width: before.chars().count(),
            probe,
        }
    }

    fn rewrite(&self, before: &str, after: &str) -> String {
        let end = self.start + self.place.len();
        let mut code = String::with_capacity(self.code.len() + before.len() + after.len());
        code.push_str(&self.code[..self.start]);
        code.push_str(before);
        code.push_str(self.place);
        code.push_str(after);
        code.push_str(&self.code[end..]);
        code
    }
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

    fn shown(code: &str) -> Option<String> {
        FinalPlace::find(code).map(|place| place.shown().0)
    }

    fn value(place: &str) -> String {
        format!("(&ConclabPlace(&{place})).conclab_value()")
    }

    fn probe(variable: &str) -> String {
        format!("let _ = || (*conclab_probe(&{variable})).evcxr_display(); ")
    }

    #[test]
    fn a_final_place_is_shown_as_a_value() {
        assert_eq!(
            shown("let v = vec![1];\nv"),
            Some(format!("let v = vec![1];\n{}{}", probe("v"), value("v")))
        );
        assert_eq!(shown("v"), Some(format!("{}{}", probe("v"), value("v"))));
        assert_eq!(
            shown("let v: Vec<u32> = Vec::new(); v[3]"),
            Some(format!("let v: Vec<u32> = Vec::new(); {}", value("v[3]")))
        );
        assert_eq!(
            shown("  p.0.x\n\n"),
            Some(format!("  {}\n\n", value("p.0.x")))
        );
        assert_eq!(
            shown("if a { b; }\nm[\"k\"]"),
            Some(format!("if a {{ b; }}\n{}", value("m[\"k\"]")))
        );
        assert_eq!(
            shown(":dep image = \"0.23\"\nstd::f64::consts::PI"),
            Some(format!(
                ":dep image = \"0.23\"\n{}",
                value("std::f64::consts::PI")
            ))
        );
    }

    #[test]
    fn only_a_variable_is_moved_into_its_method() {
        let code = "let v = 1;\n  v\n";
        let (moved, at) = FinalPlace::find(code).unwrap().moved().unwrap();
        assert_eq!(moved, "let v = 1;\n  (v).evcxr_display();\n");
        assert_eq!(
            at,
            Inserted {
                line: 2,
                column: 3,
                width: 1,
                probe: 0
            }
        );
        for place in ["p.x", "v[0]", "a::B"] {
            assert_eq!(FinalPlace::find(place).unwrap().moved(), None, "{place}");
        }
    }

    #[test]
    fn columns_map_back_to_the_cell() {
        let (code, at) = FinalPlace::find("let v = 1;  v").unwrap().shown();
        assert_eq!((at.line, at.column), (1, 13));
        assert_eq!(at.probe, probe("v").len());
        let run_column = |text: &str| code[..code.rfind(text).unwrap()].chars().count() + 1;
        // The place itself, in the value shown and in the probe.
        assert_eq!(at.column_in_cell(1, run_column("v)).")), 13);
        assert!(!at.in_probe(1, run_column("v)).")));
        let in_probe = run_column("v)).evcxr");
        assert!(at.in_probe(1, in_probe));
        assert_eq!(at.column_in_cell(1, in_probe), 13);
        // Before it, and other lines, as they are.
        assert_eq!(at.column_in_cell(1, 5), 5);
        assert_eq!(at.column_in_cell(2, 40), 40);
        assert!(!at.in_probe(1, 5) && !at.in_probe(2, in_probe));
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
            assert_eq!(shown(code), None, "{code:?}");
        }
    }
}
