"""Secret and personal-data detectors, compiled into one fast text scanner.

Redaction runs on every string that leaves the sensor, so its cost is paid on every byte
of every prompt and completion. Python's regex engine walks a pattern position by
position, and a single alternation of twenty detectors costs about 20 ns a character:
too slow for the 50 MB/s target. What it does quickly is look for a pattern that starts
with one literal character (a tight C loop, 1-3 GB/s). So every detector here is
written to start with a literal "anchor" character that is rare in ordinary text:

- prefix tokens (API keys, GitHub/Slack tokens, JWTs, PEM blocks, ``Bearer``...) are
  anchored on the rarest character of their prefix (``-`` of ``sk-``, ``_`` of
  ``gsk_``, ``J`` of ``eyJ``, ``z`` of ``AIza``), the rest of the prefix is checked with
  a fixed-width lookbehind/lookahead, and all prefixes sharing an anchor share one
  regex (so ~10 literal scans cover every provider in the registry);
- keyword assignments (``password = ...``, ``"api_key": "..."``, ``Authorization:``)
  are found the same way in a lower-cased copy of the text, so they are
  case-insensitive without the engine's slow case-folding mode;
- e-mail addresses and URL passwords are anchored on ``@`` and read backwards from it
  in a short window;
- numbers (phones, card numbers, SSNs) come from one scan for runs of 9+ digit-ish
  characters, then exact per-kind patterns and the Luhn check on each short run.

A detector's hit is a span of the original text; overlapping spans are merged (never
trimmed: a partial overlap must not leave the tail of a secret behind) and the merged
span is replaced by ``[REDACTED:<kind>]``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

# ---- names ---------------------------------------------------------------------------------

# Built-in detector switches: `RedactionConfig.detectors` has one bool per name.
DETECTOR_NAMES: tuple[str, ...] = (
    "private_key",
    "bearer",
    "jwt",
    "api_keys",
    "aws",
    "github",
    "slack",
    "url_password",
    "secret_assignments",
    "email",
    "credit_card",
    "ssn",
    "phone",
)

# Detectors whose hits are credentials. They always run on transport metadata
# (command lines, environment, URLs, headers), in every mode including `full`, whatever
# the switches say: a credential is never exported.
CREDENTIAL_DETECTORS: frozenset[str] = frozenset(
    {
        "private_key",
        "bearer",
        "jwt",
        "api_keys",
        "aws",
        "github",
        "slack",
        "url_password",
        "secret_assignments",
    }
)

# Prefixes of well-known credentials that are not AI-provider API keys (the registry
# supplies those): kind, prefixes, body regex, needs a random-looking body.
_BUILTIN_KEY_PREFIXES: tuple[str, ...] = (
    # AI providers, also listed by the registry; kept here so the detector does not
    # depend on the registry being loaded.
    "sk-ant-",
    "sk-proj-",
    "sk-",
    "gsk_",
    "xai-",
    "hf_",
    "r8_",
    "pplx-",
    "nvapi-",
    # other platforms commonly pasted into prompts
    "glpat-",
    "npm_",
    "pypi-",
    "sk_live_",
    "rk_live_",
    "sk_test_",
    "shpat_",
    "dop_v1_",
)

REDACTED = "[REDACTED:{}]"

# ---- checks ----------------------------------------------------------------------------------


def looks_random(token: str) -> bool:
    """True when a token is not a word or identifier: it has a digit, or mixed case.

    Random base62 key bodies pass with overwhelming probability; `sk-learn-compatible`,
    `pat_rotation_schedule` or `YOUR_API_KEY_HERE` do not.
    """
    has_upper = has_lower = False
    for ch in token:
        if ch.isdigit():
            return True
        if ch.isupper():
            has_upper = True
        elif ch.islower():
            has_lower = True
    return has_upper and has_lower


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_prefix_ok(digits: str) -> bool:
    """Issuer ranges of the major card networks, with their lengths.

    Luhn alone passes one random number in ten; requiring a real issuer prefix and
    length makes long numeric ids and timestamps very unlikely to be taken for cards.
    """
    n = len(digits)
    two = int(digits[:2])
    four = int(digits[:4])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649:  # Discover
        return 16 <= n <= 19
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:  # Diners Club
        return 14 <= n <= 19
    if two == 62:  # UnionPay
        return 16 <= n <= 19
    return False


def _basic_credentials(token: str) -> bool:
    """`Basic` auth: base64 of `user:password`."""
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.isprintable() and text.find(":") > 0


# What one Scanner.cache entry costs besides its characters (str header, value tuple, dict
# slot), counted against the cache's limit.
_ENTRY_COST = 160

_PLACEHOLDERS = frozenset(
    {
        "none",
        "null",
        "true",
        "false",
        "password",
        "passwd",
        "secret",
        "changeme",
        "example",
        "redacted",
        "undefined",
        "your_password",
        "your-password",
        "your_api_key",
        "your-api-key",
        "xxxx",
        "xxxxxxxx",
    }
)
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _assigned_value_ok(value: str, quoted: bool, strong: bool) -> bool:
    """Whether the value of `password = <value>` is a secret rather than code or a placeholder.

    Quoted values after a strong keyword (password, secret, api_key, ...) are secrets;
    bare values must look random and must not be an identifier or expression
    (`password = self.password`, `token: ${TOKEN}`); a bare `token` keyword needs 16+
    random characters (LLM text is full of "tokens").
    """
    stripped = value.strip()
    if len(stripped) < 4 or stripped.lower() in _PLACEHOLDERS:
        return False
    if stripped[0] in "$%{<*" or set(stripped) <= {"*", "x", "X", "."}:
        return False
    if quoted and strong:
        return True
    if not strong and len(stripped) < 16:
        return False
    if _IDENTIFIER_RE.fullmatch(stripped) and not looks_random(stripped):
        return False
    return looks_random(stripped)


# ---- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrefixRule:
    """A secret that starts with a literal: `sk-...`, `eyJ...`, `-----BEGIN ...`, `Bearer ...`.

    `body` is the regex for what follows the prefix. It may mark the secret part with
    a group named `secret` (else prefix + body is the secret) and, for keyword rules,
    a group named `quoted` around a quoted value. `check(value, quoted)` rejects hits
    that only look like the secret. Keyword rules (`lower=True`) are matched in the
    lower-cased text: their prefixes and body must be lower case.
    """

    detector: str
    kind: str
    prefixes: tuple[str, ...]
    body: str
    check: Callable[[str, bool], bool] | None = None
    # characters that must not come right before the prefix (a word boundary of sorts)
    boundary: str = "A-Za-z0-9"
    lower: bool = False


def _random_check(min_len: int) -> Callable[[str, bool], bool]:
    def check(value: str, quoted: bool) -> bool:
        return len(value) >= min_len and looks_random(value)

    return check


def _last_word(check: Callable[[str], bool]) -> Callable[[str, bool], bool]:
    """Apply `check` to the credential of `Scheme credential`."""

    def checker(value: str, quoted: bool) -> bool:
        words = value.split()
        return bool(words) and check(words[-1])

    return checker


def _keyword_check(strong: bool) -> Callable[[str, bool], bool]:
    def check(value: str, quoted: bool) -> bool:
        return _assigned_value_ok(value, quoted, strong)

    return check


def _auth_header_check(value: str, quoted: bool) -> bool:
    # "Authorization: Bearer abc..." / "Authorization: token ghp_..." but not prose.
    token = value.split()[-1] if value.split() else ""
    return len(token) >= 8 and looks_random(token)


# Key body: the random part of an API key or token.
_KEY_BODY = r"[A-Za-z0-9_\-]{16,}"
# Assignment syntax after a keyword: optional suffix of the key name, closing quote,
# operator, then a quoted value (which may hold spaces) or a bare one.
# Quotes may be JSON-escaped (`{\"password\": \"...\"}` inside a tool argument string).
_ASSIGN = (
    r"[a-z0-9_\-]{0,24}\\?[\"']?[ \t]{0,4}(?::=|=>|[:=])[ \t]{0,4}"
    r"(?:\\?(?P<open>[\"'])(?P<quoted>(?:[^\"'\n\r\\]|\\[^\"'\n\r]){1,200})\\?(?P=open)"
    r"|(?P<secret>[^\s\"'`,;&<>(){}\[\]\\]{1,200}))"
)
_URL_PARAM = r"=(?P<secret>[^\s&#\"'<>]{4,400})"


def builtin_rules(key_prefixes: Iterable[str] = ()) -> list[PrefixRule]:
    """Every prefix and keyword rule; `key_prefixes` adds the registry's API key prefixes."""
    # Prefixes with a rule of their own (exact shape, specific label) are not generic keys.
    specific = {"AKIA", "ASIA", "AIza", "ya29.", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"}
    provider_prefixes = sorted(
        {p for p in (*_BUILTIN_KEY_PREFIXES, *key_prefixes) if len(p) >= 2} - specific,
        key=lambda p: (-len(p), p),
    )
    strong = _keyword_check(True)
    weak = _keyword_check(False)
    rules: list[PrefixRule] = [
        PrefixRule(
            "jwt",
            "jwt",
            ("eyJ",),
            r"[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        ),
        PrefixRule("api_keys", "api_key", ("AIza",), r"[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_\-])"),
        PrefixRule("api_keys", "api_key", ("ya29.",), r"[A-Za-z0-9_\-.]{20,}", _random_check(20)),
        PrefixRule(
            "api_keys",
            "api_key",
            tuple(provider_prefixes),
            _KEY_BODY,
            lambda value, quoted: looks_random(value),
        ),
        PrefixRule(
            "aws",
            "aws_access_key",
            ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA"),
            r"[A-Z0-9]{16}(?![A-Za-z0-9])",
        ),
        PrefixRule(
            "github",
            "github_token",
            ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
            r"[A-Za-z0-9]{30,}",
        ),
        PrefixRule("github", "github_token", ("github_pat_",), r"[A-Za-z0-9_]{22,}"),
        PrefixRule(
            "slack",
            "slack_token",
            ("xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xapp-"),
            r"[A-Za-z0-9\-]{10,}",
        ),
        # keyword rules, matched in the lower-cased text
        PrefixRule(
            "bearer",
            "bearer_token",
            ("bearer ",),
            r"[ \t]*[a-z0-9._~+/\-]{12,}=*",
            _last_word(lambda token: len(token) >= 12 and looks_random(token)),
            boundary="a-z0-9",
            lower=True,
        ),
        PrefixRule(
            "bearer",
            "basic_auth",
            ("basic ",),
            r"[ \t]*[a-z0-9+/]{6,}={0,2}",
            _last_word(_basic_credentials),
            boundary="a-z0-9",
            lower=True,
        ),
        PrefixRule(
            "aws",
            "aws_secret_key",
            ("secret_access_key", "secretaccesskey"),
            _ASSIGN,
            strong,
            boundary="a-z0-9",
            lower=True,
        ),
        PrefixRule(
            "secret_assignments",
            "password",
            ("password", "passwd", "pwd"),
            _ASSIGN,
            strong,
            boundary="a-z0-9",
            lower=True,
        ),
        PrefixRule(
            "secret_assignments",
            "secret",
            ("secret", "api_key", "api-key", "apikey", "access_key", "private_key"),
            _ASSIGN,
            strong,
            boundary="a-z0-9",
            lower=True,
        ),
        # `token` alone is everywhere in LLM text: its value must be 16+ random characters
        # (which also covers access_token, refresh_token, x-amz-security-token...).
        PrefixRule("secret_assignments", "secret", ("token",), _ASSIGN, weak, boundary="a-z0-9", lower=True),
        PrefixRule(
            "secret_assignments",
            "secret",
            ("?key", "&key", "x-amz-credential"),
            _URL_PARAM,
            boundary="",
            lower=True,
        ),
        PrefixRule(
            "secret_assignments",
            "authorization",
            ("authorization", "proxy-authorization", "x-api-key", "x-goog-api-key"),
            r"[\"']?[ \t]{0,4}[:=][ \t]{0,4}[\"']?(?P<secret>(?:[a-z0-9\-]{2,20}[ \t]+)?[^\s\"',;]{8,})",
            _auth_header_check,
            boundary="a-z0-9\\-",
            lower=True,
        ),
    ]
    return rules


@dataclass(frozen=True, slots=True)
class LiteralRule:
    """A secret announced by a long, rare literal (`-----BEGIN`, `hooks.slack.com`).

    The regex runs only when the literal occurs in the text (one fast substring
    search), and the hit is its `secret` group, or the whole match.
    """

    detector: str
    kind: str
    literal: str
    regex: re.Pattern[str]


LITERAL_RULES: tuple[LiteralRule, ...] = (
    LiteralRule(
        "private_key",
        "private_key",
        "-----BEGIN ",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
            r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)"
        ),
    ),
    LiteralRule(
        "slack",
        "slack_webhook",
        "hooks.slack.com/",
        re.compile(
            r"hooks\.slack\.com/services/(?P<secret>T[A-Za-z0-9_]{6,}/B[A-Za-z0-9_]{6,}/[A-Za-z0-9_]{12,})"
        ),
    ),
)


