"""conflicting corrections: corrections.question_key (proposals for one question are one
review item), corrections.superseded_by (closed when another answer was approved), and an
index for the review queue

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 02:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows get their question_key from the core on the next `review` (the key is
    # the core's normalisation, which a migration does not import).
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('question_key', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('superseded_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_corrections_superseded_by_corrections'), 'corrections',
                                    ['superseded_by'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_corrections_queue', ['guild_id', 'status', 'question_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.drop_index('ix_corrections_queue')
        batch_op.drop_constraint(batch_op.f('fk_corrections_superseded_by_corrections'), type_='foreignkey')
        batch_op.drop_column('superseded_by')
        batch_op.drop_column('question_key')
