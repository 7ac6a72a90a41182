"""Write JSON files atomically: a temp file in the same folder, then ``os.replace``."""
import json
import os
import tempfile


def write_json_atomic(path, obj):
    """Write ``obj`` as JSON to ``path`` so readers see the old file or the new one, never half.

    NaN is not valid JSON: callers convert it to ``None`` first (``allow_nan=False`` checks).
    Values JSON does not know (paths) are written as strings. The data is fsynced before the
    rename, so a crash right after it cannot leave an empty file under the final name.
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
    try:
        os.chmod(tmp_path, 0o644)  # mkstemp makes it private; results are meant to be read
        with os.fdopen(fd, 'w') as f:
            json.dump(obj, f, indent=2, allow_nan=False, default=str)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        os.unlink(tmp_path)
        raise
