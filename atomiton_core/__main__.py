"""``python -m atomiton_core``: the ``atomiton`` command, where the script is not on ``PATH``."""

from __future__ import annotations

from atomiton_core.cli import main

if __name__ == "__main__":
    main()
