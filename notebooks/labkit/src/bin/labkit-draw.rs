//! labkit-draw: reads an SVG picture on stdin and writes it as PNG, at twice
//! its size, on stdout (see labkit::show::svg). A program of its own, so the
//! cells that show pictures need not link an SVG renderer.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut svg = String::new();
    if std::io::stdin().read_to_string(&mut svg).is_err() {
        return ExitCode::FAILURE;
    }
    let Some(png) = labkit::raster::svg_to_png(&svg, 2.0) else {
        eprintln!("labkit-draw: not an SVG picture it can draw");
        return ExitCode::FAILURE;
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(&png.bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
