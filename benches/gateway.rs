//! Requests per second and added latency through the L402 gateway (`gateway::app` served by
//! `gateway::serve_on`: the paywall in front of the reverse proxy), against the same upstream
//! called directly, on loopback, driven by `wrk` in a separate process.
//!
//! In this process: (1) a minimal upstream (axum, its own thread and current-thread runtime)
//! answering a fixed 64-byte JSON body on `/api/data` and `/free/data`; (2) the gateway in front
//! of it (its own thread; a current-thread runtime unless `--workers N`), selling `/api` for
//! 1 sat with tokens valid for unlimited uses and no expiry, and `/free` free, with two embedded
//! wallets in a temp data dir. A token is bought through the gateway (402, pay the invoice with
//! the buyer's wallet, `Authorization: L402 <b64 macaroon>:<hex preimage>`), then checked once:
//! 200 with the upstream's body with it, 402 without it.
//!
//! Then `wrk` (`-t1 -cN -dS --latency`, a Lua `done` hook printing one JSON line) runs against
//! the upstream directly, the gateway with the valid token, and the gateway's free route (the
//! proxy without verification); the targets alternate in every round (their order rotating), so
//! load on the machine hits them alike. Per run: requests/s, latency p50/p99 (wrk's), CPU time
//! this process (upstream + gateway) spent per request (`/proc/self/stat`), and how busy each
//! core was (`/proc/stat`). Medians over the rounds, and the differences to the upstream.
//!
//! Pinning is the caller's: `tools/bench/run.sh gateway` starts this under `taskset -c 0` (all
//! server threads, SQLite's worker threads included, on core 0) and this starts `wrk` under
//! `taskset -c 1` (`--wrk-cpu`).
//!
//! Before the load runs, the gateway's per-request verification is taken apart by calling its
//! steps directly on the gateway's runtime (no HTTP), `--parts` calls each.
//!
//! Usage: gateway [--rounds 5] [--duration 5] [--conns 16,1] [--wrk wrk] [--wrk-cpu 1|none]
//!                [--workers 0] [--parts 2000] [--warmup 1]
//!                [--targets upstream,gateway_token,gateway_free] [--nginx /usr/sbin/nginx]
//! With `--nginx`, nginx (one process: `master_process off`, one worker, keep-alive to the
//! upstream) proxies the same upstream as the reference, target `nginx`; its CPU per request is
//! nginx's own plus the upstream's (this process).
//! Prints a human report on stderr and JSON lines on stdout (one per wrk run, `parts`, and a
//! `summary`). Benchmarks measure; they assert nothing about time.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Instant;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use l402_mcp::app::App;
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::gateway::discovery::About;
use l402_mcp::gateway::{self, Paywall, Price, Route};
use l402_mcp::l402::{Credential, Scheme, VerifyParams, b64, verify};
use l402_mcp::mint::Access;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

const T0: u64 = 1_800_000_000;
/// What the upstream answers: 64 bytes of JSON.
const BODY: &str = r#"{"ok":true,"data":"0123456789abcdef0123456789abcdef0123456789a"}"#;
const _: () = assert!(BODY.len() == 64);
const PRICE_MSAT: u64 = 1_000;

/// wrk's `done` hook: one JSON line with the run's totals and latency percentiles (µs).
const WRK_LUA: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"mean_us":%.1f,"stdev_us":%.1f,"max_us":%.1f,' ..
    '"err_connect":%.0f,"err_read":%.0f,"err_write":%.0f,"err_status":%.0f,"err_timeout":%.0f}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.stdev, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#;

