//! SVG to PNG: JupyterLab does not render SVG in an untrusted notebook (every
//! notebook a learner opens is one), but it does render PNG, so each picture
//! labkit shows carries both.

/// DejaVu Sans cut down to Latin-1 and a few symbols (22 KB; licence in
/// `fonts/LICENSE`): embedded so text renders on machines without fonts.
const FONT: &[u8] = include_bytes!("fonts/DejaVuSans-subset.ttf");

/// The family [`FONT`] declares; every generic family maps to it.
const FAMILY: &str = "DejaVu Sans";

/// A picture rendered to PNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Png {
    /// The PNG file's bytes.
    pub bytes: Vec<u8>,
    /// The width to show it at, in CSS pixels: the SVG's own.
    pub width: u32,
    /// The height to show it at.
    pub height: u32,
}

/// Renders an SVG document to PNG at `scale` times its own size (2 stays
/// sharp on a high-density screen when shown at [`Png::width`]), on white (a
/// transparent picture is unreadable in a dark theme). `None` if the SVG
/// does not parse or has no area.
pub fn svg_to_png(svg: &str, scale: f32) -> Option<Png> {
    let mut options = resvg::usvg::Options {
        font_family: FAMILY.to_owned(),
        ..Default::default()
    };
    let fonts = options.fontdb_mut();
    fonts.load_font_data(FONT.to_vec());
    fonts.set_sans_serif_family(FAMILY);
    fonts.set_serif_family(FAMILY);
    fonts.set_monospace_family(FAMILY);
    let tree = resvg::usvg::Tree::from_str(svg, &options).ok()?;
    let shown = tree.size().to_int_size();
    let size = shown.scale_by(scale)?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    Some(Png {
        bytes: pixmap.encode_png().ok()?,
        width: shown.width(),
        height: shown.height(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

    #[test]
    fn a_picture_becomes_a_png_of_its_size_times_the_scale() {
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="20" height="20" fill="#000"/></svg>"##;
        let png = svg_to_png(svg, 2.0).expect("a PNG");
        assert!(png.bytes.starts_with(PNG_SIGNATURE));
        // IHDR: width and height, big-endian, right after the signature and chunk header.
        assert_eq!(&png.bytes[16..24], &[0, 0, 0, 80, 0, 0, 0, 40]);
        assert_eq!((png.width, png.height), (40, 20), "shown at the SVG's size");
    }

    #[test]
    fn text_is_drawn_with_the_embedded_font() {
        let blank = r#"<svg xmlns="http://www.w3.org/2000/svg" width="60" height="20"></svg>"#;
        let text = r#"<svg xmlns="http://www.w3.org/2000/svg" width="60" height="20" font-family="sans-serif"><text x="2" y="15">ms</text></svg>"#;
        let (blank, text) = (
            svg_to_png(blank, 1.0).unwrap(),
            svg_to_png(text, 1.0).unwrap(),
        );
        assert_ne!(blank, text, "the text left no mark");
    }

    #[test]
    fn what_is_not_svg_gives_none() {
        assert_eq!(svg_to_png("not a picture", 1.0), None);
    }
}
