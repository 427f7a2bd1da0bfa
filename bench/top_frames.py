"""The top inclusive entries of a py-spy profile: `python bench/top_frames.py samples.txt [N]`.

Reads py-spy's raw (collapsed) output, one stack per line, `frame;frame;... count`, and prints, per
function (file and name, lines merged), the share of all samples in which it is on the stack.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

LINE = re.compile(r":\d+\)")


def top(path: str, limit: int) -> list[tuple[str, float]]:
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as samples:
        for line in samples:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            for frame in {LINE.sub(")", frame) for frame in stack.split(";")}:
                inclusive[frame] += n
    return [(frame, 100 * n / total) for frame, n in inclusive.most_common(limit)] if total else []


if __name__ == "__main__":
    for frame, share in top(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 60):
        print(f"{share:5.1f}%  {frame}")
