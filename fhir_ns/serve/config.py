"""The `fhir-ns serve` configuration file (YAML): where the service is reached, its state, and its limits.

The `auth:` and `links:` sections belong to `fhir_ns.serve.auth` and `fhir_ns.serve.links` and are passed to
them as read; every other key is read here, with the defaults a deployment in front of one EHR would start from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fhir_ns.errors import ConfigError

KNOWN = {
    "public_url",
    "state_dir",
    "prefetch_timeout_s",
    "page_cap",
    "page_size",
    "snooze_days",
    "cors_origins",
    "ruleset",
    "mappings",
    "auth",
    "links",
}


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """What the service needs besides its authentication (see README "Serve")."""

    public_url: str  # the base URL clients call (the JWT `aud` is built from it), without /cds-services
    state_dir: Path  # SQLite files: issued cards, feedback and snoozes; signed links and their secret
    prefetch_timeout_s: float = 2.0  # a fetch from the EHR's FHIR server is cut off after this long
    page_cap: int = 10  # at most this many pages of one search are followed
    page_size: int = 200  # `_count` in the prefetch templates and in searches
    snooze_days: int = 30  # an overridden card is not shown again for this long (same patient and evidence)
    cors_origins: tuple[str, ...] = ()  # browser-based CDS clients allowed to call the service
    ruleset: str | None = None  # a rule set named for every patient (None: chosen by age at onset)
    mappings: tuple[Path, ...] = ()  # site mapping directories (as --mappings)
    auth: dict[str, Any] = field(default_factory=dict)  # the auth section, read by fhir_ns.serve.auth
    links: dict[str, Any] = field(default_factory=dict)  # the links section, read by fhir_ns.serve.links
    base_dir: Path = Path(".")  # relative paths in the file are relative to the file

    @property
    def services_url(self) -> str:
        return f"{self.public_url}/cds-services"

    @classmethod
    def load(cls, path: Path | None, overrides: dict[str, Any] | None = None) -> ServeConfig:
        """Read the file (none: defaults for a service on loopback), then apply `overrides`."""
        data: dict[str, Any] = {}
        base = Path(".")
        if path is not None:
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(f"cannot read the serve configuration {path}: {exc.strerror}") from exc
            except yaml.YAMLError as exc:
                raise ConfigError(f"the serve configuration {path} is not valid YAML: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ConfigError(f"the serve configuration {path} must be a mapping of settings")
            data = loaded
            base = path.resolve().parent
        data = {**data, **(overrides or {})}
        unknown = sorted(set(data) - KNOWN)
        if unknown:
            raise ConfigError(f"unknown serve setting(s): {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}")
        public_url = str(data.get("public_url") or "http://127.0.0.1:8080").rstrip("/")
        if not public_url.startswith(("http://", "https://")):
            raise ConfigError(f"public_url must be an http(s) URL, not {public_url!r}")
        try:
            config = cls(
                public_url=public_url,
                state_dir=_path(base, data.get("state_dir") or "fhir-ns-serve"),
                prefetch_timeout_s=float(data.get("prefetch_timeout_s", 2.0)),
                page_cap=int(data.get("page_cap", 10)),
                page_size=int(data.get("page_size", 200)),
                snooze_days=int(data.get("snooze_days", 30)),
                cors_origins=tuple(str(o) for o in data.get("cors_origins") or ()),
                ruleset=data.get("ruleset"),
                mappings=tuple(_path(base, p) for p in data.get("mappings") or ()),
                auth=dict(data.get("auth") or {}),
                links=dict(data.get("links") or {}),
                base_dir=base,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"a serve setting has a value of the wrong kind: {exc}") from exc
        if config.prefetch_timeout_s <= 0 or config.page_cap < 1 or config.page_size < 1 or config.snooze_days < 0:
            raise ConfigError("prefetch_timeout_s, page_cap and page_size must be positive, snooze_days not negative")
        return config


def _path(base: Path, value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path
