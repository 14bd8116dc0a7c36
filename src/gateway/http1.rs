//! HTTP/1.1 framing for the gateway's upstream connections (RFC 9112): the request's head as
//! the proxy writes it, the upstream's answer head as it reads it, and a chunked body's
//! decoding. The connections and the bodies that use them are in [`super::pool`].
//!
//! The upstream is the one the gateway's owner configured; still, nothing it sends is
//! trusted: heads and chunk lines are bounded, lengths checked, and an answer whose framing is
//! unclear is refused rather than guessed (RFC 9112 §6.3).

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use bytes::{Buf, Bytes, BytesMut};
use std::io::Write as _;

/// The most headers an answer may have (hyper's default, which the proxy had).
pub(crate) const MAX_HEADERS: usize = 100;
/// The largest answer head (status line and headers), and the longest chunk-size line or
/// trailer section.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// Why an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("the upstream closed the connection before answering")]
    Closed,
    #[error("the upstream closed the connection in the middle of its answer")]
    Truncated,
    #[error("upstream connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the upstream's answer is not valid HTTP/1.1: {0}")]
    Invalid(&'static str),
    #[error("the request's body failed: {0}")]
    RequestBody(String),
    #[error("the upstream took nothing and sent nothing for as long as it may")]
    TimedOut,
    #[error("the client sent no more of the request's body for as long as it may")]
    ClientStalled,
}

/// How a request's body is framed to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestFraming {
    /// No body and no framing header (a `GET` without one).
    None,
    Length(u64),
    Chunked,
}

impl RequestFraming {
    /// The framing for a body that is empty, or of `exact` length, or neither; `had_length`
    /// when the client sent a `Content-Length` (kept as `0` for an empty body).
    pub(crate) fn choose(
        method: &Method,
        empty: bool,
        exact: Option<u64>,
        had_length: bool,
    ) -> Self {
        if empty {
            // A body-carrying method says it has none, as hyper's client did.
            if had_length || matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
                RequestFraming::Length(0)
            } else {
                RequestFraming::None
            }
        } else {
            match exact {
                Some(n) => RequestFraming::Length(n),
                None => RequestFraming::Chunked,
            }
        }
    }
}

/// Append the request head to `out`: the request line (origin-form `target`), every header
/// but those the framing replaces (`Content-Length`, `Transfer-Encoding`) and `Expect` (the
/// gateway's own server answers a client's `100-continue`; the body is sent at once), the
/// framing, and the empty line.
pub(crate) fn encode_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: RequestFraming,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => {
            // Writing to a `Vec` cannot fail.
            let _ = write!(out, "content-length: {n}\r\n");
        }
        RequestFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body: a `HEAD` request's answer, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// An answer's head.
#[derive(Debug)]
pub(crate) struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: BodyFraming,
    /// Whether the connection can carry another request once the body is read.
    pub keep_alive: bool,
}

