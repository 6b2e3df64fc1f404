//! Turns what the code runner sends into IOPub messages, live, while a cell runs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, select};
use jupyter_protocol::{
    ClearOutput, DisplayData, JupyterMessage, JupyterMessageContent, Media, StreamContent,
    Transient, UpdateDisplayData,
};
use serde::Deserialize;

use crate::cell_lines;
use crate::frame::Frame;
use crate::iopub::Iopub;

/// Stream text is sent in messages of at most about this many bytes; a cell
/// that prints a lot still makes few messages.
const BATCH_BYTES: usize = 64 * 1024;

/// A panic reported by the hook the prelude installs in the code runner.
#[derive(Debug, Clone, Deserialize)]
pub struct Panic {
    /// The thread's name; "main" for the thread that runs the cell.
    pub thread: String,
    /// Whether it is the thread that runs the cell.
    #[serde(default)]
    pub main: bool,
    /// The panic's message.
    pub message: String,
    /// `file:line:column`, empty when unknown.
    #[serde(default)]
    pub location: String,
}

impl Panic {
    /// Says where the panic happened in the learner's terms: a place in
    /// evcxr's generated code (`generated`) becomes a line of the running
    /// cell (`cell:3:9`, as compile errors name it) or of an earlier one
    /// (`cell [2]:3:9`: evcxr copies earlier cells' functions into each
    /// cell's code), or is left out when it is none of theirs; places in
    /// crates stay. The `:line:column` ending keeps the patterns notebooks
    /// use to hide panic locations (`panicked at [^\n]*:\d+:\d+:`) working.
    /// `cells` holds (execution count, code), oldest first; the last is the
    /// running cell when `running`.
    fn locate(&mut self, generated: &str, cells: &[(usize, String)], running: bool) {
        let newest = cells.len().saturating_sub(1);
        for (index, (count, code)) in cells.iter().enumerate().rev() {
            if let Some((line, column)) = cell_lines::cell_position(&self.location, generated, code)
            {
                self.location = if running && index == newest {
                    format!("cell:{line}:{column}")
                } else {
                    format!("cell [{count}]:{line}:{column}")
                };
                return;
            }
        }
        if self.location.starts_with(cell_lines::GENERATED_FILE) {
            self.location.clear();
        }
    }

    /// std's own wording, for panics shown as stderr text.
    fn as_stderr_text(&self) -> String {
        if self.location.is_empty() {
            format!("thread '{}' panicked:\n{}\n", self.thread, self.message)
        } else {
            format!(
                "thread '{}' panicked at {}:\n{}\n",
                self.thread, self.location, self.message
            )
        }
    }
}

/// How a cell ended, as far as its output tells.
#[derive(Debug, Default)]
pub struct CellEnd {
    /// The cell's own thread panicked and evcxr caught it.
    pub panicked: bool,
    /// That panic, when the hook reported it.
    pub panic: Option<Panic>,
}

/// The forwarding thread's handle.
pub struct Forwarder {
    parent: Arc<Mutex<Option<JupyterMessage>>>,
    cells: Arc<Mutex<Vec<(usize, String)>>>,
    finish: Sender<Sender<CellEnd>>,
}

impl Forwarder {
    /// Starts forwarding evcxr's output channels to IOPub, with `builds`
    /// (see [`crate::build_progress`]) shown while a cell waits for them.
    /// `build_dir` is evcxr's `EVCXR_TMPDIR`, where it writes each cell's code.
    pub fn spawn(
        stdout: Receiver<String>,
        stderr: Receiver<String>,
        builds: Receiver<String>,
        iopub: Iopub,
        build_dir: PathBuf,
    ) -> Forwarder {
        let parent = Arc::new(Mutex::new(None));
        let cells = Arc::new(Mutex::new(Vec::new()));
        let (finish, finish_requests) = crossbeam_channel::unbounded();
        let mut pump = Pump {
            parent: Arc::clone(&parent),
            cells: Arc::clone(&cells),
            iopub,
            batch: None,
            end: CellEnd::default(),
            build_notice: None,
            notices: 0,
            generated: build_dir.join(cell_lines::GENERATED_FILE),
        };
        std::thread::Builder::new()
            .name("conclab-output".into())
            .spawn(move || pump.run(stdout, stderr, builds, finish_requests))
            .expect("cannot start the output thread");
        Forwarder {
            parent,
            cells,
            finish,
        }
    }

