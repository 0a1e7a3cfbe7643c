//! `scripts/bootstrap.sh run --check` tells which prerequisites a machine has
//! and which it lacks: simulated machines with stub `rustup`, `cargo` and
//! `rustc` on a minimal PATH, an `ldconfig` that knows no libraries and a
//! fake root for the /usr/lib paths searched for libclang.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use weir_tests::repo_root;

/// The tests write stub executables and then run them; one at a time, so no
/// other test's child inherits a stub still open for writing (ETXTBSY).
static SERIAL: Mutex<()> = Mutex::new(());

/// The real tools the script needs on PATH. PATH holds only these and the
/// stubs: never the directory of the real `cargo` and `rustup`.
const TOOLS: &[&str] = &["bash", "dirname", "id", "grep", "sed", "awk"];

fn real_tool(name: &str) -> PathBuf {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} not found in /usr/bin or /bin"))
}

fn write_executable(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A simulated machine under `dir`: `rustup` lists `targets` as installed,
/// `cargo` is on PATH when `with_cargo`, `rustc` always; no libclang.
fn machine(dir: &Path, targets: &[&str], with_cargo: bool) {
    let stubs = dir.join("stubs");
    let tools = dir.join("tools");
    for d in [&stubs, &tools, &dir.join("root"), &dir.join("home")] {
        fs::create_dir_all(d).unwrap();
    }
    for tool in TOOLS {
        symlink(real_tool(tool), tools.join(tool)).unwrap();
    }
    write_executable(
        &stubs.join("rustup"),
        &format!(
            "if [ \"$1 $2 $3\" = \"target list --installed\" ]; then\n    \
             printf '%s\\n' x86_64-unknown-linux-gnu {}\nfi\n",
            targets.join(" ")
        ),
    );
    write_executable(&stubs.join("rustc"), "exit 0\n");
    if with_cargo {
        write_executable(&stubs.join("cargo"), "exit 0\n");
    }
    write_executable(&dir.join("ldconfig"), "exit 0\n");
}

/// Runs `scripts/bootstrap.sh run --check` on the machine under `dir`:
/// its exit code and its output (stdout, then stderr).
fn check(dir: &Path) -> (i32, String) {
    let out = Command::new(real_tool("bash"))
        .arg(repo_root().join("scripts/bootstrap.sh"))
        .args(["run", "--check"])
        .current_dir(repo_root())
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}",
                dir.join("stubs").display(),
                dir.join("tools").display()
            ),
        )
        .env("HOME", dir.join("home"))
        .env("WEIR_BOOTSTRAP_LDCONFIG", dir.join("ldconfig"))
        .env("WEIR_BOOTSTRAP_LLVM_GLOB_ROOT", dir.join("root"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn has_line(text: &str, pred: impl Fn(&str) -> bool) -> bool {
    text.lines().any(pred)
}

#[test]
fn check_reports_missing_target_and_libclang() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    machine(dir.path(), &[], true);
    let (code, text) = check(dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(has_line(&text, |l| l == "ok rust"), "{text}");
    assert!(
        has_line(&text, |l| l.starts_with("missing wasm32-wasip2")),
        "{text}"
    );
    assert!(
        has_line(&text, |l| l.starts_with("missing libclang")),
        "{text}"
    );
}

#[test]
fn check_passes_when_everything_is_present() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    machine(dir.path(), &["wasm32-wasip2"], true);
    let lib = dir.path().join("root/usr/lib/llvm-19/lib");
    fs::create_dir_all(&lib).unwrap();
    fs::write(lib.join("libclang-19.so.1"), "").unwrap();
    let (code, text) = check(dir.path());
    assert_eq!(code, 0, "{text}");
    for item in ["rust", "wasm32-wasip2", "libclang"] {
        assert!(has_line(&text, |l| l == format!("ok {item}")), "{text}");
    }
    assert!(!has_line(&text, |l| l.starts_with("missing")), "{text}");
}

#[test]
fn check_says_how_to_install_a_missing_rust() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    machine(dir.path(), &["wasm32-wasip2"], false);
    let (code, text) = check(dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(
        has_line(&text, |l| l.starts_with("missing rust:")
            && l.contains("rustup")),
        "{text}"
    );
}
