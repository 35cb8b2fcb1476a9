"""Staff access in the registry and on the command line: two web workers' parallel failed
sign-ins are all counted and lock the account (SQLite and PostgreSQL); the common-password
list is shipped and read; ``web-account-disable``, ``-enable`` and ``-unlock`` act on the
deployment's registry and refuse bad input in one line (decision 0017)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import MetaData, inspect, select
from typer.testing import CliRunner

from cloud.registry.db import open_registry, upgrade
from cloud.staff.accounts import (
    AccountLocked,
    AccountService,
    SessionKind,
    SignInFailed,
    TryLater,
)
from cloud.staff.models import SignInCounter
from cloud.staff.passwords import (
    COMMON_PASSWORDS,
    BoundedHasher,
    HashingBusy,
    common_passwords,
    password_problem,
)
from cloud.staff.throttle import ThrottlePolicy
from meterflow.cli.web import (
    cloud_web_account,
    cloud_web_account_disable,
    cloud_web_account_enable,
    cloud_web_account_unlock,
)

PASSWORD = "correct horse battery"
#: cheap Argon2 parameters, so that the test is about counting, not hashing
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def test_parallel_failures_of_two_workers_are_all_counted_and_lock(registry_url: str) -> None:
    sessions = open_registry(registry_url)
    policy = ThrottlePolicy(free_failures=100, lock_account_after=12)
    hasher = BoundedHasher(slots=8, queue=64, hasher=CHEAP)
    workers = [AccountService(sessions, hasher=hasher, throttle=policy) for _ in range(2)]
    workers[0].create_account("alice", PASSWORD, "admin")
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            workers[i % 2].sign_in("alice", f"wrong {i}", source=f"10.0.0.{i % 3}")
        except SignInFailed:
            outcomes.append("failed")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes == ["failed"] * 12
    assert workers[1].throttle.failures("account:alice") == 12
    assert sum(workers[0].throttle.failures(f"source:10.0.0.{k}") for k in range(3)) == 12
    with pytest.raises(AccountLocked):
        workers[1].sign_in("alice", PASSWORD, SessionKind.API)
    assert [(lk.kind, lk.subject) for lk in workers[0].locks()] == [("account", "alice")]
    assert workers[0].unlock(account="alice", by="test")
    workers[1].sign_in("alice", PASSWORD, SessionKind.API)
    sessions.kw["bind"].dispose()


def test_a_full_hashing_queue_refuses_at_once() -> None:
    hasher = BoundedHasher(slots=1, queue=1, wait_s=30, hasher=CHEAP)
    stored = hasher.hash("a long password here")
    hasher._running.acquire()  # the one slot is busy (as if a long hash ran)
    hasher._admitted += 1
    waiting = threading.Thread(target=hasher.verify, args=(stored, "a long password here"))
    waiting.start()
    while hasher.peak_admitted < 2:
        threading.Event().wait(0.01)
    started = time.monotonic()
    with pytest.raises(HashingBusy):  # one runs, one waits: the next is refused, not queued
        hasher.verify(stored, "a long password here")
    assert time.monotonic() - started < 1
    hasher._admitted -= 1
    hasher._running.release()
    waiting.join(10)
    assert not waiting.is_alive()
    assert hasher.verify(stored, "a long password here")
    assert not hasher.verify(stored, "another password")


def test_try_later_carries_the_seconds_to_wait(tmp_path: Path) -> None:
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    accounts = AccountService(sessions, hasher=BoundedHasher(hasher=CHEAP))
    accounts.create_account("bob", PASSWORD, "admin")
    for _ in range(3):
        with pytest.raises(SignInFailed):
            accounts.sign_in("bob", "wrong password")
    with pytest.raises(TryLater) as refused:
        accounts.sign_in("bob", PASSWORD)
    assert refused.value.retry_after_s == 1
    # a name that cannot be an account is refused without a database look-up, and counts
    # against the address only
    with pytest.raises(SignInFailed):
        accounts.sign_in("NUL\x00name", "whatever", source="192.0.2.7")
    assert accounts.throttle.failures("source:192.0.2.7") == 1
    sessions.kw["bind"].dispose()


def test_the_common_password_list_is_shipped_and_used() -> None:
    common = common_passwords()
    assert COMMON_PASSWORDS.is_file() and len(common) > 19_000
    assert {"password", "123456", "qwertyuiop", "iloveyou12"} <= common
    long_ones = sorted(p for p in common if len(p) >= 10)
    assert len(long_ones) > 1_500  # entries the length rule alone would let through
    for password in long_ones[:: len(long_ones) // 50]:
        assert password_problem(password) is not None
        assert password_problem(password.upper()) is not None
    assert password_problem("correct horse battery") is None
    assert password_problem("pass word 1234") is not None  # spaces do not disguise one


def test_account_commands_act_on_the_registry(tmp_path: Path) -> None:
    env = {"MF_DATA_DIR": str(tmp_path / "cloud")}
    cli = typer.Typer()
    for name, command in (
        ("web-account", cloud_web_account),
        ("web-account-disable", cloud_web_account_disable),
        ("web-account-enable", cloud_web_account_enable),
        ("web-account-unlock", cloud_web_account_unlock),
    ):
        cli.command(name)(command)
    run = CliRunner()

    def invoke(*args: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
        return run.invoke(cli, list(args), env={**env, "MF_WEB_ACCOUNT_PASSWORD": password})

    weak = invoke("web-account", "erin", "--role", "admin", password="password1234")
    assert weak.exit_code == 2 and "common passwords" in weak.output
    assert "Traceback" not in weak.output
    assert invoke("web-account", "erin", "--role", "admin").exit_code == 0
    accounts = AccountService(open_registry(f"sqlite:///{tmp_path / 'cloud' / 'registry.sqlite'}"))
    issued = accounts.sign_in("erin", PASSWORD, SessionKind.API)
    disabled = invoke("web-account-disable", "erin")
    assert disabled.exit_code == 0 and "1 sessions and API tokens ended" in disabled.output
    assert accounts.principal(issued.token, SessionKind.API) is None
    with pytest.raises(SignInFailed):
        accounts.sign_in("erin", PASSWORD)
    assert invoke("web-account-enable", "erin").exit_code == 0
    accounts.sign_in("erin", PASSWORD)
    missing = invoke("web-account-disable", "nobody")
    assert missing.exit_code == 2 and "no staff account 'nobody'" in missing.output
    for _ in range(3):
        with pytest.raises(SignInFailed):
            accounts.sign_in("erin", "wrong password", source="198.51.100.9")
    listed = invoke("web-account-unlock", "--list")
    assert listed.exit_code == 0 and listed.output == ""
    assert invoke("web-account-unlock", "erin").exit_code == 0
    unblocked = invoke("web-account-unlock", "--source", "198.51.100.9")
    assert unblocked.exit_code == 0 and "unlocked" in unblocked.output
    assert accounts.throttle.failures("source:198.51.100.9") == 0
    both = invoke("web-account-unlock", "erin", "--source", "198.51.100.9")
    assert both.exit_code == 2 and "one" in both.output
    bad = invoke("web-account-unlock", "--source", "not an address")
    assert bad.exit_code == 2 and "expected an IP address" in bad.output
    reset = invoke("web-account", "erin", "--role", "admin", password="a brand new secret")
    assert reset.exit_code == 0 and "sessions and API tokens have ended" in reset.output


def test_revision_0013_builds_the_throttle_table_as_the_model_says(registry_url: str) -> None:
    sessions = open_registry(registry_url)
    engine = sessions.kw["bind"]
    only_the_throttle = MetaData()
    SignInCounter.__table__.to_metadata(only_the_throttle)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        diffs = [
            d
            for d in compare_metadata(context, only_the_throttle)
            if "web_signin_throttle" in repr(d)
        ]
        assert "web_signin_throttle" in inspect(conn).get_table_names()
    assert diffs == []
    upgrade(engine, "0013")  # idempotent at its own revision
    engine.dispose()


def test_old_counters_are_forgotten_but_an_account_lock_stays(tmp_path: Path) -> None:
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    now = [datetime(2026, 12, 7, 8, 0, tzinfo=UTC)]
    policy = ThrottlePolicy(lock_account_after=2, block_source_after=2, free_failures=10)
    accounts = AccountService(
        sessions, clock=lambda: now[0], hasher=BoundedHasher(hasher=CHEAP), throttle=policy
    )
    accounts.create_account("gail", PASSWORD, "admin")
    for name, source in (("gail", "192.0.2.1"), ("gail", "192.0.2.1"), ("nobody", "192.0.2.2")):
        with pytest.raises(SignInFailed):
            accounts.sign_in(name, "wrong password", source=source)
    assert {(lk.kind, lk.subject) for lk in accounts.locks()} == {
        ("account", "gail"),
        ("source", "192.0.2.1"),
    }
    now[0] += timedelta(days=2)
    with pytest.raises(SignInFailed):  # any failure purges what is stale
        accounts.sign_in("someone", "wrong password", source="192.0.2.3")
    with sessions() as s:
        keys = sorted(s.scalars(select(SignInCounter.key)))
    assert keys == ["account:gail", "account:someone", "source:192.0.2.3"]
    with pytest.raises(AccountLocked):
        accounts.sign_in("gail", PASSWORD)
    sessions.kw["bind"].dispose()