    /// Output from now on belongs to `request`, the cell numbered `count`.
    pub fn begin(&self, request: &JupyterMessage, count: usize) {
        if let JupyterMessageContent::ExecuteRequest(execute) = &request.content {
            self.cells
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((count, execute.code.clone()));
        }
        *self.parent.lock().unwrap_or_else(|p| p.into_inner()) = Some(request.clone());
    }

    /// Output from now on belongs to no cell (the kernel's own set-up); it is
    /// logged, not shown.
    pub fn detach(&self) {
        *self.parent.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Waits until every line evcxr has passed on has been sent, and says how
    /// the cell ended. evcxr passes on every line before a cell returns, and
    /// the code runner sends them all before it says the cell is done.
    pub fn finish(&self) -> CellEnd {
        let (reply, end) = crossbeam_channel::bounded(1);
        if self.finish.send(reply).is_err() {
            return CellEnd::default();
        }
        end.recv().unwrap_or_default()
    }
}

struct Pump {
    parent: Arc<Mutex<Option<JupyterMessage>>>,
    /// Every cell run so far: (execution count, code), oldest first.
    cells: Arc<Mutex<Vec<(usize, String)>>>,
    iopub: Iopub,
    /// Stream text not sent yet: (is_stderr, text).
    batch: Option<(bool, String)>,
    end: CellEnd,
    /// The display id of the "building crates" note shown in this cell.
    build_notice: Option<String>,
    notices: u64,
    /// The running cell's code as evcxr generated it.
    generated: PathBuf,
}

impl Pump {
    fn run(
        &mut self,
        stdout: Receiver<String>,
        stderr: Receiver<String>,
        builds: Receiver<String>,
        finish: Receiver<Sender<CellEnd>>,
    ) {
        loop {
            select! {
                recv(builds) -> line => if let Ok(line) = line {
                    self.show_build(&line);
                },
                recv(stdout) -> line => match line {
                    Ok(line) => {
                        self.line(&line);
                        while let Ok(line) = stdout.try_recv() {
                            self.line(&line);
                        }
                        self.send_batch();
                    }
                    Err(_) => return,
                },
                recv(stderr) -> line => if let Ok(line) = line {
                    self.stream(true, &line, true);
                    self.send_batch();
                },
                recv(finish) -> reply => {
                    let Ok(reply) = reply else { return };
                    while let Ok(line) = stdout.try_recv() {
                        self.line(&line);
                    }
                    while let Ok(line) = stderr.try_recv() {
                        self.stream(true, &line, true);
                    }
                    self.clear_build_notice();
                    let end = std::mem::take(&mut self.end);
                    if let Some(panic) = end.panic.as_ref().filter(|_| !end.panicked) {
                        // The cell caught its own panic: show it as std would.
                        self.stream(true, &panic.as_stderr_text(), false);
                    }
                    self.send_batch();
                    let _ = reply.send(end);
                }
            }
        }
    }

    /// Shows (or updates) a note saying which crate is being compiled.
    fn show_build(&mut self, line: &str) {
        if self
            .parent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
        {
            return;
        }
        let text = format!("Building the crates this cell needs (once per kernel): {line}");
        let data: Media =
            serde_json::from_value(serde_json::json!({ "text/plain": text })).unwrap_or_default();
        let content = match &self.build_notice {
            Some(id) => JupyterMessageContent::UpdateDisplayData(UpdateDisplayData {
                data,
                metadata: Default::default(),
                transient: Transient {
                    display_id: Some(id.clone()),
                },
            }),
            None => {
                self.notices += 1;
                let id = format!("conclab-build-{}", self.notices);
                self.build_notice = Some(id.clone());
                JupyterMessageContent::DisplayData(DisplayData {
                    data,
                    metadata: Default::default(),
                    transient: Some(Transient {
                        display_id: Some(id),
                    }),
                })
            }
        };
        self.send(content);
    }

