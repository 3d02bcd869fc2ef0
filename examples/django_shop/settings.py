"""Settings of the example Django shop (a demo: no database, no sessions, no templates)."""

DEBUG = False
SECRET_KEY = "example-only-not-a-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "examples.django_shop.views"
MIDDLEWARE: list[str] = []
INSTALLED_APPS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"