# ---- compiling prefix rules into anchor regexes ------------------------------------------------

# Rough frequency (per mille) of characters in prose, code and JSON: the scan for a
# prefix looks for its rarest character first. Absent characters count as rare.
_FREQUENCY: dict[str, int] = {
    " ": 150,
    "e": 110,
    "t": 85,
    "a": 75,
    "o": 70,
    "i": 68,
    "n": 65,
    "s": 62,
    "r": 58,
    "h": 50,
    "l": 40,
    "d": 38,
    "c": 30,
    "u": 27,
    "m": 24,
    "p": 22,
    "f": 21,
    "g": 19,
    "w": 18,
    "y": 17,
    "b": 14,
    '"': 14,
    ".": 12,
    ",": 10,
    "v": 9,
    "k": 8,
    ":": 8,
    "=": 6,
    "/": 6,
    "(": 5,
    ")": 5,
    "0": 5,
    "1": 5,
    "2": 4,
    "_": 4,
    "-": 4,
    "3": 3,
    "4": 3,
    "5": 3,
    "6": 3,
    "7": 3,
    "8": 3,
    "9": 3,
    "x": 2,
    "j": 2,
    "q": 1,
    "z": 1,
}


# Anchors preferred for keyword rules (lower-cased text): rare letters most keywords
# contain, so a few scans cover them all.
_KEYWORD_ANCHORS = "wkzbc"


