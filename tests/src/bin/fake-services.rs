//! `fake-services [--port N]`: local fakes of GitHub, Vercel, Resend and X that keep state
//! (see `autocrew_tests::fakes`), for the demo: point `GITHUB_API_URL` at `{url}/github`,
//! `VERCEL_API_URL` at `{url}/vercel`,
//! `RESEND_API_URL` at `{url}/resend` and `X_API_URL` at `{url}/x`; `GET {url}/_state`
//! shows what they hold. Prints its URL on the first line of standard output.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port = match args.iter().position(|a| a == "--port") {
        Some(i) => args
            .get(i + 1)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("--port needs a port number"))?,
        None => 0,
    };
    let (_fake, url) = autocrew_tests::fakes::start_on(port).await?;
    println!("{url}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
