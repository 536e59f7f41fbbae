"""driftrec-ab-report's statistics against answers computed by hand, the sample-ratio check,
and its refusals of bad input (a clear one-line error naming the line, never a traceback)."""
import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import ab_report as ab  # noqa: E402

TOOL = os.path.join(REPO, "tools", "driftrec-ab-report")


def rec(kind, user, variant="A", etype=None, amount=None):
    r = {"kind": kind, "seq": 1, "user_id": user, "item_id": "i", "ts": 1,
         "event_type": etype or ("impression" if kind == "impression" else "click"),
         "amount": amount}
    if variant is not None:
        r["variant"] = variant
    return json.dumps(r)


def user_lines(variant, user, impressions, clicks=0, purchases=(), views=0):
    out = [rec("impression", user, variant) for _ in range(impressions)]
    out += [rec("event", user, variant, "click") for _ in range(clicks)]
    out += [rec("event", user, variant, "purchase", a) for a in purchases]
    out += [rec("event", user, variant, "view") for _ in range(views)]
    return out


def tally_of(lines):
    t = ab.Tally()
    for r in ab.parse_records(lines, "test"):
        t.add(*r)
    return t


class Statistics(unittest.TestCase):
    def test_ratio_estimate_by_hand(self):
        # x = (1, 0, 3), y = (2, 2, 4): R = 4/8; residuals x - R y = (0, -1, 1), sum of
        # squares 2; se = sqrt(2 / (3 * 2)) / (8 / 3) = 0.2165064.
        r, se = ab.ratio_estimate([1, 0, 3], [2, 2, 4])
        self.assertEqual(r, 0.5)
        self.assertAlmostEqual(se, math.sqrt(1 / 3) * 3 / 8, places=12)
        self.assertAlmostEqual(se, 0.21650635, places=7)
        self.assertEqual(ab.ratio_estimate([], []), (None, None))
        self.assertEqual(ab.ratio_estimate([1, 2], [0, 0]), (None, None))
        self.assertEqual(ab.ratio_estimate([1], [4]), (0.25, None))

    def test_intervals_are_per_user_not_per_impression(self):
        # 10 users of 100 impressions each; one clicks everything, nine nothing.  CTR 0.1
        # either way, but per impression the binomial se is sqrt(.1 * .9 / 1000) = 0.0095,
        # while over users it is sqrt(((100 - 10)^2 + 9 * 10^2) / (10 * 9)) / 100 = 0.1.
        r, se = ab.ratio_estimate([100] + [0] * 9, [100] * 10)
        self.assertAlmostEqual(r, 0.1)
        self.assertAlmostEqual(se, 0.1, places=12)
        self.assertGreater(se, 10 * math.sqrt(0.1 * 0.9 / 1000))

    def test_difference_by_hand(self):
        # 0.2 - 0.1 with se sqrt(0.03^2 + 0.04^2) = 0.05: z = 2, p = erfc(2 / sqrt 2).
        d = ab.difference((0.1, 0.03), (0.2, 0.04))
        self.assertAlmostEqual(d["diff"], 0.1)
        self.assertAlmostEqual(d["se"], 0.05)
        self.assertAlmostEqual(d["p_value"], 0.0455003, places=6)
        self.assertAlmostEqual(d["ci"][0], 0.1 - 1.959964 * 0.05, places=6)
        self.assertAlmostEqual(d["relative"], 1.0)
        self.assertTrue(d["significant"])
        self.assertFalse(ab.difference((0.1, 0.03), (0.2, 0.04), alpha=0.01)["significant"])
        self.assertIsNone(ab.difference((None, None), (0.2, 0.04)))
        self.assertEqual(ab.difference((0.5, 0.0), (0.5, 0.0))["p_value"], 1.0)

    def test_chi2_tail_at_known_quantiles(self):
        for df, x, p in [(1, 3.841458820694124, 0.05), (2, 5.991464547107979, 0.05),
                         (3, 7.814727903251178, 0.05), (1, 10.827566170662733, 0.001),
                         (4, 1.0636232167792, 0.9), (10, 29.58829844507442, 0.001)]:
            self.assertAlmostEqual(ab.chi2_sf(x, df), p, delta=p * 1e-6, msg=(df, x))
        self.assertEqual(ab.chi2_sf(0, 1), 1.0)

    def test_sample_ratio_check(self):
        ok = ab.srm_check({"A": 500, "B": 500}, {"A": 50, "B": 50})
        self.assertEqual((ok["chi2"], ok["p_value"], ok["mismatch"]), (0.0, 1.0, False))
        # 550/450 of 50/50: chi2 = 2 * 50^2 / 500 = 10, p = erfc(sqrt 5) = 0.00157: passes.
        edge = ab.srm_check({"A": 550, "B": 450}, {"A": 50, "B": 50})
        self.assertAlmostEqual(edge["chi2"], 10.0)
        self.assertAlmostEqual(edge["p_value"], math.erfc(math.sqrt(5)), places=12)
        self.assertFalse(edge["mismatch"])
        self.assertTrue(ab.srm_check({"A": 600, "B": 400}, {"A": 50, "B": 50})["mismatch"])
        # 90/10 is what a 90/10 split should give; the same counts against 50/50 are not.
        self.assertFalse(ab.srm_check({"A": 905, "B": 95}, {"A": 90, "B": 10})["mismatch"])
        self.assertTrue(ab.srm_check({"A": 905, "B": 95}, {"A": 50, "B": 50})["mismatch"])
        # An arm with users but no share at all.
        bad = ab.srm_check({"A": 10, "B": 1}, {"A": 100, "B": 0})
        self.assertTrue(bad["mismatch"])
        self.assertIsNone(bad["chi2"])


