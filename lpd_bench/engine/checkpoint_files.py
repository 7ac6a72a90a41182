"""Checkpoint files that survive a kill: written atomically, checked before a resume.

A cluster kills training at any moment (preemption, time limit, OOM). MMEngine 0.10.7 writes a
checkpoint with ``open(path, 'wb').write(...)`` under its final name, deletes the previous one
*before* saving the next (``max_keep_ckpts``) and rewrites the ``last_checkpoint`` pointer in
place, so a kill or a full disk could leave a truncated ``iter_N.pth`` (or an empty pointer), and
every ``--resume`` afterwards failed with torch's "failed finding central directory".

Writing (``AtomicCheckpointHook``, lpd_bench/engine/atomic_checkpoint.py, the base of the
project's ``DelayedBestCheckpointHook``): checkpoints go through :class:`AtomicLocalBackend`, a
file backend registered with MMEngine as ``'lpd_atomic_local'`` whose ``put`` is
:func:`~lpd_bench.engine.atomic_json.atomic_file` (temp file in the same folder, fsync,
``os.replace``); the pointer is written by :func:`write_pointer` the same way. Why a hook and a
named backend rather than patching ``torch.save`` or ``Runner.save_checkpoint`` on import: only
runs whose checkpoint hook asks for it change (every config of the project, through
``configs/_base_/default_runtime.py``), nothing else in the process does, and MMEngine's own
checkpoint code still builds the checkpoint, so its contents stay the same.

Reading (:func:`find_resume_checkpoint`, the one place that decides which checkpoint a work dir
resumes from; ``lpd_bench.runner.results.last_checkpoint`` and ``tools/train.py --resume`` use
it): the file the pointer names is checked (:func:`checkpoint_problem`); when it is missing,
truncated or otherwise unreadable, or the pointer is empty or missing, the newest good
``iter_*.pth`` / ``epoch_*.pth`` is taken instead (when the pointer names a numbered checkpoint,
one not newer than it) and the pointer is rewritten to name it. When none is good, the stage
restarts from scratch: ``tools/train.py --resume`` then trains without resuming; nothing is
deleted (a later save replaces the bad files under their names).

The check (:func:`checkpoint_problem`) reads the zip archive's central directory (the end of the
file: what a truncation loses first, and what torch looks for), the ``data.pkl`` record (with
its CRC) and, with ``verify_data=True`` (the resume in ``tools/train.py``), the CRC of every
record; it loads no tensors. A file that is not a zip archive (torch's legacy format) passes the
quick check and fails the full one (MMEngine always writes zip archives).
"""
import fnmatch
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from mmengine.fileio import LocalBackend, register_backend

from .atomic_json import atomic_file, write_text_atomic

