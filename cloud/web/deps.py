"""What the API's handlers depend on, handed to the app factory and looked up per request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Request

from cloud.apportion.close import CloseService
from cloud.apportion.review import RunReviewService
from cloud.gateways.dispatch import CommandDispatch, Publish
from cloud.gateways.health import GatewayHealthService
from cloud.gateways.provisioning import BrokerGrant, ProvisioningService
from cloud.gateways.replacement import ReplacementService
from cloud.gateways.revocation import GatewayRevocations
from cloud.leases.offers import OfferDesk
from cloud.leases.queue import WorkQueue
from cloud.leases.report_mail import RecipientService
from cloud.leases.reports import ReportService
from cloud.leases.roster import LeaseRoster
from cloud.leases.tenants import tenant_names
from cloud.risk.jobs import RiskListService
from cloud.series.base import SeriesStore
from cloud.staff.accounts import AccountService, Principal
from cloud.staff.passwords import BoundedHasher
from cloud.statements.access import TenantStatementService
from cloud.statements.links import DEFAULT_LINK_TTL, TenantLinkService, WebSecret
from edge.wire import DEFAULT_TOPIC_PREFIX


def _no_broker(topic: str, _envelope: bytes) -> None:
    raise OSError(f"this API has no broker link to publish {topic}")


@dataclass(frozen=True)
class WebServices:
    """The services of the staff and tenant pages.

    ``public_url`` is the base of the links printed as QR codes (the request's own base URL
    when empty); ``claim_broker`` what claim tokens made on the engineer pages hand out;
    ``cookie_secure`` forces the Secure flag on cookies (None: when the request is HTTPS).
    """

    accounts: AccountService
    links: TenantLinkService
    statements: TenantStatementService
    runs: RunReviewService
    gateways: GatewayHealthService
    commands: CommandDispatch
    claim_broker: BrokerGrant
    risk: RiskListService
    closing: CloseService
    replacements: ReplacementService
    revocations: GatewayRevocations
    leases: LeaseRoster
    queue: WorkQueue
    offers: OfferDesk
    reports: ReportService
    report_recipients: RecipientService
    public_url: str = ""
    cookie_secure: bool | None = None
    page_cache: bool = True

    @classmethod
    def build(
        cls,
        provisioning: ProvisioningService,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        secret: WebSecret | None = None,
        publish: Publish = _no_broker,
        claim_broker: BrokerGrant | None = None,
        public_url: str = "",
        cookie_secure: bool | None = None,
        link_ttl: timedelta = DEFAULT_LINK_TTL,
        session_ttl: timedelta = timedelta(hours=12),
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        series: Callable[[], SeriesStore] | None = None,
        hash_slots: int = 0,
        page_cache: bool = True,
    ) -> WebServices:
        """Services over the provisioning service's registry and cloud key.

        Without ``signing_key`` runs cannot be posted (statements are signed with it);
        without ``secret`` a random one is made, so links die with the process; without
        ``series`` (what opens the series store) months cannot be closed here;
        ``hash_slots`` bounds the password hashes at once (0: the CPU count, at most 4);
        ``page_cache`` keeps rendered tenant pages (off: each request renders its page).
        """
        sessions, signer = provisioning.sessions, provisioning.signer
        clock = provisioning.clock
        return cls(
            accounts=AccountService(
                sessions,
                clock=clock,
                session_ttl=session_ttl,
                hasher=BoundedHasher(hash_slots) if hash_slots else None,
            ),
            links=TenantLinkService(
                sessions, secret or WebSecret.generate(), clock=clock, ttl=link_ttl
            ),
            statements=TenantStatementService(sessions, signer.public_key, clock=clock),
            runs=RunReviewService(
                sessions,
                signing_key,
                signer.public_key,
                clock=clock,
                tenant_names=partial(tenant_names, sessions),
            ),
            gateways=GatewayHealthService(sessions, clock=clock, prefix=topic_prefix),
            commands=CommandDispatch(
                sessions, provisioning.command_keys, publish, clock=clock, prefix=topic_prefix
            ),
            claim_broker=claim_broker or BrokerGrant("mqtt://127.0.0.1:1883"),
            risk=RiskListService(sessions),
            closing=CloseService(sessions, series, clock=clock),
            replacements=ReplacementService(sessions, provisioning.command_keys, clock=clock),
            revocations=GatewayRevocations(sessions, clock=clock),
            leases=LeaseRoster(sessions, clock=clock),
            queue=WorkQueue(sessions, clock=clock),
            offers=OfferDesk(sessions, clock=clock),
            reports=ReportService(sessions, clock=clock),
            report_recipients=RecipientService(sessions, clock=clock),
            public_url=public_url.rstrip("/"),
            cookie_secure=cookie_secure,
            page_cache=page_cache,
        )


@dataclass(frozen=True)
class ApiServices:
    """The services the routers call: provisioning, and the web pages' (built on the
    provisioning service's registry when not given)."""

    provisioning: ProvisioningService
    web: WebServices | None = field(default=None)


def api_services(request: Request) -> ApiServices:
    """FastAPI dependency: the services the app was created with."""
    return request.app.state.services


def web_services(request: Request) -> WebServices:
    """FastAPI dependency: the web pages' services."""
    return request.app.state.web


def principal(request: Request) -> Principal:
    """FastAPI dependency: the signed-in staff member (set by the authorization check)."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is None:  # only reachable for a route whose policy lets anonymous callers in
        raise RuntimeError(f"route {request.url.path} needs a principal; check its policy")
    return found
