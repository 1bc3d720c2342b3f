"""The HTTP surfaces, and the only users of the web framework (FastAPI on uvicorn).

* ``api.region`` — one region's ARM API for disks and snapshots, reached through the front door.
* ``api.frontdoor`` — the one ARM endpoint for every region, as management.azure.com is:
  authenticates callers, serves resource groups and principals, routes the rest to regions.
* ``api.common`` — the ARM error envelope, api-version rules, canonical paths and body limits
  both share.
"""