#: MMEngine's pointer file in the work dir: the path of the newest checkpoint.
POINTER = 'last_checkpoint'
#: Checkpoints a run can resume from (MMEngine's default names; best_*.pth hold no optimiser).
RESUMABLE_GLOBS = ('iter_*.pth', 'epoch_*.pth')
#: Temp files :func:`atomic_file` leaves when a process is killed while writing a checkpoint.
TEMP_GLOBS = ('.iter_*.pth.*.tmp', '.epoch_*.pth.*.tmp', '.best_*.pth.*.tmp')
#: The file backend name the atomic hook passes MMEngine (``backend_args=dict(backend=...)``).
ATOMIC_BACKEND = 'lpd_atomic_local'
ZIP_MAGIC = b'PK\x03\x04'


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose ``put`` (how ``save_checkpoint`` writes the bytes of
    a checkpoint) writes atomically: a temp file next to the target, fsynced, then renamed onto
    it; a write that fails (full disk) or is interrupted leaves the old file as it was."""

    def put(self, obj: bytes, filepath) -> None:
        with atomic_file(filepath, 'wb') as f:
            f.write(obj)


def write_pointer(work_dir, checkpoint) -> None:
    """Write MMEngine's ``last_checkpoint`` pointer (the checkpoint's path) atomically."""
    write_text_atomic(Path(work_dir) / POINTER, str(checkpoint))


def checkpoint_number(path) -> int:
    """The iteration (or epoch) of ``iter_<n>.pth``-like names, -1 when there is none."""
    digits = Path(path).stem.rpartition('_')[2]
    return int(digits) if digits.isdigit() else -1


def _crc_recorded(infos) -> bool:
    """False when the archive's writer recorded no CRC (torch.serialization.set_crc32_options
    (False) writes 0 for every record): the CRCs then say nothing."""
    return any(info.CRC != 0 for info in infos if info.file_size > 0)


def checkpoint_problem(path, verify_data: bool = False) -> Optional[str]:
    """What is wrong with the checkpoint file ``path`` (None: nothing found).

    Quick check: the file exists, is not empty, and, when it is a zip archive (what torch.save
    writes), its central directory is present and consistent, it has a ``data.pkl`` record and
    that record reads back with its CRC. ``verify_data=True`` also checks the CRC of every record
    (reads the whole file) and rejects files that are not zip archives.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 'missing (no such file)'
    except OSError as err:
        return f'unreadable ({err.strerror or err})'
    if not path.is_file():
        return 'not a file'
    if size == 0:
        return 'empty (0 bytes)'
    try:
        with open(path, 'rb') as f:
            head = f.read(len(ZIP_MAGIC))
        if head != ZIP_MAGIC and len(head) < len(ZIP_MAGIC) and ZIP_MAGIC.startswith(head):
            return f'truncated: {size} bytes, the start of a zip archive'
        if head != ZIP_MAGIC:
            if verify_data:
                return f'not a zip archive (torch.save writes one; {size} bytes, starts {head!r})'
            return None
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            past_end = [info.filename for info in infos
                        if info.header_offset + info.compress_size > size]
            if past_end:
                return (f'truncated: record {past_end[0]!r} ends past the end of the file '
                        f'({size} bytes)')
            pickles = [info for info in infos
                       if info.filename == 'data.pkl' or info.filename.endswith('/data.pkl')]
            if not pickles:
                return f'no data.pkl record: not a torch.save archive ({size} bytes)'
            if not _crc_recorded(infos):
                return None  # nothing to verify the records against
            archive.read(pickles[0])
            if verify_data:
                bad = archive.testzip()
                if bad is not None:
                    return f'corrupt: record {bad!r} fails its CRC check ({size} bytes)'
    except zipfile.BadZipFile as err:
        if 'not a zip file' in str(err).lower():
            return (f'truncated: no zip end-of-central-directory record ({size} bytes; torch: '
                    '"failed finding central directory")')
        return f'corrupt zip archive: {err} ({size} bytes)'
    except (OSError, EOFError, ValueError, NotImplementedError, zlib.error) as err:
        return f'unreadable zip archive: {type(err).__name__}: {err} ({size} bytes)'
    return None


@dataclass
class ResumePoint:
    """What :func:`find_resume_checkpoint` found in a work dir."""

    work_dir: Path
    #: The checkpoint to resume from (absolute), None when there is no good one.
    checkpoint: Optional[Path] = None
    #: What the pointer held ('' when empty, None when there is no pointer file).
    pointer_text: Optional[str] = None
    #: Checkpoint files passed over, with what is wrong with each: the pointer's target first,
    #: then the numbered checkpoints tried (or newer than the one taken) that are bad.
    problems: List[Tuple[Path, str]] = field(default_factory=list)
    #: The pointer was rewritten to name ``checkpoint``.
    repaired: bool = False

    def messages(self) -> List[str]:
        """Log lines naming each bad file with what is wrong and what was done."""
        lines = []
        if self.pointer_text is not None and not self.pointer_text:
            lines.append(f'{self.work_dir / POINTER} is empty (killed while it was written?).')
        for path, problem in self.problems:
            lines.append(f'Checkpoint {path} cannot be resumed from: {problem}.')
        if self.checkpoint is not None and (self.problems or self.repaired):
            lines.append(f'Resuming from {self.checkpoint}, the newest good checkpoint'
                         + (f' ({POINTER} now names it).' if self.repaired else '.'))
        elif self.checkpoint is None and (self.problems or self.pointer_text is not None):
            lines.append(f'No good checkpoint in {self.work_dir}: the stage restarts from '
                         'scratch (no file is deleted).')
        return lines


def _pointer_target(work_dir: Path, text: str) -> Path:
    """The file the pointer text names: an absolute path as is, else its name in the work dir."""
    path = Path(text)
    return path if path.is_absolute() else work_dir / path.name


def resumable_checkpoints(work_dir) -> List[Path]:
    """The work dir's ``iter_*.pth`` / ``epoch_*.pth``, newest (highest number) first."""
    work_dir = Path(work_dir)
    found = {p for pattern in RESUMABLE_GLOBS for p in work_dir.glob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: (checkpoint_number(p), p.name), reverse=True)


