"""What an HTTP error answer from a carbon API means: the server's message, Retry-After, kind.

The APIs say *why* they refuse in the body (``{"message": ...}`` at Electricity Maps,
``{"error": ...}`` at WattTime, ``{"detail": ...}`` in FastAPI-style servers) and *when to
come back* in ``Retry-After`` (RFC 9110 section 10.2.3: delay-seconds or an HTTP-date).
Only real authentication failures deserve a "check your credentials" hint: a 401/403 whose
message talks about rate limits is a rate limit, and a 403 about plans, scopes or access to a
region is a plan limit (WattTime answers "Invalid scope. You do not have sufficient access to
this resource ..." for regions outside a free plan).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx

Kind = Literal["rate", "plan", "auth", "other"]

_RATE_WORDS = ("rate limit", "rate-limit", "ratelimit", "too many requests", "quota", "throttl")
_PLAN_WORDS = ("plan", "scope", "subscription", "sufficient access", "not included", "upgrade",
               "pricing", "does not have access", "not have access", "not allowed to access")
_AUTH_WORDS = ("token", "api key", "apikey", "credential", "password", "username", "login",
               "authenticat", "unauthori", "expired", "signature")
_MESSAGE_KEYS = ("message", "error", "detail", "error_description", "msg", "title")


def server_message(resp: httpx.Response, limit: int = 160) -> str:
    """The server's own one-line explanation, from a JSON body or plain text ('' if none)."""
    text = ""
    try:
        body = json.loads(resp.content or b"null")
    except ValueError:
        text = resp.text
    else:
        text = _message_of(body) if body is not None else ""
    one = " ".join(str(text).split())
    return one[:limit] + ("..." if len(one) > limit else "")


def _message_of(body: object) -> str:
    if isinstance(body, str):
        return body
    if isinstance(body, dict):
        for k in _MESSAGE_KEYS:
            if k in body and body[k]:
                return _message_of(body[k])
        return ""
    if isinstance(body, list) and body:
        return _message_of(body[0])
    return ""


def retry_after_s(resp: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds to wait from the ``Retry-After`` header (delay-seconds or HTTP-date), or None.

    An HTTP-date is measured from the response's ``Date`` header when present (the server's
    clock, immune to skew with ours), else from ``now`` (default: the wall clock).
    """
    raw = resp.headers.get("retry-after")
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    try:
        secs = float(raw)
    except ValueError:
        pass
    else:
        return secs if secs >= 0 and secs == secs and secs != float("inf") else None
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    ref = now or datetime.now(timezone.utc)
    date = resp.headers.get("date")
    if date:
        try:
            ref = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            pass
    return max(0.0, (_aware(when) - _aware(ref)).total_seconds())


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def classify(code: int, message: str) -> Kind:
    """rate (429, or 401/403 about rate limits), plan (403 about plans/scopes), auth, other."""
    m = message.lower()
    if code == 429 or (code in (401, 403) and any(w in m for w in _RATE_WORDS)):
        return "rate"
    if code in (401, 403) and any(w in m for w in _PLAN_WORDS):
        return "plan"
    if code == 401 or (code == 403 and any(w in m for w in _AUTH_WORDS)):
        return "auth"
    return "other"
