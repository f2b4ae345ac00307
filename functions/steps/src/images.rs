//! `generate_image`: the designer's logo and app icon. The image is made through the
//! gateway (priced from the model table, reserved against the run's and the user's
//! budgets, written to the ledger), stored as a PNG file of the task, and counted against
//! the user's per-minute limit for the tool. A call that already made its image (its key
//! claimed and completed) gets the stored answer: a retried turn makes no second image.

use crate::StepContext;
use crate::acting::{self, ToolAnswer};
use crate::agent_loop::LoopError;
use crate::callback::{put_artifact, record_artifacts, retry};
use autocrew_shared::crew::tools;
use autocrew_shared::crew::tools::GenerateImage;
use autocrew_shared::domain::records::{Attribution, Run, Task};
use autocrew_shared::ports::{Claim, ImageRequest};
use autocrew_shared::services::GatewayError;

/// The quality asked for: a logo or an icon needs no more.
const QUALITY: &str = "medium";

pub(crate) async fn generate(
    ctx: &StepContext,
    (run, task, who): (&Run, &Task, Attribution),
    (image, once): (&GenerateImage, &str),
    artifacts: &mut Vec<String>,
) -> Result<ToolAnswer, LoopError> {
    let path = image.path.as_str();
    if !tools::safe_path(path) || !path.ends_with(".png") {
        return Ok(Err(format!(
            "path {path:?} must be relative, stay inside the task's folder and end in .png"
        )));
    }
    if let Claim::Done(made) = ctx
        .idempotency
        .claim(tools::IDEMPOTENCY_SCOPE, once)
        .await
        .map_err(retry)?
    {
        if let Some(key) = made["object_key"].as_str()
            && !artifacts.iter().any(|a| a == key)
        {
            artifacts.push(key.to_owned());
        }
        return Ok(Ok(made["said"]
            .as_str()
            .unwrap_or("made before")
            .to_owned()));
    }
    if let Some(refused) = acting::past_limit(ctx, run, tools::GENERATE_IMAGE).await? {
        return Ok(Err(refused));
    }
    let request = ImageRequest {
        prompt: image.prompt.clone(),
        size: image.size.clone().unwrap_or_else(|| "1024x1024".into()),
        quality: QUALITY.to_owned(),
        transparent: image.transparent,
    };
    let image = match ctx.gateway.image(who, &request).await {
        Ok(Ok(image)) => image,
        Ok(Err(e)) if e.is_retryable() => {
            return Err(LoopError::Model {
                error: e.to_string(),
                retryable: true,
                replannable: true,
            });
        }
        Ok(Err(e)) => return Ok(Err(format!("no image was made: {e}"))),
        Err(GatewayError::Store(e)) => return Err(LoopError::Infrastructure(retry(e))),
        Err(e) => return Ok(Err(format!("no image was made: {e}"))),
    };
    let key = format!(
        "projects/{}/runs/{}/{}/{}",
        run.project_id, run.id, task.key, path
    );
    let bytes = image.png.len();
    let file = (key.as_str(), image.png, "image/png");
    let put = put_artifact(ctx, run, Some((task.id, task.key.as_str())), file, once).await?;
    record_artifacts(ctx, vec![put]).await?;
    if !artifacts.contains(&key) {
        artifacts.push(key.clone());
    }
    let said = format!(
        "stored {path} ({bytes} bytes, a PNG by {}/{}, cost {})",
        image.provider, image.model, image.cost
    );
    ctx.idempotency
        .complete(
            tools::IDEMPOTENCY_SCOPE,
            once,
            &serde_json::to_value(crate::acting::Imaged {
                said: said.clone(),
                object_key: key.clone(),
                cost_micro_usd: image.cost.0,
            })
            .unwrap_or_default(),
        )
        .await
        .map_err(retry)?;
    Ok(Ok(said))
}