def _anchor_index(prefix: str, lower: bool) -> int:
    """Which character of a prefix the scan looks for.

    Keyword rules: one of a few shared rare letters. Token prefixes: a separator (`-`,
    `_`) when there is one, so most key prefixes share the `-` and `_` regexes; else an
    upper-case first letter (`AKIA`, `AIza`); else the rarest character.
    """
    if lower:
        for ch in _KEYWORD_ANCHORS:
            index = prefix.find(ch)
            if index >= 0:
                return index
    else:
        for sep in "-_":
            index = prefix.find(sep)
            if index >= 0:
                return index
        if prefix[0].isupper():
            return 0
    return min(range(len(prefix)), key=lambda i: (_FREQUENCY.get(prefix[i], 0), i))


@dataclass(slots=True)
class _Alt:
    rule: PrefixRule
    rule_index: int
    prefix: str
    anchor_at: int
    secret_group: str | None = None  # group holding the secret, when not the whole match
    quoted_group: str | None = None  # group holding a quoted value


@dataclass(slots=True)
class _AnchorGroup:
    regex: re.Pattern[str]
    alts: dict[int, _Alt] = field(default_factory=dict)  # alternative number -> alternative
    # Every match starts with this character: `anchor in text` (a memchr) rules the
    # regex out for most texts at a tenth of the cost of its scan.
    anchor: str = ""


