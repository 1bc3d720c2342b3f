"""snapferry: a self-hostable disk snapshot service.

Nouns (see docs/ and DESIGN): a *region* owns a metadata database and chunk stores; a *disk* is a
writable block device; a *snapshot* is an immutable point-in-time image of a disk, incremental by
default; the snapshots of one disk form a *family*. Disk content is addressed in 4 MiB *chunks* and
tracked in 4 KiB *pages*; each snapshot stores only the chunk *versions* it changed.
"""

__version__ = "0.1.0"
