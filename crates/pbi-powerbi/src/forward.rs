//! Forwarding a caller's request as it is (the proxy of seed 002): the method, a path checked as every raw
//! request's is (`ApiPath`, the final URL under the API root), the query as sent, the caller's headers but
//! the reserved ones, and the body; the answer comes back unread, to be streamed to the caller. A token
//! Power BI refuses (`TokenExpired`, `InvalidToken`) is replaced and the request sent once more, when its
//! body can be sent again (`ForwardBody::Bytes`).

use crate::client::{PowerBiClient, classify};
use crate::error::{ErrorKind, PowerBiError, Result};
use crate::raw::ApiPath;
use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

/// What a forwarded request carries.
pub enum ForwardBody {
    None,
    /// Held in memory: sent again after a refused token.
    Bytes(Bytes),
    /// Streamed from the caller: sent once.
    Stream(reqwest::Body),
}

pub struct Forward {
    pub method: Method,
    pub path: ApiPath,
    /// The query as the caller sent it (already percent-encoded), without the `?`.
    pub query: Option<String>,
    /// The caller's headers; the reserved ones (`Authorization`, `Host`, hop-by-hop) are dropped here.
    pub headers: HeaderMap,
    pub body: ForwardBody,
}

impl PowerBiClient {
    /// Sends `forward` and gives Power BI's answer as it came, body unread; `Err` only when no answer came (or
    /// the path or the token could not be had).
    pub async fn forward(&self, forward: Forward) -> Result<reqwest::Response> {
        let mut url = forward.path.url_under(self.root())?;
        url.set_query(forward.query.as_deref().filter(|q| !q.is_empty()));
        let mut headers = forward.headers;
        let reserved: Vec<_> = headers.keys().filter(|name| crate::raw::reserved_header(name)).cloned().collect();
        for name in reserved {
            headers.remove(&name);
        }
        let mut body = Some(forward.body);
        let mut fresh = false;
        loop {
            let token = self.token(fresh).await?;
            let replayable = matches!(body, Some(ForwardBody::None | ForwardBody::Bytes(_)));
            let mut request = self.http().request(forward.method.clone(), url.clone()).headers(headers.clone()).bearer_auth(token.secret());
            request = match body.take() {
                Some(ForwardBody::Bytes(bytes)) => {
                    body = Some(ForwardBody::Bytes(bytes.clone()));
                    request.body(bytes)
                }
                Some(ForwardBody::Stream(stream)) => request.body(stream),
                Some(ForwardBody::None) => {
                    body = Some(ForwardBody::None);
                    request
                }
                None => request,
            };
            tracing::debug!(method = %forward.method, url = %url, "forwarding to Power BI");
            let response = request.send().await.map_err(|e| {
                self.observe(None);
                PowerBiError::new(ErrorKind::Transport(format!("could not reach Power BI: {e}")))
            })?;
            self.observe(Some(response.status().as_u16()));
            let may_be_token = matches!(response.status(), StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED);
            if fresh || !replayable || !may_be_token {
                return Ok(response);
            }
            // A refusal's body is small: read it to see whether the token was the trouble.
            let (status, answer_headers) = (response.status(), response.headers().clone());
            let text = response.bytes().await.unwrap_or_default();
            if !classify(status, &answer_headers, &text, None).is_token_problem() {
                return Ok(rebuilt(status, answer_headers, text));
            }
            tracing::debug!("Power BI refused the token; forwarding once more with a fresh one");
            fresh = true;
        }
    }
}

/// A response read already, as a `reqwest::Response` again (for the one caller-visible path).
fn rebuilt(status: StatusCode, headers: HeaderMap, body: Bytes) -> reqwest::Response {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    reqwest::Response::from(response)
}
