"""ARM resources of one region, without HTTP: the state and rules behind the Azure Resource
Manager contract for ``Microsoft.Compute/disks`` and ``snapshots``.

Nouns:

* **resource id** — ``/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Compute/{type}/{n}``;
  compared case-insensitively through its *key* (the id lowercased), shown as first created.
* **resource** — an ARM disk or snapshot: a row of ``arm_resources`` naming the engine disk or
  snapshot behind it, plus what the user set (tags, sku, zones, creationData).
* **operation** — a long-running operation (an ARM status resource). Every change to a resource
  runs as one; at most one runs per resource at a time.
* **region service** — ``RegionService``: validates a request completely, records the operation,
  answers at once and does the work in the background.

The HTTP mapping lives in ``snapferry.api``; this package only raises the typed errors of
``control.errors`` and ``snapferry.errors``.
"""
