"""ASGI entry point of the example Django shop: ``uvicorn examples.django_shop.asgi:application``.

Served this way, the shop's views are the ``async def`` ones of :mod:`examples.django_shop.async_views`
(``DJANGO_SETTINGS_MODULE=examples.django_shop.asgi_settings``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_shop.asgi_settings")

application = get_asgi_application()
