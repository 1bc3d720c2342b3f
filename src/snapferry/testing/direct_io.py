"""Whether a directory's filesystem takes O_DIRECT writes (tests of the paths around the page
cache assert they were taken only where they can be)."""

from __future__ import annotations

import os
from pathlib import Path

from snapferry.files import O_DIRECT


def direct_io_works(directory: Path) -> bool:
    if not O_DIRECT:
        return False
    try:
        fd = os.open(directory / "probe", os.O_WRONLY | os.O_CREAT | O_DIRECT)
    except OSError:
        return False
    os.close(fd)
    return True
