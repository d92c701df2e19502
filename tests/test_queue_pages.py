"""The staff queue page's pages are slices of one order: the dispatcher's."""

from __future__ import annotations

from fabqueue.store.inventory import apply
from fabqueue.web.pages.queueinfo import position_of, queue_page, site_queue
from tests.conftest import Stack
from tests.helpers import insert_job


def test_queue_pages_follow_the_dispatch_order(stack: Stack) -> None:
    with stack.ctx.db.session() as s:
        apply(s, {"site": [{"id": "qp", "name": "queue pages"}]})
    owners = [stack.user("resident") for _ in range(3)]
    ids = [insert_job(stack, owners[i % 3] if i >= 30 else owners[0], "qp", "ready")
           for i in range(60)]
    with stack.ctx.db.session() as db:
        whole = site_queue(db, "qp", "print")
        first, total = queue_page(db, "qp", "print", 1, 25)
        second, _ = queue_page(db, "qp", "print", 2, 25)
        assert total == 60 and len(whole) == 60
        assert [e.job.id for e in first + second] == [e.job.id for e in whole[:50]]
        assert [e.position for e in second] == list(range(26, 51))
        # fair share: owner 0's 30 early jobs don't all go first
        assert whole[1].job.owner_id != whole[0].job.owner_id
        assert {e.job.id for e in whole} == set(ids)
        last = db.get(type(whole[-1].job), whole[-1].job.id)
        assert position_of(db, last).position == 60  # type: ignore[union-attr]
        starts = [e.start_at for e in whole]
        assert starts == sorted(starts)
