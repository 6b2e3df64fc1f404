//! How the checker starts a kernel over for the next notebook of the same
//! submission, instead of starting a new kernel: a shell request of a type
//! of conclab's own, `conclab_reset_request`, answered by
//! `conclab_reset_reply` once the kernel is as a fresh one would be.
//!
//! A kernel's first seconds go to rust-analyzer loading the standard library
//! and the prelude crates, and to its first type inference; a reset keeps
//! those and replaces everything a notebook could have changed: the code
//! runner (a new process, which records its trace to `trace` with `nonce`),
//! evcxr's state (back to just after the prelude), the execution count and
//! the history.

use std::path::PathBuf;

use jupyter_protocol::{JupyterMessageContent, UnknownMessage};
use serde::{Deserialize, Serialize};

/// The request's message type.
pub const RESET_REQUEST: &str = "conclab_reset_request";
/// The reply's message type.
pub const RESET_REPLY: &str = "conclab_reset_reply";

/// Start over, as a fresh kernel whose code runner traces to `trace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRequest {
    /// The file the new code runner's labkit appends its trace to.
    pub trace: PathBuf,
    /// The nonce of the new code runner's trace events.
    pub nonce: String,
}

/// The kernel's answer to a [`ResetRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetReply {
    /// Why the kernel could not start over; `None` when it did. A kernel
    /// that could not must not be used again.
    pub error: Option<String>,
}

impl ResetRequest {
    /// The request as a message's content.
    pub fn to_content(&self) -> JupyterMessageContent {
        to_content(RESET_REQUEST, self)
    }

    /// The request in `content`: `None` if `content` is another message,
    /// an error if it is one whose fields are wrong.
    pub fn from_content(
        content: &JupyterMessageContent,
    ) -> Option<serde_json::Result<ResetRequest>> {
        from_content(RESET_REQUEST, content)
    }
}

impl ResetReply {
    /// The reply as a message's content.
    pub fn to_content(&self) -> JupyterMessageContent {
        to_content(RESET_REPLY, self)
    }

    /// The reply in `content`, as [`ResetRequest::from_content`] reads one.
    pub fn from_content(content: &JupyterMessageContent) -> Option<serde_json::Result<ResetReply>> {
        from_content(RESET_REPLY, content)
    }
}

fn to_content(msg_type: &str, value: &impl Serialize) -> JupyterMessageContent {
    JupyterMessageContent::UnknownMessage(UnknownMessage {
        msg_type: msg_type.to_owned(),
        content: serde_json::to_value(value).expect("reset messages are always JSON"),
    })
}

fn from_content<T: for<'de> Deserialize<'de>>(
    msg_type: &str,
    content: &JupyterMessageContent,
) -> Option<serde_json::Result<T>> {
    match content {
        JupyterMessageContent::UnknownMessage(message) if message.msg_type == msg_type => {
            Some(serde_json::from_value(message.content.clone()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jupyter_protocol::JupyterMessage;

    #[test]
    fn a_request_reads_back_from_its_message_as_the_wire_carries_it() {
        let request = ResetRequest {
            trace: "/tmp/conclab-check-x/trace-2.jsonl".into(),
            nonce: "0123abcd".into(),
        };
        let message = JupyterMessage::new(request.to_content(), None);
        assert_eq!(message.header.msg_type, RESET_REQUEST);
        let json = serde_json::to_value(&message).unwrap();
        let read: JupyterMessage = serde_json::from_value(json).unwrap();
        assert_eq!(
            ResetRequest::from_content(&read.content).unwrap().unwrap(),
            request
        );
        assert!(ResetReply::from_content(&read.content).is_none());
    }

    #[test]
    fn a_request_without_its_nonce_is_an_error_not_another_message() {
        let content = JupyterMessageContent::UnknownMessage(UnknownMessage {
            msg_type: RESET_REQUEST.into(),
            content: serde_json::json!({"trace": "/tmp/t.jsonl"}),
        });
        let error = ResetRequest::from_content(&content).unwrap().unwrap_err();
        assert!(error.to_string().contains("nonce"), "{error}");
    }
}
