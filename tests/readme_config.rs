//! Every TOML block the README shows is read the way the program reads it: the config file
//! (unknown keys refused), its `[backend]` table as the backend's own config, `[http]`
//! validated, the gateway's routes built. A key the README documents that the code does not
//! take fails here.
// A failed step in a test is a failed test: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use l402_mcp::config::Config;

fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut block, line.trim_start()) {
            (None, "```toml") => block = Some((i + 2, String::new())),
            (Some(_), "```") => out.extend(block.take()),
            (Some((_, b)), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

#[test]
fn every_toml_block_in_the_readme_is_a_config_the_program_takes() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = toml_blocks(&readme);
    // The extraction itself must keep working: the README has a dozen of them today.
    assert!(blocks.len() >= 12, "{} toml blocks", blocks.len());
    let (mut backends, mut gateways, mut mcp_gateways) = (0, 0, 0);
    for (line, text) in blocks {
        let at = format!("README.md line {line}");
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{at}: {e}"));
        config
            .http
            .validate()
            .unwrap_or_else(|e| panic!("{at}: {e}"));
        if config.backend.is_some() {
            config.backend().unwrap_or_else(|e| panic!("{at}: {e}"));
            backends += 1;
        }
        if let Some(g) = &config.gateway {
            l402_mcp::gateway::routes_from(g).unwrap_or_else(|e| panic!("{at}: {e}"));
            gateways += 1;
        }
        if config.mcp_gateway.is_some() {
            mcp_gateways += 1;
        }
    }
    assert!(backends >= 9 && gateways >= 2 && mcp_gateways >= 1);
}
