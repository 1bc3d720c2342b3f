"""Test helpers shipped with snapferry, so every backend and peer is held to the same contracts.

* ``store_contract.ChunkStoreContract`` — the ChunkStore contract as a pytest suite: subclass it
  as ``TestMyStore`` and implement ``make_store(tmp_path)``.

Fault-injecting stores live with the other wrappers in ``snapferry.store.wrappers``. Modules here
import pytest; nothing outside tests should import them.
"""
