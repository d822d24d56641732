"""Files that several processes share safely: atomic writes, folders that appear whole, locks, caches.

Machinery, not lesson: every file lessonlib writes (cached activations, scan results, saved models,
downloads, data sets it derives) goes through here, so that

- a reader never sees half a file: content is written under a name no other process uses
  (`.<name>.<space>-<pid>.<random>.tmp`, `space` naming where that process id means something: this machine's
  boot and PID namespace, so two containers sharing one home never take each other's files for their own)
  and renamed into place in one step;
- two processes writing the same result (two notebooks, two students on one server) both succeed,
  and the result is one of the two whole copies;
- a failure (a full disk, Ctrl-C, a killed process) leaves no partial file behind, and the temporary
  files of processes that died are removed the next time that folder is written to (those of another
  machine or container, whose processes cannot be asked, once they are a day old);
- a full disk or a folder that cannot be written says which folder, and what to do.

`download` fetches one file over HTTP that way: resumable, retried, checked, locked.
"""
import contextlib
import errno
import functools
import hashlib
import http.client
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tqdm.auto import tqdm

from lessonlib.engine.interrupts import first_ctrl_c_only
from lessonlib.engine.language import problem, say

__all__ = ["atomic_write", "atomic_dir", "download", "file_lock", "file_signature", "load_or_none",
           "remove_stale_temporaries", "StorageError", "temporary_name"]

_TMP_SUFFIX = ".tmp"
STALE_AFTER = 24 * 3600   # seconds: a temporary file of another machine's process is surely abandoned by then


class StorageError(OSError):
    """A write lessonlib could not do, with the folder and the remedy in its message."""


@functools.lru_cache(maxsize=1)
def pid_space():
    """A short tag for where this process's id means this process: the machine's boot and its PID namespace
    (each container has its own), or the host's name where /proc cannot tell."""
    try:
        key = f"{Path('/proc/sys/kernel/random/boot_id').read_text().strip()}|{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        key = socket.gethostname()
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def temporary_name(dest):
    """A name next to `dest` that no other process uses: `.<name>.<space>-<pid>.<random>.tmp`."""
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.{pid_space()}-{os.getpid()}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}")


def file_signature(path):
    """What changes whenever a file's content can have changed: size, modification time, and the inode's change
    time and number (a file rewritten in place, or swapped for another with its size and mtime set back, moves
    these; `touch` cannot set them back). Raises FileNotFoundError for a file that is gone."""
    st = os.stat(path)
    return f"{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"


def _explain(e, folder, dest=None, size=None):
    """An OSError from writing into `folder` as a StorageError that says what to do. `dest`: the file that was
    being written (kept as it was); `size`: about how many bytes it needed, where the caller knows."""
    if isinstance(e, StorageError):
        return e
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(e.errno, _disk_full(folder, dest, size))
    if e.errno in (errno.EACCES, errno.EPERM) and e.filename and not _inside(e.filename, folder):
        # reading the source failed (a mirror's folder this user may not open), not writing here
        return StorageError(e.errno, f"cannot read {e.filename} ({e.strerror}): ask whoever keeps that folder to "
                                     f"make it readable, or point LESSONLIB_DATA_MIRROR elsewhere")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(e.errno, f"cannot write in {folder} ({e.strerror}): point LESSONLIB_HOME at a folder "
                                     f"you can write to")
    return e


def _megabytes(n):
    return f"{n / 2**20:,.1f}" if n < 10 * 2**20 else f"{n / 2**20:,.0f}"


def _disk_full(folder, dest, size):
    """The message of a full disk: the folder, the room there and what was needed (where known), the file that
    was not written, and what to do."""
    usage = shutil.disk_usage(folder) if Path(folder).exists() else None
    if usage and size:
        room = say(" ({free} MB free, about {needed} MB needed)", free=_megabytes(usage.free), needed=_megabytes(size))
    elif usage:
        room = say(" ({free} MB free)", free=_megabytes(usage.free))
    else:
        room = ""
    if dest is None:
        kept = ""
    elif Path(dest).exists():
        kept = say(": {name} was not written and the copy saved before is unchanged", name=Path(dest).name)
    else:
        kept = say(": {name} was not written", name=Path(dest).name)
    return problem("the disk holding {folder} is full{room}{kept}; free some space, or point LESSONLIB_HOME at a "
                   "folder on a disk with room", folder=folder, room=room, kept=kept)


# What PyTorch's zip writer (`torch.save`) raises when a write fails: a RuntimeError, the OSError (if any) only its
# __context__ ("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598", "PytorchStreamWriter
# failed writing file data/0: file write failed").
_TORCH_WRITE_FAILED = ("inline_container.cc", "PytorchStreamWriter failed", "file write failed")


