"""What the backend's three browser pages (desk, back office, holder) share: their security
headers, their templates and the listed static files they serve from their own package.

Each page is one HTML document plus a script and a style sheet shipped in its package: no build
step, no CDN, and nothing served but the files a page lists.
"""

from __future__ import annotations

from importlib import resources

import jinja2
from fastapi import Response

from backend.errors import NotFound

STATIC_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def page_headers(img_src: str = "'self' data:") -> dict[str, str]:
    """Headers of a page: its own origin only, never framed, never cached."""
    return {
        "Content-Security-Policy": f"default-src 'self'; img-src {img_src}; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def package_text(package: str, *parts: str) -> str:
    """A text file shipped in ``package`` (UTF-8)."""
    return resources.files(package).joinpath(*parts).read_text(encoding="utf-8")


def package_templates(package: str) -> jinja2.Environment:
    """The autoescaping Jinja templates under ``package``'s ``templates/`` folder."""
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: package_text(package, "templates", name)),
        autoescape=True,
    )


def static_file(package: str, files: dict[str, str], name: str) -> Response:
    """``name`` from ``package``'s ``static/`` folder, if ``files`` lists it (with its type).

    Raises:
        NotFound: a file the page does not list.
    """
    media_type = files.get(name)
    if media_type is None:
        raise NotFound("fichier introuvable", "no such file")
    return Response(
        package_text(package, "static", name), media_type=media_type, headers=STATIC_HEADERS
    )
