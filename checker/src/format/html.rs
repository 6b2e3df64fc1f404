//! `--format html`: one submission's feedback as a learner reads it in
//! JupyterLab (what `:check` shows). First a line with the points and how
//! many checks passed; then each failure in plain words with its message,
//! the diff, the seed to replay it and a timeline of the run; the evidence
//! (thread states, pids, tids, addresses) folded under it, told once per
//! hang; passing checks on one line.
//!
//! Self-contained: no scripts, inline CSS scoped to `.conclab-report`,
//! colours from JupyterLab's theme variables (with fallbacks that read on
//! light and dark backgrounds alike).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Counts, points};
use crate::report::{
    Check, CheckKind, IntervalKind, NotebookReport, Outcome, Report, SubmissionReport, Timeline,
};

/// The class names a page or a browser test can rely on.
pub mod class {
    /// The one-line summary: points and how many checks passed.
    pub const SUMMARY: &str = "conclab-summary";
    /// One failed check.
    pub const FAILURE: &str = "conclab-failure";
    /// The folded evidence under a failure (a `<details>`).
    pub const EVIDENCE: &str = "conclab-evidence";
    /// The drawing of a run (an `<svg>`).
    pub const TIMELINE: &str = "conclab-timeline";
}

/// The report as one HTML fragment, ending with a newline.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("<div class=\"conclab-report\">\n");
    out.push_str(STYLE);
    if report.submissions.is_empty() {
        let _ = writeln!(out, "<p class=\"{}\">no submissions</p>", class::SUMMARY);
    }
    for submission in &report.submissions {
        write_submission(&mut out, submission);
    }
    out.push_str("</div>\n");
    out
}

