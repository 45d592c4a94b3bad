"""Filters over the gateway's secrets that never return the secret itself."""

from __future__ import annotations

import hashlib

from ansible.errors import AnsibleFilterError

# Bumping the version makes every recorded fingerprint differ: backups name the key they need by it.
_FINGERPRINT_DOMAIN = "litellm-gateway salt key v1:"


def salt_key_fingerprint(salt_key: object) -> str:
    """The SHA-256 fingerprint of LiteLLM's salt key, as backups record it and restores compare it."""
    if not isinstance(salt_key, str) or not salt_key:
        raise AnsibleFilterError("salt_key_fingerprint: the salt key must be a non-empty string")
    return hashlib.sha256((_FINGERPRINT_DOMAIN + salt_key).encode()).hexdigest()


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"salt_key_fingerprint": salt_key_fingerprint}
