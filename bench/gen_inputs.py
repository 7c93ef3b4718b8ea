#!/usr/bin/env python3
"""Generate the benign benchmark inputs for bench/pickle_peers.sh.

    python3 bench/gen_inputs.py [OUT_DIR] [--storages N] [--storage-mib M]

Writes into OUT_DIR (default: bench/out):

  a_range_3m.pkl        pickle.dumps(list(range(3_000_000)), protocol=4)  (~15 MB)
  b_state_dict_1g.pt    a PyTorch-zip-format state dict (torch.save layout, torch 2.x),
                        N storages (default 64) of M MiB (default 16) of seeded
                        pseudo-random bytes each, ~1 GiB in total.

torch is NOT needed: (b) is built by hand.  The zip is ZIP_STORED with the entries
torch.save writes (archive/data.pkl, .format_version, .storage_alignment, byteorder,
data/0..N-1, version, .data/serialization_id), storage records 64-byte aligned via an
"FB" padding extra field like PyTorchFileWriter does, and data.pkl is a protocol-2
pickle shaped exactly like torch's: collections.OrderedDict + REDUCE, one
torch._utils._rebuild_tensor_v2 call per tensor whose storage comes from BINPERSID of
('storage', torch.FloatStorage, '<key>', 'cpu', numel), then the `_metadata` BUILD.
Storages are written streaming in 1 MiB chunks, so the generator stays low-memory.

Both files are deterministic (fixed seed and zip timestamps) and benign: a scanner
that reports anything on them has a false positive.  The script sanity-checks (b)
by parsing data.pkl with a stub Unpickler (no torch, no real globals resolved).
"""

import argparse
import io
import os
import pickle
import random
import struct
import sys
import zipfile

CHUNK = 1 << 20
FIXED_DATE = (2024, 1, 1, 0, 0, 0)


def gen_a(path):
    data = pickle.dumps(list(range(3_000_000)), protocol=4)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


# --- hand-built torch state-dict pickle (protocol 2, as torch.save writes it) ---------


class _Pickle:
    """Tiny opcode writer with memo bookkeeping (BINPUT after every object, like
    the C pickler does for protocol 2)."""

    def __init__(self):
        self.b = io.BytesIO()
        self.memo = 0

    def op(self, raw):
        self.b.write(raw)

    def put(self):
        n = self.memo
        self.memo += 1
        self.op(b"q" + bytes([n]) if n < 256 else b"r" + struct.pack("<I", n))
        return n

    def get(self, n):
        self.op(b"h" + bytes([n]) if n < 256 else b"j" + struct.pack("<I", n))

    def glob(self, module, name):
        self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n")
        return self.put()

    def str(self, s):
        e = s.encode()
        self.op(b"X" + struct.pack("<I", len(e)) + e)
        return self.put()

    def int(self, v):
        if 0 <= v < 256:
            self.op(b"K" + bytes([v]))
        elif 0 <= v < 65536:
            self.op(b"M" + struct.pack("<H", v))
        else:
            self.op(b"J" + struct.pack("<i", v))


def state_dict_pickle(tensors):
    """tensors: list of (key, storage_key, shape). All float32, contiguous, cpu."""
    p = _Pickle()
    p.op(b"\x80\x02")
    od = p.glob("collections", "OrderedDict")
    p.op(b")R")
    p.put()
    p.op(b"(")  # MARK for SETITEMS
    rebuild = storage_tag = float_storage = cpu = None
    for key, skey, shape in tensors:
        numel = 1
        for d in shape:
            numel *= d
        p.str(key)
        if rebuild is None:
            rebuild = p.glob("torch._utils", "_rebuild_tensor_v2")
        else:
            p.get(rebuild)
        p.op(b"((")  # MARK args, MARK persistent-id tuple
        if storage_tag is None:
            storage_tag = p.str("storage")
            float_storage = p.glob("torch", "FloatStorage")
        else:
            p.get(storage_tag)
            p.get(float_storage)
        p.str(skey)
        if cpu is None:
            cpu = p.str("cpu")
        else:
            p.get(cpu)
        p.int(numel)
        p.op(b"t")
        p.put()
        p.op(b"Q")  # BINPERSID
        p.int(0)  # storage_offset
        for d in shape:
            p.int(d)
        p.op(b"\x86" if len(shape) == 2 else b"\x85")
        p.put()
        stride = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            stride[i] = stride[i + 1] * shape[i + 1]
        for s in stride:
            p.int(s)
        p.op(b"\x86" if len(shape) == 2 else b"\x85")
        p.put()
        p.op(b"\x89")  # requires_grad=False
        p.get(od)  # backward_hooks = OrderedDict()
        p.op(b")R")
        p.put()
        p.op(b"t")
        p.put()
        p.op(b"R")
        p.put()
    p.op(b"u")  # SETITEMS
    # state_dict._metadata = OrderedDict({'': {'version': 1}, 'layers.i': {'version': 1}, ...})
    p.op(b"}")
    p.put()
    p.str("_metadata")
    p.get(od)
    p.op(b")R")
    p.put()
    p.op(b"(")
    ver = None
    prefixes = [""] + sorted({k.rsplit(".", 1)[0] for k, _, _ in tensors})
    for pre in prefixes:
        p.str(pre)
        p.op(b"}")
        p.put()
        if ver is None:
            ver = p.str("version")
        else:
            p.get(ver)
        p.int(1)
        p.op(b"s")
    p.op(b"u")
    p.op(b"s")
    p.op(b"b")  # BUILD
    p.op(b".")
    return p.b.getvalue()


