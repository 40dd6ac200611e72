"""Hostile and mistaken configuration input (issues 16.4, 16.5, 13): always one line, exit 2.

Every case here crashed, hung, slipped through or printed a secret before: a TypeError or an
AttributeError from an environment override, gigabytes allocated for a list index, a
RecursionError, ``nan`` accepted as a timeout, a FIFO read forever, a misspelt password key
echoed with its value, and a bad variable blamed on an unrelated line of the file.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import typing
from pathlib import Path

import pytest

from vedirect_async.settings import ConfigError, load_config, schema

from .entry_point import run_entry_point

ROOT = Path(__file__).resolve().parent.parent
SECRET = "MQTTSECRET-4f2a9c"


def error_of(tmp_path: Path, text: str | None, environ: dict[str, str] | None = None) -> str:
    """The ConfigError message for this file text (None = no file) and environment."""
    path = None
    if text is not None:
        path = tmp_path / "c.toml"
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    message = str(info.value).replace(str(tmp_path) + "/", "")
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"VEDIRECT_HTTP__PORT__X": "1"},
            "environment: VEDIRECT_HTTP__PORT__X: http.port is a value, not a table: "
            "expected VEDIRECT_HTTP__PORT=value",
        ),
        (
            {"VEDIRECT_DEVICE__0__NAME__X": "1"},
            "environment: VEDIRECT_DEVICE__0__NAME__X: device[0].name is a value, not a table",
        ),
        (
            {"VEDIRECT_DEVICE__99999999999__PORT": "x"},
            "environment: VEDIRECT_DEVICE__99999999999__PORT: device index '99999999999': "
            "expected 0 to 1",
        ),
        ({"VEDIRECT_DEVICE__3__PORT": "x"}, "environment: VEDIRECT_DEVICE__3__PORT: device index"),
        ({"VEDIRECT_DEVICE__0": "x"}, "environment: VEDIRECT_DEVICE__0: expected a key after"),
        ({"VEDIRECT_DEVICE__NAME": "x"}, "environment: VEDIRECT_DEVICE__NAME: device index 'name'"),
        (
            {"VEDIRECT_MQTT__HOST__": "x"},
            "environment: VEDIRECT_MQTT__HOST__: mqtt.host is a value",
        ),
        ({"VEDIRECT_WATCHDOG__": "x"}, "environment: VEDIRECT_WATCHDOG__: no such key 'watchdog.'"),
        ({"VEDIRECT_HTTP__PROT": "1"}, "environment: VEDIRECT_HTTP__PROT: no such key 'http.prot'"),
        ({"VEDIRECT_NOPE__X": "1"}, "environment: VEDIRECT_NOPE__X: no such key 'nope'"),
        (
            {"VEDIRECT_DOMOTICZ__DEVICES": "1"},
            "environment: VEDIRECT_DOMOTICZ__DEVICES: domoticz.devices is a table: expected "
            "VEDIRECT_DOMOTICZ__DEVICES__<N>__<KEY>=value",
        ),
        # issue 13: a bad value from the environment names the variable, not a file line
        (
            {"VEDIRECT_HTTP__PORT": "abc"},
            "environment: VEDIRECT_HTTP__PORT: http.port = 'abc': expected an integer from 1",
        ),
        (
            {"VEDIRECT_DEVICE__1__NAME": "a b", "VEDIRECT_DEVICE__1__PORT": "x"},
            "environment: VEDIRECT_DEVICE__1__NAME: device[1].name = 'a b': expected 1-64",
        ),
        (
            {"VEDIRECT_CSV__COLUMNS": '["Time", "Volts=nope"]'},
            "environment: VEDIRECT_CSV__COLUMNS: csv.columns[1] = 'Volts=nope': expected",
        ),
        (
            {"VEDIRECT_HTTP__PORT": "8081\nenabled = false"},
            "environment: VEDIRECT_HTTP__PORT: http.port = '8081\\nenabled = false': expected",
        ),
        (
            {"VEDIRECT_WATCHDOG__SILENCE_TIMEOUT": "nan"},
            "environment: VEDIRECT_WATCHDOG__SILENCE_TIMEOUT: watchdog.silence_timeout = nan: "
            "expected a finite number >= 0.05",
        ),
    ],
)
def test_bad_environment_override_is_one_line_naming_the_variable(
    tmp_path: Path, environ: dict[str, str], expected: str
) -> None:
    """Each bad variable is refused in one line that names it (the file has one device and an
    unrelated http.port line, which must not be blamed)."""
    text = "[http]\nport = 8080\n\n[[device]]\nname = 'bmv'\nport = 'simulator:bmv712'\n"
    assert error_of(tmp_path, text, environ).startswith(expected)


def test_environment_may_add_the_next_device_only(tmp_path: Path) -> None:
    """Indices up to one past the file's tables are accepted, in numeric order (2 before 10)."""
    environ = {f"VEDIRECT_DEVICE__{n}__PORT": f"simulator:mppt{n}" for n in range(12)}
    environ |= {f"VEDIRECT_DEVICE__{n}__NAME": f"dev{n}" for n in range(12)}
    config = load_config(None, environ=environ)
    assert [d.name for d in config.device] == [f"dev{n}" for n in range(12)]
    assert config.device[10].port == "simulator:mppt10"


