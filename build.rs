// A new migration file must rebuild the crate: `sqlx::migrate!` embeds the folder at compile time.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    link_for_a_small_resident_set();
}

/// How the `l402-mcp` executable is laid out, for the server's resident memory (BENCHMARKS.md
/// section 2). Only the layout changes, not what the code does:
/// - `pack-relative-relocs`: the ~31k relative relocations of this position-independent
///   executable are stored as DT_RELR (a few KiB) instead of a 0.7 MiB `.rela.dyn` table that the
///   dynamic loader reads in full at every start. glibc >= 2.36 loads it; the linker records that
///   as a version requirement, so an older glibc refuses to start the binary instead of misloading it.
/// - `keep-text-section-prefix`: the functions LLVM marks cold (`.text.unlikely.*`: `#[cold]`
///   paths) are gathered apart from the rest.
fn link_for_a_small_resident_set() {
    // Where rustc links with its own lld by default (Rust >= 1.90).
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!("cargo:rustc-link-arg-bins=-Wl,-z,keep-text-section-prefix");
}
