//! MCP over stdio, one client for every server: spawn to the `initialize` reply, idle RSS after
//! `tools/list`, and tool round trips (p50/p99). The client is plain newline-delimited JSON-RPC
//! on blocking pipes, so it adds the same (small) cost to every server it drives.
//!
//! Usage (what `tools/bench/run.sh` passes; `cargo bench --bench mcp_stdio` uses the defaults):
//!   mcp_stdio [--ours PATH] [--everything PATH_TO_dist/index.js] [--calls N] [--spawns N]
//! Defaults: the `l402-mcp` binary cargo built for this bench (release settings), and
//! server-everything under
//! `${L402_PEERS_CACHE:-$HOME/.cache/l402-peers}/server-everything` (skipped when absent).
//! Prints a human table on stderr and one JSON line per server on stdout.
//!
//! Benchmarks measure; they assert nothing about time.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    line: String,
}

impl Server {
    fn spawn(cmd: &[String], env: &[(&str, &str)]) -> Server {
        let mut c = Command::new(&cmd[0]);
        c.args(&cmd[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Server {
            child,
            stdin,
            stdout,
            next_id: 1,
            line: String::with_capacity(64 * 1024),
        }
    }

    fn send(&mut self, msg: &Value) {
        let mut bytes = serde_json::to_vec(msg).expect("json");
        bytes.push(b'\n');
        self.stdin.write_all(&bytes).expect("write to server");
        self.stdin.flush().expect("flush");
    }

    /// Send a request and wait for its response (skipping notifications and other messages).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            self.line.clear();
            let n = self.stdout.read_line(&mut self.line).expect("read");
            assert!(n > 0, "server closed stdout while we waited for {method}");
            let v: Value = match serde_json::from_str(&self.line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if v.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: JSON-RPC error {e}");
                }
                return v["result"].clone();
            }
        }
    }

    fn initialize(&mut self) -> Value {
        self.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "l402-bench", "version": "0"}
            }),
        )
    }

    fn initialized(&mut self) {
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    fn call(&mut self, tool: &str, args: &Value) -> Value {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        assert_ne!(r.get("isError"), Some(&json!(true)), "{tool} failed: {r}");
        r
    }

    /// Resident and peak memory (KiB) from /proc.
    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Lat(Vec<f64>);

impl Lat {
    fn pct(&self, p: f64) -> f64 {
        let mut s = self.0.clone();
        s.sort_by(f64::total_cmp);
        let i = ((s.len() as f64 - 1.0) * p).round() as usize;
        s[i]
    }
    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len() as f64
    }
    fn json(&self) -> Value {
        json!({"p50_ms": round3(self.pct(0.5)), "p99_ms": round3(self.pct(0.99)),
               "mean_ms": round3(self.mean()), "min_ms": round3(self.pct(0.0)), "n": self.0.len()})
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Time `calls` round trips of `tool` (after a warm-up of a tenth of them).
fn round_trips(s: &mut Server, tool: &str, args: &Value, calls: usize) -> Lat {
    for _ in 0..calls / 10 {
        s.call(tool, args);
    }
    let mut lat = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        s.call(tool, args);
        lat.push(ms(t.elapsed()));
    }
    Lat(lat)
}

/// Spawn to `initialize` reply, `spawns` times (first one separately: it may create state).
fn spawn_times(cmd: &[String], env: &[(&str, &str)], spawns: usize) -> (f64, Lat) {
    let mut first = 0.0;
    let mut lat = Vec::new();
    for i in 0..=spawns {
        let t = Instant::now();
        let mut s = Server::spawn(cmd, env);
        s.initialize();
        let took = ms(t.elapsed());
        if i == 0 {
            first = took;
        } else {
            lat.push(took);
        }
    }
    (first, Lat(lat))
}

struct Case<'a> {
    name: &'a str,
    cmd: Vec<String>,
    env: Vec<(&'a str, &'a str)>,
    /// (label, tool, arguments); arguments `None` means "a fresh invoice" (decode_invoice).
    tools: Vec<(&'a str, &'a str, Option<Value>)>,
}

