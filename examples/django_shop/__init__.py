"""The example Django shop: settings, views and the WSGI entry point."""
