//! A command-line face of the pure L402 module, for interop checks against other macaroon
//! libraries (`tools/interop/macaroons/run.sh`). Not part of the product: root keys are passed on
//! the command line here because these are throwaway test keys.
//!
//!   mint    --root-key HEX --payment-hash HEX --token-id HEX [--caveat C]...   -> base64 macaroon
//!   verify  --root-key HEX --macaroon B64 --preimage HEX --service S [--capability C] [--now SECS]
//!           [--method M] [--path P] (a token bound to a method or path is refused without them)
//!           -> JSON; exit 0 valid, 1 invalid, 2 usage
//!   inspect --macaroon B64 -> JSON
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::{Parser, Subcommand};
use l402_proto::{
    Identifier, Macaroon, VerifyParams, b64, macaroon::L402_LOCATION, parse_hex32, verify,
};
use serde_json::json;
use std::process::ExitCode;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Mint {
        #[arg(long, value_parser = hex32)]
        root_key: [u8; 32],
        #[arg(long, value_parser = hex32)]
        payment_hash: [u8; 32],
        #[arg(long, value_parser = hex32)]
        token_id: [u8; 32],
        #[arg(long)]
        caveat: Vec<String>,
    },
    Verify {
        #[arg(long, value_parser = hex32)]
        root_key: [u8; 32],
        #[arg(long)]
        macaroon: String,
        #[arg(long, value_parser = hex32)]
        preimage: [u8; 32],
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        capability: Option<String>,
        #[arg(long)]
        now: Option<u64>,
        /// The request's method, for tokens bound to methods.
        #[arg(long)]
        method: Option<String>,
        /// The request's path, for tokens bound to a path prefix.
        #[arg(long)]
        path: Option<String>,
    },
    Inspect {
        #[arg(long)]
        macaroon: String,
    },
}

fn hex32(s: &str) -> Result<[u8; 32], String> {
    parse_hex32(s).ok_or_else(|| "expected 64 hex characters".to_owned())
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    match args.cmd {
        Cmd::Mint {
            root_key,
            payment_hash,
            token_id,
            caveat,
        } => {
            let id = Identifier {
                payment_hash: l402_proto::PaymentHash(payment_hash),
                token_id: l402_proto::TokenId(token_id),
            };
            let mut m = Macaroon::new(&root_key, id.encode().to_vec(), L402_LOCATION);
            for c in &caveat {
                m.add_caveat(c.as_bytes());
            }
            println!("{}", b64::encode(&m.serialize()));
            ExitCode::SUCCESS
        }
        Cmd::Verify {
            root_key,
            macaroon,
            preimage,
            service,
            capability,
            now,
            method,
            path,
        } => {
            let Some(bytes) = b64::decode(&macaroon) else {
                eprintln!("--macaroon is not base64");
                return ExitCode::from(2);
            };
            let now_unix = now.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            });
            let params = VerifyParams {
                service: service.as_deref(),
                capability: capability.as_deref(),
                now_unix,
                method: method.as_deref(),
                path: path.as_deref(),
            };
            let result = verify::prepare(&bytes, &l402_proto::Preimage(preimage))
                .and_then(|p| verify::finish(&p, Some(&root_key), &params));
            let parsed = Macaroon::deserialize(&bytes).ok();
            let caveats = parsed
                .as_ref()
                .map(|m| m.caveat_strings())
                .unwrap_or_default();
            // The identifier is reported whenever it decodes, valid or not.
            let ids = parsed.and_then(|m| Identifier::decode(m.identifier()).ok());
            let (valid, reason) = match &result {
                Ok(_) => (true, None),
                Err(r) => (false, Some(format!("{}: {r}", r.code()))),
            };
            let out = json!({
                "valid": valid,
                "reason": reason,
                "caveats": caveats,
                "payment_hash": ids.map(|i| hex::encode(i.payment_hash)),
                "token_id": ids.map(|i| hex::encode(i.token_id)),
            });
            println!("{out}");
            if valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Cmd::Inspect { macaroon } => {
            let parsed = b64::decode(&macaroon)
                .ok_or_else(|| "not base64".to_owned())
                .and_then(|b| Macaroon::deserialize(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(m) => {
                    let id = Identifier::decode(m.identifier());
                    let out = json!({
                        "location": m.location(),
                        "identifier_hex": hex::encode(m.identifier()),
                        "version": id.as_ref().ok().map(|_| 0),
                        "payment_hash": id.as_ref().ok().map(|i| hex::encode(i.payment_hash)),
                        "token_id": id.as_ref().ok().map(|i| hex::encode(i.token_id)),
                        "identifier_error": id.as_ref().err().map(|e| e.to_string()),
                        "caveats": m.caveat_strings(),
                        "signature": hex::encode(m.signature()),
                    });
                    println!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot parse macaroon: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
