"""The ``mlci`` command: global options, the lazy command table, and the one error handler."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import click

from mlci import __version__
from mlci.cli.context import AppContext
from mlci.cli.lazy import LazyGroup
from mlci.core.redact import redact_argv, scrub_text, secret_values
from mlci.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, MlciError

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("mlci.cli.cmd_init:init", "Create a new mlci project (config, schema, example data, pipelines)."),
    "config": ("mlci.cli.cmd_config:config", "Check mlci.yaml or print its JSON Schema."),
    "schema": ("mlci.cli.cmd_data:schema", "Infer a data schema from a CSV or Parquet file."),
    "validate": ("mlci.cli.cmd_data:validate", "Check data against the schema."),
    "train": ("mlci.cli.cmd_model:train", "Train the model, cross-validate, register a version."),
    "evaluate": ("mlci.cli.cmd_model:evaluate", "Holdout metrics, slices, latency, HTML report."),
    "gate": ("mlci.cli.cmd_model:gate", "Decide whether a model is good enough to ship."),
    "registry": ("mlci.cli.cmd_registry:registry", "List, show, promote, roll back and diff model versions."),
    "run": ("mlci.cli.cmd_run:run", "Run the pipeline stages locally, in order."),
    "jenkinsfile": ("mlci.cli.cmd_jenkins:jenkinsfile", "Write the commit and nightly Jenkins pipelines."),
    "jenkins": ("mlci.cli.cmd_jenkins:jenkins", "Sync, trigger, follow and lint Jenkins jobs."),
    "serve": ("mlci.cli.cmd_serve:serve", "Serve a model over HTTP."),
    "build": ("mlci.cli.cmd_image:build", "Build the serving image."),
    "push": ("mlci.cli.cmd_image:push", "Push the serving image to its registry."),
    "deploy": ("mlci.cli.cmd_deploy:deploy", "Roll the image out to an environment, health-gated."),
    "rollback": ("mlci.cli.cmd_deploy:rollback", "Return an environment to its previous deployment."),
    "experiment": ("mlci.cli.cmd_experiment:experiment", "Report or conclude a live shadow or canary experiment."),
    "monitor": ("mlci.cli.cmd_monitor:monitor", "Measure drift and performance on recent data."),
    "alerts": ("mlci.cli.cmd_monitor:alerts", "Write Prometheus alerting rules."),
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="mlci")
@click.option("-C", "--project", "project_dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="MLCI_PROJECT", help="Project directory (default: current directory).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="MLCI_CONFIG", help="Config file (default: PROJECT/mlci.yaml).")
@click.option("--json", "json_output", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--debug", is_flag=True, envvar="MLCI_DEBUG", help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path | None, config_file: Path | None, json_output: bool,
        debug: bool) -> None:
    """mlci: CI/CD for machine-learning projects on Jenkins.

    Exit codes: 0 ok, 1 a check said no, 2 usage or configuration error,
    3 an external service failed, 4 internal error, 130 interrupted.
    """
    ctx.obj = AppContext(project_dir=project_dir, config_file=config_file, json=json_output, debug=debug)


def main(argv: list[str] | None = None) -> None:
    code = run(argv)
    if threading.active_count() == 1:  # no other thread to wait for
        _exit_without_teardown(code)
    sys.exit(code)


def _exit_without_teardown(code: int) -> None:
    """End the process as Python's own exit does (atexit handlers, then the standard streams flushed),
    but without tearing down every module and freeing every object one by one, which costs 80–110 ms of
    CPU after ``mlci validate`` (about 370 modules, Arrow's memory pools) and serves no process that is
    about to end. Files are closed by ``with`` blocks and reports written atomically before this."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`mlci ... | head`) or stream: nothing left to say
            pass
    os._exit(code)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and map every outcome to the documented exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("MLCI_DEBUG"))
    try:
        result = cli.main(args=args, prog_name="mlci", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("mlci: interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except MlciError as exc:
        if debug:
            _print_traceback()
        print_error(exc)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except Exception as exc:  # an mlci bug: one line for the user, the traceback in a log file
        if debug:
            _print_traceback()
        secrets = secret_values(["mlci", *args], dict(os.environ))
        log_file = _write_crash_log(["mlci", *args], secrets)
        where = f" (traceback in {log_file})" if log_file else ""
        click.echo(f"mlci: internal error: {type(exc).__name__}: {_one_line(exc, secrets)}{where}", err=True)
        return EXIT_INTERNAL
    return result if isinstance(result, int) else 0


def _print_traceback() -> None:
    import traceback  # only on the error path: start-up time matters for every command

    traceback.print_exc()


def print_error(exc: MlciError) -> None:
    lines = str(exc).splitlines() or [type(exc).__name__]
    for line in lines:
        click.echo(f"mlci: error: {line}", err=True)
    if exc.hint:
        click.echo(f"mlci: hint: {exc.hint}", err=True)


def _one_line(exc: BaseException, secrets: set[str]) -> str:
    text = " ".join(scrub_text(str(exc), secrets).split())
    return text[:300]


def _write_crash_log(argv: list[str], secrets: set[str]) -> str | None:
    import traceback

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlci"
    try:
        base.mkdir(parents=True, exist_ok=True)
        path = base / "crash.log"
        with path.open("a", encoding="utf-8") as handle:
            # Never the raw command line or message: -p KEY=VALUE values, URL credentials, tokens.
            shown = redact_argv(argv)
            handle.write(f"--- mlci {__version__}, python {sys.version.split()[0]}, argv {shown!r}\n")
            handle.write(scrub_text(traceback.format_exc(), secrets))
        return str(path)
    except OSError:
        return None
