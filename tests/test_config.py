"""Configuration loading: defaults, the shipped file, errors as one line, env overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from vedirect_async.outputs.domoticz import DomoticzConfig
from vedirect_async.settings import ConfigError, load_config, masked

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_the_default() -> None:
    """The repository's config.toml loads and equals the built-in defaults."""
    shipped = load_config(ROOT / "config.toml", environ={})
    defaults = load_config(None, environ={})
    assert masked(shipped) | {"source": ""} == masked(defaults) | {"source": ""}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[watchdog]\nsilence_timout = 3\n",
            "bad.toml:2: watchdog.silence_timout = 3: expected no such key",
        ),
        (
            "[watchdog]\nsilence_timeout = 'x'\n",
            "bad.toml:2: watchdog.silence_timeout = 'x': expected a number >= 0.05",
        ),
        (
            "[http]\nport = 70000\n",
            "bad.toml:2: http.port = 70000: expected an integer from 1 to 65535",
        ),
        (
            "[logging]\nlevel = 'LOUD'\n",
            "bad.toml:2: logging.level = 'LOUD': expected one of 'DEBUG'",
        ),
        (
            "[[device]]\nname = 'a b'\nport = 'x'\n",
            "bad.toml:2: device[0].name = 'a b': expected 1-64",
        ),
        ("[csv]\nenabled = 1\n", "bad.toml:2: csv.enabled = 1: expected true or false"),
        ("[mqtt\n", "bad.toml: not valid TOML"),
        ("[domoticz]\npassword = 5\n", "bad.toml:2: domoticz.password = ***: expected a string"),
    ],
)
def test_bad_config_one_line(tmp_path: Path, text: str, message: str) -> None:
    """Each bad file gives one line naming file, line, key, value and expectation."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    shown = str(info.value).replace(str(tmp_path) + "/", "")
    assert shown.startswith(message)
    assert "\n" not in shown


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a clear one-line error."""
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_env_overrides_and_masking(tmp_path: Path) -> None:
    """VEDIRECT_SECTION__KEY overrides the file; secrets are masked in the effective config."""
    path = tmp_path / "c.toml"
    path.write_text("[domoticz]\nenabled = true\n[[device]]\nname='bmv'\nport='/dev/x'\n")
    config = load_config(
        path,
        environ={
            "VEDIRECT_DOMOTICZ__PASSWORD": "s3cret",
            "VEDIRECT_DOMOTICZ__INTERVAL": "12",
            "VEDIRECT_DEVICE__0__PORT": "/dev/ttyUSB1",
        },
    )
    assert config.section("domoticz", DomoticzConfig).password == "s3cret"
    assert config.section("domoticz", DomoticzConfig).interval == 12.0
    assert config.device[0].port == "/dev/ttyUSB1"
    shown = masked(config)
    assert shown["domoticz"]["password"] == "***"
    assert "s3cret" not in repr(shown)


def test_device_registers_are_checked_with_file_and_line(tmp_path: Path) -> None:
    """Register ids and names are validated at start-up; a bad one names file:line and key."""
    path = tmp_path / "config.toml"
    path.write_text(
        '[[device]]\nname = "mppt"\nport = "/dev/ttyUSB0"\n'
        'registers = ["defaults", "0xEDDB", "absorption_voltage"]\nregister_interval = 0\n'
    )
    device = load_config(path).device[0]
    assert device.registers == ["defaults", "0xEDDB", "absorption_voltage"]
    assert device.register_interval == 0
    path.write_text(
        '[[device]]\nname = "mppt"\nport = "/dev/ttyUSB0"\nregisters = ["0xEDDB", "EDDB"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}:4: device[0].registers[1] = 'EDDB': expected a 16-bit register id" in message
    path.write_text("[[device]]\nregister_interval = 0.01\n")
    with pytest.raises(ConfigError, match=r"register_interval = 0.01: expected 0 \(only at"):
        load_config(path)
    path.write_text("[[device]]\nregister_interval = -1\n")
    with pytest.raises(ConfigError, match="register_interval = -1: expected a number >= 0"):
        load_config(path)
