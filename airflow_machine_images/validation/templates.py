"""What operators need to know about Jinja templates in their arguments, and which arguments are literal.

An argument written literally in the DAG file (no template, no ``XComArg``) cannot change before the task
runs, so the operators check it when the DAG is parsed, with the very checks ``prepare_request`` runs
before the first request: a bad name fails the DAG file's import, not the 2 a.m. run. A templated one
is checked once rendered, before any request.
"""

from __future__ import annotations


def is_templated(value: object) -> bool:
    """Whether a value holds a Jinja template (so it can only be checked once rendered).

    :param value: an argument value (strings, and dicts of them, are looked into).
    """
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(is_templated(k) or is_templated(v) for k, v in value.items())
    return False


def is_literal(value: object) -> bool:
    """Whether a value is plain data without a template: ``None``, text, numbers, booleans, and lists,
    tuples and dicts of them. An ``XComArg``, a template or any other object is not.

    :param value: an argument value as the DAG file gave it.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return not is_templated(value)
    if isinstance(value, (list, tuple)):
        return all(is_literal(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_literal(key) and is_literal(item) for key, item in value.items())
    return False


def all_literal(*values: object) -> bool:
    """Whether every one of ``values`` is literal (:func:`is_literal`).

    :param values: argument values.
    """
    return all(is_literal(value) for value in values)
