//! The one table of the Jupyter requests the kernel answers, as ipykernel's
//! `kernelbase.py` keeps one list from message type to handler: for every
//! request type, the channel(s) it is accepted on, who answers it (the
//! server task at once, or the session thread in turn), and what it gets
//! instead when it cannot be run (the session could not start, or a failed
//! cell aborted it).
//!
//! [`Request::read`] is the table; `server.rs` and `session.rs` carry out
//! what it says. A message it does not name on a channel gets no reply
//! there; the channel still reports busy and idle around it.

use std::collections::HashMap;
use std::fmt;

use conclab_wire::{ResetReply, ResetRequest};
use jupyter_protocol::{
    CommOpen, CompleteReply, CompleteRequest, ExecuteReply, ExecuteRequest, ExecutionCount,
    HistoryReply, HistoryRequest, InspectReply, InspectRequest, IsCompleteRequest,
    JupyterMessageContent, Media, ReplyError, ReplyStatus, ShutdownRequest,
};

/// The two channels that carry requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Requests answered one after another, in the order they arrive.
    Shell,
    /// Requests answered at once, even while a cell runs.
    Control,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Channel::Shell => "shell",
            Channel::Control => "control",
        })
    }
}

/// A request the kernel answers, by who answers it.
#[derive(Debug)]
pub enum Request {
    /// The server task answers it at once: it needs nothing a cell holds.
    Server(ServerRequest),
    /// It needs evcxr: the session thread answers it, in shell order.
    Session(SessionRequest),
}

/// The requests the server task answers itself.
#[derive(Debug)]
pub enum ServerRequest {
    /// `kernel_info_request`: the reply computed once at the start.
    KernelInfo,
    /// `is_complete_request`: decided from the code's tokens alone.
    IsComplete(IsCompleteRequest),
    /// `comm_info_request`: no comm is ever open.
    CommInfo,
    /// `comm_open`: no comm targets exist, so the comm is closed at once
    /// (on IOPub, as the spec asks), with no reply.
    CommOpen(CommOpen),
    /// `interrupt_request`: stops the running cell's code runner.
    Interrupt,
    /// `shutdown_request`: answered, then the kernel stops if `stops_kernel`.
    Shutdown {
        /// The request as sent.
        request: ShutdownRequest,
        /// Whether the kernel stops once it has replied.
        stops_kernel: bool,
    },
}

/// The requests the session thread answers: they need evcxr.
#[derive(Debug)]
pub enum SessionRequest {
    /// `execute_request`: a cell.
    Execute(ExecuteRequest),
    /// `complete_request`: completions from rust-analyzer.
    Complete(CompleteRequest),
    /// `inspect_request`: documentation from rust-analyzer.
    Inspect(InspectRequest),
    /// `history_request`: the cells run in this session.
    History(HistoryRequest),
    /// `conclab_reset_request` (see [`conclab_wire::RESET_REQUEST`]), or
    /// why its fields are wrong: the reply says so.
    Reset(serde_json::Result<ResetRequest>),
}

impl Request {
    /// The table: what `content` is as a request on `channel`, or `None`
    /// if the kernel does not answer it there.
    pub fn read(content: &JupyterMessageContent, channel: Channel) -> Option<Request> {
        use Channel::{Control, Shell};
        use JupyterMessageContent as Content;
        use Request::{Server, Session};
        let request = match (content, channel) {
            (Content::KernelInfoRequest(_), Shell | Control) => Server(ServerRequest::KernelInfo),
            (Content::IsCompleteRequest(request), Shell) => {
                Server(ServerRequest::IsComplete(request.clone()))
            }
            (Content::CommInfoRequest(_), Shell) => Server(ServerRequest::CommInfo),
            (Content::CommOpen(open), Shell) => Server(ServerRequest::CommOpen(open.clone())),
            (Content::ExecuteRequest(request), Shell) => {
                Session(SessionRequest::Execute(request.clone()))
            }
            (Content::CompleteRequest(request), Shell) => {
                Session(SessionRequest::Complete(request.clone()))
            }
            (Content::InspectRequest(request), Shell) => {
                Session(SessionRequest::Inspect(request.clone()))
            }
            (Content::HistoryRequest(request), Shell) => {
                Session(SessionRequest::History(request.clone()))
            }
            (Content::InterruptRequest(_), Control) => Server(ServerRequest::Interrupt),
            // Deprecated on shell since protocol 5.4 but still sent by old
            // clients: answered there too, and only control's stops the kernel.
            (Content::ShutdownRequest(request), Shell | Control) => {
                Server(ServerRequest::Shutdown {
                    request: request.clone(),
                    stops_kernel: channel == Control,
                })
            }
            // The checker's, between notebooks; a type of conclab's own.
            (other, Shell) => Session(SessionRequest::Reset(ResetRequest::from_content(other)?)),
            _ => return None,
        };
        Some(request)
    }

