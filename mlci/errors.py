"""The one exception tree of mlci. Each class carries its exit code; only ``mlci.cli`` prints them.

Exit codes (the contract documented in the README and used by the generated Jenkinsfiles):
0 ok, 1 a check said no, 2 usage or configuration error / bad input file,
3 an external service or the environment failed, 4 internal error, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130


class MlciError(Exception):
    """Base class. ``message`` is one line; ``hint`` says what to do next."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class CheckFailed(MlciError):
    """A check ran and said no (integrity failure, stale file, ...)."""

    exit_code = EXIT_CHECK_FAILED


class IntegrityError(CheckFailed):
    """An artifact does not match the hash recorded for it."""


class UsageError(MlciError):
    """Bad command-line usage or a bad input file."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """The configuration is wrong. Carries every problem found, one line each."""

    def __init__(self, issues: list[ConfigIssue] | str, *, hint: str | None = None) -> None:
        if isinstance(issues, str):
            issues = [ConfigIssue(message=issues, hint=hint)]
        self.issues = issues
        # Each issue's line carries its own hint, so the error has no separate hint line.
        super().__init__("\n".join(i.format() for i in issues))


class DataError(UsageError):
    """A data file cannot be read as a table (missing, empty, malformed, unsupported)."""


class NotFound(UsageError):
    """A named thing (model version, alias, job, stage) does not exist."""


class ServiceError(MlciError):
    """An external service or the environment failed: Jenkins, Docker, a registry, the Pushgateway."""

    exit_code = EXIT_SERVICE


class InternalError(MlciError):
    exit_code = EXIT_INTERNAL


class ConfigIssue:
    """One problem in a configuration or schema file, located as precisely as we can."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.path = path
        self.hint = hint

    def format(self) -> str:
        where = self.file or ""
        if self.line:
            where += f":{self.line}"
        parts = [p for p in (where, self.path) if p]
        text = ": ".join(parts + [self.message])
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}
