"""registry version counter, registration source, dynamic registration invites

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 19:50:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registry_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_version'))
    )
    op.execute("INSERT INTO registry_version (id, version) VALUES (1, 0)")
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=20), server_default='manual',
                                      nullable=False))
    op.create_table('registration_invites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('registration_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'],
                            name=op.f('fk_registration_invites_registration_id_registrations'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registration_invites')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_registration_invites_code_hash'))
    )


def downgrade() -> None:
    op.drop_table('registration_invites')
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_column('source')
    op.drop_table('registry_version')
