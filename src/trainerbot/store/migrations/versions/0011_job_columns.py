"""jobs: params (one JSON bag) split into columns — backend (what was submitted), requeued
(what the queue did), backend_job and backend_base (where its backend runs it), announced
(what the adapters track)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 05:00:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _bag(raw: Any) -> dict[str, Any]:
    """A row's params as stored: a dict on PostgreSQL, JSON text on SQLite (or nothing)."""
    value = json.loads(raw) if isinstance(raw, str) else raw
    return value if isinstance(value, dict) else {}


def _jobs() -> sa.TableClause:
    return sa.table('jobs', sa.column('id'), sa.column('params', sa.JSON()), sa.column('backend'), sa.column('requeued'),
                    sa.column('backend_job'), sa.column('backend_base'), sa.column('announced'))


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backend', sa.String(length=16), server_default='local', nullable=False))
        batch_op.add_column(sa.Column('requeued', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('backend_job', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('backend_base', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('announced', sa.Boolean(), server_default=sa.false(), nullable=False))
    bind = op.get_bind()
    jobs = _jobs()
    rows = []
    for job_id, raw in bind.execute(sa.select(jobs.c.id, jobs.c.params)).all():
        bag = _bag(raw)
        if bag:
            rows.append({'row_id': job_id, 'b': str(bag.get('backend') or 'local')[:16], 'r': bool(bag.get('requeued')),
                         'j': (bag.get('remote_job') or bag.get('ray_job') or None), 'base': bag.get('base'),
                         'a': bool(bag.get('announced'))})
    if rows:
        bind.execute(jobs.update().where(jobs.c.id == sa.bindparam('row_id')).values(
            backend=sa.bindparam('b'), requeued=sa.bindparam('r'), backend_job=sa.bindparam('j'),
            backend_base=sa.bindparam('base'), announced=sa.bindparam('a')), rows)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('params')


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=True))
    bind = op.get_bind()
    jobs = _jobs()
    for row in bind.execute(sa.select(jobs)).all():
        bag: dict[str, Any] = {'backend': row.backend} if row.backend != 'local' else {}
        bag.update({k: True for k in ('requeued', 'announced') if getattr(row, k)})
        if row.backend_job:
            bag['remote_job' if row.backend == 'openai' else 'ray_job'] = row.backend_job
        if row.backend_base:
            bag['base'] = row.backend_base
        bind.execute(jobs.update().where(jobs.c.id == row.id).values(params=bag))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('backend')
        batch_op.drop_column('requeued')
        batch_op.drop_column('backend_job')
        batch_op.drop_column('backend_base')
        batch_op.drop_column('announced')
