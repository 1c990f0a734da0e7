"""Liveness and readiness."""

from litestar import Controller, HttpMethod, Response, route
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from service.schemas import Health, Readiness


class HealthController(Controller):
    tags = ["operations"]

    # HEAD too: load balancers and uptime checks often probe with it
    @route("/health", http_method=[HttpMethod.GET, HttpMethod.HEAD],
           summary="Liveness: the process answers")
    async def health(self) -> Health:
        return Health(status="ok")

    @route("/ready", http_method=[HttpMethod.GET, HttpMethod.HEAD],
           summary="Readiness: bundle loaded and profile store reachable",
           responses={503: ResponseSpec(Readiness, generate_examples=False,
                                        description="Not ready: no bundle loaded or the profile "
                                                    "store is unreachable; the body says which")})
    async def ready(self, state: State) -> Response[Readiness]:
        """200 when a bundle is loaded and the profile store answers, else 503 with the same
        body, so a load balancer can hold traffic back while still seeing why."""
        recommender = state.recommender
        catalog = recommender.catalog
        reachable = await recommender.store.ping()
        body = Readiness(
            ready=catalog is not None and reachable,
            bundle_version=catalog.version if catalog else None,
            bundle_created_at=catalog.bundle.manifest.created_at if catalog else None,
            store=recommender.store.name, store_reachable=reachable)
        return Response(body, status_code=200 if body.ready else 503)
