"""job worker heartbeats

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 17:20:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_workers',
    sa.Column('worker_id', sa.String(length=200), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('is_periodic', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('worker_id', name=op.f('pk_job_workers'))
    )
    with op.batch_alter_table('job_workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_workers_seen_at'), ['seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job_workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_workers_seen_at'))
    op.drop_table('job_workers')
