"""``python -m tdgen.cli``: the same as the ``tdgen`` console script."""

from . import main

main()