_GROUP_NAME_RE = re.compile(r"\(\?P([<=])(\w+)([>)])")


def _rename_groups(source: str, k: int) -> str:
    """Suffix every named group (and backreference) of a body with `__k`.

    Every group of alternative k then ends in `__k`, so `Match.lastgroup` (the last
    group closed, which belongs to the alternative that matched) tells which one it was.
    """
    return _GROUP_NAME_RE.sub(lambda m: f"(?P{m.group(1)}{m.group(2)}__{k}{m.group(3)}", source)


def compile_anchor_groups(rules: Sequence[PrefixRule], lower: bool) -> list[_AnchorGroup]:
    """One regex per anchor character for every (rule, prefix) with `rule.lower == lower`.

    Alternative k of the regex for anchor `c` is
    ``c (?<=prefix[:i+1]) (?<![boundary]prefix[:i+1]) prefix[i+1:] (?P<m__k>) body`` where
    i is where `c` sits in the prefix; the match starts at `c`, so the secret starts
    i characters earlier. Longer prefixes come first so `sk-ant-` beats `sk-`.
    """
    by_anchor: dict[str, list[_Alt]] = {}
    for index, rule in enumerate(rules):
        if rule.lower != lower:
            continue
        for prefix in rule.prefixes:
            at = _anchor_index(prefix, lower)
            by_anchor.setdefault(prefix[at], []).append(_Alt(rule, index, prefix, at))
    groups: list[_AnchorGroup] = []
    k = 0
    for anchor, alts in sorted(by_anchor.items()):
        alts.sort(key=lambda a: (-len(a.prefix), a.rule_index))
        parts: list[str] = []
        numbered: dict[int, _Alt] = {}
        for alt in alts:
            head = alt.prefix[: alt.anchor_at + 1]
            tail = alt.prefix[alt.anchor_at + 1 :]
            look = ""
            if len(head) > 1:
                look += f"(?<={re.escape(head)})"
            if alt.rule.boundary:
                look += f"(?<![{alt.rule.boundary}]{re.escape(head)})"
            body = alt.rule.body
            if "(?P<secret>" in body:
                alt.secret_group = f"secret__{k}"
            if "(?P<quoted>" in body:
                alt.quoted_group = f"quoted__{k}"
            parts.append(f"{look}{re.escape(tail)}(?P<m__{k}>){_rename_groups(body, k)}")
            numbered[k] = alt
            k += 1
        # Most anchor characters found in ordinary text are not part of a prefix: check
        # the character before the anchor against all prefixes at once before trying
        # the alternatives one by one (a 10x saving on code full of `-` and `_`).
        behind = [p for alt, p in zip(alts, parts, strict=True) if alt.anchor_at > 0]
        front = [p for alt, p in zip(alts, parts, strict=True) if alt.anchor_at == 0]
        branches: list[str] = []
        if front:
            after = "".join(
                sorted({re.escape(a.prefix[1]) for a in alts if a.anchor_at == 0 and len(a.prefix) > 1})
            )
            if after and all(len(a.prefix) > 1 for a in alts if a.anchor_at == 0):
                branches.append(f"(?=[{after}])(?:" + "|".join(front) + ")")
            else:
                branches.extend(front)
        if behind:
            # the one or two characters before the anchor, as fixed-width lookbehinds
            two = sorted({a.prefix[a.anchor_at - 2 : a.anchor_at + 1] for a in alts if a.anchor_at >= 2})
            one = sorted({a.prefix[a.anchor_at - 1 : a.anchor_at + 1] for a in alts if a.anchor_at == 1})
            checks = []
            if two:
                checks.append("(?<=" + "|".join(re.escape(x) for x in two) + ")")
            if one:
                checks.append("(?<=" + "|".join(re.escape(x) for x in one) + ")")
            before = "".join(sorted({re.escape(a.prefix[a.anchor_at - 1]) for a in alts if a.anchor_at > 0}))
            branches.append(
                f"(?<=[{before}]{re.escape(anchor)})(?:" + "|".join(checks) + ")(?:" + "|".join(behind) + ")"
            )
        regex = re.compile(re.escape(anchor) + "(?:" + "|".join(branches) + ")")
        groups.append(_AnchorGroup(regex, numbered, anchor))
    return groups


