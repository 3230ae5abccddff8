//! The configuration file: `Config::from_yaml_str` on the input (lossy UTF-8), path lookups
//! on what it accepted (exact names, `~regex` names, `all_others`), and the value parsers
//! `validate_path_name`, `parse_address` and `parse_duration` on every line of the input.
//!
//! Host names in addresses are resolved (`to_socket_addrs`). So that fuzzing never sends DNS
//! queries, the target moves itself into an empty network namespace at start-up (it must run
//! as root, as on the project machines; otherwise it refuses to start).
//!
//! Checked besides "no panic":
//! - errors carry a line/column only together, and print;
//! - every fixed path name of an accepted file finds a configuration, pulled paths have a
//!   URL source;
//! - an accepted duration printed in nanoseconds parses back to the same value;
//! - an accepted path name obeys the documented rules.
#![no_main]

use std::time::Duration;

use hubcast::config::{parse_address, parse_duration, validate_path_name, Config};
use libfuzzer_sys::fuzz_target;

fn isolate_network() {
    // SAFETY: plain syscall wrapper; no memory is passed.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        eprintln!(
            "config fuzz target: unshare(CLONE_NEWNET) failed ({}); refusing to run, since \
             host names in the input would be resolved over the network. Run as root, or \
             under `unshare -rn`.",
            std::io::Error::last_os_error()
        );
        std::process::exit(2);
    }
}

fn check_path_name(name: &str) {
    if validate_path_name(name).is_ok() {
        assert!(!name.is_empty() && name.chars().count() <= 200);
        assert!(!name.starts_with('/') && !name.ends_with('/'));
        assert!(name
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".."));
        assert!(name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./~-".contains(c)));
    }
}

fn check_duration(text: &str) {
    if let Ok(d) = parse_duration(text) {
        let ns = d.as_nanos();
        let again = parse_duration(&format!("{ns}ns"))
            .unwrap_or_else(|e| panic!("{text:?} -> {d:?}, but {ns}ns fails: {e}"));
        assert_eq!(again, d, "{text:?}");
    }
}

fn check_config(config: &Config) {
    for (name, conf) in &config.paths {
        if !name.starts_with('~') && name != "all_others" && name != "all" {
            let found = config
                .path_conf(name)
                .unwrap_or_else(|| panic!("path {name:?} is configured but not found"));
            // An exact name wins over regexes and all_others; with duplicates the first does.
            let first = config
                .paths
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| c)
                .expect("present");
            assert_eq!(found, first, "{name:?}");
            let _ = conf;
        }
    }
    for (name, conf) in config.pulled_paths() {
        assert!(conf.source_url().is_some(), "{name:?}");
        assert!(!name.starts_with('~'));
    }
    for probe in ["cam", "a/b", "all_others", "x", "~", "cam/trackID=0"] {
        if let Some(c) = config.path_conf(probe) {
            let _ = c.source_url();
        }
    }
    assert!(!config.webrtc_srtp_profiles.is_empty());
    let _ = config.log_level.as_str();
    let _ = config.log_level.tracing_level();
}

fuzz_target!(
    init: {
        isolate_network();
    },
    |data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        match Config::from_yaml_str(&text) {
            Ok(config) => check_config(&config),
            Err(e) => {
                assert_eq!(e.line().is_some(), e.column().is_some(), "{e}");
                let _ = e.to_string();
            }
        }
        // The value parsers, on each line and each "key: value" value.
        for line in text.lines().take(64) {
            let value = line.split_once(':').map_or(line, |(_, v)| v).trim();
            for t in [line, line.trim(), value] {
                check_path_name(t);
                check_duration(t);
                let _ = parse_address(t);
            }
        }
        let _ = Duration::ZERO;
    }
);
