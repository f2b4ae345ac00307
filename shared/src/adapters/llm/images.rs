//! Images: OpenAI's `/images/generations` with `gpt-image-1` when an OpenAI key is set,
//! and an offline maker otherwise that draws a deterministic PNG (the png crate) from the
//! prompt: the same prompt gives the same bytes, a different one another badge.

use super::Patience;
use super::http::{Call, error_message, retry_after};
use crate::config::Secret;
use crate::domain::records::TokenUsage;
use crate::ports::llm::{ImageMaker, ImageRequest, LlmError};
use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The offline maker's model name, as the ledger and price table know it.
pub const OFFLINE_IMAGE_MODEL: &str = "offline-draw-1";

/// `POST /images/generations`, as the Images API takes it for GPT Image models (which
/// always answer base64; `response_format` is for DALL·E only and is not sent).
#[derive(Debug, Serialize)]
struct GenerateImage<'a> {
    model: &'a str,
    prompt: &'a str,
    n: u8,
    size: &'a str,
    quality: &'a str,
    background: &'static str,
    output_format: &'static str,
}

#[derive(Deserialize)]
struct ImagesResponse {
    data: Vec<ImageData>,
    #[serde(default)]
    usage: Option<ImageUsage>,
}

#[derive(Deserialize)]
struct ImageData {
    b64_json: Option<String>,
}

/// The tokens an image call was charged: the prompt (text and image input) and the
/// image made.
#[derive(Deserialize)]
struct ImageUsage {
    input_tokens: u32,
    output_tokens: u32,
}

/// OpenAI's Images API.
#[derive(Clone)]
pub struct OpenAiImages {
    http: reqwest::Client,
    patience: Patience,
    base_url: String,
    api_key: Secret<String>,
    model: String,
}

impl OpenAiImages {
    pub fn new(
        base_url: &str,
        api_key: Secret<String>,
        model: &str,
        patience: impl Into<Patience>,
    ) -> Result<Self, reqwest::Error> {
        let patience = patience.into();
        Ok(OpenAiImages {
            http: patience.client()?,
            patience,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            model: model.to_owned(),
        })
    }
}

