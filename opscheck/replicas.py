"""Which service URLs the health and smoke checks ask, one row each.

`[service] base_url` alone (no parameter: the ids are the plain check ids), or, when
`[service] base_urls` lists the replicas' own URLs, the load balancer (`base_url`) and
each replica: a load balancer that skips a dead replica answers healthy while a third
of the capacity is gone, so each replica is asked directly. A row's parameter id and
its evidence name the URL without credentials (`lb-10.0.0.4`, `replica-10.0.0.5:8000`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from opscheck.config import Service
from opscheck.scrub import redact_url

ROLES = {"lb": "load balancer", "replica": "replica"}


@dataclass(frozen=True)
class ServiceTarget:
    url: str  # as configured: may hold credentials, never printed
    role: str = ""  # "" (base_url alone), "lb" or "replica"

    @property
    def label(self) -> str:
        return url_label(self.url)

    @property
    def id(self) -> str:
        """The parameter id: role and label, e.g. `replica-10.0.0.5:8000`."""
        return f"{self.role}-{self.label}"

    @property
    def name(self) -> str:
        """`replica 10.0.0.5:8000`, `load balancer 10.0.0.4`; "" for base_url alone."""
        return f"{ROLES[self.role]} {self.label}" if self.role else ""


def url_label(url: str) -> str:
    """Host, port and path of `url`, without scheme, credentials, query or fragment."""
    rest = redact_url(url).partition("://")[2] or url
    for sep in ("?", "#"):
        rest = rest.split(sep, 1)[0]
    return rest.rstrip("/") or "(empty)"


def service_targets(service: Service) -> list[ServiceTarget]:
    """The load balancer and each replica when base_urls is set, else base_url alone."""
    if not service.base_urls:
        return [ServiceTarget(service.base_url)]
    replicas = [ServiceTarget(url, "replica") for url in dict.fromkeys(service.base_urls)]
    return [ServiceTarget(service.base_url, "lb"), *replicas]


def parametrize(metafunc: pytest.Metafunc, service: Service) -> None:
    """A check asking for `service_target` runs once per target when base_urls is set."""
    if "service_target" not in metafunc.fixturenames or not service.base_urls:
        return
    targets = service_targets(service)
    metafunc.parametrize("service_target", targets, ids=[t.id for t in targets], indirect=True)
