"""Configuration on the command line: bad files stop with one exact line and exit 2;
check-config prints the effective configuration with secrets masked."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from vedirect_async import cli
from vedirect_async.settings import load_config

ROOT = Path(__file__).resolve().parent.parent

BAD_FILES = [
    (
        "[watchdog]\nsilence_timout = 5\n",
        "{f}:2: watchdog.silence_timout = 5: expected no such key (known keys here: "
        "backoff_initial, backoff_max, invalid_timeout, silence_timeout, stuck_timeout)",
    ),
    (
        '[http]\nport = "8080"\n',
        "{f}:2: http.port = '8080': expected an integer from 1 to 65535",
    ),
    ("[http]\nport = 70000\n", "{f}:2: http.port = 70000: expected an integer from 1 to 65535"),
    (
        '[logging]\nlevel = "LOUD"\n',
        "{f}:2: logging.level = 'LOUD': expected one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', "
        "'CRITICAL'",
    ),
    (
        "[csv\nenabled = true\n",
        "{f}: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 5)",
    ),
    (
        '[[device]]\nname = "my bmv"\n',
        "{f}:2: device[0].name = 'my bmv': expected 1-64 letters, digits, '_' or '-' (it is "
        "used in topics and file names)",
    ),
    (
        '[[device]]\nname = "bmv"\n[[device]]\nname = "bmv"\nport = "simulator:mppt"\n',
        "{f}:4: device[1].name = 'bmv': expected a name not used by another [[device]]",
    ),
    (
        "[watchdog]\nsilence_timeout = 0\n",
        "{f}:2: watchdog.silence_timeout = 0: expected a number >= 0.05",
    ),
    (
        "[watchdog]\nbackoff_initial = 10\nbackoff_max = 5\n",
        "{f}:3: watchdog.backoff_max = 5.0: expected a number >= watchdog.backoff_initial (10.0)",
    ),
    # A secret in a bad value is never echoed, not even in the error.
    ("[mqtt]\npassword = 12345\n", "{f}:2: mqtt.password = ***: expected a string"),
]


@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_config_file_is_one_exact_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, text: str, message: str
) -> None:
    """Each kind of mistake names file, line, key, value and expectation, and exits 2."""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    code = cli.main([command, "--config", str(path)] if command == "run" else [command, str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == "vedirect-async: " + message.format(f=path) + "\n"
    assert out == ""


def test_missing_config_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An explicit --config that does not exist stops with a hint, exit 2."""
    path = tmp_path / "nope.toml"
    assert cli.main(["--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"vedirect-async: {path}: file not found (expected a TOML configuration file; "
        "copy config.toml from the project)\n"
    )


def test_check_config_prints_loadable_toml_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The printed TOML is the effective config (file + env), loads back, and hides secrets."""
    path = tmp_path / "config.toml"
    path.write_text(
        '[[device]]\nname = "shunt"\nport = "/dev/ttyUSB0"\n\n[mqtt]\nenabled = true\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("VEDIRECT_MQTT__PASSWORD", "hunter2")
    monkeypatch.setenv("VEDIRECT_WATCHDOG__SILENCE_TIMEOUT", "7")
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert out.startswith(f"# effective configuration from {path}\n")
    printed = tomllib.loads(out)
    assert printed["mqtt"]["password"] == "***"
    assert printed["device"] == [
        {
            "name": "shunt",
            "port": "/dev/ttyUSB0",
            "baudrate": 19200,
            "registers": ["defaults"],
            "register_interval": 30.0,
            "writable": [],
        }
    ]
    assert printed["watchdog"]["silence_timeout"] == 7.0
    # Round trip: the printed file (secret aside) is the same configuration.
    again = tmp_path / "again.toml"
    again.write_text(out, encoding="utf-8")
    monkeypatch.delenv("VEDIRECT_WATCHDOG__SILENCE_TIMEOUT")
    reloaded = load_config(again)
    original = load_config(path)
    assert reloaded.device == original.device
    assert reloaded.watchdog.silence_timeout == 7.0
    assert reloaded.csv == original.csv
    assert reloaded.http == original.http


def test_check_config_json_and_default_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a path, ./config.toml is used if present, else the built-in defaults."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check-config", "--format", "json"]) == 0
    defaults = json.loads(capsys.readouterr().out)
    assert defaults["device"][0]["port"] == "simulator:bmv712"
    (tmp_path / "config.toml").write_text("[http]\nport = 9999\n", encoding="utf-8")
    assert cli.main(["check-config", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["http"]["port"] == 9999


def test_shipped_config_checks_clean(capsys: pytest.CaptureFixture[str]) -> None:
    """The repository's config.toml (the documented default) validates, exit 0."""
    assert cli.main(["check-config", str(ROOT / "config.toml")]) == 0
    assert "[[device]]" in capsys.readouterr().out
