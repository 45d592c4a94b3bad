"""LiteLLM's at-rest encryption of stored values, read layer by layer.

LiteLLM derives one 32-byte key from ``LITELLM_SALT_KEY`` (SHA-256 of the text) and writes
either of two formats:

- ``xsalsa20-poly1305`` (every release): PyNaCl's ``SecretBox``, nonce || box, in URL-safe
  base64 (standard base64 is accepted on read).
- ``aes-256-gcm`` (newer releases, ``general_settings.encryption_algorithm``):
  ``v2:gcm:`` + URL-safe base64 of nonce(12) || ciphertext || tag(16).

Both carry an authentication tag, so "this key opens this value" is a proof, not a guess.
A value is read by opening it with each key given until none opens what is left: what is
left is the plaintext, and the keys used are its layers. Other versioned prefixes
(``v3:...:``) are refused rather than guessed at. Nothing here logs or returns key material.

Every value of a table goes through here, so the hot path calls PyNaCl's bindings of libsodium's
``crypto_secretbox`` with the key derived once, not ``SecretBox``, whose methods re-check their
arguments and wrap their results on every call: the same primitive, the same bytes on disk, a
fresh random 24-byte nonce for every new ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: a missing library is reported, not raised on import
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

XSALSA20 = "xsalsa20-poly1305"
AES_GCM = "aes-256-gcm"
ALGORITHMS = (XSALSA20, AES_GCM)
V2_GCM_PREFIX = "v2:gcm:"

# A versioned value: "v<digits>:<name>:". base64 never contains a colon, so a legacy value
# never matches.
_VERSIONED = re.compile(r"^(v[0-9]+:[A-Za-z0-9_-]+:)")
_BASE64 = re.compile(r"^(?:[A-Za-z0-9_-]+|[A-Za-z0-9+/]+)={0,2}$")
# SecretBox: 24-byte nonce and 16-byte tag around the message.
_NACL_NONCE = 24
_NACL_OVERHEAD = 40
_GCM_OVERHEAD = 28
# More layers than this is not an accident we can explain; stop instead of looping.
MAX_LAYERS = 16


class CryptoError(Exception):
    """A value cannot be read with the keys given. The message never holds key or value."""


class UnsupportedFormat(CryptoError):
    def __init__(self, prefix: str) -> None:
        super().__init__(
            f"encrypted in a format this module does not know ({prefix!r}); it reads "
            f"{XSALSA20} (LiteLLM's legacy format) and {V2_GCM_PREFIX!r} ({AES_GCM})"
        )
        self.prefix = prefix


def missing_libraries() -> list[str]:
    """The Python packages the formats need that this interpreter lacks."""
    missing = []
    try:
        import nacl.secret  # noqa: F401
    except ImportError:
        missing.append("pynacl")
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401
    except ImportError:
        missing.append("cryptography")
    return missing


# base64 of the shortest sealed box (an empty message): anything shorter cannot be one.
_MIN_LEGACY_CHARS = 4 * ((_NACL_OVERHEAD + 2) // 3) - 2
# crypto_secretbox and crypto_secretbox_open: (message or box, nonce, key) -> box or message.
_Box = Callable[[bytes, bytes, bytes], bytes]
# What base64.urlsafe_b64decode does before decoding: read "-" and "_" as "+" and "/".
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


@functools.cache
def _secretbox() -> tuple[_Box, _Box, type[Exception]]:
    """libsodium's crypto_secretbox_open and crypto_secretbox as PyNaCl binds them, and its error."""
    import nacl.bindings
    import nacl.exceptions

    return nacl.bindings.crypto_secretbox_open, nacl.bindings.crypto_secretbox, nacl.exceptions.CryptoError


def _legacy_bytes(value: str) -> bytes | None:
    """The bytes LiteLLM would try to open: URL-safe base64 first, then standard.

    base64.urlsafe_b64decode and b64decode without their wrappers: both refuse a str that is not
    ASCII and decode non-strictly (characters outside the alphabet are skipped).
    """
    try:
        data = value.encode("ascii")
    except UnicodeEncodeError:
        return None
    try:
        return binascii.a2b_base64(data.translate(_URLSAFE_TO_STANDARD))
    except binascii.Error:
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            return None


def looks_encrypted(value: str) -> bool:
    """Shaped like a stored ciphertext: a versioned prefix, or canonical base64 of a sealed box.

    Only used where no key opened the value, to tell "encrypted under a key we were not
    given" from a plaintext; a MAC check, never this, decides what is encrypted.
    """
    if _VERSIONED.match(value):
        return True
    # Canonical base64 shorter than this holds fewer bytes than a sealed box: no need to decode.
    if len(value) < _MIN_LEGACY_CHARS or len(value) % 4 or not _BASE64.match(value):
        return False
    raw = _legacy_bytes(value)
    return raw is not None and len(raw) >= _NACL_OVERHEAD


@dataclass(frozen=True)
class Layer:
    key: str
    algorithm: str


