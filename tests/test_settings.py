"""Settings from the environment: known variables parse, an unknown RECO_* variable stops us."""

import os
import re
import subprocess
import sys

import msgspec
import pytest

from service.settings import Settings, UnknownSettingError
from tests.conftest import ROOT


def test_known_variables_parse_and_other_variables_are_left_alone():
    settings = Settings.from_env({
        "RECO_REDIS_URL": "redis://127.0.0.1:6379/0", "RECO_MAX_BODY_KB": "2048",
        "RECO_METRICS": "false", "RECO_BUNDLE_POLL_S": "0", "RECO_LOG_FORMAT": "json",
        "RECO_DEFAULT_MARKET": "",  # empty: the default
        "RECO_TEST_REDIS_URL": "redis://127.0.0.1:6390/0",  # the test suite's, not a setting
        "PATH": "/usr/bin", "REDIS_URL": "redis://elsewhere"})
    assert settings == Settings(redis_url="redis://127.0.0.1:6379/0", max_body_kb=2048,
                                metrics=False, bundle_poll_s=0.0, log_format="json")


def test_an_invalid_value_is_refused():
    with pytest.raises(msgspec.ValidationError, match="max_body_kb"):
        Settings.from_env({"RECO_MAX_BODY_KB": "lots"})


def test_an_unknown_variable_is_refused_naming_the_closest_setting():
    with pytest.raises(UnknownSettingError) as caught:
        Settings.from_env({"RECO_REDIS_ULR": "redis://127.0.0.1:6379/0"})
    message = str(caught.value)
    assert "unknown setting RECO_REDIS_ULR (did you mean RECO_REDIS_URL?)" in message
    assert "README.md, section 'Configuration of the service'" in message


def test_every_unknown_variable_is_named_once():
    with pytest.raises(UnknownSettingError) as caught:
        Settings.from_env({"RECO_WORKERS": "4", "RECO_LOGLEVEL": "debug", "RECO_LOG_LEVEL": "info"})
    assert caught.value.names == ["RECO_LOGLEVEL", "RECO_WORKERS"]
    message = str(caught.value)
    assert "RECO_LOGLEVEL (did you mean RECO_LOG_LEVEL?)" in message
    assert "RECO_WORKERS:" in message, "no suggestion when nothing is close"


def test_the_readme_documents_every_setting_and_no_other():
    """The refusal points at the README's table: it must list exactly the settings."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration of the service", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(RECO_[A-Z_]+)` \|", section, flags=re.MULTILINE)
    assert sorted(documented) == sorted(Settings.env_names())


def _service(*args: str, **variables: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECO_")}
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=ROOT, timeout=120,
                          env={**env, **variables}, capture_output=True, text=True)


def test_serve_refuses_to_start_with_a_misspelt_variable():
    """The typo that matters: without the refusal this runs without Redis (and, with two
    workers, fails for that instead of for the typo)."""
    run = _service("serve", "--workers", "2", RECO_REDIS_ULR="redis://127.0.0.1:6379/0")
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: unknown setting RECO_REDIS_ULR (did you mean "
                                 "RECO_REDIS_URL?)"), run.stderr
    assert "README.md" in run.stderr


def test_picks_refuses_to_start_with_an_unknown_variable(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("c00001\n")
    run = _service("picks", "--users", str(users), "--out", str(tmp_path / "out.ndjson"),
                   "--bundle", str(tmp_path / "no-bundle"), RECO_CAMPAIGN="weekly")
    assert run.returncode == 2 and "unknown setting RECO_CAMPAIGN" in run.stderr, run.stderr
    assert not (tmp_path / "out.ndjson").exists()
