"""``python -m atomiton_core.cli``: the same as the ``atomiton`` command."""

from atomiton_core.cli import main

main()
