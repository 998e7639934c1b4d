"""``python -m mmrun ARGS...``: the ``mmrun`` command."""

from mmrun._cli import main

main()
