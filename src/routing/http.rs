//! Executing an `http` step: one request with its own timeout and a capped
//! response body. A non-2xx status is data; a connection error, a timeout, an
//! oversize body or a JSON content type with an unparsable body is a failure.

use std::time::Duration;

use serde_json::{Map, Value};

/// The shared HTTP client of `http` steps (rustls; no redirects followed, so
/// a 3xx is data like any other status).
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    max_body_bytes: usize,
}

impl HttpClient {
    /// # Errors
    /// The TLS backend cannot be initialised.
    pub fn new(max_body_bytes: usize) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("inroute/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            client,
            max_body_bytes,
        })
    }
}

/// A fully rendered request.
#[derive(Debug, Clone)]
pub(crate) struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl HttpClient {
    /// Sends `request`; the step's output is `{status_code, headers, body}`.
    pub(crate) async fn execute(
        &self,
        request: HttpRequest,
        timeout: Duration,
    ) -> Result<Value, String> {
        match tokio::time::timeout(timeout, self.send(request)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no complete response within {} ms",
                timeout.as_millis()
            )),
        }
    }

    async fn send(&self, request: HttpRequest) -> Result<Value, String> {
        let method =
            reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut builder = self.client.request(method, &request.url);
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        let has_content_type = request
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            if !has_content_type {
                builder = builder.header("content-type", "application/json");
            }
            builder = builder.body(serde_json::to_vec(body).map_err(|e| e.to_string())?);
        }
        let mut response = builder.send().await.map_err(describe)?;
        let status = response.status().as_u16();
        let mut headers = Map::new();
        for (name, value) in response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.get_mut(name.as_str()) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
                _ => {
                    headers.insert(name.as_str().to_owned(), Value::String(value));
                }
            }
        }
        let is_json = headers
            .get("content-type")
            .and_then(Value::as_str)
            .is_some_and(|ct| ct.contains("json"));
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if bytes.len() + chunk.len() > self.max_body_bytes {
                return Err(format!(
                    "response body larger than {} bytes",
                    self.max_body_bytes
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = if bytes.is_empty() {
            Value::Null
        } else if is_json {
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("response says JSON but is not: {e}"))?
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        let mut out = Map::new();
        out.insert("status_code".into(), status.into());
        out.insert("headers".into(), Value::Object(headers));
        out.insert("body".into(), body);
        Ok(Value::Object(out))
    }
}

/// A transport error without the request URL (which may carry secrets).
fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "connection failed"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_builder() {
        "invalid request"
    } else {
        "request failed"
    };
    match std::error::Error::source(&error) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_owned(),
    }
}
