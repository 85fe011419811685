"""The one way user values enter generated Groovy (Jenkinsfiles): a single-quoted literal, or refusal.

Groovy never interpolates single-quoted strings, so a value inside ``'...'`` is data, provided it
cannot close the literal. Groovy decodes ``\\uXXXX`` escapes *before* it tokenizes, which is why the
backslash is escaped first: ``\\u0027`` in a value becomes ``\\\\u0027``, which Groovy reads as a
backslash followed by text, never as a quote.

Identifiers (job, stage, credential id, agent label, image, branch names) are not escaped: they are
checked against an allow-list and refused, because a "safe" escaped job name can still point at
another job (``a/../b``) or confuse a plugin.
"""

from __future__ import annotations

import re

from mlci.errors import ConfigError, ConfigIssue

# Allowed characters after escaping; anything else below U+0020 (and DEL) is refused.
_ESCAPES = (("\\", "\\\\"), ("'", "\\'"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
# A string constant in a Java class file has a 16-bit length (JVM spec 4.4.7, CONSTANT_Utf8_info): Groovy
# cannot compile a longer literal, so Jenkins would reject the whole pipeline.
MAX_LITERAL_BYTES = 65_535
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
IMAGE = re.compile(r"[a-z0-9][a-z0-9._:/@-]{0,254}")

_ALLOWED_TEXT = {
    "name": "letters, digits, '.', '_' and '-', starting with a letter or digit",
    "branch": "letters, digits, '.', '_', '-' and '/'",
    "image": "lower-case letters, digits, '.', '_', '-', ':', '/' and '@'",
}
_PATTERNS = {"name": NAME, "branch": BRANCH, "image": IMAGE}


def groovy_literal(value: object, key: str = "value") -> str:
    """``value`` as a Groovy single-quoted string literal, quotes included.

    Raises ``ConfigError`` naming ``key`` when the value holds a control character other than
    newline, carriage return or tab (a Jenkins ``config.xml`` cannot carry them either).
    """
    if value is None or isinstance(value, (dict, list, tuple, set)):
        raise ConfigError([ConfigIssue(f"expected a text value, got {type(value).__name__}", path=key)])
    text = str(value)
    bad = _CONTROL.search(text)
    if bad:
        raise ConfigError([ConfigIssue(f"value contains control character U+{ord(bad.group()):04X}",
                                       path=key, hint="remove it; newlines and tabs are allowed")])
    size = class_file_bytes(text)
    if size > MAX_LITERAL_BYTES:
        raise ConfigError([ConfigIssue(
            f"value is {size:,} bytes; a Groovy string literal holds at most {MAX_LITERAL_BYTES:,}",
            path=key, hint="Jenkins could not compile the pipeline; shorten it or read it from a file")])
    for raw, escaped in _ESCAPES:  # order matters: the backslash first
        text = text.replace(raw, escaped)
    return f"'{text}'"


def class_file_bytes(text: str) -> int:
    """The size of ``text`` as a constant in a Java class file (modified UTF-8, JVM spec 4.4.7).

    Characters above U+FFFF are stored as two 3-byte surrogates; U+0000 (refused here anyway) takes 2.
    """
    return len(text.encode("utf-8")) + 2 * sum(1 for ch in text if ord(ch) > 0xFFFF) + text.count("\0")


def groovy_int(value: object, key: str = "value") -> str:
    """A Groovy integer literal; refuses anything that is not an ``int``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError([ConfigIssue(f"expected an integer, got {value!r}"[:200], path=key)])
    return str(value)


def require_identifier(value: str, *, key: str, kind: str = "name") -> str:
    """Return ``value`` when it matches the ``kind`` allow-list (name, branch, image); else refuse.

    Raises ``ConfigError`` naming ``key``; nothing is escaped or rewritten.
    """
    if not _allowed(value, kind):
        _refuse(value, key, kind)
    return value


def require_job_path(value: str, *, key: str) -> str:
    """A Jenkins job path: one or more names separated by ``/`` (folders), each allow-listed."""
    if not isinstance(value, str) or not all(_allowed(part, "name") for part in value.split("/")):
        _refuse(value, key, "name")
    return value


def _allowed(value: object, kind: str) -> bool:
    return (isinstance(value, str) and _PATTERNS[kind].fullmatch(value) is not None
            and ".." not in value and "//" not in value and not value.endswith("/"))


def _refuse(value: object, key: str, kind: str) -> None:
    allowed = _ALLOWED_TEXT[kind] + (" (folders separated by '/')" if kind == "name" and "/" in str(value) else "")
    raise ConfigError([ConfigIssue(f"{value!r} is not allowed here"[:200], path=key, hint=f"use {allowed}")])
