#!/usr/bin/env python3
"""fixture.py - make Docker Distribution registry storage trees for regkit tests.

Every tree made by `build` is written by the real registry (Debian's
`docker-registry`, Distribution 2.8) after real pushes over the Registry HTTP
API V2.  `generate` writes the same tree straight to disk, without a registry,
for large benchmark fixtures.  Python 3 standard library only.

Subcommands
  build RECIPE OUT_ROOT [--tags N] [--threads T] [--force]
        Start `docker-registry serve` on 127.0.0.1:<free port> over a fresh
        storage root, push RECIPE's images over HTTP, stop the registry and move
        the storage root to OUT_ROOT (built in OUT_ROOT.tmp-PID, then renamed).
        Writes the sidecar OUT_ROOT.json (every pushed repo:tag, digests,
        media types, children, whether skopeo can copy it).
  generate RECIPE OUT_ROOT [--tags N] [--force]
        Write, with no registry, exactly the tree `build` writes for RECIPE.
  compare A B
        Compare two trees exactly (paths, file types, file contents, empty
        folders).  Exit 0 when equal, 1 with a listing of differences.
  damage KIND SRC_ROOT OUT_ROOT [--force]
        Copy SRC_ROOT (cp -a) to OUT_ROOT and damage it like real disks get
        damaged.  Writes OUT_ROOT.json describing what was damaged.
        KIND: deleted-tag orphan-blob leftover-upload missing-blob
        missing-manifest bad-link not-json missing-child flipped-byte
        truncated-blob dangling-revision all
  verify ROOT [--sample K] [--keep]
        Start the real registry on a copy of ROOT (config from ROOT.json),
        `skopeo copy --all` every copyable tag to dir:, and check that
        `skopeo inspect --raw` gives the digests recorded in ROOT.json.
  serve ROOT [--port P]
        Run the real registry in the foreground on ROOT (as the sidecar says
        it must be configured) until interrupted.  ROOT is served in place.

Recipes: sample, edge, bench (--tags N, default 5000), gc.
"""

import argparse
import atexit
import base64
import concurrent.futures
import hashlib
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import zlib

# --------------------------------------------------------------------------
# media types

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1_LAYER = "application/vnd.docker.container.image.rootfs.diff+x-gtar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)

FIXED_MTIME = 1700000000  # 2023-11-14T22:13:20Z, every tar entry
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The gzip of an empty 1024-byte tar that Docker uses for schema1 "throwaway"
# layers (github.com/docker/distribution manifest/schema1/config_builder.go).
GZIPPED_EMPTY_TAR = bytes([
    31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 98, 24, 5, 163, 96, 20, 140, 88,
    0, 8, 0, 0, 255, 255, 46, 175, 181, 239, 0, 4, 0, 0])

SIDECAR_FORMAT = 1


def log(*a):
    print("fixture:", *a, file=sys.stderr, flush=True)


def die(msg, code=2):
    log("error:", msg)
    sys.exit(code)


def sha256hex(b):
    return hashlib.sha256(b).hexdigest()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def json_compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def json_docker(obj):
    """Like Go's json.MarshalIndent(v, "", "   "), which docker uses."""
    return json.dumps(obj, indent=3, ensure_ascii=False).encode()


def gzip_bytes(data, level=6):
    """Deterministic gzip member: mtime 0, no name, OS byte 255 like Go."""
    co = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
    body = co.compress(data) + co.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + body + trailer


def tar_bytes(files):
    """files: {path: (bytes, mode)}; parent folders are added; sorted; fixed
    mtime, uid/gid 0, uname/gname root."""
    dirs = set()
    for p in files:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    entries = [(d + "/", None, 0o755) for d in dirs]
    entries += [(p, data, mode) for p, (data, mode) in files.items()]
    entries.sort(key=lambda e: e[0])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = FIXED_MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            ti.mode = mode
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


# --------------------------------------------------------------------------
# content model

class Blob:
    """A non-manifest blob: config or layer."""

    def __init__(self, data, media_type):
        self.data = data
        self.media_type = media_type
        self.digest = "sha256:" + sha256hex(data)
        self.size = len(data)
        self.urls = None
        self.foreign = False
        self.diff_id = None

    def desc_docker(self):
        d = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.urls:
            d["urls"] = list(self.urls)
        return d

    def desc_oci(self):
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        return d

    def node(self):
        d = {"digest": self.digest, "media_type": self.media_type, "size": self.size}
        if self.foreign:
            d["foreign"] = True
        if self.urls:
            d["urls"] = list(self.urls)
        return d


def make_layer(files, media_type=DOCKER_LAYER):
    tar = tar_bytes(files)
    b = Blob(gzip_bytes(tar), media_type)
    b.diff_id = "sha256:" + sha256hex(tar)
    return b


def foreign_layer(files, urls_base, media_type=DOCKER_FOREIGN):
    """A layer that is referenced by URL and never pushed."""
    b = make_layer(files, media_type)
    b.foreign = True
    b.urls = [urls_base + b.digest]
    return b


class Manifest:
    """A manifest blob as stored (data) and as pushed (push_data)."""

    def __init__(self, data, media_type, config=None, layers=(), children=(),
                 artifact_type=None, subject=None, push_data=None):
        self.data = data
        self.push_data = push_data if push_data is not None else data
        self.media_type = media_type
        self.digest = "sha256:" + sha256hex(data)
        self.size = len(data)
        self.config = config
        self.layers = list(layers)
        self.children = list(children)  # [(Manifest, platform dict or None)]
        self.artifact_type = artifact_type
        self.subject = subject

    def blobs(self):
        out = []
        if self.config is not None:
            out.append(self.config)
        out += [l for l in self.layers if not l.foreign]
        return out

    def node(self, platform=None, in_index=False):
        d = {"digest": self.digest, "media_type": self.media_type, "size": self.size}
        if in_index:
            d["platform"] = platform_str(platform)
        if self.artifact_type:
            d["artifact_type"] = self.artifact_type
        if self.subject is not None:
            d["subject"] = self.subject.digest
        d["config"] = self.config.node() if self.config is not None else None
        d["layers"] = [l.node() for l in self.layers]
        d["children"] = [c.node(p, True) for c, p in self.children]
        return d

    def all_digests(self):
        """Every digest this manifest reaches: itself, children, configs, layers."""
        out = {self.digest}
        for b in self.blobs():
            out.add(b.digest)
        for l in self.layers:
            out.add(l.digest)
        for c, _ in self.children:
            out |= c.all_digests()
        return out


def platform_str(p):
    if not p:
        return None
    s = p["os"] + "/" + p["architecture"]
    if p.get("variant"):
        s += "/" + p["variant"]
    return s


def plat(os_name, arch, variant=None):
    p = {"architecture": arch, "os": os_name}
    if variant:
        p["variant"] = variant
    return p


def image_config(layers, *, arch="amd64", os_name="linux", variant=None,
                 created="2024-01-26T23:44:48.123456789Z", env=None, cmd=None,
                 entrypoint=None, labels=None, workdir=None, created_by=None,
                 os_version=None):
    """Config JSON as docker/buildkit write it (compact, keys sorted)."""
    c = {}
    if cmd is None:
        cmd = ["/bin/sh"]
    if entrypoint:
        c["Entrypoint"] = entrypoint
    c["Env"] = env if env is not None else [DEFAULT_PATH]
    c["Cmd"] = cmd
    if labels:
        c["Labels"] = labels
    if workdir:
        c["WorkingDir"] = workdir
    hist = []
    for i, l in enumerate(layers):
        by = (created_by[i] if created_by and i < len(created_by)
              else "/bin/sh -c #(nop) ADD file:%s in / " % l.diff_id[7:])
        hist.append({"created": created, "created_by": by})
    hist.append({"created": created, "created_by": "/bin/sh -c #(nop)  CMD %s"
                 % json.dumps(cmd), "empty_layer": True})
    cfg = {"architecture": arch, "config": c, "created": created, "history": hist,
           "os": os_name}
    if os_version:
        cfg["os.version"] = os_version
    cfg["rootfs"] = {"type": "layers", "diff_ids": [l.diff_id for l in layers]}
    if variant:
        cfg["variant"] = variant
    return json_compact(cfg)


def docker_image(layers, **kw):
    cfg = Blob(image_config(layers, **kw), DOCKER_CONFIG)
    m = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
         "config": cfg.desc_docker(), "layers": [l.desc_docker() for l in layers]}
    return Manifest(json_docker(m), DOCKER_MANIFEST, cfg, layers)


def oci_image(layers, annotations=None, **kw):
    cfg = Blob(image_config(layers, **kw), OCI_CONFIG)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": cfg.desc_oci(), "layers": [l.desc_oci() for l in layers]}
    if annotations:
        m["annotations"] = annotations
    return Manifest(json_compact(m), OCI_MANIFEST, cfg, layers)


def docker_list(children):
    ms = []
    for c, p in children:
        ms.append({"mediaType": c.media_type, "size": c.size, "digest": c.digest,
                   "platform": p})
    m = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": ms}
    return Manifest(json_docker(m), DOCKER_LIST, children=children)


def oci_index(children, annotations=None):
    ms = []
    for c, p in children:
        d = {"mediaType": c.media_type, "digest": c.digest, "size": c.size}
        if p:
            d["platform"] = p
        ms.append(d)
    m = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": ms}
    if annotations:
        m["annotations"] = annotations
    return Manifest(json_compact(m), OCI_INDEX, children=children)


def oci_artifact(artifact_type, layers, subject, annotations=None):
    cfg = Blob(b"{}", OCI_EMPTY)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
         "config": cfg.desc_oci(), "layers": [l.desc_oci() for l in layers],
         "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                     "size": subject.size}}
    if annotations:
        m["annotations"] = annotations
    return Manifest(json_compact(m), OCI_MANIFEST, cfg, layers,
                    artifact_type=artifact_type, subject=subject)


