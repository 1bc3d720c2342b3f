"""ARM paths match case-insensitively; names keep their case, even names that look like words."""

from __future__ import annotations

import pytest

from snapferry.api.common import canonical_path


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (
            "/SUBSCRIPTIONS/S/resourcegroups/RG/PROVIDERS/microsoft.compute/DISKS/Data/begingetaccess",
            "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/disks/Data/beginGetAccess",
        ),
        (
            "/subscriptions/locations/resourcegroups/disks/providers/microsoft.compute/snapshots/operations",
            "/subscriptions/locations/resourceGroups/disks/providers/Microsoft.Compute/snapshots/operations",
        ),
        (
            "/subscriptions/s/providers/microsoft.compute/LOCATIONS/EastUS/OPERATIONS/Op1",
            "/subscriptions/s/providers/Microsoft.Compute/locations/EastUS/operations/Op1",
        ),
        ("/subscriptions/s/resourcegroups", "/subscriptions/s/resourceGroups"),
        ("/snapferry/health", "/snapferry/health"),
        ("/openapi.json", "/openapi.json"),
    ],
)
def test_fixed_words_are_canonical_and_names_untouched(given: str, canonical: str) -> None:
    assert canonical_path(given) == canonical
