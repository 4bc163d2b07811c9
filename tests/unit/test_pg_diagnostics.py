"""What PostgreSQL's DETAIL and HINT may quote is redacted before it reaches a condition."""

from __future__ import annotations

from lokifi_storage.clients.postgres.diagnostics import redact


def test_url_passwords_and_password_keywords_are_redacted() -> None:
    text = redact(
        "could not connect to postgresql://app:s3cr3t@db:5432/x; host=db password=hunter2 user=a"
    )
    assert "s3cr3t" not in text
    assert "hunter2" not in text
    assert "postgresql://***@db:5432/x" in text
    assert "password=*** user=a" in text


def test_row_contents_of_key_and_failing_row_details_are_redacted() -> None:
    text = redact(
        "DETAIL: Key (id, created_at)=(5, 2026-12-01 00:00:00+00) already exists.; "
        "DETAIL: Failing row contains (5, secret text, null)."
    )
    assert "secret text" not in text
    assert "2026-12-01" not in text
    assert "Key (id, created_at)=(…) already exists" in text
    assert "Failing row contains (…)" in text


def test_constraint_and_column_names_are_kept() -> None:
    detail = 'PRIMARY KEY constraint on table "ai_messages_p2026_12" lacks column "user_id".'
    assert redact(detail) == detail
