//! Documentation as rustdoc shows it: hover text from rust-analyzer carries the
//! doc comments' code examples whole, with the lines rustdoc hides (`# use
//! std::...;`, `# #![allow(unused_mut)]`), which mean nothing to a learner.

/// Removes, from rust-analyzer's hover (`plain`, and `html` rendered from its
/// markdown), the lines rustdoc hides in Rust code examples.
///
/// The HTML says where each code block is and which language it is in; the
/// plain text has lost that, so each Rust block's text is found in it and
/// replaced by what the HTML block became.
pub fn hide_doc_lines(plain: &str, html: &str) -> (String, String) {
    let mut html_out = String::with_capacity(html.len());
    let mut plain_out = String::with_capacity(plain.len());
    let mut plain_rest = plain;
    let mut rest = html;
    while let Some(start) = rest.find("<pre><code") {
        let tag = start + "<pre><code".len();
        let Some(open_end) = rest[tag..].find('>').map(|i| tag + i + 1) else {
            break;
        };
        let Some(close) = rest[open_end..].find("</code></pre>").map(|i| open_end + i) else {
            break;
        };
        html_out.push_str(&rest[..open_end]);
        let code = &rest[open_end..close];
        let lang = rest[start..open_end]
            .split_once("class=\"language-")
            .and_then(|(_, after)| after.split_once('"'))
            .map_or("", |(lang, _)| lang);
        if is_rust(&unescape(lang)) {
            let shown = shown_lines(code);
            html_out.push_str(&shown);
            // Blocks at the end of the plain text lost their last newlines.
            let original = unescape(code);
            let replacement = unescape(&shown);
            let mut key = original.as_str();
            let mut found = plain_rest.find(key);
            if found.is_none() {
                key = key.trim_end_matches('\n');
                found = plain_rest.find(key).filter(|_| !key.is_empty());
            }
            if let Some(at) = found {
                plain_out.push_str(&plain_rest[..at]);
                plain_out.push_str(if key.len() == original.len() {
                    &replacement
                } else {
                    replacement.trim_end_matches('\n')
                });
                plain_rest = &plain_rest[at + key.len()..];
            }
        } else {
            html_out.push_str(code);
        }
        rest = &rest[close..];
    }
    html_out.push_str(rest);
    plain_out.push_str(plain_rest);
    (plain_out, html_out)
}

/// A code block's lines as rustdoc shows them (its `map_line`): a line whose
/// trimmed text starts with `# ` or is `#` is hidden; `##` shows as `#`; an
/// attribute such as `#[derive(Debug)]` is not hidden. HTML escaping leaves
/// `#` and spaces alone, so this works on escaped text too.
fn shown_lines(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    for line in code.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with("##") {
            out.push_str(&line.replacen("##", "#", 1));
        } else if trimmed.starts_with("# ") || trimmed == "#" {
            continue;
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Whether rustdoc treats a code block with this info string as Rust (and so
/// hides lines in it): no language, `rust`, or only rustdoc's own attributes
/// (`no_run`, `should_panic`, `edition2021`, `E0499`, ...). Any other word
/// (`text`, `sh`, `toml`) makes it another language.
fn is_rust(info: &str) -> bool {
    let mut seen_rust = false;
    let mut seen_other = false;
    for token in info
        .split([',', ' ', '\t'])
        .map(|t| t.trim_start_matches('.'))
        .filter(|t| !t.is_empty())
    {
        match token {
            "rust" => seen_rust = true,
            "no_hidden_lines" => return false,
            "should_panic" | "no_run" | "ignore" | "test_harness" | "compile_fail"
            | "standalone_crate" => seen_rust = true,
            t if t.starts_with("ignore-") || t.starts_with("edition") => seen_rust = true,
            t if t.len() == 5
                && t.starts_with('E')
                && t[1..].chars().all(|c| c.is_ascii_digit()) =>
            {
                seen_rust = true
            }
            _ => seen_other = true,
        }
    }
    seen_rust || !seen_other
}

/// Undoes the escaping pulldown-cmark's HTML writer does.
fn unescape(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_lines_go_and_attributes_stay() {
        let html = "<p>Example</p>\n<pre><code class=\"language-rust\"># #![allow(unused_mut)]\n\
                    let mut vec: Vec&lt;i32&gt; = Vec::new();\n#\n  # let hidden = 1;\n\
                    #[derive(Debug)]\n## not hidden\n#no_space\n</code></pre>\n";
        let plain = "Example\n\n# #![allow(unused_mut)]\nlet mut vec: Vec<i32> = Vec::new();\n#\n  \
                     # let hidden = 1;\n#[derive(Debug)]\n## not hidden\n#no_space";
        let (plain, html) = hide_doc_lines(plain, html);
        assert_eq!(
            plain,
            "Example\n\nlet mut vec: Vec<i32> = Vec::new();\n#[derive(Debug)]\n# not hidden\n#no_space"
        );
        assert_eq!(
            html,
            "<p>Example</p>\n<pre><code class=\"language-rust\">let mut vec: Vec&lt;i32&gt; = \
             Vec::new();\n#[derive(Debug)]\n# not hidden\n#no_space\n</code></pre>\n"
        );
    }

    #[test]
    fn other_languages_keep_their_lines() {
        let html = "<pre><code class=\"language-sh\"># a shell comment\nls\n</code></pre>\n\
                    <pre><code># hidden\nshown\n</code></pre>\n";
        let plain = "# a shell comment\nls\n\n# hidden\nshown";
        let (plain, html) = hide_doc_lines(plain, html);
        assert_eq!(plain, "# a shell comment\nls\n\nshown");
        assert!(html.contains("# a shell comment"));
        assert!(!html.contains("# hidden"));
    }

    #[test]
    fn rustdocs_language_words() {
        assert!(is_rust(""));
        assert!(is_rust("rust"));
        assert!(is_rust("no_run"));
        assert!(is_rust("rust,should_panic"));
        assert!(is_rust("compile_fail,E0499"));
        assert!(is_rust("edition2021"));
        assert!(!is_rust("text"));
        assert!(!is_rust("toml"));
        assert!(!is_rust("rust,no_hidden_lines"));
    }
}
