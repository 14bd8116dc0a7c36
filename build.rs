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
///   dynamic loader reads in full at every start. glibc >= 2.36 loads it; the linker records that
///   as a version requirement, so an older glibc refuses to start the binary instead of misloading it.
/// - `keep-text-section-prefix`: the functions LLVM marks cold (`.text.unlikely.*`: `#[cold]`
///   paths) are gathered apart from the rest.
fn link_for_a_small_resident_set() {
    let order = "tools/startup-order/symbols.txt";
    println!("cargo:rerun-if-changed={order}");
    // Where rustc links with its own lld by default (Rust >= 1.90); GNU ld knows no ordering file.
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
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
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!("cargo:rustc-link-arg-bins=-Wl,-z,keep-text-section-prefix");
}
