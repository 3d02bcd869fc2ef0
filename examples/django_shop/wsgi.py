"""WSGI entry point of the example Django shop: ``gunicorn examples.django_shop.wsgi``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_shop.settings")

application = get_wsgi_application()
