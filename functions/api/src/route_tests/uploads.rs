//! Upload grants and the check of what was uploaded.

use super::field_of;
use crate::uploads::{grant, matches_type};
use autocrew_shared::domain::records::Project;
use autocrew_shared::domain::requests::{MAX_UPLOAD_BYTES, NewUpload};
use autocrew_shared::domain::{ProjectId, UserId};
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
