"""Reading the dashboard's HTML form posts: small, URL-encoded, a few known fields."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request

__all__ = ["MAX_FORM_BYTES", "FormError", "read_form"]

# A sign-in form is a 64-character key and a 64-character token: 4 KiB is plenty.
MAX_FORM_BYTES = 4096
_MAX_FIELDS = 8


class FormError(Exception):
    """The body is not a form this dashboard sends (too big, not URL-encoded, not UTF-8)."""


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (first value of each), read up to `MAX_FORM_BYTES`."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise FormError("expected an HTML form (application/x-www-form-urlencoded)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"a form is at most {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=_MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise FormError("the form could not be read") from None
    return {name: values[0] for name, values in fields.items()}
