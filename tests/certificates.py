"""A local certificate authority made at test time with `openssl`: a CA, server and client
certificates signed by it, the bad ones a client must refuse (an expired server certificate, one
for another host name, a CA nobody was told to trust), a server certificate of that second CA
to rotate to, and a client certificate of it a server must refuse.

Nothing of it is committed: every file is written under the directory it is given (a test's
temporary one), keys unencrypted (PKCS#8 PEM, as Kafka's `ssl.keystore.type=PEM` reads them;
PKCS#8 DER on demand, as PostgreSQL's JDBC driver reads them).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVER_NAMES = ("localhost", "127.0.0.1")
"""The names the good server certificates are valid for (DNS and IP subject alternative
names): a client connecting to 127.0.0.1 or localhost checks the host name and passes."""
WRONG_HOST = "elsewhere.invalid"
"""The only name the wrong-host certificate is valid for."""
_OPENSSL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path

    def bundle(self) -> Path:
        """One PEM file with the key, then the certificate (what Kafka's PEM keystore reads),
        written next to them on first use."""
        path = self.cert.with_name(self.cert.stem + "-bundle.pem")
        if not path.exists():
            path.write_text(self.key.read_text() + self.cert.read_text())
        return path

    def der_key(self) -> Path:
        """The private key as unencrypted PKCS#8 DER (what PostgreSQL's JDBC driver reads from a
        file not named .pem, .key, .p12 or .pfx), owner-only, written next to it on first use."""
        path = self.key.with_suffix(".pk8")
        if not path.exists():
            _openssl(
                "pkcs8", "-topk8", "-nocrypt", "-in", str(self.key), "-outform", "DER",
                "-out", str(path),
                cwd=self.key.parent,
            )  # fmt: skip
            path.chmod(0o600)
        return path


@dataclass(frozen=True)
class Certificates:
    """What `make_certificates` wrote; every path is a PEM file."""

    ca: Path
    """The CA certificate every good certificate is signed with (a client's `ca_file`)."""
    server: KeyPair
    """A server certificate for SERVER_NAMES, valid now."""
    client: KeyPair
    """A client certificate (CN=client), valid now, for servers that ask for one."""
    expired: KeyPair
    """A server certificate for SERVER_NAMES, signed by `ca`, that expired in 2020."""
    wrong_host: KeyPair
    """A server certificate signed by `ca`, valid now, for WRONG_HOST only."""
    unknown_ca: Path
    """A second CA's certificate, which signed none of the above (a client that trusts only
    it refuses every server here)."""
    rotated: KeyPair
    """A server certificate for SERVER_NAMES signed by `unknown_ca`: what a server presents once
    its certificate was rotated to the new CA. Its subject is `server`'s (CN=server), as Kafka
    wants of a certificate that replaces another on a running listener."""
    foreign_client: KeyPair
    """A client certificate signed by `unknown_ca`, with `client`'s subject (CN=client): a
    server that trusts only `ca` refuses it, whatever the name in it."""

    def ca_bundle(self) -> Path:
        """One PEM file with both CAs' certificates (what clients trust while a rotation from
        `ca` to `unknown_ca` is under way), written next to `ca` on first use."""
        path = self.ca.with_name("ca-bundle.pem")
        if not path.exists():
            path.write_text(self.ca.read_text() + self.unknown_ca.read_text())
        return path


def make_certificates(directory: Path) -> Certificates:
    """Make the CA and the certificates in `directory` (created); fails naming openssl's
    output if it cannot."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl not found: install the openssl package")
    directory.mkdir(parents=True, exist_ok=True)
    authority = _Authority(directory)
    unknown_ca = _Authority(directory / "unknown-ca")
    server_names = ",".join(_alt_name(name) for name in SERVER_NAMES)
    return Certificates(
        ca=authority.cert,
        server=authority.sign("server", alt_names=server_names),
        client=authority.sign("client", alt_names=None),
        expired=authority.sign(
            "expired", alt_names=server_names, dates=("20200101000000Z", "20200102000000Z")
        ),
        wrong_host=authority.sign("wrong-host", alt_names=_alt_name(WRONG_HOST)),
        unknown_ca=unknown_ca.cert,
        rotated=unknown_ca.sign("server", alt_names=server_names),
        foreign_client=unknown_ca.sign("client", alt_names=None),
    )


def _alt_name(name: str) -> str:
    return f"IP:{name}" if name.replace(".", "").isdigit() else f"DNS:{name}"


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=_OPENSSL_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} exited {done.returncode}: {done.stderr[-2000:]}")


def _new_key(path: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path),
        cwd=path.parent,
    )  # fmt: skip


class _Authority:
    """A CA in its own directory; `openssl ca` signs, so validity dates can lie in the past."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.cert = directory / "ca.pem"
        self.key = directory / "ca-key.pem"
        _new_key(self.key)
        _openssl(
            "req", "-x509", "-new", "-key", str(self.key), "-out", str(self.cert),
            "-days", "2", "-subj", f"/CN=test-ca-{directory.name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory,
        )  # fmt: skip
        (directory / "index.txt").write_text("")
        (directory / "serial").write_text("1000\n")
        self.config = directory / "ca.cnf"
        self.config.write_text(
            "[ca]\ndefault_ca = local\n"
            f"[local]\ndir = {directory}\ndatabase = $dir/index.txt\nserial = $dir/serial\n"
            "new_certs_dir = $dir\ndefault_md = sha256\npolicy = any\n"
            "unique_subject = no\ncopy_extensions = copy\n"
            "[any]\ncommonName = supplied\n"
        )

    def sign(
        self, name: str, *, alt_names: str | None, dates: tuple[str, str] | None = None
    ) -> KeyPair:
        """A key and a certificate `<name>.pem` signed by this CA.

        alt_names: the subjectAltName value (e.g. `DNS:localhost,IP:127.0.0.1`), or None.
        dates: (not before, not after) as YYYYMMDDHHMMSSZ; None: from now for two days.
        """
        pair = KeyPair(cert=self.directory / f"{name}.pem", key=self.directory / f"{name}-key.pem")
        request = self.directory / f"{name}.csr"
        _new_key(pair.key)
        extensions = ["-addext", f"subjectAltName={alt_names}"] if alt_names else []
        _openssl(
            "req", "-new", "-key", str(pair.key), "-out", str(request), "-subj", f"/CN={name}",
            *extensions,
            cwd=self.directory,
        )  # fmt: skip
        validity = ["-startdate", dates[0], "-enddate", dates[1]] if dates else ["-days", "2"]
        _openssl(
            "ca", "-batch", "-notext", "-config", str(self.config), "-cert", str(self.cert),
            "-keyfile", str(self.key), "-in", str(request), "-out", str(pair.cert), *validity,
            cwd=self.directory,
        )  # fmt: skip
        return pair
