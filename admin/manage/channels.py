"""Notification channels: list, add, edit, enable/disable, delete, and "Send test
message". Admins only, under Administration.

Every write is `app.services.channels_admin`'s (what `flask channels` calls), run
through `management.write`: the same checks and audit events (`channel.created`,
`channel.changed`, `channel.enabled`/`disabled`, `channel.deleted`,
`channel.test_owed`; a refusal as `channel.<verb>_refused`). The target and a
webhook's secret are never shown back: the list shows the target masked, and the edit
form leaves both empty (left empty, they are kept).

The URLs: the list (`/admin/channels/`), the form (`/admin/channels/edit/`, with
`?id=<id>` for an existing channel), and the POST buttons `/admin/channels/enable/`,
`/disable/`, `/delete/` and `/test/`, each naming the channel in the form's `id` and
carrying the CSRF token. "Send test message" owes a `test` message through the outbox,
which the worker sends as it sends every other message.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # (stubs: 3.2)
from wtforms.validators import Length
from wtforms.widgets import CheckboxInput, ListWidget

from admin.security import AdminRequiredMixin
from app.db import db
from app.domain.channels import MAX_NAME, MAX_SECRET, MAX_TARGET, SUBSCRIBABLE, ChannelKind
from app.domain.errors import DomainError
from app.domain.inputs import parse_uuid
from app.models import CloudAccount, NotificationChannel
from app.services import channels_admin, management
from app.services.channels_admin import ChannelFields
from app.services.identity import principal_for

GLOBAL = ""


class _CheckboxList(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ChannelForm(FlaskForm):
    """A channel. The rules are `app.domain.channels`', applied on save."""

    name = StringField("Name", validators=[Length(max=MAX_NAME)])
    kind = SelectField(
        "Kind", choices=[SelectChoice(kind.value, kind.value) for kind in ChannelKind]
    )
    target = PasswordField(
        "Target",
        validators=[Length(max=MAX_TARGET)],
        description="Slack: slack://… (or the https://hooks.slack.com/… webhook URL); "
        "Teams: workflows://… (its workflow webhook); webhook: its http(s) URL; "
        "email: the address. A secret: never shown again; left empty on edit, kept.",
    )
    account = SelectField("Cloud account", description="Global: every account's events.")
    events = _CheckboxList(
        "Events",
        choices=[SelectChoice(event.value, event.value) for event in SUBSCRIBABLE],
        description="None ticked: every event.",
    )
    secret = PasswordField(
        "Signing secret (webhook)",
        validators=[Length(max=MAX_SECRET)],
        description="The HMAC-SHA256 key the receiver verifies X-Signature-256 with (at "
        "least 16 characters). Left empty on edit, kept.",
    )
    enabled = BooleanField("Enabled", default=True)

    def fields_for_service(self, *, editing: bool) -> ChannelFields:
        return ChannelFields(
            name=self.name.data or "",
            kind=self.kind.data or "",
            target=(self.target.data or None) if editing else (self.target.data or ""),
            cloud_account_id=self.account.data or None,
            events=list(self.events.data or []),
            secret=(self.secret.data or None) if editing else self.secret.data,
            enabled=bool(self.enabled.data),
        )


def _account_choices() -> list[SelectChoice]:
    accounts = db.session.execute(
        select(CloudAccount.id, CloudAccount.name, CloudAccount.provider).order_by(
            CloudAccount.name, CloudAccount.id
        )
    ).all()
    return [SelectChoice(GLOBAL, "Global")] + [
        SelectChoice(str(key), f"{name} ({provider})") for key, name, provider in accounts
    ]


class ChannelsView(AdminRequiredMixin, BaseView):
    """Every channel, its form, and its buttons."""

    @expose("/")
    def index(self) -> str:
        return self.render(
            "panel/channels_list.html", channels=channels_admin.list_channels(db.session())
        )

    @expose("/edit/", methods=("GET", "POST"))
    def edit(self) -> Response | str:
        """A new channel, or `?id=<id>`'s: shown (secrets empty), saved on POST."""
        raw_id = request.args.get("id")
        channel = self._channel(raw_id) if raw_id is not None else None
        form = ChannelForm()
        form.account.choices = _account_choices()
        if request.method == "POST":
            if form.validate():
                fields = form.fields_for_service(editing=channel is not None)
                saved = self._save(channel, fields)
                if saved is not None:
                    flash(f'saved the channel "{saved}"', "success")
                    return redirect(self.get_url(".index"))
        elif channel is not None:
            form.name.data = channel.name
            form.kind.data = channel.kind
            form.account.data = str(channel.cloud_account_id or GLOBAL)
            form.events.data = list(channel.events or [])
            form.enabled.data = channel.enabled
        return self.render("panel/channel_edit.html", form=form, channel=channel)

    def _save(self, channel: NotificationChannel | None, fields: ChannelFields) -> str | None:
        if channel is None:
            return self._write(
                "create",
                lambda session, actor: channels_admin.create_channel(session, actor, fields).name,
            )
        channel_id = channel.id
        return self._write(
            "change",
            lambda session, actor: (
                channels_admin.update_channel(session, actor, channel_id, fields).name
            ),
            channel_id=str(channel_id),
        )

    @expose("/enable/", methods=("POST",))
    def enable(self) -> Response:
        return self._switch("enable", True)

    @expose("/disable/", methods=("POST",))
    def disable(self) -> Response:
        return self._switch("disable", False)

    def _switch(self, verb: str, enabled: bool) -> Response:
        channel_id = self._channel(request.form.get("id", "")).id
        name = self._write(
            verb,
            lambda session, actor: (
                channels_admin.set_enabled(session, actor, channel_id, enabled).name
            ),
            channel_id=str(channel_id),
        )
        if name is not None:
            flash(f'channel "{name}" {verb}d', "success")
        return redirect(self.get_url(".index"))

    @expose("/delete/", methods=("POST",))
    def delete(self) -> Response:
        channel_id = self._channel(request.form.get("id", "")).id
        name = self._write(
            "delete",
            lambda session, actor: channels_admin.delete_channel(session, actor, channel_id),
            channel_id=str(channel_id),
        )
        if name is not None:
            flash(f'deleted the channel "{name}" and its messages', "success")
        return redirect(self.get_url(".index"))

    @expose("/test/", methods=("POST",))
    def test(self) -> Response:
        """Owe the channel a test message through the outbox."""
        channel_id = self._channel(request.form.get("id", "")).id
        name = self._write(
            "test",
            lambda session, actor: channels_admin.send_test(session, actor, channel_id).name,
            channel_id=str(channel_id),
        )
        if name is not None:
            flash(
                f'test message queued for "{name}": the worker sends it through the outbox '
                "(its count below shows when it is sent)",
                "success",
            )
        return redirect(self.get_url(".index"))

    def _channel(self, raw: str) -> NotificationChannel:
        """The channel a URL or form names by id: 400 malformed, 404 unknown."""
        return channels_admin.find_channel(db.session(), parse_uuid(raw, what="channel id"))

    def _write(self, verb: str, change: Any, **details: Any) -> Any:
        """`change(session, actor)` through `management.write`; None after a refusal,
        which is flashed."""
        try:
            return management.write("channel", verb, principal_for(current_user), change, **details)
        except DomainError as refusal:
            flash(refusal.message, "error")
            return None
