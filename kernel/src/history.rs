//! The session's input history, answering `history_request`.

use jupyter_protocol::{HistoryEntry, HistoryRequest};

/// Jupyter numbers sessions; a kernel process is one session.
const SESSION: usize = 1;

/// Cells executed with `store_history`, in order.
#[derive(Debug, Default)]
pub struct History {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    line: usize,
    input: String,
    output: Option<String>,
}

impl History {
    /// Records cell number `line`, with its `text/plain` result if it had one.
    pub fn record(&mut self, line: usize, input: &str, output: Option<String>) {
        self.entries.push(Entry {
            line,
            input: input.to_owned(),
            output,
        });
    }

    /// Answers a history request.
    pub fn query(&self, request: &HistoryRequest) -> Vec<HistoryEntry> {
        match request {
            HistoryRequest::Tail { n, output, .. } => {
                let skip = self
                    .entries
                    .len()
                    .saturating_sub(usize::try_from(*n).unwrap_or(0));
                self.render(self.entries[skip..].iter(), *output)
            }
            HistoryRequest::Range {
                start,
                stop,
                output,
                ..
            } => {
                // IPython's convention: lines are 1-based, `stop` is exclusive,
                // and stop 0 (or less) means "to the end".
                let start = usize::try_from(*start).unwrap_or(0);
                let stop = usize::try_from(*stop).ok().filter(|&s| s > 0);
                let selected = self
                    .entries
                    .iter()
                    .filter(|e| e.line >= start && stop.is_none_or(|stop| e.line < stop));
                self.render(selected, *output)
            }
            HistoryRequest::Search {
                pattern,
                unique,
                output,
                n,
                ..
            } => {
                let mut seen = std::collections::HashSet::new();
                let mut matches: Vec<&Entry> = self
                    .entries
                    .iter()
                    .rev()
                    .filter(|e| glob_matches(pattern, &e.input))
                    .filter(|e| !*unique || seen.insert(e.input.as_str()))
                    .collect();
                if *n > 0 {
                    matches.truncate(*n as usize);
                }
                matches.reverse();
                self.render(matches.into_iter(), *output)
            }
        }
    }

    fn render<'a>(
        &self,
        entries: impl Iterator<Item = &'a Entry>,
        output: bool,
    ) -> Vec<HistoryEntry> {
        entries
            .map(|e| {
                if output {
                    HistoryEntry::InputOutput(
                        SESSION,
                        e.line,
                        (e.input.clone(), e.output.clone().unwrap_or_default()),
                    )
                } else {
                    HistoryEntry::Input(SESSION, e.line, e.input.clone())
                }
            })
            .collect()
    }
}

/// IPython's history search pattern: a glob (as SQLite's GLOB) over the
/// whole input. A pattern that is not a valid glob is matched literally.
fn glob_matches(pattern: &str, text: &str) -> bool {
    glob::Pattern::new(pattern)
        .or_else(|_| glob::Pattern::new(&glob::Pattern::escape(pattern)))
        .is_ok_and(|glob| glob.matches(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> History {
        let mut history = History::default();
        history.record(1, "let a = 1;", None);
        history.record(2, "a + 1", Some("2".into()));
        history.record(3, "a + 1", Some("2".into()));
        history.record(4, "println!(\"hi\")", None);
        history
    }

    fn lines(entries: &[HistoryEntry]) -> Vec<usize> {
        entries
            .iter()
            .map(|e| match e {
                HistoryEntry::Input(_, line, _) | HistoryEntry::InputOutput(_, line, _) => *line,
            })
            .collect()
    }

    #[test]
    fn tail_returns_the_last_n_in_order() {
        let got = history().query(&HistoryRequest::Tail {
            n: 2,
            output: false,
            raw: true,
        });
        assert_eq!(lines(&got), [3, 4]);
    }

    #[test]
    fn range_is_one_based_with_an_exclusive_stop() {
        let request = HistoryRequest::Range {
            session: Some(0),
            start: 2,
            stop: 4,
            output: true,
            raw: true,
        };
        let got = history().query(&request);
        assert_eq!(lines(&got), [2, 3]);
        assert!(
            matches!(&got[0], HistoryEntry::InputOutput(1, 2, (input, output)) if input == "a + 1" && output == "2")
        );
    }

    #[test]
    fn search_globs_and_can_drop_duplicates() {
        let request = |unique| HistoryRequest::Search {
            pattern: "a*".into(),
            unique,
            output: false,
            raw: true,
            n: 0,
        };
        assert_eq!(lines(&history().query(&request(false))), [2, 3]);
        assert_eq!(lines(&history().query(&request(true))), [3]);
    }

    #[test]
    fn glob_handles_stars_and_question_marks() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a?c*", "abcdef"));
        assert!(glob_matches("*print*", "println!(1)"));
        assert!(!glob_matches("a?c", "ac"));
        assert!(!glob_matches("*x", "abc"));
    }
}
