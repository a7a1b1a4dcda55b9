//! A tiny scriptable HTTP server for the client tests: every request is recorded, and a
//! closure decides each reply. Bound to 127.0.0.1:0 inside the test's own runtime, so tests
//! can run with tokio's paused clock.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use futures::StreamExt;
use reqwest::header::HeaderMap;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Seen {
    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

/// A reply to send.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Held this long (on tokio's clock) before the reply is sent.
    pub delay: Option<Duration>,
    /// The headers go at once, the body this long (on tokio's clock) after them.
    pub body_delay: Option<Duration>,
    /// Send only the first half of the body (with the whole body's `content-length`), then
    /// drop the connection.
    pub truncated: bool,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into().into_bytes(),
            delay: None,
            body_delay: None,
            truncated: false,
        }
    }

    pub fn body_after(mut self, delay: Duration) -> Reply {
        self.body_delay = Some(delay);
        self
    }

    pub fn truncated(mut self) -> Reply {
        self.truncated = true;
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = Some(delay);
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

type Script = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

#[derive(Clone)]
struct AppState {
    script: Script,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A running fake server.
pub struct Fake {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&self.base).unwrap()
    }
}

async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap()
        .to_vec();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    let nth = {
        let mut all = state.seen.lock().unwrap();
        all.push(seen.clone());
        all.len() - 1
    };
    let reply = (state.script)(&seen, nth);
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut builder = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    if reply.body_delay.is_none() && !reply.truncated {
        return builder.body(Body::from(reply.body)).unwrap();
    }
    builder = builder.header("content-length", reply.body.len().to_string());
    let mut body = reply.body;
    let cut = if reply.truncated {
        Some(body.split_off(body.len() / 2))
    } else {
        None
    };
    let delay = reply.body_delay;
    let chunks = futures::stream::once(async move {
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, std::io::Error>(axum::body::Bytes::from(body))
    })
    // The cut comes a moment later, so that the headers and the first half are on the
    // wire first (hyper drops unflushed output when a body fails).
    .chain(futures::stream::iter(cut).then(|_| async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err(std::io::Error::other(
            "the test server cuts this body short",
        ))
    }));
    builder.body(Body::from_stream(chunks)).unwrap()
}

/// Starts a server whose replies come from `script(request, index_of_request)`.
pub async fn start(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Fake {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = AppState {
        script: Arc::new(script),
        seen: seen.clone(),
    };
    let app = Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Fake {
        base: format!("http://{addr}"),
        seen,
    }
}

pub fn http_settings(max_retries: u32) -> okta_spot_sync::config::HttpSettings {
    okta_spot_sync::config::HttpSettings {
        timeout: Duration::from_secs(30),
        max_retries,
        allow_insecure_http: true,
    }
}
