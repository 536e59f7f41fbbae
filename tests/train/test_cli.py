"""The evaluate.py command line: exit status and messages on good and bad input."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from ._paths import REPO_ROOT

SCRIPT = REPO_ROOT / "models" / "train" / "evaluate.py"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--no-progress", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


class CliTest(unittest.TestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self._tmp.name)

    def tearDown(self) -> None:
        self._tmp.cleanup()

    def write_events(self, lines: list[str]) -> Path:
        path = self.dir / "events.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    @staticmethod
    def event(user: str, item: str, ts: int) -> str:
        return json.dumps({"user_id": user, "item_id": item, "ts": ts, "event_type": "purchase",
                           "dwell_s": None, "amount": 5.0, "rating": None, "text": ""})

    def test_malformed_events_exit_2_naming_file_and_line(self) -> None:
        path = self.write_events([self.event("u", "1", 1), '{"user_id": "u", "item_id": 2, "ts": "x",'])
        proc = run("--events", str(path))
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(f"{path}:2: invalid JSON", proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)

    def test_bad_field_type_exit_2(self) -> None:
        path = self.write_events([self.event("u", "1", 1), json.dumps({"user_id": "u", "item_id": "2", "ts": 3,
                                                                      "event_type": "bought"})])
        proc = run("--events", str(path))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("events.jsonl:2: event_type must be one of", proc.stderr)

    def test_usage_errors_exit_2(self) -> None:
        self.assertEqual(run().returncode, 2)
        proc = run("--dataset", "no-such-set")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("unknown dataset 'no-such-set'", proc.stderr)
        proc = run("--dataset", "movielens-100k", "--models", "magic")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("unknown model 'magic'", proc.stderr)

    def test_missing_data_dir_exit_2(self) -> None:
        proc = run("--dataset", "movielens-100k", env={"DR_DATA_DIR": str(self.dir / "nowhere")})
        self.assertEqual(proc.returncode, 2)
        self.assertIn("not found at", proc.stderr)

    def test_good_events_table_and_json(self) -> None:
        lines = [self.event(f"u{u}", str(i), t) for u in range(12) for t, i in enumerate(range(u, u + 5))]
        lines.append(json.dumps({"item_id": "3", "ts": 1, "event_type": "view"}))  # no user: dropped, counted
        path = self.write_events(lines)
        out = self.dir / "res.json"
        proc = run("--events", str(path), "--negatives", "3", "--json", str(out))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("| events.jsonl | popularity |", proc.stdout)
        self.assertIn("dropped_missing_user=1", proc.stderr)
        record = json.loads(out.read_text())["results"][0]
        self.assertEqual(record["evaluated_users"], 12)
        self.assertEqual(record["clean"]["counts"]["dropped_missing_user"], 1)
        self.assertIn("NDCG@10", record["models"]["transitions"]["metrics"])
        self.assertIn("item-knn", record["paired_vs_reference"])


class ConvertTest(unittest.TestCase):
    def test_pairs_to_events_and_bad_line(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "pairs.txt"
            src.write_text("1 5\n1 3\n2 5\n", encoding="utf-8")
            script = REPO_ROOT / "models" / "train" / "convert.py"
            proc = subprocess.run([sys.executable, str(script), "--pairs", str(src), "--out", str(Path(tmp) / "o")],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            lines = (Path(tmp) / "o" / "events.jsonl").read_text().splitlines()
            self.assertEqual(json.loads(lines[1]), {"user_id": "1", "item_id": "3", "ts": 1, "event_type": "review",
                                                    "dwell_s": None, "amount": None, "rating": None, "text": ""})
            counts = json.loads((Path(tmp) / "o" / "clean.json").read_text())["counts"]
            self.assertEqual(counts["rows_out"], 3)
            src.write_text("1 5\n1\n", encoding="utf-8")
            proc = subprocess.run([sys.executable, str(script), "--pairs", str(src), "--out", str(Path(tmp) / "o")],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 2)
            self.assertIn("pairs.txt:2: expected 'user item'", proc.stderr)


if __name__ == "__main__":
    unittest.main()
