//! Serving an axum app as an owned task: graceful shutdown, a way to wait, and no detached tasks.

use axum::Router;
use axum::serve::Listener;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running `axum::serve`. Dropping it aborts the server.
pub struct ServeTask {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl ServeTask {
    /// Serves `app` on `listener` until `shutdown` (or an I/O failure).
    pub fn spawn<L>(listener: L, app: Router) -> Self
    where
        L: Listener,
        L::Addr: std::fmt::Debug,
    {
        Self::run(|stopped| async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        })
    }

    /// Serves `app` on a TCP `listener` like `spawn`, and tells handlers the address each connection comes
    /// from (`axum::extract::ConnectInfo<SocketAddr>`), for limits kept per client.
    pub fn spawn_with_peer_addresses(listener: tokio::net::TcpListener, app: Router) -> Self {
        Self::run(|stopped| async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        })
    }

    fn run<F>(serve: impl FnOnce(oneshot::Receiver<()>) -> F) -> Self
    where
        F: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(stopped));
        Self { stop: Some(stop), task: Some(task) }
    }

    /// Stops accepting connections, lets requests in flight finish, and waits for the task.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join().await
    }

    /// Resolves when the server ends on its own (an I/O failure); it never ends otherwise.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        self.join().await
    }

    async fn join(&mut self) -> std::io::Result<()> {
        let result = match self.task.as_mut() {
            Some(task) => task.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => return Ok(()),
        };
        self.task = None;
        result
    }
}

impl Drop for ServeTask {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_until_shut_down() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = ServeTask::spawn(listener, Router::new().route("/", axum::routing::get(|| async { "hi" })));
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("serving");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("hi"), "{answer}");
        task.shutdown().await.expect("clean shutdown");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
    }

    #[tokio::test]
    async fn handlers_can_be_told_the_peer_address() {
        use axum::extract::ConnectInfo;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app =
            Router::new().route("/", axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }));
        let task = ServeTask::spawn_with_peer_addresses(listener, app);
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("serving");
        let local = stream.local_addr().expect("local address");
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with(&local.to_string()), "{answer}");
        task.shutdown().await.expect("clean shutdown");
    }
}
