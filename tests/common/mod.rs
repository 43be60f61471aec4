//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built `barrage` binary.
pub fn barrage() -> Command {
    Command::new(env!("CARGO_BIN_EXE_barrage"))
}

/// Writes `yaml` to `dir/name` and returns its path.
pub fn write_scenario(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

/// Runs the binary with `args`, returning its output.
pub fn run_bin(args: &[&str]) -> Output {
    barrage().args(args).output().expect("barrage binary runs")
}

/// Reads `report.json` of an out folder.
pub fn read_report(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).expect("report.json is JSON")
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Makes sure `bin` runs, installing Debian package `package` when it does
/// not (the README's `cargo test` must work on a fresh machine).
pub fn ensure_installed(bin: &str, package: &str) {
    if Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || Command::new(bin)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return;
    }
    let ok = Command::new("sh")
        .args([
            "-c",
            &format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{bin} is missing and could not be installed (apt-get install {package})"
    );
}

/// Runs scenario `yaml` in-process, writing its report set into `out`.
pub async fn run_yaml(yaml: &str, out: &Path) -> barrage::RunOutcome {
    let mut opts = barrage::RunOptions::new(barrage::scenario::parse("test.yaml", yaml).unwrap());
    opts.out = Some(out.to_path_buf());
    barrage::run(opts).await.unwrap()
}