class Key:
    """One salt key, known by its label (``salt_key``, ``old_salt_keys[0]``), never its text."""

    def __init__(self, label: str, secret: str) -> None:
        if not isinstance(secret, str) or not secret:
            raise CryptoError(f"{label} is empty")
        self.label = label
        # Derived once; crypto_secretbox takes it as it is (SecretBox(key) only checks its length).
        self._derived = hashlib.sha256(secret.encode("utf-8")).digest()
        self._gcm: AESGCM | None = None
        # The layer this key leaves in each format, shared by every reading (a Layer is frozen).
        self.layers = {algorithm: Layer(label, algorithm) for algorithm in ALGORITHMS}

    def same_as(self, other: Key) -> bool:
        return self._derived == other._derived

    @property
    def gcm(self) -> AESGCM:
        if self._gcm is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._gcm = AESGCM(self._derived)
        return self._gcm

    def open_legacy(self, raw: bytes) -> str | None:
        """SecretBox.decrypt(raw): nonce || box; the tag is checked before anything is returned."""
        secretbox_open, _, nacl_error = _secretbox()
        try:
            return secretbox_open(raw[_NACL_NONCE:], raw[:_NACL_NONCE], self._derived).decode("utf-8")
        except (nacl_error, UnicodeDecodeError, ValueError, TypeError):
            return None

    def open_gcm(self, raw: bytes) -> str | None:
        from cryptography.exceptions import InvalidTag

        if len(raw) < _GCM_OVERHEAD:
            return None
        try:
            return self.gcm.decrypt(raw[:12], raw[12:], None).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError, ValueError):
            return None

    def seal(self, plaintext: str, algorithm: str) -> str:
        data = plaintext.encode("utf-8")
        if algorithm == AES_GCM:
            nonce = os.urandom(12)
            sealed = nonce + self.gcm.encrypt(nonce, data, None)
            return V2_GCM_PREFIX + base64.urlsafe_b64encode(sealed).decode("ascii")
        if algorithm == XSALSA20:
            # SecretBox.encrypt(data): a random nonce, prepended to the box.
            nonce = os.urandom(_NACL_NONCE)
            sealed = nonce + _secretbox()[1](data, nonce, self._derived)
            return base64.urlsafe_b64encode(sealed).decode("ascii")
        raise CryptoError(f"encryption_algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")


@dataclass
class Reading:
    """What a stored value is. ``plaintext`` is None when it could not be read."""

    layers: list[Layer] = field(default_factory=list)
    plaintext: str | None = None
    # Not opened by any key, yet shaped like a ciphertext (at the top: undecryptable).
    sealed_remainder: bool = False
    unsupported: str | None = None

    @property
    def readable(self) -> bool:
        return self.plaintext is not None

    def describe(self) -> str:
        """A masked account of the value: its layers and keys, never its content."""
        if self.unsupported:
            return f"encrypted in an unsupported format ({self.unsupported})"
        if not self.layers and not self.readable:
            return "encrypted under none of the keys given"
        if not self.layers:
            return "plaintext"
        keys = ", ".join(f"{layer.key} ({layer.algorithm})" for layer in self.layers)
        what = "encrypted once" if len(self.layers) == 1 else f"encrypted {len(self.layers)} times"
        tail = "; inside, a ciphertext none of the keys opens" if self.sealed_remainder else ""
        return f"{what}: {keys}{tail}"


def _open_layer(current: str, keys: list[Key]) -> tuple[str, Layer] | None:
    """One layer off ``current`` with the first key that opens it, or None."""
    if current.startswith(V2_GCM_PREFIX):
        try:
            raw = base64.urlsafe_b64decode(current[len(V2_GCM_PREFIX) :])
        except (binascii.Error, ValueError):
            return None
        for key in keys:
            opened = key.open_gcm(raw)
            if opened is not None:
                return opened, key.layers[AES_GCM]
        return None
    legacy = _legacy_bytes(current) if len(current) >= _MIN_LEGACY_CHARS else None
    if legacy is None or len(legacy) < _NACL_OVERHEAD:
        return None
    # Key.open_legacy, with the box split and the bindings looked up once for all the keys.
    nonce, box = legacy[:_NACL_NONCE], legacy[_NACL_NONCE:]
    secretbox_open, _, nacl_error = _secretbox()
    for key in keys:
        try:
            return secretbox_open(box, nonce, key._derived).decode("utf-8"), key.layers[XSALSA20]
        except (nacl_error, UnicodeDecodeError, ValueError, TypeError):
            continue
    return None


def read(value: str, keys: list[Key]) -> Reading:
    """Open ``value`` layer by layer with ``keys`` (the first is the current one)."""
    layers: list[Layer] = []
    current = value
    while len(layers) <= MAX_LAYERS:
        # Only a value that starts with "v" can carry a versioned prefix; the pattern decides.
        versioned = _VERSIONED.match(current) if current.startswith("v") else None
        if versioned and versioned.group(1) != V2_GCM_PREFIX:
            return Reading(layers, unsupported=versioned.group(1))
        opened = _open_layer(current, keys)
        if opened is None:
            # A v2:gcm: value no key opens is unreadable at any depth; a legacy-looking one only
            # at the top (inside a layer, real secrets can look like base64 too).
            if versioned or (not layers and looks_encrypted(current)):
                return Reading(layers, sealed_remainder=True)
            # Not versioned here; shorter than a sealed box in base64, it cannot look like one.
            sealed = bool(layers) and len(current) >= _MIN_LEGACY_CHARS and looks_encrypted(current)
            return Reading(layers, current, sealed)
        current, layer = opened
        layers.append(layer)
    raise CryptoError(f"more than {MAX_LAYERS} layers of encryption")


def what_litellm_sees(reading: Reading, current: Key) -> str:
    """What LiteLLM's load path (one decryption under the current key, else the value) yields,
    as 'plaintext' or 'ciphertext'. Used for MT-01: routing fields must come out plain."""
    if not reading.readable:
        return "ciphertext"
    layers = reading.layers
    if not layers:
        return "plaintext"
    if layers[0].key != current.label:
        return "ciphertext"
    # A remainder that only looks like base64 is not proof of a ciphertext: API keys do too.
    return "plaintext" if len(layers) == 1 else "ciphertext"
