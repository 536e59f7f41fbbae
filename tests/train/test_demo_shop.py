"""The demo shop generator: determinism, format, ground truth, funnel, text, shifted users, speed."""

import collections
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
from dataclasses import replace
from pathlib import Path

from ._paths import TRAIN_DIR  # noqa: F401  (puts models/train on sys.path)

from driftrec_train import demo_shop
from driftrec_train.clean import clean_events
from driftrec_train.events import EVENT_TYPES, read_events, read_items

CJK = re.compile("[\u4e00-\u9fff]")
LATIN = re.compile("[A-Za-z]")
ENGAGED = ("view", "click", "cart", "purchase")
STAGE = {"impression": 0, "view": 1, "click": 2, "cart": 3, "purchase": 4}


def sessions(seq):
    """Split one user's (ts, row)-ordered events where the gap reaches SESSION_GAP_S."""
    out = []
    for event in seq:
        if not out or event.ts - out[-1][-1].ts >= demo_shop.SESSION_GAP_S:
            out.append([])
        out[-1].append(event)
    return out


class DemoShopTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls._tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls._tmp.name)
        cls.tiny = demo_shop.generate("tiny", seed=0)
        cls.tiny_paths = demo_shop.write_shop(cls.tiny, cls.dir / "tiny")
        # The demo preset's behaviour with fewer users: enough for statistics, well under a second.
        cls.mid = demo_shop.generate("demo", seed=3, n_users=300)
        cls.mid_truth = cls.mid.truth
        cls.mid_cat = demo_shop.item_categories(cls.mid_truth)
        cls.mid_by_user = demo_shop.group_by_user(cls.mid.events)

    @classmethod
    def tearDownClass(cls) -> None:
        cls._tmp.cleanup()

    # ------------------------------------------------------------------ determinism, presets

    def test_same_seed_same_bytes_other_seed_other_shop(self) -> None:
        again = demo_shop.write_shop(demo_shop.generate("tiny", seed=0), self.dir / "tiny-again")
        for name, path in self.tiny_paths.items():
            self.assertEqual(path.read_bytes(), again[name].read_bytes(), name)
        other = demo_shop.write_shop(demo_shop.generate("tiny", seed=1), self.dir / "tiny-seed1")
        self.assertNotEqual(self.tiny_paths["events"].read_bytes(), other["events"].read_bytes())
        self.assertEqual(demo_shop.load_truth(other["truth"])["seed"], 1)

    def test_command_line_writes_the_same_bytes_under_another_hash_seed(self) -> None:
        out = self.dir / "cli"
        env = dict(os.environ, PYTHONHASHSEED="12345")
        proc = subprocess.run([sys.executable, str(TRAIN_DIR / "demo_data.py"), "--out", str(out), "--preset", "tiny",
                               "--seed", "0"], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("80 users, 120 items", proc.stdout)
        for name, path in self.tiny_paths.items():
            self.assertEqual(path.read_bytes(), (out / path.name).read_bytes(), name)

    def test_command_line_rejects_bad_arguments(self) -> None:
        proc = subprocess.run([sys.executable, str(TRAIN_DIR / "demo_data.py"), "--out", str(self.dir / "bad"),
                               "--preset", "tiny", "--items", "5"], capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 2)
        self.assertTrue(proc.stderr.startswith("error: n_items must be at least"), proc.stderr)
        with self.assertRaises(ValueError):
            demo_shop.make_params("huge")

    def test_presets(self) -> None:
        demo = demo_shop.PRESETS["demo"]
        self.assertEqual((demo.n_users, demo.n_items, demo.events_per_user), (1500, 2000, (60, 120)))
        counts = self.tiny.truth["counts"]
        self.assertEqual((counts["users"], counts["items"]), (80, 120))
        self.assertTrue(20 <= counts["events"] / counts["users"] <= 30, counts)
        per_user = [len(seq) for seq in self.mid_by_user.values()]
        self.assertTrue(60 <= sum(per_user) / len(per_user) <= 120)
        self.assertEqual(len(self.mid.items), 2000)
        overridden = demo_shop.make_params("tiny", n_users=7, n_items=50)
        self.assertEqual((overridden.n_users, overridden.n_items), (7, 50))

    def test_tiny_preset_is_fast(self) -> None:
        started = time.perf_counter()
        demo_shop.write_shop(demo_shop.generate("tiny", seed=5), self.dir / "tiny-fast")
        self.assertLess(time.perf_counter() - started, 1.0)

    # ------------------------------------------------------------------ format

    def test_reads_back_and_cleans_without_drops(self) -> None:
        events = read_events(self.tiny_paths["events"])
        items = read_items(self.tiny_paths["items"])
        truth = demo_shop.load_truth(self.tiny_paths["truth"])
        self.assertEqual(len(events), truth["counts"]["events"])
        kept, report = clean_events(events)
        self.assertEqual(len(kept), len(events))
        changed = {k: v for k, v in report.counts.items() if k.startswith(("dropped", "nulled")) and v}
        self.assertEqual(changed, {})
        prices = {item.item_id: item.price for item in items}
        categories = demo_shop.item_categories(truth)
        self.assertEqual(set(categories), set(prices))  # every item in exactly one truth category
        self.assertEqual(len(truth["categories"]), 12)
        self.assertTrue(all(cat["items"] for cat in truth["categories"].values()))
        for item in items:
            self.assertIsInstance(item.price, float)
            self.assertGreater(item.price, 0)
            self.assertIn(item.category, truth["categories"][categories[item.item_id]]["paths"])
            self.assertTrue(item.title and item.brand)
        for event in events:
            self.assertIn(event.item_id, prices)
            self.assertIn(event.user_id, truth["users"])
            self.assertTrue(truth["start_ts"] <= event.ts <= truth["end_ts"])
            self.assertEqual(event.dwell_s is not None, event.event_type == "view")
            self.assertEqual(event.amount is not None, event.event_type in ("cart", "purchase"))
            self.assertEqual(event.rating is not None, event.event_type == "review")
            self.assertEqual(bool(event.text), event.event_type == "review")
            if event.amount is not None:
                qty = event.amount / prices[event.item_id]
                self.assertIn(round(qty), (1, 2, 3))
                self.assertAlmostEqual(qty, round(qty), places=6)
            if event.rating is not None:
                self.assertIn(event.rating, (1.0, 2.0, 3.0, 4.0, 5.0))
        self.assertLessEqual(truth["end_ts"] - truth["start_ts"], 61 * demo_shop.DAY)
        self.assertEqual(set(truth["counts"]["by_type"]), set(EVENT_TYPES))

    def test_log_is_in_time_order(self) -> None:
        ts = [event.ts for event in self.tiny.events]
        self.assertEqual(ts, sorted(ts))

    # ------------------------------------------------------------------ ground truth

    def test_phases_are_well_formed(self) -> None:
        for user_id, seq in self.mid_by_user.items():
            phases = self.mid_truth["users"][user_id]["phases"]
            self.assertTrue(1 <= len(phases) <= 3)
            self.assertEqual(phases[0]["start_ts"], seq[0].ts)  # a phase starts with an event
            starts = {e.ts for e in seq}
            for prev, phase in zip(phases, phases[1:]):
                self.assertLess(prev["start_ts"], phase["start_ts"])
                self.assertIn(phase["start_ts"], starts)
                self.assertNotIn(phase["categories"][0], prev["categories"])  # a real change of main
            for phase in phases:
                self.assertTrue(1 <= len(phase["categories"]) <= 2)
                self.assertEqual(len(set(phase["categories"])), len(phase["categories"]))
                self.assertTrue(set(phase["categories"]) <= set(self.mid_truth["categories"]))
        n_phases = collections.Counter(len(u["phases"]) for u in self.mid_truth["users"].values())
        self.assertEqual(set(n_phases), {1, 2, 3})

    def test_events_mostly_follow_the_phase(self) -> None:
        inside = total = 0
        phase_shares = []
        for user_id, seq in self.mid_by_user.items():
            phases = self.mid_truth["users"][user_id]["phases"]
            per_phase = collections.defaultdict(lambda: [0, 0])
            for event in seq:
                if event.event_type not in ENGAGED:
                    continue
                p = demo_shop.phase_index(phases, event.ts)
                self.assertGreaterEqual(p, 0)
                per_phase[p][0] += self.mid_cat[event.item_id] in phases[p]["categories"]
                per_phase[p][1] += 1
            for hits, n in per_phase.values():
                inside += hits
                total += n
                if n >= 5:
                    phase_shares.append(hits / n)
        self.assertGreater(inside / total, 0.8)
        self.assertLess(inside / total, 0.97)  # there is noise: stray clicks, feed slots, off-interest sessions
        self.assertGreater(sum(s > 0.5 for s in phase_shares) / len(phase_shares), 0.9)

    def test_popularity_is_skewed_inside_a_category(self) -> None:
        clicks = collections.Counter(e.item_id for e in self.mid.events if e.event_type == "click")
        for key in ("phones", "coffee"):
            counts = sorted((clicks[i] for i in self.mid_truth["categories"][key]["items"]), reverse=True)
            top = sum(counts[: max(1, len(counts) // 10)])
            self.assertGreater(top / sum(counts), 0.3, key)  # top 10% of items, far above 10% of clicks

    def test_a_purchase_leads_to_its_complement(self) -> None:
        following = collections.Counter()
        for seq in self.mid_by_user.values():
            for i, event in enumerate(seq):
                if event.event_type == "purchase" and self.mid_cat[event.item_id] == "phones":
                    nxt = next((f for f in seq[i + 1:] if f.event_type == "view" and f.item_id != event.item_id), None)
                    if nxt is not None:
                        following[self.mid_cat[nxt.item_id]] += 1
        self.assertGreater(sum(following.values()), 10)
        self.assertEqual(following.most_common(1)[0][0], "accessories")

    # ------------------------------------------------------------------ funnel and time

    def test_funnel_order_within_sessions(self) -> None:
        n_sessions = 0
        for seq in self.mid_by_user.values():
            bought: dict[str, int] = {}
            for session in sessions(seq):
                n_sessions += 1
                self.assertLess(max(b.ts - a.ts for a, b in zip(session, session[1:] + session[-1:])),
                                demo_shop.SESSION_GAP_S)
                seen = collections.defaultdict(set)
                for event in session:
                    if event.event_type == "review":
                        self.assertIn(event.item_id, bought)
                        self.assertGreaterEqual(event.ts - bought[event.item_id], 2 * demo_shop.DAY)
                        continue
                    stage = STAGE[event.event_type]
                    if stage:
                        self.assertIn(stage - 1, seen[event.item_id], f"{event.event_type} without its previous step")
                    seen[event.item_id].add(stage)
                    if event.event_type == "purchase":
                        bought.setdefault(event.item_id, event.ts)
        self.assertGreater(n_sessions / len(self.mid_by_user), 4)
        counts = self.mid_truth["counts"]["by_type"]
        self.assertEqual([counts[k] for k in EVENT_TYPES], sorted((counts[k] for k in EVENT_TYPES), reverse=True))
        self.assertGreater(counts["review"], 0)

    def test_gaps_minutes_within_hours_or_days_between_sessions(self) -> None:
        between = []
        for seq in self.mid_by_user.values():
            parts = sessions(seq)
            between.extend(b[0].ts - a[-1].ts for a, b in zip(parts, parts[1:]))
        between.sort()
        self.assertGreater(between[len(between) // 2], 6 * 3600)
        self.assertGreater(between[-1], 5 * demo_shop.DAY)

    # ------------------------------------------------------------------ text

    def test_chinese_and_english_text(self) -> None:
        titles = [item.title for item in self.mid.items]
        self.assertTrue(any(CJK.search(t) and not LATIN.search(t) for t in titles))
        self.assertTrue(any(LATIN.search(t) and not CJK.search(t) for t in titles))
        self.assertGreater(sum(bool(CJK.search(t) and LATIN.search(t)) for t in titles), len(titles) // 2)
        paths = {item.category for item in self.mid.items}
        self.assertIn("运动 > 跑步鞋", paths)
        self.assertIn("Sports > Running Shoes", paths)
        brands = {item.brand for item in self.mid.items}
        self.assertTrue(any(CJK.search(b) for b in brands) and any(not CJK.search(b) for b in brands))
        reviews = [e.text for e in self.mid.events if e.event_type == "review"]
        self.assertTrue(any(CJK.search(t) for t in reviews) and any(not CJK.search(t) for t in reviews))
        # a review mentions the product: its kind in Chinese or English
        infos = {item.item_id: item for item in self.mid.items}
        for event in (e for e in self.mid.events if e.event_type == "review"):
            cat = demo_shop.CATEGORY_BY_KEY[self.mid_cat[event.item_id]]
            self.assertTrue(any(zh in event.text or en in event.text for zh, en in cat.subtypes), event.text)
            self.assertIn(event.item_id, infos)

    def test_title_words_carry_the_category_but_not_one_to_one(self) -> None:
        items = self.mid.items
        words = collections.defaultdict(set)
        per_cat_words = collections.defaultdict(list)
        for item in items:
            toks = set(item.title.split())
            for w in toks:
                words[w].add(self.mid_cat[item.item_id])
            per_cat_words[self.mid_cat[item.item_id]].append(toks)
        self.assertGreaterEqual(len(words["礼盒"] | words["gift"]), 3)
        self.assertGreaterEqual(len(words["Apple"]), 3)
        for key, token_sets in per_cat_words.items():  # no word is in every title of a category
            self.assertEqual(set.intersection(*token_sets), set(), key)

        def tokens(title):
            out = []
            for w in title.split():
                out.extend([w[i:i + 2] for i in range(len(w) - 1)] or [w] if CJK.search(w) else [w.lower()])
            return out

        split = len(items) * 4 // 5
        counts = collections.defaultdict(collections.Counter)
        for item in items[:split]:
            counts[self.mid_cat[item.item_id]].update(tokens(item.title))
        vocab = len({w for c in counts.values() for w in c})
        totals = {k: sum(c.values()) for k, c in counts.items()}

        def predict(title):
            return max(counts, key=lambda k: sum(math.log((counts[k][w] + 1) / (totals[k] + vocab))
                                                 for w in tokens(title)))

        accuracy = sum(predict(i.title) == self.mid_cat[i.item_id] for i in items[split:]) / (len(items) - split)
        self.assertGreater(accuracy, 0.8)  # naive Bayes on words and character bigrams learns it

    # ------------------------------------------------------------------ shifted users

    def test_shifted_users(self) -> None:
        found = demo_shop.shifted_users(self.mid_truth, self.mid_by_user, min_new_phase_events=5)
        self.assertGreater(len(found), len(self.mid_by_user) // 2)
        self.assertEqual([s.user_id for s in found], sorted(s.user_id for s in found))
        for s in found:
            phases = self.mid_truth["users"][s.user_id]["phases"]
            seq = self.mid_by_user[s.user_id]
            self.assertEqual(s.shift_ts, phases[-1]["start_ts"])
            self.assertEqual(list(s.before), phases[-2]["categories"])
            self.assertEqual(list(s.after), phases[-1]["categories"])
            self.assertIn(s.after[0], s.new)
            self.assertLess(s.shift_ts, seq[-1].ts)
            self.assertGreaterEqual(s.n_after, 5)
            self.assertEqual(s.n_before + s.n_after, len(seq))
        one_phase = [u for u, info in self.mid_truth["users"].items() if len(info["phases"]) == 1]
        self.assertTrue(one_phase)
        self.assertFalse({s.user_id for s in found} & set(one_phase))
        # a history cut just after the shift no longer qualifies; stricter counts keep fewer users
        first = found[0]
        cut = {first.user_id: [e for e in self.mid_by_user[first.user_id] if e.ts <= first.shift_ts]}
        self.assertEqual(demo_shop.shifted_users(self.mid_truth, cut, min_new_phase_events=1), [])
        strict = demo_shop.shifted_users(self.mid_truth, self.mid_by_user, min_new_phase_events=5,
                                         event_types=("click", "cart", "purchase"))
        self.assertLess(len(strict), len(found))
        self.assertTrue(all(s.n_after >= 5 for s in strict))

    def test_item_categories_and_phase_index(self) -> None:
        phases = [{"start_ts": 10, "categories": ["a"]}, {"start_ts": 20, "categories": ["b"]}]
        self.assertEqual([demo_shop.phase_index(phases, t) for t in (5, 10, 19, 20, 99)], [-1, 0, 0, 1, 1])
        truth = {"categories": {"a": {"items": ["i1", "i2"]}, "b": {"items": ["i3"]}}}
        self.assertEqual(demo_shop.item_categories(truth), {"i1": "a", "i2": "a", "i3": "b"})

    def test_more_users_keep_the_earlier_ones(self) -> None:
        params = replace(demo_shop.PRESETS["tiny"], n_users=90)
        bigger = demo_shop.generate("tiny", seed=0, params=params)
        self.assertEqual(bigger.items, self.tiny.items)
        for user_id, info in self.tiny.truth["users"].items():
            self.assertEqual(bigger.truth["users"][user_id], info)


if __name__ == "__main__":
    unittest.main()
