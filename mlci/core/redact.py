"""The one place that decides what of a URL, a message or a command line is safe to print or log.

A URL keeps its scheme, host, port and path; user info (``user:token@``), the query string and the
fragment are dropped. Redaction never raises: a URL Python cannot parse (``host:abc``, a bad IPv6
literal) still loses its user info, so an error about a malformed URL cannot leak the secret in it.
"""

from __future__ import annotations

import re
import urllib.parse

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_USERINFO = re.compile(r"^[^@/?#]*@")
# -p KEY=VALUE, --param KEY=VALUE, --param=KEY=VALUE, and options that carry secrets by name.
_VALUE_OPTIONS = ("-p", "--param", "--params", "--set", "--token", "--password", "--api-key", "--secret")
_SECRET_WORD = re.compile(r"(token|secret|passw(or)?d|api[_-]?key|auth|credential)", re.IGNORECASE)
_KEY_VALUE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.+)$", re.DOTALL)
REDACTED = "***"
_USERINFO_IN_TEXT = re.compile(r"(?<![\w.-])[\w.%+-]+:[^\s@/'\"]+@(?=[\w.-])")  # user:secret@host without a scheme
# Tokens: 32+ characters of letters and digits mixed (API tokens, JWT parts); hex digests are masked too.
_LONG_TOKEN = re.compile(r"\b(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{32,}\b")
_SECRET_ENV = re.compile(r"(TOKEN|SECRET|PASSW|API_?KEY|CREDENTIAL|AUTH)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` without user info, query string and fragment."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    authority, slash, path = rest.partition("/")
    authority = _USERINFO.sub("", authority)
    return f"{scheme}{sep}{authority}{slash}{path}"


def url_problem(url: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """Why ``url`` is not a usable ``scheme://host[:port]/path`` URL (``None`` when it is)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        reason = str(exc)
        if "Port" in reason or "port" in reason:
            return "the port is not a number between 1 and 65535"
        return "it cannot be parsed as a URL"
    if parts.scheme not in schemes:
        return f"it does not start with {' or '.join(s + '://' for s in schemes)}"
    if not parts.hostname:
        return "it has no host"
    if port == 0:
        return "the port is not a number between 1 and 65535"
    return None


def scrub_text(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> str:
    """``text`` with every URL in it redacted, ``name=secret`` style values and each of ``secrets`` masked."""
    text = str(text)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    text = _USERINFO_IN_TEXT.sub("", text)
    text = _LONG_TOKEN.sub(REDACTED, text)
    return re.sub(r"(?i)\b([A-Za-z0-9_]*(?:token|secret|password|passwd|api[_-]?key)[A-Za-z0-9_]*)"
                  r"(\s*[=:]\s*)(\S+)", lambda m: m.group(1) + m.group(2) + REDACTED, text)


def redact_argv(argv: list[str]) -> list[str]:
    """A command line fit for a log: option values that may carry data or secrets are masked."""
    out: list[str] = []
    mask_next = False
    for arg in map(str, argv):
        if mask_next:
            out.append(_mask_assignment(arg))
            mask_next = False
            continue
        option, eq, value = arg.partition("=")
        if arg.startswith("-") and option in _VALUE_OPTIONS:
            if eq:
                out.append(f"{option}={_mask_assignment(value)}")
            else:
                out.append(arg)
                mask_next = True
            continue
        if arg.startswith("-p") and len(arg) > 2 and not arg.startswith("--"):  # -pKEY=VALUE
            out.append("-p" + _mask_assignment(arg[2:]))
            continue
        if "://" in arg:
            out.append(scrub_text(arg))
            continue
        if eq and _SECRET_WORD.search(option):
            out.append(f"{option}={REDACTED}")
            continue
        out.append(scrub_text(arg))
    return out


def _mask_assignment(text: str) -> str:
    match = _KEY_VALUE.match(text)
    return f"{match.group(1)}={REDACTED}" if match else REDACTED


def secret_values(argv: list[str], environ: dict[str, str]) -> set[str]:
    """Values that must never reach a log: what ``redact_argv`` masks, URL passwords, secret-named variables."""
    found: set[str] = set()
    for original, redacted in zip(map(str, argv), redact_argv(argv)):
        if original != redacted and "://" not in original:
            value = original.partition("=")[2] if original.startswith("-") and "=" in original else original
            found.add(value.partition("=")[2] if "=" in value else value)  # KEY=VALUE -> VALUE
        for url in _URL_IN_TEXT.findall(original):
            found.update(_userinfo_secrets(url))
    for name, value in environ.items():
        if _SECRET_ENV.search(name) and value:
            found.add(value)
        if "://" in value:
            found.update(_userinfo_secrets(value))
    return {value for value in found if len(value) >= 4}


def _userinfo_secrets(url: str) -> set[str]:
    authority = url.partition("://")[2].split("/", 1)[0]
    userinfo = authority.rpartition("@")[0]
    return {userinfo, userinfo.partition(":")[2]} - {""} if userinfo else set()
