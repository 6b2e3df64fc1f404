//! `--format html --output DIR`: a class's report as a static site an
//! instructor opens from disk. `index.html` shows the score distribution,
//! each exercise's pass rate, the most common failure reasons grouped by
//! kind (with links to the learners' failures) and every learner's points;
//! `learners/NAME.html` is one learner's feedback, as `:check` shows it.
//!
//! No scripts and nothing fetched: charts are inline SVG, styles inline.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use super::csv::{ExerciseRow, rows};
use super::html::{anchor, by_name, escape, shorten};
use super::reason::Reason;
use super::{Counts, points};
use crate::report::{Check, Report, SubmissionReport, file_safe};

/// The ids of the index's sections, which a page or a browser test can
/// rely on.
pub mod section {
    /// The histogram of the learners' scores.
    pub const DISTRIBUTION: &str = "distribution";
    /// Each exercise's pass rate.
    pub const EXERCISES: &str = "exercises";
    /// The most common failure reasons, grouped by kind.
    pub const FAILURES: &str = "failures";
    /// Every learner's points, with a link to their page.
    pub const LEARNERS: &str = "learners";
}

/// Writes the site into `dir` (made if missing): `index.html` and one page
/// per learner under `learners/`.
pub fn write(report: &Report, dir: &Path) -> std::io::Result<()> {
    let pages = page_names(&report.submissions);
    std::fs::create_dir_all(dir.join("learners"))?;
    std::fs::write(dir.join("index.html"), index(report, &pages))?;
    for (submission, page) in report.submissions.iter().zip(&pages) {
        let path = dir.join("learners").join(page);
        std::fs::write(path, learner_page(report, submission))?;
    }
    Ok(())
}