struct Opts {
    rounds: usize,
    secs: u64,
    conns: Vec<usize>,
    wrk: String,
    wrk_cpu: Option<String>,
    workers: usize,
    parts: usize,
    warmup: u64,
    targets: Vec<String>,
    nginx: Option<String>,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |name: &str, default: usize| {
        get(name)
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} wants a number, got {v:?}"))
            })
            .unwrap_or(default)
    };
    // Cores on the machine, not the ones this process may use (it is pinned to one).
    let cores = core_times().len();
    let wrk_cpu = match get("--wrk-cpu") {
        Some(v) if v == "none" => None,
        Some(v) => Some(v),
        None if cores >= 2 => Some("1".into()),
        None => None,
    };
    Opts {
        rounds: num("--rounds", 5).max(1),
        secs: num("--duration", 5).max(1) as u64,
        conns: get("--conns")
            .unwrap_or_else(|| "16,1".into())
            .split(',')
            .map(|c| {
                c.trim()
                    .parse()
                    .expect("--conns: numbers separated by commas")
            })
            .collect(),
        wrk: get("--wrk").unwrap_or_else(|| "wrk".into()),
        wrk_cpu,
        workers: num("--workers", 0),
        parts: num("--parts", 2000).max(10),
        warmup: num("--warmup", 1) as u64,
        nginx: get("--nginx"),
        targets: get("--targets")
            .unwrap_or_else(|| "upstream,gateway_token,gateway_free,nginx".into())
            .split(',')
            .map(|t| t.trim().to_owned())
            .collect(),
    }
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let mut b = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    b.enable_all().build().expect("runtime")
}

/// A listener on a free loopback port, and its address.
async fn bind_loopback() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

async fn listen(app: Router) -> SocketAddr {
    let (listener, addr) = bind_loopback().await;
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

/// The upstream: a fixed body on `/api/data` and `/free/data`, until `stop`.
fn upstream_thread(ready: mpsc::Sender<SocketAddr>, stop: oneshot::Receiver<()>) {
    runtime(0).block_on(async move {
        let data = || async { ([(header::CONTENT_TYPE, "application/json")], BODY) };
        let app = Router::new()
            .route("/api/data", get(data))
            .route("/free/data", get(data));
        let _ = ready.send(listen(app).await);
        let _ = stop.await;
    });
}

struct Ready {
    addr: SocketAddr,
    auth: String,
    parts: Value,
}

/// Latencies in µs.
struct Lat(Vec<f64>);

impl Lat {
    fn pct(&self, p: f64) -> f64 {
        let mut s = self.0.clone();
        s.sort_by(f64::total_cmp);
        s[((s.len() as f64 - 1.0) * p).round() as usize]
    }
    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len() as f64
    }
    fn json(&self) -> Value {
        let r = |v: f64| (v * 10.0).round() / 10.0;
        json!({"p50_us": r(self.pct(0.5)), "p99_us": r(self.pct(0.99)), "mean_us": r(self.mean()), "n": self.0.len()})
    }
}

