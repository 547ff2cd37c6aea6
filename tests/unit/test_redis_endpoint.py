"""Where Redis is: one endpoint, or a Redis Sentinel group, read from `REDIS_URL`."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings

SENTINELS = "sentinel://:s3cret@h1:26379/2;sentinel://:s3cret@h2:26380/2"


def test_one_endpoint_goes_to_celery_and_the_throttle_as_it_is():
    settings = Settings.from_env({"REDIS_URL": "rediss://cache:6380/1"})
    assert settings.redis_url == "rediss://cache:6380/1"
    assert settings.redis.celery_transport_options() == {}
    assert settings.redis.limiter_storage() == ("rediss://cache:6380/1", {})


def test_a_sentinel_group_names_its_master_to_celery_and_the_throttle():
    settings = Settings.from_env({"REDIS_URL": SENTINELS, "REDIS_SENTINEL_MASTER": "main"})
    assert settings.redis_url == SENTINELS  # Celery's own notation, as it is
    assert settings.redis.celery_transport_options() == {"master_name": "main"}
    assert settings.redis.limiter_storage() == (
        "redis+sentinel://:s3cret@h1:26379,h2:26380/main",
        {"db": 2},
    )


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"REDIS_URL": "sentinel://h1:26379"}, "needs REDIS_SENTINEL_MASTER"),
        ({"REDIS_URL": "sentinel://h1:26379/0;sentinel://h2:26379/1"}, "same database"),
        ({"REDIS_URL": "sentinel://h1:26379;redis://h2:6379"}, "is not a sentinel://"),
        ({"REDIS_URL": "sentinel://h1:port"}, "port that is not a number"),
        ({"REDIS_URL": "sentinel://h1:26379/zero"}, "database that is not a number"),
        ({"REDIS_URL": "http://h1:6379"}, "must be a redis:// or rediss:// URL"),
        ({"REDIS_URL": "redis://"}, "must be a redis:// or rediss:// URL"),
    ],
)
def test_a_redis_url_that_does_not_say_where_redis_is_is_refused(env, problem):
    with pytest.raises(ConfigError, match=f"REDIS_URL .*{problem}"):
        Settings.from_env({"REDIS_SENTINEL_MASTER": "", **env})
