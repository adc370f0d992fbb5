#!/usr/bin/env python3
"""Runs on the storage VM: checks the outputs share against a list of stems.

  share_check.py DIR [STEMS_FILE]

STEMS_FILE holds one output stem per line (from the nodes' access logs). Prints
JSON: how many results the share holds, the stems with no WAV or no sidecar,
WAVs whose RIFF size does not match the file (partial), sidecars that do not
parse or name another WAV, hidden temporary files, and the owners seen.
Standard library only.
"""

import json
import os
import struct
import sys


def wav_complete(path):
    with open(path, "rb") as fh:
        head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    return struct.unpack("<I", head[4:8])[0] + 8 == os.path.getsize(path)


def main():
    directory = sys.argv[1]
    stems = []
    if len(sys.argv) > 2:
        with open(sys.argv[2], encoding="utf-8") as fh:
            stems = [ln.strip() for ln in fh if ln.strip()]
    names = os.listdir(directory)
    wavs = {n[:-4] for n in names if n.endswith(".wav") and not n.startswith(".")}
    sidecars = {n[:-5] for n in names if n.endswith(".json") and not n.startswith(".")}
    partial, bad_sidecars, owners = [], [], set()
    for stem in sorted(wavs):
        path = os.path.join(directory, stem + ".wav")
        owners.add(os.stat(path).st_uid)
        if not wav_complete(path):
            partial.append(stem)
    for stem in sorted(sidecars):
        try:
            with open(os.path.join(directory, stem + ".json"), encoding="utf-8") as fh:
                doc = json.load(fh)
            if doc.get("wav") != stem + ".wav":
                bad_sidecars.append(stem)
        except (OSError, ValueError):
            bad_sidecars.append(stem)
    result = {
        "results_on_share": len(wavs & sidecars),
        "stems_checked": len(stems),
        "missing_wav": sorted(s for s in stems if s not in wavs),
        "missing_sidecar": sorted(s for s in stems if s not in sidecars),
        "wav_without_sidecar": sorted(wavs - sidecars),
        "partial_wav": partial,
        "bad_sidecar": bad_sidecars,
        "hidden_tmp": sorted(n for n in names if n.startswith(".") and n.endswith(".tmp")),
        "owners": sorted(owners),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
