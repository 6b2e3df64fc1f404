//! The stdin channel: asking the user for input on behalf of a running cell.

use std::time::Duration;

use jupyter_protocol::{InputRequest, JupyterMessage, JupyterMessageContent};
use tokio::sync::mpsc;
use zeromq::RouterSocket;

use conclab_wire::{Channel, ReadError};

/// A question for the user, and where to send the answer.
pub struct Question {
    request: JupyterMessage,
    answer: crossbeam_channel::Sender<String>,
}

/// Lets the session thread ask the frontend for a line of input.
#[derive(Clone)]
pub struct StdinBridge {
    questions: mpsc::UnboundedSender<Question>,
}

impl StdinBridge {
    /// Creates the bridge and the receiving end for [`serve`].
    pub fn channel() -> (StdinBridge, mpsc::UnboundedReceiver<Question>) {
        let (questions, receiver) = mpsc::unbounded_channel();
        (StdinBridge { questions }, receiver)
    }

    /// Sends an `input_request` for the cell `parent` and waits for the
    /// answer, giving up (with an empty answer) when `cancelled` says so.
    pub fn ask(
        &self,
        parent: &JupyterMessage,
        prompt: &str,
        password: bool,
        cancelled: &dyn Fn() -> bool,
    ) -> String {
        let (answer, answers) = crossbeam_channel::bounded(1);
        // Same identities as the execute request: routes to that client.
        let request = JupyterMessage::new(
            InputRequest {
                prompt: prompt.to_owned(),
                password,
            },
            Some(parent),
        );
        if self.questions.send(Question { request, answer }).is_err() {
            return String::new();
        }
        loop {
            match answers.recv_timeout(Duration::from_millis(100)) {
                Ok(value) => return value,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) if !cancelled() => continue,
                Err(_) => return String::new(),
            }
        }
    }
}

/// Sends input requests and hands each `input_reply` to the question waiting
/// for it.
pub async fn serve(
    mut socket: Channel<RouterSocket>,
    mut questions: mpsc::UnboundedReceiver<Question>,
) {
    let mut waiting: Option<crossbeam_channel::Sender<String>> = None;
    loop {
        enum Event {
            Ask(Question),
            Reply(Result<JupyterMessage, ReadError>),
            Closed,
        }
        let event = tokio::select! {
            question = questions.recv() => question.map_or(Event::Closed, Event::Ask),
            reply = socket.read() => Event::Reply(reply),
        };
        match event {
            Event::Ask(question) => {
                waiting = Some(question.answer);
                if let Err(error) = socket.send(question.request).await {
                    tracing::warn!("cannot send input_request: {error}");
                    waiting = None;
                }
            }
            Event::Reply(Ok(message)) => match message.content {
                JupyterMessageContent::InputReply(reply) => {
                    if let Some(answer) = waiting.take() {
                        let _ = answer.send(reply.value);
                    }
                }
                other => tracing::debug!("ignoring {} on stdin", other.message_type()),
            },
            Event::Reply(Err(error)) => {
                // Includes messages with a bad signature: dropped, never used.
                tracing::warn!("dropped a stdin message: {error}");
            }
            Event::Closed => return,
        }
    }
}