def _check_pickle(data, tensors):
    """Parse data.pkl with stubs (no code runs: globals map to local stand-ins)."""
    seen = []

    class Stub:
        def __init__(self, name):
            self.name = name

        def __call__(self, *a):
            return (self.name, a)

    class U(pickle.Unpickler):
        def find_class(self, module, name):
            allowed = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
                       ("torch", "FloatStorage")}
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
            if name == "OrderedDict":
                import collections
                return collections.OrderedDict
            return Stub(f"{module}.{name}")

        def persistent_load(self, pid):
            seen.append(pid)
            return ("storage", pid[2])

    sd = U(io.BytesIO(data)).load()
    assert list(sd) == [k for k, _, _ in tensors], "keys mismatch"
    assert len(seen) == len(tensors)
    for pid, (_, skey, shape) in zip(seen, tensors):
        assert pid[0] == "storage" and pid[2] == skey and pid[3] == "cpu"
    assert "" in sd._metadata


def _aligned_info(zf, name, size):
    """ZipInfo whose data starts on a 64-byte boundary (PyTorchFileWriter's 'FB' pad)."""
    zi = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    zi.compress_type = zipfile.ZIP_STORED
    zi.file_size = size
    off = zf.fp.tell() + 30 + len(name.encode())
    pad = (-(off + 4)) % 64
    zi.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    return zi


def _write_entry(zf, name, data):
    zi = _aligned_info(zf, name, len(data))
    with zf.open(zi, "w") as w:
        w.write(data)


def gen_b(path, n_storages, storage_mib, seed=20240101):
    shape = (2048, storage_mib * 1024 * 1024 // 4 // 2048)
    nbytes = shape[0] * shape[1] * 4
    tensors = [(f"layers.{i}.weight", str(i), shape) for i in range(n_storages)]
    data_pkl = state_dict_pickle(tensors)
    _check_pickle(data_pkl, tensors)
    rng = random.Random(seed)
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        _write_entry(zf, "archive/data.pkl", data_pkl)
        _write_entry(zf, "archive/.format_version", b"1")
        _write_entry(zf, "archive/.storage_alignment", b"64")
        _write_entry(zf, "archive/byteorder", b"little")
        for i in range(n_storages):
            zi = _aligned_info(zf, f"archive/data/{i}", nbytes)
            with zf.open(zi, "w") as w:
                left = nbytes
                while left:
                    n = min(CHUNK, left)
                    w.write(rng.randbytes(n))
                    left -= n
        _write_entry(zf, "archive/version", b"3\n")
        _write_entry(zf, "archive/.data/serialization_id",
                     str(rng.getrandbits(128)).rjust(40, "0").encode())
    os.replace(tmp, path)
    return os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("out", nargs="?", default=os.path.join(here, "out"))
    ap.add_argument("--storages", type=int, default=64)
    ap.add_argument("--storage-mib", type=int, default=16)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    a = os.path.join(args.out, "a_range_3m.pkl")
    b = os.path.join(args.out, "b_state_dict_1g.pt")
    print(f"{a}: {gen_a(a)} bytes", file=sys.stderr)
    print(f"{b}: {gen_b(b, args.storages, args.storage_mib)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