    /// Whether an error in this request's reply aborts the requests that
    /// arrived while it ran (see [`SessionRequest::aborted_reply`]): it is
    /// a cell sent with `stop_on_error`, as "Run all" sends them.
    pub fn stops_on_error(&self) -> bool {
        matches!(self, Request::Session(SessionRequest::Execute(cell)) if cell.stop_on_error)
    }

    /// Whether the kernel stops once this request is answered.
    pub fn stops_kernel(&self) -> bool {
        matches!(
            self,
            Request::Server(ServerRequest::Shutdown {
                stops_kernel: true,
                ..
            })
        )
    }

    /// What this request gets when a cell before it failed with
    /// `stop_on_error`, or `None` if it is answered as usual.
    pub fn aborted_reply(&self) -> Option<JupyterMessageContent> {
        match self {
            Request::Session(request) => request.aborted_reply(),
            Request::Server(_) => None,
        }
    }
}

impl SessionRequest {
    /// What this request gets when the session could not start, for
    /// `reason`: a cell fails with it, a reset reports it, and the editor's
    /// requests get empty answers, as when nothing is known.
    pub fn failed_reply(&self, reason: &str) -> JupyterMessageContent {
        match self {
            SessionRequest::Execute(_) => JupyterMessageContent::ExecuteReply(ExecuteReply {
                status: ReplyStatus::Error,
                execution_count: ExecutionCount::new(0),
                payload: Vec::new(),
                user_expressions: Some(HashMap::new()),
                error: Some(Box::new(ReplyError {
                    ename: "KernelNotReady".into(),
                    evalue: reason.lines().next().unwrap_or(reason).to_owned(),
                    traceback: reason.lines().map(str::to_owned).collect(),
                })),
            }),
            SessionRequest::Complete(complete) => {
                JupyterMessageContent::CompleteReply(CompleteReply {
                    matches: Vec::new(),
                    cursor_start: complete.cursor_pos,
                    cursor_end: complete.cursor_pos,
                    metadata: serde_json::Map::new(),
                    status: ReplyStatus::Ok,
                    error: None,
                })
            }
            SessionRequest::Inspect(_) => JupyterMessageContent::InspectReply(InspectReply {
                found: false,
                data: Media::default(),
                metadata: serde_json::Map::new(),
                status: ReplyStatus::Ok,
                error: None,
            }),
            SessionRequest::History(_) => {
                JupyterMessageContent::HistoryReply(HistoryReply::new(Vec::new()))
            }
            SessionRequest::Reset(_) => ResetReply {
                error: Some(reason.to_owned()),
            }
            .to_content(),
        }
    }

    /// What this request gets when a cell before it failed with
    /// `stop_on_error`, or `None` if it is answered as usual: only cells are
    /// aborted, what the editor asks meanwhile is still answered.
    pub fn aborted_reply(&self) -> Option<JupyterMessageContent> {
        match self {
            SessionRequest::Execute(_) => Some(JupyterMessageContent::ExecuteReply(ExecuteReply {
                status: ReplyStatus::Aborted,
                execution_count: ExecutionCount::new(0),
                payload: Vec::new(),
                user_expressions: Some(HashMap::new()),
                error: None,
            })),
            SessionRequest::Complete(_)
            | SessionRequest::Inspect(_)
            | SessionRequest::History(_)
            | SessionRequest::Reset(_) => None,
        }
    }
}

