//! The kernel's five ZeroMQ channels and the tasks that serve them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jupyter_protocol::{
    CodeMirrorMode, CommClose, CommInfoReply, ConnectionInfo, ExecuteReply, ExecutionCount,
    ExecutionState, HelpLink, InterruptReply, IsCompleteReply, IsCompleteReplyStatus,
    JupyterMessage, JupyterMessageContent, KernelInfoReply, LanguageInfo, ReplyStatus,
    ShutdownReply,
};
use tokio::sync::oneshot;
use zeromq::{RepSocket, RouterSocket, SocketRecv, SocketSend, XPubSocket};

use crate::completeness::{self, Completeness};
use crate::iopub::{self, Iopub};
use crate::prepared::PreparedCrates;
use crate::runner_control::RunnerControl;
use crate::session::{self, Job, SessionConfig, SessionHandle, Stage};
use crate::stdin::{self, StdinBridge};
use conclab_wire::{Channel, ResetRequest, Signer};

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
    let info = Arc::new(kernel_info());

    tokio::spawn(iopub::serve(iopub_socket, iopub_queue));
    tokio::spawn(stdin::serve(stdin_socket, questions));
    tokio::spawn(beat(heartbeat));
    tokio::spawn(serve_shell(
        shell,
        iopub.clone(),
        session,
        Arc::clone(&info),
    ));
    serve_control(control, iopub, runner, info).await;
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

async fn serve_shell(
    mut shell: KernelShellConnection,
    iopub: Iopub,
    session: SessionHandle,
    info: Arc<KernelInfoReply>,
) {
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
        let reply = shell_reply(&message, &iopub, &session, &info).await;
        let failed = matches!(&reply, Some(JupyterMessageContent::ExecuteReply(r)) if r.status == ReplyStatus::Error);
        let stop_on_error =
            matches!(&message.content, JupyterMessageContent::ExecuteRequest(r) if r.stop_on_error);
        // Cells that arrived while this one ran were sent before its reply: a
        // "Run all" queued them behind it, so they are not run after an error.
        let aborted = if failed && stop_on_error {
            take_arrived_cells(&mut shell, &mut pending).await
        } else {
            Vec::new()
        };
        if let Some(reply) = reply
            && let Err(error) = shell.send(JupyterMessage::new(reply, Some(&message))).await
        {
            tracing::warn!("cannot send a shell reply: {error}");
        }
        iopub.status(ExecutionState::Idle, &message);
        for cell in aborted {
            iopub.status(ExecutionState::Busy, &cell);
            let reply = JupyterMessageContent::ExecuteReply(ExecuteReply {
                status: ReplyStatus::Aborted,
                execution_count: ExecutionCount::new(0),
                payload: Vec::new(),
                user_expressions: Some(Default::default()),
                error: None,
            });
            if let Err(error) = shell.send(JupyterMessage::new(reply, Some(&cell))).await {
                tracing::warn!("cannot send an abort reply: {error}");
            }
            iopub.status(ExecutionState::Idle, &cell);
        }
    }
}

/// Takes every request that has already arrived: execute requests are
/// returned (to abort), anything else is kept in `pending` to answer.
async fn take_arrived_cells(
    shell: &mut KernelShellConnection,
    pending: &mut VecDeque<JupyterMessage>,
) -> Vec<JupyterMessage> {
    let mut cells: Vec<JupyterMessage> = Vec::new();
    let (queued, rest): (Vec<_>, Vec<_>) = pending
        .drain(..)
        .partition(|m| matches!(m.content, JupyterMessageContent::ExecuteRequest(_)));
    cells.extend(queued);
    pending.extend(rest);
    // A zero timeout still polls once: it yields what is already here.
    while let Ok(read) = tokio::time::timeout(Duration::ZERO, shell.read()).await {
        match read {
            Ok(message) if matches!(message.content, JupyterMessageContent::ExecuteRequest(_)) => {
                cells.push(message)
            }
            Ok(message) => pending.push_back(message),
            Err(error) => tracing::warn!("dropped a shell message: {error}"),
        }
    }
    cells
}

