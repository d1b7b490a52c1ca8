"""What compile_model did to a model: raised attention sites, candidates left alone, dropouts removed,
and notes on what the import chose (e.g. use_cache=False)."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field


@dataclass
class Site:
    module_path: str
    source: str  # file:line of the user code
    reason: str = ""  # why not raised (rejected sites only)
    details: dict = field(default_factory=dict)
    path: str = ""  # how the op is compiled: "iree-codegen", "triton-fa sm_XX" (attention), "triton-gemm sm_XX" (matmul)
    path_reason: str = ""  # why a raised op kept "iree-codegen" on a target with kernels

    def where(self) -> str:
        return f"{self.module_path or '<top>'} ({_short(self.source)})"


@dataclass
class Report:
    target: str = "cpu"
    raised: list = field(default_factory=list)
    rejected: list = field(default_factory=list)
    dropouts: list = field(default_factory=list)  # dicts: module_path, p, training, source
    raise_attention: bool = True
    linears: list = field(default_factory=list)  # Sites of matmuls on targets with flashlift's GEMM kernel
    fused: list = field(default_factory=list)  # dicts: layers (module paths), source, shape [M, K, N] of the one GEMM
    epilogues: list = field(default_factory=list)  # Sites of LayerNorms / RMSNorms (details: norm, shape, residual, linear)
    rotary: list = field(default_factory=list)  # Sites of rotary embeddings on CUDA (details: shape)
    notes: list = field(default_factory=list)  # what the import chose for the user (e.g. use_cache=False)

    def __str__(self) -> str:
        lines = [f"flashlift report (target {self.target})"]
        if not self.raise_attention:
            lines.append("  raising disabled (raise_attention=False): attention compiled as written")
        lines.append(f"  raised {len(self.raised)} attention site{'s' if len(self.raised) != 1 else ''}:")
        for s in self.raised:
            detail = _details(s.details)
            path = f"{s.path}: {s.path_reason}" if s.path_reason else s.path
            lines.append(f"    {s.where()}  {detail}" + (f"  [{path}]" if path else ""))
        if self.rejected:
            lines.append(f"  left {len(self.rejected)} candidate{'s' if len(self.rejected) != 1 else ''} as written:")
            for s in self.rejected:
                lines.append(f"    {s.where()}: {s.reason}")
        lines += _kernel_sites(self.linears, "matmul", "GEMM kernel")
        if self.fused:
            lines.append(f"  {len(self.fused)} group{'s' if len(self.fused) != 1 else ''} of linear layers reading one "
                         "input fused into one GEMM each:")
            for f in self.fused:
                m, k, n = f["shape"]
                lines.append(f"    {_layer_names(f['layers'])} -> one GEMM [{m} x {k}] x [{k} x {n}] ({_short(f['source'])})")
        if self.epilogues:
            fused = [s for s in self.epilogues if s.path != "iree-codegen"]
            kinds = sorted({s.details["norm"] for s in self.epilogues if s.details.get("norm")})
            lines.append(f"  {len(fused)} of {len(self.epilogues)} norm{'s' if len(self.epilogues) != 1 else ''}"
                         + (f" ({', '.join(kinds)})" if kinds else "") + " run as one kernel each, with the "
                         "residual add before it where only the norm reads the sum:")
            for s in self.epilogues:
                lines.append(f"    {_epilogue(s)}  [{s.path}{': ' + s.path_reason if s.path_reason else ''}]")
        lines += _kernel_sites(self.rotary, "rotary embedding", "kernel")
        active = [d for d in self.dropouts if d["p"] > 0]
        if active:
            lines.append("  dropout removed (inference semantics):")
            for d in active:
                how = d.get("how") or ("F.dropout with training=True" if d["training"] else "eval-mode dropout")
                lines.append(f"    {d['module_path']} p={d['p']} ({how}) at {_short(d['source'])}")
        if len(active) < len(self.dropouts):
            lines.append(f"  {len(self.dropouts) - len(active)} dropout(s) with p=0 removed (no-ops)")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Report":
        return cls(
            target=data.get("target", "?"),
            raised=[Site(**s) for s in data.get("raised", [])],
            rejected=[Site(**s) for s in data.get("rejected", [])],
            dropouts=list(data.get("dropouts", [])),
            raise_attention=data.get("raise_attention", True),
            linears=[Site(**s) for s in data.get("linears", [])],
            fused=[dict(f) for f in data.get("fused", [])],
            epilogues=[Site(**s) for s in data.get("epilogues", [])],
            rotary=[Site(**s) for s in data.get("rotary", [])],
            notes=list(data.get("notes", [])),
        )


def site_from_location(loc: str, **kwargs) -> Site:
    """loc("module.path"("file":line:col)) -> Site(module_path, "file:line")."""
    name = re.match(r'loc\("([^"]*)"\(', loc)
    file = re.search(r'"([^"]*)":(\d+):\d+', loc)
    source = f"{file.group(1)}:{file.group(2)}" if file else "unknown"
    return Site(module_path=name.group(1) if name else "", source=source, **kwargs)


def _kernel_sites(sites: list, noun: str, kernel: str) -> list:
    """'  3 of 4 matmuls take flashlift's GEMM kernel [paths]', then each site left to IREE
    with its reason; nothing for no sites."""
    if not sites:
        return []
    taken = sorted({s.path for s in sites if s.path != "iree-codegen"})
    n = sum(s.path != "iree-codegen" for s in sites)
    lines = [f"  {n} of {len(sites)} {noun}{'s' if len(sites) != 1 else ''} take flashlift's {kernel}"
             + (f" [{', '.join(taken)}]" if taken else "")]
    return lines + [f"    {s.where()}: iree-codegen: {s.path_reason}" for s in sites if s.path == "iree-codegen"]


def _epilogue(s: Site) -> str:
    """'proj.dense (bias in its GEMM) + residual + proj.layer_norm [256 x 1024] (file:line)'
    (an RMSNorm's module path followed by "(RMSNorm)")."""
    d = s.details
    parts = [d["linear"] + (" (bias in its GEMM)" if d.get("linear_bias", True) else "")] if d.get("linear") else []
    norm = (s.module_path or "<top>") + (" (RMSNorm)" if d.get("norm") == "RMSNorm" else "")
    parts += ["residual"] * bool(d.get("residual")) + [norm]
    size = f" [{d['shape'][0]} x {d['shape'][1]}]" if d.get("shape") else ""
    return " + ".join(parts) + f"{size} ({_short(s.source)})"


def _layer_names(paths: list) -> str:
    """["a.self.query", "a.self.key"] -> "a.self.{query, key}"."""
    parts = [p.split(".") for p in paths]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    if not common:
        return ", ".join(paths)
    return ".".join(parts[0][:common]) + ".{" + ", ".join(".".join(p[common:]) for p in parts) + "}"


def _short(source: str) -> str:
    path, _, line = source.rpartition(":")
    return f"{os.path.basename(path)}:{line}" if path else source


def _details(info: dict) -> str:
    """An attention site's shape, scale, mask and dtype (details are free-form: a matmul's
    "shape" is a string, and what is not an attention's is left out)."""
    shape = info.get("shape") if isinstance(info.get("shape"), dict) else {}
    parts = []
    size = lambda n: "?" if n is None else str(n)  # ? = dynamic
    if isinstance(info.get("batch_sizes"), list):
        parts.append("batch=[" + ", ".join(size(n) for n in info["batch_sizes"]) + "]")
    parts += [f"{k}={size(shape[k])}" for k in ("m", "k2", "k1", "n") if k in shape]
    if "scale" in info:
        parts.append(f"scale={info['scale']:.6g}" if isinstance(info["scale"], float) else f"scale={info['scale']}")
    parts.append(f"mask={info['mask']}" if "mask" in info else "mask=none")
    if "dtype" in info:
        parts.append(info["dtype"])
    return " ".join(parts)
