"""What a learner sees of help, values and panics, through a real kernel.

`Vec::new?` opens the pager as IPython's `?` does; values display as
evcxr_jupyter displays them (a crate's or the learner's own `evcxr_display`
first, `Debug` otherwise); a panic in a thread the cell spawned names the
line within the cell, not one in evcxr's generated code.
"""

import re

import pytest

from conftest import fresh_kernel, run

TIMEOUT = 60
# A cell that needs crates from the registry built for it.
BUILD_TIMEOUT = 600


@pytest.fixture(scope="module")
def kernel():
    with fresh_kernel(TIMEOUT) as km_kc:
        # The first cell waits for the prelude crates to load; later ones do not.
        reply, _ = run(km_kc[1], "1", timeout=BUILD_TIMEOUT)
        assert reply["status"] == "ok"
        yield km_kc


def stream(outputs, name):
    return "".join(c["text"] for t, c in outputs if t == "stream" and c["name"] == name)


def shown(outputs, mime):
    """The values of `mime` in the cell's results and displays, without the
    kernel's own "building crates" notes."""
    return [
        c["data"][mime]
        for t, c in outputs
        if t in ("execute_result", "display_data")
        and mime in c["data"]
        and not str((c.get("transient") or {}).get("display_id", "")).startswith("conclab-build")
    ]


# --- `?` opens the pager -------------------------------------------------


@pytest.mark.parametrize("code", ["Vec::new?", "?Vec::new", "Vec::new ?"])
def test_question_mark_opens_the_pager_and_prints_nothing(kernel, code):
    _, kc = kernel
    reply, outputs = run(kc, code)
    assert reply["status"] == "ok"
    pages = [p for p in reply["payload"] if p["source"] == "page"]
    assert len(pages) == 1, reply["payload"]
    assert pages[0]["start"] == 0
    text = pages[0]["data"]["text/plain"]
    assert "Vec" in text and "new" in text
    # The docs are in the pager only, not in the cell's output.
    assert outputs == [], outputs


def test_pager_and_inspection_hide_rustdocs_hidden_lines(kernel):
    _, kc = kernel
    # Vec::new's example starts with `# #![allow(unused_mut)]`.
    reply, _ = run(kc, "Vec::new?")
    page = reply["payload"][0]["data"]
    msg_id = kc.inspect("Vec::new", cursor_pos=len("Vec::new"))
    inspected = kc.get_shell_msg(timeout=TIMEOUT)
    assert inspected["parent_header"]["msg_id"] == msg_id
    assert inspected["content"]["found"]
    for data in (page, inspected["content"]["data"]):
        for mime, text in data.items():
            assert "allow(unused_mut)" not in text, (mime, text)
            assert not re.search(r"^# ", text, re.MULTILINE), (mime, text)
        assert "let mut vec" in data["text/plain"]


# --- values display as evcxr_jupyter displays them -----------------------


def test_a_debug_value_shows_as_text(kernel):
    _, kc = kernel
    reply, outputs = run(kc, "vec![1, 2, 3]")
    assert reply["status"] == "ok"
    assert shown(outputs, "text/plain") == ["[1, 2, 3]"]
    # A variable, declared without `mut`, shows the same way.
    run(kc, 'let plain_words = vec!["a", "b"];')
    reply, outputs = run(kc, "plain_words")
    assert reply["status"] == "ok"
    assert shown(outputs, "text/plain") == ['["a", "b"]']
    # ... and so does one declared in the same cell, on its line or before it.
    for code in ['let same = (1, "x"); same', 'let same = [(1, "x")];\nsame[0]']:
        reply, outputs = run(kc, code)
        assert reply["status"] == "ok", reply
        assert shown(outputs, "text/plain") == ['(1, "x")']


def test_a_learners_own_evcxr_display_is_used(kernel):
    _, kc = kernel
    code = """
#[derive(Debug)]
struct Badge(u32);
impl Badge {
    fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT text/html\\n<b>badge {}</b>\\nEVCXR_END_CONTENT", self.0);
    }
}
Badge(7)
"""
    reply, outputs = run(kc, code)
    assert reply["status"] == "ok", reply
    assert shown(outputs, "text/html") == ["<b>badge 7</b>"]
    # Once the type exists, a variable of it shows the same way.
    run(kc, "let badge = Badge(8);")
    reply, outputs = run(kc, "badge")
    assert shown(outputs, "text/html") == ["<b>badge 8</b>"]


def test_an_evcxr_display_taking_self_is_used_and_moves_a_variable(kernel):
    # As `x.evcxr_display()` would: the value, or the variable, moves into
    # the method; Debug is never used instead, nor needed.
    _, kc = kernel
    code = """
#[derive(Debug)]
struct Ticket(String);
impl Ticket {
    fn evcxr_display(self) {
        println!("EVCXR_BEGIN_CONTENT text/html\\n<i>ticket {}</i>\\nEVCXR_END_CONTENT", self.0);
    }
}
struct Stamp(u8);
impl Stamp {
    fn evcxr_display(self) {
        println!("EVCXR_BEGIN_CONTENT text/html\\n<u>stamp {}</u>\\nEVCXR_END_CONTENT", self.0);
    }
}
Ticket("a".into())
"""
    reply, outputs = run(kc, code)
    assert reply["status"] == "ok", reply
    assert shown(outputs, "text/html") == ["<i>ticket a</i>"]
    run(kc, 'let ticket = Ticket("b".into());')
    for code, html in [
        ("ticket", "<i>ticket b</i>"),
        ('let same = Ticket("c".into());\nsame', "<i>ticket c</i>"),
        # A type without Debug.
        ("let stamp = Stamp(4); stamp", "<u>stamp 4</u>"),
    ]:
        reply, outputs = run(kc, code)
        assert reply["status"] == "ok", (code, reply)
        assert shown(outputs, "text/html") == [html], code
        assert shown(outputs, "text/plain") == [""], code
    reply, _ = run(kc, "ticket")
    assert reply["status"] == "error"
    assert "cannot find value `ticket`" in reply["evalue"], reply


