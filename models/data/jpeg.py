"""A small baseline-JPEG codec in numpy (used only when Pillow is not installed).

:func:`decode` reads baseline / extended-sequential Huffman JPEGs (SOF0/SOF1):
8-bit samples, 1 or 3 components, any 1-2 sampling factors (4:4:4, 4:2:2,
4:2:0), restart intervals, arbitrary DHT/DQT tables.  Progressive and
arithmetic-coded files raise :class:`JpegError` (install Pillow for those).
Tiny ImageNet's files are baseline JPEGs.  Pure Python entropy decoding:
roughly milliseconds per 64x64 image; enough for tests and small subsets,
while :func:`aidi.models.data.read_image` prefers Pillow when present.

:func:`encode` writes baseline JPEGs (grayscale or YCbCr 4:4:4 / 4:2:0) with
a given flat quantiser and fixed-length Huffman codes (valid, not compact);
the tests use it to make Tiny-ImageNet-like folders without Pillow.
"""

from __future__ import annotations

import struct

import numpy as np


class JpegError(ValueError):
    """A file this decoder cannot read."""


ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
    21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60,
    61, 54, 47, 55, 62, 63], dtype=np.int64)  # zig-zag index -> natural (row-major) index


def _dct_matrix() -> np.ndarray:
    c = np.zeros((8, 8))
    for u in range(8):
        a = np.sqrt(1 / 8) if u == 0 else np.sqrt(2 / 8)
        for x in range(8):
            c[u, x] = a * np.cos((2 * x + 1) * u * np.pi / 16)
    return c


_C = _dct_matrix()


def _huff_lookup(counts, symbols) -> dict:
    """Canonical Huffman: {(length, code): symbol}."""
    table, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            table[(length, code)] = symbols[k]
            code += 1
            k += 1
        code <<= 1
    return table


class _Bits:
    def __init__(self, data: bytes, pos: int):
        self.data, self.pos, self.acc, self.n = data, pos, 0, 0

    def bit(self) -> int:
        if self.n == 0:
            if self.pos >= len(self.data):
                raise JpegError("truncated entropy-coded data")
            b = self.data[self.pos]
            self.pos += 1
            if b == 0xFF:
                nxt = self.data[self.pos] if self.pos < len(self.data) else 0
                if nxt == 0x00:
                    self.pos += 1
                elif 0xD0 <= nxt <= 0xD7:
                    raise JpegError("unexpected restart marker")
                else:
                    b = 0  # a marker: feed zeros (files padded this way decode as libjpeg does)
                    self.pos -= 1
            self.acc, self.n = b, 8
        self.n -= 1
        return (self.acc >> self.n) & 1

    def bits(self, s: int) -> int:
        v = 0
        for _ in range(s):
            v = (v << 1) | self.bit()
        return v

    def decode(self, table: dict) -> int:
        code = 0
        for length in range(1, 17):
            code = (code << 1) | self.bit()
            sym = table.get((length, code))
            if sym is not None:
                return sym
        raise JpegError("bad Huffman code")

    def restart(self) -> None:
        self.n = 0
        while self.pos + 1 < len(self.data) and not (self.data[self.pos] == 0xFF and 0xD0 <= self.data[self.pos + 1] <= 0xD7):
            self.pos += 1
        self.pos += 2


def _extend(v: int, s: int) -> int:
    return v - (1 << s) + 1 if s and v < (1 << (s - 1)) else v