/// A file name per submission: its name in letters, digits, `-`, `_` and
/// `.`, made unique with a number (two learners' folders may share a name).
fn page_names(submissions: &[SubmissionReport]) -> Vec<String> {
    let mut taken = HashSet::new();
    submissions
        .iter()
        .map(|submission| {
            let stem = file_safe(submission.submission.trim_end_matches(".ipynb"));
            let stem = stem.trim_start_matches('.');
            let stem = if stem.is_empty() { "learner" } else { stem };
            let mut name = format!("{stem}.html");
            let mut n = 2;
            while !taken.insert(name.clone()) {
                name = format!("{stem}-{n}.html");
                n += 1;
            }
            name
        })
        .collect()
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n{PAGE_STYLE}</head>\n<body class=\"conclab-site\">\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// The page's own styles; a learner's feedback brings the report's.
const PAGE_STYLE: &str = "<style>
body.conclab-site{font-family:system-ui,sans-serif;font-size:15px;line-height:1.45;color:#1f2328;background:#fff;max-width:64em;margin:1.5em auto;padding:0 1.2em}
.conclab-site h1{font-size:1.6em;margin:.2em 0}
.conclab-site h2{font-size:1.25em;margin:1.6em 0 .5em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.conclab-site h3{font-size:1.05em;margin:1em 0 .3em}
.conclab-site table{border-collapse:collapse;width:100%}
.conclab-site th,.conclab-site td{text-align:left;padding:.3em .6em;border-bottom:1px solid #eaeef2;vertical-align:top}
.conclab-site td.num,.conclab-site th.num{text-align:right;font-variant-numeric:tabular-nums}
.conclab-site .rate{display:inline-block;width:8em;height:.8em;background:#eaeef2;border-radius:2px;vertical-align:middle;margin-right:.5em}
.conclab-site .rate span{display:block;height:100%;background:#388e3c;border-radius:2px}
.conclab-site .muted{color:#59636e}
.conclab-site .example{margin:.2em 0 .4em;padding:.3em .6em;background:#f6f8fa;border-left:3px solid #d32f2f;white-space:pre-wrap;overflow-wrap:anywhere}
.conclab-site svg.histogram{display:block;max-width:40em;width:100%;height:auto}
.conclab-site svg.histogram rect{fill:#1976d2}
.conclab-site svg.histogram text{font-size:12px;fill:#1f2328}
.conclab-site nav{margin-bottom:.6em}
.conclab-site a{color:#0969da}
</style>
";

fn index(report: &Report, pages: &[String]) -> String {
    let mut body = String::new();
    let learners = report.submissions.len();
    let percents: Vec<f64> = report.submissions.iter().map(percent).collect();
    let full = report
        .submissions
        .iter()
        .filter(|s| {
            let (score, max) = s.score();
            max > 0.0 && score >= max
        })
        .count();
    let _ = writeln!(body, "<h1>Class report</h1>");
    let mut summary = vec![format!("{learners} learner{}", plural(learners))];
    if learners > 0 {
        let mut sorted = percents.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = percents.iter().sum::<f64>() / learners as f64;
        summary.push(format!("mean {mean:.0}%"));
        summary.push(format!("median {:.0}%", median(&sorted)));
        summary.push(format!("{full} earned every point"));
    }
    let _ = writeln!(
        body,
        "<p class=\"muted\">{} · conclab-check {}</p>",
        summary.join(" · "),
        escape(&report.command)
    );
    write_distribution(&mut body, &percents);
    write_exercises(&mut body, report);
    write_failures(&mut body, report, pages);
    write_learners(&mut body, report, pages);
    page("Class report", &body)
}

/// A learner's score as a percentage of the points at stake.
fn percent(submission: &SubmissionReport) -> f64 {
    let (score, max) = submission.score();
    if max > 0.0 { 100.0 * score / max } else { 0.0 }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn open_section(body: &mut String, id: &str, heading: &str) {
    let _ = writeln!(body, "<section id=\"{id}\">\n<h2>{heading}</h2>");
}

/// Ten bars, 0–9% to 90–100%, each with its count.
fn write_distribution(body: &mut String, percents: &[f64]) {
    let mut bins = [0usize; 10];
    for p in percents {
        bins[((p / 10.0).floor() as usize).min(9)] += 1;
    }
    let tallest = bins.iter().copied().max().unwrap_or(0).max(1);
    let (width, height, base, bar) = (600.0, 220.0, 190.0, 54.0);
    open_section(body, section::DISTRIBUTION, "Score distribution");
    let _ = writeln!(
        body,
        "<svg class=\"histogram\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"learners per score, in tenths of the points\">"
    );
    for (i, count) in bins.iter().enumerate() {
        let x = 5.0 + i as f64 * 59.0;
        let h = 160.0 * *count as f64 / tallest as f64;
        let range = if i == 9 {
            "90–100%".to_owned()
        } else {
            format!("{}–{}%", i * 10, i * 10 + 9)
        };
        let _ = writeln!(
            body,
            "<rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{h}\"><title>{count} learner{} at {range}</title></rect>",
            base - h,
            plural(*count)
        );
        if *count > 0 {
            let _ = writeln!(
                body,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{count}</text>",
                x + bar / 2.0,
                base - h - 4.0
            );
        }
        let _ = writeln!(
            body,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{range}</text>",
            x + bar / 2.0,
            base + 16.0
        );
    }
    body.push_str("</svg>\n</section>\n");
}

/// One exercise across the class.
#[derive(Default)]
struct ExerciseTally {
    /// Learners who earned all its points.
    full: usize,
    /// Learners graded on it.
    graded: usize,
    /// Points earned, summed over the learners.
    points: f64,
    /// Its points.
    max: f64,
}

/// Per exercise: how many learners earned all its points, of how many.
fn write_exercises(body: &mut String, report: &Report) {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut tally: BTreeMap<(String, String), ExerciseTally> = BTreeMap::new();
    for submission in &report.submissions {
        for ExerciseRow {
            notebook,
            exercise,
            score,
            max_score,
        } in rows(submission)
        {
            let key = (notebook, exercise);
            let entry = tally.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                ExerciseTally::default()
            });
            entry.full += usize::from(score >= max_score);
            entry.graded += 1;
            entry.points += score;
            entry.max = entry.max.max(max_score);
        }
    }
    open_section(body, section::EXERCISES, "Exercises");
    if order.is_empty() {
        body.push_str("<p class=\"muted\">No exercise had points at stake.</p>\n</section>\n");
        return;
    }
    body.push_str("<table>\n<tr><th>Exercise</th><th>Notebook</th><th>Earned every point</th><th class=\"num\">Mean points</th></tr>\n");
    for key in order {
        let ExerciseTally {
            full,
            graded,
            points: sum,
            max,
        } = tally[&key];
        let rate = 100.0 * full as f64 / graded as f64;
        let exercise = if key.1.is_empty() {
            "<span class=\"muted\">the notebook as a whole</span>".to_owned()
        } else {
            format!("<code>{}</code>", escape(&key.1))
        };
        let _ = writeln!(
            body,
            "<tr><td>{exercise}</td><td>{}</td><td><span class=\"rate\"><span style=\"width:{rate:.0}%\"></span></span>{full} of {graded} ({rate:.0}%)</td><td class=\"num\">{} / {}</td></tr>",
            escape(&key.0),
            points(sum / graded as f64),
            points(max)
        );
    }
    body.push_str("</table>\n</section>\n");
}

/// One failure of one learner, to link to.
struct Failure<'r> {
    learner: usize,
    notebook: &'r str,
    check: &'r Check,
}

/// The failure reasons, the commonest first (by learners), each with the
/// cells it happened in and a link to every learner's failure.
fn write_failures(body: &mut String, report: &Report, pages: &[String]) {
    let mut by_reason: BTreeMap<Reason, Vec<Failure>> = BTreeMap::new();
    for (learner, submission) in report.submissions.iter().enumerate() {
        for (notebook, check) in submission.checks() {
            if let Some(reason) = Reason::of(check) {
                by_reason.entry(reason).or_default().push(Failure {
                    learner,
                    notebook: &notebook.notebook,
                    check,
                });
            }
        }
    }
    open_section(body, section::FAILURES, "Most common failure reasons");
    if by_reason.is_empty() {
        body.push_str("<p class=\"muted\">Nothing failed.</p>\n</section>\n");
        return;
    }
    let learners_of = |failures: &[Failure]| {
        failures
            .iter()
            .map(|f| f.learner)
            .collect::<HashSet<_>>()
            .len()
    };
    let mut reasons: Vec<(Reason, Vec<Failure>)> = by_reason.into_iter().collect();
    // Stable: equal counts keep the kinds' own order.
    reasons.sort_by_key(|(_, failures)| std::cmp::Reverse(learners_of(failures)));
    for (reason, failures) in &reasons {
        let learners = learners_of(failures);
        let _ = writeln!(
            body,
            "<div class=\"conclab-reason\">\n<h3>{} <span class=\"muted\">· {learners} learner{}, {} check{}</span></h3>",
            escape(&reason.words()),
            plural(learners),
            failures.len(),
            plural(failures.len())
        );
        // Within a kind, by cell: where in the lab it happens.
        let mut cells: Vec<(&str, &str)> = Vec::new();
        for failure in failures {
            let cell = (failure.notebook, failure.check.cell.as_str());
            if !cells.contains(&cell) {
                cells.push(cell);
            }
        }
        body.push_str("<ul>\n");
        for (notebook, cell) in cells {
            let here: Vec<&Failure> = failures
                .iter()
                .filter(|f| f.notebook == notebook && f.check.cell == cell)
                .collect();
            let links: Vec<String> = here
                .iter()
                .map(|f| {
                    format!(
                        "<a href=\"learners/{}#{}\">{}</a>",
                        pages[f.learner],
                        anchor(f.notebook, &f.check.id),
                        escape(&report.submissions[f.learner].submission)
                    )
                })
                .collect();
            let example = shorten(&by_name(here[0].check.message.trim()), 300);
            let _ = writeln!(
                body,
                "<li><code>{}</code> in {}: {}\n<div class=\"example\">{}</div></li>",
                escape(cell),
                escape(notebook),
                links.join(", "),
                escape(&example)
            );
        }
        body.push_str("</ul>\n</div>\n");
    }
    body.push_str("</section>\n");
}

fn write_learners(body: &mut String, report: &Report, pages: &[String]) {
    open_section(body, section::LEARNERS, "Learners");
    body.push_str("<table>\n<tr><th>Learner</th><th class=\"num\">Points</th><th class=\"num\">Checks passed</th><th>Not passed</th></tr>\n");
    for (submission, page) in report.submissions.iter().zip(pages) {
        let (score, max) = submission.score();
        let counts = Counts::of(submission.checks().map(|(_, c)| c));
        let _ = writeln!(
            body,
            "<tr><td><a href=\"learners/{page}\">{}</a></td><td class=\"num\">{} / {}</td><td class=\"num\">{} of {}</td><td>{}</td></tr>",
            escape(&submission.submission),
            points(score),
            points(max),
            counts.passed,
            counts.total(),
            counts.not_passed().join(", ")
        );
    }
    body.push_str("</table>\n</section>\n");
}

fn learner_page(report: &Report, submission: &SubmissionReport) -> String {
    let one = Report {
        submissions: vec![submission.clone()],
        ..Report::new(&report.command)
    };
    let mut body = String::new();
    body.push_str("<nav><a href=\"../index.html\">← Class report</a></nav>\n");
    let _ = writeln!(
        body,
        "<h1>{}</h1>\n<p class=\"muted\">{}</p>",
        escape(&submission.submission),
        escape(&submission.path)
    );
    body.push_str(&super::html::render(&one));
    page(&submission.submission, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::sample_report;

    fn site() -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().unwrap();
        write(&sample_report(), dir.path()).unwrap();
        let read = |path: &str| std::fs::read_to_string(dir.path().join(path)).unwrap();
        let (index, alice) = (read("index.html"), read("learners/alice.html"));
        (dir, index, alice)
    }

    #[test]
    fn the_index_has_every_section_and_links_each_failure_to_its_learner() {
        let (_dir, index, alice) = site();
        for id in [
            section::DISTRIBUTION,
            section::EXERCISES,
            section::FAILURES,
            section::LEARNERS,
        ] {
            assert!(index.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert!(index.contains("<svg class=\"histogram\""));
        assert!(
            index.contains("2 learners · mean 10% · median 10% · 0 earned every point"),
            "{index}"
        );
        // Each link's target exists on the learner's page.
        let link =
            "learners/alice.html#check-07-semaphores--step07-semaphore-hidden_max_inside_inside_";
        assert!(index.contains(link), "{index}");
        assert!(
            alice
                .contains("id=\"check-07-semaphores--step07-semaphore-hidden_max_inside_inside_\"")
        );
        assert!(index.contains("A limit broken: too many at once"));
        assert!(index.contains("The submission could not be read"));
    }

    #[test]
    fn pages_load_nothing_and_run_nothing() {
        let (_dir, index, alice) = site();
        for page in [&index, &alice] {
            assert!(page.starts_with("<!doctype html>"));
            for outside in ["<script", "src=", "http://", "https://", "<link"] {
                assert!(!page.contains(outside), "{outside}");
            }
        }
        assert!(
            alice.contains("class=\"conclab-report\""),
            "the learner's own feedback"
        );
    }

    #[test]
    fn learners_with_the_same_name_get_their_own_pages() {
        let mut report = sample_report();
        report.submissions[1].submission = "alice".to_owned();
        assert_eq!(
            page_names(&report.submissions),
            ["alice.html", "alice-2.html"]
        );
        report.submissions[1].submission = "../../etc/passwd".to_owned();
        assert_eq!(page_names(&report.submissions)[1], "_.._etc_passwd.html");
    }
}
