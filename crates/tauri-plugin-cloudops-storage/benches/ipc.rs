//! The cost of the IPC layer: `append` and `get_history` (last 5) through Tauri's IPC path on
//! the mock runtime (argument deserialisation, capability check, command dispatch, JSON
//! response) against the same calls on the library directly, p50/p99 over 1,000 calls each.
//!
//! `cargo bench -p tauri-plugin-cloudops-storage --bench ipc`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use cloudops_storage_service::{HistoryRange, NewMessage, Role};
use serde_json::json;
use tauri::Manager as _;

const CALLS: usize = 1000;

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    (at(0.50), at(0.99))
}

fn time(mut f: impl FnMut()) -> (f64, f64) {
    let samples = (0..CALLS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    percentiles(samples)
}

fn main() {
    let t = support::app(&["cloudops-storage:default"]);
    let ctx = t
        .invoke("create_conversation", json!({"userId": "alice", "title": "bench"}))
        .expect("conversation")["context_id"]
        .as_str()
        .expect("id")
        .to_string();
    let storage = t.app.state::<tauri_plugin_cloudops_storage::Storage>();
    let service = tauri::async_runtime::block_on(storage.service()).expect("open");
    let text = "How much did the NAT gateway cost last month in eu-west-1?";

    let ipc_append = time(|| {
        t.invoke(
            "append",
            json!({"contextId": ctx, "message": {"role": "user", "content": text}}),
        )
        .expect("append");
    });
    let direct_append = time(|| {
        tauri::async_runtime::block_on(service.chat.append(&ctx, NewMessage::new(Role::User, text))).expect("append");
    });
    let ipc_last5 = time(|| {
        t.invoke("get_history", json!({"contextId": ctx, "range": {"last": 5}}))
            .expect("history");
    });
    let direct_last5 = time(|| {
        tauri::async_runtime::block_on(service.chat.get_history(&ctx, HistoryRange::Last(5))).expect("history");
    });
    println!("{CALLS} calls each, ms            p50      p99");
    for (name, (p50, p99)) in [
        ("append, through IPC       ", ipc_append),
        ("append, library           ", direct_append),
        ("last 5, through IPC       ", ipc_last5),
        ("last 5, library           ", direct_last5),
    ] {
        println!("{name} {p50:>8.3} {p99:>8.3}");
    }
    println!(
        "IPC layer: append +{:.3} ms p50, last 5 +{:.3} ms p50",
        ipc_append.0 - direct_append.0,
        ipc_last5.0 - direct_last5.0
    );
}