# --------------------------------------------------------------------------
# schema1 (libtrust JWS, ES256) signing with openssl

def _der_sig_to_raw(der, n=32):
    # SEQUENCE { INTEGER r, INTEGER s }
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        ln = der[i + 1]
        v = der[i + 2:i + 2 + ln].lstrip(b"\x00")
        out += v.rjust(n, b"\x00")
        i += 2 + ln
    return out


def _libtrust_key_id(pub_der):
    s = base64.b32encode(hashlib.sha256(pub_der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


def schema1_sign(payload, workdir):
    """Return the pretty-JWS bytes of payload signed with a fresh P-256 key,
    exactly as libtrust's JSONSignature.PrettySignature("signatures") lays
    them out.  The registry stores only the payload, so the key and the
    (random) ECDSA signature never reach the storage tree."""
    key = os.path.join(workdir, "schema1-key.pem")
    if not os.path.exists(key):
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey",
                        "-noout", "-out", key], check=True)
    pub_der = subprocess.run(["openssl", "ec", "-in", key, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
    x, y = pub_der[-64:-32], pub_der[-32:]
    jwk = {"crv": "P-256", "kid": _libtrust_key_id(pub_der), "kty": "EC",
           "x": b64url(x), "y": b64url(y)}
    close = len(payload.rstrip()) - 1
    assert payload[close:close + 1] == b"}"
    fl = len(payload[:close].rstrip())
    tail = payload[fl:]
    protected = b64url(json.dumps(
        {"formatLength": fl, "formatTail": b64url(tail), "time": "2017-06-01T10:00:00Z"},
        separators=(",", ":"), sort_keys=True).encode())
    signing_input = (protected + "." + b64url(payload)).encode()
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                         check=True, capture_output=True).stdout
    sigs = [{"header": {"jwk": jwk, "alg": "ES256"},
             "signature": b64url(_der_sig_to_raw(der)), "protected": protected}]
    indent = "   "
    marshalled = json.dumps(sigs, indent=3).replace("\n", "\n" + indent)
    return (payload[:fl] + b",\n" + indent.encode() + b'"signatures": '
            + marshalled.encode() + b"\n}")


def schema1_payload(signed):
    """The canonical payload (what the digest is taken of) of a pretty JWS."""
    obj = json.loads(signed)
    prot = obj["signatures"][0]["protected"]
    hdr = json.loads(base64.urlsafe_b64decode(prot + "=" * (-len(prot) % 4)))
    tail = base64.urlsafe_b64decode(hdr["formatTail"] + "=" * (-len(hdr["formatTail"]) % 4))
    return signed[:hdr["formatLength"]] + tail


def schema1_manifest(name, tag, layers_top_first, v1compat_top_first, workdir,
                     arch="amd64"):
    m = {"schemaVersion": 1, "name": name, "tag": tag, "architecture": arch,
         "fsLayers": [{"blobSum": l.digest} for l in layers_top_first],
         "history": [{"v1Compatibility": h} for h in v1compat_top_first]}
    payload = json_docker(m)
    signed = schema1_sign(payload, workdir)
    assert schema1_payload(signed) == payload
    uniq = []
    for l in layers_top_first:
        if l.digest not in [u.digest for u in uniq]:
            uniq.append(relabel(l, SCHEMA1_LAYER))  # as schema1 References() types them
    return Manifest(payload, SCHEMA1_SIGNED, None, uniq, push_data=signed)


# --------------------------------------------------------------------------
# a push plan: the ordered operations a client performs, plus what the
# sidecar says about them

class Plan:
    def __init__(self):
        self.ops = []          # ("blob", repo, Blob, how) / ("manifest", repo, ref, Manifest)
        self.images = []       # sidecar entries, push order
        self.untagged = []
        self._blobs = set()
        self._manifests = set()
        self._tagged = {}      # (repo, tag) -> index in images
        self._mobj = {}        # (repo, tag) -> Manifest

    def blob(self, repo, blob, how="mono"):
        key = (repo, blob.digest)
        if key in self._blobs:
            return
        self._blobs.add(key)
        self.ops.append(("blob", repo, blob, how))

    def deps(self, repo, m):
        for c, _ in m.children:
            self.deps(repo, c)
            if (repo, c.digest) not in self._manifests:
                self._manifests.add((repo, c.digest))
                self.ops.append(("manifest", repo, c.digest, c))
        for b in m.blobs():
            self.blob(repo, b)

    def image(self, repo, m, tags, copyable=True, note=None):
        self.deps(repo, m)
        for t in tags:
            self._manifests.add((repo, m.digest))
            self.ops.append(("manifest", repo, t, m))
            self._tag(repo, t, m, copyable, note)

    def tag_existing(self, repo, m, tag, copyable=True, note=None):
        """PUT an already pushed manifest under one more tag."""
        self.ops.append(("manifest", repo, tag, m))
        self._tag(repo, tag, m, copyable, note)

    def by_digest(self, repo, m, reason):
        self.deps(repo, m)
        self._manifests.add((repo, m.digest))
        self.ops.append(("manifest", repo, m.digest, m))
        self.untagged.append(self._untagged_entry(repo, m, reason))

    def _untagged_entry(self, repo, m, reason):
        e = {"repo": repo, "ref": repo + "@" + m.digest}
        e.update(m.node())
        e["reason"] = reason
        return e

    def _tag(self, repo, tag, m, copyable, note):
        e = {"ref": repo + ":" + tag, "repo": repo, "tag": tag}
        e.update(m.node())
        e["copyable"] = copyable
        e["written_by"] = "registry"
        if note:
            e["note"] = note
        key = (repo, tag)
        if key in self._tagged:
            old = self._mobj[key]
            self.images[self._tagged[key]] = e
            still = any(mm.digest == old.digest for (r, _), mm in self._mobj.items()
                        if r == repo and (r, _) != key)
            if not still and old.digest != m.digest:
                self.untagged.append(self._untagged_entry(
                    repo, old, "tag %s:%s was moved to %s" % (repo, tag, m.digest)))
        else:
            self._tagged[key] = len(self.images)
            self.images.append(e)
        self._mobj[key] = m

    def manifests_of(self):
        """{digest: Manifest} of every manifest pushed."""
        out = {}
        for op in self.ops:
            if op[0] == "manifest":
                out[op[3].digest] = op[3]
        return out


# --------------------------------------------------------------------------
# recipes

CREATED = "2024-01-26T23:44:48.123456789Z"


def rand_text(rng, lines, width=60):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
             "hotel", "india", "juliet", "kilo", "lima", "mike", "november",
             "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform"]
    out = []
    for _ in range(lines):
        line = []
        while sum(len(w) + 1 for w in line) < width:
            line.append(rng.choice(words))
        out.append(" ".join(line))
    return ("\n".join(out) + "\n").encode()


def os_release(name, version):
    return ('NAME="%s"\nID=%s\nVERSION_ID=%s\nPRETTY_NAME="%s v%s"\n'
            'HOME_URL="https://example.invalid/"\n'
            % (name, name.lower(), version, name, version)).encode()


def base_layer(rng, distro, version, arch, binsize=3000):
    return make_layer({
        "bin/busybox": (rng.randbytes(binsize), 0o755),
        "etc/%s-release" % distro.lower(): (("%s\n" % version).encode(), 0o644),
        "etc/os-release": (os_release(distro, version), 0o644),
        "etc/arch": (("%s\n" % arch).encode(), 0o644),
        "etc/hostname": (b"localhost\n", 0o644),
    })


def app_layer(rng, app, version, binsize=1500, extra=None, media_type=DOCKER_LAYER):
    files = {
        "app/%s" % app: (rng.randbytes(binsize), 0o755),
        "app/VERSION": (("%s\n" % version).encode(), 0o644),
        "app/README": (rand_text(rng, 6), 0o644),
    }
    if extra:
        files.update(extra)
    return make_layer(files, media_type)


def relabel(layer, media_type):
    """Same bytes, other media type (Docker and OCI gzip layers are one blob)."""
    b = Blob(layer.data, media_type)
    b.diff_id = layer.diff_id
    return b


class Recipe:
    """units: list of callables returning a Plan; units run in parallel in
    `build`, in order in `generate`; each unit's ops run in order."""

    def __init__(self, name, units, registry_extra=None, description=""):
        self.name = name
        self.units = units
        self.registry_extra = registry_extra or {}
        self.description = description


