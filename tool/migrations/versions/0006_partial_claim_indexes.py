"""claim lookups indexed only among people without a sub

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 23:40:00.000000

The legacy-id and sourcedid indexes on ``users`` serve only the claim lookups, which always
ask for ``sub IS NULL``; as partial indexes they no longer grow with every person a roster
sync or a launch stores.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

UNCLAIMED = sa.text('sub IS NULL')


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_registration_legacy')
        batch_op.drop_index('ix_users_registration_sourcedid')
        batch_op.create_index('ix_users_unclaimed_legacy', ['registration_id', 'lti11_legacy_user_id'],
                              unique=False, sqlite_where=UNCLAIMED, postgresql_where=UNCLAIMED)
        batch_op.create_index('ix_users_unclaimed_sourcedid', ['registration_id', 'lis_person_sourcedid'],
                              unique=False, sqlite_where=UNCLAIMED, postgresql_where=UNCLAIMED)


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_unclaimed_sourcedid')
        batch_op.drop_index('ix_users_unclaimed_legacy')
        batch_op.create_index('ix_users_registration_legacy',
                              ['registration_id', 'lti11_legacy_user_id'], unique=False)
        batch_op.create_index('ix_users_registration_sourcedid',
                              ['registration_id', 'lis_person_sourcedid'], unique=False)