def find_resume_checkpoint(work_dir, verify_data: bool = False,
                           repair: bool = True) -> ResumePoint:
    """The checkpoint ``work_dir`` resumes from (module doc), with the bad files passed over.

    The pointer's file is taken when :func:`checkpoint_problem` finds nothing wrong with it.
    Otherwise (missing, bad, pointer empty or absent) the newest good numbered checkpoint of the
    work dir; when the pointer named a numbered checkpoint, only those not newer than it (newer
    ones belong to an earlier run in the same folder). With ``repair`` the pointer is rewritten
    (atomically) to name the checkpoint taken when it did not; it is left alone when none is good.
    Bad numbered checkpoints newer than the one taken are listed in ``problems`` too.
    """
    work_dir = Path(work_dir).absolute()
    point = ResumePoint(work_dir=work_dir)
    pointer = work_dir / POINTER
    if pointer.is_file():
        point.pointer_text = pointer.read_text().strip()
    limit = None
    if point.pointer_text:
        target = _pointer_target(work_dir, point.pointer_text)
        problem = checkpoint_problem(target, verify_data)
        if problem is None:
            point.checkpoint = target
        else:
            point.problems.append((target, problem))
            limit = checkpoint_number(target) if checkpoint_number(target) >= 0 else None
    checked = {p for p, _ in point.problems}
    for path in resumable_checkpoints(work_dir):
        if path in checked:
            continue
        number = checkpoint_number(path)
        if point.checkpoint is not None:
            # Only newer bad files are reported; older ones are not looked at once one is taken.
            taken = checkpoint_number(point.checkpoint)
            if taken < 0 or number <= taken:
                break
        elif limit is not None and number > limit:
            continue
        problem = checkpoint_problem(path, verify_data)
        if problem is not None:
            point.problems.append((path, problem))
        elif point.checkpoint is None:
            point.checkpoint = path
    if repair and point.checkpoint is not None and (
            not point.pointer_text or Path(point.pointer_text) != point.checkpoint):
        write_pointer(work_dir, point.checkpoint)
        point.repaired = True
    return point


def remove_stale_temp_files(work_dir) -> List[Path]:
    """Delete the temp files a killed checkpoint write left in ``work_dir`` (``.iter_4.pth.
    x1y2.tmp``...: never a checkpoint, often as large as one); returns them. Only call it
    while no process writes checkpoints into ``work_dir``."""
    removed = []
    for entry in sorted(os.scandir(work_dir), key=lambda e: e.name):
        if entry.is_file() and any(fnmatch.fnmatchcase(entry.name, g) for g in TEMP_GLOBS):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed.append(Path(entry.path))
    return removed


def prepare_resume(cfg, logger: Optional[logging.Logger] = None) -> List[str]:
    """Before building the runner of ``tools/train.py``: make ``cfg.resume`` safe.

    With ``cfg.resume`` and no ``cfg.load_from`` (MMEngine's auto-resume from the pointer):
    :func:`find_resume_checkpoint` with ``verify_data=True`` repairs the pointer to name the
    newest good checkpoint, or, when there is none, ``cfg.resume`` is set to False (the stage
    starts from scratch). With ``cfg.load_from`` given, a bad file is an error (SystemExit):
    the user named it. Without ``cfg.resume``, bad checkpoints left in the work dir are only
    reported (the runner starts a run from scratch when it finds no good one). Temp files of
    interrupted checkpoint writes are removed (by the process of rank 0).

    Returns the log lines (each bad file and what is wrong, what was done); they are also
    logged as warnings to ``logger`` when given.
    """
    work_dir = Path(cfg.work_dir)
    lines = []
    if cfg.get('resume', False) and cfg.get('load_from') is not None:
        problem = checkpoint_problem(cfg.load_from, verify_data=True)
        if problem is not None:
            raise SystemExit(f'--resume from load_from={cfg.load_from!r}: {problem}')
    elif work_dir.is_dir():
        if os.environ.get('RANK', '0') == '0':
            removed = remove_stale_temp_files(work_dir)
            if removed:
                lines.append('Removed temp files of interrupted checkpoint writes: '
                             + ', '.join(p.name for p in removed) + '.')
        resume = bool(cfg.get('resume', False))
        point = find_resume_checkpoint(work_dir, verify_data=resume, repair=resume)
        if resume:
            lines += point.messages() or ([] if point.checkpoint is not None else [
                f'--resume: no checkpoint in {work_dir}; training starts from scratch.'])
            if point.checkpoint is None:
                cfg.resume = False
        elif point.problems:
            lines += [f'Checkpoint {path} in the work dir is unusable ({problem}); training '
                      'starts from scratch (no --resume).' for path, problem in point.problems]
    if logger is not None:
        for line in lines:
            logger.warning(line)
    return lines
