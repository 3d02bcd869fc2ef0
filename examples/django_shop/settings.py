"""Settings of the example Django shop (a demo: no database, no sessions, no templates).

The shop's frontend (``examples/frontend``) runs on another origin: django-cors-headers answers the
browser's preflight, allowing the session headers for the origins listed in ``SHOP_FRONTEND_ORIGINS``.
"""

import os

from corsheaders.defaults import default_headers

DEBUG = False
SECRET_KEY = "example-only-not-a-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "examples.django_shop.views"
INSTALLED_APPS: list[str] = ["corsheaders"]
MIDDLEWARE: list[str] = ["corsheaders.middleware.CorsMiddleware"]
USE_TZ = True
TIME_ZONE = "UTC"

# The browser sends the session header cross-origin only if the preflight's answer allows it.
CORS_ALLOWED_ORIGINS = os.environ.get("SHOP_FRONTEND_ORIGINS", "http://localhost:8080").split(",")
CORS_ALLOW_HEADERS = (
    *default_headers,
    "x-openreplay-sessiontoken",
    "x-openreplay-session-token",
    "openreplaysession.id",
)
