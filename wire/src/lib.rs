//! The Jupyter wire format: multipart ZeroMQ messages, signed with HMAC-SHA256.
//!
//! `[identities…, "<IDS|MSG>", signature, header, parent_header, metadata,
//! content, buffers…]`, where the signature is the hex HMAC of the four JSON
//! frames. Every incoming message is checked before anything reads it.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use jupyter_protocol::{Header, JupyterMessage, JupyterMessageContent};
use serde_json::{Value, json};
use sha2::Sha256;
use zeromq::ZmqMessage;

mod check_request;
mod env_vars;
mod reset_request;

pub use check_request::CheckRequest;
pub use env_vars::EnvVars;
pub use reset_request::{RESET_REPLY, RESET_REQUEST, ResetReply, ResetRequest};

const DELIMITER: &[u8] = b"<IDS|MSG>";

/// The name of the code runner's thread that relays the cell's output to
/// the kernel. It idles in `poll` without a timeout while the cell's own
/// threads print nothing, which the checker must not take for the
/// learner's code waiting.
pub const RELAY_THREAD: &str = "conclab-relay";

/// What a kernel does of its own once idle, as the checker tells the kernels
/// it starts in [`EnvVars::CONCLAB_IDLE_WORK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleWork {
    /// Warms up rust-analyzer and keeps a checker ready for `:check`: a
    /// learner's kernel (the variable unset).
    All,
    /// Only warms up rust-analyzer: the kernel of a spare checker, idle
    /// until it is told a notebook, whose first `let` then costs no more
    /// than the learner's did. It must not start checkers of its own.
    WarmUp,
    /// Nothing: the kernels the checker sends cells at once.
    Nothing,
}

impl IdleWork {
    /// The variable's value for this kind of idle work.
    pub fn value(self) -> &'static str {
        match self {
            IdleWork::All => "all",
            IdleWork::WarmUp => "warm-up",
            IdleWork::Nothing => "0",
        }
    }

    /// The idle work the variable's `value` asks for: all when unset, and
    /// nothing for a value this kernel does not know, rather than start
    /// checkers that a checker's kernel must not.
    pub fn from_value(value: Option<&str>) -> IdleWork {
        match value {
            None | Some("all") => IdleWork::All,
            Some("warm-up") => IdleWork::WarmUp,
            Some(_) => IdleWork::Nothing,
        }
    }

    /// The idle work this process's environment asks for.
    pub fn from_env() -> IdleWork {
        IdleWork::from_value(std::env::var(EnvVars::CONCLAB_IDLE_WORK).ok().as_deref())
    }
}

/// Why an incoming message was dropped.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// No `<IDS|MSG>` frame.
    #[error("no <IDS|MSG> delimiter frame")]
    MissingDelimiter,
    /// Fewer than the signature and four JSON frames.
    #[error("expected a signature and 4 JSON frames after the delimiter, found {0} frames")]
    TooFewFrames(usize),
    /// The signature does not match the content and the session key.
    #[error("bad or missing HMAC signature")]
    BadSignature,
    /// A frame is not the JSON it should be.
    #[error("malformed {frame}: {source}")]
    Json {
        /// Which frame.
        frame: &'static str,
        /// What serde_json said.
        source: serde_json::Error,
    },
}

/// A connection file asked for a signature scheme other than HMAC-SHA256.
#[derive(Debug, thiserror::Error)]
#[error("unsupported signature_scheme {0:?}: only hmac-sha256 is")]
pub struct UnsupportedScheme(pub String);

/// Signs outgoing and checks incoming messages with the connection file's key.
#[derive(Clone)]
pub struct Signer {
    /// None when the key is empty: Jupyter's way of turning signing off.
    mac: Option<Hmac<Sha256>>,
    session: String,
}

