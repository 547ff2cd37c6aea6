"""The login page and logout."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, Length

from app.auth.session import safe_next_url, sign_in, sign_out
from app.auth.sign_in_throttle import sign_in_rate_limit

blueprint = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField("Sign in")


def _landing() -> str:
    return url_for("admin.index")


@blueprint.route("/login", methods=["GET", "POST"])
@sign_in_rate_limit()
def login() -> str | Response | tuple[str, int]:
    next_url = safe_next_url(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or _landing())
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        outcome = sign_in(form.email.data or "", form.password.data or "")
        if outcome.user is not None:
            return redirect(next_url or _landing())
        flash(outcome.message, "error")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form, next_url=next_url), status


@blueprint.errorhandler(TooManyRequests)
def _too_many(error: TooManyRequests) -> tuple[str, int]:
    """Over the sign-in throttle: the login page again, saying why (429)."""
    flash(error.description or "Too many requests.", "error")
    next_url = safe_next_url(request.args.get("next"))
    return render_template("auth/login.html", form=LoginForm(), next_url=next_url), 429


@blueprint.route("/logout", methods=["POST"])
def logout() -> Response:
    sign_out()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))


@blueprint.route("/")
def root() -> Response:
    return redirect(_landing())
