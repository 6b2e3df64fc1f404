//! The line format the code runner uses to tell the kernel what a cell wrote.
//!
//! evcxr reads the code runner's stdout line by line and passes every line it
//! does not recognise to the kernel. The runner therefore sends the cell's
//! stdout lines as they are and marks everything else (stderr, lines without a
//! trailing newline, panics, rich displays) with a prefix no ordinary text
//! starts with. One ordered pipe carries it all, so stdout, stderr and the end
//! of the cell can never be reordered.

/// Starts every line that is not plain stdout. ASCII "record separator".
/// labkit owns it: cells write displays with it (`labkit::show`).
pub const PREFIX: &str = labkit::show::PREFIX;

/// One line from the code runner, decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete stdout line, without its newline.
    Stdout(&'a str),
    /// Stdout text that did not end in a newline (`print!`).
    StdoutPart(&'a str),
    /// A complete stderr line, without its newline.
    Stderr(&'a str),
    /// Stderr text that did not end in a newline.
    StderrPart(&'a str),
    /// A panic, as JSON: `{"thread", "message", "location"}`.
    Panic(&'a str),
    /// The cell's own thread panicked (evcxr caught it).
    CellPanicked,
    /// Rich output to show now, as JSON: `{"data": {mime: value}, "metadata": {}}`.
    Display(&'a str),
    /// Clear the cell's output; `true` waits until new output arrives.
    Clear(bool),
}

impl<'a> Frame<'a> {
    /// Decodes one line (without its newline).
    pub fn parse(line: &'a str) -> Frame<'a> {
        let Some(rest) = line.strip_prefix(PREFIX) else {
            return Frame::Stdout(line);
        };
        let (kind, payload) = rest.split_once(' ').unwrap_or((rest, ""));
        match kind {
            "stdout-part" => Frame::StdoutPart(payload),
            "stderr" => Frame::Stderr(payload),
            "stderr-part" => Frame::StderrPart(payload),
            "panic" => Frame::Panic(payload),
            "cell-panicked" => Frame::CellPanicked,
            "display" => Frame::Display(payload),
            "clear" => Frame::Clear(payload == "wait"),
            // An unknown kind is shown, not swallowed: nothing a cell prints is lost.
            _ => Frame::Stdout(line),
        }
    }

    /// Encodes the frame as one line, newline included.
    pub fn encode(&self) -> String {
        let (kind, payload) = match self {
            Frame::Stdout(text) => return format!("{text}\n"),
            Frame::StdoutPart(text) => ("stdout-part", *text),
            Frame::Stderr(text) => ("stderr", *text),
            Frame::StderrPart(text) => ("stderr-part", *text),
            Frame::Panic(json) => ("panic", *json),
            Frame::CellPanicked => ("cell-panicked", ""),
            Frame::Display(json) => ("display", *json),
            Frame::Clear(wait) => ("clear", if *wait { "wait" } else { "now" }),
        };
        format!("{PREFIX}{kind} {payload}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_survives_a_round_trip() {
        let frames = [
            Frame::Stdout("plain text"),
            Frame::StdoutPart("no newline"),
            Frame::Stderr("oops"),
            Frame::StderrPart("partial"),
            Frame::Panic(r#"{"thread":"main"}"#),
            Frame::CellPanicked,
            Frame::Display(r#"{"data":{"text/html":"<b>x</b>"}}"#),
            Frame::Clear(true),
            Frame::Clear(false),
        ];
        for frame in frames {
            let line = frame.encode();
            assert_eq!(Frame::parse(line.strip_suffix('\n').unwrap()), frame);
        }
    }

    #[test]
    fn an_unknown_kind_is_kept_as_text() {
        let line = format!("{PREFIX}future-kind data");
        assert_eq!(Frame::parse(&line), Frame::Stdout(&line));
    }
}
