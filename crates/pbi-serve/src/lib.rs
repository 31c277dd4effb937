//! Serving an axum app as an owned task: graceful shutdown, a way to wait, and no detached tasks.

use axum::Router;
use axum::serve::Listener;
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
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
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
}
