//! Idle keep-alive connections, parked without hyper's buffers.
//!
//! hyper's HTTP/1 server gives every connection an 8 KiB read buffer and an 8 KiB buffer
//! for response heads, and keeps both for the connection's life: a client that keeps its
//! connection open between requests costs 16 KiB while doing nothing. Palisade serves a
//! plain HTTP/1 connection as a series of hyper sessions instead. When a session has
//! nothing left to do, [`Parkable`] tells hyper the client closed (a read of zero bytes);
//! hyper ends the session (its shutdown of the socket is skipped), its buffers are freed, and the
//! connection waits for its next byte in `TcpStream::readable`, which holds no buffer. A
//! new session starts on the same socket when the client writes again.
//!
//! Contract: the zero-byte read is only ever given when ending the session loses nothing.
//! All of these must hold ([`Parkable::at_rest`]):
//! - every request the session dispatched has had its response body finished ([`Activity`]),
//!   and hyper has flushed its write buffer since (it calls the socket's `poll_flush` only
//!   once that buffer is empty), so no response byte is still inside hyper;
//! - the last request dispatched had no body: its head was the last thing hyper read, so
//!   hyper is between messages, never inside a body it is reading or draining (ending the
//!   session there would let the rest of a body be read as a new request: smuggling);
//! - the bytes read so far end with `\r\n\r\n`: any bytes hyper holds are then a complete
//!   head it would already have dispatched, so it holds none (a pipelined request cut in
//!   half ends otherwise and keeps the session);
//! - the socket has nothing more to read right now.
//!
//! When one of them fails the session simply goes on, as hyper would have: parking is an
//! optimisation that never changes what the client sees, except that the idle wait is
//! bounded by `header_timeout` (as hyper's own wait for the next head was).
//!
//! A connection is parked once it has been at rest for [`QUIET_BEFORE_PARKING`], not at its
//! first idle moment: under load the next request arrives microseconds after a response,
//! and ending and starting a session per request (a connection state moved into a box,
//! two buffers allocated) cost 15 % more instructions per request in `bench/callgrind`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The end of a request head, as the last four bytes read (big-endian).
const HEAD_END: u32 = u32::from_be_bytes(*b"\r\n\r\n");

/// How long a connection stays at rest, with no byte read, before it is parked. Short
/// against a client's think time, long against the gap between a response and the next
/// request of a busy client.
pub(crate) const QUIET_BEFORE_PARKING: Duration = Duration::from_millis(100);

/// What the requests of one connection have done, shared by its service and its socket.
///
/// Every update happens on the connection's own task (hyper polls the service's futures and
/// the response bodies there), so relaxed ordering is enough.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    dispatched: AtomicU64,
    finished: AtomicU64,
    last_had_body: AtomicBool,
}

impl Activity {
    /// Records a request hyper dispatched; the guard marks it finished when dropped (with
    /// the response body, or with the request future if it never produced one).
    pub(crate) fn dispatch(self: &Arc<Self>, has_body: bool) -> Finished {
        self.dispatched.fetch_add(1, Ordering::Relaxed);
        self.last_had_body.store(has_body, Ordering::Relaxed);
        Finished(self.clone())
    }

    fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// How many requests hyper has dispatched on this connection.
    pub(crate) fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Relaxed)
    }
}

/// Marks one dispatched request finished when dropped.
#[derive(Debug)]
pub(crate) struct Finished(Arc<Activity>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// A response body that marks its request finished when hyper is done with it.
#[derive(Debug)]
pub(crate) struct Tracked<B> {
    body: B,
    _finished: Option<Finished>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A request's future whose response body is made [`Tracked`]: the request counts as
    /// finished when that body is dropped, or with this future if it never answers.
    pub(crate) struct TrackedResponse<F> {
        #[pin]
        response: F,
        finished: Option<Finished>,
    }
}

impl<F> TrackedResponse<F> {
    pub(crate) fn new(response: F, finished: Finished) -> Self {
        TrackedResponse {
            response,
            finished: Some(finished),
        }
    }
}

impl<F, B> Future for TrackedResponse<F>
where
    F: Future<Output = http::Response<B>>,
{
    type Output = Result<http::Response<Tracked<B>>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.response.poll(cx));
        let finished = this.finished.take();
        Poll::Ready(Ok(response.map(|body| Tracked {
            body,
            _finished: finished,
        })))
    }
}

