"""Blueprints: LTI endpoints (login, launch, JWKS, Canvas config) and the pages people see."""
