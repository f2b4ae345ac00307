//! A user's files, uploaded straight to the bucket by presigned PUT: the API grants one
//! upload of a declared type and size, then checks the object that arrived (its size, and
//! that its bytes are of the declared type) before it becomes an artifact. An object that
//! fails the check is deleted.

use crate::error::json_response;
use crate::request::{caller, json_body, path_param};
use crate::routes::owned_project;
use crate::{ApiError, ApiState};
use autocrew_shared::domain::events::ArtifactStored;
use autocrew_shared::domain::records::{Artifact, Project};
use autocrew_shared::domain::requests::{MAX_UPLOAD_BYTES, NewUpload, UPLOAD_TYPES};
use autocrew_shared::domain::{ArtifactId, UploadId, UserId, sha256_hex};
use autocrew_shared::ports::{
    ArtifactStore, BlobError, BlobStore, Publisher, Upload, UploadStore, Written,
};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use std::time::Duration;

/// A granted upload: the presigned PUT to send the file with, then the URL to complete it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UploadGranted {
    pub upload: Upload,
    /// The presigned PUT.
    pub url: String,
    /// `PUT`.
    pub method: &'static str,
    /// The headers the PUT must carry, as signed.
    pub headers: PutHeaders,
    /// `POST` it once the file is up.
    pub complete_url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PutHeaders {
    #[serde(rename = "content-type")]
    pub content_type: String,
    #[serde(rename = "content-length")]
    pub content_length: String,
}

/// An uploaded file, checked and recorded as an artifact.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UploadedFile {
    pub key: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: u64,
    pub checksum_sha256: String,
    /// A presigned GET, valid an hour.
    pub url: String,
}

/// How long a presigned PUT works.
const GRANT_TTL: Duration = Duration::from_secs(15 * 60);

/// The file name as kept in the key: letters, digits, `.`, `-` and `_`; others become `_`.
fn key_name(filename: &str) -> String {
    filename
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}

/// `POST /projects/{project_id}/uploads`: 201 with the grant and the URL to PUT the file to
/// (sending exactly the granted `content-type` and `content-length`).
pub async fn create_upload(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let project = owned_project(state, request, user).await?;
    let body: NewUpload = json_body(request)?;
    let granted = upload_granted((&*state.blobs, &*state.uploads), (user, &project), &body).await?;
    Ok(json_response(201, &granted))
}

/// A grant of one upload to `user`'s `project`, with its presigned PUT.
pub(crate) async fn upload_granted(
    (blobs, uploads): (&dyn BlobStore, &dyn UploadStore),
    (user, project): (UserId, &Project),
    body: &NewUpload,
) -> Result<UploadGranted, ApiError> {
    let upload = grant(project, user, body, chrono::Utc::now())?;
    let id = upload.id;
    let url = blobs
        .presigned_put(
            &upload.key,
            &upload.content_type,
            upload.size_bytes,
            GRANT_TTL,
        )
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    uploads.grant(&upload).await?;
    Ok(UploadGranted {
        headers: PutHeaders {
            content_type: upload.content_type.clone(),
            content_length: upload.size_bytes.to_string(),
        },
        upload,
        url,
        method: "PUT",
        complete_url: format!("/uploads/{id}/complete"),
    })
}

/// The grant a request asks for in `project`, checked: a plain file name, an allowed
/// type, a size within the limit. Its key keeps the name's safe characters.
pub(crate) fn grant(
    project: &Project,
    user: UserId,
    body: &NewUpload,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Upload, ApiError> {
    let filename = body.filename.trim();
    if filename.is_empty()
        || filename.chars().count() > 200
        || filename.contains(['/', '\\'])
        || filename.trim_matches('.').is_empty()
    {
        return Err(ApiError::bad(
            "filename",
            "must be 1-200 characters, without / or \\, and not only dots",
        ));
    }
    let content_type = body.content_type.trim().to_ascii_lowercase();
    if !UPLOAD_TYPES.contains(&content_type.as_str()) {
        return Err(ApiError::bad(
            "content_type",
            format!("must be one of {}", UPLOAD_TYPES.join(", ")),
        ));
    }
    if body.size_bytes == 0 || body.size_bytes > MAX_UPLOAD_BYTES {
        return Err(ApiError::bad(
            "size_bytes",
            format!("must be 1-{MAX_UPLOAD_BYTES} (25 MiB)"),
        ));
    }
    let id = UploadId::new();
    Ok(Upload {
        id,
        project_id: project.id,
        user_id: user,
        key: format!(
            "projects/{}/uploads/{id}/{}",
            project.id,
            key_name(filename)
        ),
        filename: filename.to_owned(),
        content_type,
        size_bytes: body.size_bytes,
        expires_at: now + GRANT_TTL,
        created_at: now,
    })
}

/// Whether `bytes` are of `content_type`: the file signature of binary types, UTF-8 text
/// (and valid JSON) for the others.
pub(crate) fn matches_type(content_type: &str, bytes: &[u8]) -> bool {
    match content_type {
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(b"\xff\xd8\xff"),
        "image/gif" => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
        "image/webp" => bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP",
        "application/pdf" => bytes.starts_with(b"%PDF-"),
        "application/json" => serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok(),
        _ => std::str::from_utf8(bytes).is_ok_and(|text| !text.contains('\0')),
    }
}

/// `POST /uploads/{upload_id}/complete`: checks the object against its grant and records it
/// as an artifact (201; 200 when it was recorded before).
pub async fn complete_upload(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "upload_id", UploadId::parse)?;
    let ports = Completion {
        uploads: &*state.uploads,
        blobs: &*state.blobs,
        artifacts: &*state.artifacts,
        publisher: &state.relay,
        bucket: &state.artifact_bucket,
    };
    let (first, file) = upload_completed(&ports, user, id).await?;
    Ok(json_response(if first { 201 } else { 200 }, &file))
}

