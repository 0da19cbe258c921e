//! What the end-to-end test needs running: an X server (Xvfb), tauri-driver in front of
//! WebKitWebDriver, and the app's settings in the environment they pass down to the app.
#![allow(dead_code)]

pub(crate) mod webdriver;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Processes started for the test, killed when it ends.
pub(crate) struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Why the end-to-end test cannot run here, if it cannot (a missing tool or the model).
pub(crate) fn missing_prerequisite() -> Option<String> {
    for (tool, from) in [
        ("Xvfb", "Debian package xvfb"),
        ("WebKitWebDriver", "Debian package webkit2gtk-driver"),
        ("tauri-driver", "cargo install tauri-driver --locked"),
    ] {
        if !on_path(tool) {
            return Some(format!(
                "{tool} not found ({from}; scripts/install-desktop-deps.sh installs it)"
            ));
        }
    }
    match std::env::var_os("CLOUDOPS_TEST_MODEL_DIR") {
        Some(dir) if Path::new(&dir).join("config.json").exists() => None,
        _ => Some("CLOUDOPS_TEST_MODEL_DIR does not hold the test model (scripts/fetch-test-model.sh)".into()),
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_until(what: &str, timeout: Duration, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Start Xvfb on a free display and tauri-driver on a free port, with `env` for the app.
/// Returns the processes and the driver's URL.
pub(crate) fn start_driver(env: &[(&str, &Path)], logs: &Path) -> (Processes, String) {
    let mut processes = Processes(Vec::new());
    let display = (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free X display");
    let xvfb = Command::new("Xvfb")
        .args([
            format!(":{display}"),
            "-screen".into(),
            "0".into(),
            "1280x800x24".into(),
            "-nolisten".into(),
            "tcp".into(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(logs.join("xvfb.log")).unwrap())
        .spawn()
        .expect("Xvfb starts");
    processes.0.push(xvfb);
    wait_until("Xvfb", Duration::from_secs(10), || {
        Path::new(&format!("/tmp/.X11-unix/X{display}")).exists()
    });

    let (port, native_port) = (free_port(), free_port());
    let mut driver = Command::new("tauri-driver");
    driver
        .args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
        .env("DISPLAY", format!(":{display}"))
        .stdout(std::fs::File::create(logs.join("tauri-driver.log")).unwrap())
        .stderr(std::fs::File::create(logs.join("app-and-driver.stderr.log")).unwrap());
    for (key, value) in env {
        driver.env(key, value);
    }
    processes.0.push(driver.spawn().expect("tauri-driver starts"));
    wait_until("tauri-driver", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (processes, format!("http://127.0.0.1:{port}"))
}

/// Where screenshots go: `<target dir>/e2e-screenshots` (a test artifact).
pub(crate) fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("e2e-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An AWS CLI output fixture of the library's tests.
pub(crate) fn aws_fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/storage/tests/fixtures/aws")
        .join(name)
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}
