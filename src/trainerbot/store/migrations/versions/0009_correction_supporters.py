"""correction supporters: corrections.supporter_ids (who else asked for the same change,
for auto-approval by trusted members)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supporter_ids', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.drop_column('supporter_ids')