def _write_failure(e, folder, size):
    """The OSError behind the failed write `e`: `e` itself, the one a RuntimeError of torch's zip writer hides in its
    context, or, for such a RuntimeError with none, ENOSPC when the disk has less room than was needed (at least
    1 MB); None for any other error. Called before the temporary file is removed, so the room is as it was."""
    if isinstance(e, OSError):
        return e
    if not (isinstance(e, RuntimeError) and any(text in str(e) for text in _TORCH_WRITE_FAILED)):
        return None
    seen, looked = e, set()
    while seen is not None and id(seen) not in looked:
        if isinstance(seen, OSError):
            return seen
        looked.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free < max(size or 0, 2**20):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return None


def _inside(path, folder):
    """True if `path` is `folder` or lies under it (where a write into `folder` goes)."""
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
        return True
    except ValueError:
        return False


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True   # someone else's live process
    return True


def remove_stale_temporaries(folder):
    """Delete the temporary files and folders that processes no longer running left in `folder`.

    A process of this machine and container is asked whether it still runs; another machine's or container's
    (or an older lessonlib's, whose names carry no space) cannot be, so its files go only once a day old.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        parts = p.name.split(".")
        # .<name>.<space>-<pid>.<random>.tmp -> ['', name..., space-pid, random, 'tmp']
        if not (p.name.startswith(".") and p.name.endswith(_TMP_SUFFIX) and len(parts) >= 5):
            continue
        space, _, pid = parts[-3].rpartition("-")
        if not pid.isdigit():
            continue
        if space == pid_space():
            if int(pid) == os.getpid() or _pid_alive(int(pid)):
                continue
        else:
            try:
                if time.time() - p.lstat().st_mtime < STALE_AFTER:
                    continue
            except OSError:
                continue
        with contextlib.suppress(OSError):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _prepare(dest):
    folder = dest.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _explain(e, folder) from e
    remove_stale_temporaries(folder)
    return folder


def atomic_write(dest, write, mode="wb", size=None):
    """Write the file `dest` by calling `write(f)` on an open temporary file, then rename it into place.

    Returns `dest`. On any error the temporary file is removed and `dest` is left as it was. A full disk (an
    OSError, or the RuntimeError `torch.save` makes of it) is a StorageError naming the folder, the room there
    and `size` (about how many bytes the file needs, where the caller knows), and what to do.

    Example:
        >>> atomic_write(home() / "models" / "m.pt", lambda f: torch.save(state, f))
    """
    dest = Path(dest)
    folder = _prepare(dest)
    tmp = temporary_name(dest)
    with first_ctrl_c_only():
        try:
            with open(tmp, mode) as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException as e:
            failure = _write_failure(e, folder, size)
            _remove_whatever_arrives(tmp)
            explained = _explain(failure, folder, dest, size) if failure is not None else None
            if explained is not None and (failure is e or explained is not failure):
                raise explained from e
            raise
    return dest


def _remove_whatever_arrives(path):
    """Delete the temporary `path`, whatever exception arrives meanwhile (a press that slipped past
    `first_ctrl_c_only`, outside the main thread)."""
    while True:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            return
        except KeyboardInterrupt:
            continue


def atomic_dir(dest, write):
    """Build the folder `dest` by calling `write(tmp)` on an empty temporary folder, then rename it into place.

    If another process put `dest` in place first, that copy is kept and this one discarded: both
    callers get a whole folder. Returns `dest`.
    """
    dest = Path(dest)
    folder = _prepare(dest)
    tmp = temporary_name(dest)
    with first_ctrl_c_only():
        try:
            tmp.mkdir()
            write(tmp)
            try:
                os.rename(tmp, dest)
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST) and dest.is_dir():
                    return dest   # another process finished first: use its copy
                raise
        except BaseException as e:
            if isinstance(e, OSError):
                raise _explain(e, folder) from e
            raise
        finally:
            _remove_whatever_arrives(tmp)
    return dest


@contextlib.contextmanager
def file_lock(path):
    """Hold an exclusive lock on `path` (created if needed) for the block; other processes wait for it.

    Used so that two processes fetching the same data set do the download once. The lock is the `filelock`
    package's (a dependency of PyTorch), which works on Linux, macOS and Windows alike.
    """
    from filelock import FileLock

    path = Path(path)
    _prepare(path)
    with FileLock(str(path)):
        yield


def load_or_none(path, load, what="cache file"):
    """`load(path)`, or None when `path` is missing; a file that cannot be read is named, deleted and None returned.

    The caller then recomputes it, so a truncated or corrupt cache never fails every later run.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load(path)
    except Exception as e:   # truncated, corrupt, or from another version: recompute rather than fail
        print(problem("{what} {path} could not be read ({kind}: {reason}); deleting it and computing it again.",
                      what=what, path=path, kind=type(e).__name__, reason=str(e)[:120]))
        with contextlib.suppress(OSError):
            path.unlink()
        return None


