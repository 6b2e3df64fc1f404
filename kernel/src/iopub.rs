//! The IOPub channel: one task owns the socket; everyone else sends through
//! an [`Iopub`] handle, so messages leave in the order they were sent.

use jupyter_protocol::{
    ExecutionState, IoPubWelcome, JupyterMessage, JupyterMessageContent, Status,
};
use tokio::sync::mpsc;
use zeromq::{SocketRecv, XPubSocket};

use conclab_wire::Channel;

/// A cheap, cloneable way to publish on IOPub from any thread.
#[derive(Clone)]
pub struct Iopub {
    sender: mpsc::UnboundedSender<JupyterMessage>,
}

impl Iopub {
    /// Creates the handle and the receiving end for [`serve`].
    pub fn channel() -> (Iopub, mpsc::UnboundedReceiver<JupyterMessage>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Iopub { sender }, receiver)
    }

    /// Publishes `content` as a consequence of `parent`.
    pub fn send(&self, content: JupyterMessageContent, parent: &JupyterMessage) {
        let mut message = JupyterMessage::new(content, Some(parent));
        // On IOPub the routing frames are a topic, not the requester's identity.
        message.zmq_identities = vec![message.header.msg_type.clone().into_bytes().into()];
        // Only fails when the kernel is shutting down.
        let _ = self.sender.send(message);
    }

    /// Publishes the kernel's execution state for `parent`.
    pub fn status(&self, state: ExecutionState, parent: &JupyterMessage) {
        self.send(
            JupyterMessageContent::Status(Status {
                execution_state: state,
            }),
            parent,
        );
    }
}

/// Sends queued messages, and greets each new subscriber with `iopub_welcome`
/// (JEP 65) so a client knows when it will see everything that follows.
pub async fn serve(
    mut socket: Channel<XPubSocket>,
    mut queue: mpsc::UnboundedReceiver<JupyterMessage>,
) {
    enum Event {
        Send(Box<JupyterMessage>),
        Subscription(Result<zeromq::ZmqMessage, zeromq::ZmqError>),
        Closed,
    }
    loop {
        // The XPUB socket learns of subscribers only while it is being read,
        // so read and send in turns; both futures are cancel-safe.
        let event = tokio::select! {
            message = queue.recv() => message.map_or(Event::Closed, |m| Event::Send(Box::new(m))),
            subscription = socket.socket.recv() => Event::Subscription(subscription),
        };
        match event {
            Event::Send(message) => {
                if let Err(error) = socket.send(*message).await {
                    tracing::warn!("cannot publish on IOPub: {error}");
                }
            }
            Event::Subscription(Ok(frames)) => {
                // A subscription is one frame: byte 1 then the topic (0 unsubscribes).
                let Some(frame) = frames.get(0) else { continue };
                if let Some((1, topic)) = frame.split_first() {
                    let topic = String::from_utf8_lossy(topic).into_owned();
                    let welcome: JupyterMessage = IoPubWelcome::new(topic).into();
                    if let Err(error) = socket.send(welcome).await {
                        tracing::warn!("cannot send iopub_welcome: {error}");
                    }
                }
            }
            Event::Subscription(Err(error)) => {
                tracing::debug!("IOPub subscription message: {error}");
                // Do not spin if the socket keeps failing.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Event::Closed => return,
        }
    }
}