def recipe_sample(args, workdir):
    def unit():
        P = Plan()
        rng = random.Random("regkit-sample")
        # library/alpine: Docker schema2, two layers, two tags, one digest
        alpine_base = base_layer(rng, "Alpine", "3.19.1", "x86_64")
        apk = make_layer({
            "sbin/apk": (rng.randbytes(1500), 0o755),
            "etc/apk/repositories": (b"https://dl-cdn.alpinelinux.org/alpine/v3.19/main\n"
                                     b"https://dl-cdn.alpinelinux.org/alpine/v3.19/community\n",
                                     0o644),
            "lib/apk/db/installed": (rand_text(rng, 20), 0o644),
        })
        alpine = docker_image([alpine_base, apk], created="2024-01-27T00:30:56.150825642Z",
                              created_by=["/bin/sh -c #(nop) ADD file:%s in / "
                                          % alpine_base.diff_id[7:],
                                          "/bin/sh -c apk add --no-cache apk-tools"])
        P.image("library/alpine", alpine, ["3.19", "latest"])

        # team/app v1, v2: base layer shared with alpine (cross-repo mount),
        # v2 also shares v1's base; v2 has one bigger layer sent in chunks.
        P.blob("team/app", alpine_base, "mount:library/alpine")
        app1 = app_layer(rng, "server", "1.0.0")
        v1 = docker_image([alpine_base, app1], created="2024-02-01T10:00:00Z",
                          cmd=["/app/server"], labels={"org.example.version": "1.0.0"},
                          workdir="/app")
        P.image("team/app", v1, ["v1"])
        big = app_layer(rng, "server", "2.0.0", binsize=40000)
        cfgl = make_layer({"etc/app/config.toml": (b"[server]\nport = 8080\nworkers = 4\n",
                                                  0o644)})
        P.blob("team/app", big, "chunked")
        v2 = docker_image([alpine_base, big, cfgl], created="2024-03-01T10:00:00Z",
                          cmd=["/app/server"], labels={"org.example.version": "2.0.0"},
                          workdir="/app")
        P.image("team/app", v2, ["v2"])

        # a/b/c/deep:1.0: OCI image manifest, nested repository name
        d1 = make_layer({"usr/lib/deep/libdeep.so.1": (rng.randbytes(1800), 0o755),
                         "usr/share/deep/NOTICE": (rand_text(rng, 5), 0o644)}, OCI_LAYER)
        d2 = make_layer({"usr/bin/deep": (rng.randbytes(1200), 0o755)}, OCI_LAYER)
        deep = oci_image([d1, d2], created="2024-02-10T08:00:00Z", cmd=["/usr/bin/deep"],
                         annotations={"org.opencontainers.image.created": "2024-02-10T08:00:00Z",
                                      "org.opencontainers.image.source":
                                          "https://example.invalid/deep"})
        P.image("a/b/c/deep", deep, ["1.0"])

        # multi/docker-list:1: Docker manifest list of 3 Docker schema2 images
        common = make_layer({"etc/motd": (rand_text(rng, 4), 0o644),
                             "usr/share/multi/data.bin": (rng.randbytes(900), 0o644)})
        kids = []
        for arch, variant, uname in (("amd64", None, "x86_64"), ("arm64", "v8", "aarch64"),
                                     ("arm", "v7", "armv7l")):
            own = base_layer(rng, "Multi", "1.0", uname, binsize=1200)
            m = docker_image([own, common], arch=arch, variant=variant,
                             created="2024-02-15T12:00:00Z")
            kids.append((m, plat("linux", arch, variant)))
        P.image("multi/docker-list", docker_list(kids), ["1"])

        # multi/oci-index:1: OCI index of 2 OCI images
        kids = []
        for arch, variant, uname in (("amd64", None, "x86_64"), ("arm64", "v8", "aarch64")):
            own = make_layer({"bin/tool": (rng.randbytes(1100), 0o755),
                              "etc/arch": (("%s\n" % uname).encode(), 0o644)}, OCI_LAYER)
            m = oci_image([own], arch=arch, variant=variant, created="2024-02-16T12:00:00Z",
                          cmd=["/bin/tool"])
            kids.append((m, plat("linux", arch, variant)))
        P.image("multi/oci-index", oci_index(kids), ["1"])

        # multi/nested:1: OCI index -> [OCI index -> 2 images, 1 image]
        inner_kids = []
        for arch, variant in (("amd64", None), ("arm64", "v8")):
            own = make_layer({"bin/nested": (rng.randbytes(1000), 0o755),
                              "etc/arch": (("%s\n" % arch).encode(), 0o644)}, OCI_LAYER)
            inner_kids.append((oci_image([own], arch=arch, variant=variant,
                                         created="2024-02-17T12:00:00Z",
                                         cmd=["/bin/nested"]),
                               plat("linux", arch, variant)))
        inner = oci_index(inner_kids, annotations={"org.example.role": "inner-index"})
        s390 = make_layer({"bin/nested": (rng.randbytes(1000), 0o755),
                           "etc/arch": (b"s390x\n", 0o644)}, OCI_LAYER)
        direct = oci_image([s390], arch="s390x", created="2024-02-17T12:00:00Z",
                           cmd=["/bin/nested"])
        nested = oci_index([(inner, None), (direct, plat("linux", "s390x"))])
        P.image("multi/nested", nested, ["1"], copyable=False,
                note="index whose first child is itself an index; skopeo 1.9 cannot copy "
                     "a nested index")

        # many/tags: t00..t29; 12 distinct images; t00 first points to an older
        # image and is moved at the end.
        imgs = []
        for k in range(12):
            l = make_layer({"data/file%02d" % k: (rng.randbytes(400 + 37 * k), 0o644),
                            "data/NAME": (("image-%02d\n" % k).encode(), 0o644)})
            imgs.append(docker_image([l], created="2024-03-%02dT09:00:00Z" % (k + 1),
                                     cmd=["/bin/true"],
                                     labels={"org.example.image": "%02d" % k}))
        old = make_layer({"data/old": (rng.randbytes(500), 0o644)})
        old_img = docker_image([old], created="2023-12-01T09:00:00Z", cmd=["/bin/true"],
                               labels={"org.example.image": "old"})
        P.image("many/tags", old_img, ["t00"])
        for i in range(1, 30):
            P.image("many/tags", imgs[i % 12], ["t%02d" % i])
        P.image("many/tags", imgs[0], ["t00"])

        # artifacts/app:v1 + an SBOM artifact (subject -> v1, tagged cosign
        # style) + a signature artifact pushed by digest only (a referrer).
        al = make_layer({"app/main": (rng.randbytes(1300), 0o755)}, OCI_LAYER)
        img = oci_image([alpine_base_oci(alpine_base), al], created="2024-04-01T00:00:00Z",
                        cmd=["/app/main"])
        P.image("artifacts/app", img, ["v1"])
        sbom = Blob(json_compact({
            "spdxVersion": "SPDX-2.3", "name": "artifacts/app:v1",
            "packages": [{"name": "busybox", "versionInfo": "1.36.1"},
                         {"name": "main", "versionInfo": "1.0.0"}]}),
            "application/vnd.example.sbom.v1+json")
        art = oci_artifact("application/vnd.example.sbom.v1", [sbom], img,
                           annotations={"org.opencontainers.image.created":
                                        "2024-04-01T00:05:00Z"})
        P.by_digest("artifacts/app", art, "pushed by digest before being tagged")
        P.untagged.pop()
        P.tag_existing("artifacts/app", art, "sha256-%s.sig" % img.digest[7:],
                       copyable=True,
                       note="OCI artifact (artifactType, empty config, subject -> v1)")
        sig = Blob(json_compact({"critical": {"image": {"docker-manifest-digest": img.digest},
                                              "type": "example signature"}}),
                   "application/vnd.example.signature.v1+json")
        ref2 = oci_artifact("application/vnd.example.signature.v1", [sig], img,
                            annotations={"org.opencontainers.image.created":
                                         "2024-04-01T00:06:00Z"})
        P.by_digest("artifacts/app", ref2, "OCI referrer of artifacts/app:v1 (subject), no tag")
        return P

    return Recipe("sample", [unit], {}, "small main fixture")


def alpine_base_oci(layer):
    return relabel(layer, OCI_LAYER)


def recipe_edge(args, workdir):
    def unit():
        P = Plan()
        rng = random.Random("regkit-edge")

        # legacy/old:1.0: schema1 signed manifest
        l_top = make_layer({"opt/legacy/run.sh": (b"#!/bin/sh\nexec /opt/legacy/bin\n", 0o755),
                            "opt/legacy/bin": (rng.randbytes(1400), 0o755)})
        l_base = make_layer({"bin/sh": (rng.randbytes(1600), 0o755),
                             "etc/debian_version": (b"8.11\n", 0o644)})
        empty = Blob(GZIPPED_EMPTY_TAR, DOCKER_LAYER)
        ids = [rng.randbytes(32).hex() for _ in range(3)]
        container = rng.randbytes(32).hex()
        addfile = rng.randbytes(32).hex()
        v1c = [
            json.dumps({"architecture": "amd64",
                        "config": {"Env": [DEFAULT_PATH], "Cmd": ["/opt/legacy/run.sh"],
                                   "Image": "sha256:" + rng.randbytes(32).hex()},
                        "container": container,
                        "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ",
                                                     "CMD [\"/opt/legacy/run.sh\"]"]},
                        "created": "2017-05-02T10:00:02.000000000Z",
                        "docker_version": "17.03.1-ce", "id": ids[0], "os": "linux",
                        "parent": ids[1], "throwaway": True},
                       separators=(",", ":")),
            json.dumps({"id": ids[1], "parent": ids[2],
                        "created": "2017-05-02T10:00:01.000000000Z",
                        "container_config": {"Cmd": ["/bin/sh -c #(nop) ADD dir:%s in /opt/legacy "
                                                     % addfile]}},
                       separators=(",", ":")),
            json.dumps({"id": ids[2], "created": "2017-05-02T10:00:00.000000000Z",
                        "container_config": {"Cmd": ["/bin/sh -c #(nop) ADD file:%s in / "
                                                     % rng.randbytes(32).hex()]}},
                       separators=(",", ":")),
        ]
        s1 = schema1_manifest("legacy/old", "1.0", [empty, l_top, l_base], v1c, workdir)
        for b in s1.blobs():
            P.blob("legacy/old", b)
        P.image("legacy/old", s1, ["1.0"], copyable=True,
                note="schema1 signed manifest; the registry stores only the JWS payload "
                     "(digest = sha256 of the payload) and re-signs it on every GET")

        # win/foreign:ltsc2019: foreign layer (not pushed) + normal layer
        fl = foreign_layer({"Files/Windows/System32/kernel32.dll": (rng.randbytes(2000), 0o644)},
                           "https://mcr.microsoft.com/v2/windows/servercore/blobs/")
        nl = make_layer({"Files/app/app.exe": (rng.randbytes(1200), 0o755)})
        win = docker_image([fl, nl], os_name="windows", os_version="10.0.17763.5329",
                           created="2024-01-09T18:00:00Z", cmd=["c:\\app\\app.exe"],
                           env=["PATH=C:\\Windows\\system32;C:\\Windows"])
        P.image("win/foreign", win, ["ltsc2019"], copyable=False,
                note="foreign layer (urls, never pushed); copying to dir: needs the URL")

        # tools/current:latest  (a repository whose last component is 'current')
        tl = app_layer(rng, "tool", "0.3.1", binsize=900)
        tool = docker_image([tl], created="2024-02-02T02:02:02Z", cmd=["/app/tool"])
        P.image("tools/current", tool, ["latest"])

        # odd/names: tag 'current', a 128-char tag, plus 'latest'
        ol = app_layer(rng, "odd", "1", binsize=700)
        odd = docker_image([ol], created="2024-02-03T03:03:03Z", cmd=["/app/odd"])
        long_tag = "v1.2.3-"
        pool = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
        while len(long_tag) < 128:
            long_tag += pool[(len(long_tag) * 7) % len(pool)]
        assert len(long_tag) == 128
        P.image("odd/names", odd, ["current", "latest", long_tag])

        # a/b/c/d/e:1  5-level repository name, OCI image
        el = make_layer({"e/data": (rng.randbytes(800), 0o644)}, OCI_LAYER)
        e = oci_image([el], created="2024-02-04T04:04:04Z", cmd=["/bin/sh"])
        P.image("a/b/c/d/e", e, ["1"])
        return P

    extra = {"compatibility": {"schema1": {"enabled": True}},
             "validation": {"manifests": {"urls": {"allow": ["^https?://"]}}}}
    return Recipe("edge", [unit], extra, "odd corners: schema1, foreign layer, odd names")