async fn shell_reply(
    message: &JupyterMessage,
    iopub: &Iopub,
    session: &SessionHandle,
    info: &KernelInfoReply,
) -> Option<JupyterMessageContent> {
    match &message.content {
        JupyterMessageContent::KernelInfoRequest(_) => Some(
            JupyterMessageContent::KernelInfoReply(Box::new(info.clone())),
        ),
        JupyterMessageContent::IsCompleteRequest(request) => Some(
            JupyterMessageContent::IsCompleteReply(is_complete(&request.code)),
        ),
        JupyterMessageContent::CommInfoRequest(_) => {
            Some(JupyterMessageContent::CommInfoReply(CommInfoReply {
                status: ReplyStatus::Ok,
                comms: Default::default(),
                error: None,
            }))
        }
        JupyterMessageContent::CommOpen(open) => {
            // No comm targets exist: close it, as the spec asks.
            iopub.send(
                JupyterMessageContent::CommClose(CommClose {
                    comm_id: open.comm_id.clone(),
                    data: Default::default(),
                }),
                message,
            );
            None
        }
        request if for_session(request) => {
            let mut notice_shown = false;
            if matches!(message.content, JupyterMessageContent::ExecuteRequest(_))
                && session.stage() == Stage::BuildingPrelude
            {
                iopub.send(waiting_notice(), message);
                notice_shown = true;
            }
            let (reply, answer) = oneshot::channel();
            session.submit(Job {
                request: message.clone(),
                notice_shown,
                reply,
            });
            answer.await.ok()
        }
        JupyterMessageContent::ShutdownRequest(request) => {
            // Deprecated on shell since 5.4, still sent by old clients.
            Some(JupyterMessageContent::ShutdownReply(ShutdownReply {
                restart: request.restart,
                status: ReplyStatus::Ok,
                error: None,
            }))
        }
        other => {
            tracing::debug!("no reply to {} on shell", other.message_type());
            None
        }
    }
}

/// Whether the session thread answers `request`: what needs evcxr.
fn for_session(request: &JupyterMessageContent) -> bool {
    match request {
        JupyterMessageContent::ExecuteRequest(_)
        | JupyterMessageContent::CompleteRequest(_)
        | JupyterMessageContent::InspectRequest(_)
        | JupyterMessageContent::HistoryRequest(_) => true,
        other => ResetRequest::from_content(other).is_some(),
    }
}

async fn serve_control(
    mut control: KernelControlConnection,
    iopub: Iopub,
    runner: Arc<RunnerControl>,
    info: Arc<KernelInfoReply>,
) {
    loop {
        let message = match control.read().await {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!("dropped a control message: {error}");
                continue;
            }
        };
        iopub.status(ExecutionState::Busy, &message);
        let (reply, shutting_down) = match &message.content {
            JupyterMessageContent::KernelInfoRequest(_) => (
                Some(JupyterMessageContent::KernelInfoReply(Box::new(
                    (*info).clone(),
                ))),
                false,
            ),
            JupyterMessageContent::InterruptRequest(_) => {
                let stopped = runner.interrupt();
                tracing::info!("interrupt requested; a running cell was stopped: {stopped}");
                (
                    Some(JupyterMessageContent::InterruptReply(InterruptReply {
                        status: ReplyStatus::Ok,
                        error: None,
                    })),
                    false,
                )
            }
            JupyterMessageContent::ShutdownRequest(request) => (
                Some(JupyterMessageContent::ShutdownReply(ShutdownReply {
                    restart: request.restart,
                    status: ReplyStatus::Ok,
                    error: None,
                })),
                true,
            ),
            other => {
                tracing::debug!("no reply to {} on control", other.message_type());
                (None, false)
            }
        };
        if let Some(reply) = reply
            && let Err(error) = control
                .send(JupyterMessage::new(reply, Some(&message)))
                .await
        {
            tracing::warn!("cannot send a control reply: {error}");
        }
        iopub.status(ExecutionState::Idle, &message);
        if shutting_down {
            runner.shut_down();
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
