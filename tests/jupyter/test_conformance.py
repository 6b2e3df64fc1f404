"""The Jupyter kernel conformance suite (PyPI jupyter_kernel_test) against conclab-kernel.

Every sample the suite can take is filled in, so every one of its tests runs.
"""

import unittest

import jupyter_kernel_test as jkt

from conftest import KERNEL_NAME

# A 1x1 PNG, to show that a cell can display binary images.
PNG_CELL = (
    "labkit::show::png(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]);"
)


class ConclabKernelTests(jkt.KernelTests):
    kernel_name = KERNEL_NAME
    language_name = "rust"
    file_extension = ".rs"

    code_hello_world = 'println!("hello, world");'
    code_stderr = 'eprintln!("something went wrong");'
    code_generate_error = 'let n: i32 = "not a number";'

    code_execute_result = [
        {"code": "1 + 2", "result": "3"},
        {"code": '"conclab".len()', "result": "7"},
        {"code": "vec![1, 2, 3]", "result": "[1, 2, 3]"},
    ]
    code_display_data = [
        {"code": 'labkit::show::html("<b>concurrency</b>");', "mime": "text/html"},
        {
            "code": "labkit::show::svg(\"<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'/>\");",
            "mime": "image/svg+xml",
        },
        {"code": PNG_CELL, "mime": "image/png"},
    ]
    code_clear_output = "labkit::show::clear_output(false);"

    completion_samples = [
        {"text": "std::mem::swa", "matches": {"swap"}},
    ]
    complete_code_samples = ["1 + 2", "fn f() {}", 'let s = "{";', "// open ( in a comment"]
    incomplete_code_samples = ["fn f() {", 'let s = "abc', "/* open comment", "let v = vec![1,"]
    invalid_code_samples = ["fn f() }", "let v = [1, 2);"]

    code_inspect_sample = "Vec::new"
    code_page_something = "Vec::new?"

    code_history_pattern = "1 +*"
    supported_history_operations = ("tail", "range", "search")


class ConclabIopubWelcomeTests(jkt.IopubWelcomeTests):
    kernel_name = KERNEL_NAME
    support_iopub_welcome = True


if __name__ == "__main__":
    unittest.main()
