"""The security suite's fixture: `world`, one user per role on the rolled-back session."""

from __future__ import annotations

import pytest
import redis
from flask import Flask
from sqlalchemy.orm import Session

from tests.e2e.security.world import World, make_world


@pytest.fixture
def world(app: Flask, db_session: Session, redis_db: redis.Redis) -> World:
    return make_world(app, db_session)
