//! Where in the learner's cell a place in evcxr's generated code is.
//!
//! evcxr compiles each cell as `src/lib.rs` of a crate it writes, with the
//! cell's statements copied into generated code, so a panic's location names
//! a line of that file. rustc's spans for compile errors are mapped back by
//! evcxr; a panic's location is only text, so it is mapped here by finding
//! the generated line's text among the cell's lines.

/// The file evcxr writes each cell's crate to, relative to its `EVCXR_TMPDIR`.
pub const GENERATED_FILE: &str = "src/lib.rs";

/// Maps `location` (`file:line:column`, as a panic reports it) in the
/// generated code `generated` to the 1-based line and column within `cell`,
/// or `None` when it is not a place in the generated file or its line is not
/// one of the cell's (generated code, or code of another cell).
pub fn cell_position(location: &str, generated: &str, cell: &str) -> Option<(usize, usize)> {
    let mut parts = location.rsplitn(3, ':');
    let column: usize = parts.next()?.parse().ok()?;
    let line: usize = parts.next()?.parse().ok()?;
    if parts.next()? != GENERATED_FILE {
        return None;
    }
    let generated: Vec<&str> = generated.lines().collect();
    let cell: Vec<&str> = cell.lines().collect();
    let target = *generated.get(line.checked_sub(1)?)?;
    // Candidates: cell lines whose text is in the generated line at the
    // panic's column. evcxr may put generated code around a statement on the
    // same line (`(value).evcxr_display();`) and drops a statement's
    // indentation, so compare trimmed text.
    let mut best: Option<(usize, usize, usize)> = None; // (score, cell index, cell column)
    for (index, cell_line) in cell.iter().enumerate() {
        let text = cell_line.trim();
        // A line as short as `}` or `x` is found in too many places.
        if text.len() < 3 && target.trim() != text {
            continue;
        }
        for (at, _) in target.match_indices(text) {
            let start = target[..at].chars().count() + 1;
            let end = start + text.chars().count();
            if !(start..end).contains(&column) {
                continue;
            }
            let indent = cell_line[..cell_line.find(text).unwrap_or(0)]
                .chars()
                .count();
            let cell_column = column - start + indent + 1;
            // Longer matches, exact lines and matching neighbours win:
            // a `}` or `x` line alone says little.
            let exact = usize::from(target.trim() == text);
            let score =
                text.len() * 4 + exact * 2 + context_score(&generated, line - 1, &cell, index);
            if best.is_none_or(|(best_score, ..)| score > best_score) {
                best = Some((score, index, cell_column));
            }
        }
    }
    best.map(|(_, index, column)| (index + 1, column))
}

/// How many of the three lines before and after agree between the two texts.
fn context_score(generated: &[&str], at: usize, cell: &[&str], index: usize) -> usize {
    let same = |g: Option<&&str>, c: Option<&&str>| match (g, c) {
        (Some(g), Some(c)) => !c.trim().is_empty() && g.trim() == c.trim(),
        _ => false,
    };
    (1..=3)
        .filter(|&k| at >= k && index >= k && same(generated.get(at - k), cell.get(index - k)))
        .count()
        + (1..=3)
            .filter(|&k| same(generated.get(at + k), cell.get(index + k)))
            .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CELL: &str = "let worker = std::thread::spawn(|| {\n    let n = 41;\n    panic!(\"boom {}\", n + 1);\n});\nworker.join().is_err()";

    const GENERATED: &str = "#![allow(unused)]\nfn evcxr_variable_store() {}\n\npub extern \"C\" fn run_user_code_3() {\n\
         let worker = std::thread::spawn(|| {\n    let n = 41;\n    panic!(\"boom {}\", n + 1);\n});\n\
         (worker.join().is_err()).evcxr_display();\n}\n";

    #[test]
    fn a_line_of_the_cell_is_found() {
        assert_eq!(
            cell_position("src/lib.rs:7:5", GENERATED, CELL),
            Some((3, 5))
        );
    }

    #[test]
    fn generated_code_around_the_value_is_skipped() {
        assert_eq!(
            cell_position("src/lib.rs:9:2", GENERATED, CELL),
            Some((5, 1))
        );
    }

    #[test]
    fn repeated_lines_are_told_apart_by_their_neighbours() {
        let cell = "let a = 1;\npanic!(\"x\");\nlet b = 2;\npanic!(\"x\");";
        let generated = "fn f() {\nlet a = 1;\npanic!(\"x\");\nlet b = 2;\npanic!(\"x\");\n}";
        assert_eq!(
            cell_position("src/lib.rs:5:1", generated, cell),
            Some((4, 1))
        );
    }

    #[test]
    fn other_places_are_not_mapped() {
        assert_eq!(cell_position("src/lib.rs:2:1", GENERATED, CELL), None);
        assert_eq!(
            cell_position("/rustc/abc/library/core/src/option.rs:7:5", GENERATED, CELL),
            None
        );
        assert_eq!(cell_position("", GENERATED, CELL), None);
    }
}
