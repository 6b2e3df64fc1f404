//! `--format csv`: grades for a gradebook, one row per learner and
//! exercise, then one `TOTAL` row per learner.
//!
//! Columns: `learner,notebook,exercise,points,max_points`. `exercise` is the
//! grade_id of the exercise's solution cell; its points are those of its
//! tests. A row with an empty `exercise` holds the points of a notebook
//! that could not be graded exercise by exercise (an unreadable file, a
//! kernel that would not start), so that totals stay right. The `TOTAL`
//! row has an empty `notebook`; leave those rows out to sum per exercise.

use std::collections::BTreeMap;

use super::points;
use crate::report::{Report, SubmissionReport};

/// The header row.
pub const COLUMNS: [&str; 5] = ["learner", "notebook", "exercise", "points", "max_points"];

/// What the `exercise` column of a learner's total row says.
pub const TOTAL: &str = "TOTAL";

/// The report as CSV, ending with a newline.
pub fn render(report: &Report) -> String {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    let mut write = |row: [&str; 5]| {
        writer
            .write_record(row)
            .expect("writing CSV to memory cannot fail");
    };
    write(COLUMNS);
    for submission in &report.submissions {
        for row in rows(submission) {
            write([
                &submission.submission,
                &row.notebook,
                &row.exercise,
                &points(row.score),
                &points(row.max_score),
            ]);
        }
        let (score, max) = submission.score();
        write([
            &submission.submission,
            "",
            TOTAL,
            &points(score),
            &points(max),
        ]);
    }
    let bytes = writer
        .into_inner()
        .expect("flushing CSV to memory cannot fail");
    String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8")
}

/// One learner's points for one exercise of one notebook.
#[derive(Debug, PartialEq)]
pub struct ExerciseRow {
    /// The notebook's file name.
    pub notebook: String,
    /// The exercise's grade_id; empty for points of the notebook as a whole.
    pub exercise: String,
    /// Points earned.
    pub score: f64,
    /// Points available.
    pub max_score: f64,
}

/// A submission's points per exercise, in the order the exercises ran.
/// Exercises with no points at stake (nothing graded) are left out.
pub fn rows(submission: &SubmissionReport) -> Vec<ExerciseRow> {
    let mut rows = Vec::new();
    for notebook in &submission.notebooks {
        let mut order = Vec::new();
        let mut sums: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for check in &notebook.checks {
            let exercise = check.exercise.as_deref().unwrap_or("");
            let sum = sums.entry(exercise).or_insert_with(|| {
                order.push(exercise);
                (0.0, 0.0)
            });
            sum.0 += check.score;
            sum.1 += check.max_score;
        }
        for exercise in order {
            let (score, max_score) = sums[exercise];
            if max_score > 0.0 {
                rows.push(ExerciseRow {
                    notebook: notebook.notebook.clone(),
                    exercise: exercise.to_owned(),
                    score,
                    max_score,
                });
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::sample_report;

    #[test]
    fn one_row_per_learner_and_exercise_then_the_learners_total() {
        insta::assert_snapshot!(render(&sample_report()), @r"
        learner,notebook,exercise,points,max_points
        alice,07-semaphores.ipynb,step07-semaphore,4,10
        alice,08-hybrid.ipynb,step08-hybrid,0,10
        alice,,TOTAL,4,20
        mallory,07-semaphores.ipynb,,0,10
        mallory,,TOTAL,0,10
        ");
    }

    #[test]
    fn fields_with_commas_and_quotes_are_quoted() {
        let mut report = sample_report();
        report.submissions.truncate(1);
        report.submissions[0].submission = "Lovelace, \"Ada\"".to_owned();
        let csv = render(&report);
        let mut reader = ::csv::Reader::from_reader(csv.as_bytes());
        let learners: Vec<String> = reader
            .records()
            .map(|row| row.unwrap()[0].to_owned())
            .collect();
        assert!(learners.iter().all(|l| l == "Lovelace, \"Ada\""), "{csv}");
        assert_eq!(learners.len(), 3);
    }

    #[test]
    fn every_row_sums_to_the_learners_total() {
        let report = sample_report();
        for submission in &report.submissions {
            let sum: f64 = rows(submission).iter().map(|r| r.max_score).sum();
            assert_eq!(sum, submission.score().1, "{}", submission.submission);
        }
    }
}
