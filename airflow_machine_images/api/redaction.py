"""Hide secrets in text, in every form a JSON or URL layer may have given them.

A server, proxy or load balancer that quotes a request back can write a customer-supplied key (or
the bearer token) in many ways: as sent, JSON-escaped (``\\/``, or ``\\u003d`` for ``=`` as Gson does
by default), in URL-safe base64 (``-``/``_`` for ``+``/``/``), without its ``=`` padding, or
percent-encoded (``%2B``, ``%2F``, ``%3D``), and any mix of these. The tools:

* :func:`iter_key_material` finds the secrets of a request body: every ``rawKey`` and
  ``rsaEncryptedKey`` at any depth;
* :func:`scrub_text` replaces *known* secrets (the keys of the request, the access token) in all of
  those forms; it works on raw bodies (decoded as Latin-1, byte for byte) and on decoded text alike;
* :func:`redact_key_material` replaces anything *shaped* like key material, for text whose author
  never saw the key (the triggerer reading an operation's error): base64 of exactly 32 bytes (a
  ``rawKey``, an AES-256 key) or of 256 bytes or more (an RSA-wrapped key: 256 bytes for RSA-2048),
  in either base64 alphabet and any of the encodings above, unless it reads as a hyphenated resource
  name or an upper-case constant. A 43-character path without ``-`` or ``_`` (``a/b/c``) would be
  hidden too; that loss is accepted;
* :func:`scrub_message` and :func:`scrub` apply all three, plus bearer tokens, to an error message
  or a raw response body; :func:`redact_event` to the server's words in a trigger event.

Standard library only: imported by the exceptions and the operators, so DAG parsing stays cheap.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

__all__ = [
    "MASK",
    "SECRET_KEY_FIELDS",
    "iter_key_material",
    "redact_event",
    "redact_key_material",
    "scrub",
    "scrub_message",
    "scrub_text",
    "secret_pattern",
]

#: What a hidden secret is replaced by (the secrets masker's mark).
MASK = "***"
#: Secrets shorter than this are not scrubbed (they would hide ordinary words).
MIN_SECRET_LENGTH = 8
#: The fields of a ``CustomerEncryptionKey`` whose values are secret.
SECRET_KEY_FIELDS = frozenset({"rawKey", "rsaEncryptedKey"})

#: The other base64 alphabet's character for the same 6 bits.
_ALPHABET_TWIN = {"+": "-", "/": "_", "-": "+", "_": "/"}
#: ``=`` padding as sent, JSON-escaped, or percent-encoded.
_PADDING = r"(?:=|\\u003[dD]|%3[dD])*"


def iter_key_material(*values: object) -> Iterator[str]:
    """Yield every non-empty string stored under a secret key field, at any depth.

    :param values: argument values (dicts, lists, anything else is skipped).
    """
    stack = list(values)
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key in SECRET_KEY_FIELDS and isinstance(item, str) and item:
                    yield item
                else:
                    stack.append(item)
        elif isinstance(value, (list, tuple)):
            stack.extend(value)


def _hex(code: int) -> str:
    """A regex for the two hex digits of ``code``, in either case (``2[bB]``)."""
    return "".join(f"[{digit}{digit.upper()}]" if digit.isalpha() else digit for digit in f"{code:02x}")


def _char_forms(char: str) -> str:
    """A regex for one character of a secret as a JSON or URL layer may write it."""
    if ord(char) > 0x7F:
        return re.escape(char)
    forms = []
    for same in (char, _ALPHABET_TWIN.get(char)):
        if same is None:
            continue
        forms += [re.escape(same), rf"\\u00{_hex(ord(same))}", f"%{_hex(ord(same))}"]
    if char == "/":
        forms.append(r"\\/")
    if char == "+":
        forms.append(" ")  # a '+' that a form decoder read as a space
    return "(?:" + "|".join(forms) + ")"


@functools.lru_cache(maxsize=512)
def secret_pattern(secret: str) -> re.Pattern[str]:
    """A regex matching ``secret`` in every form described in the module docstring.

    :param secret: the secret as sent.
    """
    core = secret.rstrip("=") or secret
    return re.compile("".join(_char_forms(char) for char in core) + _PADDING)


def scrub_text(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every known secret, in any of its forms, replaced by :data:`MASK`.

    :param text: a response body (decoded as Latin-1 to scrub bytes) or a decoded message.
    :param secrets: values to hide; None and values shorter than 8 characters are skipped.
    """
    wanted = {secret for secret in secrets if secret and len(secret) >= MIN_SECRET_LENGTH}
    for secret in sorted(wanted, key=len, reverse=True):
        text = secret_pattern(secret).sub(MASK, text)
    return text


