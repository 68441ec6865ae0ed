"""Writes a benchmark's figures, with the machine they came from, to JSON."""

import json
import os
import platform


def write_report(path, results, **settings):
    """Writes `{"machine", **settings, "results"}` to `path` and says so.

    Returns:
        The report dict.
    """
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
        },
        **settings,
        "results": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"Wrote {path}")
    return report


def replace_between_markers(path, name, text):
    """Puts `text` between the `<!-- NAME: start -->` and `<!-- NAME: end
    -->` markers of the file at `path` (a README table, say).

    Returns:
        False, changing nothing, when the file lacks the markers.
    """
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    with open(path) as f:
        content = f.read()
    if start not in content or end not in content:
        return False
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(f"{head}{start}\n{text}\n{end}{tail}")
    print(f"Updated the {name} in {path}")
    return True