/// The client's socket as hyper sees it during one session (see the module's contract).
#[derive(Debug)]
pub(crate) struct Parkable {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// The last four bytes read, oldest first; a new connection starts between messages.
    tail: u32,
    /// `Activity::finished` when hyper last flushed with its write buffer empty.
    finished_at_flush: u64,
    /// Set when the zero-byte read was given: the session ended to park, not to close.
    parked: bool,
    quiet_before_parking: Duration,
    /// Reads that returned bytes, and their count when `quiet` was last set.
    reads: u64,
    reads_at_quiet: u64,
    /// Fires `quiet_before_parking` after the connection came to rest; set while serving,
    /// dropped when parked.
    quiet: Option<Pin<Box<Sleep>>>,
}

impl Parkable {
    pub(crate) fn new(
        stream: TcpStream,
        activity: Arc<Activity>,
        quiet_before_parking: Duration,
    ) -> Self {
        Parkable {
            stream,
            activity,
            tail: HEAD_END,
            finished_at_flush: 0,
            parked: false,
            quiet_before_parking,
            reads: 0,
            reads_at_quiet: 0,
            quiet: None,
        }
    }

    /// Whether the session that just ended was ended here to park; resets for the next one.
    pub(crate) fn take_parked(&mut self) -> bool {
        std::mem::take(&mut self.parked)
    }

    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    fn at_rest(&self) -> bool {
        let dispatched = self.activity.dispatched();
        self.tail == HEAD_END
            && !self.activity.last_had_body.load(Ordering::Relaxed)
            && self.activity.finished() == dispatched
            && self.finished_at_flush == dispatched
    }

    /// Whether nothing was read for `quiet_before_parking`; registers a wake-up otherwise.
    ///
    /// The timer is set once and only moved when it fires: a busy connection pays one timer
    /// update per period, not one per request, and is parked after one to two periods of
    /// quiet.
    fn quiet_long_enough(&mut self, cx: &mut Context<'_>) -> bool {
        let period = self.quiet_before_parking;
        let quiet = match &mut self.quiet {
            Some(quiet) => quiet,
            None => {
                self.reads_at_quiet = self.reads;
                self.quiet.insert(Box::pin(tokio::time::sleep(period)))
            }
        };
        while quiet.as_mut().poll(cx).is_ready() {
            if self.reads == self.reads_at_quiet {
                return true;
            }
            // Requests came and went since it was set: quiet for a whole period from now.
            self.reads_at_quiet = self.reads;
            quiet.as_mut().reset(Instant::now() + period);
        }
        false
    }

    fn note_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.reads += 1;
        if let Some(last) = bytes.last_chunk::<4>() {
            self.tail = u32::from_be_bytes(*last);
        } else {
            for &byte in bytes {
                self.tail = (self.tail << 8) | u32::from(byte);
            }
        }
    }
}

