//! Every command line the README shows, run against the real binary in a throwaway data dir
//! with the embedded wallet, and `--help` of every subcommand: none may panic (exit code 101,
//! "panicked" on stderr). Commands are read from README.md itself (code blocks, inline code and
//! the command table), so a documented command line cannot start panicking unnoticed.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{code_spans, free_port, readme};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");
/// What the README calls the binary, in code blocks and inline code.
const PREFIXES: &[&str] = &[
    "l402-mcp ",
    "cargo run -- ",
    "target/release/l402-mcp ",
    "target/debug/l402-mcp ",
];

/// Upper-case words in README commands that are values, not placeholders.
const LITERALS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// A command line as the README shows it, and where.
#[derive(Debug, Clone)]
struct Documented {
    line: usize,
    text: String,
}

/// The arguments after the binary's name, if `s` invokes it.
fn strip_prefix(s: &str) -> Option<&str> {
    let s = s.trim();
    PREFIXES
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .map(str::trim)
}

/// Command lines in code blocks (fenced or indented, with `\` continuations), in inline code
/// anywhere, and in the first column of the command table (written without the binary's name).
fn documented_commands(text: &str) -> Vec<Documented> {
    let mut found = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut in_fence = false;
    let mut prose = String::new();
    let mut prose_lines = Vec::new();
    let mut section = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            i += 1;
            continue;
        }
        if let Some(h) = trimmed.strip_prefix("## ") {
            section = h.to_owned();
        }
        let block = in_fence || line.starts_with("    ");
        if block && strip_prefix(trimmed).is_some() {
            let start = i;
            let mut cmd = trimmed.to_owned();
            while cmd.ends_with('\\') && i + 1 < lines.len() {
                cmd.pop();
                i += 1;
                cmd.push(' ');
                cmd.push_str(lines[i].trim());
            }
            let cmd = cmd.split(" #").next().unwrap_or("").trim().to_owned();
            found.push(Documented {
                line: start + 1,
                text: strip_prefix(&cmd).unwrap_or("").to_owned(),
            });
        } else if !in_fence {
            if section == "The command line" && trimmed.starts_with("| `") {
                let first_cell = trimmed[1..].split(" | ").next().unwrap_or("");
                for span in code_spans(first_cell) {
                    found.push(Documented {
                        line: i + 1,
                        text: span,
                    });
                }
            }
            prose.push_str(line);
            prose.push('\n');
            prose_lines.push(i + 1);
        }
        i += 1;
    }
    // Inline code may wrap across lines of a paragraph.
    let mut pos = 0;
    for span in prose.split('`').enumerate().filter_map(|(n, s)| {
        let start = pos;
        pos += s.len() + 1;
        (n % 2 == 1).then_some((start, s))
    }) {
        let (offset, s) = span;
        let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(args) = strip_prefix(&joined) {
            let line = prose_lines[prose[..offset].matches('\n').count()];
            found.push(Documented {
                line,
                text: args.to_owned(),
            });
        }
    }
    found
}

/// Split like a shell would for the README's simple lines: whitespace, double and single quotes.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// The throwaway world the commands run in.
struct World {
    home: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World {
            home: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.home.path().join("data")
    }

    fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_DATA_HOME", self.home.path().join("xdg-data"))
            .env("L402_MCP_DATA_DIR", self.data_dir())
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        run_with_timeout(self.command(&args), Duration::from_secs(120))
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// A fresh invoice from another wallet of the data dir, payable by the default wallet.
    fn invoice(&self) -> String {
        let v = self.json(&["--json", "--wallet", "readme-seller", "invoice", "21"]);
        v["bolt11"].as_str().expect("bolt11").to_owned()
    }

    /// A real credential: a challenge from the default wallet, paid by another wallet.
    fn credential(&self) -> String {
        let c = self.json(&["--json", "challenge", "5", "--service", "svc"]);
        let paid = self.json(&[
            "--json",
            "--wallet",
            "readme-buyer",
            "pay",
            c["invoice"].as_str().expect("invoice"),
        ]);
        format!(
            "L402 {}:{}",
            c["macaroon"].as_str().expect("macaroon"),
            paid["preimage"].as_str().expect("preimage")
        )
    }