impl Signer {
    /// A signer for `key` (`signature_scheme` must be `hmac-sha256`).
    pub fn new(
        key: &str,
        signature_scheme: &str,
        session: String,
    ) -> Result<Signer, UnsupportedScheme> {
        if !key.is_empty() && signature_scheme != "hmac-sha256" {
            return Err(UnsupportedScheme(signature_scheme.to_owned()));
        }
        let mac = (!key.is_empty()).then(|| {
            Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length")
        });
        Ok(Signer { mac, session })
    }

    fn signature(&self, frames: &[Bytes]) -> String {
        let Some(mac) = &self.mac else {
            return String::new();
        };
        let mut mac = mac.clone();
        for frame in frames {
            mac.update(frame);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(&self, signature: &[u8], frames: &[Bytes]) -> Result<(), WireError> {
        let Some(mac) = &self.mac else {
            return Ok(());
        };
        let expected = hex::decode(signature).map_err(|_| WireError::BadSignature)?;
        let mut mac = mac.clone();
        for frame in frames {
            mac.update(frame);
        }
        // Constant-time comparison.
        mac.verify_slice(&expected)
            .map_err(|_| WireError::BadSignature)
    }

    /// Checks and decodes a received message.
    pub fn decode(&self, message: ZmqMessage) -> Result<JupyterMessage, WireError> {
        let mut frames = message.into_vec();
        let delimiter = frames
            .iter()
            .position(|frame| frame.as_ref() == DELIMITER)
            .ok_or(WireError::MissingDelimiter)?;
        let after = frames.split_off(delimiter);
        let identities = frames;
        if after.len() < 6 {
            return Err(WireError::TooFewFrames(after.len().saturating_sub(1)));
        }
        let signature = &after[1];
        let parts = &after[2..6];
        self.verify(signature, parts)?;
        let json = |frame: &'static str, bytes: &Bytes| {
            serde_json::from_slice::<Value>(bytes)
                .map_err(|source| WireError::Json { frame, source })
        };
        let header: Header =
            serde_json::from_slice(&parts[0]).map_err(|source| WireError::Json {
                frame: "header",
                source,
            })?;
        let parent_header = serde_json::from_slice::<Header>(&parts[1]).ok();
        let metadata = json("metadata", &parts[2])?;
        let content = with_defaults(&header.msg_type, json("content", &parts[3])?);
        let content = JupyterMessageContent::from_type_and_content(&header.msg_type, content)
            .map_err(|source| WireError::Json {
                frame: "content",
                source,
            })?;
        Ok(JupyterMessage {
            zmq_identities: identities,
            header,
            parent_header,
            metadata,
            content,
            buffers: after[6..].to_vec(),
            channel: None,
        })
    }

    /// Encodes and signs a message to send.
    pub fn encode(&self, message: JupyterMessage) -> ZmqMessage {
        let mut header = message.header;
        header.session.clone_from(&self.session);
        header.username = "kernel".to_owned();
        let parts = [
            to_json(&header),
            match &message.parent_header {
                Some(parent) => to_json(parent),
                None => Bytes::from_static(b"{}"),
            },
            to_json(&message.metadata),
            to_json(&message.content),
        ];
        let mut frames: Vec<Bytes> = message.zmq_identities;
        frames.push(Bytes::from_static(DELIMITER));
        frames.push(Bytes::from(self.signature(&parts)));
        frames.extend(parts);
        frames.extend(message.buffers);
        ZmqMessage::try_from(frames).expect("a message always has frames")
    }
}

/// Clients may leave out fields the spec gives defaults for (jupyter_client's
/// `history()` sends no `n` or `unique` unless asked); fill them in so such a
/// request is answered rather than dropped.
fn with_defaults(msg_type: &str, content: Value) -> Value {
    let defaults = match msg_type {
        "execute_request" => json!({
            "silent": false, "store_history": true, "user_expressions": {},
            "allow_stdin": true, "stop_on_error": true,
        }),
        "history_request" => json!({
            "output": false, "raw": true, "session": 0, "start": 0, "stop": 0,
            "n": 0, "pattern": "*", "unique": false,
        }),
        "shutdown_request" => json!({ "restart": false }),
        "inspect_request" => json!({ "detail_level": 0 }),
        _ => return content,
    };
    let (Value::Object(mut merged), Value::Object(given)) = (defaults, content.clone()) else {
        return content;
    };
    for (key, value) in given {
        if !value.is_null() {
            merged.insert(key, value);
        }
    }
    Value::Object(merged)
}

fn to_json(value: &impl serde::Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("message parts always serialise"))
}