/// Whether `reply` is a failed cell's, which aborts the cells queued
/// behind it if it was sent with `stop_on_error` ([`Request::stops_on_error`]).
pub fn is_failed_cell(reply: &JupyterMessageContent) -> bool {
    matches!(reply, JupyterMessageContent::ExecuteReply(reply) if reply.status == ReplyStatus::Error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jupyter_protocol::{InterruptRequest, KernelInfoRequest, UnknownMessage};

    fn cell(stop_on_error: bool) -> JupyterMessageContent {
        let mut request = ExecuteRequest::new("1 + 1".into());
        request.stop_on_error = stop_on_error;
        JupyterMessageContent::ExecuteRequest(request)
    }

    fn reset() -> JupyterMessageContent {
        ResetRequest {
            trace: "/tmp/trace.jsonl".into(),
            nonce: "abcd".into(),
        }
        .to_content()
    }

    #[test]
    fn cells_and_resets_go_to_the_session_on_shell_only() {
        for content in [cell(true), reset()] {
            assert!(matches!(
                Request::read(&content, Channel::Shell),
                Some(Request::Session(_))
            ));
            assert!(Request::read(&content, Channel::Control).is_none());
        }
    }

    #[test]
    fn a_reset_with_wrong_fields_still_goes_to_the_session_to_say_so() {
        let content = JupyterMessageContent::UnknownMessage(UnknownMessage {
            msg_type: conclab_wire::RESET_REQUEST.into(),
            content: serde_json::json!({"trace": "/tmp/t.jsonl"}),
        });
        assert!(matches!(
            Request::read(&content, Channel::Shell),
            Some(Request::Session(SessionRequest::Reset(Err(_))))
        ));
    }

    #[test]
    fn kernel_info_is_answered_by_the_server_on_both_channels() {
        let content = JupyterMessageContent::KernelInfoRequest(KernelInfoRequest {});
        for channel in [Channel::Shell, Channel::Control] {
            assert!(matches!(
                Request::read(&content, channel),
                Some(Request::Server(ServerRequest::KernelInfo))
            ));
        }
    }

    #[test]
    fn interrupts_are_read_on_control_only() {
        let content = JupyterMessageContent::InterruptRequest(InterruptRequest {});
        assert!(Request::read(&content, Channel::Shell).is_none());
        assert!(Request::read(&content, Channel::Control).is_some());
    }

    #[test]
    fn only_a_shutdown_on_control_stops_the_kernel() {
        let content = JupyterMessageContent::ShutdownRequest(ShutdownRequest { restart: false });
        let stops = |channel| Request::read(&content, channel).map(|r| r.stops_kernel());
        assert_eq!(stops(Channel::Shell), Some(false));
        assert_eq!(stops(Channel::Control), Some(true));
    }

    #[test]
    fn unknown_types_are_not_read() {
        let content = JupyterMessageContent::UnknownMessage(UnknownMessage {
            msg_type: "usage_request".into(),
            content: serde_json::json!({}),
        });
        assert!(Request::read(&content, Channel::Shell).is_none());
        assert!(Request::read(&content, Channel::Control).is_none());
    }

    #[test]
    fn only_cells_are_aborted() {
        let read = |content: &JupyterMessageContent| Request::read(content, Channel::Shell);
        let aborted = read(&cell(false)).and_then(|r| r.aborted_reply());
        assert!(matches!(
            aborted,
            Some(JupyterMessageContent::ExecuteReply(ExecuteReply {
                status: ReplyStatus::Aborted,
                ..
            }))
        ));
        let complete = JupyterMessageContent::CompleteRequest(CompleteRequest {
            code: "x".into(),
            cursor_pos: 1,
        });
        for content in [complete, reset()] {
            assert!(read(&content).is_some_and(|r| r.aborted_reply().is_none()));
        }
    }

    #[test]
    fn only_a_cell_with_stop_on_error_stops_on_error() {
        let read = |content| Request::read(&content, Channel::Shell);
        assert!(read(cell(true)).is_some_and(|r| r.stops_on_error()));
        assert!(read(cell(false)).is_some_and(|r| !r.stops_on_error()));
        assert!(read(reset()).is_some_and(|r| !r.stops_on_error()));
    }

    #[test]
    fn a_session_that_did_not_start_fails_cells_and_resets_with_its_reason() {
        let reason = "the prelude did not build\nsee the log";
        let Some(Request::Session(execute)) = Request::read(&cell(true), Channel::Shell) else {
            panic!("a cell is the session's");
        };
        let failed = execute.failed_reply(reason);
        assert!(is_failed_cell(&failed));
        let JupyterMessageContent::ExecuteReply(reply) = failed else {
            panic!("a cell gets an execute reply");
        };
        let error = reply.error.expect("the reason");
        assert_eq!(error.ename, "KernelNotReady");
        assert_eq!(error.evalue, "the prelude did not build");

        let Some(Request::Session(reset)) = Request::read(&reset(), Channel::Shell) else {
            panic!("a reset is the session's");
        };
        let reply = ResetReply::from_content(&reset.failed_reply(reason))
            .expect("a reset reply")
            .expect("its fields");
        assert_eq!(reply.error.as_deref(), Some(reason));
    }
}
