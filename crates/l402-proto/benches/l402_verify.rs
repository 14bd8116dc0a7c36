//! L402 credential verification, from the `Authorization` value to a verdict, with the root key
//! in hand: `Credential::parse` + `verify::prepare` + `verify::finish`.
//!
//! Two modes (a plain `main`, criterion only in the second):
//! - `--token`: print the benchmark token as `<header> <root key hex> <now>` on one line; the
//!   peers in `tools/bench/verify/` verify the very same token.
//! - `--rate HEADER ROOT_KEY_HEX NOW SECS ROUNDS`: verify in a loop for `ROUNDS` rounds of `SECS`
//!   seconds of CPU time and print one JSON line (`impl`, `rates`, `median`, `best`, `wall_rates`),
//!   the protocol every peer program follows. Rates are per second of CPU time the process was
//!   given, so a machine shared with other work still measures the work itself; `wall_rates`
//!   are per elapsed second. `tools/bench/run.sh` runs them side by side under `taskset -c 0`.
//! - anything else (what `cargo bench` passes): criterion groups for each step.
//!
//! Benchmarks measure; they assert nothing about time.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use l402_proto::macaroon::{L402_LOCATION, Macaroon};
use l402_proto::verify::{self, VerifyParams};
use l402_proto::{Credential, Identifier, Scheme, sha256};

/// Same inputs as `tools/interop/macaroons/run.sh`.
const ROOT_KEY: &str = "5b1f0d1c9a3e7f2468ace0135724bdf86e4a2c1b0f9d8e7c6b5a493827160514";
const TOKEN_ID: &str = "d4c3b2a1f0e9d8c7b6a5948372615049382716a5b4c3d2e1f0a9b8c7d6e5f4a3";
const PREIMAGE: &str = "2ca931a1c36b48f54948b898a271a53ed91ff7d0081939a5fa511249e81cba5c";
/// 2100-01-01: the token stays valid, so every run verifies the same bytes.
const VALID_UNTIL: u64 = 4_102_444_800;
/// The `now` every implementation checks `valid_until` against.
const NOW: u64 = 1_800_000_000;

fn hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).expect("hex");
    out
}

/// `L402 <base64 macaroon>:<hex preimage>` with three caveats, as `Seller` mints them.
fn token() -> String {
    let preimage = hex32(PREIMAGE);
    let id = Identifier {
        payment_hash: l402_proto::PaymentHash(sha256(&preimage)),
        token_id: l402_proto::TokenId(hex32(TOKEN_ID)),
    };
    let mut m = Macaroon::new(&hex32(ROOT_KEY), id.encode().to_vec(), L402_LOCATION);
    m.add_caveat(b"services=demo:0");
    m.add_caveat(b"demo_capabilities=read");
    m.add_caveat(format!("demo_valid_until={VALID_UNTIL}").as_bytes());
    Credential::format(
        Scheme::L402,
        &m.serialize(),
        &l402_proto::Preimage(preimage),
    )
}

fn params(now: u64) -> VerifyParams<'static> {
    VerifyParams {
        service: Some("demo"),
        capability: Some("read"),
        now_unix: now,
        ..VerifyParams::default()
    }
}

/// One verification, start to end. Returns whether it was accepted.
#[inline(never)]
fn verify_header(header: &str, root_key: &[u8], now: u64) -> bool {
    let Ok(c) = Credential::parse(header) else {
        return false;
    };
    let Some(mac) = c.macaroons.first() else {
        return false;
    };
    let Ok(p) = verify::prepare(mac, &c.preimage) else {
        return false;
    };
    verify::finish(&p, Some(root_key), &params(now)).is_ok()
}

fn rate(args: &[String]) {
    let [header, key, now, secs, rounds] = args else {
        eprintln!("usage: --rate HEADER ROOT_KEY_HEX NOW SECS ROUNDS");
        std::process::exit(2);
    };
    let key = hex::decode(key).expect("root key hex");
    let now: u64 = now.parse().expect("now");
    let secs: f64 = secs.parse().expect("secs");
    let rounds: usize = rounds.parse().expect("rounds");
    assert!(
        verify_header(header, &key, now),
        "the token does not verify"
    );
    let mut rates = Vec::with_capacity(rounds);
    let mut wall = Vec::with_capacity(rounds);
    // A short warm-up, then the measured rounds.
    for round in 0..=rounds {
        let budget = Duration::from_secs_f64(if round == 0 { 0.2 } else { secs });
        let start = Instant::now();
        let cpu0 = cpu_time();
        let mut n: u64 = 0;
        let mut ok: u64 = 0;
        loop {
            for _ in 0..1024 {
                ok += u64::from(verify_header(black_box(header), black_box(&key), now));
            }
            n += 1024;
            if cpu_time() - cpu0 >= budget {
                break;
            }
        }
        assert_eq!(ok, n, "every verification must succeed");
        if round > 0 {
            rates.push(n as f64 / (cpu_time() - cpu0).as_secs_f64());
            wall.push(n as f64 / start.elapsed().as_secs_f64());
        }
    }
    print_rates("rust l402-mcp", &rates, &wall);
}

/// CPU time this (single-threaded) process has run, from /proc/self/schedstat (nanoseconds).
/// Read into a stack buffer, so the measurement allocates nothing between verifications.
fn cpu_time() -> Duration {
    use std::io::Read;
    let mut buf = [0u8; 128];
    let n = std::fs::File::open("/proc/self/schedstat")
        .and_then(|mut f| f.read(&mut buf))
        .expect("/proc/self/schedstat");
    let ns: u64 = std::str::from_utf8(&buf[..n])
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat run time");
    Duration::from_nanos(ns)
}

fn print_rates(name: &str, rates: &[f64], wall: &[f64]) {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let best = sorted[sorted.len() - 1];
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{{\"impl\":\"{name}\",\"rates\":[{}],\"median\":{median:.0},\"best\":{best:.0},\"wall_rates\":[{}]}}",
        list(rates),
        list(wall)
    );
}

fn criterion_benches() {
    let header = token();
    let key = hex32(ROOT_KEY);
    let c = Credential::parse(&header).expect("parse");
    let prepared = verify::prepare(&c.macaroons[0], &c.preimage).expect("prepare");
    let mut crit = Criterion::default().configure_from_args();
    let mut g = crit.benchmark_group("l402_verify");
    g.bench_function("full (parse + prepare + finish)", |b| {
        b.iter(|| verify_header(black_box(&header), black_box(&key), NOW))
    });
    g.bench_function("Credential::parse", |b| {
        b.iter(|| Credential::parse(black_box(&header)))
    });
    g.bench_function("Macaroon::deserialize", |b| {
        b.iter(|| Macaroon::deserialize(black_box(&c.macaroons[0])))
    });
    g.bench_function("verify::prepare", |b| {
        b.iter(|| verify::prepare(black_box(&c.macaroons[0]), black_box(&c.preimage)))
    });
    g.bench_function("verify::finish", |b| {
        b.iter(|| verify::finish(black_box(&prepared), Some(&key), &params(NOW)))
    });
    g.bench_function("Macaroon::verify_signature", |b| {
        b.iter(|| prepared.macaroon.verify_signature(black_box(&key)))
    });
    g.finish();
    crit.final_summary();
}

fn main() {
    // `cargo bench -- ARGS` appends `--bench`: not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("--token") => println!("{} {ROOT_KEY} {NOW}", token()),
        Some("--rate") => rate(&args[1..]),
        _ => criterion_benches(),
    }
}
