"""A `.flashlift` file is checked at load, and saved atomically (flashlift.archive,
flashlift.description, flashlift.module_abi): tampered, bomb, damaged and truncated
archives, descriptions that do not describe the module, and failed saves each give a clear
flashlift error, never a raw exception, a wrong answer or a lost file."""

import errno
import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import pytest
import torch

import flashlift
from flashlift import archive
from flashlift.errors import FlashliftError, InputError, ModuleFormatError, SaveError
from test_foundation import PlainAttention


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path of a saved PlainAttention module, its inputs, the reference output)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 8, 16) for _ in range(3))
    path = tmp_path_factory.mktemp("saved") / "attn.flashlift"
    flashlift.compile_model(PlainAttention(), (q, k, v)).save(str(path))
    return str(path), (q, k, v), PlainAttention()(q, k, v)


def members(path):
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read(archive.META_NAME)), z.read(archive.VMFB_NAME)


def rewrite(tmp_path, meta, module, *, meta_compression=zipfile.ZIP_STORED, name="edited.flashlift"):
    """An archive with `meta` (a dict, or bytes as they are) and `module`, written by zipfile."""
    path = tmp_path / name
    text = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo(archive.META_NAME), text, compress_type=meta_compression)
        z.writestr(zipfile.ZipInfo(archive.VMFB_NAME), module)
    return str(path)


def edited(tmp_path, saved_path, edit):
    meta, module = members(saved_path)
    edit(meta)
    return rewrite(tmp_path, meta, module)


# --- the description against the module (its function's declared signature) ---------------

def test_a_saved_module_loads_mapped_and_right(saved):
    path, args, ref = saved
    model = flashlift.load(path)
    assert isinstance(model._vmfb, memoryview)  # mapped from the file, not read or inflated
    assert torch.allclose(model(*args), ref, atol=1e-5)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(archive.VMFB_NAME)
    assert info.compress_type == zipfile.ZIP_STORED
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
    assert (info.header_offset + 30 + name_length + extra_length) % archive.MODULE_ALIGNMENT == 0


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["outputs"][0].update(dtype="bfloat16"),
     r"output 0: described as bfloat16 \[2, 8, 16\], the module has float32 \[2, 8, 16\]"),
    (lambda m: m.update(outputs=[], output_tree=None), r"0 outputs described, the module's function has 1"),
    (lambda m: m["inputs"][1].update(shape=[2, 8, 15]), r"input 1: described as float32 \[2, 8, 15\]"),
    (lambda m: m["inputs"][2].update(shape=[2, 128]), r"input 2: described as float32 \[2, 128\]"),
    (lambda m: m["inputs"][0].update(shape=[None, 8, 16]), r"input 0: described as float32 \[\?, 8, 16\]"),
    (lambda m: m["inputs"].pop(), r"2 inputs described, the module's function has 3"),
    (lambda m: m.update(function="forward"), r"the module has no function 'forward' \(it has main"),
])
def test_description_that_does_not_describe_the_module_is_refused(saved, tmp_path, edit, message):
    """Was trusted: a bfloat16 output dtype returned the f32 bytes reinterpreted, outputs: []
    returned ()."""
    with pytest.raises(ModuleFormatError, match=message):
        flashlift.load(edited(tmp_path, saved[0], edit))


# --- integrity ------------------------------------------------------------------------

def test_save_records_the_modules_sha256(saved):
    meta, module = members(saved[0])
    assert meta["module_sha256"] == hashlib.sha256(module).hexdigest()


def flip_module_byte(path):
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(archive.VMFB_NAME)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
        at = info.header_offset + 30 + name_length + extra_length + info.file_size // 2
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_a_modified_module_is_refused(saved, tmp_path):
    path = tmp_path / "copy.flashlift"
    path.write_bytes(open(saved[0], "rb").read())
    flip_module_byte(path)
    with pytest.raises(ModuleFormatError, match=r"module.vmfb does not match the SHA-256 in flashlift.json"):
        flashlift.load(str(path))


def test_without_a_recorded_hash_the_archives_crc_is_checked(saved, tmp_path):
    path = edited(tmp_path, saved[0], lambda m: m.pop("module_sha256"))
    assert flashlift.load(path)(*saved[1]).shape == saved[2].shape  # (a file saved before hashes)
    flip_module_byte(path)
    with pytest.raises(ModuleFormatError, match=r"does not match the CRC-32 the archive records"):
        flashlift.load(path)


def test_a_garbage_module_fails_at_load_not_at_the_first_call(saved, tmp_path):
    garbage = b"\x00garbage" * 512
    meta, _ = members(saved[0])
    meta["module_sha256"] = hashlib.sha256(garbage).hexdigest()  # (the hash itself is right)
    with pytest.raises(ModuleFormatError, match=r"module.vmfb: not a valid IREE module \(.*FlatBuffer"):
        flashlift.load(rewrite(tmp_path, meta, garbage))


