"""Write files atomically: a temp file in the same folder, fsynced, then ``os.replace``.

Every writer of a result, report or bank goes through :func:`atomic_file` (JSON:
:func:`write_json_atomic`, text: :func:`write_text_atomic`), so readers see the old file or the
new one, never half of one.
"""
import contextlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_file(path, mode: str = 'w', **open_kwargs):
    """Open a temp file next to ``path`` for writing; on a normal exit it is flushed, fsynced and
    renamed onto ``path`` (so a crash right after cannot leave an empty file under the final
    name); on an exception it is removed and ``path`` is left as it was. Missing folders are made.
    The file is readable by all (0o644), as results and reports are meant to be read."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
    try:
        os.chmod(tmp_path, 0o644)  # mkstemp makes it private
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        os.unlink(tmp_path)
        raise


def _is_array(value) -> bool:
    """A list of numbers, or of such lists (any depth)."""
    return isinstance(value, list) and all(
        _is_array(v) if isinstance(v, list) else isinstance(v, (int, float)) or v is None
        for v in value)


def json_text(obj, indent=2, level=0) -> str:
    """``obj`` as ``json.dumps(obj, indent=2)`` would write it, except that arrays of numbers (the
    confusion matrices, above all ``per_image``'s) stay on one line without spaces: a 5x5 matrix
    per image would take 36 indented lines. NaN is rejected (callers write it as null)."""
    pad, inner = ' ' * (indent * level), ' ' * (indent * (level + 1))
    if isinstance(obj, dict) and obj:
        items = [f'{inner}{json.dumps(str(k))}: {json_text(v, indent, level + 1)}'
                 for k, v in obj.items()]
        return '{\n' + ',\n'.join(items) + '\n' + pad + '}'
    if isinstance(obj, list) and obj and not _is_array(obj):
        items = [f'{inner}{json_text(v, indent, level + 1)}' for v in obj]
        return '[\n' + ',\n'.join(items) + '\n' + pad + ']'
    return json.dumps(obj, separators=(',', ':') if isinstance(obj, list) else None,
                      allow_nan=False, default=str)


def write_json_atomic(path, obj):
    """Write ``obj`` as JSON to ``path`` atomically (:func:`atomic_file`), laid out by
    :func:`json_text` (arrays of numbers on one line).

    NaN is not valid JSON: callers convert it to ``None`` first (``allow_nan=False`` checks).
    Values JSON does not know (paths) are written as strings.
    """
    with atomic_file(path) as f:
        f.write(json_text(obj))
        f.write('\n')


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_file`), newlines as given."""
    with atomic_file(path, newline='') as f:
        f.write(text)