def test_an_evcxr_display_taking_a_copy_type_by_value_keeps_the_variable(kernel):
    _, kc = kernel
    code = """
#[derive(Debug, Clone, Copy)]
struct Dot(u8);
impl Dot {
    fn evcxr_display(self) {
        println!("EVCXR_BEGIN_CONTENT text/html\\n<b>dot {}</b>\\nEVCXR_END_CONTENT", self.0);
    }
}
let dot = Dot(1);
"""
    reply, _ = run(kc, code)
    assert reply["status"] == "ok", reply
    # Copied into the method, as `dot.evcxr_display()` would: `dot` stays.
    for code, html in [
        ("dot", "<b>dot 1</b>"),
        ("dot", "<b>dot 1</b>"),
        ("let dots = [Dot(2)];\ndots[0]", "<b>dot 2</b>"),
    ]:
        reply, outputs = run(kc, code)
        assert reply["status"] == "ok", (code, reply)
        assert shown(outputs, "text/html") == [html], code


def test_a_final_variables_compile_error_is_told_once_in_the_cells_columns(kernel):
    _, kc = kernel
    reply, _ = run(kc, "let near = 1; nearby")
    assert reply["status"] == "error"
    assert reply["traceback"][0] == "error[E0425]: cannot find value `nearby` in this scope", reply
    assert " --> cell:1:15" in reply["traceback"], reply
    assert sum("E0425" in line for line in reply["traceback"]) == 1, reply


def test_a_crates_evcxr_display_shows_a_png(kernel):
    _, kc = kernel
    code = """
:dep image = { version = "0.23", default-features = false, features = ["png"] }
:dep evcxr_image = "1.1"
use evcxr_image::ImageDisplay;
image::ImageBuffer::from_fn(8, 8, |x, y| image::Rgb([(x * 32) as u8, (y * 32) as u8, 128u8]))
"""
    reply, outputs = run(kc, code, timeout=BUILD_TIMEOUT)
    assert reply["status"] == "ok", reply
    pngs = shown(outputs, "image/png")
    assert len(pngs) == 1, outputs
    assert pngs[0].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    # With the crate's trait in scope, other values still show as Debug.
    reply, outputs = run(kc, "(1, 'x')")
    assert shown(outputs, "text/plain") == ["(1, 'x')"]


# --- panics in spawned threads point into the cell -----------------------


def test_a_spawned_threads_panic_names_the_line_in_the_cell(kernel):
    # `cell:LINE:COLUMN`, as compile errors name places in the cell.
    _, kc = kernel
    code = """let worker = std::thread::spawn(|| {
    let n = 41;
    panic!("boom {}", n + 1);
});
worker.join().is_err()"""
    reply, outputs = run(kc, code)
    assert reply["status"] == "ok"
    stderr = stream(outputs, "stderr")
    assert "thread '<unnamed>' panicked at cell:3:5:\nboom 42" in stderr, stderr
    assert "src/lib.rs" not in stderr


def test_a_named_threads_panic_in_a_later_line_and_the_cells_own_panic(kernel):
    _, kc = kernel
    code = """let data = vec![1, 2, 3];
let handle = std::thread::Builder::new()
    .name("reader".into())
    .spawn(move || data[7])
    .unwrap();
let _ = handle.join();
let empty: Vec<u8> = Vec::new();
empty[1]"""
    reply, outputs = run(kc, code)
    stderr = stream(outputs, "stderr")
    # rustc places an index's panic at the index, in the cell's line 4.
    assert re.search(r"thread 'reader' panicked at cell:4:\d+:\nindex out of bounds", stderr), stderr
    # The cell's own thread: its error names the line too.
    assert reply["status"] == "error"
    assert reply["ename"] == "Panic"
    assert re.fullmatch(r"thread 'main' panicked at cell:8:\d+:", reply["traceback"][0]), reply


def test_a_panic_in_a_function_of_an_earlier_cell_names_that_cell(kernel):
    _, kc = kernel
    reply, _ = run(kc, 'fn crunch(n: u32) -> u32 {\n    assert!(n < 10, "too big: {n}");\n    n\n}')
    assert reply["status"] == "ok"
    defined_in = reply["execution_count"]
    reply, outputs = run(kc, "std::thread::spawn(|| crunch(12)).join().is_err()")
    assert reply["status"] == "ok"
    stderr = stream(outputs, "stderr")
    assert f"thread '<unnamed>' panicked at cell [{defined_in}]:2:5:\ntoo big: 12" in stderr, stderr
