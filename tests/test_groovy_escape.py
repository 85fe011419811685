"""The one Groovy escaping function and the identifier allow-lists (mlci.core.groovy).

The round-trip tests evaluate the produced literals with the real Groovy 2.4 in one JVM and compare
what Groovy sees with the original value, byte for byte.
"""

from __future__ import annotations

import base64
import subprocess

import pytest

from mlci.core.groovy import groovy_int, groovy_literal, require_identifier, require_job_path
from mlci.errors import ConfigError

ADVERSARIAL = [
    "it's",
    'say "hi"',
    "${println('INJECTED-GSTRING')}",
    "$HOME ${7*7}",
    "\\u0027; println('INJECTED-UNICODE'); '",
    "\\\\u0027; println('INJECTED-UNICODE2'); '",
    "'''; println('INJECTED-TRIPLE'); '''",
    "'; println('INJECTED-QUOTE'); def x='",
    "trailing backslash\\",
    "back\\slash \\n not a newline",
    "line one\nline two\r\n\tindented",
    "$(touch pwned-subst)",
    "`touch pwned-backtick`",
    "a; touch pwned-semicolon | cat && echo x",
    "unicode: é ü 日本 \u00a0",
]


def test_backslash_is_escaped_before_the_quote():
    assert groovy_literal("\\'") == "'\\\\\\''"
    assert groovy_literal("\\u0027") == "'\\\\u0027'"
    assert groovy_literal("a\nb\rc\td") == "'a\\nb\\rc\\td'"


def test_literal_never_contains_a_raw_newline_or_unescaped_quote():
    for value in ADVERSARIAL:
        literal = groovy_literal(value)
        body = literal[1:-1]
        assert "\n" not in literal and "\r" not in literal
        # every quote in the body is preceded by an odd number of backslashes
        for i, ch in enumerate(body):
            if ch == "'":
                run = len(body[:i]) - len(body[:i].rstrip("\\"))
                assert run % 2 == 1, (value, literal)


@pytest.mark.parametrize("value", ["nul\x00", "bell\x07", "esc\x1b[31m", "del\x7f", "c1\x85", "sep\u2028"])
def test_control_characters_are_refused_naming_the_key(value):
    with pytest.raises(ConfigError) as info:
        groovy_literal(value, "jenkins.install")
    assert "jenkins.install" in str(info.value)
    assert "control character U+" in str(info.value)


def test_non_text_values_are_refused():
    with pytest.raises(ConfigError):
        groovy_literal(None, "k")
    with pytest.raises(ConfigError):
        groovy_literal(["a"], "k")
    assert groovy_literal(3) == "'3'"


def test_groovy_int_accepts_only_integers():
    assert groovy_int(60) == "60"
    for bad in ("60", 6.0, True, "1); evil(", None):
        with pytest.raises(ConfigError):
            groovy_int(bad, "jenkins.timeout_minutes")


@pytest.mark.parametrize("value", ["linux", "build-agent_2.x", "A1"])
def test_identifiers_that_are_allowed(value):
    assert require_identifier(value, key="jenkins.agent.label") == value


@pytest.mark.parametrize("value", ["linux && !x", "x'), string(credentialsId:'prod-admin", "a'}{", "..", "a..b",
                                   "-rf", ".hidden", "", "a b", "a/b", "a\nb", "é"])
def test_identifiers_that_are_refused(value):
    with pytest.raises(ConfigError) as info:
        require_identifier(value, key="image.registry_credentials")
    assert "image.registry_credentials" in str(info.value)


def test_branch_and_image_allow_lists():
    assert require_identifier("release/1.x", key="jenkins.branch", kind="branch") == "release/1.x"
    assert require_identifier("registry.example.com:5000/team/img:1.0", key="k", kind="image")
    for bad in ("main$(curl${IFS}x)", "a//b", "a/../b", "main/", "x;y"):
        with pytest.raises(ConfigError):
            require_identifier(bad, key="jenkins.branch", kind="branch")
    for bad in ("img'), sh('id", "Img:Upper", "img with space"):
        with pytest.raises(ConfigError):
            require_identifier(bad, key="jenkins.agent.docker_image", kind="image")


def test_job_paths_allow_folders_but_not_traversal():
    assert require_job_path("team/ml/credit-risk", key="k") == "team/ml/credit-risk"
    for bad in ("folder/../other", "a?b", "a#b", "%2e%2e", "/abs", "a//b", "a/"):
        with pytest.raises(ConfigError):
            require_job_path(bad, key="jenkins.folder")


_EVAL_SCRIPT = r"""
new File(args[0]).eachLine('UTF-8') { String line ->
    if (!line.trim()) return
    String value = new GroovyShell().evaluate(new String(line.decodeBase64(), 'UTF-8'))
    println '##VALUE ' + value.getBytes('UTF-8').encodeBase64().toString()
}
"""


def test_every_adversarial_value_round_trips_through_groovy(groovy, tmp_path):
    """Groovy evaluates each literal to exactly the original value, and no injected code runs."""
    listing = tmp_path / "literals.txt"
    listing.write_text("\n".join(base64.b64encode(groovy_literal(v).encode()).decode() for v in ADVERSARIAL) + "\n")
    script = tmp_path / "EvalLiterals.groovy"
    script.write_text(_EVAL_SCRIPT)
    proc = subprocess.run([groovy.path, str(script), str(listing)], env=groovy.env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    values = [base64.b64decode(line.split(" ", 1)[1]).decode() for line in proc.stdout.splitlines()
              if line.startswith("##VALUE ")]
    assert values == ADVERSARIAL
    printed = [line for line in proc.stdout.splitlines() if not line.startswith("##VALUE ")]
    assert printed == []
    assert not list(tmp_path.glob("pwned*"))
