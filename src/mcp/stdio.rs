//! The stdio transport: newline-delimited JSON-RPC on stdin/stdout, as rmcp's, except that a
//! line rmcp could not read is answered as JSON-RPC asks (`mcp::jsonrpc`): a Parse error
//! for text that is not JSON, an Invalid Request error carrying the request's id for JSON that
//! is not a valid message. rmcp ignores the first and drops the id from the second.
//!
//! Like rmcp's transport, `receive` is cancel-safe (rmcp polls it in a `select!`): a partly
//! read line stays in `line`, and bytes to write go into `Out::pending` before any await, so
//! an interrupted write is finished by the next one.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::jsonrpc::{self, Checked, Policy};

/// The longest line read (rmcp's limit too): longer ones are dropped, not buffered.
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The server's stdio transport over the process's standard streams (non-blocking pipes when
/// they are pipes, as an MCP client starts a server).
pub fn transport() -> LineTransport<rmcp::transport::StdioReader, rmcp::transport::StdioWriter> {
    let (read, write) = rmcp::transport::stdio_pipes();
    LineTransport::new(read, write)
}

/// Newline-delimited JSON-RPC over a reader and a writer.
pub struct LineTransport<R, W> {
    read: BufReader<R>,
    /// The line being read (kept across cancelled reads).
    line: Vec<u8>,
    /// Dropping the rest of a line that was too long.
    discarding: bool,
    out: Arc<Mutex<Out<W>>>,
    /// An error answer to a line that could not be read, not yet handed to `out`.
    answer: Option<Vec<u8>>,
}

struct Out<W> {
    write: W,
    /// Bytes accepted for writing and not yet written.
    pending: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> Out<W> {
    /// Write everything pending. Cancel-safe: what is written leaves `pending` at once.
    async fn flush(&mut self) -> std::io::Result<()> {
        while !self.pending.is_empty() {
            let n = self.write.write(&self.pending).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.pending.drain(..n);
        }
        self.write.flush().await
    }
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(read: R, write: W) -> Self {
        LineTransport {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            out: Arc::new(Mutex::new(Out {
                write,
                pending: Vec::new(),
            })),
            answer: None,
        }
    }

    /// Read up to the next newline into `self.line`. `Ok(false)` at the end of input.
    async fn read_line(&mut self) -> std::io::Result<bool> {
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                return Ok(false);
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            if self.discarding {
                self.discarding = newline.is_none();
            } else if self.line.len().saturating_add(take) > MAX_LINE_BYTES {
                self.line.clear();
                self.discarding = newline.is_none();
                warn!(
                    max = MAX_LINE_BYTES,
                    "dropped an incoming message longer than the limit"
                );
            } else {
                self.line.extend_from_slice(&available[..take]);
                if newline.is_some() {
                    self.read.consume(take);
                    return Ok(true);
                }
            }
            self.read.consume(take);
        }
    }
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let out = self.out.clone();
        async move {
            let mut line = serde_json::to_vec(&item)?;
            line.push(b'\n');
            let mut out = out.lock().await;
            out.pending.extend_from_slice(&line);
            out.flush().await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            if self.answer.is_some() {
                let mut out = self.out.lock().await;
                if let Some(answer) = self.answer.take() {
                    out.pending.extend_from_slice(&answer);
                }
                if let Err(e) = out.flush().await {
                    warn!(error = %e, "cannot write to stdout");
                    return None;
                }
            }
            match self.read_line().await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    warn!(error = %e, "cannot read stdin");
                    return None;
                }
            }
            let verdict = {
                let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                (!text.iter().all(u8::is_ascii_whitespace))
                    .then(|| jsonrpc::check(text, Policy::Stream))
            };
            self.line.clear();
            let Some(verdict) = verdict else {
                continue;
            };
            match verdict {
                Checked::Message(m) => return Some(*m),
                Checked::Answer(answer) => {
                    debug!(code = %answer["error"]["code"], "answered a message that could not be read");
                    let mut bytes = answer.to_string().into_bytes();
                    bytes.push(b'\n');
                    self.answer = Some(bytes);
                }
                Checked::Ignore => debug!("ignored a notification that could not be read"),
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.out.lock().await.flush().await
    }
}
