//! The kernel's five ZeroMQ channels and the tasks that serve them. Which
//! request is answered on which channel, and by whom, is
//! [`crate::handlers`]'s table; the server answers its own part of it here.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jupyter_protocol::{
    CodeMirrorMode, CommClose, CommInfoReply, ConnectionInfo, ExecutionState, HelpLink,
    InterruptReply, IsCompleteReply, IsCompleteReplyStatus, JupyterMessage, JupyterMessageContent,
    KernelInfoReply, LanguageInfo, ReplyStatus, ShutdownReply,
};
use tokio::sync::oneshot;
use zeromq::{RepSocket, RouterSocket, SocketRecv, SocketSend, XPubSocket};

use crate::completeness::{self, Completeness};
use crate::handlers::{self, Request, ServerRequest, SessionRequest};
use crate::iopub::{self, Iopub};
use crate::prepared::PreparedCrates;
use crate::runner_control::RunnerControl;
use crate::session::{self, Job, SessionConfig, SessionHandle, Stage};
use crate::stdin::{self, StdinBridge};
use conclab_wire::{Channel, Signer};

type KernelShellConnection = Channel<RouterSocket>;
type KernelControlConnection = Channel<RouterSocket>;

/// Binds every channel, starts the session in the background, and serves
/// until a shutdown request.
pub async fn serve(
    connection: ConnectionInfo,
    prepared: PreparedCrates,
    session_dir: PathBuf,
    builds: crossbeam_channel::Receiver<String>,
) -> anyhow::Result<()> {
    let signer = Signer::new(
        &connection.key,
        &connection.signature_scheme,
        uuid::Uuid::new_v4().to_string(),
    )?;
    let (iopub, iopub_queue) = Iopub::channel();
    let iopub_socket = Channel::<XPubSocket>::bind(&connection.iopub_url(), signer.clone())
        .await
        .with_context(|| format!("binding the IOPub socket to {}", connection.iopub_url()))?;
    let shell = Channel::<RouterSocket>::bind(&connection.shell_url(), signer.clone())
        .await
        .with_context(|| format!("binding the shell socket to {}", connection.shell_url()))?;
    let control = Channel::<RouterSocket>::bind(&connection.control_url(), signer.clone())
        .await
        .with_context(|| format!("binding the control socket to {}", connection.control_url()))?;
    let stdin_socket = Channel::<RouterSocket>::bind(&connection.stdin_url(), signer.clone())
        .await
        .with_context(|| format!("binding the stdin socket to {}", connection.stdin_url()))?;
    let heartbeat = Channel::<RepSocket>::bind(&connection.hb_url(), signer)
        .await
        .with_context(|| format!("binding the heartbeat socket to {}", connection.hb_url()))?;

    let (stdin, questions) = StdinBridge::channel();
    let runner = Arc::new(RunnerControl::default());
    let session = session::spawn(SessionConfig {
        iopub: iopub.clone(),
        stdin,
        runner: Arc::clone(&runner),
        prepared,
        session_dir: session_dir.clone(),
        builds,
    });
    let server = Server {
        iopub,
        info: Arc::new(kernel_info()),
        runner,
    };

    tokio::spawn(iopub::serve(iopub_socket, iopub_queue));
    tokio::spawn(stdin::serve(stdin_socket, questions));
    tokio::spawn(beat(heartbeat));
    tokio::spawn(serve_shell(shell, server.clone(), session));
    serve_control(control, server).await;
    let _ = std::fs::remove_dir_all(&session_dir);
    Ok(())
}

