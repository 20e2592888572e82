"""dlx's tests, in folders that mirror the package; what they share is in tests/helpers/."""
import pytest

pytest.register_assert_rewrite("tests.helpers")  # the helpers' asserts explain their failures as the tests' do
