"""Where Redis is: one `REDIS_URL` for every process (the broker, the task results and
the sign-in throttle), either one endpoint or a Redis Sentinel group.

- `redis://host:6379/0` or `rediss://…`: one endpoint (a managed Redis that fails over
  behind one address included).
- `sentinel://h1:26379/0;sentinel://h2:26379/0` with `REDIS_SENTINEL_MASTER`: the
  Sentinels to ask for the current master of that name, in Celery's own notation.
  Celery reads it as it is (with `master_name` in its transport options); the
  throttle (Flask-Limiter) gets the same Sentinels in its own notation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SENTINEL = "sentinel"
ENDPOINT_SCHEMES = frozenset({"redis", "rediss"})


class RedisUrlError(ValueError):
    """`REDIS_URL` (or its Sentinel master) does not say where Redis is."""


@dataclass(frozen=True)
class RedisEndpoint:
    url: str
    sentinel_master: str | None = None

    @classmethod
    def parse(cls, raw: str, sentinel_master: str | None) -> RedisEndpoint:
        """Check `raw` (and the master its Sentinels serve); raise `RedisUrlError`
        saying what is wrong."""
        url = raw.strip()
        if not url.startswith(f"{SENTINEL}://"):
            parts = urlsplit(url)
            if parts.scheme not in ENDPOINT_SCHEMES or not parts.hostname:
                raise RedisUrlError(
                    "must be a redis:// or rediss:// URL, or sentinel:// URLs joined by ';'"
                )
            return cls(url)
        dbs = {_sentinel_db(part) for part in url.split(";")}
        if len(dbs) != 1:
            raise RedisUrlError("every sentinel:// URL must name the same database")
        if not sentinel_master:
            raise RedisUrlError("a sentinel:// URL needs REDIS_SENTINEL_MASTER (its master)")
        return cls(url, sentinel_master)

    @property
    def is_sentinel(self) -> bool:
        return self.sentinel_master is not None

    def celery_transport_options(self) -> dict[str, Any]:
        """What Celery's broker and result backend add to their transport options."""
        return {"master_name": self.sentinel_master} if self.is_sentinel else {}

    def limiter_storage(self) -> tuple[str, dict[str, Any]]:
        """Flask-Limiter's storage URI and options for the same Redis."""
        if not self.is_sentinel:
            return self.url, {}
        parts = [urlsplit(part) for part in self.url.split(";")]
        hosts = ",".join(f"{part.hostname}:{part.port or 26379}" for part in parts)
        password = parts[0].password
        auth = f":{password}@" if password else ""
        options: dict[str, Any] = {"db": _sentinel_db(self.url.split(";")[0])}
        return f"redis+sentinel://{auth}{hosts}/{self.sentinel_master}", options


def _sentinel_db(part: str) -> int:
    parts = urlsplit(part.strip())
    if parts.scheme != SENTINEL or not parts.hostname:
        raise RedisUrlError(f"{part.strip()[:60]!r} is not a sentinel://host:port URL")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise RedisUrlError(f"{part.strip()[:60]!r} has a port that is not a number") from None
    path = parts.path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise RedisUrlError(f"{part.strip()[:60]!r} names a database that is not a number")
    return int(path)
