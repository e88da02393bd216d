"""The maintenance guide's LogAnalyzer, as written there: the speed baseline.

Line by line, several regexes per line, "ERROR" counted anywhere in a line.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict


class GuideLogAnalyzer:
    def __init__(self, log_file: str):
        self.log_file = log_file

    def analyze(self) -> dict:
        stats = {
            "total_requests": 0,
            "error_count": 0,
            "avg_response_time": 0,
            "top_errors": Counter(),
            "hourly_distribution": defaultdict(int),
            "endpoint_usage": defaultdict(int),
        }
        response_times = []
        with open(self.log_file, encoding="utf-8", errors="replace") as f:
            for line in f:
                if self.is_date_match(line):
                    stats["total_requests"] += 1
                    hour = self.extract_hour(line)
                    if hour:
                        stats["hourly_distribution"][hour] += 1
                    if "ERROR" in line:
                        stats["error_count"] += 1
                        stats["top_errors"][self.extract_error_type(line)] += 1
                    rt = self.extract_response_time(line)
                    if rt:
                        response_times.append(rt)
                    endpoint = self.extract_endpoint(line)
                    if endpoint:
                        stats["endpoint_usage"][endpoint] += 1
        if response_times:
            stats["avg_response_time"] = sum(response_times) / len(response_times)
        return stats

    def is_date_match(self, line: str) -> bool:
        return re.match(r"^\d{4}-\d{2}-\d{2}", line) is not None

    def extract_hour(self, line: str) -> str | None:
        m = re.match(r"^\d{4}-\d{2}-\d{2} (\d{2}):", line)
        return m.group(1) if m else None

    def extract_error_type(self, line: str) -> str:
        m = re.search(r"ERROR - ([^:]+)", line)
        return m.group(1) if m else "unknown"

    def extract_response_time(self, line: str) -> float | None:
        m = re.search(r"Response: \d+ - ([\d.]+)s", line)
        return float(m.group(1)) if m else None

    def extract_endpoint(self, line: str) -> str | None:
        m = re.search(r"Request: (\w+ \S+)", line)
        return m.group(1) if m else None
