//! Where a user's data, configuration and caches go on each OS, when nothing is configured.
//!
//! Linux follows the XDG base directories (`$XDG_DATA_HOME` or `~/.local/share`, …); macOS uses
//! `~/Library/Application Support` and `~/Library/Caches`; Windows `%LOCALAPPDATA%` for data and
//! caches (large, machine-bound) and `%APPDATA%` for configuration (the key file).

use std::path::PathBuf;

/// The user's home folder: `$HOME` (`%USERPROFILE%` on Windows), or `.` when unset.
pub(super) fn home() -> PathBuf {
    let var = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

fn var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Where applications keep their data.
pub(crate) fn data_home() -> PathBuf {
    if cfg!(windows) {
        var("LOCALAPPDATA").unwrap_or_else(|| home().join("AppData").join("Local"))
    } else if cfg!(target_vendor = "apple") {
        home().join("Library").join("Application Support")
    } else {
        var("XDG_DATA_HOME").unwrap_or_else(|| home().join(".local").join("share"))
    }
}

/// Where applications keep their configuration.
pub(crate) fn config_home() -> PathBuf {
    if cfg!(windows) {
        var("APPDATA").unwrap_or_else(|| home().join("AppData").join("Roaming"))
    } else if cfg!(target_vendor = "apple") {
        home().join("Library").join("Application Support")
    } else {
        var("XDG_CONFIG_HOME").unwrap_or_else(|| home().join(".config"))
    }
}

/// Where applications keep caches (downloaded models).
pub(crate) fn cache_home() -> PathBuf {
    if cfg!(windows) {
        var("LOCALAPPDATA").unwrap_or_else(|| home().join("AppData").join("Local"))
    } else if cfg!(target_vendor = "apple") {
        home().join("Library").join("Caches")
    } else {
        var("XDG_CACHE_HOME").unwrap_or_else(|| home().join(".cache"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_folder_is_absolute_when_home_is() {
        if !home().is_absolute() {
            return; // no home in this environment: the `.` fallback is the documented answer
        }
        for dir in [data_home(), config_home(), cache_home()] {
            assert!(dir.is_absolute(), "{}", dir.display());
        }
    }
}
