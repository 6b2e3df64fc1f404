//! Rich output shown in the notebook at once, while the cell still runs.
//!
//! Each call writes one line to stdout that the conclab kernel turns into a
//! Jupyter `display_data` (or `clear_output`) message. The line starts with
//! the ASCII record separator and `conclab:`; the format is the kernel's
//! (`kernel/src/frame.rs`). Outside the kernel the line is just text.

use std::io::Write;

use base64::Engine;
use serde_json::{Value, json};

const PREFIX: &str = "\u{1e}conclab:";

/// Shows a MIME bundle, e.g. `{"text/html": "<b>hi</b>", "text/plain": "hi"}`.
pub fn bundle(data: Value) {
    let frame = json!({ "data": data, "metadata": {} });
    emit(&format!("display {frame}"));
}

/// Shows HTML.
pub fn html(html: &str) {
    bundle(json!({ "text/html": html, "text/plain": "[HTML]" }));
}

/// Shows an SVG picture.
pub fn svg(svg: &str) {
    bundle(json!({ "image/svg+xml": svg, "text/plain": "[SVG]" }));
}

/// Shows a PNG picture from its bytes.
pub fn png(bytes: &[u8]) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    bundle(json!({ "image/png": encoded, "text/plain": "[PNG]" }));
}

/// Clears the cell's output; with `wait`, only once new output arrives (for
/// animations without flicker).
pub fn clear_output(wait: bool) {
    emit(&format!("clear {}", if wait { "wait" } else { "now" }));
}

fn emit(frame: &str) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{PREFIX}{frame}").and_then(|_| out.flush());
}
