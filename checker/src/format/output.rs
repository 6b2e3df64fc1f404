//! Where a report goes: to stdout or a file in one format, and to more
//! files in others (`--also`), one run writing a report for each reader.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;

use super::Format;
use crate::exit::Failure;
use crate::report::Report;

/// What `--format`, `--output` and `--also` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The format of the report on stdout, or in `path`.
    pub format: Format,
    /// Where the report goes instead of stdout.
    pub path: Option<PathBuf>,
    /// The report in each of these formats to each of these paths too.
    pub also: Vec<(Format, PathBuf)>,
}

impl Output {
    /// Writes `report` everywhere it goes: each `also` first, then the
    /// report itself. A report written to a file in a format other than
    /// text is summarised as text on stderr too when stderr is a terminal:
    /// the people there still get the summary.
    pub fn write(&self, report: &Report) -> Result<(), Failure> {
        for (format, path) in &self.also {
            super::write(report, *format, path)
                .with_context(|| format!("writing {}", path.display()))
                .map_err(Failure::Infrastructure)?;
        }
        match &self.path {
            Some(path) => {
                super::write(report, self.format, path)
                    .with_context(|| format!("writing {}", path.display()))
                    .map_err(Failure::Infrastructure)?;
                if self.format != Format::Text && std::io::stderr().is_terminal() {
                    eprint!("{}", super::render(report, Format::Text));
                }
            }
            None => print!("{}", super::render(report, self.format)),
        }
        Ok(())
    }
}
