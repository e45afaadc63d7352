"""The ``atomiton`` console script. Each command group lives in its own module of this package."""

from __future__ import annotations

from atomiton_core.cli.main import main
from atomiton_core.cli.migrate import migrate
from atomiton_core.cli.plugin import plugin
from atomiton_core.cli.runs import cache, replay, runs
from atomiton_core.cli.serve import serve
from atomiton_core.cli.triggers import triggers

main.add_command(serve)
main.add_command(plugin)
main.add_command(runs)
main.add_command(cache)
main.add_command(replay)
main.add_command(migrate)
main.add_command(triggers)

__all__ = ["main"]
