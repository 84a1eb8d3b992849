"""Detectors one by one: what each one catches, and the look-alikes it must leave alone."""

from __future__ import annotations

import pytest

from oisp_sensor.redact import Scanner, card_prefix_ok, looks_random, luhn_ok
from oisp_sensor.redact.detectors import builtin_rules, compile_anchor_groups
from oisp_sensor.redact.walker import _registry_prefixes

SCANNER = Scanner(key_prefixes=_registry_prefixes(None))


def scrub(text: str) -> str:
    return SCANNER.scrub(text)[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # provider keys: the registry's prefixes, longest first
        ("k=sk-ant-api03-" + "aB3" * 30 + " end", "k=[REDACTED:api_key] end"),
        ('"sk-' + "Zx9" * 16 + '"', '"[REDACTED:api_key]"'),
        ("AIza" + "Sy1" * 11 + "Ab", "[REDACTED:api_key]"),
        ("gsk_" + "q1W" * 17 + " x", "[REDACTED:api_key] x"),
        ("xai-" + "Q1w" * 26, "[REDACTED:api_key]"),
        ("token hf_" + "aZ9" * 11 + "x.", "token [REDACTED:api_key]."),
        ("ya29.a0Af" + "H6SMc" * 8, "[REDACTED:api_key]"),
        ("dapi" + "0a1b2c3d" * 4, "[REDACTED:api_key]"),
        # cloud and code hosting
        ("id AKIAIOSFODNN7EXAMPLE,", "id [REDACTED:aws_access_key],"),
        ("ghp_" + "A1b2" * 9, "[REDACTED:github_token]"),
        ("github_pat_11ABCDEFG0" + "x1Y2" * 15, "[REDACTED:github_token]"),
        ("xoxb-123456789012-1234567890123-" + "aB1" * 8, "[REDACTED:slack_token]"),
        (
            "https://hooks.slack.com/services/T01ABCDEF/B02ABCDEFGH/abcDEF123456ghiJKL",
            "https://hooks.slack.com/services/[REDACTED:slack_webhook]",
        ),
        # tokens in headers and code
        ("Authorization: Bearer abc.DEF-123_ghi~jkl", "Authorization: [REDACTED:bearer_token]"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: [REDACTED:basic_auth]"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2J5dGVz", "[REDACTED:jwt]"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nok",
            "[REDACTED:private_key]\nok",
        ),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\\nb3Blbn\\n", "[REDACTED:private_key]"),  # JSON-escaped, cut
        ("postgres://app:Pa55w0rd!@db:5432/x", "postgres://app:[REDACTED:url_password]@db:5432/x"),
        ('password = "correct horse battery"', 'password = "[REDACTED:password]"'),
        ("DB_PASSWORD=hunter22", "DB_PASSWORD=[REDACTED:password]"),
        ('{"client_secret": "s3cr3t-VALUE"}', '{"client_secret": "[REDACTED:secret]"}'),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [REDACTED:aws_secret_key]",
        ),
        ("access_token=ya1b2c3d4e5f6g7h8i9j0k", "access_token=[REDACTED:secret]"),
        ("x-api-key: 0123456789abcdef01234567", "x-api-key: [REDACTED:authorization]"),
        (
            "see https://x.example/cb?key=abcd1234efgh&x=1",
            "see https://x.example/cb?key=[REDACTED:secret]&x=1",
        ),
        # personal data
        ("mail jane.doe+ai@mail.example.co.uk now", "mail [REDACTED:email] now"),
        ("call (415) 555-0132 today", "call [REDACTED:phone] today"),
        ("call +44 20 7946 0958.", "call [REDACTED:phone]."),
        ("tel:+14155550132", "tel:[REDACTED:phone]"),
        ("ring 646.555.0199", "ring [REDACTED:phone]"),
        ("card 4111 1111 1111 1111 exp", "card [REDACTED:credit_card] exp"),
        ("card 378282246310005", "card [REDACTED:credit_card]"),
        ("ssn 078-05-1120.", "ssn [REDACTED:ssn]."),
    ],
)
def test_detects(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # words and identifiers that share a prefix with a key
        "use sk-learn-compatible estimators and a risk-free rate",
        "the task-force-readiness-checklist-document is ready",
        "pat_rotation_schedule_for_tokens and hf_hub_download_repository",
        "Authorization: Bearer YOUR_API_KEY_HERE",
        "Authorization: Bearer <token>",
        "a bearer instrument; Basic understanding of TLS",
        # code
        "password = getpass.getpass()",
        "password = os.environ['DB_PASSWORD']",
        "token = self._next_token()",
        'password: "${DB_PASSWORD}"',
        '"max_tokens": 1024, "total_tokens": 1234567',
        "tokenizer = tiktoken.get_encoding('cl100k_base')",
        "@app.route('/x')\n@staticmethod\nnpm i @types/node",
        "icon@2x.png and logo@3x.webp",
        "git clone git@github.com:org/repo.git",
        # numbers that are not phones, cards or SSNs
        "released 2024-11-05T10:30:00Z, epoch 1731062400123, id 9007199254740993",
        "version 10.4.2, ip 192.168.1.254, port 11434, ISBN 978-0-13-468599-1",
        "price 1,048,576 bytes, 3.14159265358979, -0.0070322756, 0.123456789",
        "4111 1111 1111 1112 fails Luhn; 1234 5678 9012 3456 has no issuer",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "commit 4f1c2a9e7b3d5f60812a4c9e0d7b1f3a5c6e8d90",
        "ssn-like 000-12-3456 or 666-12-3456 or 123-00-4567 are invalid",
        "phone-like 123-456-7890 has no valid area code",
    ],
)
def test_leaves_alone(text: str) -> None:
    assert scrub(text) == text


