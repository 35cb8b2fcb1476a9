"""What the API's handlers depend on, handed to the app factory and looked up per request."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from cloud.provisioning import ProvisioningService


@dataclass(frozen=True)
class ApiServices:
    """The services the routers call; later routers add theirs here."""

    provisioning: ProvisioningService


def api_services(request: Request) -> ApiServices:
    """FastAPI dependency: the services the app was created with."""
    return request.app.state.services
