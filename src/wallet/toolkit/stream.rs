//! An answer read as consecutive JSON values, as they arrive: LND's routerrpc writes one
//! payment update per line and keeps the answer open while the payment is in flight.

use serde_json::Value;

use super::http::{RestError, decode_error, lost};

/// Largest streamed message kept in memory.
const MAX_MESSAGE: usize = 4 << 20;

/// An open answer (see [`super::Rest::open`]).
pub struct JsonStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
    done: bool,
}

impl JsonStream {
    pub(super) fn new(resp: reqwest::Response) -> JsonStream {
        JsonStream {
            resp,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next value; `None` when the answer ended. A read failure is a
    /// [`RestError::Timeout`]: the backend may have acted on the request.
    pub async fn next(&mut self) -> Result<Option<Value>, RestError> {
        loop {
            let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter();
            match values.next() {
                Some(Ok(v)) => {
                    let used = values.byte_offset();
                    self.buf.drain(..used);
                    return Ok(Some(v));
                }
                Some(Err(e)) if !e.is_eof() => return Err(decode_error(&e, &self.buf)),
                _ => {}
            }
            if self.done {
                return if self.buf.iter().all(u8::is_ascii_whitespace) {
                    Ok(None)
                } else {
                    Err(RestError::Decode("the answer ended mid-message".into()))
                };
            }
            if self.buf.len() > MAX_MESSAGE {
                return Err(RestError::Decode("a streamed message is too large".into()));
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                Ok(None) => self.done = true,
                Err(e) => return Err(lost(&e)),
            }
        }
    }
}