    /// The value to put in place of a README placeholder.
    fn value_for(&self, placeholder: &str) -> Option<String> {
        Some(match placeholder {
            "ADDR" => format!("127.0.0.1:{}", free_port()),
            "URL" => format!("http://127.0.0.1:{}", free_port()),
            "T" => "t0ken-readme".into(),
            "H" => "mcp.example.com".into(),
            "O" => "https://app.example.com".into(),
            "SATS" | "<sats>" => "21".into(),
            "N" => "3".into(),
            "M" => "GET".into(),
            "SECS" => "3600".into(),
            "P" => "/p".into(),
            "S" => "svc".into(),
            "C" => "read".into(),
            "NAME" => "readme-other".into(),
            "ID" => "0000000000000000".into(),
            "PATH" => self
                .home
                .path()
                .join("none.toml")
                .to_string_lossy()
                .into_owned(),
            "DIR" => self.data_dir().to_string_lossy().into_owned(),
            // mcp-gateway: an upstream MCP server (another wallet's `serve`), a tool's price.
            "COMMAND" => format!(
                "{BIN} --data-dir {} --wallet readme-tools serve",
                self.data_dir().display()
            ),
            "TOOL=SATS" => "decode_invoice=21".into(),
            "INTENT" => "charge".into(),
            "<bolt11>" => self.invoice(),
            "<L402 macaroon:preimage>" => self.credential(),
            _ => return None,
        })
    }

    /// The README's notation (`[--opt X]`, `A|B`, `...`, placeholders) made into real arguments.
    fn concrete(&self, doc: &Documented) -> Vec<String> {
        let mut args = Vec::new();
        for word in shell_words(&doc.text.replace("\\|", "|")) {
            let word = word.trim_start_matches('[');
            let word = word.trim_end_matches("...").trim_end_matches(']');
            if word.is_empty() {
                continue; // `...` (more options) or a lone bracket
            }
            // `in|out`: the first alternative.
            let word = word.split('|').next().unwrap_or(word);
            let placeholder = word.starts_with('<')
                || (word.chars().all(|c| c.is_ascii_uppercase() || c == '=')
                    && !LITERALS.contains(&word));
            if placeholder {
                let v = self.value_for(word).unwrap_or_else(|| {
                    panic!(
                        "README.md line {}: no test value for placeholder {word:?} in {:?}; add one to value_for",
                        doc.line, doc.text
                    )
                });
                args.push(v);
            } else {
                // Fixed loopback ports in examples (8402, 3000) may be taken on a shared machine.
                args.push(replace_loopback_ports(word));
            }
        }
        args
    }
}

fn replace_loopback_ports(word: &str) -> String {
    match word.split_once("127.0.0.1:") {
        Some((head, tail)) if tail.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
            let rest: String = tail.chars().skip_while(char::is_ascii_digit).collect();
            format!("{head}127.0.0.1:{}{rest}", free_port())
        }
        _ => word.to_owned(),
    }
}

fn run_with_timeout(mut c: Command, limit: Duration) -> Output {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn l402-mcp");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("l402-mcp did not finish within {limit:?}");
        }
    }
}

/// Commands that serve until stopped: started, given time to come up, then stopped.
fn serves_forever(args: &[String]) -> bool {
    let sub: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    matches!(
        sub.first(),
        Some(&"gateway" | &"mcp-gateway" | &"dashboard")
    ) || (sub.first() == Some(&"serve") && args.iter().any(|a| a == "--http"))
}

fn assert_no_panic(what: &str, code: Option<i32>, stderr: &str) {
    assert!(
        code != Some(101) && !stderr.contains("panicked"),
        "{what} panicked (exit {code:?}):\n{stderr}"
    );
}

