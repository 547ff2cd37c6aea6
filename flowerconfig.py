"""Flower's settings: Flower reads `flowerconfig.py` from its working directory, so
`celery -A tasks flower` run from the checkout (the Procfile, or by hand) always asks
for HTTP basic authentication and listens on loopback unless told otherwise.

Without credentials a browser gets 401, and so does a page that reaches Flower
through DNS rebinding (its Host header names the attacker's domain, and the browser
holds no credentials for it): the task list, arguments and results stay unread.
The credentials are FLOWER_BASIC_AUTH (`user:password`), or a pair generated once
into `instance/flower_credentials` (mode 0600), which `scripts/run` prints.
Names here that are Flower options (`basic_auth`, `address`) are its settings; the
command line (`--address`, `--port`) still wins.
"""

from dotenv import load_dotenv as _load_dotenv

from app.config import Settings as _Settings
from app.instance import flower_credentials as _flower_credentials

_load_dotenv(override=False)
basic_auth = _flower_credentials(_Settings.from_env())
address = "127.0.0.1"
