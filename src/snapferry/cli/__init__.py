"""The ``snapferry`` admin command line (click for parsing, rich for tables).

Nouns: a *region* is one Engine's data directory (``meta.db``, ``store/``, ``heads/``), named by
``--region`` only to pick its default location; a *command* validates its options, makes one
engine call and renders the result as tables or, with ``--output json``, as one JSON document on
stdout. Errors are translated here, at the edge, into a message on stderr and an exit status:
0 done, 1 problems found, 2 bad request (bad option, no region there, unknown id), 3 another
process holds the region, 4 the command could not finish. ``main`` holds the group and error
translation, ``admin`` and ``demo`` the commands, ``output`` the rendering.
"""
