"""The management views' forms (Flask-WTF: every POST carries the CSRF token).

Passwords are `PasswordField`s, which never render a value: not on the create form
shown again after a refusal, never on the edit form (which has no hash to show: the
field starts empty, and left empty it keeps the current password).
"""

from __future__ import annotations

from typing import Any

from flask_admin.contrib.sqla.fields import CheckboxListField
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.db import db
from app.domain.providers import PROVIDERS
from app.domain.rbac import InvalidPermission, validate_permission
from app.models import Group, normalize_email
from app.services.identity import _EMAIL_SHAPE as EMAIL_SHAPE  # the one email rule
from app.services.identity import MIN_PASSWORD_LENGTH


def _all_groups() -> list[Group]:
    return list(db.session.scalars(select(Group).order_by(Group.name)))


def _groups_field() -> CheckboxListField:
    return CheckboxListField(
        "Groups", query_factory=_all_groups, get_label="name", get_pk=lambda group: group.id
    )


def email_address(_form: Any, field: Any) -> None:
    if field.data and not EMAIL_SHAPE.match(normalize_email(field.data)):
        raise ValidationError("not an email address")


# The rule `identity.create_user` / `set_password` apply again when the form is saved.
_long_enough = Length(
    min=MIN_PASSWORD_LENGTH, message=f"must be at least {MIN_PASSWORD_LENGTH} characters"
)


class PermissionListField(TextAreaField):
    """`verb:resource` permissions, one per line (commas also separate them).

    Each is checked by `app.domain.rbac.validate_permission`, the rule the CLI's
    `groups create` applies; `data` holds them canonical, sorted, without repeats.
    """

    # A list, where a TextAreaField holds one string (the widget renders `_value()`).
    data: list[str] | None  # type: ignore[assignment]

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return "\n".join(self.data or [])

    def process_formdata(self, valuelist: list[str]) -> None:
        if valuelist:
            text = valuelist[0].replace(",", "\n")
            self.data = [line.strip() for line in text.splitlines() if line.strip()]
        else:
            self.data = []

    def pre_validate(self, form: Any) -> None:
        canonical: set[str] = set()
        problems: list[str] = []
        for raw in self.data or []:
            try:
                canonical.add(validate_permission(raw))
            except InvalidPermission as exc:
                problems.append(str(exc))
        if problems:
            raise ValidationError("; ".join(problems))
        self.data = sorted(canonical)


class UserCreateForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(), Length(max=320), email_address])
    password = PasswordField(
        "Password",
        validators=[DataRequired(), _long_enough],
        description=f"At least {MIN_PASSWORD_LENGTH} characters; stored only as an argon2 hash.",
    )
    groups = _groups_field()


class UserEditForm(FlaskForm):
    # Shown for orientation; an email is not changed here (the field is ignored).
    email = StringField("Email", render_kw={"readonly": True})
    is_active = BooleanField(
        "Active", description="An inactive user cannot sign in; their sessions end."
    )
    groups = _groups_field()
    password = PasswordField(
        "New password",
        validators=[Optional(), _long_enough],
        description="Leave empty to keep the current password. A new one ends their sessions.",
    )


class GroupForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    permissions = PermissionListField(
        "Permissions",
        description="One verb:resource per line, e.g. retry-any:purchases; admin:* for admins.",
        render_kw={"rows": 6},
    )
    restricts_defaults = BooleanField(
        "Restricts defaults",
        description="Members lose the default permissions every signed-in user has.",
    )


class CloudAccountForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    provider = SelectField("Provider", choices=[(name, name) for name in PROVIDERS])
    external_id = StringField(
        "External id",
        validators=[DataRequired(), Length(max=200)],
        description=(
            "The AWS account id (the STS external id when a role is given), the Azure "
            "subscription id, or the GCP project id."
        ),
    )
    contact_email = StringField(
        "Contact email",
        validators=[Optional(), Length(max=320), email_address],
        description="Where approval emails for this account go.",
    )
    # Where the cloud's SDK acts; the rules (shape, which provider) are
    # `app.services.accounts.account_fields`'s, applied when the form is saved.
    aws_role_arn = StringField(
        "AWS role ARN",
        validators=[Optional(), Length(max=2048)],
        description=(
            "AWS only, optional: the IAM role purchases run as, e.g. "
            "arn:aws:iam::123456789012:role/commitment-purchaser. It is assumed with the "
            "external id above as the STS external id. No secret is stored here: the "
            "server's credentials come from the AWS SDK's standard chain."
        ),
    )
    azure_billing_scope = StringField(
        "Azure billing scope",
        validators=[Optional(), Length(max=500)],
        description=(
            "Azure only, optional: the billing scope reservations are charged to, e.g. "
            "/providers/Microsoft.Billing/billingAccounts/1234567. The external id above is "
            "the subscription. No secret is stored here: credentials come from the Azure "
            "SDK's standard chain (DefaultAzureCredential)."
        ),
    )
