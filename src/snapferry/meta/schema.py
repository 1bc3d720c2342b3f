"""The region's metadata schema (SQLAlchemy Core). Portable: SQLite by default, PostgreSQL later.

Tables and what their rows mean:

* ``snapshots`` — one row per snapshot, including *hidden* ones (state ``deleted``) that a disk
  still builds on. ``parent_id`` is the storage lineage: the snapshot this one's block map is a
  delta against (``NULL`` for the first of a lineage). ``self_contained`` snapshots (full ones)
  never read through their parent; their parent only anchors diffs. ``zone``: where the packs
  its seal or copy writes go (``NULL``: every zone; a zone's name: that zone only).
* ``map_segments`` — a snapshot's block-map delta, ``SEGMENT_CHUNKS`` chunks per row, as a packed
  array of entries (see ``engine.blockmap``).
* ``disks`` — a disk's size, family, base snapshot and head generation (its live overlay).
* ``head_pages`` — which pages of which chunk a head generation has written (a 1024-bit bitmap).
* ``head_journal`` — a write over pages a head already holds, committed but perhaps not yet
  copied from its journal file into the overlay (replayed at open).
* ``packs`` — store objects holding version frames; ``pending`` until the metadata that points at
  them commits, ``dead`` once nothing references them (deleted after the GC grace period).
  ``zone``: ``NULL`` for a pack in every zone's store (or the single store), a zone's name for
  a pack only that zone holds (an LRS snapshot's); a pack only ever gains zones (hardening).
* ``zones`` — the region's zones, each with a chunk store of its own (none: the region has one
  store). Recorded at the first open that names them, so maintenance
  run at rest finds every zone, a lost one included.
* ``versions`` — the version index: where each stored frame lies (its BLAKE3 id → pack, offset,
  length), apart from the block maps, as restic's repository index. It answers "does this region
  already hold this version?"; rows go with their pack.

ARM tables of a region (``snapferry.control``):

* ``arm_resources`` — one row per ARM disk or snapshot, keyed by its lowercase resource id;
  ``engine_id`` names the engine disk or snapshot behind it (``NULL`` while it is being created),
  ``body`` holds the JSON of what the user set (tags, sku, zones, creationData, ...).
* ``arm_operations`` — long-running operations (status resources), with their result or error.

Replication tables of a region (``snapferry.replication``), kept in the *target* region:

* ``copy_jobs`` — one row per CopyStart target: where its source is, the delta plan (the base
  snapshot here, the anchor snapshot there, the pages to move), its state (Queued, Copying,
  Succeeded, Failed), progress counters, attempts and retry time, and a lease (owner, expiry)
  that any worker may take once it has expired. The staged data itself is the target snapshot's
  block map (``map_segments``): what the target durably holds is the checkpoint.

Tables of the front door (``snapferry.identity`` and ``snapferry.api.frontdoor``); a front door
and a region may share one schema, each using its own tables:

* ``resource_groups`` — ARM resource groups, keyed by lowercase ``subscription/name``.
* ``resource_index`` — which region holds a resource (a cache: regions are the source of truth).
* ``principals`` and ``role_assignments`` — who may call, with which role on which subscription.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = String(32)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", ID, primary_key=True),
    Column("family_id", ID, nullable=False),
    Column("disk_id", ID, nullable=True),
    Column("parent_id", ID, ForeignKey("snapshots.id"), nullable=True),
    Column("seq", BigInteger, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("incremental", Boolean, nullable=False),
    Column("self_contained", Boolean, nullable=False),
    Column("state", String(16), nullable=False),
    Column("frozen_gen", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("zone", String(16), nullable=True),
    Index("ix_snapshots_parent", "parent_id"),
    Index("ix_snapshots_family", "family_id", "seq"),
)

map_segments = Table(
    "map_segments",
    metadata,
    Column("snapshot_id", ID, ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True),
    Column("segment", BigInteger, primary_key=True, autoincrement=False),
    Column("entries", LargeBinary, nullable=False),
)

disks = Table(
    "disks",
    metadata,
    Column("id", ID, primary_key=True),
    Column("family_id", ID, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("base_id", ID, ForeignKey("snapshots.id"), nullable=True),
    Column("head_gen", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_disks_base", "base_id"),
)

head_pages = Table(
    "head_pages",
    metadata,
    # no foreign key: a deleted disk's frozen generation keeps its rows until its snapshot seals
    Column("disk_id", ID, primary_key=True),
    Column("gen", Integer, primary_key=True, autoincrement=False),
    Column("chunk", BigInteger, primary_key=True, autoincrement=False),
    Column("bitmap", LargeBinary, nullable=False),
)

head_journal = Table(
    "head_journal",
    metadata,
    Column("disk_id", ID, ForeignKey("disks.id", ondelete="CASCADE"), primary_key=True),
    Column("gen", Integer, primary_key=True, autoincrement=False),
    Column("pages", LargeBinary, nullable=False),
)

packs = Table(
    "packs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False, unique=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("dead_at", Float, nullable=True),
    Column("zone", String(16), nullable=True),
)

versions = Table(
    "versions",
    metadata,
    Column("oid", LargeBinary(32), primary_key=True),
    Column("pack", Integer, ForeignKey("packs.id"), primary_key=True, autoincrement=False),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("length", BigInteger, nullable=False),
    Index("ix_versions_pack", "pack"),
)

zones = Table(
    "zones",
    metadata,
    Column("name", String(16), primary_key=True),
    Column("added_at", Float, nullable=False),
)


RESOURCE_KEY = String(512)

arm_resources = Table(
    "arm_resources",
    metadata,
    Column("key", RESOURCE_KEY, primary_key=True),
    Column("subscription", String(64), nullable=False),
    Column("resource_group", String(90), nullable=False),
    Column("type", String(16), nullable=False),
    Column("id", RESOURCE_KEY, nullable=False),
    Column("location", String(64), nullable=False),
    Column("engine_id", ID, nullable=True),
    Column("state", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("unique_id", String(36), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_arm_resources_scope", "subscription", "type", "resource_group", "key"),
    Index("ix_arm_resources_engine_id", "engine_id"),
    Index("ix_arm_resources_unique_id", "unique_id"),
)

arm_operations = Table(
    "arm_operations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("subscription", String(64), nullable=False),
    Column("resource_key", RESOURCE_KEY, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("result", Text, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Index("ix_arm_operations_status", "status"),
)

copy_jobs = Table(
    "copy_jobs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("target_key", RESOURCE_KEY, nullable=False, unique=True),
    Column("target_id", ID, nullable=False),
    Column("subscription", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("source_resource_id", RESOURCE_KEY, nullable=False),
    Column("source_region", String(64), nullable=False),
    Column("source_unique_id", String(36), nullable=False),
    Column("source_engine_id", ID, nullable=False),
    Column("source_family", ID, nullable=True),
    Column("source_created_at", Float, nullable=False),
    Column("full", Boolean, nullable=False),
    Column("enhanced", Boolean, nullable=False),
    Column("access", Text, nullable=True),
    Column("base_id", ID, nullable=True),
    Column("anchor_id", ID, nullable=True),
    Column("plan", LargeBinary, nullable=True),
    Column("bytes_total", BigInteger, nullable=False),
    Column("bytes_staged", BigInteger, nullable=False),
    Column("bytes_transferred", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("last_progress_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Index("ix_copy_jobs_state", "state", "next_attempt_at"),
    Index("ix_copy_jobs_family", "source_family", "state"),
    Index("ix_copy_jobs_subscription", "subscription", "state"),
)

copy_events = Table(
    "copy_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", ID, nullable=False),
    Column("target_key", RESOURCE_KEY, nullable=False),
    Column("subscription", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", Text, nullable=False),
    Index("ix_copy_events_target", "target_key", "id"),
    Index("ix_copy_events_at", "at"),
)
"""What happened to each copy, in order, kept after its target is deleted (until pruned)."""

resource_groups = Table(
    "resource_groups",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("subscription", String(64), nullable=False),
    Column("name", String(90), nullable=False),
    Column("location", String(64), nullable=False),
    Column("tags", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_resource_groups_subscription", "subscription", "key"),
)

resource_index = Table(
    "resource_index",
    metadata,
    Column("key", RESOURCE_KEY, primary_key=True),
    Column("region", String(64), nullable=False),
)

principals = Table(
    "principals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(36), nullable=False),
    Column("name", String(200), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("admin", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
)

role_assignments = Table(
    "role_assignments",
    metadata,
    Column(
        "principal_id",
        String(36),
        ForeignKey("principals.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("subscription", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
)
