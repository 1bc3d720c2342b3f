"""Running a snapferry cloud: its configuration, its certificates, and the processes that host
it.

Nouns:

* **cloud** — one front door and the regions behind it; ``cloud.json`` (endpoint, admin token,
  subscription, regions) is how clients find it.
* **configuration** (``config``) — a TOML file, or the embedded default (``eastus`` with zones
  1, 2, 3 and ``westus`` without).
* **host** (``host``) — what one process serves: ``snapferry up`` hosts every part, ``snapferry
  serve region|frontdoor`` one each; parts always talk over HTTP.
* **certificates** (``tls``) — the CA and server certificate the front door serves HTTPS with.
"""
