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