def test_device_not_a_table_with_an_override_is_the_files_error(tmp_path: Path) -> None:
    """`device = "bmv"` plus VEDIRECT_DEVICE__0__PORT was an AttributeError."""
    message = error_of(tmp_path, 'device = "bmv"\n', {"VEDIRECT_DEVICE__0__PORT": "x"})
    assert message == "c.toml:1: device = 'bmv': expected [[device]] tables"
    message = error_of(tmp_path, "http = 5\n", {"VEDIRECT_HTTP__PORT": "1"})
    assert message.startswith("c.toml:1: http = 5: expected a table of enabled, host, port")
    message = error_of(tmp_path, "device = [1]\n", {"VEDIRECT_DEVICE__0__PORT": "x"})
    assert message.startswith("c.toml:1: device[0] = 1: expected a table of name, port")


@pytest.mark.parametrize(
    "url", ["not a url", "http://", "ftp://host", "http:///path", "http://h st:80", "//host:80"]
)
def test_domoticz_url_that_is_no_url(tmp_path: Path, url: str) -> None:
    """A url that is no http(s) URL is refused at load time (it was a ValueError later)."""
    message = error_of(tmp_path, f"[domoticz]\nurl = {url!r}\n")
    assert (
        message
        == f"c.toml:2: domoticz.url = {url!r}: expected http(s)://host:port (port, /path optional)"
    )


def test_domoticz_url_password_is_not_echoed(tmp_path: Path) -> None:
    message = error_of(tmp_path, f"[domoticz]\nurl = 'ftp://admin:{SECRET}@host/'\n")
    assert SECRET not in message
    assert "'ftp://admin:***@host/'" in message


def test_deeply_nested_arrays_are_one_line(tmp_path: Path) -> None:
    """Was a RecursionError from the TOML parser."""
    depth = sys.getrecursionlimit() + 100
    message = error_of(tmp_path, "x = " + "[" * depth + "]" * depth + "\n")
    assert message == "c.toml: not valid TOML: arrays or tables nested too deeply"
    message = error_of(tmp_path, None, {"VEDIRECT_CSV__COLUMNS": "[" * depth + "]" * depth})
    assert message.startswith("environment: VEDIRECT_CSV__COLUMNS: csv.columns = '[[[[")
    assert len(message) < 200


def _float_keys() -> list[tuple[str, str]]:
    """(TOML table header, key) of every float key of the configuration."""
    found: list[tuple[str, str]] = []

    def walk(cls: type[typing.Any], header: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if f.metadata.get("internal"):
                continue
            if dataclasses.is_dataclass(hint):
                walk(hint, f"[{f.name}]")  # type: ignore[arg-type]
            elif typing.get_origin(hint) is list:
                (item,) = typing.get_args(hint)
                if dataclasses.is_dataclass(item):
                    inner = header.strip("[]") + "." if header else ""
                    walk(typing.cast(type, item), f"[[{inner}{f.name}]]")
            elif hint is float:
                found.append((header, f.name))

    walk(schema(), "")  # the core sections and every registered output's
    return found


FLOAT_KEYS = _float_keys()


def test_every_float_key_is_covered() -> None:
    assert len(FLOAT_KEYS) >= 20
    assert ("[watchdog]", "backoff_initial") in FLOAT_KEYS
    assert ("[domoticz]", "infinite_value") in FLOAT_KEYS


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan", "1e400"])
@pytest.mark.parametrize(("header", "key"), FLOAT_KEYS, ids=[f"{h}{k}" for h, k in FLOAT_KEYS])
def test_nan_and_inf_are_refused_for_every_float_key(
    tmp_path: Path, header: str, key: str, value: str
) -> None:
    """nan/inf made /health 500, the web server crash in a loop and backoff busy-loop."""
    message = error_of(tmp_path, f"{header}\n{key} = {value}\n")
    assert f":2: {header.strip('[]')}" in message
    assert "expected a finite number" in message


def test_fifo_as_config_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO with no writer hung the service before reading a byte."""
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    result: list[BaseException | None] = []

    def load() -> None:
        try:
            load_config(fifo, environ={})
        except BaseException as exc:
            result.append(exc)
        else:
            result.append(None)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(5)
    assert result, "load_config blocked on a FIFO"
    assert isinstance(result[0], ConfigError)
    assert str(result[0]) == f"{fifo}: not a regular file (expected a TOML configuration file)"


def test_directory_as_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    message = str(info.value)
    assert message == f"{tmp_path}: a directory (expected a TOML configuration file)"


def test_huge_config_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A 10 MB file took 14 s and 1 GB; over 1 MiB is refused at once."""
    path = tmp_path / "big.toml"
    with path.open("w") as f:
        f.write("[http]\n")
        f.writelines(f"k{n} = {n}\n" for n in range(1_000_000))
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    size = path.stat().st_size
    assert str(info.value) == (
        f"{path}: {size} bytes: expected a configuration file of at most 1048576 bytes"
    )


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"[http]\nhost = '\xff'\n")
    with pytest.raises(ConfigError, match=r"c.toml: cannot read: not UTF-8 text \(byte 15\)$"):
        load_config(path, environ={})


