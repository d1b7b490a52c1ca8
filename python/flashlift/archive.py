"""The .flashlift container: a zip archive of the description and the compiled module.

Entries, all stored (not compressed): `flashlift.json` (the description, plain data),
`module.vmfb` (what iree-compile wrote), whose data starts at a multiple of 64 bytes
(an alignment extra field, as Android's zipalign writes) so that `read` maps it from the
file and IREE uses it in place, and for a module that reads its weights as parameters
`parameters.irpa` (an IREE parameter archive, IREE's own format), at a multiple of 4096
bytes, likewise mapped. Other entries are ignored (never extracted or executed).

`write` is atomic: a temporary file in the destination's folder, flushed and fsynced,
renamed over the destination; on any failure the temporary file is removed, the previous
file is left as it was, and a SaveError says what failed.

`read` inflates nothing it has not bounded: the description's record must say at most
MAX_DESCRIPTION_BYTES, and no more than the record says is inflated; the module must be
stored, and its record must lie within the file, so it is mapped (never read into memory or
inflated).
"""

from __future__ import annotations

import mmap
import os
import secrets
import struct
import zipfile
import zlib
from typing import NamedTuple

from flashlift.errors import InputError, ModuleFormatError, SaveError

META_NAME = "flashlift.json"
VMFB_NAME = "module.vmfb"
PARAMETERS_NAME = "parameters.irpa"
#: The largest description `read` accepts (a real one, report included, is a few KB to MB).
MAX_DESCRIPTION_BYTES = 16 << 20
#: Where the module's data starts in the file: what IREE needs to use it in place.
MODULE_ALIGNMENT = 64
#: Where the parameters start: a page, so that IREE can use the mapped weights in place.
PARAMETERS_ALIGNMENT = 4096
#: How much of the parameter archive save copies at a time.
_CHUNK = 16 << 20

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature ... name length, extra length (30 bytes)
_ALIGN_EXTRA_ID = 0xD935  # zipalign's extra field: 2 bytes of alignment, then padding


class Contents(NamedTuple):
    description: bytes  # flashlift.json's bytes
    module: object  # module.vmfb: a memoryview of the mapped file (bytes if it is not aligned)
    module_crc: int  # the CRC-32 the archive records for module.vmfb
    parameters: object = None  # parameters.irpa: a memoryview of the mapped file, or None


