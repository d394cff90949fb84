"""page sessions, registration platform URL, skipped roster members; login states dropped

The OIDC login state became a signed token, so a login writes nothing and the table goes.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('login_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_states_expires_at'))
    op.drop_table('login_states')

    op.create_table('page_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('context_id', sa.Integer(), nullable=True),
    sa.Column('resource_link_id', sa.Integer(), nullable=True),
    sa.Column('view', sa.String(length=20), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('frame_origins', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['context_id'], ['contexts.id'], name=op.f('fk_page_sessions_context_id_contexts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_page_sessions_registration_id_registrations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resource_link_id'], ['resource_links.id'], name=op.f('fk_page_sessions_resource_link_id_resource_links'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_page_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_page_sessions')),
    sa.UniqueConstraint('key', name=op.f('uq_page_sessions_key'))
    )
    with op.batch_alter_table('page_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_page_sessions_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_page_sessions_registration_id'), ['registration_id'], unique=False)

    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('platform_url', sa.String(length=1000), nullable=True))

    with op.batch_alter_table('roster_syncs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('members_skipped', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('skipped_detail', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('roster_syncs', schema=None) as batch_op:
        batch_op.drop_column('skipped_detail')
        batch_op.drop_column('members_skipped')

    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_column('platform_url')

    with op.batch_alter_table('page_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_page_sessions_registration_id'))
        batch_op.drop_index(batch_op.f('ix_page_sessions_expires_at'))

    op.drop_table('page_sessions')
    op.create_table('login_states',
    sa.Column('state', sa.String(length=100), nullable=False),
    sa.Column('nonce', sa.String(length=100), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_login_states_registration_id_registrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('state', name=op.f('pk_login_states'))
    )
    with op.batch_alter_table('login_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_states_expires_at'), ['expires_at'], unique=False)