# -- secrets and long values in messages (issue 16.5) ------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"[mqtt]\npasword = '{SECRET}'\n",
        f"[mqtt]\npassword_env = '{SECRET}'\n",
        f"[domoticz]\npasswd = '{SECRET}'\n",
        f"[domoticz]\napi_token = '{SECRET}'\n",
        f"[domoticz]\ntokn = '{SECRET}'\n",
        f"[mqtt]\nsecret = '{SECRET}'\n",
        f"[mqt]\npassword = '{SECRET}'\n",
        f"[mqtt.password]\nvalue = '{SECRET}'\n",
        f"[mqtt]\nhost = {{ password = '{SECRET}' }}\n",
        f"[[mqtt.extra]]\nuser = 'u'\npassword = '{SECRET}'\n",
        f"[mqtt]\nport = 'mqtt://user:{SECRET}@broker'\n",
    ],
)
def test_a_misspelt_secret_is_not_echoed(tmp_path: Path, text: str) -> None:
    """`mqtt.pasword = 'MQTTSECRET...': expected no such key` printed the secret."""
    message = error_of(tmp_path, text)
    assert SECRET not in message
    assert ": expected " in message


def test_a_misspelt_ordinary_key_still_shows_its_value(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[watchdog]\nsilence_timout = 3\n")
    assert message.startswith("c.toml:2: watchdog.silence_timout = 3: expected no such key")


@pytest.mark.parametrize(
    "text",
    [
        "[http]\nhost = " + repr("h" * 5000) + "\nfoo = 1\n",
        "[http]\nfoo = " + repr("x" * 5000) + "\n",
        "[http]\nport = [" + ", ".join(str(n) for n in range(5000)) + "]\n",
        "[http]\nport = {" + ", ".join(f"k{n} = {n}" for n in range(500)) + "}\n",
        "[http]\nport = " + "9" * 4000 + "\n",
    ],
)
def test_echoed_values_are_cut_to_60_characters(tmp_path: Path, text: str) -> None:
    message = error_of(tmp_path, text)
    shown = message.split(" = ", 1)[1].split(": expected", 1)[0]
    assert len(shown) <= 60, shown


def test_unknown_section_has_its_line(tmp_path: Path) -> None:
    """Issue 13: an unknown section got no line number."""
    text = "[http]\nport = 8080\n\n[mqttt]\nhost = 'x'\n"
    assert error_of(tmp_path, text).startswith("c.toml:4: mqttt = {'host': 'x'}: expected no such")
    text = "[http]\nport = 8080\n\n[[devices]]\nname = 'x'\n"
    assert error_of(tmp_path, text).startswith("c.toml:4: devices = [{'name': 'x'}]: expected no")
    text = "[http]\nport = 8080\n[mqtt.tls_options]\nx = 1\n"
    assert error_of(tmp_path, text).startswith("c.toml:3: mqtt.tls_options = {'x': 1}: expected")
    text = "# c\nlog.level = 'x'\n"
    assert error_of(tmp_path, text).startswith("c.toml:2: log = {'level': 'x'}: expected")


@pytest.mark.parametrize("case", ["fifo", "directory", "variable", "nan"])
def test_the_real_process_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    """`python -m vedirect_async` itself: one line on stderr, exit 2, never a hang."""
    config = tmp_path / "c.toml"
    env = dict(os.environ)
    if case == "fifo":
        os.mkfifo(config)
    elif case == "directory":
        config.mkdir()
    elif case == "variable":
        config.write_text("[http]\nport = 8080\n", encoding="utf-8")
        env["VEDIRECT_DEVICE__99999999999__PORT"] = "x"
    else:
        config.write_text("[watchdog]\nbackoff_initial = nan\n", encoding="utf-8")
    done = run_entry_point("--config", str(config), environ=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("vedirect-async: "), done.stderr
