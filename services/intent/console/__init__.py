"""The web console of the intent service: an order page (``/``) and an operator page (``/ops``).

Plain HTML, CSS and JavaScript under ``static/`` (no build step, nothing fetched at run time), served by
:func:`yiju.intent.console.routes.mount_console` with the JSON endpoints the pages read.
"""
