//! Upload grants and the check of what was uploaded.

use super::field_of;
use crate::ApiError;
use crate::uploads::{Completion, grant, matches_type, upload_completed, upload_granted};
use autocrew_shared::adapters::memory::{MemArtifacts, MemBlobs, MemPublished, MemUploads};
use autocrew_shared::domain::records::Project;
use autocrew_shared::domain::requests::{MAX_UPLOAD_BYTES, NewUpload};
use autocrew_shared::domain::{ProjectId, UserId};
use autocrew_shared::ports::BlobStore;
use chrono::Utc;

fn project() -> Project {
    Project {
        id: ProjectId::new(),
        user_id: UserId::new(),
        name: "Keto".into(),
        description: String::new(),
        created_at: Utc::now(),
        archived_at: None,
    }
}

fn asked(filename: &str, content_type: &str, size_bytes: u64) -> NewUpload {
    NewUpload {
        filename: filename.into(),
        content_type: content_type.into(),
        size_bytes,
    }
}

#[test]
fn a_grant_keeps_the_names_safe_characters_in_its_key() {
    let project = project();
    let now = Utc::now();
    let upload = grant(
        &project,
        project.user_id,
        &asked(" brief (v2).pdf ", "Application/PDF", 1024),
        now,
    )
    .expect("granted");
    assert_eq!(upload.filename, "brief (v2).pdf");
    assert_eq!(upload.content_type, "application/pdf");
    assert_eq!(
        upload.key,
        format!(
            "projects/{}/uploads/{}/brief__v2_.pdf",
            project.id, upload.id
        )
    );
    assert_eq!(upload.expires_at - now, chrono::Duration::minutes(15));
}

#[test]
fn a_grant_refuses_paths_dots_unknown_types_and_sizes_out_of_range() {
    let project = project();
    let user = project.user_id;
    let now = Utc::now();
    for name in ["../etc/passwd", "a\\b.txt", "...", "", &"n".repeat(201)] {
        let refused = grant(&project, user, &asked(name, "text/plain", 10), now);
        assert_eq!(
            field_of(refused.expect_err("refused")),
            "filename",
            "{name:?}"
        );
    }
    let exe = grant(
        &project,
        user,
        &asked("a.exe", "application/x-msdownload", 10),
        now,
    );
    assert_eq!(field_of(exe.expect_err("refused")), "content_type");
    for size in [0, MAX_UPLOAD_BYTES + 1] {
        let refused = grant(&project, user, &asked("a.txt", "text/plain", size), now);
        assert_eq!(field_of(refused.expect_err("refused")), "size_bytes");
    }
}

#[test]
fn an_upload_must_be_what_its_grant_says() {
    assert!(matches_type("image/png", b"\x89PNG\r\n\x1a\n...."));
    assert!(!matches_type("image/png", b"GIF89a...."));
    assert!(matches_type("image/webp", b"RIFF\0\0\0\0WEBPVP8 "));
    assert!(matches_type("application/pdf", b"%PDF-1.7"));
    assert!(matches_type("application/json", br#"{"a": [1, 2]}"#));
    assert!(!matches_type("application/json", b"{not json"));
    assert!(matches_type("text/markdown", "# Keto\n".as_bytes()));
    assert!(!matches_type("text/plain", b"text\0with a nul"));
    assert!(!matches_type("text/csv", b"\xff\xfe"));
}

/// The upload twins, and what a completion publishes.
struct Twins {
    blobs: MemBlobs,
    uploads: MemUploads,
    artifacts: MemArtifacts,
    published: MemPublished,
}

impl Twins {
    fn new() -> Twins {
        Twins {
            blobs: MemBlobs::default(),
            uploads: MemUploads::default(),
            artifacts: MemArtifacts::default(),
            published: MemPublished::default(),
        }
    }

    fn completion(&self) -> Completion<'_> {
        Completion {
            uploads: &self.uploads,
            blobs: &self.blobs,
            artifacts: &self.artifacts,
            publisher: &self.published,
            bucket: "artifacts",
        }
    }
}

#[tokio::test]
async fn an_uploaded_file_is_checked_in_once_and_is_its_owners_alone() {
    let twins = Twins::new();
    let project = project();
    let ana = project.user_id;
    let granted = upload_granted(
        (&twins.blobs, &twins.uploads),
        (ana, &project),
        &asked("notes.md", "text/markdown", 7),
    )
    .await
    .expect("granted");
    assert_eq!(
        (granted.method, granted.headers.content_length.as_str()),
        ("PUT", "7")
    );
    assert_eq!(
        granted.complete_url,
        format!("/uploads/{}/complete", granted.upload.id)
    );
    let id = granted.upload.id;
    let early = upload_completed(&twins.completion(), ana, id).await;
    assert!(
        matches!(early, Err(ApiError::Conflict(_))),
        "nothing uploaded yet: {early:?}"
    );
    twins
        .blobs
        .put(&granted.upload.key, b"# Keto\n".to_vec(), "text/markdown")
        .await
        .expect("put");
    let theirs = upload_completed(&twins.completion(), UserId::new(), id).await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("upload"))),
        "{theirs:?}"
    );
    let (first, file) = upload_completed(&twins.completion(), ana, id)
        .await
        .expect("checked in");
    assert!(first);
    assert_eq!(
        file.checksum_sha256,
        autocrew_shared::domain::sha256_hex(b"# Keto\n")
    );
    let (again, _) = upload_completed(&twins.completion(), ana, id)
        .await
        .expect("checked in");
    assert!(!again, "the second completion records nothing");
    let events: Vec<_> = twins
        .published
        .published()
        .into_iter()
        .flat_map(|e| e.events)
        .collect();
    assert_eq!(events.len(), 1, "one artifact_stored: {events:?}");
}

#[tokio::test]
async fn a_file_that_is_not_what_was_granted_is_deleted_and_the_grant_stays() {
    let twins = Twins::new();
    let project = project();
    let ana = project.user_id;
    let granted = upload_granted(
        (&twins.blobs, &twins.uploads),
        (ana, &project),
        &asked("logo.png", "image/png", 12),
    )
    .await
    .expect("granted");
    let key = granted.upload.key.clone();
    for wrong in [b"GIF89a......".to_vec(), b"\x89PNG\r\n\x1a\n".to_vec()] {
        twins
            .blobs
            .put(&key, wrong, "image/png")
            .await
            .expect("put");
        let refused = upload_completed(&twins.completion(), ana, granted.upload.id).await;
        assert!(
            matches!(refused, Err(ApiError::Unprocessable(_))),
            "{refused:?}"
        );
        assert!(twins.blobs.keys().is_empty(), "the file was deleted");
    }
    twins
        .blobs
        .put(&key, b"\x89PNG\r\n\x1a\nIHDR".to_vec(), "image/png")
        .await
        .expect("put");
    let (first, _) = upload_completed(&twins.completion(), ana, granted.upload.id)
        .await
        .expect("checked in");
    assert!(first);
}
