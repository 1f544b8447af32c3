//! A real webhook receiver on loopback (`scripts/lib/webhook_receiver.py`)
//! that verifies every request with the `standardwebhooks` library from
//! PyPI, run with the project venv's Python (`.venv`, where scripts/test
//! installs it) or else `python3`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::services::free_port;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/lib/webhook_receiver.py"
);

fn python() -> PathBuf {
    let venv = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"));
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// A receiver process and its port (kept across a restart).
pub struct Receiver {
    port: u16,
    secrets: Vec<String>,
    fail: u32,
    child: Option<Child>,
    client: reqwest::Client,
}

impl Receiver {
    /// Starts a receiver on a free port that verifies with `secrets`.
    pub async fn start(secrets: &[&str]) -> Receiver {
        let mut receiver = Receiver {
            port: free_port(),
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            fail: 0,
            child: None,
            client: reqwest::Client::new(),
        };
        receiver.spawn();
        receiver
    }

    fn spawn(&mut self) {
        let mut command = Command::new(python());
        command
            .arg(SCRIPT)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--fail")
            .arg(self.fail.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for secret in &self.secrets {
            command.arg("--secret").arg(secret);
        }
        let mut child = command.spawn().expect("starting the webhook receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("reading the receiver's first line");
        assert_eq!(
            line.trim(),
            "ready",
            "the webhook receiver did not start (is standardwebhooks installed in .venv? \
             `.venv/bin/pip install standardwebhooks`, as scripts/test does)"
        );
        self.child = Some(child);
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Stops it: its port refuses connections until [`Receiver::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with nothing received, verifying
    /// with `secrets` and answering its first `fail` requests 500.
    pub fn restart_with(&mut self, secrets: &[&str], fail: u32) {
        self.stop();
        self.secrets = secrets.iter().map(|s| (*s).to_owned()).collect();
        self.fail = fail;
        self.spawn();
    }

    /// Sets how it answers: `fail` next requests 500, each answer after
    /// `delay_ms`, and the secrets it verifies with.
    pub async fn control(&self, change: Value) {
        let response = self
            .client
            .post(format!("http://127.0.0.1:{}/control", self.port))
            .json(&change)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// Verifies with these secrets from now on.
    pub async fn verify_with(&self, secrets: &[&str]) {
        self.control(json!({ "secrets": secrets })).await;
    }

    /// Every request received, in arrival order.
    pub async fn received(&self) -> Vec<Value> {
        self.client
            .get(format!("http://127.0.0.1:{}/received", self.port))
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    }

    /// Waits until `done` holds of what was received (at most `limit`);
    /// answers what was received then.
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let received = self.received().await;
            if done(&received) {
                return received;
            }
            assert!(
                started.elapsed() < limit,
                "the receiver did not get what was expected within {limit:?}; it got {}: {received:#?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}