/// Parse the answer head at the start of `buf`, consuming it; `None` until `buf` holds all of
/// it. Interim answers (1xx but 101) are consumed and skipped. `to_head` is whether the
/// request was a `HEAD`.
pub(crate) fn parse_head(buf: &mut BytesMut, to_head: bool) -> Result<Option<Head>, WireError> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let len = match parsed.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(WireError::Invalid("the answer's head is too large"));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(WireError::Invalid("the answer has too many headers"));
            }
            Err(_) => return Err(WireError::Invalid("the answer's head does not parse")),
        };
        if len > MAX_HEAD {
            return Err(WireError::Invalid("the answer's head is too large"));
        }
        let code = parsed.code.unwrap_or(0);
        let version = match parsed.version {
            Some(1) => Version::HTTP_11,
            _ => Version::HTTP_10,
        };
        if (100..200).contains(&code) {
            if code == 101 {
                // The request asked for no upgrade (`Upgrade` is never forwarded).
                return Err(WireError::Invalid("an upgrade nobody asked for"));
            }
            buf.advance(len);
            continue;
        }
        let status =
            StatusCode::from_u16(code).map_err(|_| WireError::Invalid("the status code"))?;
        // Where each header's name and value sit in the head, so that the values can share
        // its bytes once it is split off the buffer.
        let base = buf.as_ptr() as usize;
        let mut spans = Vec::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| WireError::Invalid("a header name"))?;
            // httparse's values are slices of `buf`; an empty one needs no bytes.
            let span = if h.value.is_empty() {
                None
            } else {
                let start = (h.value.as_ptr() as usize)
                    .checked_sub(base)
                    .filter(|s| s + h.value.len() <= len)
                    .ok_or(WireError::Invalid("a header value outside the head"))?;
                Some((start, start + h.value.len()))
            };
            spans.push((name, span));
        }
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(spans.len());
        for (name, span) in spans {
            let value = match span {
                Some((start, end)) => HeaderValue::from_maybe_shared(head.slice(start..end))
                    .map_err(|_| WireError::Invalid("a header value"))?,
                None => HeaderValue::from_static(""),
            };
            headers.append(name, value);
        }
        let (framing, close_delimited) = framing(status, to_head, &mut headers)?;
        let keep_alive =
            version == Version::HTTP_11 && !close_delimited && !connection_close(&headers);
        return Ok(Some(Head {
            status,
            version,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// The body's framing (RFC 9112 §6.3), and whether it ends with the connection. A
/// `Content-Length` beside a `Transfer-Encoding` is dropped: it does not say the body's length.
fn framing(
    status: StatusCode,
    to_head: bool,
    headers: &mut HeaderMap,
) -> Result<(BodyFraming, bool), WireError> {
    if to_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((BodyFraming::Empty, false));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
        let last = list(headers, header::TRANSFER_ENCODING).rfind(|c| !c.is_empty());
        return Ok(match last {
            Some(c) if c.eq_ignore_ascii_case(b"chunked") => (BodyFraming::Chunked, false),
            _ => (BodyFraming::Close, true),
        });
    }
    let mut length = None;
    for part in list(headers, header::CONTENT_LENGTH) {
        let n = parse_length(part).ok_or(WireError::Invalid("the answer's Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(WireError::Invalid("the answer's Content-Length"));
        }
        length = Some(n);
    }
    Ok(match length {
        Some(n) => (BodyFraming::Length(n), false),
        None => (BodyFraming::Close, true),
    })
}

/// A decimal length: digits only, no sign, no overflow.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// Whether `Connection` has the `close` option.
fn connection_close(headers: &HeaderMap) -> bool {
    list(headers, header::CONNECTION).any(|o| o.eq_ignore_ascii_case(b"close"))
}

/// The elements of the comma-separated list in every `name` header (RFC 9110 §5.6.1),
/// trimmed; empty ones included, for the caller to refuse or skip.
pub(crate) fn list(
    headers: &HeaderMap,
    name: HeaderName,
) -> impl DoubleEndedIterator<Item = &[u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

/// A chunked body's decoder, fed from a connection's buffer.
#[derive(Debug)]
pub(crate) struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// At a chunk-size line.
    Size,
    /// In a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines (dropped) up to the empty line.
    Trailers,
    Done,
}

/// What [`Chunked::decode`] found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Data(Bytes),
    /// The buffer ends before the next piece: read more.
    NeedMore,
    End,
}

impl Chunked {
    pub(crate) fn new() -> Chunked {
        Chunked {
            state: ChunkState::Size,
        }
    }

    /// The next piece of the body from the start of `buf`, consuming what it decoded.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if !line.is_empty() {
                        return Err(WireError::Invalid("a chunk longer than its size"));
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => return Ok(Decoded::End),
            }
        }
    }

    #[cfg(test)]
    fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// One line from the start of `buf` without its line end (CRLF, or a bare LF as RFC 9112
/// §2.2 allows a recipient to accept); `None` until the line is complete.
fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, WireError> {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_HEAD {
            return Err(WireError::Invalid("a chunk line is too long"));
        }
        return Ok(None);
    };
    if lf > MAX_HEAD {
        return Err(WireError::Invalid("a chunk line is too long"));
    }
    let mut line = buf.split_to(lf + 1).freeze();
    line.truncate(lf);
    if line.last() == Some(&b'\r') {
        line.truncate(lf - 1);
    }
    Ok(Some(line))
}

