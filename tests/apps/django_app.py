"""A one-file Django project for tests/functional/test_frameworks.py."""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only-secret-key-not-for-production",  # noqa: S106
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=[],
    FILE_UPLOAD_MAX_MEMORY_SIZE=1024 * 1024,
    DATA_UPLOAD_MAX_MEMORY_SIZE=None,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (  # noqa: E402
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # noqa: E402


def form(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"name": request.POST["name"]})


def upload(request: HttpRequest) -> HttpResponse:
    uploaded = request.FILES["file"]
    data = uploaded.read()
    return JsonResponse(
        {
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "on_disk": hasattr(uploaded, "temporary_file_path"),
        }
    )


def stream(request: HttpRequest) -> HttpResponse:
    def parts() -> Iterator[bytes]:
        for n in range(5):
            yield f"part {n}\n".encode()

    return StreamingHttpResponse(parts(), content_type="text/plain")


def to_json(request: HttpRequest) -> HttpResponse:
    response = HttpResponseRedirect("/json")
    response.set_cookie("flavour", "oatmeal")
    return response


def json_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True, "cookie": request.COOKIES.get("flavour")})


def error(request: HttpRequest) -> Any:
    raise RuntimeError("django view failed")


urlpatterns = [
    path("form", form),
    path("upload", upload),
    path("stream", stream),
    path("redirect", to_json),
    path("json", json_view),
    path("error", error),
]

application = get_wsgi_application()
