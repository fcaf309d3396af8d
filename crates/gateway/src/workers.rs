//! The request-serving threads: one per core, each running a single-threaded runtime of its
//! own with its own listening socket and its own upstream connection pools.
//!
//! Why not one multi-threaded runtime: a proxied request wakes several tasks (the client
//! connection, the pooled upstream connection, the response body), and a work-stealing
//! scheduler spreads those wake-ups across threads. Each hop across threads costs a futex
//! call, an inter-processor interrupt and cold caches: on a two-core machine that was most
//! of the gateway's CPU per request. A worker here keeps a connection and everything it
//! wakes on one thread from accept to close, as nginx's worker processes do.
//!
//! Load is spread by the kernel: every worker listens on the same address with
//! `SO_REUSEPORT`, and Linux hashes each new connection to one of the sockets. (Sharing one
//! socket instead would wake every worker on each connection and let one of them take a
//! whole burst.) `SO_REUSEPORT` lets only processes of the same effective user join the
//! group, so this opens the port to no one new.
//!
//! Everything that is not request serving — admin API, signals, reload, the key store's
//! background work, alert webhooks — stays on the main runtime.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::OnceLock;

use tokio::net::TcpSocket;

/// Connections waiting to be accepted, per worker socket.
const BACKLOG: u32 = 1024;

thread_local! {
    /// This thread's worker number; 0 on threads that are not workers.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// How many workers serve requests: one per core the process may use.
pub(crate) fn count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The worker the calling thread is (0 for any other thread), below [`count`].
pub(crate) fn current() -> usize {
    INDEX.with(Cell::get)
}

/// The calling worker's own item of a per-worker set (one per worker, built with
/// [`count`]); threads that are not workers share the first.
pub(crate) fn own<T>(per_worker: &[T]) -> &T {
    &per_worker[current() % per_worker.len()]
}

/// Binds `count` listening sockets to `addr`, all in one `SO_REUSEPORT` group. With port 0
/// the first socket picks the port and the others join it. Must run inside a runtime (the
/// sockets are handed back unregistered, ready for each worker's runtime).
pub(crate) fn bind_group(
    addr: SocketAddr,
    count: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut sockets = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(BACKLOG)?;
        addr = listener.local_addr()?;
        sockets.push(listener.into_std()?);
    }
    Ok(sockets)
}

/// Starts worker `index` on a thread of its own: a single-threaded runtime that runs
/// `serve` (built on that thread, inside that runtime) to completion, then drops every task
/// it still holds. The returned receiver completes when the worker has stopped.
pub(crate) fn spawn<F, Fut>(
    index: usize,
    serve: F,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done, stopped) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("palisade-worker-{index}"))
        .spawn(move || {
            INDEX.with(|i| i.set(index));
            runtime.block_on(serve());
            // Dropping the runtime cancels connections still open past the drain.
            drop(runtime);
            let _ = done.send(());
        })?;
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_group_shares_one_port_and_every_socket_accepts() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(group.len(), 3);
        let port = group[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        for socket in &group {
            assert_eq!(socket.local_addr().unwrap().port(), port);
        }
        // Each socket of the group accepts connections on its worker; the kernel spreads
        // new connections across them, so enough connections reach all three.
        let mut served = Vec::new();
        for (index, socket) in group.into_iter().enumerate() {
            socket.set_nonblocking(true).unwrap();
            served.push(
                spawn(index + 1, move || async move {
                    let listener = tokio::net::TcpListener::from_std(socket).unwrap();
                    while let Ok((mut stream, _)) = listener.accept().await {
                        let mut byte = [0u8];
                        if stream.read_exact(&mut byte).await.is_err() || byte[0] == b'q' {
                            break;
                        }
                        let _ = stream.write_all(&[b'0' + current() as u8]).await;
                    }
                })
                .unwrap(),
            );
        }
        let mut answered_by = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            stream.write_all(b"?").await.unwrap();
            let mut answer = [0u8];
            stream.read_exact(&mut answer).await.unwrap();
            answered_by.insert(answer[0]);
            if answered_by.len() == 3 {
                break;
            }
        }
        assert_eq!(
            answered_by,
            [b'1', b'2', b'3'].into_iter().collect(),
            "every worker served, each on its own thread"
        );
        assert_eq!(current(), 0, "the test thread is not a worker");
        // Stop each worker: keep connecting until every one has been told to quit.
        let mut stopped = 0;
        let mut workers = served;
        while stopped < 3 {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                let _ = stream.write_all(b"q").await;
            }
            let mut still_running = Vec::new();
            for mut done in workers {
                tokio::task::yield_now().await;
                match done.try_recv() {
                    Ok(()) => stopped += 1,
                    Err(_) => still_running.push(done),
                }
            }
            workers = still_running;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
