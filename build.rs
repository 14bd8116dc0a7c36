// A new migration file must rebuild the crate: `sqlx::migrate!` embeds the folder at compile time.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    link_for_a_small_resident_set();
}

/// How the `l402-mcp` executable is laid out, for the server's resident memory (BENCHMARKS.md
/// section 2). Only the layout changes, not what the code does:
/// - `--symbol-ordering-file`: the functions start-up runs (tools/startup-order/symbols.txt, from
///   `tools/startup-order/generate.py`) are placed first and together. They are ~2.3 MiB of the
///   20 MiB of code, but spread over all of it; the kernel maps code in 64 KiB windows (or whole
///   large folios) around every page touched, so spread out they kept ~11 MiB of code resident.
///   Names the list has and the binary lacks (another toolchain, other dependency versions) are
///   skipped without a warning: the code then sits where it would without the list.
/// - `pack-relative-relocs`: the ~31k relative relocations of this position-independent
///   executable are stored as DT_RELR (a few KiB) instead of a 0.7 MiB `.rela.dyn` table that the
///   dynamic loader reads in full at every start. glibc >= 2.36 loads it (the linker records
///   that as a version requirement): used only where the build host's glibc is that new.
/// - None of it with `L402_MCP_PLAIN_LINK` set, on other targets, in cross builds, or before
///   Rust 1.90 (GNU ld knows no ordering file).
/// - `keep-text-section-prefix`: the functions LLVM marks cold (`.text.unlikely.*`: `#[cold]`
///   paths) are gathered apart from the rest.
fn link_for_a_small_resident_set() {
    let order = "tools/startup-order/symbols.txt";
    println!("cargo:rerun-if-changed={order}");
    // An escape hatch for toolchains set up otherwise (another linker in RUSTFLAGS, say).
    println!("cargo:rerun-if-env-changed=L402_MCP_PLAIN_LINK");
    if std::env::var_os("L402_MCP_PLAIN_LINK").is_some() {
        return;
    }
    // Where rustc links with its own lld by default (Rust >= 1.90); GNU ld knows no ordering
    // file. Native builds only: the glibc checked below is the one the binary will run on.
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu"
        || std::env::var("HOST").as_deref() != Ok(target.as_str())
        || !rustc_links_with_lld()
    {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let order = std::path::Path::new(&dir).join(order);
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    // A binary with DT_RELR does not start on an older glibc: only where this one loads it
    // (Debian 12 has 2.36; Ubuntu 22.04 has 2.35 and keeps the plain table).
    if glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,keep-text-section-prefix");
}

/// `(major, minor)` of a `x.y` version at the start of `text`.
fn major_minor(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Rust 1.90 and later link x86_64 Linux binaries with the lld they ship.
fn rustc_links_with_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.91.0 (f8297e351 2025-10-28)"
    text.split_whitespace()
        .nth(1)
        .and_then(major_minor)
        .is_some_and(|v| v >= (1, 90))
}

/// The build host's glibc, as `getconf GNU_LIBC_VERSION` gives it ("glibc 2.36").
fn glibc_version() -> Option<(u32, u32)> {
    let out = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    major_minor(text.split_whitespace().nth(1)?)
}