#: One base64 character (either alphabet) as sent, JSON-escaped or percent-encoded.
_B64_CODES = r"(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[BbDdFf]|5[Ff])"
_RUN_PATTERN: Final = rf"(?:[A-Za-z0-9+/_-]|\\/|\\u00{_B64_CODES}|%{_B64_CODES})+{_PADDING}"
_ESCAPE_PATTERN: Final = r"\\u00([0-9A-Fa-f]{2})|%([0-9A-Fa-f]{2})|\\(/)"
#: Base64 lengths, without padding: 32 bytes (AES-256 ``rawKey``), and at least 256 bytes (RSA-wrapped).
_RAW_KEY_CHARS = 43
_RSA_KEY_MIN_CHARS = 342


#: Words that are not keys although made of base64 characters: hyphenated resource names
#: (``web-1-nightly-20260101``) and upper-case constants (``QUOTA_EXCEEDED``).
_RESOURCE_NAME_PATTERN: Final = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)+"
_CONSTANT_PATTERN: Final = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"


def _decoded(run: str) -> str:
    return re.sub(_ESCAPE_PATTERN, lambda m: m.group(3) or chr(int(m.group(1) or m.group(2), 16)), run)


def looks_like_key_material(token: str) -> bool:
    """Whether a run of base64 characters (escapes decoded) has the shape of a key.

    :param token: the run, padding included or not.
    """
    core = token.rstrip("=")
    if any(c in core for c in "+/") and any(c in core for c in "-_"):
        return False  # two alphabets: a path or a name, not base64
    if len(core) != _RAW_KEY_CHARS and len(core) < _RSA_KEY_MIN_CHARS:
        return False
    return re.fullmatch(_RESOURCE_NAME_PATTERN, core) is None and re.fullmatch(_CONSTANT_PATTERN, core) is None


def redact_key_material(text: str) -> str:
    """``text`` with everything shaped like key material (see the module docstring) replaced by :data:`MASK`.

    :param text: free text: an error message, an operation's ``httpErrorMessage``.
    """
    return re.sub(_RUN_PATTERN, lambda m: MASK if looks_like_key_material(_decoded(m.group())) else m.group(), text)


def key_material_tokens(text: str) -> list[str]:
    """The substrings of ``text`` that :func:`redact_key_material` would hide, as written there.

    :param text: free text.
    """
    return [m.group() for m in re.finditer(_RUN_PATTERN, text) if looks_like_key_material(_decoded(m.group()))]


_BEARER_PATTERN: Final = r"(?i)(bearer\s+)[A-Za-z0-9._~+/=%\\-]+"


def scrub_message(text: str, secrets: Iterable[str | None], body: Mapping[str, Any] | None = None) -> str:
    """``text`` with every secret, every key in ``body``, every bearer token and anything shaped like
    key material replaced by ``***``, in any form a JSON or URL layer gives them.

    :param text: a decoded message, or a raw body decoded as Latin-1.
    :param secrets: values to hide (e.g. the access token); None and short values are skipped.
    :param body: the request body, whose ``rawKey``/``rsaEncryptedKey`` values are hidden too.
    """
    text = scrub_text(text, [*secrets, *iter_key_material(body)])
    return redact_key_material(re.sub(_BEARER_PATTERN, r"\1***", text))


def scrub(raw: bytes, secrets: Iterable[str | None], body: Mapping[str, Any] | None = None) -> bytes:
    """``raw`` scrubbed as by :func:`scrub_message`, byte for byte (the bytes are read as Latin-1).

    :param raw: a response body about to be quoted in an error.
    :param secrets: values to hide (e.g. the access token); None and short values are skipped.
    :param body: the request body, whose ``rawKey``/``rsaEncryptedKey`` values are hidden too.
    """
    return scrub_message(raw.decode("latin-1"), secrets, body).encode("latin-1")


def redact_event(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A trigger event's payload with key-shaped material hidden in the fields a server writes.

    The triggerer never saw the keys, and persists and logs the events it fires, so the server's
    words are redacted by shape: ``message``, ``errors[].message`` and ``operation.httpErrorMessage``.

    :param payload: the event payload.
    """
    event = dict(payload)
    if isinstance(event.get("message"), str):
        event["message"] = redact_key_material(event["message"])
    if isinstance(event.get("errors"), list):
        event["errors"] = [
            {**error, "message": redact_key_material(error["message"])}
            if isinstance(error, Mapping) and isinstance(error.get("message"), str)
            else error
            for error in event["errors"]
        ]
    operation = event.get("operation")
    if isinstance(operation, Mapping) and isinstance(operation.get("httpErrorMessage"), str):
        event["operation"] = {**operation, "httpErrorMessage": redact_key_material(operation["httpErrorMessage"])}
    return event