/// Call `f` `n` times after `n / 10` warm-up calls; the latencies.
async fn time_calls(n: usize, mut f: impl AsyncFnMut()) -> Lat {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        f().await;
        if i >= n / 10 {
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Lat(lat)
}

/// The gateway in front of `upstream`: set up, buy a token, check it, take verification apart,
/// report `Ready`, then serve until `stop`.
fn gateway_thread(
    dir: PathBuf,
    upstream: SocketAddr,
    workers: usize,
    parts_n: usize,
    ready: mpsc::Sender<Ready>,
    stop: oneshot::Receiver<()>,
) {
    runtime(workers).block_on(async move {
        l402_mcp::init_tls();
        let clock: SharedClock = ManualClock::new(T0);
        let buyer = App::open_embedded(&dir, "buyer", clock.clone())
            .await
            .expect("buyer wallet");
        let seller = App::open_embedded(&dir, "seller", clock.clone())
            .await
            .expect("seller wallet");
        let api = Route::new("/api", Price::Fixed { msat: PRICE_MSAT });
        assert!(api.max_uses.is_none() && api.valid_for_secs.is_none());
        let service = api.service.clone();
        let routes = vec![api, Route::new("/free", Price::Free)];
        let paywall = Paywall::new(seller.seller.clone(), routes);
        let about = About {
            name: "bench".into(),
            description: "gateway benchmark".into(),
            base_url: None,
            network: "regtest".into(),
        };
        let app =
            gateway::app(paywall, &format!("http://{upstream}"), about, &[]).expect("gateway app");
        let (listener, addr) = bind_loopback().await;
        tokio::spawn(gateway::serve_on(listener, app, CancellationToken::new()));

        // Buy a token through the gateway, as a client would.
        let http = reqwest::Client::new();
        let url = format!("http://{addr}/api/data");
        let r = http.get(&url).send().await.expect("GET without token");
        assert_eq!(r.status().as_u16(), 402, "unpaid request");
        let challenge: Value = r.json().await.expect("402 body");
        assert!(challenge["max_uses"].is_null() && challenge["valid_until"].is_null());
        let receipt = buyer
            .payer
            .pay(&l402_mcp::pay::PayRequest {
                invoice: challenge["invoice"].as_str().expect("invoice"),
                payee: Some(&l402_mcp::payee::Payee::of_host("127.0.0.1")),
                ..Default::default()
            })
            .await
            .expect("pay the gateway's invoice");
        let macaroon = b64::decode(challenge["macaroon"].as_str().expect("macaroon"))
            .expect("macaroon base64");
        let auth = Credential::format(Scheme::L402, &macaroon, &receipt.preimage);

        // Checked once, not timed: 200 with the upstream's body with the token (twice: it is
        // not used up), 402 without, the free route and the upstream itself answer the body.
        let body_of = |url: String, auth: Option<String>| {
            let http = http.clone();
            async move {
                let mut rb = http.get(url);
                if let Some(a) = auth {
                    rb = rb.header(header::AUTHORIZATION, a);
                }
                let r = rb.send().await.expect("GET");
                (r.status().as_u16(), r.text().await.expect("body"))
            }
        };
        for _ in 0..2 {
            assert_eq!(
                body_of(url.clone(), Some(auth.clone())).await,
                (200, BODY.to_owned()),
                "GET through the gateway with the token"
            );
        }
        assert_eq!(body_of(url.clone(), None).await.0, 402, "GET without token");
        assert_eq!(
            body_of(format!("http://{addr}/free/data"), None).await,
            (200, BODY.to_owned())
        );
        assert_eq!(
            body_of(format!("http://{upstream}/api/data"), None).await,
            (200, BODY.to_owned())
        );

        let parts = verification_parts(&seller, &auth, &service, parts_n).await;
        let _ = ready.send(Ready { addr, auth, parts });
        let _ = stop.await;
    });
}

/// What the paywall does per request with a valid token, step by step, called directly.
async fn verification_parts(seller: &App, auth: &str, service: &str, n: usize) -> Value {
    let s = &seller.seller;
    let tokens = s.tokens();
    let access = Access {
        service: Some(service),
        capability: None,
        method: Some("GET"),
        path: Some("/api/data"),
        price_msat: None,
    };
    let full = time_calls(n, async || {
        let v = s.admit(auth, access).await.expect("admit");
        assert!(v.valid, "{v:?}");
    })
    .await;
    // What the paywall calls: the same checks, without the details it would throw away.
    let verdict = time_calls(n, async || {
        let v = s.admit_verdict(auth, access).await.expect("admit_verdict");
        assert!(v.valid, "{v:?}");
    })
    .await;
    let cred = Credential::parse(auth).expect("credential");
    let prepared = verify::prepare(&cred.macaroons[0], &cred.preimage).expect("prepare");
    let key = tokens
        .root_key(&prepared.key_id)
        .await
        .expect("root key")
        .expect("known token");
    let params = VerifyParams {
        service: Some(service),
        capability: None,
        now_unix: T0,
        method: Some("GET"),
        path: Some("/api/data"),
    };
    let token_id = prepared.identifier.token_id;
    let hash = prepared.identifier.payment_hash;
    let minted = tokens
        .minted_token(&token_id)
        .await
        .expect("minted")
        .expect("minted by the gateway");

    let parse = time_calls(n, async || {
        std::hint::black_box(Credential::parse(std::hint::black_box(auth)).expect("parse"));
    })
    .await;
    let prep = time_calls(n, async || {
        std::hint::black_box(verify::prepare(&cred.macaroons[0], &cred.preimage).expect("prepare"));
    })
    .await;
    let finish = time_calls(n, async || {
        std::hint::black_box(
            verify::finish(&prepared, Some(&key.expose()[..]), &params).expect("finish"),
        );
    })
    .await;
    let root_key = time_calls(n, async || {
        tokens.root_key(&prepared.key_id).await.expect("root key");
    })
    .await;
    let minted_token = time_calls(n, async || {
        tokens.minted_token(&token_id).await.expect("minted");
    })
    .await;
    let both = time_calls(n, async || {
        tokens
            .root_key_and_terms(&prepared.key_id, &token_id)
            .await
            .expect("root key and terms");
    })
    .await;
    let record_sale = time_calls(n, async || {
        let first = tokens
            .record_sale(
                &hash,
                &token_id,
                &minted.service,
                l402_mcp::l402::Msat::from_msat(PRICE_MSAT),
                T0,
            )
            .await
            .expect("record sale");
        assert!(
            !first,
            "the sale was recorded when the token was first used"
        );
    })
    .await;
    let mark_settled = time_calls(n, async || {
        seller
            .ledger
            .mark_incoming_settled(
                &minted.wallet,
                &hash,
                Some(l402_mcp::l402::Msat::from_msat(PRICE_MSAT)),
                T0,
            )
            .await
            .expect("mark settled");
    })
    .await;
    let access_paths = root_key_access_paths(seller, &prepared.key_id, key.expose(), n).await;
    let pure = parse.pct(0.5) + prep.pct(0.5) + finish.pct(0.5);
    let sql =
        root_key.pct(0.5) + minted_token.pct(0.5) + record_sale.pct(0.5) + mark_settled.pct(0.5);
    eprintln!("gateway verification per request, called directly ({n} calls each):");
    for (label, l) in [
        ("Seller::admit (verify, count a use)", &full),
        ("Seller::admit_verdict (the paywall's)", &verdict),
        ("  Credential::parse", &parse),
        ("  verify::prepare (decode, preimage)", &prep),
        ("  root_key (SELECT)", &root_key),
        ("  verify::finish (signature, caveats)", &finish),
        ("  minted_token (SELECT)", &minted_token),
        (
            "  root_key_and_terms (what admit reads; memory once seen)",
            &both,
        ),
        ("  record_sale (INSERT, conflict: nothing)", &record_sale),
        ("  mark_incoming_settled (UPDATE, 0 rows)", &mark_settled),
    ] {
        eprintln!(
            "  {label:<46} p50 {:>8.1} µs  p99 {:>8.1} µs  mean {:>8.1} µs",
            l.pct(0.5),
            l.pct(0.99),
            l.mean()
        );
    }
    eprintln!("  p50 sums: in-memory steps {pure:.1} µs, four SQL statements {sql:.1} µs");
    json!({
        "kind": "parts",
        "calls": n,
        "verify_and_consume": full.json(),
        "admit_verdict": verdict.json(),
        "credential_parse": parse.json(),
        "prepare": prep.json(),
        "root_key_select": root_key.json(),
        "finish": finish.json(),
        "minted_token_select": minted_token.json(),
        "root_key_and_terms_select": both.json(),
        "record_sale_insert": record_sale.json(),
        "mark_incoming_settled_update": mark_settled.json(),
        "sum_p50_in_memory_us": (pure * 10.0).round() / 10.0,
        "sum_p50_sql_us": (sql * 10.0).round() / 10.0,
        "root_key_by_access_path": access_paths,
    })
}

/// The root-key lookup, the same statement by other paths to the same ledger file: what the
/// pool's ping before each acquire (sqlx's `test_before_acquire`, on by default) and the pool
/// itself cost over one connection's worker-thread round trip, and an in-memory map instead.
async fn root_key_access_paths(seller: &App, key_id: &[u8; 32], key: &[u8; 32], n: usize) -> Value {
    use sqlx::Connection;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    const Q: &str = "SELECT root_key FROM root_keys WHERE key_id = ?";
    let options = SqliteConnectOptions::new()
        .filename(seller.data_dir.join(l402_mcp::storage::LEDGER_FILE))
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(30));
    let key_hex = hex::encode(key_id);
    let pinged = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options.clone())
        .await
        .expect("pool");
    let unpinged = SqlitePoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .connect_with(options.clone())
        .await
        .expect("pool");
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("connection");
    let check = |k: Option<Vec<u8>>| assert_eq!(k.as_deref(), Some(&key[..]));
    let with_ping = time_calls(n, async || {
        check(
            sqlx::query_scalar(Q)
                .bind(&key_hex)
                .fetch_optional(&pinged)
                .await
                .expect("select"),
        );
    })
    .await;
    let no_ping = time_calls(n, async || {
        check(
            sqlx::query_scalar(Q)
                .bind(&key_hex)
                .fetch_optional(&unpinged)
                .await
                .expect("select"),
        );
    })
    .await;
    let one_conn = time_calls(n, async || {
        check(
            sqlx::query_scalar(Q)
                .bind(&key_hex)
                .fetch_optional(&mut conn)
                .await
                .expect("select"),
        );
    })
    .await;
    let map = std::sync::Mutex::new(std::collections::HashMap::from([(*key_id, *key)]));
    let cached = time_calls(n, async || {
        let k = map
            .lock()
            .expect("lock")
            .get(std::hint::black_box(key_id))
            .copied();
        assert_eq!(k.as_ref(), Some(key));
    })
    .await;
    pinged.close().await;
    unpinged.close().await;
    let _ = conn.close().await;
    eprintln!("  root key lookup by access path (same SELECT, same file):");
    for (label, l) in [
        (
            "pool as the ledger has it (ping before acquire)",
            &with_ping,
        ),
        ("pool, test_before_acquire(false)", &no_ping),
        ("one connection, no pool", &one_conn),
        ("in-memory map behind a mutex", &cached),
    ] {
        eprintln!(
            "    {label:<48} p50 {:>8.1} µs  p99 {:>8.1} µs  mean {:>8.1} µs",
            l.pct(0.5),
            l.pct(0.99),
            l.mean()
        );
    }
    json!({
        "pool_default": with_ping.json(),
        "pool_no_ping": no_ping.json(),
        "one_connection": one_conn.json(),
        "memory_map": cached.json(),
    })
}

