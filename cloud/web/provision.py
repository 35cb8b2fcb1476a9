"""``POST /api/v1/provision``: a gateway redeems its claim token with its public key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from cloud.gateways.provisioning import (
    BadClaimRequest,
    ClaimTokenExpired,
    ClaimTokenUsed,
    ProvisioningConflict,
    ProvisioningError,
    UnknownClaimToken,
)
from cloud.web.deps import ApiServices, api_services
from edge.wire import ProvisionReply

router = APIRouter(prefix="/api/v1", tags=["provisioning"])

#: HTTP status of each refusal; anything else of the family is a 400.
_STATUS: dict[type[ProvisioningError], int] = {
    BadClaimRequest: 400,
    UnknownClaimToken: 403,
    ClaimTokenUsed: 409,
    ProvisioningConflict: 409,
    ClaimTokenExpired: 410,
}


class ProvisionRequest(BaseModel):
    """What a gateway sends: never its private key."""

    model_config = ConfigDict(extra="forbid")

    claim_token: str = Field(min_length=1, max_length=200)
    public_key: str = Field(
        min_length=1, max_length=100, description="base64url of the 32-byte Ed25519 public key"
    )
    key_id: str = Field(
        min_length=1, max_length=64, description="RFC 7638 thumbprint of public_key"
    )


class ErrorBody(BaseModel):
    detail: str


@router.post(
    "/provision",
    response_model=ProvisionReply,
    responses={status: {"model": ErrorBody} for status in (400, 403, 409, 410)},
)
def provision(
    body: ProvisionRequest, services: Annotated[ApiServices, Depends(api_services)]
) -> ProvisionReply:
    """Redeem a single-use claim token: register the gateway's key, return its settings."""
    try:
        result = services.provisioning.redeem(body.claim_token, body.public_key, body.key_id)
    except ProvisioningError as exc:
        raise HTTPException(_STATUS.get(type(exc), 400), str(exc)) from None
    return result
