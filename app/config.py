"""Settings read from the environment (and an optional `.env`), validated once.

Every setting the product reads lives here with its embedded default (the list, with
what each does, is the README's "Configuration"). Nothing is read at import time:
`Settings.from_env()` is called by `create_app` (or by a test with its own mapping),
and a missing or unusable value raises `ConfigError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app
from limits import parse_many
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from app.domain.inputs import parse_bool
from app.domain.providers import PROVIDERS
from app.redis_endpoint import RedisEndpoint, RedisUrlError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_APP_BASE_URL = "http://127.0.0.1:5000"
DEFAULT_LINK_RATE_LIMIT = "20 per minute"
DEFAULT_SIGN_IN_RATE_LIMIT = "10 per minute;100 per hour"
APP_ENVS = ("development", "production")
INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"


class ConfigError(ValueError):
    """A setting is missing or unusable; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """The product's configuration. Construct with `from_env`, or directly in tests."""

    database_url: str
    redis_url: str = DEFAULT_REDIS_URL
    # The master a `sentinel://` REDIS_URL's Sentinels serve (app.redis_endpoint).
    redis_sentinel_master: str | None = None
    secret_key: str | None = None
    app_base_url: str = DEFAULT_APP_BASE_URL
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    from_email: str | None = None
    retry_threshold: int = 5
    grace_period_days: int = 7
    approval_token_ttl_hours: int = 168
    require_different_approver: bool = False
    reaper_minutes: int = 10
    # How often beat hands scheduled purchases whose time has come to the executor
    # (SCHEDULE_CHECK_SECONDS): a scheduled row starts at most this long after its time.
    schedule_check_seconds: int = 30
    # Hours before a scheduled execution starts that its approvers are reminded; 0: never.
    schedule_reminder_hours: int = 24
    # Seconds a bulk retry's outcome emails wait for the rest of the batch to end, so
    # each creator gets one digest of the rows that ended meanwhile (OUTCOME_DIGEST_SECONDS).
    outcome_digest_seconds: int = 120
    # Money (upfront, USD) stuck in failed rows above which channels get a failure
    # digest, once a day per threshold (CHANNEL_FAILED_MONEY_THRESHOLD); 0: never.
    channel_failed_money_threshold: float = 0.0
    # Extra ops hints, "substring=hint" pairs separated by ";" in OPS_HINTS_EXTRA.
    ops_hints_extra: tuple[tuple[str, str], ...] = field(default=())
    # Providers whose purchases cannot be re-driven idempotently (REDRIVE_UNSAFE_PROVIDERS).
    redrive_unsafe_providers: frozenset[str] = field(default_factory=frozenset)
    # Transient SMTP failures: retried after 1, 2, 4 ... times this, EMAIL_MAX_RETRIES times.
    email_retry_base_seconds: float = 2.0
    email_max_retries: int = 8
    # Requests per client address to the approval links (pages and the API's token
    # path), in the `limits` notation: "20/minute", "100 per hour;5 per second".
    link_rate_limit: str = DEFAULT_LINK_RATE_LIMIT
    # Refused sign-ins per client address, whatever the email, on the login page and
    # `POST /api/auth/login` together (SIGN_IN_RATE_LIMIT, the same notation).
    sign_in_rate_limit: str = DEFAULT_SIGN_IN_RATE_LIMIT
    # Reverse proxies in front of the app (TRUSTED_PROXIES): their X-Forwarded-For,
    # -Proto and -Host are believed, hop by hop, by werkzeug's ProxyFix. 0 believes none:
    # a client could otherwise choose its own address and escape the per-address rules.
    trusted_proxies: int = 0
    # APP_ENV: "production" never seeds the demo and needs SECRET_KEY.
    app_env: str = "development"
    # FLOWER_BASIC_AUTH, "user:password" (several separated by ","); None: Flower's
    # credentials are generated into the instance folder.
    flower_basic_auth: str | None = None
    # METRICS_TOKEN: the bearer token `GET /metrics` asks for (`Authorization: Bearer …`);
    # None: /metrics answers only this machine (loopback, not proxied), never in production.
    metrics_token: str | None = None
    # Where the embedded database, the generated secret key and Flower's generated
    # credentials live (owner only). Not read from the environment: tests set it.
    instance_dir: Path = INSTANCE_DIR

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise `ConfigError` on the first bad one."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        redis = reader.redis("REDIS_URL", "REDIS_SENTINEL_MASTER")
        settings = cls(
            database_url=normalize_database_url(
                env.get("DATABASE_URL") or default_sqlite_url(), "DATABASE_URL"
            ),
            redis_url=redis.url,
            redis_sentinel_master=redis.sentinel_master,
            secret_key=env.get("SECRET_KEY") or None,
            app_base_url=reader.url(
                "APP_BASE_URL", DEFAULT_APP_BASE_URL, schemes={"http", "https"}
            ).rstrip("/"),
            smtp_host=env.get("SMTP_HOST") or "127.0.0.1",
            smtp_port=reader.integer("SMTP_PORT", 25, minimum=1, maximum=65535),
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_starttls=reader.boolean("SMTP_STARTTLS", False),
            from_email=env.get("FROM_EMAIL") or None,
            retry_threshold=reader.integer("RETRY_THRESHOLD", 5, minimum=1),
            grace_period_days=reader.integer("GRACE_PERIOD_DAYS", 7, minimum=0),
            approval_token_ttl_hours=reader.integer("APPROVAL_TOKEN_TTL_HOURS", 168, minimum=1),
            require_different_approver=reader.boolean("REQUIRE_DIFFERENT_APPROVER", False),
            reaper_minutes=reader.integer("REAPER_MINUTES", 10, minimum=1),
            schedule_check_seconds=reader.integer(
                "SCHEDULE_CHECK_SECONDS", 30, minimum=1, maximum=3600
            ),
            schedule_reminder_hours=reader.integer(
                "SCHEDULE_REMINDER_HOURS", 24, minimum=0, maximum=24 * 31
            ),
            outcome_digest_seconds=reader.integer(
                "OUTCOME_DIGEST_SECONDS", 120, minimum=0, maximum=24 * 3600
            ),
            channel_failed_money_threshold=reader.number(
                "CHANNEL_FAILED_MONEY_THRESHOLD", 0.0, minimum=0.0
            ),
            ops_hints_extra=parse_ops_hints(env.get("OPS_HINTS_EXTRA", "")),
            redrive_unsafe_providers=parse_providers(
                env.get("REDRIVE_UNSAFE_PROVIDERS", ""), "REDRIVE_UNSAFE_PROVIDERS"
            ),
            email_retry_base_seconds=reader.number("EMAIL_RETRY_BASE_SECONDS", 2.0, minimum=0.1),
            email_max_retries=reader.integer("EMAIL_MAX_RETRIES", 8, minimum=0, maximum=20),
            link_rate_limit=parse_rate_limit(
                env.get("LINK_RATE_LIMIT") or DEFAULT_LINK_RATE_LIMIT, "LINK_RATE_LIMIT"
            ),
            sign_in_rate_limit=parse_rate_limit(
                env.get("SIGN_IN_RATE_LIMIT") or DEFAULT_SIGN_IN_RATE_LIMIT, "SIGN_IN_RATE_LIMIT"
            ),
            trusted_proxies=reader.integer("TRUSTED_PROXIES", 0, minimum=0, maximum=5),
            app_env=reader.choice("APP_ENV", APP_ENVS),
            flower_basic_auth=parse_basic_auth(env.get("FLOWER_BASIC_AUTH"), "FLOWER_BASIC_AUTH"),
            metrics_token=parse_token(env.get("METRICS_TOKEN"), "METRICS_TOKEN"),
        )
        if settings.smtp_password and not settings.smtp_username:
            raise ConfigError("SMTP_PASSWORD is set but SMTP_USERNAME is not")
        if settings.app_base_url.startswith("https://") and not settings.secret_key:
            raise ConfigError(
                "SECRET_KEY must be set when APP_BASE_URL is https: every process of the "
                "deployment must sign sessions with the same key"
            )
        if settings.is_production and not settings.secret_key:
            raise ConfigError(
                "SECRET_KEY must be set when APP_ENV is production: a key generated into "
                "one machine's instance folder signs nothing the others accept"
            )
        return settings

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced (tests and scripts)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def redis(self) -> RedisEndpoint:
        """Where Redis is, for Celery and the sign-in throttle."""
        return RedisEndpoint(self.redis_url, self.redis_sentinel_master)

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def uses_embedded_database(self) -> bool:
        """The database is the embedded default: the SQLite file in the instance folder."""
        return self.database_url == normalize_database_url(default_sqlite_url(self.instance_dir))


