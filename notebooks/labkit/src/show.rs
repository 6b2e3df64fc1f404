//! Rich output shown in the notebook at once, while the cell still runs.
//!
//! Each call writes one line to stdout that the conclab kernel turns into a
//! Jupyter `display_data` (or `clear_output`) message. The line starts with
//! the ASCII record separator and `conclab:`; the format is the kernel's
//! (`kernel/src/frame.rs`). Outside the kernel the line is just text.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Value, json};

/// Starts every line labkit writes for the kernel rather than as text: the
/// ASCII record separator and `conclab:`. The kernel's `frame.rs` reads
/// lines with this very constant.
pub const PREFIX: &str = "\u{1e}conclab:";

/// Shows a MIME bundle, e.g. `{"text/html": "<b>hi</b>", "text/plain": "hi"}`.
pub fn bundle(data: Value) {
    bundle_with(data, json!({}));
}

/// Shows a MIME bundle with its display metadata, e.g. the size to show an
/// image at: `{"image/png": {"width": 720, "height": 92}}`.
pub fn bundle_with(data: Value, metadata: Value) {
    let frame = json!({ "data": data, "metadata": metadata });
    emit(&format!("display {frame}"));
}

/// Shows HTML.
pub fn html(html: &str) {
    bundle(json!({ "text/html": html, "text/plain": "[HTML]" }));
}

/// Shows an SVG picture, with a PNG of it beside: JupyterLab shows only the
/// PNG in an untrusted notebook (as every notebook is when a learner opens
/// it), the SVG once trusted.
pub fn svg(svg: &str) {
    let (data, metadata) = svg_bundle(svg);
    bundle_with(data, metadata);
}

/// The MIME bundle and metadata [`svg`] shows. The PNG is drawn at twice the
/// size and shown at the SVG's, so it stays sharp on a high-density screen;
/// it is left out if the SVG cannot be drawn, rather than losing the picture.
/// Drawing takes a few milliseconds; the first in a process, when the
/// helper program is not built yet (`conclab-kernel prepare` builds it), a
/// one-time build.
pub fn svg_bundle(svg: &str) -> (Value, Value) {
    let mut data = json!({ "image/svg+xml": svg, "text/plain": "[SVG]" });
    let mut metadata = json!({});
    if let Some((png, size)) = png_of(svg) {
        data["image/png"] = png.into();
        metadata["image/png"] = size;
    }
    (data, metadata)
}

/// The SVG drawn as PNG by `labkit-draw`, in base64, and the size to show
/// it at. Another program draws it, so that a cell links no SVG renderer.
fn png_of(svg: &str) -> Option<(String, Value)> {
    let program = crate::programs::locate("labkit-draw", "LABKIT_DRAW").ok()?;
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Pictures are small: written whole before reading cannot fill a pipe both ways.
    let written = child.stdin.take()?.write_all(svg.as_bytes());
    let output = child.wait_with_output().ok()?;
    if written.is_err() || !output.status.success() {
        return None;
    }
    let (width, height) = png_size(&output.stdout)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&output.stdout);
    // labkit-draw draws at twice the size: shown at half, it stays sharp.
    Some((encoded, json!({ "width": width / 2, "height": height / 2 })))
}

/// A PNG's width and height, from its header.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    let header = png.get(..24)?;
    if !header.starts_with(b"\x89PNG\r\n\x1a\n") || &header[12..16] != b"IHDR" {
        return None;
    }
    let number = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().unwrap());
    Some((number(16), number(20)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_svg_is_shown_with_a_png_of_it_at_its_size() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="30" height="10"/>"#;
        let (data, metadata) = svg_bundle(svg);
        assert_eq!(data["image/svg+xml"], svg);
        assert_eq!(data["text/plain"], "[SVG]");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data["image/png"].as_str().expect("a PNG"))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        assert_eq!(metadata, json!({"image/png": {"width": 30, "height": 10}}));
    }

    #[test]
    fn an_svg_that_cannot_be_drawn_is_still_shown() {
        let (data, metadata) = svg_bundle("<svg");
        assert_eq!(
            data,
            json!({"image/svg+xml": "<svg", "text/plain": "[SVG]"})
        );
        assert_eq!(metadata, json!({}));
    }
}
