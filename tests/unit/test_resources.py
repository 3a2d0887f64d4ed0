"""The open-file budget: what the busiest client process needs, and when a run is refused."""

from __future__ import annotations

import pytest

from client_sut.errors import UsageError
from client_sut.measure.resources import FileLimits, check_open_files, file_budget


def test_each_stream_counts_twice_while_the_kernel_stamps_its_first_token():
    stamped = file_budget(4000, endpoints=1, workers=0, stamped=True)
    plain = file_budget(4000, endpoints=1, workers=0, stamped=False)
    assert stamped.streams == plain.streams == 4000
    assert stamped.needed - plain.needed == 4000


def test_workers_share_each_endpoints_cap_and_the_busiest_one_is_budgeted():
    # 1,001 per endpoint over 2 workers: 501 and 500; 3 endpoints each.
    budget = file_budget(1001, endpoints=3, workers=2, stamped=False)
    assert budget.streams == 501 * 3


def test_a_limit_that_holds_the_run_is_reported_as_had_and_needed():
    budget = file_budget(100, endpoints=2, workers=0, stamped=True)
    resources = check_open_files(budget, FileLimits(20_000, 20_000, 1024), workers=0)
    assert resources["open_files"] == {
        "needed": budget.needed, "streams": 200, "duplicates_until_first_token": True,
        "soft_limit": 20_000, "hard_limit": 20_000, "soft_limit_at_start": 1024}


def test_a_limit_too_low_names_the_need_the_limit_and_what_fits():
    budget = file_budget(2000, endpoints=2, workers=2, stamped=True)
    with pytest.raises(UsageError) as refused:
        check_open_files(budget, FileLimits(1024, 1024, 1024), workers=2)
    message = str(refused.value)
    assert message.startswith(f"this run needs up to {budget.needed:,} open files per worker "
                              f"process (2,000 streams")
    assert "the open-file limit is 1,024: raise it" in message
    # (1,024 - 100) // 2 = 462 streams a worker, over 2 endpoints: 231 each, 462 over 2 workers
    assert message.endswith("or lower --max-concurrency to 462")
