//! A minimal W3C WebDriver client (the few endpoints the end-to-end test needs), over HTTP to
//! tauri-driver, which hands the session to WebKitWebDriver and the app's real webview.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One WebDriver session: one running app.
pub(crate) struct Session {
    http: reqwest::Client,
    base: String,
}

/// An element of the page.
#[derive(Clone)]
pub(crate) struct Element(String);

impl Session {
    /// Start the app at `application` through the driver at `driver_url`.
    /// The driver may take a moment to start its native driver: retried for 30 s.
    pub(crate) async fn start(driver_url: &str, application: &str) -> Result<Session, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| e.to_string())?;
        let body = json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": application}}}});
        let deadline = Instant::now() + Duration::from_secs(30);
        let reply = loop {
            match send(http.post(format!("{driver_url}/session")).json(&body)).await {
                Ok(reply) => break reply,
                Err(e) if Instant::now() > deadline => return Err(format!("no WebDriver session: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        let id = reply["sessionId"].as_str().ok_or(format!("no session id in {reply}"))?;
        Ok(Session {
            http,
            base: format!("{driver_url}/session/{id}"),
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        send(self.http.get(format!("{}{path}", self.base))).await
    }

    /// The first element matching `css` (waiting for it up to `timeout`).
    pub(crate) async fn find(&self, css: &str) -> Result<Element, String> {
        self.wait(&format!("an element {css}"), || async {
            let v = self
                .post("/element", json!({"using": "css selector", "value": css}))
                .await
                .ok()?;
            v[ELEMENT_KEY].as_str().map(|id| Element(id.to_string()))
        })
        .await
    }

    /// Every element matching `css` now.
    pub(crate) async fn find_all(&self, css: &str) -> Result<Vec<Element>, String> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element(id.to_string()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Click `css`.
    pub(crate) async fn click(&self, css: &str) -> Result<(), String> {
        let e = self.find(css).await?;
        self.post(&format!("/element/{}/click", e.0), json!({})).await.map(drop)
    }

    /// Click `element`.
    pub(crate) async fn click_element(&self, element: &Element) -> Result<(), String> {
        self.post(&format!("/element/{}/click", element.0), json!({}))
            .await
            .map(drop)
    }

    /// Replace the text of the input `css` with `text`.
    pub(crate) async fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let e = self.find(css).await?;
        self.post(&format!("/element/{}/clear", e.0), json!({})).await?;
        if text.is_empty() {
            return Ok(()); // WebKitWebDriver refuses empty text
        }
        self.post(&format!("/element/{}/value", e.0), json!({"text": text}))
            .await
            .map(drop)
    }

    /// Choose `value` in the select `css` (by script: WebKitWebDriver's option clicks vary).
    pub(crate) async fn select(&self, css: &str, value: &str) -> Result<(), String> {
        let script = "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
                      s.dispatchEvent(new Event('change', {bubbles: true})); return s.value;";
        let chosen = self
            .post("/execute/sync", json!({"script": script, "args": [css, value]}))
            .await?;
        if chosen == value {
            Ok(())
        } else {
            Err(format!("{css} has no option {value}"))
        }
    }

    /// The visible text of `element`.
    pub(crate) async fn text_of(&self, element: &Element) -> Result<String, String> {
        let v = self.get(&format!("/element/{}/text", element.0)).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The visible text of the first `css`.
    pub(crate) async fn text(&self, css: &str) -> Result<String, String> {
        let e = self.find(css).await?;
        self.text_of(&e).await
    }

    /// Wait until the text of `css` satisfies `ok`; the last text seen on time-out.
    pub(crate) async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> Result<String, String> {
        let last = std::sync::Mutex::new(String::new());
        self.wait(&format!("{css} to show {what}"), || async {
            let t = self.text(css).await.ok()?;
            if ok(&t) {
                Some(t)
            } else {
                *last.lock().unwrap_or_else(|p| p.into_inner()) = t;
                None
            }
        })
        .await
        .map_err(|e| format!("{e}; it shows {:?}", last.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// Save a PNG of the window to `path`.
    pub(crate) async fn screenshot(&self, path: &std::path::Path) -> Result<(), String> {
        // Let the page paint what the DOM holds before the capture (two animation frames).
        let painted = "const done = arguments[arguments.length - 1]; \
                       requestAnimationFrame(() => requestAnimationFrame(() => done(true)));";
        self.post("/execute/async", json!({"script": painted, "args": []}))
            .await?;
        let v = self.get("/screenshot").await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Poll `probe` until it gives a value (20 s at most).
    async fn wait<T, F, Fut>(&self, what: &str, probe: F) -> Result<T, String>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = probe().await {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(format!("timed out waiting for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// End the session (the app is closed).
    pub(crate) async fn end(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let reply = request.send().await.map_err(|e| e.to_string())?;
    let status = reply.status();
    let body: Value = reply.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body["value"].clone())
    } else {
        Err(format!("WebDriver {status}: {}", body["value"]))
    }
}
