//! `--format json`: the report's own serde form, which is conclab's stable
//! schema and what `merge` reads back.

use crate::report::Report;

/// The report as pretty JSON with a trailing newline.
pub fn render(report: &Report) -> String {
    // A Report holds only strings, numbers and lists, so serializing it
    // cannot fail (serde_json writes a non-finite number as null).
    let mut json = serde_json::to_string_pretty(report).expect("a Report always serializes");
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::sample_report;

    #[test]
    fn reads_back_as_the_same_report() {
        let report = sample_report();
        let back: Report = serde_json::from_str(&render(&report)).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn a_timeline_and_a_pointer_to_the_evidence_read_back_and_older_reports_still_read() {
        use crate::report::{Interval, IntervalKind, Lane, Mark, Timeline};
        let mut report = sample_report();
        let check = &mut report.submissions[0].notebooks[0].checks[1];
        check.evidence_in = Some("step07-semaphore-hidden".into());
        check.timeline = Some(Timeline {
            from_ms: 8.0,
            to_ms: 16.0,
            lanes: vec![Lane {
                thread: "worker-3".into(),
                involved: true,
                intervals: vec![Interval {
                    kind: IntervalKind::Wait,
                    name: "released".into(),
                    from_ms: 9.0,
                    to_ms: 16.0,
                    open: true,
                }],
            }],
            marks: vec![Mark {
                at_ms: 12.3,
                label: "4 in \"inside\" at once (limit 3)".into(),
            }],
            lanes_left_out: 0,
            intervals_left_out: 3,
        });
        let json = render(&report);
        assert!(
            json.contains(r#""kind": "wait""#) && json.contains(r#""open": true"#),
            "{json}"
        );
        assert!(
            !json.contains("lanes_left_out"),
            "zero counts are left out: {json}"
        );
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        // A report written before these fields existed reads as one without them.
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        let check = &mut old["submissions"][0]["notebooks"][0]["checks"][1];
        let fields = check.as_object_mut().unwrap();
        fields.remove("timeline");
        fields.remove("evidence_in");
        fields.remove("exercise");
        let back: Report = serde_json::from_value(old).unwrap();
        let check = &back.submissions[0].notebooks[0].checks[1];
        assert_eq!((&check.timeline, &check.evidence_in), (&None, &None));
        assert_eq!(check.exercise, None);
    }

    #[test]
    fn snapshot() {
        let mut report = sample_report();
        // One submission is enough to show the schema's shape.
        report.submissions.truncate(1);
        report.submissions[0].notebooks.truncate(1);
        insta::assert_snapshot!(render(&report), @r###"
        {
          "schema": "conclab-check/report/1",
          "command": "grade",
          "submissions": [
            {
              "submission": "alice",
              "path": "submissions/alice",
              "notebooks": [
                {
                  "notebook": "07-semaphores.ipynb",
                  "checks": [
                    {
                      "id": "step07-semaphore-test",
                      "cell": "step07-semaphore-test",
                      "exercise": "step07-semaphore",
                      "kind": "test",
                      "outcome": "passed",
                      "score": 4.0,
                      "max_score": 4.0,
                      "message": "ran without error",
                      "time_s": 0.412
                    },
                    {
                      "id": "step07-semaphore-hidden/max_inside(inside)",
                      "cell": "step07-semaphore-hidden",
                      "exercise": "step07-semaphore",
                      "kind": "property",
                      "outcome": "failed",
                      "score": 0.0,
                      "max_score": 6.0,
                      "message": "never more than 3 inside at once: 4 were inside at 12.3 ms",
                      "details": "inside `inside` at 12.3 ms:\n  worker-0  since 10.1 ms\n  worker-1  since 11.0 ms\n  worker-2  since 11.9 ms\n  worker-3  since 12.3 ms  (acquired without a permit)",
                      "seed": 1234,
                      "time_s": 1.25
                    }
                  ],
                  "time_s": 3.5
                }
              ]
            }
          ]
        }
        "###);
    }
}
