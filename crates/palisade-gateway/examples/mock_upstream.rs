//! The mock OpenAI upstream as its own process, for benchmarks and manual trials:
//!
//! ```sh
//! cargo run --release -p palisade-gateway --example mock_upstream -- 127.0.0.1:18080 sk-mock-upstream
//! ```
//!
//! Arguments: the address to listen on (default `127.0.0.1:18080`) and the bearer key it
//! requires (default: any). See `palisade_gateway::mock` for what it answers.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    let key = args.next();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let state = palisade_gateway::mock::MockState::new("mock", key.as_deref());
        let listener = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                return ExitCode::from(2);
            }
        };
        eprintln!("mock OpenAI upstream listening on http://{addr}/v1");
        match axum::serve(listener, palisade_gateway::mock::router(state)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}