# ---- e-mail and URL passwords (anchored on "@") ------------------------------------------------

_EMAIL_LOCAL_RE = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}\Z")
_EMAIL_DOMAIN_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![A-Za-z0-9\-])"
)
_URL_USERINFO_RE = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]{0,20}:\\?/\\?/[^\s/:@\"'<>]{0,128}:(?P<pw>[^\s/@\"'<>]{1,256})\Z"
)
# Not a mail domain: file names like `icon@2x.png`, scoped packages, decorators.
_NOT_TLDS = frozenset(
    {
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "ico",
        "js",
        "ts",
        "tsx",
        "jsx",
        "css",
        "json",
        "txt",
        "yaml",
        "yml",
    }
)


def _at_hits(text: str, email: bool, url_password: bool) -> list[tuple[int, int, str]]:
    hits: list[tuple[int, int, str]] = []
    find = text.find
    at = find("@")
    n = len(text)
    while at >= 0:
        if url_password and (
            text.rfind("://", max(0, at - 400), at) >= 0 or "\\/\\/" in text[max(0, at - 400) : at]
        ):
            m = _URL_USERINFO_RE.search(text, max(0, at - 400), at)
            if m is not None:
                hits.append((m.start("pw"), at, "url_password"))
                at = find("@", at + 1)
                continue
        if email and at + 1 < n:
            local = _EMAIL_LOCAL_RE.search(text, max(0, at - 64), at)
            if local is not None:
                domain = _EMAIL_DOMAIN_RE.match(text, at + 1)
                if domain is not None and domain.group(1).lower() not in _NOT_TLDS:
                    start = local.start()
                    if not (text[start:at] == "git" and text.startswith(":", domain.end())):
                        hits.append((start, domain.end(), "email"))
                        at = find("@", domain.end())
                        continue
        at = find("@", at + 1)
    return hits