def default_sqlite_url(instance_dir: Path = INSTANCE_DIR) -> str:
    """The embedded default database: a SQLite file under `instance/`."""
    return f"sqlite:///{instance_dir / 'commitments.db'}"


def normalize_database_url(raw: str, name: str = "DATABASE_URL") -> str:
    """Accept `postgres://`, `postgresql://` or `sqlite://` URLs; pin the psycopg 3 driver."""
    try:
        url: URL = make_url(raw)
    except ArgumentError as exc:
        raise ConfigError(f"{name} is not a database URL: {raw!r}") from exc
    backend = url.get_backend_name()
    if backend in {"postgres", "postgresql"}:
        url = url.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(f"{name} must be a PostgreSQL or SQLite URL, got {backend!r}")
    return url.render_as_string(hide_password=False)


def parse_ops_hints(raw: str) -> tuple[tuple[str, str], ...]:
    """Parse `OPS_HINTS_EXTRA`: `substring=hint;substring=hint`."""
    pairs: list[tuple[str, str]] = []
    for chunk in filter(None, (part.strip() for part in raw.split(";"))):
        substring, sep, hint = chunk.partition("=")
        if not sep or not substring.strip() or not hint.strip():
            raise ConfigError(
                f"OPS_HINTS_EXTRA entries must look like 'substring=hint', got {chunk!r}"
            )
        pairs.append((substring.strip(), hint.strip()))
    return tuple(pairs)