/// Styles scoped to the report; every colour is a JupyterLab variable with
/// a fallback that works on either background.
const STYLE: &str = "<style>
.conclab-report{font-family:var(--jp-content-font-family,system-ui,sans-serif);font-size:var(--jp-content-font-size1,14px);line-height:1.45;color:var(--jp-content-font-color1,inherit);max-width:60em}
.conclab-report code,.conclab-report pre{font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,13px)}
.conclab-report .conclab-summary{font-size:1.1em;margin:.2em 0 .6em}
.conclab-report .conclab-ok{color:var(--jp-success-color1,#388e3c)}
.conclab-report .conclab-bad{color:var(--jp-error-color1,#d32f2f)}
.conclab-report .conclab-muted{color:var(--jp-content-font-color2,rgba(127,127,127,.95))}
.conclab-report .conclab-notebook{font-weight:600;margin:.8em 0 .3em}
.conclab-report .conclab-failure{border-left:4px solid var(--jp-error-color1,#d32f2f);background:var(--jp-layout-color2,rgba(127,127,127,.08));padding:.4em .8em;margin:.5em 0;border-radius:2px}
.conclab-report .conclab-failure.conclab-error{border-left-color:var(--jp-warn-color1,#f57c00)}
.conclab-report .conclab-title{font-weight:600;margin:0}
.conclab-report .conclab-title code{font-weight:normal;font-size:.85em;color:var(--jp-content-font-color2,inherit)}
.conclab-report .conclab-message{margin:.3em 0;white-space:pre-wrap}
.conclab-report .conclab-replay{margin:.3em 0}
.conclab-report pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:.3em 0;padding:.4em .6em;background:var(--jp-layout-color1,rgba(127,127,127,.06));border:1px solid var(--jp-border-color2,rgba(127,127,127,.3));border-radius:2px}
.conclab-report .conclab-diff .conclab-del{color:var(--jp-error-color1,#d32f2f)}
.conclab-report .conclab-diff .conclab-add{color:var(--jp-success-color1,#388e3c)}
.conclab-report details{margin:.3em 0}
.conclab-report summary{cursor:pointer;color:var(--jp-content-font-color2,inherit)}
.conclab-report .conclab-threads{margin:.3em 0;padding-left:1.4em}
.conclab-report .conclab-notrun,.conclab-report .conclab-passed{margin:.3em 0}
.conclab-report svg.conclab-timeline{display:block;max-width:100%;height:auto;margin:.4em 0}
.conclab-report svg text{fill:var(--jp-content-font-color1,currentColor);font-family:var(--jp-ui-font-family,system-ui,sans-serif)}
.conclab-report svg .conclab-tl-dim{fill:var(--jp-content-font-color2,currentColor)}
.conclab-report svg .conclab-tl-involved{fill:var(--jp-brand-color3,rgba(33,150,243,.12))}
.conclab-report svg .conclab-tl-span{fill:var(--jp-brand-color1,#1976d2)}
.conclab-report svg .conclab-tl-span-text{fill:var(--jp-ui-inverse-font-color0,#fff)}
.conclab-report svg .conclab-tl-lock{fill:var(--jp-warn-color1,#f57c00)}
.conclab-report svg .conclab-tl-lock-text{fill:#000}
.conclab-report svg .conclab-tl-wait{fill:none;stroke:var(--jp-error-color1,#d32f2f);stroke-dasharray:3 2}
.conclab-report svg .conclab-tl-axis{stroke:var(--jp-border-color1,rgba(127,127,127,.6))}
.conclab-report svg .conclab-tl-mark{stroke:var(--jp-error-color1,#d32f2f);stroke-width:2}
.conclab-report svg .conclab-tl-mark-text{fill:var(--jp-error-color1,#d32f2f);font-weight:600}
</style>
";

fn write_submission(out: &mut String, submission: &SubmissionReport) {
    let counts = Counts::of(submission.checks().map(|(_, c)| c));
    let (score, max) = submission.score();
    let all_passed = counts.passed == counts.total();
    let (mark, tone) = if all_passed {
        ("✓", "conclab-ok")
    } else {
        ("✗", "conclab-bad")
    };
    let mut parts = Vec::new();
    if max > 0.0 {
        parts.push(format!("{}/{} points", points(score), points(max)));
    }
    parts.push(format!(
        "{} of {} checks passed",
        counts.passed,
        counts.total()
    ));
    parts.extend(counts.not_passed());
    let _ = writeln!(
        out,
        "<p class=\"{}\"><span class=\"{tone}\">{mark}</span> <b>{}</b>: {}</p>",
        class::SUMMARY,
        escape(&submission.submission),
        parts.join(" · ")
    );
    let is_one_notebook =
        matches!(&submission.notebooks[..], [only] if only.notebook == submission.submission);
    for notebook in &submission.notebooks {
        if !is_one_notebook {
            let (score, max) = notebook.score();
            let mut line = escape(&notebook.notebook);
            if max > 0.0 {
                let _ = write!(
                    line,
                    " <span class=\"conclab-muted\">{}/{} points</span>",
                    points(score),
                    points(max)
                );
            }
            let _ = writeln!(out, "<div class=\"conclab-notebook\">{line}</div>");
        }
        write_notebook(out, notebook);
    }
}

fn write_notebook(out: &mut String, notebook: &NotebookReport) {
    for check in &notebook.checks {
        if matches!(
            check.outcome,
            Outcome::Failed | Outcome::BadInput | Outcome::Error
        ) {
            write_failure(out, &notebook.notebook, check);
        }
    }
    // Checks that could not run, grouped by why: one line per cause.
    let mut not_run: BTreeMap<(Option<&str>, &str), Vec<&Check>> = BTreeMap::new();
    let mut order = Vec::new();
    for check in notebook
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::NotRun)
    {
        let why = (check.evidence_in.as_deref(), check.message.as_str());
        if !not_run.contains_key(&why) {
            order.push(why);
        }
        not_run.entry(why).or_default().push(check);
    }
    for why in order {
        let checks = &not_run[&why];
        let reason = why.1.strip_prefix("not run: ").unwrap_or(why.1);
        let see = match why.0 {
            Some(cell) => format!(
                " (the evidence is under <code>{}</code> above)",
                escape(cell)
            ),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "<p class=\"conclab-notrun\"><span class=\"conclab-muted\">–</span> Not run, because {}{see}: {}</p>",
            escape(reason),
            code_list(checks)
        );
    }
    let passed: Vec<&Check> = notebook
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Passed)
        .collect();
    if !passed.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"conclab-passed\"><span class=\"conclab-ok\">✓</span> Passed: {}</p>",
            code_list(&passed)
        );
    }
}

/// `<code>a</code>, <code>b</code>`.
fn code_list(checks: &[&Check]) -> String {
    checks
        .iter()
        .map(|c| format!("<code>{}</code>", escape(&c.id)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_failure(out: &mut String, notebook: &str, check: &Check) {
    let error = check.outcome == Outcome::Error;
    let _ = writeln!(
        out,
        "<div class=\"{}{}\" id=\"{}\">",
        class::FAILURE,
        if error { " conclab-error" } else { "" },
        anchor(notebook, &check.id)
    );
    let _ = writeln!(
        out,
        "<p class=\"conclab-title\"><span class=\"conclab-bad\">✗</span> {} <code>{}</code></p>",
        title(check),
        escape(&check.id)
    );
    let message = check.message.trim_end();
    let shown = by_name(message);
    let _ = writeln!(out, "<p class=\"conclab-message\">{}</p>", escape(&shown));
    let is_diff = check.details.starts_with("--- expected");
    if is_diff {
        write_diff(out, &check.details);
    }
    if let Some(seed) = check.seed {
        let _ = writeln!(
            out,
            "<p class=\"conclab-replay\">It failed under a perturbed schedule, seed {seed}. To replay it, run <code>labkit::perturb::set_seed(Some({seed}));</code> in a cell, then the test cell again (<code>labkit::perturb::set_seed(None);</code> turns it off).</p>"
        );
    }
    if let Some(timeline) = &check.timeline {
        write_timeline(out, timeline);
    }
    if let Some(cell) = &check.evidence_in {
        let _ = writeln!(
            out,
            "<p class=\"conclab-muted\">The evidence is under <code>{}</code> above.</p>",
            escape(cell)
        );
    }
    let details = if is_diff { "" } else { check.details.trim() };
    // What the message said of pids and addresses is in the fold.
    let full_message = (shown != message).then_some(message);
    if !details.is_empty() || check.timeline.is_some() || full_message.is_some() {
        let _ = writeln!(
            out,
            "<details class=\"{}\"><summary>Evidence: {}</summary>",
            class::EVIDENCE,
            evidence_label(check)
        );
        if let Some(timeline) = &check.timeline {
            write_thread_states(out, timeline);
        }
        if let Some(message) = full_message {
            let _ = writeln!(out, "<p>In full: {}</p>", escape(message));
        }
        if !details.is_empty() {
            let _ = writeln!(out, "<pre>{}</pre>", escape(details));
        }
        out.push_str("</details>\n");
    }
    out.push_str("</div>\n");
}

/// The id of a failure's element, to link to it: letters, digits and
/// dashes from the notebook's stem and the check's id.
pub fn anchor(notebook: &str, check_id: &str) -> String {
    let name = format!("{}--{check_id}", super::notebook_stem(notebook));
    let mut id = String::from("check-");
    for c in name.chars() {
        id.push(if c.is_ascii_alphanumeric() || c == '-' {
            c
        } else {
            '_'
        });
    }
    id
}

/// `text` with the learner's threads and locks by name only: pids, tids
/// and addresses are for the folded evidence (`worker (pid 42)` → `worker`,
/// `mutex@0x55…` → `unnamed mutex`, `futex 0x7f…` → `a futex`).
pub(super) fn by_name(text: &str) -> String {
    use std::sync::LazyLock;
    static RULES: LazyLock<[(regex::Regex, &str); 4]> = LazyLock::new(|| {
        let rule = |pattern: &str, with| (regex::Regex::new(pattern).expect("a valid regex"), with);
        [
            rule(r" ?\((?:pid|tid) \d+(?:, (?:pid|tid) \d+)*\)", ""),
            rule(r" (?:pid|tid) \d+", ""),
            rule(r"\b(\w+)@0x[0-9a-fA-F]+", "unnamed $1"),
            rule(r"(?:futex )?0x[0-9a-fA-F]+", "a futex"),
        ]
    });
    let mut text = text.to_owned();
    for (pattern, with) in RULES.iter() {
        text = pattern.replace_all(&text, *with).into_owned();
    }
    text
}

/// What the folded evidence holds, in a few words.
fn evidence_label(check: &Check) -> &'static str {
    match check.kind {
        CheckKind::Property => "which threads, when, holding what",
        _ if check.timeline.is_some() => "every thread's state, the locks held and wanted",
        _ => "the full error",
    }
}

/// The failure in plain words, as HTML: what kind of check, about which cell.
fn title(check: &Check) -> String {
    let cell = escape(&check.cell);
    match check.kind {
        CheckKind::Test if check.outcome == Outcome::Error => {
            format!("The checker could not run {cell}")
        }
        // A hang's message opens with what stopped: `step07-x hung: …`.
        CheckKind::Test
            if check.message.starts_with(&format!("{} hung", check.cell))
                || check.message.contains(" did not finish within ") =>
        {
            format!("Test {cell} hung")
        }
        CheckKind::Test => format!("Test {cell} failed"),
        CheckKind::Output => format!("The output of {cell} differs"),
        CheckKind::Run => format!("{cell} did not run"),
        CheckKind::Submission => "The submission".to_owned(),
        CheckKind::Property => {
            let label = check
                .id
                .rsplit_once('/')
                .map_or(check.id.as_str(), |(_, l)| l);
            format!("{} (in {cell})", property_words(label))
        }
    }
}

/// A property's label (`max_inside(inside)`) as a learner reads it, as
/// HTML: the span's name in code.
fn property_words(label: &str) -> String {
    let (kind, span) = match label.split_once('(') {
        Some((kind, rest)) => (kind, rest.trim_end_matches(')')),
        None => (label, ""),
    };
    let span = format!("<code>{}</code>", escape(span));
    match kind {
        "max_inside" => format!("Too many at once in {span}"),
        "min_inside" => format!("Too few at once in {span}"),
        "parallel" => format!("{span} did not run in parallel"),
        "exactly_once" => format!("Not every {span} ran exactly once"),
        "owner_thread_only" => format!("{span} ran outside its owner thread"),
        "completion_order" => "Results not handed back as they completed".to_owned(),
        "streaming" => "Results not streamed as they came".to_owned(),
        "processes" => "Worker processes".to_owned(),
        "no_lock_cycle" => "Locks taken in an order that can deadlock".to_owned(),
        "no_hang" => "The cell hung".to_owned(),
        "no_leaks" => "Threads or processes left running".to_owned(),
        "sleeps_not_spins" => "A waiting thread spins".to_owned(),
        "release_on_panic" => "Not released when its holder panicked".to_owned(),
        "results_equal" => "Results differ".to_owned(),
        "input_order" => "Results not in input order".to_owned(),
        "fifo" => "Not first in, first out".to_owned(),
        "bounded" => "The queue is not bounded".to_owned(),
        "faster_than_sequential" => "Not faster than sequential".to_owned(),
        _ => escape(label),
    }
}

fn write_diff(out: &mut String, diff: &str) {
    out.push_str("<pre class=\"conclab-diff\">");
    for line in diff.trim_end().lines() {
        let class = match line.as_bytes().first() {
            Some(b'-') if !line.starts_with("---") => Some("conclab-del"),
            Some(b'+') if !line.starts_with("+++") => Some("conclab-add"),
            _ => None,
        };
        match class {
            Some(class) => {
                let _ = writeln!(out, "<span class=\"{class}\">{}</span>", escape(line));
            }
            None => {
                let _ = writeln!(out, "{}", escape(line));
            }
        }
    }
    out.push_str("</pre>\n");
}

/// The learner's threads by name, as the timeline leaves them: what each
/// was still waiting for or holding when the picture ends.
fn write_thread_states(out: &mut String, timeline: &Timeline) {
    let mut lines = Vec::new();
    for lane in timeline.lanes.iter().filter(|l| l.involved) {
        let mut doing = Vec::new();
        for interval in lane.intervals.iter().filter(|i| i.open) {
            let name = escape(&interval.name);
            doing.push(match interval.kind {
                IntervalKind::Wait => {
                    format!("waits for <b>{name}</b> since {} ms", ms(interval.from_ms))
                }
                IntervalKind::Lock => {
                    format!("holds <b>{name}</b> since {} ms", ms(interval.from_ms))
                }
                IntervalKind::Span => {
                    format!("is inside <b>{name}</b> since {} ms", ms(interval.from_ms))
                }
            });
        }
        if !doing.is_empty() {
            lines.push(format!(
                "<li><b>{}</b> {}</li>",
                escape(&lane.thread),
                doing.join(", ")
            ));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(
            out,
            "<p>Your threads when the trace ends:</p>\n<ul class=\"conclab-threads\">\n{}\n</ul>",
            lines.join("\n")
        );
    }
}

/// `1331.2`: a time as messages give it.
fn ms(value: f64) -> String {
    format!("{value:.1}")
}

// ---------------------------------------------------------------------------
// The timeline picture

/// Width of the thread names' column.
const NAMES: f64 = 150.0;
/// Width of the time axis.
const PLOT: f64 = 560.0;
/// Height of a lane: a row for spans and waits, a thinner one for locks.
const LANE: f64 = 28.0;
/// Room above the lanes for the marks' labels.
const TOP: f64 = 30.0;

fn write_timeline(out: &mut String, timeline: &Timeline) {
    let width = NAMES + PLOT + 20.0;
    let lanes_height = LANE * timeline.lanes.len() as f64;
    let height = TOP + lanes_height + 44.0;
    let span_ms = (timeline.to_ms - timeline.from_ms).max(1e-3);
    let x = |t: f64| NAMES + (t - timeline.from_ms).clamp(0.0, span_ms) / span_ms * PLOT;
    let mark_words: Vec<&str> = timeline.marks.iter().map(|m| m.label.as_str()).collect();
    let _ = writeln!(
        out,
        "<svg class=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-size=\"11\" role=\"img\" aria-label=\"timeline of your threads: {}\">",
        class::TIMELINE,
        escape(&mark_words.join("; "))
    );
    for (row, lane) in timeline.lanes.iter().enumerate() {
        let y = TOP + row as f64 * LANE;
        if lane.involved {
            let _ = writeln!(
                out,
                "<rect class=\"conclab-tl-involved\" x=\"0\" y=\"{y:.1}\" width=\"{width:.0}\" height=\"{LANE}\" fill=\"#2196f3\" fill-opacity=\"0.12\"/>"
            );
        }
        let weight = if lane.involved {
            " font-weight=\"600\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"currentColor\"{weight}>{}</text>",
            NAMES - 6.0,
            y + 15.0,
            escape(&shorten(&lane.thread, 22))
        );
        for interval in &lane.intervals {
            let (x0, x1) = (x(interval.from_ms), x(interval.to_ms));
            let w = (x1 - x0).max(1.5);
            let still = if interval.open {
                ", still going when the trace ends"
            } else {
                ""
            };
            let tip = format!(
                "{}: {} {} from {} ms to {} ms{still}",
                lane.thread,
                match interval.kind {
                    IntervalKind::Span => "inside",
                    IntervalKind::Lock => "holds",
                    IntervalKind::Wait => "waits for",
                },
                interval.name,
                ms(interval.from_ms),
                ms(interval.to_ms)
            );
            let tip = escape(&tip);
            match interval.kind {
                IntervalKind::Span => {
                    let _ = write!(
                        out,
                        "<rect class=\"conclab-tl-span\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"12\" rx=\"2\" fill=\"#1976d2\"><title>{tip}</title></rect>",
                        y + 3.0
                    );
                    bar_label(out, &interval.name, (x0, w, y + 13.0), &ON_SPAN);
                }
                IntervalKind::Lock => {
                    let _ = write!(
                        out,
                        "<rect class=\"conclab-tl-lock\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"8\" fill=\"#f57c00\"><title>{tip}</title></rect>",
                        y + 18.0
                    );
                    let words = format!("holds {}", interval.name);
                    bar_label(out, &words, (x0, w, y + 25.0), &ON_LOCK);
                }
                IntervalKind::Wait => {
                    let _ = write!(
                        out,
                        "<rect class=\"conclab-tl-wait\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"12\" fill=\"none\" stroke=\"#d32f2f\" stroke-dasharray=\"3 2\"><title>{tip}</title></rect>",
                        y + 3.0
                    );
                    let words = format!(
                        "waits: {}{}",
                        interval.name,
                        if interval.open { " …" } else { "" }
                    );
                    bar_label(out, &words, (x0, w, y + 13.0), &ON_WAIT);
                }
            }
        }
    }
    // The time axis: round ticks, each label distinct.
    let axis_y = TOP + lanes_height + 4.0;
    let _ = writeln!(
        out,
        "<line class=\"conclab-tl-axis\" x1=\"{NAMES}\" y1=\"{axis_y:.1}\" x2=\"{:.1}\" y2=\"{axis_y:.1}\" stroke=\"#999\"/>",
        NAMES + PLOT
    );
    let (step, decimals) = tick_step(span_ms);
    let mut tick = (timeline.from_ms / step).ceil() * step;
    while tick <= timeline.to_ms + step * 1e-6 {
        let tx = x(tick);
        let _ = writeln!(
            out,
            "<line class=\"conclab-tl-axis\" x1=\"{tx:.1}\" y1=\"{axis_y:.1}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#999\"/><text class=\"conclab-tl-dim\" x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"currentColor\">{tick:.decimals$} ms</text>",
            axis_y + 4.0,
            axis_y + 16.0
        );
        tick += step;
    }
    for mark in &timeline.marks {
        let mx = x(mark.at_ms);
        let anchor = if mx > NAMES + PLOT * 0.6 {
            "end"
        } else {
            "start"
        };
        let _ = writeln!(
            out,
            "<line class=\"conclab-tl-mark\" x1=\"{mx:.1}\" y1=\"{:.1}\" x2=\"{mx:.1}\" y2=\"{:.1}\" stroke=\"#d32f2f\" stroke-width=\"2\"/><text class=\"conclab-tl-mark-text\" x=\"{mx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"#d32f2f\">{} ms: {}</text>",
            TOP - 12.0,
            TOP + lanes_height,
            TOP - 16.0,
            ms(mark.at_ms),
            escape(&by_name(&mark.label))
        );
    }
    // The legend, and what was left out.
    let legend_y = axis_y + 34.0;
    let mut legend = format!(
        "<rect class=\"conclab-tl-span\" x=\"{NAMES}\" y=\"{:.1}\" width=\"14\" height=\"9\" fill=\"#1976d2\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\" fill=\"currentColor\">inside a span</text>",
        legend_y - 8.0,
        NAMES + 18.0
    );
    let _ = write!(
        legend,
        "<rect class=\"conclab-tl-lock\" x=\"{:.1}\" y=\"{:.1}\" width=\"14\" height=\"6\" fill=\"#f57c00\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\" fill=\"currentColor\">holds a lock</text>",
        NAMES + 110.0,
        legend_y - 6.0,
        NAMES + 128.0
    );
    let _ = write!(
        legend,
        "<rect class=\"conclab-tl-wait\" x=\"{:.1}\" y=\"{:.1}\" width=\"14\" height=\"9\" fill=\"none\" stroke=\"#d32f2f\" stroke-dasharray=\"3 2\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\" fill=\"currentColor\">waits</text>",
        NAMES + 215.0,
        legend_y - 8.0,
        NAMES + 233.0
    );
    let mut left_out = Vec::new();
    if timeline.lanes_left_out > 0 {
        left_out.push(format!("{} more threads", timeline.lanes_left_out));
    }
    if timeline.intervals_left_out > 0 {
        left_out.push(format!("{} intervals", timeline.intervals_left_out));
    }
    if !left_out.is_empty() {
        let _ = write!(
            legend,
            "<text class=\"conclab-tl-dim\" x=\"{:.1}\" y=\"{legend_y:.1}\" fill=\"currentColor\">not drawn: {}</text>",
            NAMES + 290.0,
            left_out.join(", ")
        );
    }
    out.push_str(&legend);
    out.push_str("\n</svg>\n");
}

/// How a label inside a bar is drawn: its class, its colour where CSS is
/// not applied, its font size.
struct Ink {
    class: &'static str,
    fill: &'static str,
    size: f64,
}

const ON_SPAN: Ink = Ink {
    class: "conclab-tl-span-text",
    fill: "#fff",
    size: 10.0,
};
const ON_WAIT: Ink = Ink {
    class: "conclab-tl-mark-text",
    fill: "#d32f2f",
    size: 10.0,
};
const ON_LOCK: Ink = Ink {
    class: "conclab-tl-lock-text",
    fill: "#000",
    size: 7.5,
};

/// A label inside a bar at (x, width, baseline), when it fits (a character
/// is about 0.6 of the font's size wide).
fn bar_label(out: &mut String, text: &str, (x0, width, y): (f64, f64, f64), ink: &Ink) {
    let fits = (width - 4.0) / (ink.size * 0.6);
    if fits >= 3.0 {
        let text = shorten(text, fits as usize);
        let _ = write!(
            out,
            "<text class=\"{}\" x=\"{:.1}\" y=\"{y:.1}\" font-size=\"{}\" fill=\"{}\">{}</text>",
            ink.class,
            x0 + 2.0,
            ink.size,
            ink.fill,
            escape(&text)
        );
    }
    out.push('\n');
}

/// A round step (1, 2 or 5 times a power of ten) giving 4 to 10 ticks over
/// `span_ms`, and the decimals that keep its labels distinct.
fn tick_step(span_ms: f64) -> (f64, usize) {
    let rough = span_ms / 6.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&s| span_ms / s <= 8.0)
        .unwrap_or(10.0 * power);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    (step, decimals)
}

/// `text` cut to `max` characters, with `…` when cut.
pub(super) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// Text made safe for HTML and SVG, control characters spelled out (the
/// learner's output must not be able to inject markup or rewrite the page).
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::sample_report;
    use crate::report::{Interval, Lane, Mark};

    /// The sample's first learner alone: one submission's feedback.
    fn one_submission() -> Report {
        let mut report = sample_report();
        report.submissions.truncate(1);
        report
    }

    fn timeline() -> Timeline {
        let span = |name: &str, from_ms, to_ms| Interval {
            kind: IntervalKind::Span,
            name: name.into(),
            from_ms,
            to_ms,
            open: false,
        };
        Timeline {
            from_ms: 8.0,
            to_ms: 16.0,
            lanes: vec![
                Lane {
                    thread: "worker-3".into(),
                    involved: true,
                    intervals: vec![
                        Interval {
                            kind: IntervalKind::Wait,
                            name: "permits".into(),
                            from_ms: 9.0,
                            to_ms: 12.3,
                            open: false,
                        },
                        span("inside 3", 12.3, 16.0),
                    ],
                },
                Lane {
                    thread: "worker-0".into(),
                    involved: true,
                    intervals: vec![span("inside 0", 10.1, 15.0)],
                },
            ],
            marks: vec![Mark {
                at_ms: 12.3,
                label: "4 inside inside (at most 3)".into(),
            }],
            lanes_left_out: 2,
            intervals_left_out: 0,
        }
    }

    #[test]
    fn a_failing_report_leads_with_its_summary_and_folds_the_evidence() {
        let mut report = one_submission();
        report.submissions[0].notebooks[0].checks[1].timeline = Some(timeline());
        let html = render(&report);
        insta::assert_snapshot!(html);
        let summary = html.find(class::SUMMARY).unwrap();
        assert!(summary < html.find(class::FAILURE).unwrap());
        assert!(
            html.contains(
                "4/20 points · 1 of 4 checks passed · 1 failed · 1 not run · 1 checker error"
            ),
            "{html}"
        );
        assert_eq!(html.matches("<svg class=\"conclab-timeline\"").count(), 1);
        assert!(
            html.contains("labkit::perturb::set_seed(Some(1234));"),
            "{html}"
        );
        assert!(!html.contains("<script"), "no scripts");
    }

    #[test]
    fn an_all_passing_report_is_one_line_and_a_list() {
        let mut report = one_submission();
        report.submissions[0].notebooks.truncate(1);
        report.submissions[0].notebooks[0].checks.truncate(1);
        report.submissions[0].submission = "07-semaphores.ipynb".into();
        let html = render(&report);
        let body = &html[html.find("</style>").unwrap()..];
        insta::assert_snapshot!(body, @r#"
        </style>
        <p class="conclab-summary"><span class="conclab-ok">✓</span> <b>07-semaphores.ipynb</b>: 4/4 points · 1 of 1 checks passed</p>
        <p class="conclab-passed"><span class="conclab-ok">✓</span> Passed: <code>step07-semaphore-test</code></p>
        </div>
        "#);
        assert!(!html.contains("class=\"conclab-failure"));
    }

    #[test]
    fn a_hang_is_told_once_and_the_checks_it_stopped_refer_to_it() {
        let mut report = one_submission();
        let checks = &mut report.submissions[0].notebooks[0].checks;
        let hang = Check {
            id: "step07-semaphore-hidden".into(),
            cell: "step07-semaphore-hidden".into(),
            kind: CheckKind::Test,
            outcome: Outcome::Failed,
            message: "step07-semaphore-hidden hung: thread-7 waits on condition variable released that nobody notifies".into(),
            details: "- thread-7: pid 42 (conclab-kernel), tid 7, sleeping (S), waits in futex 0x7fff10 (released)".into(),
            timeline: Some(timeline()),
            ..checks[1].clone()
        };
        let stopped = |label: &str, outcome, message: &str| Check {
            id: format!("step07-semaphore-hidden/{label}"),
            kind: CheckKind::Property,
            outcome,
            message: message.into(),
            details: String::new(),
            timeline: None,
            seed: None,
            evidence_in: Some("step07-semaphore-hidden".into()),
            ..hang.clone()
        };
        *checks = vec![
            hang.clone(),
            stopped(
                "max_inside(inside)",
                Outcome::NotRun,
                "not run: step07-semaphore-hidden hung",
            ),
            stopped(
                "min_inside(inside)",
                Outcome::NotRun,
                "not run: step07-semaphore-hidden hung",
            ),
            stopped("no_hang", Outcome::Failed, &hang.message),
        ];
        let html = render(&report);
        assert_eq!(
            html.matches("<details class=\"conclab-evidence\"").count(),
            1,
            "{html}"
        );
        assert_eq!(html.matches("0x7fff10").count(), 1, "{html}");
        assert!(html.contains("Not run, because step07-semaphore-hidden hung (the evidence is under <code>step07-semaphore-hidden</code> above): <code>step07-semaphore-hidden/max_inside(inside)</code>, <code>step07-semaphore-hidden/min_inside(inside)</code>"), "{html}");
        assert!(
            html.contains("The cell hung (in step07-semaphore-hidden)"),
            "{html}"
        );
        // Pids, tids and addresses only inside the folded evidence.
        let outside: String = html
            .split("<details")
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part
                } else {
                    part.split_once("</details>").map_or("", |(_, after)| after)
                }
            })
            .collect();
        for secret in ["pid ", "tid ", "0x"] {
            assert!(
                !outside.contains(secret),
                "{secret} outside the details: {outside}"
            );
        }
    }

    #[test]
    fn the_learners_text_cannot_inject_markup() {
        let mut report = one_submission();
        report.submissions[0].notebooks[0].checks[1].message =
            "<script>alert(1)</script> & \u{1b}[31m".into();
        let html = render(&report);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; \\u{1b}[31m"),
            "{html}"
        );
        assert!(!html.contains("<script"));
    }

    #[test]
    fn messages_name_threads_and_locks_and_fold_pids_and_addresses() {
        assert_eq!(
            by_name("main blocked writing a pipe to labkit-worker pid 4242, which is blocked"),
            "main blocked writing a pipe to labkit-worker, which is blocked"
        );
        assert_eq!(
            by_name(
                "worker-1 (pid 7, tid 9) waits on condition variable condvar@0x7ffe10 that nobody notifies"
            ),
            "worker-1 waits on condition variable unnamed condvar that nobody notifies"
        );
        assert_eq!(
            by_name("main waits in futex 0x55ac1e"),
            "main waits in a futex"
        );
        let mut report = one_submission();
        report.submissions[0].notebooks[0].checks[1].message =
            "x hung: main waits in futex 0x55ac1e (pid 12)".into();
        let html = render(&report);
        assert!(
            html.contains("<p class=\"conclab-message\">x hung: main waits in a futex</p>"),
            "{html}"
        );
        assert!(
            html.contains("<p>In full: x hung: main waits in futex 0x55ac1e (pid 12)</p>"),
            "{html}"
        );
    }

    #[test]
    fn ticks_are_round_and_distinct() {
        assert_eq!(tick_step(8.0), (1.0, 0));
        assert_eq!(tick_step(2.0), (0.5, 1));
        assert_eq!(tick_step(60.0), (10.0, 0));
        assert_eq!(tick_step(1300.0), (200.0, 0));
    }
}