# ---- numbers -----------------------------------------------------------------------------------

# Numbers are found in two steps, because a digit-first regex costs ~70 ns per digit
# of text (the engine starts a match attempt at each one) and JSON is full of digits.
# 1. The text is mapped, one byte per character, to digits -> "0", separators -> "1",
#    "." -> "d" and everything else -> "x", and a regex whose first three characters are
#    the literal "000" (searched at C speed, no attempt per digit) finds runs with a
#    group of 3+ digits and 9+ digit-or-separator characters; ISO dates and float
#    decimals are skipped there.
# 2. The exact patterns (SSN, card, phone) run on the original text around each run.
_NUM_TABLE = bytes(
    ord("0")
    if 48 <= i <= 57
    else ord("1")
    if chr(i) in " ()/-"
    else ord("d")
    if chr(i) == "."
    else ord("p")
    if chr(i) == "+"
    else ord("a")
    if chr(i).isalpha() or chr(i) == "_"
    else ord("x")
    for i in range(256)
)
_NUM_GATE_RE = re.compile(rb"000(?:(?!0?100100(?!0))[01]{6,}|d000d0000)")
_SSN_RE = re.compile(r"(?<![\w\-.])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w\-]|\.\d)")
_CARD_RE = re.compile(r"(?<![\w\-.])\d(?:[ \-]?\d){12,18}(?![\w\-]|\.\d)")
_PHONE_RE = re.compile(
    r"(?<![\w\-.+])(?:"
    # international: +CC then groups, or E.164 without separators
    r"\+\d{1,3}(?:[ \-.]?\(\d{1,4}\))?(?:[ \-.]?\d{1,5}){2,6}"
    # North American: (415) 555-0132, 415-555-0132, 415.555.0132, 1-800-555-0199
    r"|(?:1[ \-.])?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ \-.])[2-9]\d{2}[ \-.]\d{4}"
    # national trunk prefix 0 with spaces: 020 7946 0958, 030 901820
    r"|0\d{1,4} \d{3,4} ?\d{3,4}"
    r")(?![\w\-]|\.\d)"
)


def _card_grouping_ok(candidate: str) -> bool:
    """Contiguous, or grouped like a printed card (4-4-4-4[-3], 4-6-5, 4-6-4)."""
    groups = [len(g) for g in re.split(r"[ \-]", candidate)]
    if len(groups) == 1:
        return True
    return groups in ([4, 4, 4, 4], [4, 4, 4, 4, 3], [4, 6, 5], [4, 6, 4], [4, 4, 4, 1], [4, 4, 4, 4, 2])


_NUMBER_RE = re.compile(
    f"(?P<ssn>{_SSN_RE.pattern})|(?P<credit_card>{_CARD_RE.pattern})|(?P<phone>{_PHONE_RE.pattern})".replace(
        "\\1", "(?P=sep)"
    ).replace("([- ])", "(?P<sep>[- ])", 1)
)


