//! `generate_image`: the designer's brand sheet task makes the logo and the app icon,
//! stored as PNG files of the task and written to the ledger like any model call (the
//! offline drawing here; the priced Images API is in `gateway.rs`).

use crate::run_control::play_until_ended;
use crate::tools_github::world_with;
use autocrew_shared::domain::RunStatus;
use autocrew_tests::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_designer_makes_the_logo_and_icon_as_png_files_written_to_the_ledger()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world_with(&db, &[], &["publish"]).await?;

    let run = w.command().await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let artifacts = w.p.ctx.artifacts.run_artifacts(run).await?;
    for name in ["brand_sheet/logo.png", "brand_sheet/icon.png"] {
        let artifact = artifacts
            .iter()
            .find(|a| a.key.ends_with(name))
            .ok_or_else(|| anyhow::anyhow!("no {name} in {artifacts:?}"))?;
        assert_eq!(artifact.content_type, "image/png");
        let bytes = w.p.ctx.blobs.get(&artifact.key).await?;
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is a PNG");
        // IHDR: width and height, big-endian, after the signature and the chunk header.
        let size = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        assert_eq!((size(16), size(20)), (1024, 1024), "{name}");
    }
    let images: i64 = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM llm_calls WHERE run_id = $1 AND model = 'offline-draw-1' AND outcome = 'ok'",
            &[&run.0],
        )
        .await?
        .get(0);
    assert_eq!(images, 2, "each image is a ledger row");
    let summary = w.summary(run, "brand_sheet").await?;
    assert!(
        summary.contains("stored logo.png") && summary.contains("stored icon.png"),
        "{summary}"
    );
    Ok(())
}
