"""The ``snapferry`` command line (click for parsing, rich for tables).

Three kinds of command: ``up`` and ``serve`` run a cloud (``servers``); ``group``, ``disk``,
``snapshot`` and ``token`` talk to a running cloud over HTTP through ``snapferry.client``
(``resources``, ``groups``, ``tokens``); ``scrub``, ``gc``, ``compact`` and ``demo`` work on a
region's data directory at rest (``admin``, ``demo``).

Nouns of the admin commands: a *region* is one Engine's data directory (``meta.db``,
``store/``, ``heads/``), named by ``--region`` only to pick its default location; a *command*
validates its options, makes one engine call and renders the result as tables or, with
``--output json``, as one JSON document on stdout. Errors are translated here, at the edge, into
a message on stderr and an exit status: 0 done, 1 problems found, 2 bad request (bad option, no
region there, unknown id), 3 another process holds the region, 4 the command could not finish.
``main`` holds the group and error translation, ``output`` the rendering.
"""
