"""A delegated key's policy: its parent's, narrowed by what the minter asked for, never wider.

``narrow(parent, requested)`` is pure (documents in, a document out) so that the one promise
of delegation, "a child can never do what its parent could not", can be checked over random
pairs of policies (tests/test_delegation_policy.py). Each field is intersected in the way its
rule is evaluated (proxy/policy/rules.py, scope.py):

- endpoints: a child pattern survives only as its meet with a parent pattern (``*`` is one
  segment, so two patterns meet segment by segment); what the parent holds for approval
  stays held; ``priced_after`` only within the parent's;
- customers: the list intersected, ``created_through_key`` the parent's (either way round a
  child could admit what the parent refuses, scope.py's rules are not monotone in it); every
  key of a tree looks its records up under the tree's root (proxy/delegation.py);
- recipients: a rule is kept only where a parent rule already admits all it admits; senders
  intersected; per-call limit, max recipients, expiry: the stricter; the duplicate window:
  the longer; mode: shadow only if both are;
- caps: the child's own only. Its ancestors' caps are not copied: the gate counts every call
  against each ancestor's own counters (migrations/sql/v0021.py), so they stay shared.

A field the request leaves out is the parent's. A request that would leave no recipient
rule where the parent has one is refused (an empty rule set admits everyone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from proxy.errors import InvalidInput
from vendors.endpoints import looks_like_id

DEFAULT_MAX_DEPTH = 3  # how many levels of children a key whose policy says nothing may have
DEFAULT_TTL_S = 900
DEFAULT_MAX_TTL_S = 86_400


def narrow(parent: Mapping[str, Any], requested: Mapping[str, Any] | None) -> dict[str, Any]:
    """The child's policy document. ``parent``: the parent's effective document."""
    want = dict(requested or {})
    if want.get("vendor", parent["vendor"]) != parent["vendor"]:
        raise InvalidInput("invalid_delegation",
                           f"A child of a {parent['vendor']} key has a {parent['vendor']} policy.")
    child: dict[str, Any] = {"vendor": parent["vendor"], "endpoints": _endpoints(parent["endpoints"],
                                                                                 want.get("endpoints"))}
    child["description"] = want.get("description") or parent.get("description") or "Delegated key"
    both_shadow = parent.get("mode") == "shadow" and want.get("mode", "shadow") == "shadow"
    child["mode"] = "shadow" if both_shadow else "enforce"
    customers = _customers(parent.get("customers"), want.get("customers"))
    if customers is not None:
        child["customers"] = customers
    _messaging(child, parent, want)
    _stricter(child, "per_call_usd", parent.get("per_call_usd"), want.get("per_call_usd"),
              lambda a, b: str(min(Decimal(str(a)), Decimal(str(b)))))
    _stricter(child, "expires_at", parent.get("expires_at"), want.get("expires_at"),
              lambda a, b: min(a, b, key=_moment))
    window = max((d["window_s"] for d in (parent.get("duplicates"), want.get("duplicates")) if d), default=None)
    if window is not None:
        child["duplicates"] = {"window_s": window}
    if want.get("caps"):
        child["caps"] = list(want["caps"])
    child["require_run_id"] = True  # a child is bound to its run: the proxy fills the id in
    child["delegation"] = _delegation(parent.get("delegation"), want.get("delegation"))
    return child


def may_delegate(document: Mapping[str, Any]) -> tuple[bool, int, int]:
    """(the agent itself may mint children, levels of children left, the longest TTL in seconds)."""
    rules = document.get("delegation") or {}
    return (bool(rules.get("allowed", False)), int(rules.get("max_depth", DEFAULT_MAX_DEPTH)),
            int(rules.get("max_ttl_s", DEFAULT_MAX_TTL_S)))


def _delegation(parent: Mapping[str, Any] | None, want: Mapping[str, Any] | None) -> dict[str, Any]:
    allowed, depth, ttl = may_delegate({"delegation": parent})
    asked = want or {}
    return {"allowed": allowed and bool(asked.get("allowed", allowed)),
            "max_depth": max(0, min(depth - 1, int(asked.get("max_depth", depth)))),
            "max_ttl_s": min(ttl, int(asked.get("max_ttl_s", ttl)))}


def _stricter(child: dict[str, Any], name: str, parent: Any, want: Any, pick: Any) -> None:
    values = [v for v in (parent, want) if v is not None]
    if values:
        child[name] = values[0] if len(values) == 1 else pick(*values)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # as rules.py reads a naive time


def _endpoints(parent: Mapping[str, Any], want: Mapping[str, Any] | None) -> dict[str, Any]:
    p_allow, p_held = list(parent.get("allow", ())), list(parent.get("require_approval", ()))
    p_after = list(parent.get("priced_after", ()))
    if want is None:
        return {k: v for k, v in (("allow", p_allow), ("require_approval", p_held), ("priced_after", p_after))
                if v or k == "allow"}
    w_allow, w_held = list(want.get("allow", ())), list(want.get("require_approval", ()))
    out: dict[str, Any] = {"allow": _meets(w_allow, p_allow)}
    held = _meets(w_allow + w_held, p_held) + _meets(w_held, p_allow)
    if held := [h for h in dict.fromkeys(held) if h not in out["allow"]]:
        out["require_approval"] = held
    if after := _meets(want.get("priced_after", p_after), p_after):
        out["priced_after"] = after
    return out


def _meets(children: Iterable[str], parents: Iterable[str]) -> list[str]:
    parents = list(parents)
    found = (meet(c, p) for c in children for p in parents)
    return list(dict.fromkeys(m for m in found if m is not None))


def meet(child: str, parent: str) -> str | None:
    """The pattern matching exactly what both match, or None. A parent's ``*`` matches a
    placeholder only (a catalogue literal such as ``search`` is not one), so a child literal
    under it is kept only where it is an object id."""
    c_method, _, c_path = child.partition(" ")
    p_method, _, p_path = parent.partition(" ")
    c_segs, p_segs = _segments(c_path), _segments(p_path)
    if c_method.upper() != p_method.upper() or len(c_segs) != len(p_segs):
        return None
    out = []
    for c, p in zip(c_segs, p_segs, strict=True):
        if p is not None and c is not None and c != p:
            return None
        if p is None and c is not None and not looks_like_id(c):
            return None
        out.append(p if p is not None else c if c is not None else "*")
    return f"{p_method.upper()} /{'/'.join(out)}"


def _segments(path: str) -> list[str | None]:
    return [None if s == "*" or (s.startswith("{") and s.endswith("}")) else s for s in path.strip("/").split("/")]


def _customers(parent: Mapping[str, Any] | None, want: Mapping[str, Any] | None) -> dict[str, Any] | None:
    parent = parent or {}
    restricted = "allow" in parent or bool(parent.get("created_through_key"))
    if not restricted:
        return dict(want) if want else None
    if want is None or "allow" not in want:
        allow = parent.get("allow")
    else:
        allow = [c for c in want["allow"] if c in set(parent.get("allow", ()))]
    out: dict[str, Any] = {"created_through_key": bool(parent.get("created_through_key"))}
    if allow is not None:
        out["allow"] = list(allow)
    elif not out["created_through_key"]:
        out["allow"] = []
    return out


def _messaging(child: dict[str, Any], parent: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    recipients = _recipients(parent.get("recipients"), want.get("recipients"))
    if recipients:
        child["recipients"] = recipients
    if parent.get("senders") is not None:
        allowed = {s.lower() if "@" in s else s for s in parent["senders"]}
        asked = want.get("senders", parent["senders"])
        child["senders"] = [s for s in asked if (s.lower() if "@" in s else s) in allowed]
    elif want.get("senders") is not None:
        child["senders"] = list(want["senders"])
    _stricter(child, "max_recipients", parent.get("max_recipients"), want.get("max_recipients"), min)


def _recipients(parent: Mapping[str, Any] | None, want: Mapping[str, Any] | None) -> dict[str, Any]:
    parent = dict(parent or {})
    configured = any(parent.get(k) for k in ("countries", "numbers", "domains", "addresses", "segments"))
    if want is None:
        return parent
    if not configured:
        return {k: list(v) for k, v in want.items() if v}
    domains = [d.lower() for d in parent.get("domains", ())]
    out = {
        "countries": [c for c in want.get("countries", ()) if c in set(parent.get("countries", ()))],
        "numbers": [n for n in want.get("numbers", ()) if any(_number_within(n, p) for p in parent.get("numbers", ()))],
        "domains": [d for d in want.get("domains", ()) if any(_domain_within(d.lower(), p) for p in domains)],
        "addresses": [a for a in want.get("addresses", ())
                      if a.lower() in {x.lower() for x in parent.get("addresses", ())}
                      or any(_domain_within(a.lower().rpartition("@")[2], p) for p in domains)],
        "segments": [s for s in want.get("segments", parent.get("segments", ()))
                     if s in set(parent.get("segments", ()))],
        "twiml_urls": [h for h in want.get("twiml_urls", parent.get("twiml_urls", ()))
                       if any(_domain_within(h.lower(), p.lower()) for p in parent.get("twiml_urls", ()))],
    }
    out = {k: v for k, v in out.items() if v}
    if not any(out.get(k) for k in ("countries", "numbers", "domains", "addresses", "segments")):
        raise InvalidInput("invalid_delegation", "The requested recipients admit no one the parent key's rules "
                                                 "admit; a child may only narrow its parent's recipients.")
    if (parent.get("countries") or parent.get("numbers")) and not (out.get("countries") or out.get("numbers")):
        raise InvalidInput("invalid_delegation", "The parent key restricts recipients by country or number; "
                                                 "its child must keep a countries or numbers rule.")
    return out


def _number_within(child: str, parent: str) -> bool:
    """Every number ``child`` matches, ``parent`` matches (a trailing * matches any rest)."""
    if parent.endswith("*"):
        return child.rstrip("*").startswith(parent[:-1])
    return child == parent


def _domain_within(child: str, parent: str) -> bool:
    """Every domain ``child`` matches, ``parent`` matches (a leading *. matches any subdomain)."""
    if parent.startswith("*."):
        return child.removeprefix("*").endswith(parent[1:])
    return child == parent
