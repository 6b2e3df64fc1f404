"""A notebook executed end to end by nbclient through conclab-kernel."""

import nbclient
import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from conftest import KERNEL_NAME


def test_nbclient_runs_a_notebook_and_stores_its_outputs():
    notebook = new_notebook(
        cells=[
            new_code_cell("use rayon::prelude::*;\nlet squares: Vec<u64> = (1..=4u64).into_par_iter().map(|n| n * n).collect();"),
            new_code_cell('println!("{squares:?}");'),
            new_code_cell("squares.iter().sum::<u64>()"),
            new_code_cell('labkit::show::svg("<svg xmlns=\'http://www.w3.org/2000/svg\'/>");'),
            new_code_cell('let (tx, rx) = crossbeam::channel::unbounded();\n'
                          'std::thread::scope(|s| for i in 0..3 { let tx = tx.clone(); s.spawn(move || tx.send(i).unwrap()); });\n'
                          'drop(tx);\nlet mut got: Vec<i32> = rx.iter().collect();\ngot.sort();\n'
                          'println!("{}", serde_json::to_string(&got).unwrap());'),
            new_code_cell('let ((), timeline) = labkit::timeline::record(|| std::thread::scope(|s| for i in 0..3 {\n'
                          '    s.spawn(move || labkit::in_span("task", i, || labkit::work::io(std::time::Duration::from_millis(40))));\n'
                          '}));\ntimeline.show();\ntimeline.max_overlap("task")'),
            new_code_cell('use std::io::{BufRead, Write};\n'
                          'let mut worker = labkit::worker::command().unwrap()\n'
                          '    .stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();\n'
                          'writeln!(worker.stdin.take().unwrap(), r#"{{"id": 1, "task": "square", "args": {{"n": 7}}}}"#).unwrap();\n'
                          'let line = std::io::BufReader::new(worker.stdout.take().unwrap()).lines().next().unwrap().unwrap();\n'
                          'worker.wait().unwrap();\n'
                          'serde_json::from_str::<serde_json::Value>(&line).unwrap()["result"].as_i64().unwrap()'),
        ],
        metadata={"kernelspec": {"name": KERNEL_NAME, "display_name": "Rust (conclab)", "language": "rust"}},
    )
    client = nbclient.NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=120, startup_timeout=120)
    client.execute()
    cells = notebook.cells
    assert [c.execution_count for c in cells] == [1, 2, 3, 4, 5, 6, 7]
    assert cells[0].outputs == []
    assert cells[1].outputs[0].text == "[1, 4, 9, 16]\n"
    assert cells[2].outputs[0].output_type == "execute_result"
    assert cells[2].outputs[0].data["text/plain"] == "30"
    assert cells[3].outputs[0].output_type == "display_data"
    assert "image/svg+xml" in cells[3].outputs[0].data
    assert cells[4].outputs[0].text == "[0,1,2]\n"
    # labkit from a cell: a timeline drawn mid-cell, and a worker process.
    assert [o.output_type for o in cells[5].outputs] == ["display_data", "execute_result"]
    assert "<svg" in cells[5].outputs[0].data["image/svg+xml"]
    # Beside the SVG, a PNG of it, which JupyterLab shows in an untrusted notebook,
    # drawn at twice the size and shown at the SVG's.
    assert cells[5].outputs[0].data["image/png"].startswith("iVBORw0KGgo")
    assert cells[5].outputs[0].metadata["image/png"]["width"] == 720
    assert cells[5].outputs[1].data["text/plain"] == "3"
    assert cells[6].outputs[-1].data["text/plain"] == "49"
    # What nbclient stores is a valid notebook.
    nbformat.validate(notebook)
