"""Find a Go toolchain new enough for a module, or fetch the official one from the Go module proxy.

The seed peer's ``go.mod`` asks for a Go newer than Debian's package, and CI machines have only
what the repository installs. ``ensure_go`` takes ``go`` from PATH or Go's usual install folders
when it is new enough; otherwise it downloads the official toolchain module
(``golang.org/toolchain@v0.0.1-go<version>.<os>-<arch>``, the zip ``go`` itself uses for
``GOTOOLCHAIN`` switching) from the module proxy, checks its length and its ``h1:`` hash against
the checksum database (read through the proxy), and unpacks it into
``$PAYNOTIFY_CACHE/go-<version>/`` (default ``~/.cache/paynotify``), once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import httpx

from paynotify.broker import cache_dir

PROXY = "https://proxy.golang.org"
MODULE = "golang.org/toolchain"
CANDIDATES = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")
# The operating system's certificate store (as the go command uses), not certifi's bundle.
SYSTEM_CAS = ssl.create_default_context()
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class ToolchainUnavailable(RuntimeError):
    """No suitable Go here, and the official toolchain could not be fetched or checked."""


def log(message: str) -> None:
    print(f"seed-gin: {message}", file=sys.stderr, flush=True)


def parse_version(text: str) -> tuple[int, ...]:
    """Return ``(1, 26, 8)`` for ``go1.26.8``, ``1.26.8`` or ``1.26``; ``()`` when unreadable."""
    found = re.match(r"(?:go)?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(part) for part in found.group(1).split(".")) if found else ()


def required_version(go_mod: Path) -> str:
    """Return the Go version ``go_mod`` needs: its ``toolchain`` line, else its ``go`` line.

    Raises:
        ToolchainUnavailable: the file names no version.
    """
    text = go_mod.read_text(encoding="utf-8")
    for directive in ("toolchain go", "go "):
        found = re.search(rf"^{directive}(\d+(?:\.\d+)*)\s*$", text, re.MULTILINE)
        if found:
            return found.group(1)
    raise ToolchainUnavailable(f"{go_mod} names no Go version")


def version_of(go: Path) -> tuple[int, ...]:
    """Return the version of the ``go`` command at ``go``; ``()`` when it does not run."""
    try:
        done = subprocess.run(
            [str(go), "env", "GOVERSION"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            env={**os.environ, "GOTOOLCHAIN": "local"},
        )
    except OSError:
        return ()
    return parse_version(done.stdout) if done.returncode == 0 else ()


def find_go(minimum: str) -> Path | None:
    """Return the first installed ``go`` at least ``minimum`` (PATH first), or None."""
    found = shutil.which("go")
    for candidate in ([found] if found else []) + list(CANDIDATES):
        path = Path(candidate)
        if not path.is_file():
            continue
        have = version_of(path)
        if have >= parse_version(minimum):
            return path
        log(f"{path} is Go {'.'.join(map(str, have)) or '?'}, older than {minimum}")
    return None


def ensure_go(go_mod: Path) -> Path:
    """Return a ``go`` command able to build the module of ``go_mod``, fetching one if needed.

    Raises:
        ToolchainUnavailable: none installed and the download or its check failed.
    """
    version = required_version(go_mod)
    found = find_go(version)
    if found is not None:
        return found
    root = cache_dir() / f"go-{version}"
    go = root / "bin" / "go"
    if (root / ".complete").is_file() and go.is_file():
        return go
    fetch_toolchain(version, root)
    return go


def toolchain_version(version: str) -> str:
    """Return the module version of the official toolchain for this machine.

    Raises:
        ToolchainUnavailable: an operating system or processor Go does not ship for.
    """
    arch = ARCHES.get(platform.machine().lower())
    system = platform.system().lower()
    if arch is None or system not in ("linux", "darwin"):
        raise ToolchainUnavailable(f"no official Go toolchain for {system}/{platform.machine()}")
    return f"v0.0.1-go{version}.{system}-{arch}"


def fetch_toolchain(version: str, root: Path) -> None:
    """Download, check and unpack Go ``version`` into ``root``.

    Raises:
        ToolchainUnavailable: the proxy or checksum database did not answer, or the zip is wrong.
    """
    module_version = toolchain_version(version)
    url = f"{PROXY}/{MODULE}/@v/{module_version}.zip"
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".go-{version}-", dir=root.parent) as scratch:
        archive = Path(scratch) / "toolchain.zip"
        log(f"no Go >= {version} installed; fetching {url}")
        download(url, archive)
        expected = sumdb_hash(MODULE, module_version)
        actual = h1_hash(archive)
        if actual != expected:
            raise ToolchainUnavailable(f"{url}: hash {actual}, checksum database {expected}")
        log(f"hash {actual} matches the checksum database; unpacking into {root}")
        unpacked = Path(scratch) / "go"
        unpack(archive, f"{MODULE}@{module_version}/", unpacked)
        shutil.rmtree(root, ignore_errors=True)
        unpacked.rename(root)
    (root / ".complete").write_text(module_version, encoding="utf-8")
    log(f"Go {version} ready: {root / 'bin' / 'go'}")


def download(url: str, target: Path) -> None:
    """Stream ``url`` into ``target``, logging progress, and check its announced length.

    Raises:
        ToolchainUnavailable: the request failed or the body is shorter than announced.
    """
    try:
        with (
            httpx.stream(
                "GET", url, timeout=60, follow_redirects=True, verify=SYSTEM_CAS
            ) as response,
            target.open("wb") as out,
        ):
            response.raise_for_status()
            total = int(response.headers.get("Content-Length", 0))
            done, next_report = 0, 0.0
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if total and done / total >= next_report:
                    log(f"  {done / 2**20:.0f} / {total / 2**20:.0f} MiB")
                    next_report += 0.25
    except (OSError, httpx.HTTPError) as exc:
        raise ToolchainUnavailable(f"could not download {url}: {exc}") from exc
    if total and done != total:
        raise ToolchainUnavailable(f"{url}: got {done} bytes of {total}")


def sumdb_hash(module: str, version: str) -> str:
    """Return the ``h1:`` hash the Go checksum database records for the module's zip.

    Raises:
        ToolchainUnavailable: the database did not answer or has no such record.
    """
    url = f"{PROXY}/sumdb/sum.golang.org/lookup/{module}@{version}"
    try:
        response = httpx.get(url, timeout=30, follow_redirects=True, verify=SYSTEM_CAS)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ToolchainUnavailable(f"checksum database lookup {url} failed: {exc}") from exc
    for line in response.text.splitlines():
        parts = line.split()
        if parts[:2] == [module, version] and len(parts) == 3:
            return parts[2]
    raise ToolchainUnavailable(f"checksum database has no hash for {module}@{version}")


def h1_hash(archive: Path) -> str:
    """Return Go's ``h1:`` directory hash of a module zip (``dirhash.HashZip``)."""
    summary = hashlib.sha256()
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(i.filename for i in zf.infolist() if not i.is_dir()):
            digest = hashlib.sha256(zf.read(name)).hexdigest()
            summary.update(f"{digest}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def unpack(archive: Path, prefix: str, target: Path) -> None:
    """Extract the members under ``prefix`` into ``target``, keeping their executable bits.

    Raises:
        ToolchainUnavailable: a member lies outside ``prefix`` or would escape ``target``.
    """
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(prefix) or ".." in Path(info.filename).parts:
                raise ToolchainUnavailable(f"unexpected member {info.filename!r} in {archive}")
            path = target / info.filename[len(prefix) :]
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, path.open("wb") as out:
                shutil.copyfileobj(source, out)
            tool = path.relative_to(target).parts[0] in ("bin", "pkg")
            path.chmod((info.external_attr >> 16) & 0o777 or (0o755 if tool else 0o644))
