//! A pipeline declared in `pipelines/clicks.kpipe` instead of a `pipeline!` call: `build.rs`
//! compiles it with kpipe-codegen, and `include_pipeline!` brings the generated code in.
//!
//! `cargo run -p kpipe-example-build-rs` runs 10,000 generated page views on the local
//! engine into `./kpipe-data/acme-shop-analytics/`; with arguments it is the pipeline's
//! command line (`-- --help` lists the stages, `-- synth` prints the template).

use serde::{Deserialize, Serialize};
use std::process::ExitCode;

/// One page view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Click {
    /// The browser session.
    pub session: String,
    /// The page's path.
    pub page: String,
    /// ISO country code of the visitor.
    pub country: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

kpipe_runtime::include_pipeline!("clicks");

/// The `n`-th sample page view (deterministic).
fn sample_click(n: u64) -> Click {
    const COUNTRIES: [&str; 4] = ["de", "fr", "nl", "pl"];
    const PAGES: [&str; 5] = ["/", "/search", "/product/42", "/cart", "/checkout"];
    Click {
        session: format!("session-{}", n / 7),
        page: PAGES[(n % 5) as usize].to_owned(),
        country: COUNTRIES[(n / 7 % 4) as usize].to_owned(),
        at_ms: 1_767_225_600_000 + n * 100,
    }
}

fn main() -> ExitCode {
    let app = kpipe_runtime::cli::App::<Clicks>::new().generator(Clicks::clicks(), sample_click);
    if std::env::args_os().len() > 1 {
        app.main()
    } else {
        app.main_from(["clicks", "run", "--generate", "10000"])
    }
}
