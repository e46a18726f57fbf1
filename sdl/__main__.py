"""``python -m sdl``: see :mod:`sdl.cli`."""

from sdl.cli import main

raise SystemExit(main())