/// utime + stime of this process (all threads, living and dead), in µs.
fn process_cpu_us() -> f64 {
    pid_cpu_us("self")
}

/// CPU time (user + system) of process `pid` ("self" for this one), in µs.
fn pid_cpu_us(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `after` starts at field 3. USER_HZ is 100 on Linux.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) * 10_000.0
}

/// Per core: (busy, total) jiffies from /proc/stat.
fn core_times() -> Vec<(u64, u64)> {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map_or_else(|| "?".into(), |v| v.trim().to_owned())
}

struct Target {
    name: &'static str,
    url: String,
    auth: Option<String>,
    /// Another process serving this target, whose CPU counts too.
    pid: Option<u32>,
}

/// nginx as a plain reverse proxy to `upstream`, on a free loopback port: its address and the
/// running process.
fn start_nginx(bin: &str, dir: &Path, upstream: SocketAddr) -> (SocketAddr, std::process::Child) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/nginx-body; proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fcgi; uwsgi_temp_path {d}/nginx-uwsgi; scgi_temp_path {d}/nginx-scgi;
  upstream up {{ server {upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}
  }}
}}
"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let mut child = Command::new(bin)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .spawn()
        .expect("start nginx");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return (addr, child);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("nginx did not start: see {d}/nginx-error.log");
}

