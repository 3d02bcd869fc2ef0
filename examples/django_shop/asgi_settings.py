"""Settings of the example Django shop served by an ASGI server: the same shop, with ``async def`` views."""

from examples.django_shop.settings import *  # noqa: F403

ROOT_URLCONF = "examples.django_shop.async_views"