/// Echoes every heartbeat; a failed beat is logged, never fatal.
async fn beat(mut heartbeat: Channel<RepSocket>) {
    loop {
        let result = match heartbeat.socket.recv().await {
            Ok(message) => heartbeat.socket.send(message).await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::debug!("heartbeat: {error}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What the server task answers itself (see [`ServerRequest`]), on either
/// channel.
#[derive(Clone)]
struct Server {
    /// Where `comm_close` and the busy/idle statuses go.
    iopub: Iopub,
    /// The `kernel_info_reply`, computed once.
    info: Arc<KernelInfoReply>,
    /// Interrupted, and stopped on shutdown.
    runner: Arc<RunnerControl>,
}

impl Server {
    /// Carries out `request` (sent as `message`) and returns its reply, or
    /// `None` if it gets none.
    fn answer(
        &self,
        request: ServerRequest,
        message: &JupyterMessage,
    ) -> Option<JupyterMessageContent> {
        match request {
            ServerRequest::KernelInfo => Some(JupyterMessageContent::KernelInfoReply(Box::new(
                (*self.info).clone(),
            ))),
            ServerRequest::IsComplete(request) => Some(JupyterMessageContent::IsCompleteReply(
                is_complete(&request.code),
            )),
            ServerRequest::CommInfo => Some(JupyterMessageContent::CommInfoReply(CommInfoReply {
                status: ReplyStatus::Ok,
                comms: Default::default(),
                error: None,
            })),
            ServerRequest::CommOpen(open) => {
                self.iopub.send(
                    JupyterMessageContent::CommClose(CommClose {
                        comm_id: open.comm_id,
                        data: Default::default(),
                    }),
                    message,
                );
                None
            }
            ServerRequest::Interrupt => {
                let stopped = self.runner.interrupt();
                tracing::info!("interrupt requested; a running cell was stopped: {stopped}");
                Some(JupyterMessageContent::InterruptReply(InterruptReply {
                    status: ReplyStatus::Ok,
                    error: None,
                }))
            }
            // Stopping waits until the reply is out (see `serve_control`).
            ServerRequest::Shutdown { request, .. } => {
                Some(JupyterMessageContent::ShutdownReply(ShutdownReply {
                    restart: request.restart,
                    status: ReplyStatus::Ok,
                    error: None,
                }))
            }
        }
    }
}

/// Answers shell requests one at a time, in the order they arrive; after a
/// failed cell sent with `stop_on_error`, aborts what the table says it aborts.
async fn serve_shell(mut shell: KernelShellConnection, server: Server, session: SessionHandle) {
    let iopub = server.iopub.clone();
    // Requests read early (while aborting after a failed cell) wait here.
    let mut pending: VecDeque<JupyterMessage> = VecDeque::new();
    loop {
        let message = match pending.pop_front() {
            Some(message) => message,
            None => match shell.read().await {
                Ok(message) => message,
                Err(error) => {
                    // A bad signature lands here: the message is dropped unread.
                    tracing::warn!("dropped a shell message: {error}");
                    continue;
                }
            },
        };
        iopub.status(ExecutionState::Busy, &message);
        let request = Request::read(&message.content, handlers::Channel::Shell);
        // Asked now: the session takes the request.
        let stops_on_error = request.as_ref().is_some_and(Request::stops_on_error);
        let reply = match request {
            Some(request) => shell_reply(request, &message, &server, &session).await,
            None => {
                tracing::debug!("no reply to {} on shell", message.message_type());
                None
            }
        };
        // Cells that arrived while this one ran were sent before its reply: a
        // "Run all" queued them behind it, so they are not run after an error.
        let aborted = if stops_on_error && reply.as_ref().is_some_and(handlers::is_failed_cell) {
            take_aborted(&mut shell, &mut pending).await
        } else {
            Vec::new()
        };
        if let Some(reply) = reply
            && let Err(error) = shell.send(JupyterMessage::new(reply, Some(&message))).await
        {
            tracing::warn!("cannot send a shell reply: {error}");
        }
        iopub.status(ExecutionState::Idle, &message);
        for (cell, reply) in aborted {
            iopub.status(ExecutionState::Busy, &cell);
            if let Err(error) = shell.send(JupyterMessage::new(reply, Some(&cell))).await {
                tracing::warn!("cannot send an abort reply: {error}");
            }
            iopub.status(ExecutionState::Idle, &cell);
        }
    }
}

/// Takes every request that has already arrived: those a failed cell
/// aborts are returned with their abort reply (see
/// [`Request::aborted_reply`]), the others are kept in `pending` to answer.
async fn take_aborted(
    shell: &mut KernelShellConnection,
    pending: &mut VecDeque<JupyterMessage>,
) -> Vec<(JupyterMessage, JupyterMessageContent)> {
    let mut arrived: Vec<JupyterMessage> = pending.drain(..).collect();
    // A zero timeout still polls once: it yields what is already here.
    while let Ok(read) = tokio::time::timeout(Duration::ZERO, shell.read()).await {
        match read {
            Ok(message) => arrived.push(message),
            Err(error) => tracing::warn!("dropped a shell message: {error}"),
        }
    }
    let mut aborted = Vec::new();
    for message in arrived {
        match Request::read(&message.content, handlers::Channel::Shell)
            .and_then(|request| request.aborted_reply())
        {
            Some(reply) => aborted.push((message, reply)),
            None => pending.push_back(message),
        }
    }
    aborted
}

/// The reply to `request`, read from `message` on shell: from the server at
/// once, or from the session thread once it has run what came before.
async fn shell_reply(
    request: Request,
    message: &JupyterMessage,
    server: &Server,
    session: &SessionHandle,
) -> Option<JupyterMessageContent> {
    match request {
        Request::Server(request) => server.answer(request, message),
        Request::Session(request) => {
            // A cell sent while the prelude crates build says why it waits.
            let notice_shown = matches!(request, SessionRequest::Execute(_))
                && session.stage() == Stage::BuildingPrelude;
            if notice_shown {
                server.iopub.send(waiting_notice(), message);
            }
            let (reply, answer) = oneshot::channel();
            session.submit(Job {
                message: message.clone(),
                request,
                notice_shown,
                reply,
            });
            answer.await.ok()
        }
    }
}

/// Answers control requests at once, even while a cell runs; returns once a
/// request that stops the kernel is answered.
async fn serve_control(mut control: KernelControlConnection, server: Server) {
    loop {
        let message = match control.read().await {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!("dropped a control message: {error}");
                continue;
            }
        };
        server.iopub.status(ExecutionState::Busy, &message);
        let request = Request::read(&message.content, handlers::Channel::Control);
        let stops_kernel = request.as_ref().is_some_and(Request::stops_kernel);
        let reply = match request {
            Some(Request::Server(request)) => server.answer(request, &message),
            // Control has no session requests: they wait for evcxr, control must not.
            Some(Request::Session(_)) | None => {
                tracing::debug!("no reply to {} on control", message.message_type());
                None
            }
        };
        if let Some(reply) = reply
            && let Err(error) = control
                .send(JupyterMessage::new(reply, Some(&message)))
                .await
        {
            tracing::warn!("cannot send a control reply: {error}");
        }
        server.iopub.status(ExecutionState::Idle, &message);
        if stops_kernel {
            server.runner.shut_down();
            // Let IOPub send the final idle before the process ends.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
    }
}

fn is_complete(code: &str) -> IsCompleteReply {
    match completeness::check(code) {
        Completeness::Complete => {
            IsCompleteReply::new(IsCompleteReplyStatus::Complete, String::new())
        }
        Completeness::Incomplete { indent } => {
            IsCompleteReply::new(IsCompleteReplyStatus::Incomplete, indent)
        }
        Completeness::Invalid => {
            IsCompleteReply::new(IsCompleteReplyStatus::Invalid, String::new())
        }
    }
}

fn waiting_notice() -> JupyterMessageContent {
    let text = "Waiting for the one-time build of rayon, crossbeam, serde, serde_json and labkit \
                on this machine (about a minute; `conclab-kernel install` does it ahead of time). \
                Your cell runs as soon as it is done.";
    JupyterMessageContent::DisplayData(jupyter_protocol::DisplayData {
        data: jupyter_protocol::Media {
            content: vec![jupyter_protocol::MediaType::Plain(text.to_owned())],
        },
        metadata: Default::default(),
        transient: None,
    })
}

/// What `kernel_info_request` is answered with, computed once.
fn kernel_info() -> KernelInfoReply {
    let rustc = rustc_version().unwrap_or_else(|| "unknown".to_owned());
    KernelInfoReply {
        status: ReplyStatus::Ok,
        protocol_version: "5.3".to_owned(),
        implementation: "conclab-kernel".to_owned(),
        implementation_version: env!("CARGO_PKG_VERSION").to_owned(),
        language_info: LanguageInfo {
            name: "rust".to_owned(),
            version: rustc.clone(),
            mimetype: Some("text/rust".to_owned()),
            file_extension: Some(".rs".to_owned()),
            pygments_lexer: Some("rust".to_owned()),
            codemirror_mode: Some(CodeMirrorMode::Simple("rust".to_owned())),
            nbconvert_exporter: Some("script".to_owned()),
        },
        banner: format!(
            "conclab-kernel {} — Rust {rustc} through evcxr. rayon, crossbeam, serde, serde_json and labkit are ready to use.",
            env!("CARGO_PKG_VERSION")
        ),
        help_links: vec![
            HelpLink {
                text: "The Rust standard library".to_owned(),
                url: "https://doc.rust-lang.org/std/".to_owned(),
            },
            HelpLink {
                text: "evcxr commands (:help)".to_owned(),
                url: "https://github.com/evcxr/evcxr/blob/main/COMMON.md".to_owned(),
            },
        ],
        debugger: false,
        error: None,
    }
}

/// `rustc --version` reduced to the version number, e.g. `1.95.0`.
fn rustc_version() -> Option<String> {
    let output = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    text.split_whitespace().nth(1).map(str::to_owned)
}
