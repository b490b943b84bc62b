"""Admin API tokens: who may call the management API."""
