"""``python -m newswatch``: the same command as the ``newswatch`` script."""

from newswatch.cli import main

raise SystemExit(main())
