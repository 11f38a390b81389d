"""The second half of the callback fuzz (tests/test_fuzz_inputs.py has the first and says what is sent): every other
Dash callback fed each bad value in each field, against its own demo site, so the two halves run side by side."""
from __future__ import annotations

import pytest

from tests.test_fuzz_inputs import _callback_failures, admin, good, rt  # noqa: F401  (fixtures)


@pytest.mark.timeout(1200)
def test_no_callback_of_the_second_half_answers_500_to_a_wrong_type_or_size_in_any_field(admin, good):  # noqa: F811
    failures = _callback_failures(admin, good, half=1)
    assert not failures, f"{len(failures)} calls failed:\n" + "\n".join(failures)