impl AsyncRead for Parkable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.note_read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            // Nothing to read and nothing in flight for a while: end the session (zero
            // bytes read).
            Poll::Pending if this.at_rest() && this.quiet_long_enough(cx) => {
                this.parked = true;
                this.quiet = None;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Parkable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.finished_at_flush = this.activity.finished();
        }
        flushed
    }

    /// hyper flushes, then shuts the socket down, when a session ends; a parked connection
    /// goes on, so only the flush happens.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.parked {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const QUIET: Duration = Duration::from_millis(100);
    const GET: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

    async fn pair() -> (Parkable, TcpStream, Arc<Activity>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let activity = Arc::new(Activity::default());
        (
            Parkable::new(server, activity.clone(), QUIET),
            client,
            activity,
        )
    }

    /// One read as hyper does it: `Some(n)` bytes (0 = parked), `None` when it would wait.
    fn read_now(parkable: &mut Parkable) -> Option<usize> {
        let mut storage = [0u8; 256];
        let mut buf = ReadBuf::new(&mut storage);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(parkable).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) => Some(buf.filled().len()),
            Poll::Ready(Err(error)) => panic!("read failed: {error}"),
            Poll::Pending => None,
        }
    }

    async fn read_when_ready(parkable: &mut Parkable) -> usize {
        parkable.stream.readable().await.unwrap();
        read_now(parkable).expect("the socket was readable")
    }

    /// Whether the connection parks (reads zero bytes) once it has been quiet long enough;
    /// it never parks before.
    async fn parks_when_quiet(parkable: &mut Parkable) -> bool {
        if read_now(parkable).is_some() {
            panic!("parked (or read) before the quiet period");
        }
        tokio::time::sleep(QUIET * 3).await;
        read_now(parkable) == Some(0)
    }

    async fn flush(parkable: &mut Parkable) {
        parkable.flush().await.unwrap();
    }

    /// The client sends `bytes`; the server reads them and serves one request (with or
    /// without a body) to the end: dispatched, finished, flushed.
    async fn serve(
        server: &mut Parkable,
        client: &mut TcpStream,
        activity: &Arc<Activity>,
        bytes: &[u8],
        has_body: bool,
    ) {
        client.write_all(bytes).await.unwrap();
        read_when_ready(server).await;
        drop(activity.dispatch(has_body));
        flush(server).await;
    }

    #[tokio::test]
    async fn parks_after_a_finished_bodyless_request_once_flushed_and_quiet() {
        let (mut server, mut client, activity) = pair().await;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_when_ready(&mut server).await, 27);
        let finished = activity.dispatch(false);
        assert!(
            !parks_when_quiet(&mut server).await,
            "a request is in flight"
        );
        drop(finished);
        assert!(
            !parks_when_quiet(&mut server).await,
            "its response is not flushed"
        );
        flush(&mut server).await;
        assert!(parks_when_quiet(&mut server).await);
        assert!(server.take_parked());
        assert!(!server.take_parked(), "reset for the next session");
        assert!(server.quiet.is_none(), "a parked connection holds no timer");
    }

    #[tokio::test]
    async fn a_busy_connection_is_not_parked_between_requests() {
        let (mut server, mut client, activity) = pair().await;
        // A request every QUIET / 4 for four periods: the timer fires several times, each
        // time after reads, and never parks. (Only a stall of the test's thread longer than
        // three quarters of a period could make it park; that would not fail, but skip.)
        let mut parked = 0;
        for _ in 0..16 {
            serve(&mut server, &mut client, &activity, GET, false).await;
            if read_now(&mut server) == Some(0) {
                parked += 1;
            }
            tokio::time::sleep(QUIET / 4).await;
        }
        assert!(parked <= 1, "parked {parked} times while busy");
        assert!(parks_when_quiet(&mut server).await || parked == 1);
    }

    #[tokio::test]
    async fn a_request_cut_in_half_keeps_the_session() {
        let (mut server, mut client, activity) = pair().await;
        // A whole request, then the start of a pipelined one, in one read.
        let bytes = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHo";
        serve(&mut server, &mut client, &activity, bytes, false).await;
        assert!(!parks_when_quiet(&mut server).await);
        // The rest arrives one byte at a time: the tail spans reads.
        for byte in b"st: a\r\n\r\n" {
            client.write_all(&[*byte]).await.unwrap();
            assert_eq!(read_when_ready(&mut server).await, 1);
        }
        drop(activity.dispatch(false));
        flush(&mut server).await;
        assert!(parks_when_quiet(&mut server).await);
    }

    #[tokio::test]
    async fn a_request_with_a_body_is_never_parked_after() {
        let (mut server, mut client, activity) = pair().await;
        // A body that happens to end like a head: hyper may still be reading or draining it.
        let bytes = b"POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
        serve(&mut server, &mut client, &activity, bytes, true).await;
        assert!(!parks_when_quiet(&mut server).await);
        // A bodyless request after it: hyper has parsed its head, so the body is behind it.
        serve(&mut server, &mut client, &activity, GET, false).await;
        assert!(parks_when_quiet(&mut server).await);
    }

    #[tokio::test]
    async fn a_closed_client_is_a_real_end_not_a_park() {
        let (mut server, mut client, _activity) = pair().await;
        client.shutdown().await.unwrap();
        drop(client);
        assert_eq!(read_when_ready(&mut server).await, 0);
        assert!(!server.take_parked());
        let mut rest = Vec::new();
        assert_eq!(server.stream.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
