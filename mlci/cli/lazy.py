"""A Click group whose subcommands are imported only when they run.

Short help texts live in the table beside the import path, so ``mlci --help`` lists every command
without importing any of them.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    def __init__(self, *args, lazy_commands: dict[str, tuple[str, str]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands:
            return self._load(name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy_commands:
                rows.append((name, self.lazy_commands[name][1]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            import difflib
            close = difflib.get_close_matches(args[0], self.list_commands(ctx), n=1) if args else []
            if close and "No such command" in str(exc):
                raise click.UsageError(f"{exc.message} Did you mean '{close[0]}'?", ctx) from None
            raise

    def _load(self, name: str) -> click.Command:
        target, _ = self.lazy_commands[name]
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        add_json_option(command)
        return command


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        from mlci.cli.context import AppContext

        ctx.ensure_object(AppContext).json = True


def add_json_option(command: click.Command) -> None:
    """Accept the global ``--json`` after the subcommand too (``mlci gate --json``), on every command of
    a group as well; it sets the same flag as ``mlci --json gate``."""
    if not any("--json" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(click.Option(["--json"], is_flag=True, expose_value=False, callback=_set_json,
                                           help="Print the result as JSON on stdout (as `mlci --json`)."))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_json_option(sub)