# --- bombs and bounds -----------------------------------------------------------------

def test_description_larger_than_the_cap_is_refused_by_its_record(saved, tmp_path):
    meta, module = members(saved[0])
    meta["padding"] = "x" * (archive.MAX_DESCRIPTION_BYTES + 1)
    path = rewrite(tmp_path, meta, module, meta_compression=zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 1 << 20  # a small file that would inflate to 16 MiB
    with pytest.raises(ModuleFormatError, match=r"flashlift.json is \d+ bytes \(the archive's record\), more than"):
        flashlift.load(path)


def patch_recorded_size(path, name, size):
    """Makes the archive's records (central directory and local header) claim `size` bytes
    for entry `name`, keeping its data: the record lies."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
        directory = z.start_dir
    data = bytearray(open(path, "rb").read())
    struct.pack_into("<L", data, info.header_offset + 22, size)  # local header: uncompressed size
    at = directory
    while data[at + 46:at + 46 + struct.unpack_from("<H", data, at + 28)[0]] != name.encode():
        at = data.index(b"PK\x01\x02", at + 4)
    struct.pack_into("<L", data, at + 24, size)  # central directory: uncompressed size
    if struct.unpack_from("<H", data, info.header_offset + 8)[0] == zipfile.ZIP_STORED:
        struct.pack_into("<L", data, info.header_offset + 18, size)  # stored: compressed size too
        struct.pack_into("<L", data, at + 20, size)
    open(path, "wb").write(bytes(data))


def test_a_description_bomb_whose_record_lies_is_read_only_up_to_the_record(saved, tmp_path):
    """Small on disk, 64 MiB inflated, recorded as 100 bytes: load inflates 100 bytes and
    refuses the entry (its CRC-32 does not match)."""
    meta, module = members(saved[0])
    meta["padding"] = "x" * (64 << 20)
    path = rewrite(tmp_path, meta, module, meta_compression=zipfile.ZIP_DEFLATED)
    patch_recorded_size(path, archive.META_NAME, 100)
    tracemalloc.start()
    try:
        with pytest.raises(ModuleFormatError, match=r"flashlift.json cannot be read from the archive \(BadZipFile: Bad CRC-32"):
            flashlift.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # (was the whole 64 MiB, and 1 GiB for a 1 GiB bomb)


def test_module_record_beyond_the_end_of_the_file_is_refused(saved, tmp_path):
    meta, module = members(saved[0])
    path = rewrite(tmp_path, meta, module)
    patch_recorded_size(path, archive.VMFB_NAME, 1 << 30)  # a 1 GiB module in a small file
    with pytest.raises(ModuleFormatError, match=r"module.vmfb: the archive records 1073741824 bytes at offset"):
        flashlift.load(path)


def test_a_compressed_module_is_refused(saved, tmp_path):
    meta, module = members(saved[0])
    path = tmp_path / "deflated.flashlift"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(archive.META_NAME, json.dumps(meta))
        z.writestr(archive.VMFB_NAME, module)
    with pytest.raises(ModuleFormatError, match=r"module.vmfb is compressed or encrypted \(method 8\)"):
        flashlift.load(str(path))


def test_deep_json_is_refused_before_it_is_parsed(saved, tmp_path):
    _, module = members(saved[0])
    deep = b'{"format": "flashlift-module", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    with pytest.raises(ModuleFormatError, match=r"nested more than 100 levels deep"):
        flashlift.load(rewrite(tmp_path, deep, module))


def test_corrupt_deflate_is_a_format_error(saved, tmp_path):
    meta, module = members(saved[0])
    path = rewrite(tmp_path, meta, module, meta_compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(archive.META_NAME)
    data = bytearray(open(path, "rb").read())
    start = info.header_offset + 30 + len(archive.META_NAME)
    data[start:start + 8] = b"\xff" * 8  # not a deflate stream any more
    open(path, "wb").write(bytes(data))
    with pytest.raises(ModuleFormatError, match=r"flashlift.json cannot be read from the archive \((zlib\.)?error"):
        flashlift.load(path)


# --- the description's keys --------------------------------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("inputs"), r"flashlift.json: inputs is missing"),
    (lambda m: m["inputs"][1].update(shape="2x8x16"), r"inputs\[1\].shape is a str \(2x8x16\), expected list"),
    (lambda m: m["inputs"][1]["shape"].__setitem__(2, "16"), r"inputs\[1\].shape\[2\] is '16', expected a size"),
    (lambda m: m["inputs"][0].update(dtype=5), r"inputs\[0\].dtype is a int \(5\), expected str"),
    (lambda m: m["inputs"][0].update(dtype="float128"), r"inputs\[0\].dtype is 'float128', expected one of"),
    (lambda m: m["inputs"][0].update(keyword=True, name=None), r"inputs\[0\].name is missing"),
    (lambda m: m.pop("function"), r"flashlift.json: function is missing"),
    (lambda m: m.update(function=["main"]), r"function is a list"),
    (lambda m: m.update(outputs={"0": {}}), r"outputs is a dict"),
    (lambda m: m.update(output_tree={"tensor": "0"}), r"output_tree.tensor is '0', expected the index of one"),
    (lambda m: m.update(output_tree={"tuple": [{"tensor": 3}]}), r"output_tree.tuple\[0\].tensor is 3"),
    (lambda m: m.update(output_tree={"namedtuple": "Out", "fields": [["not valid", {"tensor": 0}]]}),
     r"output_tree.fields\[0\]\[0\] is 'not valid', expected a field name"),
    (lambda m: m.update(output_tree={"weird": 1}), r"output_tree has none of the keys tensor"),
    (lambda m: m.update(constants=[]), r"constants is a list"),
    (lambda m: m["report"].update(raised=[3]), r"report.raised\[0\] is a int"),
    (lambda m: m["report"]["raised"][0].update(surprise=1), r"report.raised\[0\] has an unknown key 'surprise'"),
    (lambda m: m.update(cpu={"features": "avx2"}), r"cpu.features is a str"),
    (lambda m: m.update(module_sha256=5), r"module_sha256 is a int"),
])
def test_missing_or_mistyped_keys_are_refused_at_load(saved, tmp_path, edit, message):
    """Were KeyError/AttributeError/TypeError at the first call."""
    with pytest.raises(ModuleFormatError, match=message):
        flashlift.load(edited(tmp_path, saved[0], edit))


def test_a_result_tree_nested_too_deep_is_refused(saved, tmp_path):
    tree = {"tensor": 0}
    for _ in range(40):
        tree = {"tuple": [tree]}
    with pytest.raises(ModuleFormatError, match=r"nests more than 32 levels deep"):
        flashlift.load(edited(tmp_path, saved[0], lambda m: m.update(output_tree=tree)))


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"is a folder, not a .flashlift file"):
        flashlift.load(str(tmp_path))


# --- atomic save ------------------------------------------------------------------------

def test_a_full_disk_leaves_the_previous_file_and_says_so(saved, tmp_path, monkeypatch):
    path = tmp_path / "model.flashlift"
    path.write_bytes(open(saved[0], "rb").read())
    before = path.read_bytes()
    model = flashlift.load(str(path))

    def full_disk(f, description, module, parameters=None):
        f.write(b"PK\x03\x04 part of an archive")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(archive, "_write_zip", full_disk)
    with pytest.raises(SaveError, match=r"could not write the module \(No space left on device\); the previous "
                                        r".*model.flashlift is unchanged") as caught:
        model.save(str(path))
    assert isinstance(caught.value, FlashliftError)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.flashlift"]  # the temporary file is gone


def test_save_into_a_missing_folder_or_onto_a_folder(saved, tmp_path):
    model = flashlift.load(saved[0])
    with pytest.raises(SaveError, match=r"could not create a temporary file in .*nowhere.*; nothing was written"):
        model.save(str(tmp_path / "nowhere" / "m.flashlift"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(SaveError, match=r"could not rename it to .*folder"):
        model.save(str(tmp_path / "folder"))
    assert os.listdir(tmp_path / "folder") == [] and sorted(os.listdir(tmp_path)) == ["folder"]


def test_a_save_killed_halfway_leaves_the_previous_file(saved, tmp_path):
    path = tmp_path / "model.flashlift"
    path.write_bytes(open(saved[0], "rb").read())
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import os, signal
        import flashlift
        from flashlift import archive
        model = flashlift.load({str(path)!r})
        def killed(f, description, module, parameters=None):
            f.write(bytes(1000))
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        archive._write_zip = killed
        model.save({str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert path.read_bytes() == before
    assert torch.allclose(flashlift.load(str(path))(*saved[1]), saved[2], atol=1e-5)


def test_save_over_a_file_replaces_it(saved, tmp_path):
    path = tmp_path / "model.flashlift"
    path.write_bytes(b"old contents")
    flashlift.load(saved[0]).save(str(path))
    assert torch.allclose(flashlift.load(str(path))(*saved[1]), saved[2], atol=1e-5)
    assert os.listdir(tmp_path) == ["model.flashlift"]


def test_a_report_with_odd_details_still_prints(saved, tmp_path):
    """A site's details are free-form (a matmul's "shape" is a string): never a TypeError."""
    path = edited(tmp_path, saved[0], lambda m: m["report"]["raised"][0].update(details={"shape": "m", "batch_sizes": 3}))
    assert "raised 1 attention site" in str(flashlift.load(path).report)
