"""Flask extensions, created unbound here and bound to an app in `create_app`."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()
migrate = Migrate()
# The approval links and the sign-in doors are limited (per client address, counted
# in the product's Redis); should Redis be unreachable, each process counts in memory.
# Behind a proxy, the client address is what the proxy says only once the deployment
# sets TRUSTED_PROXIES (werkzeug's ProxyFix, in the factory): see docs/operations.md.
limiter = Limiter(
    key_func=get_remote_address,
    strategy="moving-window",
    key_prefix="approval-links",
    headers_enabled=True,
    in_memory_fallback_enabled=True,
)