/// A chunk-size line's size: hex digits, then optional extensions (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let rest = line[digits..].trim_ascii_start();
    if digits == 0 || !(rest.is_empty() || rest.starts_with(b";")) {
        return Err(WireError::Invalid("a chunk size"));
    }
    line[..digits]
        .iter()
        .try_fold(0u64, |n, &d| {
            let v = (d as char).to_digit(16)?;
            n.checked_mul(16)?.checked_add(u64::from(v))
        })
        .ok_or(WireError::Invalid("a chunk size"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn head(raw: &str, to_head: bool) -> Result<Option<Head>, WireError> {
        parse_head(&mut BytesMut::from(raw), to_head)
    }

    #[test]
    fn request_heads_carry_the_framing_the_body_has() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("up:8080"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let cases = [
            (RequestFraming::None, ""),
            (RequestFraming::Length(12), "content-length: 12\r\n"),
            (RequestFraming::Chunked, "transfer-encoding: chunked\r\n"),
        ];
        for (framing, line) in cases {
            let mut out = Vec::new();
            encode_request_head(&mut out, &Method::POST, "/a/b?c=d", &h, framing);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!(
                    "POST /a/b?c=d HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\nx-a: 2\r\n{line}\r\n"
                )
            );
        }
        use RequestFraming as F;
        assert_eq!(F::choose(&Method::GET, true, Some(0), false), F::None);
        assert_eq!(F::choose(&Method::GET, true, Some(0), true), F::Length(0));
        assert_eq!(F::choose(&Method::POST, true, Some(0), false), F::Length(0));
        assert_eq!(F::choose(&Method::POST, false, Some(5), true), F::Length(5));
        assert_eq!(F::choose(&Method::PUT, false, None, false), F::Chunked);
    }

    #[test]
    fn answer_heads_and_their_framing() {
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Y: a b\r\nx-y: c\r\n\r\nhello",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.framing, BodyFraming::Length(5));
        assert!(h.keep_alive);
        let ys: Vec<_> = h.headers.get_all("x-y").iter().collect();
        assert_eq!(ys, ["a b", "c"]);

        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 3\r\n\r\n";
        let h = head(chunked, false).unwrap().unwrap();
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(
            h.headers.get(header::CONTENT_LENGTH).is_none(),
            "a length beside chunked"
        );
        assert!(h.keep_alive);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, BodyFraming::Close);
        assert!(!h.keep_alive);

        // Neither: the body ends with the connection.
        let h = head("HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Close, false));
        // No body, whatever the headers say.
        for (raw, to_head) in [
            ("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true),
            ("HTTP/1.1 204 No Content\r\n\r\n", false),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
                false,
            ),
        ] {
            let h = head(raw, to_head).unwrap().unwrap();
            assert_eq!(
                (h.framing, h.keep_alive),
                (BodyFraming::Empty, true),
                "{raw}"
            );
        }
        // Not reused: told so, or HTTP/1.0.
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(h.version, Version::HTTP_10);
        assert!(!h.keep_alive);
        // Lengths that agree are one length.
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\ncontent-length: 4\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, BodyFraming::Length(4));
    }

    #[test]
    fn interim_answers_are_skipped_and_the_rest_stays_in_the_buffer() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        );
        let h = parse_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        assert!(h.headers.get("link").is_none());
        assert_eq!(&buf[..], b"ok");
    }

    #[test]
    fn a_head_in_pieces_waits_for_the_rest() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let mut buf = BytesMut::new();
        for (i, b) in raw[..raw.len() - 2].iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let got = parse_head(&mut buf, false).unwrap();
            // Complete once the empty line is in.
            assert_eq!(got.is_some(), i == raw.len() - 3, "at byte {i}");
            if got.is_some() {
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn broken_answers_are_refused() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        ] {
            assert!(head(raw, false).is_err(), "{raw:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert!(head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), false).is_err());
        let big = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD));
        assert!(head(&big, false).is_err(), "an endless head");
    }

    fn decode_all(c: &mut Chunked, buf: &mut BytesMut) -> Result<(Vec<u8>, bool), WireError> {
        let mut out = Vec::new();
        loop {
            match c.decode(buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::NeedMore => return Ok((out, false)),
                Decoded::End => return Ok((out, true)),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whole_and_byte_by_byte() {
        let raw = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let mut c = Chunked::new();
        let mut buf = BytesMut::from(&raw[..]);
        let (body, end) = decode_all(&mut c, &mut buf).unwrap();
        assert!(end && c.is_done());
        assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz");
        assert_eq!(&buf[..], b"NEXT", "what follows the body stays");

        let mut c = Chunked::new();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for b in &raw[..raw.len() - 4] {
            buf.extend_from_slice(&[*b]);
            let (part, end) = decode_all(&mut c, &mut buf).unwrap();
            body.extend(part);
            assert_eq!(end, c.is_done());
        }
        assert!(c.is_done());
        assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz");
        // Bare LFs are accepted.
        let mut c = Chunked::new();
        let (body, end) = decode_all(&mut c, &mut BytesMut::from("2\nok\n0\n\n")).unwrap();
        assert!(end);
        assert_eq!(body, b"ok");
    }

    #[test]
    fn broken_chunks_are_refused() {
        for raw in [
            "zz\r\n",
            "\r\n",
            "5 x\r\nhello\r\n",
            "2\r\nokX\r\n",
            "fffffffffffffffff\r\n",
        ] {
            let mut c = Chunked::new();
            assert!(
                decode_all(&mut c, &mut BytesMut::from(raw)).is_err(),
                "{raw:?}"
            );
        }
        let mut c = Chunked::new();
        let long = "a".repeat(MAX_HEAD + 1);
        assert!(decode_all(&mut c, &mut BytesMut::from(long.as_str())).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// `data` chunked in pieces of the given sizes (cycled), with a trailer.
        fn chunked(data: &[u8], sizes: &[usize]) -> Vec<u8> {
            let mut out = Vec::new();
            let (mut at, mut i) = (0, 0);
            while at < data.len() {
                let n = sizes[i % sizes.len()].min(data.len() - at);
                out.extend_from_slice(format!("{n:X}\r\n").as_bytes());
                out.extend_from_slice(&data[at..at + n]);
                out.extend_from_slice(b"\r\n");
                at += n;
                i += 1;
            }
            out.extend_from_slice(b"0\r\nx-t: 1\r\n\r\n");
            out
        }

        proptest! {
            #[test]
            fn answer_heads_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..300),
                prefixed in any::<bool>(),
                to_head in any::<bool>(),
            ) {
                let mut raw = if prefixed { b"HTTP/1.1 200 OK\r\n".to_vec() } else { Vec::new() };
                raw.extend_from_slice(&bytes);
                let _ = parse_head(&mut BytesMut::from(&raw[..]), to_head);
            }

            #[test]
            fn chunk_streams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let mut c = Chunked::new();
                let _ = decode_all(&mut c, &mut BytesMut::from(&bytes[..]));
            }

            #[test]
            fn chunked_bodies_decode_to_what_was_sent_however_they_arrive(
                data in proptest::collection::vec(any::<u8>(), 0..2000),
                sizes in proptest::collection::vec(1usize..700, 1..5),
                cuts in proptest::collection::vec(1usize..400, 1..20),
            ) {
                let mut raw = chunked(&data, &sizes);
                raw.extend_from_slice(b"NEXT");
                let mut c = Chunked::new();
                let mut buf = BytesMut::new();
                let (mut got, mut ended, mut at, mut i) = (Vec::new(), false, 0, 0);
                while at < raw.len() && !ended {
                    let n = cuts[i % cuts.len()].min(raw.len() - at);
                    buf.extend_from_slice(&raw[at..at + n]);
                    at += n;
                    i += 1;
                    let (part, end) = decode_all(&mut c, &mut buf).unwrap();
                    got.extend(part);
                    ended = end;
                }
                prop_assert!(ended);
                prop_assert_eq!(got, data);
                // What follows the body is left for whatever reads next.
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&raw[at..]);
                prop_assert_eq!(rest, b"NEXT".to_vec());
            }
        }
    }
}
