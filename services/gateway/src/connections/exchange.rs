//! One HTTP/1.1 exchange on a connection: the request written (its body while the
//! connection is watched for an early answer), the answer's head read, and its body
//! streamed from the connection, which goes back on its list at the body's end.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::answer::{Framing, Parsed, Step, parse_head};
use super::connection::Connection;
use super::failure::{Failed, Failure};
use super::head::Outgoing;
use super::list::{List, give_back};

/// One request on `connection`: written, its answer's head read. The connection goes
/// back on `list` once the answer's body is read to its end.
pub(super) async fn exchange(
    list: &Arc<List>,
    mut connection: Connection,
    head: &[u8],
    body: Option<(Body, Outgoing)>,
    head_only: bool,
) -> Result<Response<Body>, Failed> {
    let mut written_whole = true;
    let mut early = None;
    match body {
        None => {
            if let Err(error) = connection.stream.write_all(head).await {
                return Err(Failed::Unanswered(error.into()));
            }
        }
        Some((body, framing)) => {
            match write_with_body(&mut connection, head, body, framing, head_only).await {
                Ok(None) => {}
                Ok(Some(answer)) => {
                    written_whole = false;
                    early = Some(answer);
                }
                // The service may have answered and closed: its answer is read below.
                Err(Failure::Io(_)) => written_whole = false,
                Err(failure) => return Err(Failed::Other(failure)),
            }
        }
    }

    let (response, framing, keep_alive) = match early {
        Some(answer) => answer,
        None => read_head(&mut connection, head_only).await?,
    };

    let reusable = keep_alive && written_whole;
    let body = if framing.ended() {
        if reusable && connection.buffer.is_empty() {
            give_back(list, connection);
        }
        Body::empty()
    } else {
        Body::new(AnswerBody {
            streaming: Some(Streaming {
                connection,
                framing,
                reusable,
                list: list.clone(),
            }),
        })
    };
    Ok(response.map(|()| body))
}

/// A final answer's head, its body's framing, whether its connection may be reused.
type FinalHead = (Response<()>, Framing, bool);

/// Reads the answer's head, skipping informational ones.
async fn read_head(connection: &mut Connection, head_only: bool) -> Result<FinalHead, Failed> {
    let mut informational = false;
    loop {
        match parse_head(&mut connection.buffer, head_only) {
            Ok(Some(Parsed::Informational)) => informational = true,
            Ok(Some(Parsed::Final(response, framing, keep_alive))) => {
                return Ok((response, framing, keep_alive));
            }
            Ok(None) => match connection.read_more().await {
                Ok(0) if connection.buffer.is_empty() && !informational => {
                    return Err(Failed::Unanswered(Failure::closed(
                        "closed without answering",
                    )));
                }
                Ok(0) => return Err(Failed::Other(Failure::closed("closed mid-answer"))),
                Ok(_) => {}
                Err(error) if connection.buffer.is_empty() && !informational => {
                    return Err(Failed::Unanswered(error.into()));
                }
                Err(error) => return Err(Failed::Other(error.into())),
            },
            Err(malformed) => return Err(Failed::Other(Failure::Malformed(malformed))),
        }
    }
}

/// Writes the request's head and body while watching for the answer: a service may
/// answer (and stop reading) before the body is all sent. Returns the answer's head if
/// a final one came before the body was written whole. An informational answer (a
/// `100 Continue`, say) does not stop the writing: the service wants the body.
async fn write_with_body(
    connection: &mut Connection,
    head: &[u8],
    body: Body,
    framing: Outgoing,
    head_only: bool,
) -> Result<Option<FinalHead>, Failure> {
    let (mut reader, mut writer) = connection.stream.split();
    let buffer = &mut connection.buffer;
    let writing = async {
        writer.write_all(head).await?;
        let mut body = std::pin::pin!(body);
        let mut sent: u64 = 0;
        let mut chunk = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(Failure::Body)?.into_data() else {
                continue; // trailers: not sent
            };
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            match framing {
                Outgoing::Chunked => {
                    chunk.clear();
                    chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    chunk.extend_from_slice(&data);
                    chunk.extend_from_slice(b"\r\n");
                    writer.write_all(&chunk).await?;
                }
                Outgoing::Length(length) if sent > length => {
                    return Err(Failure::Body(axum::Error::new(
                        "the body is longer than it said",
                    )));
                }
                _ => writer.write_all(&data).await?,
            }
        }
        match framing {
            Outgoing::Chunked => writer.write_all(b"0\r\n\r\n").await?,
            Outgoing::Length(length) if sent != length => {
                return Err(Failure::Body(axum::Error::new(
                    "the body is shorter than it said",
                )));
            }
            _ => {}
        }
        Ok::<_, Failure>(())
    };
    let answered = async {
        loop {
            match reader.read_buf(buffer).await {
                Ok(0) => return Err(Failure::closed("closed while the request was sent")),
                Ok(_) => {}
                Err(error) => return Err(error.into()),
            }
            // Cancel-safe: a head is taken off the buffer only once whole.
            while let Some(parsed) = parse_head(buffer, head_only).map_err(Failure::Malformed)? {
                if let Parsed::Final(response, framing, keep_alive) = parsed {
                    return Ok((response, framing, keep_alive));
                }
            }
        }
    };
    tokio::select! {
        written = writing => written.map(|()| None),
        answer = answered => answer.map(Some),
    }
}

/// An answer's body, read from its connection as it is polled; the connection goes
/// back on its list at the body's end, or closes if the body is dropped before.
struct AnswerBody {
    streaming: Option<Streaming>,
}

struct Streaming {
    connection: Connection,
    framing: Framing,
    reusable: bool,
    list: Arc<List>,
}

impl Streaming {
    /// The body ended here: the connection is reused if nothing more came with it.
    fn finish(self) {
        if self.reusable && self.connection.buffer.is_empty() {
            give_back(&self.list, self.connection);
        }
    }

    /// The next frame, or `None` at the body's end (the framing then says so).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            match self.framing.decode(&mut self.connection.buffer)? {
                Step::Data(data) => return Poll::Ready(Some(Ok(data))),
                Step::End => return Poll::Ready(None),
                Step::More => {}
            }
            let read = ready!(self.connection.poll_read_more(cx))?;
            if read == 0 {
                if self.framing == Framing::UntilClose {
                    self.reusable = false;
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the service closed the connection mid-body",
                ))));
            }
        }
    }
}

impl hyper::body::Body for AnswerBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let Some(streaming) = self.streaming.as_mut() else {
            return Poll::Ready(None);
        };
        let next = ready!(streaming.poll_next(cx));
        // Ended, failed, or its last bytes: the connection is done with either way (a
        // server sending a body of known length stops polling at its last byte).
        if (!matches!(next, Some(Ok(_))) || streaming.framing.ended())
            && let Some(streaming) = self.streaming.take()
            && matches!(next, None | Some(Ok(_)))
        {
            streaming.finish();
        }
        Poll::Ready(next.map(|next| next.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.streaming.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.streaming {
            None => SizeHint::with_exact(0),
            Some(Streaming {
                framing: Framing::Length(left),
                ..
            }) => SizeHint::with_exact(*left),
            Some(_) => SizeHint::default(),
        }
    }
}
