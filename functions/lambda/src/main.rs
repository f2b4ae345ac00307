//! Lambda's `bootstrap` for every function of the stack. Each function of `template.yaml`
//! names itself in its `Handler` (`api-signup`, `step-developer`, `ws-default`,
//! `schedule-sweep`); the custom runtime gives it to the process as `_HANDLER`, and this
//! serves that function exactly as its own binary (`functions/*/src/bin/`) would.
//!
//! Why one binary: each function's binary, built for release, compiles its crate's request
//! path again (about 35 s of CPU each, measured on two cores), so ninety of them took half
//! an hour; one binary takes the time of one, and every function's package is the same
//! file.

use autocrew_steps::Step;
use autocrew_ws::WsRoute;

fn main() -> Result<(), lambda_runtime::Error> {
    let handler = std::env::var("_HANDLER").unwrap_or_default();
    let function = handler.trim();
    // The API functions serve one request at a time on one thread, as their binaries do.
    if let Some(route) = autocrew_api::Route::from_name(function) {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(autocrew_api::run_lambda(route));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    if let Some(step) = Step::from_name(function) {
        return runtime.block_on(autocrew_steps::run_lambda(step));
    }
    if let Some(route) = WsRoute::from_name(function) {
        return runtime.block_on(autocrew_ws::run_lambda(route));
    }
    match function {
        autocrew_sweep::FUNCTION_NAME => runtime.block_on(autocrew_sweep::run_lambda()),
        autocrew_sweep::fire::FUNCTION_NAME => {
            runtime.block_on(autocrew_sweep::fire::run_lambda())
        }
        other => Err(format!(
            "no function is named {other:?}: its Handler in template.yaml must be its name (api-signup, step-plan, ws-connect, schedule-sweep, ...)"
        )
        .into()),
    }
}
