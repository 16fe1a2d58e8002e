"""Masking secrets in what is printed: configurations (``kpf validate``, ``python -m jobs.config``), the ``flink run``
command ``kpf run --print-flink-run`` prints, and error messages.

Two kinds of secret are recognised:

- a value whose *name* says it is secret: a Kafka client property (``is_secret_kafka_property``) or a Flink setting
  (``is_secret_flink_setting``) whose key holds one of the markers below; the whole value is masked;
- a credential inside a URL, whatever property holds it (``mask_urls``): the userinfo of ``scheme://user:secret@host``
  and the values of query parameters named like secrets (``token=``, ``access_token=``, ``key=``, ``api_key=``,
  ``password=``, ``secret=``, ``client_secret=``, ``sig=``, ``X-Amz-Signature=``, ...).

Light on purpose (no imports beyond the standard library): ``kpf`` uses it without loading the job's configuration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kafka_pinecone_flink.sinks.dead_letter import REDACTED, redact

MASK = REDACTED

SECRET_PROPERTY_MARKERS = ("password", "secret", "jaas", "keystore.key", "credentials", "user.info")
"""A Kafka property whose key contains one of these holds a secret (``sasl.jaas.config``, ``ssl.key.password``,
``sasl.oauthbearer.client.credentials.client.secret``, ``ssl.keystore.key``, ``basic.auth.user.info``)."""

SECRET_FLINK_MARKERS = (
    "password",
    "secret",
    "fs.azure.account.key",
    "apikey",
    "api-key",
    "auth-params",
    "service-key",
    "token",
    "basic-auth",
    "jaas.config",
    "http-headers",
)
"""A Flink setting whose key contains one of these holds a secret: the markers Flink itself hides in its logs and
Web UI (``GlobalConfiguration``), e.g. ``s3.secret-key``, ``security.ssl.keystore-password``."""

SECRET_QUERY_SUFFIXES = (
    "token",
    "key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "sig",
    "signature",
    "credential",
    "credentials",
    "auth",
    "authorization",
)
"""A URL query parameter whose lower-cased name is, or ends with, one of these holds a secret (``token``,
``access_token``, ``apiKey``, ``client_secret``, ``sig``, ``X-Amz-Signature``, ``X-Amz-Credential``)."""

# scheme "://" then everything up to white space or a quote (URLs are printed inside reprs and messages).
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+._\-]*://[^\s'\"<>`]+")
_QUERY_PARAM = re.compile(r"([?&;])([^=&;#?]+)=([^&;#]*)")


def is_secret_kafka_property(key: str) -> bool:
    """Whether a Kafka client property's value is a secret (masked in every repr, never in a message)."""
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_PROPERTY_MARKERS)


def is_secret_flink_setting(key: str) -> bool:
    """Whether a Flink setting's value is a secret (masked in every printed configuration)."""
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_FLINK_MARKERS)


def _is_secret_query_name(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(SECRET_QUERY_SUFFIXES)


def _split(url: str) -> tuple[str, str, str, str]:
    """``scheme://``, userinfo (without ``@``, may be empty), the rest of the authority, the path/query/fragment."""
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, host = authority.rpartition("@")
    return f"{scheme}://", userinfo if at else "", host, tail


def _mask_url(url: str) -> str:
    scheme, userinfo, host, tail = _split(url)
    tail = _QUERY_PARAM.sub(
        lambda m: (
            f"{m.group(1)}{m.group(2)}={MASK}" if m.group(3) and _is_secret_query_name(m.group(2)) else m.group(0)
        ),
        tail,
    )
    return f"{scheme}{MASK + '@' if userinfo else ''}{host}{tail}"


def mask_urls(text: str) -> str:
    """``text`` with the credentials of every URL in it masked: ``https://user:pw@host/p?token=t&a=1`` becomes
    ``https://***@host/p?token=***&a=1``. Text without ``://`` is returned as it is."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: _mask_url(m.group(0)), text)


def url_secrets(text: str) -> list[str]:
    """The credentials inside the URLs of ``text`` (userinfo, its password part, secret query values): to be
    replaced wherever they might be printed."""
    found: list[str] = []
    for match in _URL.finditer(text):
        _, userinfo, _, tail = _split(match.group(0))
        if userinfo:
            found.append(userinfo)
            password = userinfo.partition(":")[2]
            if password:
                found.append(password)
        found.extend(
            m.group(3) for m in _QUERY_PARAM.finditer(tail) if m.group(3) and _is_secret_query_name(m.group(2))
        )
    return found


def masked_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every one of ``secrets`` replaced by ``***`` (``sinks.dead_letter.redact``: shorter secrets are
    masked only where their name or URL shows them), then its URLs masked."""
    return mask_urls(redact(text, secrets))


def masked_setting(text: str) -> str:
    """A ``KEY=VALUE`` Kafka property or Flink setting as it may be printed: the value masked when the key names a
    secret, otherwise its URLs masked."""
    key, sep, _ = text.partition("=")
    if sep and (is_secret_kafka_property(key) or is_secret_flink_setting(key)):
        return f"{key}={MASK}"
    return mask_urls(text)
