"""The ``yiju`` command line: submit sentences and follow orders through :mod:`yiju.sdk`.

Entry point :func:`yiju.cli.main.main`; subcommands live one per module in :mod:`yiju.cli.commands`.
"""