/// Start a server, wait until it listens (or exits), then stop it; what it wrote to stderr.
fn run_server(world: &World, args: &[String]) -> (Option<i32>, String) {
    let mut child = world
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let port = args
        .iter()
        .filter_map(|a| a.strip_prefix("127.0.0.1:"))
        .filter_map(|p| p.parse::<u16>().ok())
        .next_back()
        // The dashboard's default address.
        .or_else(|| args.iter().any(|a| a == "dashboard").then_some(8403));
    let started = Instant::now();
    let mut exited = None;
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            break;
        }
        if port.is_some_and(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let code = match exited {
        Some(status) => status.code(),
        None => {
            // Serving: the command line was accepted. Stop it.
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    (code, stderr)
}

#[test]
fn every_command_line_in_the_readme_runs_without_panicking() {
    let text = readme();
    let documented = documented_commands(&text);
    // The extraction itself must keep working: these are in the README today.
    let texts: BTreeSet<&str> = documented.iter().map(|d| d.text.as_str()).collect();
    for expected in [
        "demo",
        "doctor",
        "budget show",
        "serve --http 127.0.0.1:8402",
        "budget set --per-payment-sats 100 --daily-sats 1000",
    ] {
        assert!(
            texts.contains(expected),
            "{expected:?} not found in {texts:#?}"
        );
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("budget set") && t.contains("--hourly-sats")),
        "the budget example with --hourly-sats is not found"
    );
    assert!(documented.len() >= 20, "{documented:#?}");

    let world = World::new();
    // The data dir and both helper wallets exist before anything refers to them.
    world.json(&["--json", "balance"]);
    let mut seen = BTreeMap::new();
    for doc in &documented {
        let args = world.concrete(doc);
        if seen.insert(args.clone(), doc.line).is_some() {
            continue;
        }
        let what = format!("README.md line {}: l402-mcp {}", doc.line, args.join(" "));
        eprintln!("{what}");
        if serves_forever(&args) {
            let (code, stderr) = run_server(&world, &args);
            assert_no_panic(&what, code, &stderr);
            // A complete example (it says where to listen) must come up and serve.
            let complete = args.iter().any(|a| a == "--http" || a == "--listen");
            assert!(
                code.is_none() || !complete,
                "{what} should serve until stopped, exited {code:?}:\n{stderr}"
            );
        } else {
            let out = run_with_timeout(world.command(&args), Duration::from_secs(120));
            assert_no_panic(
                &what,
                out.status.code(),
                &String::from_utf8_lossy(&out.stderr),
            );
        }
    }
}

/// The subcommands `l402-mcp <path> --help` lists (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line.trim_end() == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            if !line.starts_with("  ") {
                break;
            }
            if let Some(name) = line.split_whitespace().next()
                && name != "help"
            {
                out.push(name.to_owned());
            }
        }
    }
    out
}

#[test]
fn help_of_every_subcommand_runs_without_panicking() {
    let world = World::new();
    let mut queue = vec![Vec::<String>::new()];
    let mut visited = 0;
    while let Some(path) = queue.pop() {
        let mut args = path.clone();
        args.push("--help".into());
        let out = run_with_timeout(world.command(&args), Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("l402-mcp {}", args.join(" "));
        assert_no_panic(&what, out.status.code(), &stderr);
        assert!(out.status.success(), "{what}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for sub in subcommands(&stdout) {
            let mut next = path.clone();
            next.push(sub);
            queue.push(next);
        }
        visited += 1;
    }
    // serve, demo, doctor, gateway, ... and budget/wallet's own subcommands.
    assert!(visited >= 18, "only {visited} help pages found");
}

/// The issue's own example: a cap set, then removed with "none".
#[test]
fn budget_caps_are_set_and_removed() {
    let world = World::new();
    let set = world.json(&[
        "--json",
        "budget",
        "set",
        "--hourly-sats",
        "500",
        "--per-host-daily-sats",
        "5",
    ]);
    assert_eq!(set["policy"]["hourly_msat"], 500_000);
    assert_eq!(set["policy"]["per_host_daily_msat"], 5_000);
    let removed = world.json(&["--json", "budget", "set", "--hourly-sats", "NONE"]);
    assert_eq!(removed["policy"]["hourly_msat"], Value::Null);
    assert_eq!(removed["policy"]["per_host_daily_msat"], 5_000);
    let bad = world.run(&["budget", "set", "--hourly-sats", "lots"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error, not a panic");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"none\""));
}