/// Why reading from a channel gave no message.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The socket failed.
    #[error(transparent)]
    Socket(#[from] zeromq::ZmqError),
    /// A message arrived but was dropped.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// A bound ZeroMQ socket speaking the Jupyter wire format.
pub struct Channel<S> {
    /// The socket; public for the heartbeat and XPUB subscriptions.
    pub socket: S,
    signer: Signer,
}

impl<S: zeromq::Socket> Channel<S> {
    /// Creates a socket of type `S` bound to `endpoint`.
    pub async fn bind(endpoint: &str, signer: Signer) -> Result<Channel<S>, zeromq::ZmqError> {
        let mut socket = S::new();
        socket.bind(endpoint).await?;
        Ok(Channel { socket, signer })
    }

    /// Creates a socket of type `S` connected to `endpoint`: a client's side.
    pub async fn connect(endpoint: &str, signer: Signer) -> Result<Channel<S>, zeromq::ZmqError> {
        let mut socket = S::new();
        socket.connect(endpoint).await?;
        Ok(Channel { socket, signer })
    }
}

impl<S: zeromq::SocketRecv> Channel<S> {
    /// Receives the next message; a badly signed one is an error, not a message.
    pub async fn read(&mut self) -> Result<JupyterMessage, ReadError> {
        let raw = self.socket.recv().await?;
        Ok(self.signer.decode(raw)?)
    }
}

impl<S: zeromq::SocketSend> Channel<S> {
    /// Signs and sends a message.
    pub async fn send(&mut self, message: JupyterMessage) -> Result<(), zeromq::ZmqError> {
        self.socket.send(self.signer.encode(message)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jupyter_protocol::KernelInfoRequest;

    fn signer(key: &str) -> Signer {
        Signer::new(key, "hmac-sha256", "session".into()).unwrap()
    }

    #[test]
    fn a_message_signed_with_the_key_decodes() {
        let message = JupyterMessage::new(KernelInfoRequest {}, None);
        let decoded = signer("secret")
            .decode(signer("secret").encode(message))
            .unwrap();
        assert_eq!(decoded.header.msg_type, "kernel_info_request");
    }

    #[test]
    fn a_message_signed_with_another_key_is_rejected() {
        let message = JupyterMessage::new(KernelInfoRequest {}, None);
        let error = signer("secret")
            .decode(signer("guess").encode(message))
            .unwrap_err();
        assert!(matches!(error, WireError::BadSignature));
    }

    #[test]
    fn an_unsigned_message_is_rejected_when_a_key_is_set() {
        let message = JupyterMessage::new(KernelInfoRequest {}, None);
        let error = signer("secret")
            .decode(signer("").encode(message))
            .unwrap_err();
        assert!(matches!(error, WireError::BadSignature));
    }

    #[test]
    fn a_history_search_without_n_gets_defaults() {
        let content = with_defaults(
            "history_request",
            json!({"hist_access_type": "search", "pattern": "a*", "n": null}),
        );
        assert_eq!(content["n"], 0);
        assert_eq!(content["pattern"], "a*");
        assert_eq!(content["unique"], false);
    }

    #[test]
    fn each_kind_of_idle_work_reads_back_from_its_value() {
        for idle in [IdleWork::All, IdleWork::WarmUp, IdleWork::Nothing] {
            assert_eq!(IdleWork::from_value(Some(idle.value())), idle);
        }
        assert_eq!(IdleWork::from_value(None), IdleWork::All);
        assert_eq!(IdleWork::from_value(Some("warm")), IdleWork::Nothing);
    }
}
