"""attn-opt: run flashlift's raising passes (and any MLIR/IREE pass) on .mlir files, like mlir-opt.

    attn-opt input.mlir --raise-attention -o out.mlir
    attn-opt - --pass-pipeline='builtin.module(raise-attention,canonicalize)' < in.mlir
    attn-opt in.mlir --raise-attention --remarks      # say what was raised and why not
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Optional

SPLIT_MARKER = re.compile(r"^// -----[ \t]*$", re.MULTILINE)


def _parser() -> argparse.ArgumentParser:
    from flashlift.compiler.pipeline import REGISTRY

    p = argparse.ArgumentParser(
        prog="attn-opt",
        description="Raise hand-written attention in linalg-on-tensors MLIR to iree_linalg_ext.attention.",
    )
    p.add_argument("input", nargs="?", default="-", help="input .mlir file, or - for stdin (default)")
    p.add_argument("-o", dest="output", default="-", help="output file (default: stdout)")
    for name, (summary, _) in REGISTRY.items():
        p.add_argument(f"--{name}", dest="passes", action="append_const", const=name, help=summary)
    p.add_argument("--pass-pipeline", help="textual pipeline, e.g. 'builtin.module(raise-attention,canonicalize,cse)'")
    p.add_argument("--pipeline", metavar="TARGET",
                   help="run exactly what compile_model runs before iree-compile for TARGET (cpu, cuda:sm_90, ...)")
    p.add_argument("--print-pipeline", metavar="TARGET", help="print the textual pipeline for TARGET and exit")
    p.add_argument("--split-input-file", action="store_true", help="split the input on '// -----' and process each chunk")
    p.add_argument("--mlir-print-ir-after-all", action="store_true", help="print the IR after every pass (to stderr)")
    p.add_argument("--mlir-print-debuginfo", action="store_true", help="print locations")
    p.add_argument("--remarks", action="store_true", help="report each attention candidate: raised, or why not (stderr)")
    p.add_argument("--list-passes", action="store_true", help="list flashlift's passes and exit")
    return p


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _chunks(text: str, split: bool) -> list[str]:
    """Chunks padded with blank lines so that line numbers match the whole file."""
    if not split:
        return [text]
    out, start = [], 0
    for marker in list(SPLIT_MARKER.finditer(text)) + [None]:
        end = marker.start() if marker else len(text)
        out.append("\n" * text.count("\n", 0, start) + text[start:end])
        start = marker.end() if marker else end
    return out


def parse_errors(text: str, chunks: list, source: str, split: bool) -> list:
    """Per chunk, the errors `iree-opt` reports parsing and verifying it (`file:line:col: error:
    ...`, line numbers of the whole file), or None where it parses. After some parse errors (a
    truncated `linalg.transpose`, seen with iree-base-compiler 3.13) MLIR crashes once it has
    reported them; in the Python bindings that is this process, so every input is checked by
    iree-opt first, in a child. A child that crashed checked the chunks up to its last error:
    the chunks after it are checked again. Where iree-opt cannot run, None for all: the
    in-process parser reports."""
    import subprocess

    try:
        from iree.compiler.tools.binaries import find_tool

        tool = find_tool("iree-opt")
    except Exception:
        return [None] * len(chunks)
    offsets = [0] + [m.end() for m in SPLIT_MARKER.finditer(text)] if split else [0]
    starts = [text.count("\n", 0, o) + 1 for o in offsets]  # each chunk's first line
    found: list = [None] * len(chunks)
    first, alone = 0, False  # alone: one chunk per child (after a crash that named no chunk)
    while first < len(chunks):
        end = offsets[first + 1] if alone and first + 1 < len(chunks) else len(text)
        rest = "\n" * (starts[first] - 1) + text[offsets[first]:end]  # line numbers kept
        try:
            done = subprocess.run([tool, *(["--split-input-file"] if split else []), "-", "-o", "/dev/null"],
                                  input=rest, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            return found
        last = None
        for m in re.finditer(r"^<stdin>:(\d+):(\d+): error: (.*)$", done.stderr, re.MULTILINE):
            n = int(m.group(1))
            i = max([j for j in range(first, len(chunks)) if starts[j] <= n] or [first])
            found[i] = (found[i] or []) + [f"{source}:{n}:{m.group(2)}: error: {m.group(3)}"]
            last = i if last is None else max(last, i)
        if done.returncode in (0, 1):
            if not alone:
                return found  # every chunk checked
            first += 1
        elif last is not None:
            first = last + 1  # crashed after `last`'s errors: the rest is unchecked
        elif alone:  # this chunk alone crashes MLIR's parser or verifier, saying nothing
            found[first] = [f"{source}:{starts[first]}:1: error: this input crashes MLIR's parser or verifier "
                            f"(iree-opt exit status {done.returncode}, no diagnostic); fix it by hand"]
            first += 1
        else:
            alone = True  # a crash that named no chunk: find it, one chunk at a time
    return found


def format_location(loc: str, source: str) -> str:
    """loc("name"("file":l:c)) or loc("file":l:c) -> file:l:c."""
    m = re.search(r'"([^"]*)":(\d+):(\d+)', loc)
    if not m:
        return source
    file = source if m.group(1) == "-" else m.group(1)
    return f"{file}:{m.group(2)}:{m.group(3)}"


def remark_lines(results: list, source: str) -> list[str]:
    """One remark per site decision the passes recorded (their SiteRecords: what raise-attention
    raised or left, the groups fuse-linears fused, the codegen path each dispatch chose);
    externalize-parameters' Parameter records are no site decisions and give none."""
    from flashlift.passes.records import FUSED, LEFT, RAISED, SiteRecord

    lines = []
    for r in results:
        if not isinstance(r, SiteRecord):
            continue
        where = format_location(r.location, source)
        if r.outcome == RAISED:
            lines.append(f"{where}: remark: raised to iree_linalg_ext.attention {describe(r.details)}")
        elif r.outcome == LEFT:
            lines.append(f"{where}: remark: attention not raised: {r.reason}")
        elif r.outcome == FUSED:
            m, k, n = r.details["shape"]
            lines.append(f"{where}: remark: {len(r.details['locations'])} linear layers fused into one GEMM "
                         f"[{m} x {k}] x [{k} x {n}] (widths {', '.join(map(str, r.details['widths']))})")
        else:
            lines.append(f"{where}: remark: {r.kind} takes {r.outcome}" + (f": {r.reason}" if r.reason else ""))
    return lines