/// One wrk run; its JSON line (None if wrk failed).
fn run_wrk(o: &Opts, lua: &Path, t: &Target, conns: usize, secs: u64) -> Option<Value> {
    let mut cmd = match &o.wrk_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu).arg(&o.wrk);
            c
        }
        None => Command::new(&o.wrk),
    };
    cmd.arg("-t1")
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("-s")
        .arg(lua);
    if let Some(a) = &t.auth {
        cmd.arg("-H").arg(format!("Authorization: {a}"));
    }
    cmd.arg(&t.url);
    let other = |pid: Option<u32>| pid.map_or(0.0, |p| pid_cpu_us(&p.to_string()));
    let (cpu0, cores0) = (process_cpu_us() + other(t.pid), core_times());
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("cannot run {}: {e}", o.wrk);
            return None;
        }
    };
    let (cpu1, cores1) = (process_cpu_us() + other(t.pid), core_times());
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(mut d) = text
        .lines()
        .find_map(|l| l.strip_prefix("WRKJSON "))
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
    else {
        eprintln!(
            "wrk gave no result ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    };
    let n = d["requests"].as_f64().unwrap_or(0.0);
    let dur = d["duration_us"].as_f64().unwrap_or(1.0) / 1e6;
    let r1 = |v: f64| (v * 10.0).round() / 10.0;
    d["kind"] = json!("run");
    d["target"] = json!(t.name);
    d["conns"] = json!(conns);
    d["rps"] = json!(r1(n / dur));
    d["server_cpu_us_per_req"] = json!(if n > 0.0 { r1((cpu1 - cpu0) / n) } else { 0.0 });
    // How busy each core was during the run (all processes, not only ours), in percent.
    d["core_busy_pct"] = json!(
        cores0
            .iter()
            .zip(&cores1)
            .map(|(a, b)| r1(100.0 * (b.0 - a.0) as f64 / (b.1 - a.1).max(1) as f64))
            .collect::<Vec<_>>()
    );
    Some(d)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn main() {
    let o = opts();
    let dir = tempfile::tempdir().expect("temp dir");

    let (up_tx, up_rx) = mpsc::channel();
    let (up_stop, up_stop_rx) = oneshot::channel();
    let up_thread = std::thread::Builder::new()
        .name("upstream".into())
        .spawn(move || upstream_thread(up_tx, up_stop_rx))
        .expect("upstream thread");
    let upstream = up_rx.recv().expect("upstream started");

    let (gw_tx, gw_rx) = mpsc::channel();
    let (gw_stop, gw_stop_rx) = oneshot::channel();
    let data_dir = dir.path().to_owned();
    let (workers, parts_n) = (o.workers, o.parts);
    let gw_thread = std::thread::Builder::new()
        .name("gateway".into())
        .spawn(move || gateway_thread(data_dir, upstream, workers, parts_n, gw_tx, gw_stop_rx))
        .expect("gateway thread");
    let Ok(ready) = gw_rx.recv() else {
        eprintln!("the gateway set-up failed (see above)");
        std::process::exit(2);
    };
    println!("{}", json!(ready.parts));

    let mut nginx = o
        .nginx
        .as_deref()
        .filter(|_| o.targets.iter().any(|t| t == "nginx"))
        .map(|bin| start_nginx(bin, dir.path(), upstream));
    let lua = dir.path().join("json.lua");
    std::fs::write(&lua, WRK_LUA).expect("write wrk script");
    let targets: Vec<Target> = [
        Target {
            name: "upstream",
            url: format!("http://{upstream}/api/data"),
            auth: None,
            pid: None,
        },
        Target {
            name: "gateway_token",
            url: format!("http://{}/api/data", ready.addr),
            auth: Some(ready.auth.clone()),
            pid: None,
        },
        Target {
            name: "gateway_free",
            url: format!("http://{}/free/data", ready.addr),
            auth: None,
            pid: None,
        },
    ]
    .into_iter()
    .chain(nginx.as_ref().map(|(addr, child)| Target {
        name: "nginx",
        url: format!("http://{addr}/free/data"),
        auth: None,
        pid: Some(child.id()),
    }))
    .filter(|t| o.targets.iter().any(|n| n == t.name))
    .collect();
    let server_cpus = allowed_cpus();
    eprintln!(
        "servers: this process, CPUs {server_cpus} ({}); wrk: {}; {} rounds x {} s per run, connections {:?}",
        if o.workers == 0 {
            "gateway and upstream each on a current-thread runtime".to_owned()
        } else {
            format!("gateway on {} worker threads", o.workers)
        },
        o.wrk_cpu
            .as_deref()
            .map_or_else(|| "not pinned".to_owned(), |c| format!("taskset -c {c}")),
        o.rounds,
        o.secs,
        o.conns
    );
    let setup = json!({
        "kind": "setup",
        "server_cpus": server_cpus,
        "wrk_cpu": o.wrk_cpu,
        "gateway_workers": o.workers,
        "rounds": o.rounds,
        "duration_s": o.secs,
        "conns": o.conns,
        "body_bytes": BODY.len(),
        "wrk_args": "-t1 -cN -dSs --latency",
    });
    println!("{setup}");

    let mut failed = false;
    if o.warmup > 0 {
        for t in &targets {
            failed |= run_wrk(&o, &lua, t, o.conns[0], o.warmup).is_none();
        }
    }
    let mut runs: Vec<Value> = Vec::new();
    for round in 0..o.rounds {
        for &conns in &o.conns {
            for k in 0..targets.len() {
                let t = &targets[(round + k) % targets.len()];
                match run_wrk(&o, &lua, t, conns, o.secs) {
                    Some(mut d) => {
                        d["round"] = json!(round + 1);
                        eprintln!(
                            "  round {} c{conns:<3} {:<14} {:>9.0} req/s  p50 {:>7.1} µs  p99 {:>7.1} µs  server CPU {:>6.1} µs/req  cores busy {}%  errors: status {} other {}",
                            round + 1,
                            t.name,
                            d["rps"].as_f64().unwrap_or(0.0),
                            d["p50_us"].as_f64().unwrap_or(0.0),
                            d["p99_us"].as_f64().unwrap_or(0.0),
                            d["server_cpu_us_per_req"].as_f64().unwrap_or(0.0),
                            d["core_busy_pct"],
                            d["err_status"],
                            ["err_connect", "err_read", "err_write", "err_timeout"]
                                .iter()
                                .map(|k| d[k].as_f64().unwrap_or(0.0))
                                .sum::<f64>(),
                        );
                        println!("{d}");
                        runs.push(d);
                    }
                    None => failed = true,
                }
            }
        }
    }

    // Medians per target and connection count, and the differences to the upstream.
    let mut summary = json!({"kind": "summary", "rounds": o.rounds, "duration_s": o.secs});
    eprintln!("medians of {} rounds:", o.rounds);
    for &conns in &o.conns {
        let mut by = serde_json::Map::new();
        for t in &targets {
            let mine: Vec<&Value> = runs
                .iter()
                .filter(|d| d["target"] == t.name && d["conns"] == conns)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let med = |k: &str| median(mine.iter().filter_map(|d| d[k].as_f64()).collect());
            let errors: f64 = mine
                .iter()
                .map(|d| {
                    [
                        "err_connect",
                        "err_read",
                        "err_write",
                        "err_status",
                        "err_timeout",
                    ]
                    .iter()
                    .map(|k| d[k].as_f64().unwrap_or(0.0))
                    .sum::<f64>()
                })
                .sum();
            let rps: Vec<f64> = mine.iter().filter_map(|d| d["rps"].as_f64()).collect();
            by.insert(
                t.name.into(),
                json!({
                    "rps": med("rps"),
                    "rps_min": rps.iter().copied().fold(f64::INFINITY, f64::min),
                    "rps_max": rps.iter().copied().fold(0.0, f64::max),
                    "p50_us": med("p50_us"),
                    "p99_us": med("p99_us"),
                    "mean_us": med("mean_us"),
                    "server_cpu_us_per_req": med("server_cpu_us_per_req"),
                    "errors": errors,
                    "runs": mine.len(),
                }),
            );
        }
        let r1 = |v: f64| (v * 10.0).round() / 10.0;
        let up = by.get("upstream").cloned();
        for name in ["gateway_token", "gateway_free", "nginx"] {
            let (Some(up), Some(g)) = (&up, by.get_mut(name)) else {
                continue;
            };
            let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            g["added_p50_us"] = json!(r1(f(g, "p50_us") - f(up, "p50_us")));
            g["added_p99_us"] = json!(r1(f(g, "p99_us") - f(up, "p99_us")));
            g["added_cpu_us_per_req"] = json!(r1(
                f(g, "server_cpu_us_per_req") - f(up, "server_cpu_us_per_req")
            ));
            g["rps_ratio"] = json!((f(g, "rps") / f(up, "rps") * 1000.0).round() / 1000.0);
        }
        for t in &targets {
            let Some(d) = by.get(t.name) else { continue };
            let added = if d.get("added_p50_us").is_none() {
                String::new()
            } else {
                format!(
                    "  added p50 {:+.1} µs, p99 {:+.1} µs, CPU {:+.1} µs/req, rps x{}",
                    d["added_p50_us"].as_f64().unwrap_or(0.0),
                    d["added_p99_us"].as_f64().unwrap_or(0.0),
                    d["added_cpu_us_per_req"].as_f64().unwrap_or(0.0),
                    d["rps_ratio"]
                )
            };
            eprintln!(
                "  c{conns:<3} {:<14} {:>9.0} req/s  p50 {:>7.1} µs  p99 {:>7.1} µs  CPU {:>6.1} µs/req{added}",
                t.name,
                d["rps"].as_f64().unwrap_or(0.0),
                d["p50_us"].as_f64().unwrap_or(0.0),
                d["p99_us"].as_f64().unwrap_or(0.0),
                d["server_cpu_us_per_req"].as_f64().unwrap_or(0.0),
            );
        }
        summary[format!("c{conns}")] = Value::Object(by);
    }
    println!("{summary}");

    if let Some((_, child)) = nginx.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = gw_stop.send(());
    let _ = up_stop.send(());
    let _ = gw_thread.join();
    let _ = up_thread.join();
    drop(dir);
    if failed {
        std::process::exit(1);
    }
}