def _number_hits(text: str, card: bool, ssn: bool, phone: bool) -> list[tuple[int, int, str]]:
    """Phones, cards and SSNs: candidate runs from the byte map, exact regexes on each."""
    hits: list[tuple[int, int, str]] = []
    mapped = text.encode("ascii", "replace").translate(_NUM_TABLE)  # one byte per character
    n = len(text)
    number_re = _NUMBER_RE
    last_end = -1
    for run in _NUM_GATE_RE.finditer(mapped):
        start = run.start()
        before = mapped[start - 1] if start else 120
        if before == 97 or before == 100:  # after a letter (hex ids) or a dot (float decimals)
            continue
        clean_start = before == 120 or (before == 49 and (start < 2 or mapped[start - 2] not in (48, 112)))
        if (
            clean_start  # the run starts here (not after "+", nor a digit and a separator),
            and mapped.find(b"1", start, run.end()) < 0  # is one block of digits
            and text[start] not in "23456"  # and no card starts that way: ids, epoch times
        ):
            continue
        lo = max(0, start - 12, last_end)  # room for "+44 20 " / "(" before the first group
        hi = min(n, run.end() + 1)  # one character of lookahead past the run
        for m in number_re.finditer(text, lo, hi):
            last_end = m.end()
            kind = m.lastgroup
            if kind == "ssn":
                if ssn:
                    hits.append((m.start(), m.end(), "ssn"))
            elif kind == "credit_card":
                raw = m.group()
                digits = raw.replace(" ", "").replace("-", "")
                if card and luhn_ok(digits) and card_prefix_ok(digits) and _card_grouping_ok(raw):
                    hits.append((m.start(), m.end(), "credit_card"))
                elif phone:  # a long number that is no card may still be a phone
                    p = _PHONE_RE.match(text, m.start(), hi)
                    if p is not None and 8 <= sum(ch.isdigit() for ch in p.group()) <= 15:
                        hits.append((p.start(), p.end(), "phone"))
            elif phone and 8 <= sum(ch.isdigit() for ch in m.group()) <= 15:
                hits.append((m.start(), m.end(), "phone"))
    return hits


# ---- custom patterns ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomRule:
    """A pattern from `[redaction] custom_patterns`: every match is replaced by its name."""

    name: str
    regex: re.Pattern[str]


# ---- the scanner -------------------------------------------------------------------------------

Hit = tuple[int, int, str]  # start, end, kind


