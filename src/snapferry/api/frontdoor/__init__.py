"""The front door: one ARM endpoint for every region (see ``app``)."""

from snapferry.api.frontdoor.app import FrontDoor, frontdoor_app
from snapferry.api.frontdoor.groups import Groups
from snapferry.api.frontdoor.links import RegionLinks
from snapferry.api.frontdoor.routing import Index

__all__ = ["FrontDoor", "Groups", "Index", "RegionLinks", "frontdoor_app"]
