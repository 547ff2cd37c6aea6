"""The list views' query string, read strictly: a page, page size, sort or filter the
list cannot honour is refused (400, a flash naming the parameter and why, and no rows),
never dropped.

Flask-Admin reads `?page=abc` as page 1, an out-of-range `sort` as the default order,
and an invalid or unknown filter as no filter at all (flashing "Invalid Filter Value"
and listing everything else). A list that silently widens is wrong to look at and
dangerous to act on: "Retry all N matching this filter" reads the same arguments, and a
dropped filter once turned 4 matching rows into 14 and queued them. So every list
view's arguments go through `list_args_refusal` before Flask-Admin reads them, in
`index_view` and in `_get_list_extra_args`, which the bulk retry and the export call.
"""

from __future__ import annotations

import re
from typing import Any

from flask import flash, request
from flask_admin import expose

from app.domain.errors import DomainError

# Deeper than any real history (50 million rows at 50 a page); past it, OFFSET overflows.
MAX_PAGE = 1_000_000
_FILTER_ARG = re.compile(r"flt(\d{1,3})_(.+)", re.DOTALL)
_SINGLE = ("page", "page_size", "sort", "desc", "search")
_SHOWN = 40


def _shown(value: str) -> str:
    return ascii(value if len(value) <= _SHOWN else value[:_SHOWN] + "…")


def _whole(raw: str) -> int | None:
    text = raw.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


class StrictListArgsMixin:
    """For every Flask-Admin list view of the panel (ahead of `ModelView` in the bases)."""

    def list_args_refusal(self) -> DomainError | None:
        """The first list argument this view cannot honour, as a 400, or None."""
        view: Any = self
        args = request.args
        for name in _SINGLE:
            if len(args.getlist(name)) > 1:
                return DomainError(400, f"{name} is given more than once")
        if "page" in args:
            page = _whole(args["page"])
            if page is None or page > MAX_PAGE:
                return DomainError(
                    400,
                    f"page must be a whole number from 0 (the first page) to {MAX_PAGE:,}, "
                    f"not {_shown(args['page'])}",
                )
        if "page_size" in args:
            sizes = view.page_size_options if view.can_set_page_size else (view.page_size,)
            if _whole(args["page_size"]) not in sizes:
                allowed = ", ".join(str(size) for size in sizes)
                return DomainError(
                    400, f"page_size must be one of {allowed}, not {_shown(args['page_size'])}"
                )
        if "sort" in args:
            index = _whole(args["sort"])
            columns = view._list_columns
            if index is None or index >= len(columns) or not view.is_sortable(columns[index][0]):
                return DomainError(
                    400, f"sort {_shown(args['sort'])} is not a sortable column of this list"
                )
        if args.get("desc", "0") not in ("0", "1"):
            return DomainError(400, f"desc must be 0 or 1, not {_shown(args['desc'])}")
        for name in args:
            if name.startswith("flt"):
                refusal = self._filter_refusal(name, args.getlist(name))
                if refusal is not None:
                    return refusal
        return None

    def _filter_refusal(self, name: str, values: list[str]) -> DomainError | None:
        known: dict[str, Any] = getattr(self, "_filter_args", None) or {}
        match = _FILTER_ARG.fullmatch(name)
        if match is None or match.group(2) not in known:
            return DomainError(400, f"{_shown(name)} is not a filter of this list")
        if len(values) > 1:
            return DomainError(400, f"the filter {_shown(name)} is given more than once")
        _index, flt = known[match.group(2)]
        what = f"the filter {flt.name} {flt.operation()}"
        # `clean` says why (a filter of this panel raises ValueError with the reason);
        # `validate` is Flask-Admin's own test, stricter for some filters than `clean`.
        try:
            flt.clean(values[0])
        except (ValueError, OverflowError) as exc:
            return DomainError(400, f"{what}: {_shown(values[0])} is not valid ({exc})")
        if not flt.validate(values[0]):
            return DomainError(400, f"{what}: {_shown(values[0])} is not a valid value")
        return None

    def _get_list_extra_args(self) -> Any:
        """Flask-Admin's reading of the list arguments, once they are all known good:
        the bulk retry and the export call it too, and must never act on fewer filters
        than the user asked for."""
        refusal = self.list_args_refusal()
        if refusal is not None:
            raise refusal
        return super()._get_list_extra_args()  # type: ignore[misc]

    @expose("/")
    def index_view(self) -> Any:
        refusal = self.list_args_refusal()
        if refusal is not None:
            return self.refused_list(refusal)
        return super().index_view()  # type: ignore[misc]

    def refused_list(self, refusal: DomainError) -> Any:
        """The refusal as a flash on the panel's page, with no rows, status 400."""
        flash(f"List not shown: {refusal.message}", "error")
        view: Any = self
        return view.render("panel/base.html"), refusal.status
