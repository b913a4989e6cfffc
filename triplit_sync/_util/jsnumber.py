"""Numbers printed as JavaScript prints them: query ids, schema hashes and set keys must match the JS
client's byte for byte."""

from __future__ import annotations

import math

__all__ = ["js_number_str"]


def js_number_str(value: float) -> str:
    """``value`` as JavaScript's ``String(number)`` prints it (set keys of number sets).

    >>> js_number_str(1.0), js_number_str(1e21), js_number_str(1e-7), js_number_str(0.1)
    ('1', '1e+21', '1e-7', '0.1')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) < 10 ** 21:
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    sign = "-" if value < 0 else ""
    # repr() is the shortest round-tripping form, as in JS; only the layout differs.
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    significant = (int_part + frac_part).lstrip("0")
    # value == 0.<significant> * 10**n
    n = len(significant) + (int(exp_text) if exp_text else 0) - len(frac_part)
    digits = significant.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    exp = n - 1
    body = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{body}e{'+' if exp >= 0 else '-'}{abs(exp)}"
