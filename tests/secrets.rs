//! Every configured secret is held in one wrapper whose `Debug` shows only that it is set:
//! a config printed whole (in a log, a panic, an error) never shows a key, a rune, a password,
//! an NWC secret, a bearer token or a database password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use l402_mcp::config::Config;

const SECRET: &str = "S3CRETVALUE";

fn config(text: &str) -> Config {
    Config::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn no_configured_secret_reaches_debug_output() {
    let backends = [
        format!(
            "kind = \"lnd\"\nurl = \"https://127.0.0.1:8080\"\nmacaroon_hex = \"0201{SECRET}\""
        ),
        format!("kind = \"cln\"\nurl = \"https://127.0.0.1:3010\"\nrune = \"{SECRET}\""),
        format!("kind = \"phoenixd\"\nurl = \"http://127.0.0.1:9740\"\npassword = \"{SECRET}\""),
        format!(
            "kind = \"lnbits\"\nurl = \"https://lnbits.example\"\nadmin_key = \"{SECRET}a\"\ninvoice_key = \"{SECRET}i\""
        ),
        format!(
            "kind = \"nwc\"\nuri = \"nostr+walletconnect://abc?relay=wss://r.example&secret={SECRET}\""
        ),
        format!(
            "kind = \"blink\"\nurl = \"https://api.blink.sv/graphql\"\napi_key = \"blink_{SECRET}\""
        ),
        format!("kind = \"strike\"\nurl = \"https://api.strike.me\"\napi_key = \"{SECRET}\""),
        format!("kind = \"lnbot\"\nurl = \"https://api.ln.bot\"\napi_key = \"{SECRET}\""),
        format!("kind = \"opennode\"\nurl = \"https://api.opennode.com\"\napi_key = \"{SECRET}\""),
    ];
    for backend in backends {
        let text = format!(
            "database_url = \"postgres://agent:{SECRET}@127.0.0.1/l402\"\n\
             [http]\nbearer_token = \"{SECRET}\"\n\
             [fetch]\nproxy = \"http://user:{SECRET}@127.0.0.1:3128\"\n\
             [backend]\n{backend}\n"
        );
        let c = config(&text);
        let parsed = c.backend().unwrap();
        for shown in [
            format!("{c:?}"),
            format!("{parsed:?}"),
            format!("{parsed:#?}"),
        ] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(shown.contains("<secret>"), "{shown}");
        }
    }
}

#[test]
fn a_config_error_never_quotes_the_line_at_fault() {
    for text in [
        format!("database_url = 1{SECRET:.0}2345\n"),
        format!("[backend]\nkind = \"lnbits\"\nurl = \"https://x\"\nadmin_key = \"{SECRET}\n"),
        format!("[http]\nbearer_token = {SECRET}\n"),
        "[backend]\nkind = \"phoenixd\"\nurl = \"http://x\"\npassword = 98765432\n".to_owned(),
    ] {
        let e = Config::parse(&text)
            .and_then(|c| c.backend().map_err(|e| e.to_string()))
            .err()
            .unwrap_or_else(|| panic!("{text}: accepted"));
        assert!(
            !e.contains(SECRET) && !e.contains("12345") && !e.contains("98765432"),
            "{e}"
        );
        assert!(e.contains("line ") || e.contains("not shown"), "{e}");
    }
}
