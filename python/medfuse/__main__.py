"""``python -m medfuse``: the same command line as ``medfuse``."""

from .cli import main

raise SystemExit(main())
