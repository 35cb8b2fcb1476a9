"""The cloud's HTTP API (FastAPI): an app factory and thin routers over the services."""
