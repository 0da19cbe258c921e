//! Secrets handed over in environment variables (`CLOUDOPS_KEY`, `CLOUDOPS_PASSPHRASE` and
//! their `_NEW` twins), taken out of the environment at start-up so that no child process
//! (a WebKit helper, a shell the app runs) inherits them.
//!
//! [`take_key_secrets_from_env`] moves them into memory (wiped on exit of the process, never
//! printed); the key sources read them from there first, then from the environment (a
//! program that did not take them keeps working as before).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use zeroize::Zeroizing;

use super::config::{DEFAULT_KEY_ENV_VAR, DEFAULT_PASSPHRASE_ENV_VAR};

/// Environment variables naming other key variables (`keys.env_var`,
/// `keys.passphrase_env_var`); the variables they name are taken too.
const NAMING_VARS: [(&str, &str); 2] = [
    ("CLOUDOPS_KEY_ENV_VAR", DEFAULT_KEY_ENV_VAR),
    ("CLOUDOPS_PASSPHRASE_ENV_VAR", DEFAULT_PASSPHRASE_ENV_VAR),
];

fn taken() -> &'static Mutex<HashMap<String, Zeroizing<String>>> {
    static TAKEN: OnceLock<Mutex<HashMap<String, Zeroizing<String>>>> = OnceLock::new();
    TAKEN.get_or_init(Mutex::default)
}

/// Move the key secrets out of this process's environment into memory: `CLOUDOPS_KEY` and
/// `CLOUDOPS_PASSPHRASE` (or the variables `CLOUDOPS_KEY_ENV_VAR` and
/// `CLOUDOPS_PASSPHRASE_ENV_VAR` name), each also with `_NEW`, plus `extra` names (those a
/// config file sets). The store then opens as before, and no child process inherits them.
/// Returns the names taken.
///
/// # Safety
/// Changing the environment races with any other thread reading it (`getenv` is not
/// thread-safe on most platforms): call this first in `main`, before any thread starts (an
/// async runtime, a logger with a background thread, the GUI toolkit).
pub unsafe fn take_key_secrets_from_env(extra: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = NAMING_VARS
        .iter()
        .map(|(naming, default)| {
            std::env::var(naming)
                .ok()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| (*default).to_string())
        })
        .chain(extra.iter().map(|n| (*n).to_string()))
        .collect();
    names.extend(names.clone().into_iter().map(|n| format!("{n}_NEW")));
    names.sort();
    names.dedup();
    let mut map = taken().lock().unwrap_or_else(|p| p.into_inner());
    let mut moved = Vec::new();
    for name in names {
        if let Some(value) = std::env::var_os(&name) {
            std::env::remove_var(&name);
            // A value that is not UTF-8 is no key; it is dropped from the environment anyway
            // and reported as unset when read.
            if let Ok(value) = value.into_string() {
                map.insert(name.clone(), Zeroizing::new(value));
            }
            moved.push(name);
        }
    }
    if !moved.is_empty() {
        tracing::debug!(?moved, "key secrets taken out of the environment");
    }
    moved
}

/// The value of a secret variable: taken at start-up, else still in the environment.
pub(crate) fn var(name: &str) -> Option<Zeroizing<String>> {
    if let Some(v) = taken().lock().unwrap_or_else(|p| p.into_inner()).get(name) {
        return Some(v.clone());
    }
    std::env::var(name).ok().map(Zeroizing::new)
}
