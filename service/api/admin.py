"""Operator endpoints: reload the bundle now.

Protected by a bearer token (``RECO_ADMIN_TOKEN``); with no token configured they are disabled
and answer 403 saying so. A reload reaches the one worker process that received the request:
the other workers follow through their own bundle watchers (``RECO_BUNDLE_POLL_S``).
"""

from __future__ import annotations

import hmac

from litestar import Controller, Request, post

from service.errors import BundleRefused, Forbidden, Unauthorized, error_responses
from service.reload import ReloadResult


def _authorise(request: Request, token: str | None) -> None:
    if not token:
        raise Forbidden("admin endpoints are disabled: set RECO_ADMIN_TOKEN to enable them")
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                             token.encode()):
        raise Unauthorized("send the admin token as 'Authorization: Bearer <RECO_ADMIN_TOKEN>'")


class AdminController(Controller):
    path = "/admin"
    tags = ["operations"]

    @post("/reload", summary="Load the current bundle now (hot swap)", status_code=200,
          responses=error_responses(401, 403, 409, descriptions={
              401: "No or a wrong admin token: send 'Authorization: Bearer <RECO_ADMIN_TOKEN>'",
              403: "Admin endpoints are disabled: no RECO_ADMIN_TOKEN is configured",
              409: "The bundle was refused (``detail`` says why); the previous one keeps "
                   "serving"}))
    async def reload(self, request: Request) -> ReloadResult:
        """Opens and verifies the bundle ``RECO_BUNDLE_DIR`` points to (a bundles root's
        ``current``) and swaps it in without dropping requests. ``outcome`` is ``swapped`` or
        ``unchanged`` (already served); a bundle that fails to load or verify is refused with a
        409 giving the reason, and the previous bundle keeps serving. Needs ``Authorization:
        Bearer <RECO_ADMIN_TOKEN>``; 403 when no admin token is configured. Reaches the worker
        process that received it; the others follow within ``RECO_BUNDLE_POLL_S``."""
        reloader = request.app.state.reloader
        _authorise(request, reloader.settings.admin_token)
        result = await reloader.reload()
        if result.outcome == "refused":
            raise BundleRefused(f"bundle {result.target} refused: {result.reason}; still "
                                f"serving {result.bundle_version}")
        return result