def write(path: str, description: bytes, module, parameters: str = None) -> None:
    """Writes the archive to `path` atomically (see the module doc); `parameters` is the path
    of a parameter archive to copy in as parameters.irpa."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    existed = os.path.lexists(path)
    step = f"create a temporary file in {folder}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # (the umask applies)
        try:
            with os.fdopen(fd, "wb") as f:
                step = "write the module"
                _write_zip(f, description, module, parameters)
                step = "flush it to disk"
                f.flush()
                os.fsync(f.fileno())
            step = f"rename it to {path}"
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise
    except OSError as e:
        kept = f"the previous {path} is unchanged" if existed and not os.path.isdir(path) else "nothing was written"
        raise SaveError(f"cannot save {path}: could not {step} ({e.strerror or e}); {kept}") from e
    _sync_folder(folder)


def _write_zip(f, description: bytes, module, parameters) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo(META_NAME, date_time=(1980, 1, 1, 0, 0, 0)), description)
        info = zipfile.ZipInfo(VMFB_NAME, date_time=(1980, 1, 1, 0, 0, 0))
        info.extra = _alignment_extra(f.tell(), info, len(module), MODULE_ALIGNMENT)
        z.writestr(info, module)
        if parameters is not None:
            with open(parameters, "rb") as src:
                size = os.fstat(src.fileno()).st_size
                info = zipfile.ZipInfo(PARAMETERS_NAME, date_time=(1980, 1, 1, 0, 0, 0))
                info.extra = _alignment_extra(f.tell(), info, size, PARAMETERS_ALIGNMENT)
                info.file_size = size
                with z.open(info, "w") as dest:  # (streamed: a multi-GB archive is never in memory)
                    while chunk := src.read(_CHUNK):
                        dest.write(chunk)


def _alignment_extra(header_offset: int, info: zipfile.ZipInfo, size: int, alignment: int) -> bytes:
    """An extra field that makes the entry's data start at a multiple of `alignment`
    (zipfile appends a 20-byte zip64 record to large entries: counted in)."""
    zip64 = 20 if size * 1.05 > zipfile.ZIP64_LIMIT else 0
    start = header_offset + _LOCAL_HEADER.size + len(info.filename.encode("utf-8")) + zip64 + 6
    padding = -start % alignment
    return struct.pack("<HHH", _ALIGN_EXTRA_ID, 2 + padding, min(alignment, 0xFFFF)) + bytes(padding)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_folder(folder: str) -> None:
    """Makes the rename durable (best effort: not every system can fsync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read(path: str) -> Contents:
    """The description's bytes and the mapped module of the archive at `path`."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, not a .flashlift file")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as e:
            raise ModuleFormatError(f"{path}: not a flashlift module (not a zip archive written by "
                                    f"CompiledModel.save: {e})") from None
        with z:
            names = set(z.namelist())
            if META_NAME not in names or VMFB_NAME not in names:
                raise ModuleFormatError(f"{path}: not a flashlift module (missing {META_NAME} or {VMFB_NAME})")
            description = _read_bounded(z, z.getinfo(META_NAME), path)
            info = z.getinfo(VMFB_NAME)
            offset = _stored_offset(f, info, size, path)
            params = z.getinfo(PARAMETERS_NAME) if PARAMETERS_NAME in names else None
            params_offset = _stored_offset(f, params, size, path) if params is not None else None
        module = _map(f, offset, info.file_size, MODULE_ALIGNMENT)
        parameters = None
        if params is not None:
            parameters = _map(f, params_offset, params.file_size, PARAMETERS_ALIGNMENT, copy=False)
    return Contents(description, module, info.CRC, parameters)


def _read_bounded(z: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> bytes:
    """An entry's bytes, refused if its record says more than MAX_DESCRIPTION_BYTES. zipfile
    inflates no more than the record says and then checks the CRC-32, so an entry whose record
    understates its size fails that check after at most the recorded bytes."""
    where = f"{path}: {info.filename}"
    if info.file_size > MAX_DESCRIPTION_BYTES:
        raise ModuleFormatError(f"{where} is {info.file_size} bytes (the archive's record), more than the "
                                f"{MAX_DESCRIPTION_BYTES >> 20} MiB a description may have")
    try:
        with z.open(info) as entry:
            return entry.read(info.file_size)  # (asking for more would inflate more, then cut)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError) as e:
        raise ModuleFormatError(f"{where} cannot be read from the archive ({type(e).__name__}: {e})") from None


def _stored_offset(f, info: zipfile.ZipInfo, size: int, path: str) -> int:
    """Where the stored entry's data starts in the file, after checking that its local header
    agrees with the central directory and that the data lies within the file."""
    where = f"{path}: {info.filename}"
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise ModuleFormatError(f"{where} is compressed or encrypted (method {info.compress_type}); flashlift "
                                "stores the module as is, to map it: save it again with CompiledModel.save")
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size:
        raise ModuleFormatError(f"{where}: the archive ends inside the entry's header (truncated file)")
    fields = _LOCAL_HEADER.unpack(header)
    signature, method, name_length, extra_length = fields[0], fields[3], fields[9], fields[10]
    name = f.read(name_length)
    if signature != b"PK\x03\x04" or method != zipfile.ZIP_STORED or name != info.filename.encode("utf-8"):
        raise ModuleFormatError(f"{where}: the entry's local header does not match the archive's directory")
    offset = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    if info.compress_size != info.file_size or offset + info.file_size > size:
        raise ModuleFormatError(f"{where}: the archive records {info.file_size} bytes at offset {offset}, "
                                f"but the file has {size} bytes (truncated or damaged)")
    return offset


def _map(f, offset: int, length: int, alignment: int, copy: bool = True):
    """An entry's bytes: a read-only memoryview of the mapped file where the data is aligned
    for IREE, else (copy=True) a copy (an archive rewritten by another zip tool)."""
    if length == 0:
        return b""
    mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mapped)[offset:offset + length]
    if offset % alignment and copy:
        return bytes(view)
    return view