    /// Builds happen before the cell runs, so clearing the note when the
    /// cell's first output arrives (or it ends) removes nothing of the cell's.
    fn clear_build_notice(&mut self) {
        if self.build_notice.take().is_some() {
            self.send(JupyterMessageContent::ClearOutput(ClearOutput {
                wait: false,
            }));
        }
    }

    fn line(&mut self, line: &str) {
        self.clear_build_notice();
        match Frame::parse(line) {
            Frame::Stdout(text) => self.stream(false, text, true),
            Frame::StdoutPart(text) => self.stream(false, text, false),
            Frame::Stderr(text) => self.stream(true, text, true),
            Frame::StderrPart(text) => self.stream(true, text, false),
            Frame::Panic(json) => match serde_json::from_str::<Panic>(json) {
                Ok(mut panic) => {
                    self.locate(&mut panic);
                    if panic.main {
                        self.end.panic = Some(panic);
                    } else {
                        self.stream(true, &panic.as_stderr_text(), false);
                    }
                }
                Err(_) => self.stream(true, line, true),
            },
            Frame::CellPanicked => self.end.panicked = true,
            Frame::Display(json) => match display_from_json(json) {
                Some(display) => self.send(JupyterMessageContent::DisplayData(display)),
                None => self.stream(false, line, true),
            },
            Frame::Clear(wait) => {
                self.send(JupyterMessageContent::ClearOutput(ClearOutput { wait }))
            }
        }
    }

    /// Points `panic` into the learner's cells. The generated file on disk
    /// is the running cell's: evcxr writes it just before running it.
    fn locate(&self, panic: &mut Panic) {
        let running = self
            .parent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        let generated = std::fs::read_to_string(&self.generated).unwrap_or_default();
        let cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        panic.locate(&generated, &cells, running);
    }

    fn stream(&mut self, is_stderr: bool, text: &str, newline: bool) {
        match &mut self.batch {
            Some((batch_is_stderr, batch))
                if *batch_is_stderr == is_stderr && batch.len() < BATCH_BYTES =>
            {
                batch.push_str(text);
            }
            _ => {
                self.send_batch();
                self.batch = Some((is_stderr, text.to_owned()));
            }
        }
        if let (true, Some((_, batch))) = (newline, &mut self.batch) {
            batch.push('\n');
        }
    }

    fn send_batch(&mut self) {
        if let Some((is_stderr, text)) = self.batch.take() {
            let stream = if is_stderr {
                StreamContent::stderr(&text)
            } else {
                StreamContent::stdout(&text)
            };
            self.send(JupyterMessageContent::StreamContent(stream));
        }
    }

    fn send(&mut self, content: JupyterMessageContent) {
        if !matches!(content, JupyterMessageContent::StreamContent(_)) {
            self.send_batch();
        }
        let parent = self
            .parent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(parent) = parent {
            self.iopub.send(content, &parent);
        }
    }
}

/// Reads labkit's display frame: `{"data": {mime: value}, "metadata": {}, "display_id": "..."}`.
fn display_from_json(json: &str) -> Option<DisplayData> {
    #[derive(Deserialize)]
    struct Frame {
        data: Media,
        #[serde(default)]
        metadata: serde_json::Map<String, serde_json::Value>,
        #[serde(default)]
        display_id: Option<String>,
    }
    let frame: Frame = serde_json::from_str(json).ok()?;
    Some(DisplayData {
        data: frame.data,
        metadata: frame.metadata,
        transient: frame.display_id.map(|id| Transient {
            display_id: Some(id),
        }),
    })
}
