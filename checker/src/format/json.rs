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