#[async_trait]
impl ImageMaker for OpenAiImages {
    fn provider(&self) -> &str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn generate(&self, request: &ImageRequest) -> Result<(Vec<u8>, TokenUsage), LlmError> {
        let call = Call {
            provider: "openai",
            model: &self.model,
            patience: &self.patience,
            max_tokens: request.output_tokens(),
        };
        let body = GenerateImage {
            model: &self.model,
            prompt: &request.prompt,
            n: 1,
            size: &request.size,
            quality: &request.quality,
            background: if request.transparent {
                "transparent"
            } else {
                "opaque"
            },
            output_format: "png",
        };
        let http = self
            .http
            .post(format!("{}/images/generations", self.base_url))
            .bearer_auth(self.api_key.expose())
            .json(&body);
        let (status, headers, text) = call.send(http).await?;
        if !(200..300).contains(&status) {
            return Err(call.status_error(status, retry_after(&headers), &error_message(&text)));
        }
        let wire: ImagesResponse =
            serde_json::from_str(&text).map_err(|e| call.malformed(Box::new(e)))?;
        let encoded = wire
            .data
            .into_iter()
            .next()
            .and_then(|d| d.b64_json)
            .ok_or_else(|| call.malformed("the answer holds no b64_json image".into()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|e| call.malformed(Box::new(e)))?;
        if !bytes.starts_with(PNG_SIGNATURE) {
            return Err(call.malformed("the image is not a PNG".into()));
        }
        let usage = wire.usage.map_or(TokenUsage::default(), |u| TokenUsage {
            input: u.input_tokens,
            output: u.output_tokens,
            ..TokenUsage::default()
        });
        Ok((bytes, usage))
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Draws without a model: a badge whose colours and shape come from the prompt's hash.
#[derive(Debug, Clone, Default)]
pub struct OfflineImages;

#[async_trait]
impl ImageMaker for OfflineImages {
    fn provider(&self) -> &str {
        super::OFFLINE_PROVIDER
    }

    fn model(&self) -> &str {
        OFFLINE_IMAGE_MODEL
    }

    async fn generate(&self, request: &ImageRequest) -> Result<(Vec<u8>, TokenUsage), LlmError> {
        let bytes = draw(request).map_err(|e| LlmError::Malformed {
            provider: super::OFFLINE_PROVIDER.into(),
            model: OFFLINE_IMAGE_MODEL.into(),
            source: Box::new(e),
        })?;
        let words = request.prompt.split_whitespace().count();
        let usage = TokenUsage {
            input: u32::try_from(words).unwrap_or(u32::MAX),
            output: request.output_tokens(),
            ..TokenUsage::default()
        };
        Ok((bytes, usage))
    }
}

/// The badge for `request` as PNG bytes, at its size: a rounded square in one colour of
/// the prompt, a ring in another, and as many dots as the prompt's hash says. A
/// transparent request leaves the corners transparent.
pub fn draw(request: &ImageRequest) -> Result<Vec<u8>, png::EncodingError> {
    let (width, height) = request
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|(w, h)| (1..=4096).contains(w) && (1..=4096).contains(h))
        .unwrap_or((1024, 1024));
    let hash = Sha256::digest(request.prompt.as_bytes());
    let colour = |i: usize| [hash[i], hash[i + 1], hash[i + 2]];
    let (fill, ring, dot) = (colour(0), colour(3), colour(6));
    let background = if request.transparent {
        [0, 0, 0, 0]
    } else {
        [250, 250, 247, 255]
    };
    let dots = 3 + usize::from(hash[9] % 5);
    let side = f64::from(width.min(height));
    let (cx, cy) = (f64::from(width) / 2.0, f64::from(height) / 2.0);
    let half = side * 0.42;
    let corner = side * 0.12;
    let mut pixels = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            let (dx, dy) = (f64::from(x) + 0.5 - cx, f64::from(y) + 0.5 - cy);
            let r = (dx * dx + dy * dy).sqrt();
            // Distance outside the rounded square (negative inside).
            let (qx, qy) = (dx.abs() - (half - corner), dy.abs() - (half - corner));
            let outside = qx.max(0.0).hypot(qy.max(0.0)) + qx.max(qy).min(0.0) - corner;
            let pixel = if outside > 0.0 {
                background
            } else if (r - side * 0.27).abs() < side * 0.035 {
                [ring[0], ring[1], ring[2], 255]
            } else if on_dot(dx, dy, side, dots) {
                [dot[0], dot[1], dot[2], 255]
            } else {
                [fill[0], fill[1], fill[2], 255]
            };
            pixels.extend_from_slice(&pixel);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

/// Whether a point lies on one of `dots` dots evenly spaced on a circle inside the ring.
fn on_dot(dx: f64, dy: f64, side: f64, dots: usize) -> bool {
    (0..dots).any(|i| {
        let angle = std::f64::consts::TAU * i as f64 / dots as f64;
        let (px, py) = (angle.cos() * side * 0.15, angle.sin() * side * 0.15);
        (dx - px).hypot(dy - py) < side * 0.045
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prompt: &str) -> ImageRequest {
        ImageRequest {
            prompt: prompt.into(),
            size: "1024x1024".into(),
            quality: "medium".into(),
            transparent: true,
        }
    }

    #[test]
    fn the_offline_drawing_is_a_png_of_the_size_asked_and_the_same_for_the_same_prompt() {
        let logo = draw(&request("A keto recipe app logo")).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(logo.clone()));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (1024, 1024));
        assert_eq!(info.color_type, png::ColorType::Rgba);
        assert_eq!(draw(&request("A keto recipe app logo")).unwrap(), logo);
        assert_ne!(draw(&request("Another app's icon")).unwrap(), logo);
    }
}
