"""Subcommands of `movinas`, each a module with `register(subparsers)`.

Add a command by writing its module and listing its `register` in `ALL` below.
"""

ALL: list = []