class Scanner:
    """Finds and replaces secrets and personal data in text, for one set of detectors.

    Built once (the regexes are compiled at construction); `scrub` is the hot path.
    Thread-compatible: it holds no per-call state.
    """

    def __init__(
        self,
        enabled: Iterable[str] = DETECTOR_NAMES,
        key_prefixes: Iterable[str] = (),
        custom: Sequence[CustomRule] = (),
        *,
        user_paths: bool = False,
        cache_chars: int = 4_000_000,
    ) -> None:
        self.enabled = frozenset(enabled)
        unknown = self.enabled - set(DETECTOR_NAMES)
        if unknown:
            raise ValueError(f"unknown detector(s): {', '.join(sorted(unknown))}")
        rules = [r for r in builtin_rules(key_prefixes) if r.detector in self.enabled]
        kinds = [r.kind for r in LITERAL_RULES] + [r.kind for r in rules]
        self._priority = {kind: i for i, kind in enumerate(dict.fromkeys(kinds))}
        self._literals = tuple(r for r in LITERAL_RULES if r.detector in self.enabled)
        self._groups = compile_anchor_groups(rules, lower=False)
        self._lower_groups = compile_anchor_groups(rules, lower=True)
        self._email = "email" in self.enabled
        self._url_password = "url_password" in self.enabled
        self._card = "credit_card" in self.enabled
        self._ssn = "ssn" in self.enabled
        self._phone = "phone" in self.enabled
        self._numbers = self._card or self._ssn or self._phone
        self._custom = tuple(custom)
        self._user_paths = user_paths
        self.min_length = 6  # shorter strings cannot hold any built-in secret
        if self._custom or user_paths:
            self.min_length = 1
        # Results by input string. Events repeat strings constantly: the same command
        # line, endpoint and system prompt on every call, and the whole conversation
        # history on every turn of a chat. Bounded by the characters it holds, each entry
        # also counted for its ~160 bytes of overhead (a stream of short unique strings,
        # ids and one-line prompts, would otherwise fill it with ~200,000 entries over
        # hours: ~40 MB per scanner); cleared when full (cheaper than LRU bookkeeping on
        # the hot path). 4M: a long agent history fits many times over, and a steady load
        # of unique short strings fills it within ~15 minutes, after which memory is flat.
        self.cache: dict[str, tuple[str | None, tuple[str, ...]]] = {}  # text -> (new or None, kinds)
        self.cache_chars = 0
        self.cache_limit = cache_chars

    # ---- finding ---------------------------------------------------------------------

    def find(self, text: str) -> list[Hit]:
        """Every hit in `text`, unsorted and possibly overlapping."""
        hits: list[Hit] = []
        for literal in self._literals:
            if literal.literal in text:
                for m in literal.regex.finditer(text):
                    span = m.span("secret") if "secret" in literal.regex.groupindex else m.span()
                    hits.append((span[0], span[1], literal.kind))
        for group in self._groups:
            if group.anchor in text:
                first = group.regex.search(text)
                if first is not None:  # the usual case is no match at all
                    self._anchor_hits(group, text, text, hits, first.start())
        if self._lower_groups:
            low = text.lower()
            if len(low) != len(text):  # a character whose lower case is longer (rare)
                low = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
            for group in self._lower_groups:
                if group.anchor in low:
                    first = group.regex.search(low)
                    if first is not None:
                        self._anchor_hits(group, low, text, hits, first.start())
        if (self._email or self._url_password) and "@" in text:
            hits.extend(_at_hits(text, self._email, self._url_password))
        if self._numbers:
            hits.extend(_number_hits(text, self._card, self._ssn, self._phone))
        if self._user_paths:
            for m in _USER_PATH_RE.finditer(text):
                hits.append((m.start(1), m.end(1), "username"))
        for rule in self._custom:
            for m in rule.regex.finditer(text):
                if m.end() > m.start():
                    hits.append((m.start(), m.end(), rule.name))
        return hits

    @staticmethod
    def _anchor_hits(group: _AnchorGroup, scan: str, original: str, hits: list[Hit], start: int = 0) -> None:
        """Hits of one anchor regex run on `scan` (the text, or its lower-cased copy), from
        `start` on (where a search found the first; lookbehinds still see what precedes)."""
        alts = group.alts
        for m in group.regex.finditer(scan, start):
            alt = alts[int(m.lastgroup.rpartition("__")[2])]  # type: ignore[union-attr]
            rule = alt.rule
            quoted = False
            if alt.quoted_group is not None and m.start(alt.quoted_group) >= 0:
                start, end = m.span(alt.quoted_group)
                quoted = True
            elif alt.secret_group is not None and m.start(alt.secret_group) >= 0:
                start, end = m.span(alt.secret_group)
            else:
                start, end = m.start() - alt.anchor_at, m.end()
            if rule.check is not None and not rule.check(original[start:end], quoted):
                continue
            hits.append((start, end, rule.kind))

    # ---- replacing -------------------------------------------------------------------

    def scrub(self, text: str) -> tuple[str, list[str]]:
        """`text` with every hit replaced, and the kind of each replacement (in order).

        Returns the very same string object when nothing was found, so callers can
        tell "unchanged" with `is`.
        """
        if len(text) < self.min_length:
            return text, []
        cached = self.cache.get(text)
        if cached is not None:
            return (text if cached[0] is None else cached[0]), list(cached[1])
        hits = self.find(text)
        if hits:
            new, kinds = self.replace(text, hits)
        else:
            new, kinds = text, []
        if self.cache_limit:
            cost = len(text) + _ENTRY_COST
            if self.cache_chars + cost > self.cache_limit:
                self.cache.clear()
                self.cache_chars = 0
            if len(text) <= self.cache_limit // 4:
                self.cache[text] = (None if new is text else new, tuple(kinds))
                self.cache_chars += cost
        return new, kinds

    def replace(self, text: str, hits: list[Hit]) -> tuple[str, list[str]]:
        """Merge overlapping hits and splice `[REDACTED:<kind>]` in their place."""
        priority = self._priority
        hits.sort(key=lambda h: (h[0], priority.get(h[2], len(priority)), -h[1]))
        out: list[str] = []
        kinds: list[str] = []
        pos = 0
        cur_start, cur_end, cur_kind = hits[0]
        for start, end, kind in hits[1:]:
            if start < cur_end:  # overlaps: extend, never trim
                if end > cur_end:
                    cur_end = end
                continue
            out.append(text[pos:cur_start])
            out.append(REDACTED.format(cur_kind))
            kinds.append(cur_kind)
            pos = cur_end
            cur_start, cur_end, cur_kind = start, end, kind
        out.append(text[pos:cur_start])
        out.append(REDACTED.format(cur_kind))
        kinds.append(cur_kind)
        out.append(text[cur_end:])
        return "".join(out), kinds


# Home directories in paths: /home/<user>/, /Users/<user>/, C:\Users\<user>\ .
_USER_PATH_RE = re.compile(r"(?:/home/|/Users/|[A-Za-z]:\\Users\\)([^/\\\s\"']+)")