class Report(unittest.TestCase):
    def test_small_log_by_hand(self):
        lines = (user_lines("A", "u1", 2, clicks=1) + user_lines("A", "u2", 2, views=3)
                 + user_lines("B", "u3", 4, clicks=2, purchases=[10.0])
                 + user_lines("B", "u4", 2, clicks=1, purchases=[30.0, None])
                 + [rec("event", "u5", None, "click"), '{"error":"undecodable record"}'])
        r = ab.analyse(tally_of(lines))
        a, b = r["arms"]["A"], r["arms"]["B"]
        self.assertEqual((a["users"], a["impressions"], a["clicks"], a["purchases"]),
                         (2, 4, 1, 0))
        self.assertEqual((b["users"], b["impressions"], b["clicks"], b["purchases"],
                          b["orders_with_amount"]), (2, 6, 3, 3, 2))
        # A: CTR 1/4; residuals (1 - .5, 0 - .5): se = sqrt(.5 / 2) / 2 = 0.25.
        self.assertEqual(a["ctr"]["value"], 0.25)
        self.assertAlmostEqual(a["ctr"]["se"], 0.25)
        self.assertEqual(a["cvr"]["value"], 0.0)  # one click, no purchase
        self.assertIsNone(a["aov"]["value"])      # no order: no average
        self.assertEqual(b["ctr"]["value"], 0.5)
        self.assertEqual(b["cvr"]["value"], 1.0)   # 3 purchases / 3 clicks
        self.assertEqual(b["aov"]["value"], 20.0)  # (10 + 30) / the 2 with an amount
        self.assertEqual(r["control"], "A")
        self.assertEqual(r["unattributed_records"], 1)
        self.assertEqual(r["unreadable_records"], 1)
        self.assertEqual(r["users_in_several_arms"], 0)
        ctr = [c for c in r["comparisons"] if c["metric"] == "ctr"][0]
        self.assertEqual((ctr["arm"], ctr["vs"]), ("B", "A"))
        self.assertAlmostEqual(ctr["diff"], 0.25)

    def synthetic(self, ctr_a, ctr_b, n_a=300, n_b=300, seed=1):
        rng = random.Random(seed)
        lines = []
        for arm, ctr, n in (("A", ctr_a, n_a), ("B", ctr_b, n_b)):
            for u in range(n):
                imps = rng.randint(5, 15)
                clicks = sum(rng.random() < ctr for _ in range(imps))
                lines += user_lines(arm, f"{arm}{u}", imps, clicks=clicks,
                                    purchases=[rng.uniform(5, 50)] if clicks and
                                    rng.random() < 0.3 else [])
        return tally_of(lines)

    def test_verdicts(self):
        better = ab.analyse(self.synthetic(0.10, 0.20), {"A": 50, "B": 50})
        self.assertEqual(better["verdict"]["better_arm"], "B")
        self.assertFalse(better["srm"]["mismatch"])
        worse = ab.analyse(self.synthetic(0.20, 0.10), {"A": 50, "B": 50})
        self.assertEqual(worse["verdict"]["better_arm"], "A")
        same = ab.analyse(self.synthetic(0.15, 0.15), {"A": 50, "B": 50})
        self.assertIsNone(same["verdict"]["better_arm"])
        self.assertIn("no significant difference", same["verdict"]["text"])
        skewed = ab.analyse(self.synthetic(0.10, 0.20, n_a=400, n_b=200), {"A": 50, "B": 50})
        self.assertTrue(skewed["srm"]["mismatch"])
        self.assertIsNone(skewed["verdict"]["better_arm"])
        self.assertIn("sample ratio mismatch", skewed["verdict"]["text"])
        # The same counts are fine for a 2:1 split.
        ok = ab.analyse(self.synthetic(0.10, 0.20, n_a=400, n_b=200), {"A": 2, "B": 1})
        self.assertEqual(ok["verdict"]["better_arm"], "B")


