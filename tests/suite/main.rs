//! The integration tests that share one test binary (one link instead of
//! one per file). Tests that measure this process or the whole machine
//! (peak RSS, children's RSS, a capacity search, timing of load shapes at
//! scale) keep their own binaries beside this folder, so nothing from
//! another module runs beside them.

#[path = "../common/mod.rs"]
mod common;

mod cli_exit_codes;
mod compare_merge;
mod completions;
mod dashboard_layout;
mod echo_run;
mod env_everywhere;
mod faults;
mod flows;
mod hostile_clients;
mod k8s_manifests;
mod one_run_data;
mod properties;
mod protocol;
mod push;
mod report_files;
mod report_html;
mod secrets;
mod server_modes;
mod shards;
mod summary;
mod thresholds_schema;
mod tls_pinning;
mod tui_tmux;
mod validation;
mod verbose;
