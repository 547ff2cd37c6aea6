import pytest

from app.config import ConfigError, Settings, default_sqlite_url


def test_embedded_defaults():
    settings = Settings.from_env({})
    assert settings.database_url == default_sqlite_url()
    assert settings.is_sqlite
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.retry_threshold == 5
    assert settings.grace_period_days == 7
    assert settings.approval_token_ttl_hours == 168
    assert settings.reaper_minutes == 10
    assert settings.require_different_approver is False
    assert settings.from_email is None


def test_every_setting_is_read():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://u:p@db.internal:5433/commitments",
            "REDIS_URL": "redis://cache:6380/2",
            "SECRET_KEY": "s3cret",
            "APP_BASE_URL": "https://finops.example.com/",
            "SMTP_HOST": "smtp.example.com",
            "SMTP_PORT": "587",
            "SMTP_USERNAME": "mailer",
            "SMTP_PASSWORD": "pw",
            "SMTP_STARTTLS": "true",
            "FROM_EMAIL": "purchases@example.com",
            "RETRY_THRESHOLD": "3",
            "GRACE_PERIOD_DAYS": "14",
            "APPROVAL_TOKEN_TTL_HOURS": "24",
            "REQUIRE_DIFFERENT_APPROVER": "yes",
            "REAPER_MINUTES": "30",
            "OPS_HINTS_EXTRA": "quota exceeded=Raise the quota, then retry; KMS=Fix the key",
        }
    )
    assert settings.database_url == "postgresql+psycopg://u:p@db.internal:5433/commitments"
    assert not settings.is_sqlite
    assert settings.redis_url == "redis://cache:6380/2"
    assert settings.app_base_url == "https://finops.example.com"
    assert (settings.smtp_host, settings.smtp_port) == ("smtp.example.com", 587)
    assert settings.smtp_starttls is True
    assert settings.retry_threshold == 3
    assert settings.grace_period_days == 14
    assert settings.approval_token_ttl_hours == 24
    assert settings.require_different_approver is True
    assert settings.reaper_minutes == 30
    assert settings.ops_hints_extra == (
        ("quota exceeded", "Raise the quota, then retry"),
        ("KMS", "Fix the key"),
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETRY_THRESHOLD", "five"),
        ("RETRY_THRESHOLD", "0"),
        ("SMTP_PORT", "70000"),
        ("GRACE_PERIOD_DAYS", "-1"),
        ("APPROVAL_TOKEN_TTL_HOURS", "1.5"),
        ("REQUIRE_DIFFERENT_APPROVER", "maybe"),
        ("REAPER_MINUTES", "0"),
        ("DATABASE_URL", "mysql://root@localhost/x"),
        ("DATABASE_URL", "not a url"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("APP_BASE_URL", "finops.example.com"),
        ("OPS_HINTS_EXTRA", "no equals sign"),
    ],
)
def test_an_unusable_value_names_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_password_without_username_is_refused():
    with pytest.raises(ConfigError, match="SMTP_USERNAME"):
        Settings.from_env({"SMTP_PASSWORD": "x"})


def test_https_without_a_secret_key_refuses_to_start():
    """Over https every process must sign sessions with one key; a per-machine file is
    not that."""
    with pytest.raises(ConfigError, match="SECRET_KEY must be set when APP_BASE_URL is https"):
        Settings.from_env({"APP_BASE_URL": "https://finops.example.com"})
    settings = Settings.from_env({"APP_BASE_URL": "https://finops.example.com", "SECRET_KEY": "k"})
    assert settings.secret_key == "k"


def test_app_env_is_development_unless_production():
    assert Settings.from_env({}).app_env == "development"
    assert not Settings.from_env({}).is_production
    production = Settings.from_env({"APP_ENV": "production", "SECRET_KEY": "k"})
    assert production.is_production


@pytest.mark.parametrize("value", ["prod", "Production", "staging", "test"])
def test_app_env_refuses_anything_else_naming_the_variable(value):
    with pytest.raises(ConfigError, match="APP_ENV must be one of development, production"):
        Settings.from_env({"APP_ENV": value})


def test_production_needs_a_secret_key():
    """A key generated into one machine's instance folder signs nothing the other
    machines of a deployment accept (and is lost with the machine)."""
    with pytest.raises(ConfigError, match="SECRET_KEY must be set when APP_ENV is production"):
        Settings.from_env({"APP_ENV": "production"})


def test_the_embedded_default_database_is_told_apart(tmp_path):
    assert Settings.from_env({}).uses_embedded_database
    assert not Settings.from_env({"DATABASE_URL": "postgres://db/x"}).uses_embedded_database
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"
    assert not Settings.from_env({"DATABASE_URL": elsewhere}).uses_embedded_database
    own = Settings(database_url=default_sqlite_url(tmp_path), instance_dir=tmp_path)
    assert own.uses_embedded_database


def test_flower_basic_auth_is_read_and_checked_without_echoing_it():
    assert Settings.from_env({}).flower_basic_auth is None
    settings = Settings.from_env({"FLOWER_BASIC_AUTH": "ops:s3cret,ro:other"})
    assert settings.flower_basic_auth == "ops:s3cret,ro:other"
    for value in ["no-colon-s3cret", "ops:", ":s3cret", "ops:s3cret,broken-s3cret"]:
        with pytest.raises(ConfigError, match="FLOWER_BASIC_AUTH must look like") as info:
            Settings.from_env({"FLOWER_BASIC_AUTH": value})
        assert "s3cret" not in str(info.value)
