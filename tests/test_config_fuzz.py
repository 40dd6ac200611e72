"""Fuzzing the configuration loader (issue 16): whatever the file and the environment hold, the
result is a Config or a ConfigError of one line that never shows a secret.

Three sources of input, each bounded so the whole module runs in a few seconds: documents built
from the real keys with values of every TOML type, byte-level mutations of the shipped
config.toml, and random VEDIRECT_* variables over a valid file. Values under secret-looking keys
carry a marker that must never appear in a message.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vedirect_async.settings import Config, ConfigError, load_config, schema

ROOT = Path(__file__).resolve().parent.parent
MARKER = "S3CR3T"
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SECRET_NAMES = ("password", "password_file", "token", "pasword", "passwd", "mqtt_password")


def _schema() -> dict[str, list[str]]:
    """Table path -> its keys, for every table of the configuration."""
    tables: dict[str, list[str]] = {}

    def walk(cls: type[typing.Any], path: str) -> None:
        hints = typing.get_type_hints(cls)
        keys = tables.setdefault(path, [])
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            keys.append(f.name)
            inner = f"{path}.{f.name}" if path else f.name
            if dataclasses.is_dataclass(hint):
                walk(hint, inner)  # type: ignore[arg-type]
            elif typing.get_origin(hint) is list:
                (item,) = typing.get_args(hint)
                if dataclasses.is_dataclass(item):
                    walk(typing.cast(type, item), inner)

    walk(schema(), "")  # the core sections and every registered output's
    return tables


SCHEMA = _schema()
KEY_NAMES = sorted({k for keys in SCHEMA.values() for k in keys} | set(SECRET_NAMES) | {"x"})

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
    st.sampled_from(
        ["DEBUG", "info", "simulator:bmv712", "http://h:1", "x://u:p@h", "Time", "V", "failed"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEY_NAMES), inner, max_size=4)
    ),
    max_leaves=12,
)


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, except DEL, which TOML wants escaped)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: object) -> str:
    """``value`` as TOML text (inline tables and arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def secret_free(value: object) -> object:
    """``value`` with the marker removed everywhere (it may appear only under secret keys)."""
    if isinstance(value, str):
        return value.replace(MARKER, "")
    if isinstance(value, list):
        return [secret_free(v) for v in value]
    if isinstance(value, dict):
        return {k: (v if k in SECRET_NAMES else secret_free(v)) for k, v in value.items()}
    return value


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A TOML document of real and near-miss sections and keys with values of any type."""
    lines: list[str] = []
    tables = [*SCHEMA, "mqt", "device.extra"]
    for table in draw(st.lists(st.sampled_from(tables), max_size=5)):
        if table:
            array = table in ("device", "domoticz.devices") and draw(st.booleans())
            lines.append(f"[[{table}]]" if array else f"[{table}]")
        pool = st.sampled_from(SCHEMA.get(table, []) + list(SECRET_NAMES)) | text
        for key in draw(st.lists(pool, max_size=5, unique=True)):
            if key in SECRET_NAMES:
                lines.append(f"{key} = {toml_string(MARKER + draw(text))}")
            else:
                lines.append(f"{toml_string(key)} = {toml_value(secret_free(draw(values)))}")
    return "\n".join(lines) + "\n"


def check(path: Path | None, environ: dict[str, str]) -> None:
    """Loading gives a Config or a one-line ConfigError without the marker; nothing else."""
    try:
        config = load_config(path, environ=environ)
    except ConfigError as exc:
        message = str(exc)
        assert message
        assert message.isprintable(), message
        assert MARKER not in message, message
    else:
        assert isinstance(config, Config)


@FUZZ
@given(text=documents())
def test_random_documents(tmp_path_factory: typing.Any, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "c.toml"
    path.write_text(text, encoding="utf-8")
    check(path, {})


SHIPPED = (ROOT / "config.toml").read_bytes()


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(SHIPPED)),
            st.integers(min_value=0, max_value=8),
            st.binary(max_size=6) | st.sampled_from([b"nan", b"[", b"]", b'"', b"\n[x]\n", b"="]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_shipped_config(
    tmp_path_factory: typing.Any, edits: list[tuple[int, int, bytes]]
) -> None:
    data = bytearray(SHIPPED)
    for at, cut, insert in edits:
        data[at : at + cut] = insert
    path = tmp_path_factory.mktemp("fuzz") / "c.toml"
    path.write_bytes(bytes(data))
    check(path, {})


env_parts = st.sampled_from(
    [*(k.upper() for k in KEY_NAMES), "DEVICE", "DEVICES", "0", "1", "2", "99999999999", "", "X"]
)
env_names = st.lists(env_parts, min_size=1, max_size=5).map(
    lambda parts: "VEDIRECT_" + "__".join(parts)
)
env_values = st.one_of(
    text.filter(lambda t: MARKER not in t),
    values.map(lambda v: toml_value(secret_free(v))),
)


@FUZZ
@given(
    environ=st.dictionaries(env_names, env_values, max_size=4),
    secret=st.sampled_from(SECRET_NAMES),
)
def test_random_environment(
    tmp_path_factory: typing.Any, environ: dict[str, str], secret: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "c.toml"
    path.write_text("[[device]]\nname = 'bmv'\nport = 'x'\n[mqtt]\nhost = 'h'\n", encoding="utf-8")
    environ = {k: v for k, v in environ.items() if "\x00" not in k + v}
    environ[f"VEDIRECT_MQTT__{secret.upper()}"] = MARKER + "x"
    check(path, environ)