/// What checking an upload in uses.
pub(crate) struct Completion<'a> {
    pub uploads: &'a dyn UploadStore,
    pub blobs: &'a dyn BlobStore,
    pub artifacts: &'a dyn ArtifactStore,
    /// Sends `artifact_stored` at once.
    pub publisher: &'a dyn Publisher,
    /// The artifacts' bucket.
    pub bucket: &'a str,
}

/// Checks `user`'s upload `id` against its grant and records it as an artifact, once:
/// whether this was the first time, and the file.
pub(crate) async fn upload_completed(
    ports: &Completion<'_>,
    user: UserId,
    id: UploadId,
) -> Result<(bool, UploadedFile), ApiError> {
    let upload = ports
        .uploads
        .upload(user, id)
        .await?
        .ok_or(ApiError::NotFound("upload"))?;
    let bytes = match ports.blobs.get(&upload.key).await {
        Ok(bytes) => bytes,
        Err(BlobError::NotFound { .. }) => {
            return Err(ApiError::Conflict(format!(
                "nothing was uploaded for upload {id} yet: PUT the file to the granted URL first"
            )));
        }
        Err(e) => return Err(ApiError::Internal(Box::new(e))),
    };
    let wrong = if bytes.len() as u64 != upload.size_bytes {
        Some(format!(
            "the file has {} bytes, but {} were granted",
            bytes.len(),
            upload.size_bytes
        ))
    } else if !matches_type(&upload.content_type, &bytes) {
        Some(format!("the file's bytes are not {}", upload.content_type))
    } else {
        None
    };
    if let Some(wrong) = wrong {
        // The grant stays: the same URL takes a corrected file until it expires.
        ports
            .blobs
            .delete(&upload.key)
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        return Err(ApiError::Unprocessable(format!(
            "{wrong}; the file was deleted"
        )));
    }
    let artifact = Artifact {
        id: ArtifactId::new(),
        project_id: upload.project_id,
        run_id: None,
        task_id: None,
        bucket: ports.bucket.to_owned(),
        key: upload.key.clone(),
        content_type: upload.content_type.clone(),
        size_bytes: upload.size_bytes,
        checksum_sha256: sha256_hex(&bytes),
    };
    let stored = ArtifactStored {
        task_id: None,
        key: artifact.key.clone(),
        object_key: None,
        size_bytes: artifact.size_bytes,
        checksum_sha256: None,
        content_type: artifact.content_type.clone(),
        uploaded: true,
        filename: Some(upload.filename.clone()),
    };
    let effects = ports
        .artifacts
        .record_once(&[Written {
            key: format!("upload:{id}"),
            artifact: artifact.clone(),
            stored,
        }])
        .await?;
    let first = !effects.is_empty();
    ports.publisher.publish(effects).await;
    let url = ports
        .blobs
        .presigned_get(&upload.key, Duration::from_secs(3600))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let file = UploadedFile {
        key: artifact.key,
        filename: upload.filename,
        content_type: artifact.content_type,
        size_bytes: artifact.size_bytes,
        checksum_sha256: artifact.checksum_sha256,
        url,
    };
    Ok((first, file))
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::Spec;

    pub fn create_upload() -> Spec {
        Spec::new("A presigned PUT for one file of an allowed type, at most 25 MiB.")
            .body::<NewUpload>()
            .reply::<UploadGranted>(201)
            .creates("upload_id", "/upload/id")
    }

    pub fn complete_upload() -> Spec {
        Spec::new("Checks the uploaded file against its grant and records it as an artifact.")
            .reply::<UploadedFile>(201)
            .reply::<UploadedFile>(200)
    }
}