def parse_providers(raw: str, name: str) -> frozenset[str]:
    """A comma-separated list of providers (`aws`, `azure`, `gcp`)."""
    providers = frozenset(filter(None, (part.strip().lower() for part in raw.split(","))))
    unknown = sorted(providers - set(PROVIDERS))
    if unknown:
        raise ConfigError(
            f"{name} names unknown providers {', '.join(unknown)} (known: {', '.join(PROVIDERS)})"
        )
    return providers


def parse_basic_auth(raw: str | None, name: str) -> str | None:
    """`user:password` pairs separated by "," (as Flower splits them), both parts
    non-empty; the message never repeats the value (it holds a password)."""
    if not raw:
        return None
    for pair in raw.split(","):
        user, sep, password = pair.partition(":")
        if not (sep and user.strip() and password):
            raise ConfigError(f"{name} must look like 'user:password' (several separated by ',')")
    return raw


MIN_TOKEN_LENGTH = 24


def parse_token(raw: str | None, name: str) -> str | None:
    """A secret token of at least `MIN_TOKEN_LENGTH` printable characters, no spaces; the
    message never repeats the value."""
    if not raw:
        return None
    if len(raw) < MIN_TOKEN_LENGTH or not all(33 <= ord(char) < 127 for char in raw):
        raise ConfigError(
            f"{name} must be at least {MIN_TOKEN_LENGTH} printable ASCII characters without "
            "spaces (for example: openssl rand -hex 32)"
        )
    return raw


def parse_rate_limit(raw: str, name: str) -> str:
    """A rate limit in the `limits` notation (what Flask-Limiter reads), checked now."""
    try:
        if not parse_many(raw):
            raise ValueError("no limit")
    except ValueError:
        raise ConfigError(
            f"{name} must be a rate limit like '20 per minute' or '5/second', got {raw!r}"
        ) from None
    return raw.strip()


@dataclass(frozen=True)
class _Reader:
    env: Mapping[str, str]

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ConfigError(f"{name} must be {bounds}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not value >= minimum:
            raise ConfigError(f"{name} must be >= {minimum}, got {raw}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(name)
        if raw is None:
            return default
        value = parse_bool(raw)
        if value is None:
            raise ConfigError(f"{name} must be true or false, got {raw!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        """One of `choices`; unset or empty is the first."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return choices[0]
        if raw not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return raw

    def redis(self, name: str, master_name: str) -> RedisEndpoint:
        try:
            return RedisEndpoint.parse(
                self.env.get(name) or DEFAULT_REDIS_URL, self.env.get(master_name) or None
            )
        except RedisUrlError as problem:
            raise ConfigError(f"{name} {problem}") from None

    def url(self, name: str, default: str, *, schemes: set[str]) -> str:
        raw = (self.env.get(name) or default).strip()
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.netloc:
            wanted = " or ".join(sorted(f"{s}://" for s in schemes))
            raise ConfigError(f"{name} must be a {wanted} URL, got {raw!r}")
        return raw


def get_settings() -> Settings:
    """The settings of the app in the current context."""
    return current_app.extensions["settings"]
