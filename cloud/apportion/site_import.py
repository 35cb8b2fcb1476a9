"""A site's set-up imported from a file, by the command line and the web alike: the site file
(YAML: every section) or the site workbook (.xlsx: units and meters on top of the set-up
already stored), checked whole and stored all or nothing by
:func:`cloud.apportion.configuration.import_site`, which puts an import that changes
something in the audit log (``site:ID``, action ``site.import``, with the file's hash and the
counts).

On the web, admins import any site (a new one included) and finance and engineers the sites
they act on (finance corrects a site's data to close a held run again; engineers set up
meters). Sizes are bounded before anything is parsed: at most :data:`MAX_SITE_BYTES`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import MAX_CASE_BYTES
from cloud.apportion.configuration import ImportReport, import_site
from cloud.apportion.models import SiteSettings
from cloud.apportion.site import SiteFile, SiteFileError, parse_site
from cloud.apportion.site_export import site_sections
from cloud.apportion.site_workbook import read_workbook_bytes, workbook_bytes_site_id
from cloud.registry.models import Site
from cloud.staff.accounts import Principal, Role
from edge.wire import Clock, utc_now

#: The largest site file or workbook accepted [bytes].
MAX_SITE_BYTES = MAX_CASE_BYTES
#: The roles that import a site's set-up on the web (an admin any site, the others theirs).
SITE_IMPORT_ROLES = frozenset({Role.ADMIN, Role.FINANCE, Role.ENGINEER})


class SiteImportRefused(PermissionError):
    """The caller may not import this site (a role that does not, or a new site by a role
    other than admin)."""


def read_upload(
    session: Session, data: bytes, name: str, allowed: Callable[[str], None] = lambda _: None
) -> SiteFile:
    """The site in ``data`` (a file called ``name``: the workbook when it ends in ``.xlsx``,
    else the site file, YAML), checked; SiteFileError names every bad item or cell.
    ``allowed(site_id)`` raises when the caller may not import that site: called before
    anything stored of the site is read (a workbook is checked against it)."""
    source = (name if len(name) <= 200 else "…" + name[-199:]) or "upload"
    if len(data) > MAX_SITE_BYTES:
        raise SiteFileError(source, [f"larger than {MAX_SITE_BYTES // 2**20} MiB"])
    suffix = PurePath(source).suffix.lower()
    if suffix == ".xlsx":
        site_id = workbook_bytes_site_id(data, source)
        allowed(site_id)
        try:
            base = site_sections(session, site_id)
        except LookupError:
            raise SiteFileError(
                source,
                [
                    f"site {site_id!r}: import the site file (YAML) first: the workbook holds "
                    "units and meters only"
                ],
            ) from None
        return read_workbook_bytes(data, source, base)
    try:  # anything but a workbook is read as the site file (YAML)
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SiteFileError(source, [f"not UTF-8 text (byte {exc.start})"]) from None
    site = parse_site(text, source)
    allowed(site.schema.site)
    return site


def import_upload(
    session: Session,
    data: bytes,
    name: str,
    *,
    by: str,
    dry_run: bool,
    clock: Clock = utc_now,
    who: Principal | None = None,
) -> ImportReport:
    """Check and import the site file or workbook ``data`` in the caller's transaction
    (rolled back on a dry run or any error, committed otherwise); the report. With ``who``
    (the web), the caller's role and scope are checked first: SiteImportRefused."""

    def allowed(site_id: str) -> None:
        if who is None:  # the command line: the host's operator
            return
        if who.role not in SITE_IMPORT_ROLES:
            raise SiteImportRefused(f"the {who.role.value} role does not import sites")
        known = session.get(Site, site_id) is not None
        if not who.may_act_on(site_id) or (not known and who.role is not Role.ADMIN):
            raise SiteImportRefused(
                f"site {site_id[:64]!r} is not one of yours"
                if known
                else f"site {site_id[:64]!r} is new: only an admin adds a site"
            )

    try:
        site = read_upload(session, data, name, allowed)
        report = import_site(session, site, by=by, clock=clock)
        report.dry_run = dry_run
        if dry_run or not report.changed:
            session.rollback()
            return report
        # import_site has put the change in the audit log (site.import, site:ID)
        session.commit()
        return report
    except BaseException:
        session.rollback()
        raise


class SiteImportService:
    """The web's site import: each call its own session, stamped with the service's
    clock."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock = utc_now) -> None:
        self.sessions = sessions
        self.clock = clock

    def sites(self, who: Principal) -> list[str]:
        """The sites with a stored set-up that ``who`` acts on, by id."""
        with self.sessions() as session:
            ids = session.scalars(select(SiteSettings.site_id).order_by(SiteSettings.site_id))
            return [s for s in ids if who.may_act_on(s)]

    def import_file(self, who: Principal, data: bytes, name: str, *, dry_run: bool) -> ImportReport:
        """Check (``dry_run``) or import an uploaded site file or workbook as ``who``."""
        with self.sessions() as session:
            return import_upload(
                session,
                data,
                name,
                by=who.username,
                dry_run=dry_run,
                clock=self.clock,
                who=who,
            )


__all__ = [
    "MAX_SITE_BYTES",
    "SITE_IMPORT_ROLES",
    "SiteImportRefused",
    "SiteImportService",
    "import_upload",
    "read_upload",
]
