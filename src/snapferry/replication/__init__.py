"""Copies of snapshots between regions (``CopyStart``): durable jobs in the target region.

Nouns:

* **source** — the snapshot being copied, in its own region (any region, this one included);
  ``SourceInfo`` is what a peer says of it.
* **peer** — another region (or this one) reached through the ``PeerClient`` protocol: an HTTP
  implementation between processes, wrappers that inject faults.
* **system grant** — a read-only access signature a source region gives a peer for one
  snapshot, valid 14 days and unaffected by users' grants and revocations.
* **job** — a row of ``copy_jobs``: the copy's plan, state, progress, attempts and lease.
* **anchor / base** — the newest snapshot of the family already copied here, as the source
  knows it (anchor) and as this region holds it (base); the plan is the exact page delta from
  the anchor to the source, applied over the base.
* **worker** — ``CopyWorker``: leases runnable jobs and runs them (``transfer.run_copy``); any
  worker may resume any job whose lease expired, from what the target durably holds.
"""
