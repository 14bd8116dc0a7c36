//! Many callers paying through one `Payer`, the loop both payment benches share
//! (`pay_concurrent` on SQLite, `pay_fleet` on PostgreSQL). Included by path from those two
//! only, so the other benches do not carry it unused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use l402_mcp::app::App;
use l402_mcp::pay::{PayError, PayRequest};

#[derive(Default, Debug)]
pub struct Outcome {
    pub paid: usize,
    pub refused: usize,
    pub other: usize,
    pub secs: f64,
    /// CPU seconds the whole process used meanwhile (user, system): below `secs` x cores
    /// means the callers were waiting (on the database's locks, its commits).
    pub cpu_user: f64,
    pub cpu_sys: f64,
}

/// User and system CPU seconds of this process so far, from /proc/self/stat (clock ticks).
pub fn cpu_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command name: state is field 3, utime 14, stime 15 (1-based) -> index 11, 12.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    (tick(11), tick(12))
}

/// `callers` tasks pay `invoices` between them, each taking the next unpaid one, through
/// `Payer::pay` (the path `fetch_paid` and `pay_invoice` take): budget refusals are counted,
/// any other error is counted (and the first one printed).
pub async fn pay_all(buyer: &App, invoices: Arc<Vec<String>>, callers: usize) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = cpu_secs();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let payer = buyer.payer.clone();
        let invoices = invoices.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut o = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(inv) = invoices.get(i) else { break };
                let req = PayRequest {
                    invoice: inv,
                    payee: Some(&l402_mcp::payee::Payee::of_host("bench.example")),
                    ..PayRequest::default()
                };
                match payer.pay(&req).await {
                    Ok(_) => o.paid += 1,
                    Err(PayError::Budget(_)) => o.refused += 1,
                    Err(e) => {
                        if o.other == 0 {
                            eprintln!("payment error: {e}");
                        }
                        o.other += 1
                    }
                }
            }
            o
        }));
    }
    let mut total = Outcome::default();
    for t in tasks {
        let o = t.await.expect("task");
        total.paid += o.paid;
        total.refused += o.refused;
        total.other += o.other;
    }
    total.secs = start.elapsed().as_secs_f64();
    let cpu1 = cpu_secs();
    total.cpu_user = cpu1.0 - cpu0.0;
    total.cpu_sys = cpu1.1 - cpu0.1;
    total
}