def decode(data: bytes) -> np.ndarray:
    """Decode a baseline JPEG to uint8 ``(H, W)`` (grayscale) or ``(H, W, 3)`` RGB."""
    if data[:2] != b"\xff\xd8":
        raise JpegError("not a JPEG file (no SOI marker)")
    qt: dict[int, np.ndarray] = {}
    dc_t: dict[int, dict] = {}
    ac_t: dict[int, dict] = {}
    frame = None
    restart = 0
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise JpegError(f"expected a marker at byte {pos}")
        marker = data[pos + 1]
        pos += 2
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01 or marker == 0xFF:
            if marker == 0xFF:
                pos -= 1
            continue
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        seg = data[pos + 2:pos + length]
        pos += length
        if marker == 0xDB:
            i = 0
            while i < len(seg):
                pq, tq = seg[i] >> 4, seg[i] & 15
                n = 128 if pq else 64
                vals = np.frombuffer(seg[i + 1:i + 1 + n], dtype=">u2" if pq else np.uint8).astype(np.int64)
                qt[tq] = vals
                i += 1 + n
        elif marker == 0xC4:
            i = 0
            while i < len(seg):
                tc, th = seg[i] >> 4, seg[i] & 15
                counts = list(seg[i + 1:i + 17])
                n = sum(counts)
                (dc_t if tc == 0 else ac_t)[th] = _huff_lookup(counts, list(seg[i + 17:i + 17 + n]))
                i += 17 + n
        elif marker in (0xC0, 0xC1):
            prec, h, w, nf = seg[0], *struct.unpack(">HH", seg[1:5]), seg[5]
            if prec != 8:
                raise JpegError(f"{prec}-bit samples are not supported")
            comps = [(seg[6 + 3 * k], seg[7 + 3 * k] >> 4, seg[7 + 3 * k] & 15, seg[8 + 3 * k]) for k in range(nf)]
            frame = (h, w, comps)
        elif marker in (0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            raise JpegError(f"unsupported JPEG process (SOF{marker - 0xC0}): only baseline; install Pillow")
        elif marker == 0xDD:
            (restart,) = struct.unpack(">H", seg[:2])
        elif marker == 0xDA:
            if frame is None:
                raise JpegError("scan before frame header")
            ns = seg[0]
            sel = {seg[1 + 2 * k]: (seg[2 + 2 * k] >> 4, seg[2 + 2 * k] & 15) for k in range(ns)}
            pos, planes = _scan(data, pos, frame, sel, qt, dc_t, ac_t, restart)
            return _to_image(frame, planes)
    raise JpegError("no scan found")


def _scan(data, pos, frame, sel, qt, dc_t, ac_t, restart):
    h, w, comps = frame
    hmax = max(c[1] for c in comps)
    vmax = max(c[2] for c in comps)
    mcux = -(-w // (8 * hmax))
    mcuy = -(-h // (8 * vmax))
    coefs = [np.zeros((mcuy * c[2], mcux * c[1], 64), dtype=np.float64) for c in comps]
    pred = [0] * len(comps)
    bits = _Bits(data, pos)
    n = 0
    for my in range(mcuy):
        for mx in range(mcux):
            if restart and n and n % restart == 0:
                bits.restart()
                pred = [0] * len(comps)
            n += 1
            for ci, (cid, hs, vs, tq) in enumerate(comps):
                td, ta = sel[cid]
                q = qt[tq]
                for by in range(vs):
                    for bx in range(hs):
                        blk = np.zeros(64)
                        t = bits.decode(dc_t[td])
                        pred[ci] += _extend(bits.bits(t), t)
                        blk[0] = pred[ci] * q[0]
                        k = 1
                        while k < 64:
                            rs = bits.decode(ac_t[ta])
                            r, s = rs >> 4, rs & 15
                            if s == 0:
                                if r != 15:
                                    break
                                k += 16
                                continue
                            k += r
                            if k > 63:
                                raise JpegError("AC coefficient index out of range")
                            blk[ZIGZAG[k]] = _extend(bits.bits(s), s) * q[k]
                            k += 1
                        coefs[ci][my * vs + by, mx * hs + bx] = blk
    planes = []
    for (cid, hs, vs, tq), cf in zip(comps, coefs):
        blocks = cf.reshape(cf.shape[0], cf.shape[1], 8, 8)
        pix = np.einsum("ux,abuv,vy->abxy", _C, blocks, _C) + 128.0
        img = pix.transpose(0, 2, 1, 3).reshape(cf.shape[0] * 8, cf.shape[1] * 8)
        img = np.repeat(np.repeat(img, vmax // vs, axis=0), hmax // hs, axis=1)
        planes.append(img[:h, :w])
    return bits.pos, planes


def _to_image(frame, planes) -> np.ndarray:
    if len(planes) == 1:
        return np.clip(np.round(planes[0]), 0, 255).astype(np.uint8)
    if len(planes) != 3:
        raise JpegError(f"{len(planes)} components are not supported")
    y, cb, cr = (p.astype(np.float64) for p in planes)
    rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                    y + 1.772 * (cb - 128)], axis=-1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- encoder (tests)
_DC_SYMS = list(range(12))
_AC_SYMS = [0x00, 0xF0] + [(r << 4) | s for r in range(16) for s in range(1, 11)]


def _fixed_table(symbols, length):
    counts = [0] * 16
    counts[length - 1] = len(symbols)
    codes = {sym: (length, i) for i, sym in enumerate(symbols)}
    return counts, codes


class _Writer:
    def __init__(self):
        self.out = bytearray()
        self.acc, self.n = 0, 0

    def put(self, length: int, value: int) -> None:
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc, self.n = 0, 0

    def flush(self) -> bytes:
        if self.n:
            self.put(8 - self.n, (1 << (8 - self.n)) - 1)
        return bytes(self.out)


def _category(v: int) -> tuple[int, int]:
    a = abs(v)
    s = a.bit_length()
    return s, (v if v >= 0 else v + (1 << s) - 1)


def encode(img: np.ndarray, q: int = 2, subsampling: str = "444") -> bytes:
    """Encode uint8 ``(H, W)`` or ``(H, W, 3)`` RGB as a baseline JPEG (flat quantiser ``q``)."""
    img = np.asarray(img, dtype=np.float64)
    gray = img.ndim == 2
    h, w = img.shape[:2]
    if gray:
        planes, samp = [img], [(1, 1)]
    else:
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
        cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
        planes, samp = [y, cb, cr], ([(2, 2), (1, 1), (1, 1)] if subsampling == "420" else [(1, 1)] * 3)
    hmax, vmax = samp[0]
    mw, mh = 8 * hmax, 8 * vmax
    H, W = -(-h // mh) * mh, -(-w // mw) * mw
    comp_blocks = []
    for p, (hs, vs) in zip(planes, samp):
        p = np.pad(p, ((0, H - h), (0, W - w)), mode="edge")
        if (hs, vs) != (hmax, vmax):
            fy, fx = vmax // vs, hmax // hs
            p = p.reshape(H // fy, fy, W // fx, fx).mean(axis=(1, 3))
        blocks = (p - 128.0).reshape(p.shape[0] // 8, 8, p.shape[1] // 8, 8).transpose(0, 2, 1, 3)
        coef = np.einsum("ux,abxy,vy->abuv", _C, blocks, _C)
        comp_blocks.append(np.round(coef.reshape(coef.shape[0], coef.shape[1], 64) / q).astype(np.int64))
    dc_counts, dc_codes = _fixed_table(_DC_SYMS, 4)
    ac_counts, ac_codes = _fixed_table(_AC_SYMS, 8)
    wr = _Writer()
    pred = [0] * len(planes)
    for my in range(H // mh):
        for mx in range(W // mw):
            for ci, (hs, vs) in enumerate(samp):
                for by in range(vs):
                    for bx in range(hs):
                        zz = comp_blocks[ci][my * vs + by, mx * hs + bx][ZIGZAG]
                        diff = int(zz[0]) - pred[ci]
                        pred[ci] = int(zz[0])
                        s, bits = _category(diff)
                        wr.put(*dc_codes[s])
                        wr.put(s, bits)
                        run = 0
                        last = max([k for k in range(1, 64) if zz[k] != 0], default=0)
                        for k in range(1, last + 1):
                            v = int(zz[k])
                            if v == 0:
                                run += 1
                                continue
                            while run > 15:
                                wr.put(*ac_codes[0xF0])
                                run -= 16
                            s, bits = _category(v)
                            wr.put(*ac_codes[(run << 4) | s])
                            wr.put(s, bits)
                            run = 0
                        if last < 63:
                            wr.put(*ac_codes[0x00])
    scan = wr.flush()

    def seg(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    out = bytearray(b"\xff\xd8")
    out += seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += seg(0xDB, bytes([0]) + bytes([q] * 64))
    nf = len(planes)
    sof = struct.pack(">BHHB", 8, h, w, nf) + b"".join(bytes([k + 1, (hs << 4) | vs, 0])
                                                       for k, (hs, vs) in enumerate(samp))
    out += seg(0xC0, sof)
    out += seg(0xC4, bytes([0x00]) + bytes(dc_counts) + bytes(_DC_SYMS))
    out += seg(0xC4, bytes([0x10]) + bytes(ac_counts) + bytes(_AC_SYMS))
    sos = bytes([nf]) + b"".join(bytes([k + 1, 0x00]) for k in range(nf)) + bytes([0, 63, 0])
    out += seg(0xDA, sos)
    out += scan
    out += b"\xff\xd9"
    return bytes(out)