def describe(info: dict) -> str:
    shape = info.get("shape", {})
    parts = [f"batch={info.get('batch_sizes')}"] + [f"{k}={shape[k]}" for k in ("m", "k2", "k1", "n") if k in shape]
    parts.append(f"scale={info.get('scale')}")
    parts.append(f"mask={info['mask']}" if "mask" in info else "mask=none")
    return "(" + ", ".join(parts) + ")"


def _process(chunk: str, args, source: str, errors: list) -> Optional[str]:
    from iree.compiler import ir

    from flashlift.compiler.pipeline import pipeline_elements, run_pipeline

    ctx = ir.Context()
    try:
        module = ir.Module.parse(chunk, ctx)
    except ir.MLIRError as e:
        for d in e.error_diagnostics or []:
            errors.append(f"{format_location(str(d.location), source)}: error: {d.message}")
        if not e.error_diagnostics:
            errors.append(f"{source}: error: {e}")
        return None
    if args.pass_pipeline:
        pipeline = args.pass_pipeline
    elif args.pipeline:
        from flashlift.compiler.pipeline import pipeline_for

        pipeline = pipeline_for(args.pipeline)
    else:
        pipeline = "builtin.module(" + ",".join(args.passes or []) + ")"
    try:
        outcomes = run_pipeline(module, pipeline, print_ir_after_all=args.mlir_print_ir_after_all) if pipeline_elements(pipeline) else []
    except ir.MLIRError as e:
        for d in e.error_diagnostics or []:
            errors.append(f"{format_location(str(d.location), source)}: error: {d.message}")
        if not e.error_diagnostics:
            errors.append(f"{source}: error: {e}")
        return None
    if args.remarks:
        for line in remark_lines(outcomes, source):
            print(line, file=sys.stderr)
    return module.operation.get_asm(enable_debug_info=args.mlir_print_debuginfo)


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    from flashlift.errors import FlashliftError
    from flashlift.compiler.pipeline import REGISTRY

    if args.list_passes:
        for name, (summary, _) in REGISTRY.items():
            print(f"  --{name:<20} {summary}")
        return 0
    if args.print_pipeline:
        from flashlift.compiler.pipeline import pipeline_for

        try:
            print(pipeline_for(args.print_pipeline))
        except FlashliftError as e:
            print(f"attn-opt: error: {e}", file=sys.stderr)
            return 1
        return 0
    source = "<stdin>" if args.input == "-" else args.input
    try:
        text = _read(args.input)
    except OSError as e:
        print(f"attn-opt: error: cannot read '{args.input}': {e.strerror}", file=sys.stderr)
        return 1
    except UnicodeDecodeError:
        print(f"attn-opt: error: '{args.input}' is not a text .mlir file", file=sys.stderr)
        return 1
    outputs, errors = [], []
    chunks = _chunks(text, args.split_input_file)
    try:
        for chunk, bad in zip(chunks, parse_errors(text, chunks, source, args.split_input_file)):
            if bad:
                errors.extend(bad)
                continue
            out = _process(chunk, args, source, errors)
            if out is not None:
                outputs.append(out)
    except FlashliftError as e:
        print(f"attn-opt: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug of ours: say so plainly, with where, never a traceback
        detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        print(f"{source}:1:1: error: attn-opt internal error ({type(e).__name__}: {detail}); please report it",
              file=sys.stderr)
        return 1
    for line in errors:
        print(line, file=sys.stderr)
    result = "// -----\n".join(outputs)
    if args.output == "-":
        sys.stdout.write(result)
    elif errors:
        print(f"attn-opt: '{args.output}' not written (errors above)", file=sys.stderr)
    else:
        try:
            write_atomically(args.output, result)
        except OSError as e:
            print(f"attn-opt: error: cannot write '{args.output}': {e.strerror}", file=sys.stderr)
            return 1
    return 1 if errors else 0


def write_atomically(path: str, text: str) -> None:
    """Writes a temporary file beside `path`, fsyncs it and renames it over `path`: a reader
    sees the old file or the whole new one, never a part."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".attn-opt-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    sys.exit(main())
