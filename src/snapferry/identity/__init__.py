"""Who may call snapferry's ARM API, and the bearer tokens that prove it.

Nouns:

* **tenant** — a UUID naming this installation's directory of principals, as an Entra ID tenant
  does. Every principal and token carries it (the ``tid`` claim).
* **principal** — a caller (person or automation) with a UUID id (the token's ``oid``/``sub``), a
  name, an ``enabled`` flag and role assignments. See ``Principal``.
* **role assignment** — one of the built-in roles on one subscription: ``Reader`` may read,
  ``Contributor`` and ``Owner`` may also write. There is no inheritance and no wildcard: a
  principal sees only subscriptions it holds a role on.
* **admin** — a flag that lets a principal create, disable and re-role principals. It grants no
  access to any subscription by itself.
* **access token** — an RS256 JWT signed with the registry's **signing key**, for the audience
  ``AUDIENCE`` (ARM) and the registry's **issuer**. It only proves identity: enablement and roles
  are read from the registry each time a token is presented, so changes apply at once.
* **registry** — ``Registry``: the principals in the metadata database, the signing key and
  tenant id in a key directory, and the issuing and checking of tokens.

Errors: ``AuthenticationFailed`` (code ``InvalidAuthenticationToken``, HTTP 401) when a token
does not prove an enabled principal; ``AuthorizationFailed`` (code ``AuthorizationFailed``,
HTTP 403) when the principal's roles do not allow the action. Tokens are secrets: nothing in this
package logs them or puts them in error messages.
"""

from snapferry.identity.principals import (
    CONTRIBUTOR,
    OWNER,
    READER,
    ROLES,
    AuthenticationFailed,
    AuthorizationFailed,
    Principal,
)
from snapferry.identity.registry import MAX_LIFETIME_SECONDS, Registry
from snapferry.identity.tokens import AUDIENCE, TokenClaims, TokenSigner

__all__ = [
    "AUDIENCE",
    "CONTRIBUTOR",
    "MAX_LIFETIME_SECONDS",
    "OWNER",
    "READER",
    "ROLES",
    "AuthenticationFailed",
    "AuthorizationFailed",
    "Principal",
    "Registry",
    "TokenClaims",
    "TokenSigner",
]
