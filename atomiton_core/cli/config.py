"""The ``atomiton`` command's configuration file: the environment variables' settings, kept.

Two files are read, the first over the second, key by key: ``atomiton.toml`` in the working
directory (a project's), then ``config.toml`` in the user's configuration folder
(``$XDG_CONFIG_HOME/atomiton/`` on Linux, as ``platformdirs.user_config_dir`` says elsewhere).
``--config FILE`` or ``$ATOMITON_CONFIG`` names the one file to read instead. A setting comes
from, first to last: the command line's option, the environment variable, the file, the
default.

The keys are those of the environment variables (``storage = "..."`` is
``ATOMITON_STORAGE``); a relative ``storage`` path is read from the file's folder.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

__all__ = [
    "PROJECT_FILE",
    "SETTINGS",
    "Config",
    "ConfigFileError",
    "Setting",
    "config_files",
    "load_config",
]

PROJECT_FILE = "atomiton.toml"
USER_FILE = "config.toml"


class ConfigFileError(click.ClickException):
    """A configuration file that cannot be read, or holds an unknown key or a wrong value:
    a usage error of the command (exit 2), as a wrong option is."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Setting:
    """One key of the file and the environment variable it stands for."""

    env: str
    kind: type
    help: str
    #: True: an empty environment variable counts as unset (the command's option and the
    #: library read it so); False: set to "" it is a value (``ATOMITON_PLUGINS=""``: none).
    empty_is_unset: bool = True
    #: True: the library reads only the environment variable, and no option of a command
    #: takes the setting, so the file's value fills in the variable while a command runs.
    environment_only: bool = False


SETTINGS: Mapping[str, Setting] = {
    "storage": Setting(
        "ATOMITON_STORAGE", str, "flow storage: a folder or fsspec URL (commands' --storage)"
    ),
    "executor": Setting(
        "ATOMITON_EXECUTOR",
        str,
        "where blocking nodes run: local, dask or a scheduler address (run --executor)",
    ),
    "token": Setting("ATOMITON_TOKEN", str, "the bearer token of atomiton serve (--token)"),
    "plugins": Setting(
        "ATOMITON_PLUGINS",
        list,
        "the installed plugins to load: entry-point or distribution names",
        empty_is_unset=False,
        environment_only=True,
    ),
    "disable_plugin_autoload": Setting(
        "ATOMITON_DISABLE_PLUGIN_AUTOLOAD",
        bool,
        "load no installed plugin but the core's and those in plugins",
        empty_is_unset=False,
        environment_only=True,
    ),
}


def _env_given(setting: Setting, environ: Mapping[str, str]) -> bool:
    value = environ.get(setting.env)
    return value is not None and (bool(value) or not setting.empty_is_unset)


@dataclass(frozen=True, slots=True)
class Config:
    """The settings read from the files, and where each came from."""

    values: Mapping[str, Any] = field(default_factory=dict)
    #: key -> the file it was read from
    sources: Mapping[str, Path] = field(default_factory=dict)
    #: the files read, in the order they were read (the last one wins)
    files: tuple[Path, ...] = ()

    def option_defaults(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The settings commands' options take as defaults: those whose variable is unset
        (a variable that is set is read by the option or the library, and wins)."""
        env = os.environ if environ is None else environ
        return {
            key: value
            for key, value in self.values.items()
            if not SETTINGS[key].environment_only and not _env_given(SETTINGS[key], env)
        }

    def environment(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment variables to set while a command runs, for the settings the
        library reads from the environment only, and that the environment does not set."""
        env = os.environ if environ is None else environ
        out: dict[str, str] = {}
        for key, value in self.values.items():
            setting = SETTINGS[key]
            if not setting.environment_only or _env_given(setting, env):
                continue
            if isinstance(value, bool):
                out[setting.env] = "1" if value else "0"
            elif isinstance(value, list):
                out[setting.env] = ",".join(value)
            else:
                out[setting.env] = str(value)
        return out


def config_files(cwd: Path | None = None) -> list[Path]:
    """Where the files are looked for, the one that wins last."""
    import platformdirs

    user = Path(platformdirs.user_config_dir("atomiton", appauthor=False)) / USER_FILE
    return [user, (cwd or Path.cwd()) / PROJECT_FILE]


def load_config(path: Path | None = None, *, cwd: Path | None = None) -> Config:
    """Read the configuration: the file ``path`` alone when given (it must exist), else the
    user's and the working directory's files that exist. Raises ConfigFileError naming the
    file and the key for a file that cannot be read, an unknown key or a wrong type."""
    if path is not None:
        if not path.is_file():
            _refuse(path, "no such configuration file", hint="check --config / $ATOMITON_CONFIG")
        candidates = [path]
    else:
        candidates = [p for p in config_files(cwd) if p.is_file()]
    values: dict[str, Any] = {}
    sources: dict[str, Path] = {}
    for file in candidates:
        for key, value in _read(file).items():
            values[key] = value
            sources[key] = file
    return Config(values, sources, tuple(candidates))


def _read(file: Path) -> dict[str, Any]:
    import tomllib

    try:
        data = tomllib.loads(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        _refuse(file, f"cannot read it: {exc}")
    except tomllib.TOMLDecodeError as exc:
        _refuse(file, f"not valid TOML: {exc}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        setting = SETTINGS.get(key)
        if setting is None:
            close = difflib.get_close_matches(key, SETTINGS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
            _refuse(file, f"unknown key {key!r}; the keys are {', '.join(SETTINGS)}", hint=hint)
        out[key] = _checked(file, key, setting, value)
    return out


def _checked(file: Path, key: str, setting: Setting, value: Any) -> Any:
    if setting.kind is list and isinstance(value, str):  # "a,b", as the variable is written
        value = [part.strip() for part in value.split(",") if part.strip()]
    if setting.kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            _refuse(file, f"{key!r} must be a list of names, got {value!r}")
        return value
    if not isinstance(value, setting.kind):
        expected = {str: "a string", bool: "true or false"}[setting.kind]
        _refuse(file, f"{key!r} must be {expected}, got {value!r}")
    if key == "storage":
        return _storage_from(file, str(value))
    return value


def _storage_from(file: Path, value: str) -> str:
    """A relative folder is the file's folder's; URLs and absolute paths stay as they are."""
    if "://" in value:
        return value
    expanded = Path(value).expanduser()
    return str(expanded if expanded.is_absolute() else (file.parent / expanded).resolve())


def _refuse(file: Path, message: str, hint: str | None = None) -> NoReturn:
    raise ConfigFileError(f"{file}: {message}" + (f" ({hint})" if hint else ""))
