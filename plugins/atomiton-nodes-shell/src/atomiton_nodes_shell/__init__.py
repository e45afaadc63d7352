"""Atomiton node type ``shell-command``: run one program, safely, and collect its output."""

from __future__ import annotations

from atomiton_nodes_shell.command import SCRUBBED_ENVIRONMENT, ShellCommandParams, shell_command

__all__ = ["SCRUBBED_ENVIRONMENT", "ShellCommandParams", "shell_command"]