def test_url_password_and_email_on_the_same_at() -> None:
    assert (
        scrub("https://user:pw1234@mail.example.com/")
        == "https://user:[REDACTED:url_password]@mail.example.com/"
    )


def test_overlapping_hits_are_merged_never_trimmed() -> None:
    key = "sk-proj-" + "a1B2" * 12
    out, kinds = SCANNER.scrub(f"api_key={key}")
    assert out == "api_key=[REDACTED:api_key]"
    assert kinds == ["api_key"]
    out, kinds = SCANNER.scrub(f"Authorization: Bearer {key}")
    assert out == "Authorization: [REDACTED:bearer_token]" and kinds == ["bearer_token"]


def test_case_insensitive_keywords_keep_offsets_with_non_ascii() -> None:
    text = "İİİ Ünïcødé PASSWORD: Hunter22x and İ"
    assert scrub(text) == "İİİ Ünïcødé PASSWORD: [REDACTED:password] and İ"
    assert scrub("naïve café: call +1 415-555-0132 ✓") == "naïve café: call [REDACTED:phone] ✓"


def test_scrub_returns_the_same_object_when_clean() -> None:
    text = "nothing to see here, move along"
    assert SCANNER.scrub(text)[0] is text
    assert SCANNER.scrub(text)[0] is text  # from the cache too


def test_switched_off_detectors_do_not_run() -> None:
    scanner = Scanner(enabled=["email"])
    assert (
        scanner.scrub("jane@example.com AKIAIOSFODNN7EXAMPLE")[0] == "[REDACTED:email] AKIAIOSFODNN7EXAMPLE"
    )
    with pytest.raises(ValueError):
        Scanner(enabled=["nope"])


def test_anchor_regexes_start_with_a_literal() -> None:
    # The speed of the scan relies on it (the engine's fast first-character search).
    for lower in (False, True):
        for group in compile_anchor_groups(builtin_rules(_registry_prefixes(None)), lower):
            source = group.regex.pattern
            assert not source.startswith(("(", "[")), source[:40]


def test_checks() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert card_prefix_ok("4111111111111111") and not card_prefix_ok("1234567890123452")
    assert (
        looks_random("a1b2")
        and looks_random("aBcD")
        and not looks_random("abcd")
        and not looks_random("ABCD")
    )
