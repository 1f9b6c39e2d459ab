"""The shared library. Importing it first applies the stack differences that must precede any module definition
(common/compat.py)."""

from common import compat  # noqa: F401
