"""worker heartbeats

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('worker_beats',
    sa.Column('worker_id', sa.String(length=100), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('worker_id', name=op.f('pk_worker_beats'))
    )
    with op.batch_alter_table('worker_beats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_beats_last_seen'), ['last_seen'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('worker_beats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_beats_last_seen'))
    op.drop_table('worker_beats')