class CommandLine(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, lines):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def run_main(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            rc = ab.main(list(args))
        return rc, out.getvalue(), err.getvalue()

    def test_outputs(self):
        lines = []
        for u in range(40):
            lines += user_lines("A", f"a{u}", 10, clicks=u % 2)
            lines += user_lines("B", f"b{u}", 10, clicks=3 + u % 2, purchases=[12.5])
        log = self.write("log.jsonl", lines)
        js, md, png = (os.path.join(self.dir.name, n) for n in ("r.json", "r.md", "r.png"))
        r = subprocess.run([TOOL, "--log", log, "--split", "A=50,B=50", "--json", js,
                            "--markdown", md, "--chart", png], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(js) as f:
            report = json.load(f)
        self.assertEqual(report["verdict"]["better_arm"], "B")
        with open(md) as f:
            text = f.read()
        self.assertIn("| A (control) | 40 | 400 | 20 | 0 |", text)
        self.assertIn("**Verdict:** B is better on CTR", text)
        self.assertIn("Sample ratio check: users A 40, B 40", text)
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_bad_input_names_the_line(self):
        good = rec("impression", "u1")
        cases = [
            ([good, "{not json"], "line 2: not a JSON object"),
            ([good, "[1, 2]"], "line 2: not a JSON object"),
            ([good, good, json.dumps({"kind": "click", "user_id": "u"})],
             'line 3: "kind" must be "event" or "impression", not "click"'),
            ([json.dumps({"kind": "event", "user_id": "", "event_type": "click"})],
             'line 1: "user_id" missing or not a non-empty string'),
            ([json.dumps({"kind": "event", "user_id": "u", "event_type": 3})],
             'line 1: "event_type" missing or not a string'),
            ([json.dumps({"kind": "event", "user_id": "u", "event_type": "purchase",
                          "amount": -1, "variant": "A"})],
             'line 1: "amount" is not a non-negative number'),
            ([json.dumps({"kind": "event", "user_id": "u", "event_type": "click",
                          "variant": 7})], 'line 1: "variant" is not a string'),
            ([rec("event", "u", None)], "no record in the log names a variant"),
            ([], "no record in the log names a variant"),
        ]
        for lines, message in cases:
            with self.subTest(message):
                path = self.write("bad.jsonl", lines)
                rc, _, err = self.run_main("--log", path)
                self.assertEqual(rc, 2)
                self.assertIn(message, err)
                self.assertNotIn("Traceback", err)
        path = self.write("bytes.jsonl", [])
        with open(path, "wb") as f:
            f.write(b"\xff\xfe\n")
        self.assertIn("not UTF-8", self.run_main("--log", path)[2])

    def test_bad_options_and_sources(self):
        log = self.write("log.jsonl", user_lines("A", "u", 1) + user_lines("C", "v", 1))
        for args, message in [
                (("--log", log, "--split", "A=50"), "at least two arms"),
                (("--log", log, "--split", "A=x,B=1"), "expected ARM=SHARE"),
                (("--log", log, "--split", "A=1,A=2"), "arm A given twice"),
                (("--log", log, "--split", "A=50,B=50"), "variant(s) C in the log but not in"),
                (("--log", log, "--control", "Z"), "--control Z: not an arm"),
                (("--log", log, "--alpha", "2"), "--alpha 2.0"),
                (("--log", os.path.join(self.dir.name, "missing")), "No such file"),
                ((self.dir.name,), "no history store (data.mdb)"),
                ((os.path.join(self.dir.name, "nodir"),), "not a history directory"),
                ((), "give history directories or --log files")]:
            with self.subTest(args):
                rc, _, err = self.run_main(*args)
                self.assertEqual(rc, 2)
                self.assertIn(message, err)
                self.assertNotIn("Traceback", err)
        r = subprocess.run([TOOL, "--log", log, "--json", "/nonexistent-dir/r.json"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("No such file or directory", r.stderr)
        self.assertNotIn("Traceback", r.stderr)


if __name__ == "__main__":
    unittest.main()