fn run_case(case: &Case<'_>, calls: usize, spawns: usize) -> Value {
    let (first, spawn) = spawn_times(&case.cmd, &case.env, spawns);
    let mut s = Server::spawn(&case.cmd, &case.env);
    s.initialize();
    s.initialized();
    let tools = s.request("tools/list", json!({}));
    let n_tools = tools["tools"].as_array().map_or(0, Vec::len);
    std::thread::sleep(Duration::from_millis(500));
    let (rss, hwm) = s.rss_kib();
    let mut out = json!({
        "server": case.name,
        "spawn_to_initialize_first_ms": round3(first),
        "spawn_to_initialize": spawn.json(),
        "tools": n_tools,
        "idle_rss_kib_after_tools_list": rss,
        "peak_rss_kib_after_tools_list": hwm,
    });
    eprintln!(
        "{:<28} spawn->initialize p50 {:>8.2} ms (min {:.2}, first {:.2}); idle RSS after tools/list {:.1} MiB (peak {:.1} MiB); {} tools",
        case.name,
        spawn.pct(0.5),
        spawn.pct(0.0),
        first,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        n_tools
    );
    // The JSON-RPC floor: `ping` does no tool work, so it is the transport and dispatch alone.
    for _ in 0..calls / 10 {
        s.request("ping", json!({}));
    }
    let mut ping = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        s.request("ping", json!({}));
        ping.push(ms(t.elapsed()));
    }
    let ping = Lat(ping);
    eprintln!(
        "{:<28}   {:<16} p50 {:.3} ms  p99 {:.3} ms  mean {:.3} ms  (n={})",
        "",
        "ping",
        ping.pct(0.5),
        ping.pct(0.99),
        ping.mean(),
        calls
    );
    out["ping"] = ping.json();
    for (label, tool, args) in &case.tools {
        let args = match args {
            Some(a) => a.clone(),
            None => {
                let inv = s.call(
                    "create_invoice",
                    &json!({"amount_sats": 21, "description": "bench"}),
                );
                let bolt11 = inv["structuredContent"]["bolt11"]
                    .as_str()
                    .expect("create_invoice bolt11")
                    .to_owned();
                json!({ "bolt11": bolt11 })
            }
        };
        let lat = round_trips(&mut s, tool, &args, calls);
        eprintln!(
            "{:<28}   {:<16} p50 {:.3} ms  p99 {:.3} ms  mean {:.3} ms  (n={})",
            "",
            label,
            lat.pct(0.5),
            lat.pct(0.99),
            lat.mean(),
            calls
        );
        out[format!("call_{label}")] = lat.json();
    }
    let (rss_after, hwm_after) = s.rss_kib();
    out["rss_kib_after_calls"] = json!(rss_after);
    out["peak_rss_kib_after_calls"] = json!(hwm_after);
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    // The binary cargo builds for benches: the bench profile, which inherits release.
    let ours = opt("--ours").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_l402-mcp")),
        PathBuf::from,
    );
    let cache = std::env::var("L402_PEERS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/l402-peers")
        });
    let everything = opt("--everything").map_or_else(
        || cache.join("server-everything/node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        PathBuf::from,
    );
    let calls: usize = opt("--calls").and_then(|v| v.parse().ok()).unwrap_or(2000);
    let spawns: usize = opt("--spawns").and_then(|v| v.parse().ok()).unwrap_or(20);

    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().to_str().expect("utf-8 temp dir").to_owned();
    let mut cases = Vec::new();
    if ours.exists() {
        cases.push(Case {
            name: "l402-mcp serve",
            cmd: vec![
                ours.display().to_string(),
                "serve".into(),
                "--data-dir".into(),
                data_dir.clone(),
            ],
            env: vec![],
            tools: vec![
                ("decode_invoice", "decode_invoice", None),
                ("wallet_balance", "wallet_balance", Some(json!({}))),
            ],
        });
    } else {
        eprintln!("skipping ours: {} not found", ours.display());
    }
    if everything.exists() {
        cases.push(Case {
            name: "server-everything (node)",
            cmd: vec![
                "node".into(),
                everything.display().to_string(),
                "stdio".into(),
            ],
            env: vec![],
            tools: vec![
                ("echo", "echo", Some(json!({"message": "hello"}))),
                ("get-sum", "get-sum", Some(json!({"a": 1, "b": 2}))),
            ],
        });
    } else {
        eprintln!(
            "skipping server-everything: {} not found (tools/bench/run.sh installs it)",
            everything.display()
        );
    }
    for case in &cases {
        let v = run_case(case, calls, spawns);
        println!("{v}");
    }
}
