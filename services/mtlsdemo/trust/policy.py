"""The one identity policy: which SPIFFE IDs may connect (``--allow-id``).

A pattern is a SPIFFE ID, matched exactly, in which a path segment may be ``*``:
that ``*`` matches exactly one whole, non-empty, SPIFFE-legal segment. Nothing
else is a wildcard (``?``, ``[...]``, a ``*`` inside a segment or in the trust
domain are refused when the pattern is parsed, at startup).
"""

from __future__ import annotations

from dataclasses import dataclass

from mtlsdemo.trust.spiffe import SpiffeId, SpiffeIdError

WILDCARD = "*"
_PLACEHOLDER = "x"  # stands in for "*" while the rest of a pattern is checked


class PolicyError(ValueError):
    """An allow-list entry that is not a valid pattern; the message says why."""


@dataclass(frozen=True)
class IdPattern:
    text: str
    trust_domain: str
    segments: tuple[str, ...]  # "*" where any one segment matches

    @classmethod
    def parse(cls, text: str) -> IdPattern:
        head, sep, rest = text.partition("://")
        domain, slash, path = rest.partition("/")
        if sep and "*" in domain:
            raise PolicyError(f"--allow-id {text!r}: no wildcard in the trust domain")
        segments = path.split("/") if slash else []
        for seg in segments:
            if WILDCARD in seg and seg != WILDCARD:
                raise PolicyError(
                    f"--allow-id {text!r}: '*' must be a whole path segment "
                    f"(in {seg!r}); it matches exactly one segment"
                )
        # the rest must be a SPIFFE ID once each "*" stands for a legal segment
        probe = f"{head}{sep}{domain}" + "".join(
            "/" + (_PLACEHOLDER if s == WILDCARD else s) for s in segments
        )
        try:
            parsed = SpiffeId.parse(probe)
        except SpiffeIdError as e:
            raise PolicyError(f"--allow-id {text!r}: {str(e).split(': ', 1)[-1]}") from None
        return cls(text, parsed.trust_domain, tuple(segments))

    def matches(self, identity: SpiffeId) -> bool:
        return (
            identity.trust_domain == self.trust_domain
            and len(identity.path) == len(self.segments)
            and all(p in (WILDCARD, s) for p, s in zip(self.segments, identity.path, strict=True))
        )


@dataclass(frozen=True)
class IdentityPolicy:
    """Allowed identities; empty means any identity the trusted CA issued."""

    patterns: tuple[IdPattern, ...] = ()

    @classmethod
    def parse(cls, texts: tuple[str, ...] | list[str]) -> IdentityPolicy:
        return cls(tuple(IdPattern.parse(t) for t in texts))

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(p.text for p in self.patterns)

    def allows(self, identity: SpiffeId | str) -> bool:
        if not self.patterns:
            return True
        if isinstance(identity, str):
            try:
                identity = SpiffeId.parse(identity)
            except SpiffeIdError:
                return False
        return any(p.matches(identity) for p in self.patterns)
