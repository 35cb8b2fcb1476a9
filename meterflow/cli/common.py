"""What every command module shares: the settings and how a command fails."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from meterflow.settings import Settings


def load_settings() -> Settings:
    """The one Settings of this run (``MF_*`` variables and the optional TOML file)."""
    from meterflow.settings import Settings

    return Settings()


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` in red on stderr; the command then exits with status 2."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)
