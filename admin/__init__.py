"""The Flask-Admin panel, server-rendered. `init_admin(app)` mounts it at /admin.

Views are added in one place, below, one `add_view` call each (the management views
through `admin.manage.add_views`); Flask-Admin leaves a view a user may not open out of
their menu.
"""

from __future__ import annotations

import warnings

from flask import Blueprint, Flask
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from admin import controls, formatting, manage
from admin.bulk import RetryBatchView
from admin.causes import FailureCausesView
from admin.home import HomeView
from admin.manage.channels import ChannelsView
from admin.manage.limits import SpendLimitsView
from admin.new_purchase import NewPurchaseView
from admin.settings import SettingsView
from admin.views import PurchaseHistoryView
from app.db import db
from app.models import PurchaseExecution
from app.security_headers import csp_nonce


def init_admin(app: Flask) -> Admin:
    """Mount the panel on `app`, with this package's templates on the search path."""
    formatting.register(app)
    app.register_blueprint(
        Blueprint(
            "panel",
            __name__,
            template_folder="templates",
            static_folder="static",
            static_url_path="/panel-static",
        )
    )
    panel = Admin(
        app,
        name="Commitment purchases",
        index_view=HomeView(name="Home", url="/admin"),
        theme=Bootstrap4Theme(base_template="panel/base.html", fluid=True),
        # Flask-Admin's templates put it on their <script> tags (admin_csp_nonce_attribute).
        csp_nonce_generator=csp_nonce,
    )
    # Before Purchase History: its (switched off) create page has the same address, and
    # the first rule registered for an address is the one that answers.
    panel.add_view(
        NewPurchaseView(name="New purchase", endpoint="purchase_new", url="/admin/purchases/new")
    )
    with warnings.catch_warnings():
        # Flask-Admin 2.2 unwraps only Flask-SQLAlchemy's `db` object; ours is plain
        # SQLAlchemy, so the scoped session is the supported thing to hand it.
        warnings.filterwarnings("ignore", "Passing a session object", DeprecationWarning)
        panel.add_view(
            PurchaseHistoryView(
                PurchaseExecution, db.session, name="Purchase History", endpoint="purchases"
            )
        )
        manage.add_views(panel, db.session)
    panel.add_view(RetryBatchView(name="Retry batch", endpoint="retry_batches"))
    panel.add_view(FailureCausesView(name="Failures by cause", endpoint="causes"))
    controls.add_views(panel, manage.ADMINISTRATION)
    app.context_processor(controls.freeze_banner)
    panel.add_view(
        SpendLimitsView(name="Spend Limits", endpoint="limits", category=manage.ADMINISTRATION)
    )
    panel.add_view(
        ChannelsView(
            name="Notification channels", endpoint="channels", category=manage.ADMINISTRATION
        )
    )
    panel.add_view(SettingsView(name="Your settings", endpoint="settings", url="/admin/settings"))
    return panel
