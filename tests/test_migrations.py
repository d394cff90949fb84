"""The Alembic migrations build exactly the schema the models describe, and the CLI applies them."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tool.db import make_engine
from tool.migrate import current, upgrade
from tool.models import Base


def test_migrations_match_the_models(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"
    assert current(engine) is not None


def test_db_upgrade_command_reports_the_revision(tool):
    result = tool.app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "Database at revision" in result.output