BENCH_BASES = 8


def recipe_bench(args, workdir):
    n = args.tags
    nrepos = max(1, n // 10)
    bases_cache = {}
    lock = threading.Lock()

    def bases(arch):
        with lock:
            if arch not in bases_cache:
                out = []
                for b in range(BENCH_BASES):
                    rng = random.Random("bench-base-%s-%d" % (arch, b))
                    out.append(base_layer(rng, "Bench", "1.%d" % b, arch, binsize=2500))
                bases_cache[arch] = out
            return bases_cache[arch]

    def repo_name(r):
        return "proj%03d/svc%d" % (r // 10, r % 10)

    def make_unit(r):
        def unit():
            P = Plan()
            repo = repo_name(r)
            rrng = random.Random("bench-repo-%d" % r)
            shared = app_layer(rrng, "svc", "shared-%d" % r, binsize=rrng.randint(1000, 3000))
            lo, hi = r * n // nrepos, (r + 1) * n // nrepos
            for t in range(lo, hi):
                trng = random.Random("bench-tag-%d" % t)
                tag = "1.%d.%d" % ((t - lo) // 5, (t - lo) % 5)
                oci = (t % 3 == 2)
                lt = OCI_LAYER if oci else DOCKER_LAYER
                how = "chunked" if t % 50 == 13 else "mono"

                def one(arch, variant=None):
                    layers = [relabel(bases(arch)[t % BENCH_BASES], lt), relabel(shared, lt)]
                    for k in range(1 if trng.random() < 0.5 else 2):
                        layers.append(app_layer(trng, "bin%d" % k, "%d-%s" % (t, arch),
                                                binsize=trng.randint(1000, 4000),
                                                media_type=lt))
                    if how == "chunked":
                        P.blob(repo, layers[-1], "chunked")
                    kw = dict(arch=arch, variant=variant, created="2024-05-01T00:00:00Z",
                              cmd=["/app/bin0"], labels={"org.example.tag": str(t)})
                    return oci_image(layers, **kw) if oci else docker_image(layers, **kw)

                if t % 10 == 7:
                    kids = [(one("amd64"), plat("linux", "amd64")),
                            (one("arm64", "v8"), plat("linux", "arm64", "v8"))]
                    top = oci_index(kids) if oci else docker_list(kids)
                else:
                    top = one("amd64")
                P.image(repo, top, [tag])
            return P
        return unit

    return Recipe("bench", [make_unit(r) for r in range(nrepos)], {},
                  "benchmark tree: %d tags over %d repositories" % (n, nrepos))


def recipe_gc(args, workdir):
    """Signed multi-arch images, referrers and untagged history, for gc:
    what `garbage-collect --delete-untagged` must keep and what it may drop."""
    def unit():
        P = Plan()
        rng = random.Random("regkit-gc")

        def signature(subject, what):
            blob = Blob(json_compact({"critical": {"image": {"docker-manifest-digest":
                                                             subject.digest},
                                                   "type": what}}),
                        "application/vnd.example.signature.v1+json")
            return oci_artifact("application/vnd.example.signature.v1", [blob], subject)

        def sbom(subject, name):
            blob = Blob(json_compact({"spdxVersion": "SPDX-2.3", "name": name,
                                      "packages": [{"name": name, "versionInfo": "1"}]}),
                        "application/vnd.example.sbom.v1+json")
            return oci_artifact("application/vnd.example.sbom.v1", [blob], subject)

        def sig_tag(m):
            return "sha256-%s.sig" % m.digest[7:]

        # signed/multi: an OCI index of 2 images. Tag 1 first named an older
        # index (now untagged, with its own children and referrers); the
        # current index, each child and the index itself are signed
        # cosign-style (tagged sha256-<hex>.sig) and have untagged OCI
        # referrers; one referrer has a referrer of its own.
        repo = "signed/multi"
        shared = make_layer({"usr/share/multi/COMMON": (rand_text(rng, 8), 0o644)}, OCI_LAYER)

        def build_index(version):
            kids = []
            for arch, variant in (("amd64", None), ("arm64", "v8")):
                own = make_layer({"bin/app": (rng.randbytes(1200), 0o755),
                                  "etc/version": (("%s %s\n" % (version, arch)).encode(),
                                                  0o644)}, OCI_LAYER)
                kids.append((oci_image([shared, own], arch=arch, variant=variant,
                                       created="2024-05-%02dT00:00:00Z" % version,
                                       cmd=["/bin/app"]), plat("linux", arch, variant)))
            return oci_index(kids)

        old = build_index(1)
        P.image(repo, old, ["1"])
        for c, _ in old.children:
            P.by_digest(repo, sbom(c, "old-%s" % c.digest[7:19]),
                        "OCI referrer of a child of the old index: collectable")
            P.untagged[-1]["gc"] = "collect"
        new = build_index(2)
        P.image(repo, new, ["1"])
        P.untagged[-1]["gc"] = "collect"
        for c, _ in new.children:
            P.image(repo, signature(c, "child signature"), [sig_tag(c)])
            ref = sbom(c, "child-%s" % c.digest[7:19])
            P.by_digest(repo, ref, "OCI referrer of a child of signed/multi:1: kept")
            P.untagged[-1]["gc"] = "keep"
        P.image(repo, signature(new, "index signature"), [sig_tag(new)])
        att = sbom(new, "index")
        P.by_digest(repo, att, "OCI referrer of signed/multi:1: kept")
        P.untagged[-1]["gc"] = "keep"
        P.by_digest(repo, signature(att, "signature of the index SBOM"),
                    "OCI referrer of a referrer of signed/multi:1: kept")
        P.untagged[-1]["gc"] = "keep"

        # signed/list: a Docker manifest list whose children each have an
        # untagged OCI referrer.
        repo = "signed/list"
        kids = []
        for arch, variant in (("amd64", None), ("arm", "v7")):
            own = base_layer(rng, "List", "2.0", arch, binsize=900)
            kids.append((docker_image([own], arch=arch, variant=variant,
                                      created="2024-05-10T00:00:00Z"),
                         plat("linux", arch, variant)))
        lst = docker_list(kids)
        P.image(repo, lst, ["1"])
        for c, _ in lst.children:
            P.by_digest(repo, signature(c, "list child signature"),
                        "OCI referrer of a child of signed/list:1: kept")
            P.untagged[-1]["gc"] = "keep"

        # plain/app: v1 replaced v0 (untagged now, with an untagged
        # referrer); one blob uploaded that no manifest uses.
        repo = "plain/app"
        base = base_layer(rng, "Plain", "1.0", "x86_64", binsize=1500)
        v0 = docker_image([base, app_layer(rng, "app", "0.9")], created="2024-04-01T00:00:00Z")
        P.image(repo, v0, ["v1"])
        P.by_digest(repo, signature(v0, "signature of v0"),
                    "OCI referrer of the untagged plain/app v0: collectable")
        P.untagged[-1]["gc"] = "collect"
        v1 = docker_image([base, app_layer(rng, "app", "1.0")], created="2024-05-01T00:00:00Z")
        P.image(repo, v1, ["v1"])
        P.untagged[-1]["gc"] = "collect"
        P.blob(repo, make_layer({"tmp/orphan": (rng.randbytes(700), 0o644)}))
        return P

    return Recipe("gc", [unit], {}, "signed multi-arch images, referrers, untagged history")


def recipe_mirror(args, workdir):
    """A mirror's tree: repositories named after their upstream, as
    `skopeo sync --scoped` and `docker push myreg:5000/registry.k8s.io/pause`
    store them, beside short names that a host-dropping reader would
    confuse them with."""
    def unit():
        P = Plan()
        rng = random.Random("regkit-mirror")
        # registry.k8s.io/pause:3.9: Docker schema2, one layer
        pl = make_layer({"pause": (rng.randbytes(700), 0o755)})
        P.image("registry.k8s.io/pause", docker_image([pl], created="2023-06-14T00:00:00Z",
                                                      cmd=["/pause"]), ["3.9"])
        # quay.io/coreos/etcd:v3.5.9: OCI image, two layers
        e1 = make_layer({"usr/local/bin/etcd": (rng.randbytes(1500), 0o755)}, OCI_LAYER)
        e2 = make_layer({"usr/local/bin/etcdctl": (rng.randbytes(900), 0o755)}, OCI_LAYER)
        P.image("quay.io/coreos/etcd", oci_image([e1, e2], created="2023-05-11T00:00:00Z",
                                                 cmd=["/usr/local/bin/etcd"]), ["v3.5.9"])
        # docker.io/library/nginx:1.25: an OCI index of two images
        kids = []
        for arch, variant in (("amd64", None), ("arm64", "v8")):
            own = make_layer({"usr/sbin/nginx": (rng.randbytes(1100), 0o755),
                              "etc/arch": (("%s\n" % arch).encode(), 0o644)}, OCI_LAYER)
            kids.append((oci_image([own], arch=arch, variant=variant,
                                   created="2023-10-24T00:00:00Z", cmd=["nginx"]),
                         plat("linux", arch, variant)))
        P.image("docker.io/library/nginx", oci_index(kids), ["1.25"])
        # nginx:1.25 and :latest: another image under the short name
        nl = make_layer({"usr/sbin/nginx": (rng.randbytes(1000), 0o755),
                         "etc/nginx/FLAVOUR": (b"local build\n", 0o644)})
        P.image("nginx", docker_image([nl], created="2023-11-01T00:00:00Z", cmd=["nginx"]),
                ["1.25", "latest"])
        # library/busybox:1.36: reached as docker.io/busybox (host dropped,
        # then library/)
        bl = make_layer({"bin/busybox": (rng.randbytes(1200), 0o755)})
        P.image("library/busybox", docker_image([bl], created="2023-05-19T00:00:00Z",
                                                cmd=["sh"]), ["1.36"])
        # localhost/app:v1: podman's name for a local build
        al = app_layer(rng, "app", "1.0.0", binsize=800)
        P.image("localhost/app", docker_image([al], created="2024-01-02T00:00:00Z",
                                              cmd=["/app/app"]), ["v1"])
        return P

    return Recipe("mirror", [unit], {}, "a mirror: repositories named after their upstream")


def recipe_graph(args, workdir):
    """Manifest graphs at the walks' limits: indexes nested 8 levels deep
    (the most regkit follows) and 9 (one too many; the registry takes it),
    and a layer pushed under its sha512 digest (the registry stores the
    bytes under their sha256 and links the sha512 name to it)."""
    def unit():
        P = Plan()
        rng = random.Random("regkit-graph")
        repo = "nest/deep"
        for levels in (8, 9):
            l = make_layer({"bin/deep": (rng.randbytes(600), 0o755),
                            "etc/levels": (("%d\n" % levels).encode(), 0o644)}, OCI_LAYER)
            m = oci_image([l], created="2024-06-01T00:00:00Z", cmd=["/bin/deep"])
            top = oci_index([(m, plat("linux", "amd64"))])
            for _ in range(levels - 1):
                top = oci_index([(top, None)])
            P.image(repo, top, [str(levels)], copyable=False,
                    note="image manifest %d levels of indexes below the tag" % levels)
        layer = make_layer({"opt/sha512/data": (rng.randbytes(900), 0o644)}, OCI_LAYER)
        layer.canonical = layer.digest
        layer.digest = "sha512:" + hashlib.sha512(layer.data).hexdigest()
        img = oci_image([layer], created="2024-06-02T00:00:00Z", cmd=["/bin/true"])
        P.image("hash/sha512", img, ["1"], copyable=False,
                note="its layer is named by a sha512 digest; the registry serves it, skopeo "
                     "1.9 cannot copy it (it names what it writes by sha256)")
        return P

    return Recipe("graph", [unit], {}, "nested indexes at the depth limit, a sha512 layer")


RECIPES = {"sample": recipe_sample, "edge": recipe_edge, "bench": recipe_bench,
           "gc": recipe_gc, "mirror": recipe_mirror,
           "graph": recipe_graph}


# --------------------------------------------------------------------------
# the real registry

def yaml_dump(obj, indent=0):
    pad = "  " * indent
    out = []
    for k, v in obj.items():
        if isinstance(v, dict):
            out.append("%s%s:" % (pad, k))
            out.append(yaml_dump(v, indent + 1))
        elif isinstance(v, list):
            out.append("%s%s:" % (pad, k))
            for item in v:
                out.append("%s  - %s" % (pad, yaml_scalar(item)))
        else:
            out.append("%s%s: %s" % (pad, k, yaml_scalar(v)))
    return "\n".join(out)


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_RUNNING = []


def _stop_all():
    for r in list(_RUNNING):
        r.stop()


atexit.register(_stop_all)


def _on_signal(signum, frame):
    _stop_all()
    sys.exit(128 + signum)


class Registry:
    """`docker-registry serve` on 127.0.0.1:<free port> over root."""

    def __init__(self, root, workdir, extra=None, log_level="info", port=0):
        self.fixed_port = port
        self.root = os.path.abspath(root)
        self.workdir = workdir
        self.extra = extra or {}
        self.log_level = log_level
        self.proc = None
        self.port = None
        self.logpath = os.path.join(workdir, "registry.log")

    def config(self):
        cfg = {
            "version": "0.1",
            "log": {"level": self.log_level, "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": self.root},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": "127.0.0.1:%d" % self.port, "secret": "regkit-fixture-secret"},
        }
        return merge(cfg, self.extra)

    def start(self):
        if shutil.which("docker-registry") is None:
            die("docker-registry not found; run scripts/install-deps.sh")
        for attempt in range(5):
            self.port = self.fixed_port or free_port()
            cfgpath = os.path.join(self.workdir, "registry.yml")
            with open(cfgpath, "w") as f:
                f.write(yaml_dump(self.config()) + "\n")
            logf = open(self.logpath, "ab")
            self.proc = subprocess.Popen(["docker-registry", "serve", cfgpath],
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            logf.close()
            _RUNNING.append(self)
            deadline = time.time() + 30
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                    c.request("GET", "/v2/")
                    r = c.getresponse()
                    r.read()
                    c.close()
                    if r.status == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            self.stop()
            if "address already in use" not in self.log_tail():
                break
        raise RuntimeError("registry did not start\n" + self.log_tail())

    def log_tail(self, n=40):
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no registry log)"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self in _RUNNING:
            _RUNNING.remove(self)


def registry_version():
    try:
        out = subprocess.run(["docker-registry", "--version"], capture_output=True,
                             text=True).stdout.split()
        return "docker-registry " + (out[-1] if out else "?")
    except OSError:
        return "docker-registry ?"


class RegistryError(Exception):
    pass


class Client:
    """A tiny Registry HTTP API V2 client, one keep-alive connection a thread."""

    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def _conn(self, fresh=False):
        c = getattr(self.local, "conn", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.local.conn = c
        return c

    def request(self, method, path, body=None, headers=None, expect=(200,)):
        headers = dict(headers or {})
        if body is None and method in ("PUT", "POST", "PATCH"):
            headers.setdefault("Content-Length", "0")
        for attempt in range(3):
            c = self._conn(fresh=attempt > 0)
            try:
                c.request(method, path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                break
            except (OSError, http.client.HTTPException):
                if attempt == 2:
                    raise
                time.sleep(0.2)
        if r.status not in expect:
            raise RegistryError("%s %s -> %d %s" % (method, path, r.status,
                                                    data[:600].decode(errors="replace")))
        return r.status, r.headers, data

    @staticmethod
    def _loc(headers):
        u = urllib.parse.urlsplit(headers["Location"])
        return u.path + ("?" + u.query if u.query else "")

    @staticmethod
    def _with(path, **params):
        return path + ("&" if "?" in path else "?") + urllib.parse.urlencode(params)

    def start_upload(self, repo):
        _, h, _ = self.request("POST", "/v2/%s/blobs/uploads/" % repo, expect=(202,))
        return self._loc(h)

    def patch(self, loc, data, start):
        _, h, _ = self.request("PATCH", loc, body=data, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": "%d-%d" % (start, start + len(data) - 1),
            "Content-Length": str(len(data))}, expect=(202,))
        return self._loc(h)

    def upload(self, repo, blob, how="mono", chunk=16384):
        if how.startswith("mount:"):
            src = how[6:]
            st, h, _ = self.request("POST", self._with("/v2/%s/blobs/uploads/" % repo,
                                                       mount=blob.digest, **{"from": src}),
                                    expect=(201, 202))
            if st != 201:
                raise RegistryError("mount of %s from %s into %s was not done"
                                    % (blob.digest, src, repo))
            return
        loc = self.start_upload(repo)
        if how == "chunked":
            off = 0
            while off < blob.size:
                loc = self.patch(loc, blob.data[off:off + chunk], off)
                off += chunk
            body = None
        else:
            body = blob.data
        hdr = {"Content-Type": "application/octet-stream"}
        if body is not None:
            hdr["Content-Length"] = str(len(body))
        _, h, _ = self.request("PUT", self._with(loc, digest=blob.digest), body=body,
                               headers=hdr, expect=(201,))
        got = h.get("Docker-Content-Digest")
        # The registry answers with the canonical (sha256) digest of a blob
        # pushed under another algorithm's.
        if got != getattr(blob, "canonical", blob.digest):
            raise RegistryError("blob digest %s != %s" % (got, blob.digest))

    def put_manifest(self, repo, ref, m):
        _, h, _ = self.request("PUT", "/v2/%s/manifests/%s" % (repo, ref), body=m.push_data,
                               headers={"Content-Type": m.media_type,
                                        "Content-Length": str(len(m.push_data))},
                               expect=(201,))
        got = h.get("Docker-Content-Digest")
        if got != m.digest:
            raise RegistryError("manifest %s:%s digest %s != %s" % (repo, ref, got, m.digest))

    def delete_manifest(self, repo, digest):
        self.request("DELETE", "/v2/%s/manifests/%s" % (repo, digest), expect=(202,))


# --------------------------------------------------------------------------
# running a plan: over HTTP, or straight to disk

def run_http(client, plan):
    for op in plan.ops:
        if op[0] == "blob":
            _, repo, blob, how = op
            client.upload(repo, blob, how)
        else:
            _, repo, ref, m = op
            client.put_manifest(repo, ref, m)


class Disk:
    """Writes what Distribution 2.8's filesystem driver writes for the same
    requests (see registry/storage/paths.go, linkedblobstore.go, tagstore.go,
    blobwriter.go)."""

    def __init__(self, root):
        self.v2 = os.path.join(root, "docker", "registry", "v2")

    def blob_data(self, digest, data):
        hx = digest[7:]
        d = os.path.join(self.v2, "blobs", "sha256", hx[:2], hx)
        p = os.path.join(d, "data")
        if not os.path.exists(p):
            os.makedirs(d, exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)

    def link(self, path, digest):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(digest)

    def repo(self, repo):
        return os.path.join(self.v2, "repositories", repo)

    def run(self, plan):
        for op in plan.ops:
            if op[0] == "blob":
                _, repo, blob, how = op
                self.blob_data(blob.digest, blob.data)
                if not how.startswith("mount:"):
                    # POST .../blobs/uploads/ made _uploads/<uuid>; the commit
                    # removed <uuid> and left _uploads/ empty.
                    os.makedirs(os.path.join(self.repo(repo), "_uploads"), exist_ok=True)
                self.link(os.path.join(self.repo(repo), "_layers", "sha256",
                                       blob.digest[7:], "link"), blob.digest)
            else:
                _, repo, ref, m = op
                self.blob_data(m.digest, m.data)
                rp = self.repo(repo)
                hx = m.digest[7:]
                self.link(os.path.join(rp, "_manifests", "revisions", "sha256", hx, "link"),
                          m.digest)
                if not ref.startswith("sha256:"):
                    t = os.path.join(rp, "_manifests", "tags", ref)
                    self.link(os.path.join(t, "index", "sha256", hx, "link"), m.digest)
                    self.link(os.path.join(t, "current", "link"), m.digest)


# --------------------------------------------------------------------------
# build / generate

def make_recipe(name, args, workdir):
    if name not in RECIPES:
        die("unknown recipe %r (have: %s)" % (name, ", ".join(sorted(RECIPES))))
    return RECIPES[name](args, workdir)


def sidecar(recipe, plans, made_by, args):
    images, untagged = [], []
    for p in plans:
        images += p.images
        untagged += p.untagged
    cmd = "scripts/fixture.py %s %s" % (made_by, recipe.name)
    if recipe.name == "bench":
        cmd += " --tags %d" % args.tags
    return {
        "format": SIDECAR_FORMAT,
        "recipe": recipe.name,
        "description": recipe.description,
        "command": cmd + " OUT_ROOT",
        "made_by": made_by,
        "registry": registry_version() if made_by == "build" else None,
        "registry_config_extra": recipe.registry_extra,
        "tags": len(images),
        "images": images,
        "untagged": untagged,
    }


def write_json(path, obj):
    tmp = path + ".tmp-%d" % os.getpid()
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def prepare_out(out_root, force):
    out_root = os.path.abspath(out_root.rstrip("/"))
    if os.path.lexists(out_root):
        if not force:
            die("%s exists (use --force to replace it)" % out_root)
    tmp = "%s.tmp-%d" % (out_root, os.getpid())
    if os.path.lexists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    return out_root, tmp


def finish_out(out_root, tmp, side):
    if os.path.lexists(out_root):
        old = "%s.old-%d" % (out_root, os.getpid())
        os.rename(out_root, old)
        shutil.rmtree(old)
    os.rename(tmp, out_root)
    write_json(out_root + ".json", side)


def cmd_build(args):
    out_root, tmp = prepare_out(args.out_root, args.force)
    work = tempfile.mkdtemp(prefix="fixture-work-")
    t0 = time.time()
    ok = False
    reg = None
    try:
        recipe = make_recipe(args.recipe, args, work)
        reg = Registry(tmp, work, recipe.registry_extra,
                       log_level="warn" if args.recipe == "bench" else "info").start()
        log("registry on 127.0.0.1:%d, storage %s" % (reg.port, tmp))
        client = Client(reg.port)

        def do(unit):
            p = unit()
            run_http(client, p)
            return p

        if len(recipe.units) == 1 or args.threads <= 1:
            plans = [do(u) for u in recipe.units]
        else:
            with concurrent.futures.ThreadPoolExecutor(args.threads) as ex:
                plans = list(ex.map(do, recipe.units))
        reg.stop()
        side = sidecar(recipe, plans, "build", args)
        finish_out(out_root, tmp, side)
        ok = True
        nops = sum(len(p.ops) for p in plans)
        log("built %s: %d tags, %d pushes in %.1fs -> %s"
            % (args.recipe, side["tags"], nops, time.time() - t0, out_root))
    except Exception as e:
        log("build failed: %s" % e)
        if reg is not None:
            log("registry log tail:\n" + reg.log_tail())
        raise
    finally:
        if reg is not None:
            reg.stop()
        if not ok and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if args.keep_log and os.path.exists(os.path.join(work, "registry.log")):
            shutil.copy(os.path.join(work, "registry.log"), out_root + ".registry.log")
        shutil.rmtree(work, ignore_errors=True)
    return 0


def cmd_generate(args):
    out_root, tmp = prepare_out(args.out_root, args.force)
    work = tempfile.mkdtemp(prefix="fixture-work-")
    t0 = time.time()
    ok = False
    try:
        recipe = make_recipe(args.recipe, args, work)
        disk = Disk(tmp)
        plans = []
        for u in recipe.units:
            p = u()
            disk.run(p)
            plans.append(p)
        side = sidecar(recipe, plans, "generate", args)
        finish_out(out_root, tmp, side)
        ok = True
        log("generated %s: %d tags in %.1fs -> %s"
            % (args.recipe, side["tags"], time.time() - t0, out_root))
    finally:
        if not ok and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------
# compare

def listing(root):
    out = {}
    root = os.path.abspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in list(dirnames):
            p = os.path.join(dirpath, d)
            r = os.path.normpath(os.path.join(rel, d))
            if os.path.islink(p):
                out[r] = ("symlink", os.readlink(p))
                dirnames.remove(d)
            else:
                out[r] = ("dir", None)
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            r = os.path.normpath(os.path.join(rel, fn))
            if os.path.islink(p):
                out[r] = ("symlink", os.readlink(p))
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    out[r] = ("file", hashlib.sha256(f.read()).hexdigest())
            else:
                out[r] = ("other", None)
    return out


def cmd_compare(args):
    for r in (args.a, args.b):
        if not os.path.isdir(r):
            die("%s is not a folder" % r)
    a, b = listing(args.a), listing(args.b)
    if args.ignore_empty_dirs:
        # Git keeps no empty folders: compare files (their folders follow).
        a = {p: v for p, v in a.items() if v[0] != "dir"}
        b = {p: v for p, v in b.items() if v[0] != "dir"}
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    kind = sorted(p for p in set(a) & set(b) if a[p][0] != b[p][0])
    content = sorted(p for p in set(a) & set(b) if a[p][0] == b[p][0] and a[p] != b[p])
    if not (only_a or only_b or kind or content):
        print("equal: %d entries" % len(a))
        return 0
    lim = args.limit

    def show(title, items, fmt):
        if items:
            print("%s (%d):" % (title, len(items)))
            for p in items[:lim]:
                print("  " + fmt(p))
            if len(items) > lim:
                print("  ... %d more" % (len(items) - lim))

    show("only in %s" % args.a, only_a, lambda p: "%s [%s]" % (p, a[p][0]))
    show("only in %s" % args.b, only_b, lambda p: "%s [%s]" % (p, b[p][0]))
    show("type differs", kind, lambda p: "%s: %s vs %s" % (p, a[p][0], b[p][0]))
    show("content differs", content, lambda p: "%s" % p)
    print("different: %d only in A, %d only in B, %d type, %d content"
          % (len(only_a), len(only_b), len(kind), len(content)))
    return 1


# --------------------------------------------------------------------------
# damage

DAMAGE_KINDS = ["deleted-tag", "orphan-blob", "leftover-upload", "missing-blob",
                "missing-manifest", "bad-link", "not-json", "missing-child",
                "flipped-byte", "truncated-blob", "dangling-revision"]
API_KINDS = {"deleted-tag", "orphan-blob", "leftover-upload"}

# Targets preferred in the `sample` tree, so that `all` damages different
# images there; any other tree falls back to the first suitable image.
DAMAGE_PREFER = {
    "deleted-tag": ["team/app:v1"],
    "deleted-tag-folder": ["many/tags:t05"],
    "orphan-blob": ["library/alpine"],
    "leftover-upload": ["team/app"],
    "missing-blob": ["a/b/c/deep:1.0"],
    "missing-manifest": ["multi/oci-index:1"],
    "bad-link-layer": ["team/app:v2"],
    "bad-link-tag": ["many/tags:t07"],
    "not-json": ["library/alpine"],
    "missing-child": ["multi/docker-list:1"],
    "flipped-byte": ["artifacts/app:v1"],
    "truncated-blob": ["multi/nested:1"],
    "dangling-revision": ["many/tags"],
}


def node_reach(node, layers_only=False):
    """Digests a sidecar node reaches (manifests, configs, stored layers)."""
    out = set() if layers_only else {node["digest"]}
    if node.get("config"):
        out.add(node["config"]["digest"])
    for l in node.get("layers", []):
        if not l.get("urls"):
            out.add(l["digest"])
    for c in node.get("children", []):
        out |= node_reach(c, layers_only)
    return out


def node_layers(node):
    out = [l for l in node.get("layers", []) if not l.get("urls")]
    for c in node.get("children", []):
        out += node_layers(c)
    return out


class Unsuitable(Exception):
    pass


class Damager:
    def __init__(self, root, side):
        self.root = root
        self.v2 = os.path.join(root, "docker", "registry", "v2")
        self.side = side
        self.images = side["images"]
        self.entries = side["images"] + side.get("untagged", [])
        self.reach = [node_reach(e) for e in self.entries]
        self.used = set()       # top digests already damaged
        self.gone = set()       # refs whose tag folder is gone
        self.touched = set()    # blob digests already removed or changed
        self.records = []
        self.client = None

    def rel(self, p):
        return os.path.relpath(p, self.root)

    def blob_path(self, digest):
        hx = digest.split(":", 1)[1]
        return os.path.join(self.v2, "blobs", "sha256", hx[:2], hx, "data")

    def repo_path(self, repo):
        return os.path.join(self.v2, "repositories", repo)

    def affected(self, digest):
        return sorted({e["ref"] for e, r in zip(self.entries, self.reach) if digest in r})

    def pick(self, key, pred=lambda e: True, fresh=True):
        prefer = DAMAGE_PREFER.get(key, [])
        cands = [e for e in self.images if e["ref"] in prefer]
        cands += sorted((e for e in self.images if e["ref"] not in prefer),
                        key=lambda e: e["ref"])
        # first an image not damaged yet, then any
        for only_fresh in ((True, False) if fresh else (False,)):
            for e in cands:
                if e["ref"] in self.gone:
                    continue
                if only_fresh and e["digest"] in self.used:
                    continue
                if pred(e):
                    self.used.add(e["digest"])
                    return e
        raise Unsuitable("no image in this tree suits damage %s" % key)

    def pick_repo(self, key):
        repos = sorted({e["repo"] for e in self.images})
        for r in DAMAGE_PREFER.get(key, []):
            if r in repos:
                return r
        return repos[0]

    def unique_layer(self, e):
        """A stored layer of e that no image with another digest uses."""
        for l in node_layers(e):
            if l["digest"] in self.touched:
                continue
            users = {x["digest"] for x, r in zip(self.entries, self.reach)
                     if l["digest"] in r}
            if users == {e["digest"]}:
                return l
        return None

    def record(self, kind, **kw):
        r = {"kind": kind}
        r.update(kw)
        self.records.append(r)

    # -- through the registry API -------------------------------------
    def deleted_tag(self):
        def single_owner(e):
            if e["media_type"] in INDEX_TYPES or e["media_type"] == SCHEMA1_SIGNED:
                return False
            same = [x for x in self.images if x["repo"] == e["repo"]
                    and x["digest"] == e["digest"]]
            others = [x for x in self.images if x["repo"] == e["repo"]]
            return len(same) == 1 and len(others) > 1
        try:
            e = self.pick("deleted-tag", single_owner)
        except Unsuitable:
            e = self.pick("deleted-tag")
        tags = [x["ref"] for x in self.images if x["repo"] == e["repo"]
                and x["digest"] == e["digest"]]
        rp = self.repo_path(e["repo"])
        self.client.delete_manifest(e["repo"], e["digest"])
        self.gone |= set(tags)
        self.record("deleted-tag", how="DELETE /v2/%s/manifests/%s through the registry"
                    % (e["repo"], e["digest"]),
                    repo=e["repo"], digest=e["digest"], images=tags,
                    paths=[self.rel(os.path.join(rp, "_manifests", "revisions", "sha256",
                                                 e["digest"][7:], "link"))]
                    + [self.rel(os.path.join(rp, "_manifests", "tags", t.split(":", 1)[1]))
                       for t in tags],
                    detail="revision link and tag folder removed by the registry; the "
                           "manifest blob and its layers stay (garbage)")
        e2 = self.pick("deleted-tag-folder",
                       lambda x: x["repo"] != e["repo"] or x["digest"] != e["digest"])
        tdir = os.path.join(self.repo_path(e2["repo"]), "_manifests", "tags", e2["tag"])
        shutil.rmtree(tdir)
        self.gone.add(e2["ref"])
        self.record("deleted-tag", how="rm -r of the tag folder", repo=e2["repo"],
                    digest=e2["digest"], images=[e2["ref"]], paths=[self.rel(tdir)],
                    detail="tag folder removed by hand; the revision link stays")

    def orphan_blob(self):
        repo = self.pick_repo("orphan-blob")
        rng = random.Random("regkit-orphan")
        b = make_layer({"orphan/data.bin": (rng.randbytes(1500), 0o644)})
        self.client.upload(repo, b)
        self.record("orphan-blob", how="blob upload (POST + PUT) with no manifest using it",
                    repo=repo, digest=b.digest, images=[],
                    paths=[self.rel(self.blob_path(b.digest)),
                           self.rel(os.path.join(self.repo_path(repo), "_layers", "sha256",
                                                 b.digest[7:], "link"))])

    def leftover_upload(self):
        repo = self.pick_repo("leftover-upload")
        rng = random.Random("regkit-leftover")
        loc = self.client.start_upload(repo)
        data = rng.randbytes(3000)
        self.client.patch(loc, data, 0)
        uuid = urllib.parse.urlsplit(loc).path.rstrip("/").rsplit("/", 1)[1]
        up = os.path.join(self.repo_path(repo), "_uploads", uuid)
        self.record("leftover-upload", how="POST + one PATCH of %d bytes, never finished"
                    % len(data), repo=repo, uuid=uuid, images=[],
                    paths=[self.rel(up)])

    # -- by hand on disk ----------------------------------------------
    def missing_blob(self):
        e = self.pick("missing-blob", lambda x: self.unique_layer(x) is not None)
        l = self.unique_layer(e)
        p = self.blob_path(l["digest"])
        self.touched.add(l["digest"])
        os.remove(p)
        self.record("missing-blob", how="rm of a layer's data file", repo=e["repo"],
                    digest=l["digest"], images=self.affected(l["digest"]),
                    paths=[self.rel(p)])

    def missing_manifest(self):
        e = self.pick("missing-manifest", lambda x: x["digest"] not in self.touched)
        self.touched.add(e["digest"])
        p = self.blob_path(e["digest"])
        os.remove(p)
        self.record("missing-manifest", how="rm of a tagged manifest's blob data",
                    repo=e["repo"], digest=e["digest"], images=self.affected(e["digest"]),
                    paths=[self.rel(p)])

    def bad_link(self):
        e = self.pick("bad-link-layer", lambda x: x.get("config") is not None
                      and len(self.affected(x["config"]["digest"])) ==
                      len([y for y in self.images if y["digest"] == x["digest"]]))
        cfg = e["config"]["digest"]
        p = os.path.join(self.repo_path(e["repo"]), "_layers", "sha256", cfg[7:], "link")
        with open(p, "w") as f:
            f.write("sha256:xyz")
        self.record("bad-link", how="_layers link of a config overwritten", repo=e["repo"],
                    digest=cfg, images=self.affected(cfg), paths=[self.rel(p)],
                    content="sha256:xyz")
        e2 = self.pick("bad-link-tag", lambda x: x["media_type"] != SCHEMA1_SIGNED)
        p2 = os.path.join(self.repo_path(e2["repo"]), "_manifests", "tags", e2["tag"],
                          "current", "link")
        with open(p2, "w") as f:
            f.write(e2["digest"] + "\n")
        self.record("bad-link", how="tag current link given a trailing newline",
                    repo=e2["repo"], digest=e2["digest"], images=[e2["ref"]],
                    paths=[self.rel(p2)], content=e2["digest"] + "\n")

    def not_json(self):
        repo = self.pick_repo("not-json")
        data = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n")
        dg = "sha256:" + sha256hex(data)
        tag = "broken"
        bp = self.blob_path(dg)
        os.makedirs(os.path.dirname(bp), exist_ok=True)
        with open(bp, "wb") as f:
            f.write(data)
        rp = self.repo_path(repo)
        paths = [bp]
        for p in (os.path.join(rp, "_manifests", "revisions", "sha256", dg[7:], "link"),
                  os.path.join(rp, "_manifests", "tags", tag, "index", "sha256", dg[7:], "link"),
                  os.path.join(rp, "_manifests", "tags", tag, "current", "link")):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(dg)
            paths.append(p)
        self.record("not-json", how="blob of non-JSON bytes at its true sha256 path, with "
                    "revision, tag index and tag current links to it", repo=repo,
                    digest=dg, images=["%s:%s" % (repo, tag)],
                    paths=[self.rel(p) for p in paths])

    def missing_child(self):
        e = self.pick("missing-child", lambda x: len(x.get("children", [])) > 0
                      and x["digest"] not in self.touched
                      and x["children"][-1]["digest"] not in self.touched)
        child = e["children"][-1]
        self.touched.add(child["digest"])
        p = self.blob_path(child["digest"])
        os.remove(p)
        self.record("missing-child", how="rm of one child manifest's blob data",
                    repo=e["repo"], digest=child["digest"], platform=child.get("platform"),
                    images=self.affected(child["digest"]), paths=[self.rel(p)])

    def flipped_byte(self):
        e = self.pick("flipped-byte", lambda x: self.unique_layer(x) is not None)
        l = self.unique_layer(e)
        p = self.blob_path(l["digest"])
        self.touched.add(l["digest"])
        with open(p, "r+b") as f:
            data = f.read()
            off = len(data) // 2
            f.seek(off)
            f.write(bytes([data[off] ^ 0xFF]))
        self.record("flipped-byte", how="one byte XOR 0xff", repo=e["repo"],
                    digest=l["digest"], offset=off, images=self.affected(l["digest"]),
                    paths=[self.rel(p)])

    def truncated_blob(self):
        e = self.pick("truncated-blob", lambda x: self.unique_layer(x) is not None)
        l = self.unique_layer(e)
        p = self.blob_path(l["digest"])
        self.touched.add(l["digest"])
        size = os.path.getsize(p)
        with open(p, "r+b") as f:
            f.truncate(size // 2)
        self.record("truncated-blob", how="cut to half its size", repo=e["repo"],
                    digest=l["digest"], size=size, truncated_to=size // 2,
                    images=self.affected(l["digest"]), paths=[self.rel(p)])

    def dangling_revision(self):
        repo = self.pick_repo("dangling-revision")
        dg = "sha256:" + sha256hex(b"regkit dangling revision: these bytes are stored nowhere")
        p = os.path.join(self.repo_path(repo), "_manifests", "revisions", "sha256", dg[7:],
                         "link")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(dg)
        self.record("dangling-revision", how="revision link to a digest with no blob",
                    repo=repo, digest=dg, images=[], paths=[self.rel(p)])


def copy_tree(src, dst):
    subprocess.run(["cp", "-a", src, dst], check=True)


def load_sidecar(root):
    p = os.path.abspath(root.rstrip("/")) + ".json"
    if not os.path.exists(p):
        die("no sidecar %s (trees made by fixture.py build/generate have one)" % p)
    with open(p) as f:
        return json.load(f)


def cmd_damage(args):
    kinds = DAMAGE_KINDS if args.kind == "all" else [args.kind]
    if args.kind != "all" and args.kind not in DAMAGE_KINDS:
        die("unknown damage %r (have: %s, all)" % (args.kind, ", ".join(DAMAGE_KINDS)))
    src = os.path.abspath(args.src_root.rstrip("/"))
    side = load_sidecar(src)
    if not os.path.isdir(os.path.join(src, "docker", "registry", "v2")):
        die("%s holds no docker/registry/v2" % src)
    out_root, tmp = prepare_out(args.out_root, args.force)
    os.rmdir(tmp)
    work = tempfile.mkdtemp(prefix="fixture-work-")
    ok = False
    reg = None
    try:
        copy_tree(src, tmp)
        d = Damager(tmp, side)
        api = [k for k in kinds if k in API_KINDS]
        if api:
            reg = Registry(tmp, work, side.get("registry_config_extra")).start()
            d.client = Client(reg.port)
        skipped = []

        def run(k):
            try:
                getattr(d, k.replace("-", "_"))()
            except Unsuitable as e:
                if args.kind != "all":
                    raise
                skipped.append({"kind": k, "why": str(e)})
                log("skipped %s: %s" % (k, e))

        if api:
            for k in api:
                run(k)
            reg.stop()
        for k in kinds:
            if k not in API_KINDS:
                run(k)
        out = {"format": SIDECAR_FORMAT, "kind": args.kind,
               "source": os.path.basename(src), "source_recipe": side.get("recipe"),
               "registry_config_extra": side.get("registry_config_extra", {}),
               "damages": d.records, "skipped": skipped}
        finish_out(out_root, tmp, out)
        ok = True
        for r in d.records:
            log("%s: %s %s -> %s" % (r["kind"], r.get("repo"), r.get("digest", "")[:19],
                                     ", ".join(r["images"]) or "(no image)"))
    except Unsuitable as e:
        die(str(e))
    except Exception:
        if reg is not None:
            log("registry log tail:\n" + reg.log_tail())
        raise
    finally:
        if reg is not None:
            reg.stop()
        if not ok and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------
# verify with skopeo against the real registry

def manifest_digest(raw, media_type=None):
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj.get("schemaVersion") == 1 and "signatures" in obj:
        return "sha256:" + sha256hex(schema1_payload(raw))
    return "sha256:" + sha256hex(raw)


def skopeo(*a, timeout=300):
    return subprocess.run(["skopeo", "--insecure-policy"] + list(a), capture_output=True,
                          timeout=timeout)


def cmd_verify(args):
    root = os.path.abspath(args.root.rstrip("/"))
    side = load_sidecar(root)
    if shutil.which("skopeo") is None:
        die("skopeo not found; run scripts/install-deps.sh")
    if not os.path.isdir(os.path.join(root, "docker", "registry", "v2")):
        die("%s holds no docker/registry/v2" % root)
    work = tempfile.mkdtemp(prefix="fixture-verify-")
    copy = os.path.join(work, "root")
    passed = failed = 0
    reg = None

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
            if args.verbose:
                print("ok   " + what)
        else:
            failed += 1
            print("FAIL " + what)

    try:
        copy_tree(root, copy)
        reg = Registry(copy, work, side.get("registry_config_extra")).start()
        host = "127.0.0.1:%d" % reg.port
        images = side["images"]
        if args.sample and args.sample < len(images):
            images = random.Random(0).sample(images, args.sample)
        for i, e in enumerate(images):
            ref = "docker://%s/%s:%s" % (host, e["repo"], e["tag"])
            r = skopeo("inspect", "--raw", "--tls-verify=false", ref)
            got = manifest_digest(r.stdout) if r.returncode == 0 else r.stderr.decode()[-300:]
            check(got == e["digest"], "inspect --raw %s: %s" % (e["ref"], got))

            def kids(node):
                for c in node.get("children", []):
                    cref = "docker://%s/%s@%s" % (host, e["repo"], c["digest"])
                    rr = skopeo("inspect", "--raw", "--tls-verify=false", cref)
                    g = manifest_digest(rr.stdout) if rr.returncode == 0 else "error"
                    check(g == c["digest"], "inspect --raw %s@%s (%s)"
                          % (e["repo"], c["digest"], c.get("platform")))
                    kids(c)
            kids(e)
            out = os.path.join(work, "dir%d" % i)
            r = skopeo("copy", "--all", "--src-tls-verify=false", ref, "dir:" + out)
            if e.get("copyable"):
                ok = r.returncode == 0
                detail = "" if ok else r.stderr.decode()[-400:]
                if ok:
                    with open(os.path.join(out, "manifest.json"), "rb") as f:
                        top = manifest_digest(f.read())
                    files = set(os.listdir(out))
                    need = {x[7:] for x in node_reach(e, layers_only=True)}
                    need |= {c["digest"][7:] + ".manifest.json" for c in e["children"]}
                    missing = need - files
                    ok = top == e["digest"] and not missing
                    detail = "manifest %s, missing %s" % (top, sorted(missing))
                check(ok, "skopeo copy --all %s -> dir: %s" % (e["ref"], detail))
            else:
                check(r.returncode != 0, "skopeo copy %s refused as expected (%s)"
                      % (e["ref"], r.stderr.decode().strip().splitlines()[-1:]
                         if r.returncode else "it copied"))
            shutil.rmtree(out, ignore_errors=True)
        for e in side.get("untagged", []) if not args.sample else []:
            ref = "docker://%s/%s" % (host, e["ref"])
            r = skopeo("inspect", "--raw", "--tls-verify=false", ref)
            got = manifest_digest(r.stdout) if r.returncode == 0 else "error"
            check(got == e["digest"], "inspect --raw %s (untagged)" % e["ref"])
    finally:
        if reg is not None:
            reg.stop()
        if args.keep:
            log("kept " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("verify: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def cmd_serve(args):
    root = os.path.abspath(args.root.rstrip("/"))
    p = root + ".json"
    extra = {}
    if os.path.exists(p):
        with open(p) as f:
            extra = json.load(f).get("registry_config_extra", {})
    work = tempfile.mkdtemp(prefix="fixture-serve-")
    reg = Registry(root, work, extra, port=args.port)
    try:
        reg.start()
        print("serving %s on 127.0.0.1:%d (log %s); Ctrl-C to stop"
              % (root, reg.port, reg.logpath), flush=True)
        while reg.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="fixture.py", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    for name, helptext in (("build", "push a recipe to the real registry"),
                           ("generate", "write a recipe's tree directly (no registry)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("recipe", metavar="RECIPE", help="sample | edge | bench | gc")
        p.add_argument("out_root", metavar="OUT_ROOT")
        p.add_argument("--tags", type=int, default=5000, help="bench: number of tags")
        p.add_argument("--force", action="store_true", help="replace OUT_ROOT if it exists")
        if name == "build":
            p.add_argument("--threads", type=int, default=8, help="parallel pushers (bench)")
            p.add_argument("--keep-log", action="store_true",
                           help="keep the registry log as OUT_ROOT.registry.log")
    p = sub.add_parser("compare", help="compare two trees exactly")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--limit", type=int, default=50, help="entries shown per category")
    p.add_argument("--ignore-empty-dirs", action="store_true",
                   help="compare files only (a git checkout has no empty folders)")
    p = sub.add_parser("damage", help="copy a tree and damage it")
    p.add_argument("kind", metavar="KIND", help=" | ".join(DAMAGE_KINDS + ["all"]))
    p.add_argument("src_root", metavar="SRC_ROOT")
    p.add_argument("out_root", metavar="OUT_ROOT")
    p.add_argument("--force", action="store_true")
    p = sub.add_parser("verify", help="skopeo-check a tree against its sidecar")
    p.add_argument("root", metavar="ROOT")
    p.add_argument("--sample", type=int, default=0, help="check only K random tags")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("-v", "--verbose", action="store_true")
    p = sub.add_parser("serve", help="run the real registry on ROOT in the foreground")
    p.add_argument("root", metavar="ROOT")
    p.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    return {"build": cmd_build, "generate": cmd_generate, "compare": cmd_compare,
            "damage": cmd_damage, "verify": cmd_verify, "serve": cmd_serve}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
