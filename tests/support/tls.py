"""Throwaway TLS material for the fake AI provider.

Clients verify certificates for real (that is the point: the sensor must see the same OpenSSL calls
as in production), so the fake provider needs a certificate that is valid for every provider
hostname the tests use. A fresh CA is generated per test session with ``trustme``; it is never
installed system-wide, clients are pointed at it with ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``,
``NODE_EXTRA_CA_CERTS``, ``CURL_CA_BUNDLE`` or ``curl --cacert``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trustme

#: Hostnames of AI providers mapped to 127.0.0.1 inside the test namespace and present in the
#: server certificate. Kept in one place so the hosts file and the certificate never disagree.
PROVIDER_HOSTNAMES: tuple[str, ...] = (
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "api.mistral.ai",
    "api.cohere.com",
    "api.cohere.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.together.ai",
    "api.deepseek.com",
    "openrouter.ai",
    "api.x.ai",
    "api.perplexity.ai",
    "api.fireworks.ai",
    "api.cerebras.ai",
    "api.ai21.com",
    "api.replicate.com",
    "router.huggingface.co",
    "api-inference.huggingface.co",
    "api.moonshot.ai",
    "oisp-test.openai.azure.com",
    "bedrock-runtime.us-east-1.amazonaws.com",
    "ollama.com",  # Ollama's cloud API: the native /api/* endpoints over HTTPS
)

#: Names for local access (health checks, debugging) that the certificate also covers.
LOCAL_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the generated PEM files.

    Attributes:
        directory: where the files live.
        ca_path: the CA certificate clients must trust.
        cert_path: the server certificate chain (leaf first).
        key_path: the server's private key (unencrypted PEM).
        hostnames: every DNS name / IP the server certificate is valid for.
    """

    directory: Path
    ca_path: Path
    cert_path: Path
    key_path: Path
    hostnames: tuple[str, ...]


def make_tls_material(
    directory: str | os.PathLike[str],
    hostnames: tuple[str, ...] = PROVIDER_HOSTNAMES,
) -> TlsMaterial:
    """Create ``ca.pem``, ``server.pem`` (chain) and ``server.key`` in ``directory``.

    A new CA is made on every call so that no test can come to depend on a long-lived key, and a
    leaked ``ca.pem`` is worthless after the session.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="oisp-sensor tests", organization_unit_name="fake provider CA")
    names = tuple(dict.fromkeys((*hostnames, *LOCAL_NAMES)))
    leaf = ca.issue_cert(*names, common_name=hostnames[0] if hostnames else "localhost")
    ca_path = out / "ca.pem"
    cert_path = out / "server.pem"
    key_path = out / "server.key"
    ca.cert_pem.write_to_path(str(ca_path))
    # Leaf first, then any intermediates: what a server sends and what OpenSSL's
    # ``load_cert_chain`` expects.
    with open(cert_path, "wb") as fh:
        for blob in leaf.cert_chain_pems:
            fh.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(key_path))
    key_path.chmod(0o600)
    return TlsMaterial(
        directory=out, ca_path=ca_path, cert_path=cert_path, key_path=key_path, hostnames=names
    )