# ---------------------------------------------------------------- downloads

RETRIES = 5          # attempts after a dropped connection
RETRY_WAIT = 1.0     # seconds before the first retry; doubles each time


def _open(url, start, timeout):
    """(response, True if it continues at byte `start`) for `url`, asking for the rest of the file."""
    headers = {"User-Agent": "lessonlib"}
    if start:
        headers["Range"] = f"bytes={start}-"
    response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    resumed = bool(start) and getattr(response, "status", None) == 206
    return response, resumed


def _expected_total(response, start, resumed, size):
    """The whole file's size from the response headers (Content-Range or Content-Length), else `size`."""
    content_range = response.headers.get("Content-Range", "")
    if resumed and "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length) + (start if resumed else 0)
    return size


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download(url, dest, size=None, md5=None, timeout=30, retries=None):
    """Download `url` to the file `dest` with a progress bar; check its size and MD5 when known.

    The bytes go to `dest`'s `.part` file while a lock keeps other processes out (a second process
    waits, then finds `dest` done). A dropped connection is retried up to `RETRIES` times, continuing
    where it stopped when the server allows (HTTP Range), from the start otherwise; a `.part` file left
    by a killed run is continued the same way. `dest` appears only when complete and checked.
    """
    dest = Path(dest)
    retries = RETRIES if retries is None else retries
    with file_lock(dest.with_name(f".{dest.name}.lock")):
        if dest.exists():
            fault = _check_file(dest, size, md5)
            if fault is None:
                return dest
            print(say("{dest} is already there but {fault}: downloading it again", dest=dest, fault=fault))
            dest.unlink()
        part = dest.with_name(dest.name + ".part")   # only the lock holder writes it
        if size is not None and part.exists() and part.stat().st_size > size:   # not the start of this file
            part.unlink()
        bar = tqdm(total=size, initial=0, unit="B", unit_scale=True, desc=dest.name, disable=None)
        try:
            for attempt in range(retries + 1):
                have = part.stat().st_size if part.exists() else 0
                try:
                    response, resumed = _open(url, have, timeout)
                    with response, open(part, "ab" if resumed else "wb") as out:
                        have = have if resumed else 0
                        total = _expected_total(response, have, resumed, size)
                        bar.reset(total=total)
                        bar.update(have)
                        while chunk := response.read(1 << 20):
                            out.write(chunk)
                            have += len(chunk)
                            bar.update(len(chunk))
                    if total is None or have >= total:
                        break
                    reason = f"the connection closed after {have:,} of {total:,} bytes"
                except urllib.error.HTTPError as e:
                    if e.code == 416 and size is not None and have == size:   # the .part was already whole
                        break
                    if e.code == 416:   # the .part is not a beginning of the server's file: start again
                        part.unlink(missing_ok=True)
                        reason = "the partial file did not fit the server's (HTTP 416); starting again"
                    elif e.code < 500 and e.code != 408:
                        raise OSError(problem("{url}: HTTP {code} {reason}", url=url, code=e.code, reason=e.reason)) from e
                    else:
                        reason = f"HTTP {e.code}"
                except urllib.error.URLError as e:
                    if isinstance(e.reason, socket.gaierror):   # retrying cannot fix a name that does not resolve
                        raise OSError(problem("{url}: the server's name cannot be resolved ({reason}): no network, "
                                              "or no DNS here; download it where there is, see data/README.md",
                                              url=url, reason=e.reason)) from e
                    reason = f"{type(e).__name__}: {e}"
                except (OSError, EOFError, http.client.HTTPException) as e:   # reset, time-out, IncompleteRead
                    reason = f"{type(e).__name__}: {e}"
                if attempt == retries:
                    kept = part.stat().st_size if part.exists() else 0
                    if kept:
                        raise OSError(problem("{url}: gave up after {attempts} attempts ({reason}); run it again "
                                              "to continue from byte {kept:,}", url=url, attempts=retries + 1,
                                              reason=reason, kept=kept))
                    raise OSError(problem("{url}: gave up after {attempts} attempts ({reason}); nothing was "
                                          "downloaded; check the network and run it again", url=url,
                                          attempts=retries + 1, reason=reason))
                time.sleep(RETRY_WAIT * 2 ** attempt)
        finally:
            bar.close()
        fault = _check_file(part, size, md5)
        if fault is not None:
            part.unlink()
            raise OSError(problem("{url}: the download {fault}; the file on the server changed or the download "
                                  "was cut short", url=url, fault=fault))
        os.replace(part, dest)
    return dest


def _check_file(path, size, md5):
    """None if `path` has the expected size and MD5 (each where known), else what is wrong."""
    got = path.stat().st_size
    if size is not None and got != size:
        return f"has {got:,} bytes, expected {size:,}"
    if md5 is not None and _md5(path) != md5:
        return f"does not have the MD5 {md5}"
    return None
