"""Evidence files of deposit deductions (decision 0041): photos and documents uploaded with
a deduction, kept in the registry once per content (``deposit_evidence``, keyed by SHA-256).

A file is accepted by what its bytes are, never by its name: JPEG (``FF D8 FF``), PNG (the
8-byte PNG signature) or PDF (``%PDF-``), at most :data:`MAX_BYTES` bytes, at most
:data:`MAX_PER_DEDUCTION` with one deduction and :data:`MAX_PER_REFUND` on one refund. A
deduction names its files ``evidence:sha256:<hex>`` (several separated by spaces); its
``evidence_sha256`` is the first file's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.leases.errors import DepositInputError, EvidenceMissing, EvidenceTooLarge
from cloud.leases.models import DepositDeduction, DepositEvidence
from cloud.registry.base import as_utc

#: the largest evidence file [bytes] (10 MB)
MAX_BYTES = 10_000_000
#: files with one deduction
MAX_PER_DEDUCTION = 3
#: files on one refund, all its deductions together
MAX_PER_REFUND = 20
#: the longest file name kept in a message
_NAME = 80
URI_PREFIX = "evidence:sha256:"
#: (leading bytes, content type) of the accepted kinds
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
)


def sniff(content: bytes) -> str | None:
    """The content type of a JPEG, PNG or PDF by its leading bytes; None for anything else."""
    for magic, kind in MAGIC:
        if content.startswith(magic):
            return kind
    return None


def uri(sha256: str) -> str:
    """The URI a deduction stores for a file."""
    return URI_PREFIX + sha256


def hashes(evidence_uri: str) -> list[str]:
    """The SHA-256 of each stored file a deduction's URI names (none for other URIs)."""
    return [part[len(URI_PREFIX) :] for part in evidence_uri.split() if part.startswith(URI_PREFIX)]


def check_files(files: Sequence[tuple[str, bytes]], already: int = 0) -> list[str]:
    """The content type of each ``(name, bytes)`` file; EvidenceMissing for none,
    EvidenceTooLarge for a file over :data:`MAX_BYTES` or too many files (``already``: those
    the refund has), DepositInputError for a file that is not JPEG, PNG or PDF."""
    if not files:
        raise EvidenceMissing("evidence: a deduction needs at least one file (JPEG, PNG or PDF)")
    if len(files) > MAX_PER_DEDUCTION:
        raise EvidenceTooLarge(
            f"evidence: expected at most {MAX_PER_DEDUCTION} files with one deduction, "
            f"got {len(files)}"
        )
    if already + len(files) > MAX_PER_REFUND:
        raise EvidenceTooLarge(
            f"evidence: a refund keeps at most {MAX_PER_REFUND} files; it has {already}, "
            f"{len(files)} more do not fit"
        )
    kinds = []
    for n, (name, content) in enumerate(files, 1):
        label = f"file {n} ({name[:_NAME]!r})"
        if len(content) > MAX_BYTES:
            raise EvidenceTooLarge(
                f"evidence {label}: {len(content)} bytes, expected at most {MAX_BYTES} (10 MB)"
            )
        kind = sniff(content)
        if kind is None:
            raise DepositInputError(
                f"evidence {label}: expected a JPEG, PNG or PDF file (by its content, not its name)"
            )
        kinds.append(kind)
    return kinds


def count_on(session: Session, refund_id: int) -> int:
    """How many files the deductions of a refund name."""
    rows = session.scalars(
        select(DepositDeduction.evidence_uri).where(DepositDeduction.refund_id == refund_id)
    )
    return sum(len(hashes(u)) for u in rows)


def store(
    session: Session, files: Sequence[tuple[str, bytes]], *, by: str, at: datetime, already: int
) -> list[str]:
    """Check (:func:`check_files`) and keep the files, each once by its content; their
    SHA-256 in order."""
    kinds = check_files(files, already)
    out = []
    for (_name, content), kind in zip(files, kinds, strict=True):
        digest = hashlib.sha256(content).hexdigest()
        if session.get(DepositEvidence, digest) is None:
            session.add(
                DepositEvidence(
                    sha256=digest,
                    content_type=kind,
                    size=len(content),
                    content=content,
                    uploaded_at=as_utc(at),
                    uploaded_by=by,
                )
            )
            session.flush()
        out.append(digest)
    return out


def kinds_of(session: Session, digests: Sequence[str]) -> dict[str, str]:
    """The stored content type of each file of ``digests`` (files not stored left out)."""
    if not digests:
        return {}
    return dict(
        session.execute(
            select(DepositEvidence.sha256, DepositEvidence.content_type).where(
                DepositEvidence.sha256.in_(sorted(set(digests)))
            )
        ).all()
    )
