"""Loaders and cleaning on tiny inline fixtures, including malformed and incomplete rows."""

import gzip
import json
import tempfile
import unittest
from pathlib import Path

from ._paths import TRAIN_DIR  # noqa: F401  (puts models/train on sys.path)

from driftrec_train import loaders
from driftrec_train.clean import clean_events, NormConstants
from driftrec_train.events import DataError, Event, Item, read_events, read_items, write_events, write_items


class TempDirTest(unittest.TestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self._tmp.name)

    def tearDown(self) -> None:
        self._tmp.cleanup()

    def write(self, name: str, text: str, gz: bool = False, encoding: str = "utf-8") -> Path:
        path = self.dir / name
        if gz:
            with gzip.open(path, "wt", encoding=encoding) as handle:
                handle.write(text)
        else:
            path.write_text(text, encoding=encoding)
        return path


def review(user, item, ts, rating=5.0, text="ok", **extra):
    obj = {"reviewerID": user, "asin": item, "unixReviewTime": ts, "overall": rating, "reviewText": text,
           "summary": "s"}
    obj.update(extra)
    return obj


class AmazonReviewsTest(TempDirTest):
    def test_fields_duplicates_and_missing_are_counted(self) -> None:
        rows = [review("u1", "i1", 100), review("u1", "i1", 100, style={"Size:": "big"}),  # style duplicate
                review("u2", "i1", 200), {"asin": "i2", "unixReviewTime": 5, "overall": 4.0},  # no user
                {"reviewerID": "u3", "asin": "i2", "reviewTime": "09 1, 2016", "overall": 3.0},  # date fallback
                {"reviewerID": "u3", "asin": "i3", "overall": 3.0}]  # no time at all
        path = self.write("r.json.gz", "\n".join(json.dumps(r) for r in rows) + "\n", gz=True)
        result = loaders.load_amazon_reviews(path)
        self.assertEqual(result.counts["rows_read"], 6)
        self.assertEqual(result.counts["ts_from_reviewTime"], 1)
        first = result.events[0]
        self.assertEqual((first.user_id, first.item_id, first.ts, first.event_type, first.rating),
                         ("u1", "i1", 100, "review", 5.0))
        self.assertEqual(first.text, "s\n\nok")
        self.assertEqual(result.events[4].ts, 1472688000)  # 2016-09-01 00:00 UTC
        events, report = clean_events(result.events)
        self.assertEqual(report.counts["dropped_duplicate"], 1)
        self.assertEqual(report.counts["dropped_missing_user"], 1)
        self.assertEqual(report.counts["dropped_missing_ts"], 1)
        self.assertEqual(report.counts["rows_out"], 3)
        self.assertEqual(report.examples["dropped_duplicate"], [1])
        self.assertEqual([e.row for e in events], [0, 2, 4])

    def test_malformed_json_names_file_and_line(self) -> None:
        path = self.write("bad.json", json.dumps(review("u", "i", 1)) + "\n{not json\n")
        with self.assertRaises(DataError) as ctx:
            loaders.load_amazon_reviews(path)
        self.assertEqual(ctx.exception.line, 2)
        self.assertIn(f"{path}:2:", str(ctx.exception))

    def test_wrong_type_names_line(self) -> None:
        path = self.write("bad.json", "\n" + json.dumps(review("u", "i", "yesterday")) + "\n")
        with self.assertRaises(DataError) as ctx:
            loaders.load_amazon_reviews(path)
        self.assertIn("bad.json:2: unixReviewTime", str(ctx.exception))


class MovieLensTest(TempDirTest):
    def test_ratings_and_items(self) -> None:
        self.write("u.data", "1\t10\t4\t881250949\n2\t10\t5\t881250950\n1\t\t3\t881250951\n")
        flags = ["0"] * 19
        flags[1] = flags[5] = "1"
        self.write("u.item", "10|Caf\xe9 (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n", encoding="latin-1")
        result = loaders.load_movielens(self.dir)
        self.assertEqual(result.counts["rows_read"], 3)
        self.assertEqual(result.events[0].rating, 4.0)
        self.assertEqual(result.events[0].ts, 881250949)
        self.assertEqual(result.items["10"].title, "Caf\xe9 (1995)")
        self.assertEqual(result.items["10"].category, "Action|Comedy")
        _, report = clean_events(result.events)
        self.assertEqual(report.counts["dropped_missing_item"], 1)

    def test_bad_rows_name_line(self) -> None:
        path = self.write("u.data", "1\t10\t4\t881250949\n1\t10\t4\n")
        with self.assertRaisesRegex(DataError, r"u\.data:2: expected 4 tab-separated fields"):
            loaders.load_movielens_ratings(path)
        path = self.write("u.data", "1\t10\tfour\t881250949\n")
        with self.assertRaisesRegex(DataError, r"u\.data:1: rating must be an integer"):
            loaders.load_movielens_ratings(path)


class SequenceFilesTest(TempDirTest):
    def test_pairs_give_steps_as_time(self) -> None:
        path = self.write("pairs.txt", "1 5\n1 3\n2 5\n1 9\n")
        result = loaders.load_user_item_pairs(path)
        self.assertEqual([(e.user_id, e.item_id, e.ts, e.row) for e in result.events],
                         [("1", "5", 0, 0), ("1", "3", 1, 1), ("2", "5", 0, 2), ("1", "9", 2, 3)])

    def test_undecodable_bytes_name_line(self) -> None:
        path = self.dir / "pairs.txt"
        path.write_bytes(b"1 5\n1 \xff\xfe\n")
        with self.assertRaisesRegex(DataError, r"pairs\.txt:2: not valid utf-8"):
            loaders.load_user_item_pairs(path)
        gz = self.dir / "r.json.gz"
        gz.write_bytes(gzip.compress(b'{"reviewerID": "u"}\n' * 50)[:-20])
        with self.assertRaisesRegex(DataError, r"r\.json\.gz:\d+: cannot read line"):
            loaders.load_amazon_reviews(gz)

    def test_pairs_malformed(self) -> None:
        path = self.write("pairs.txt", "1 5\n\n1 3 4\n")
        with self.assertRaisesRegex(DataError, r"pairs\.txt:3: expected 'user item'"):
            loaders.load_user_item_pairs(path)

    def test_user_lines_count_empty_sequences(self) -> None:
        path = self.write("seq.txt", "1 4 5 6\n2\n3 7\n")
        result = loaders.load_user_sequences(path)
        self.assertEqual(result.counts["empty_sequences"], 1)
        self.assertEqual(result.counts["events"], 4)
        self.assertEqual([e.ts for e in result.events], [0, 1, 2, 0])

    def test_item_text_and_recbole(self) -> None:
        self.write("S.text", "item_id:token\ttext:token_seq\n"
                             "A1\tGlue, 8 oz. Bottle. Industrial Tapes. Gorilla. \n"
                             "A2\tJust a title\n")
        items = loaders.load_item_text(self.dir / "S.text")
        self.assertEqual((items["A1"].title, items["A1"].category, items["A1"].brand),
                         ("Glue, 8 oz. Bottle", "Industrial Tapes", "Gorilla"))
        self.assertEqual(items["A2"].title, "Just a title")
        self.write("S.item2index", "A1\t0\nA2\t1\n")
        self.write("S.user2index", "U9\t0\n")
        self.write("S.test.inter", "user_id:token\titem_id_list:token_seq\titem_id:token\n0\t1 0\t1\n")
        result = loaders.load_recbole_sequences(self.dir / "S")
        self.assertEqual([(e.user_id, e.item_id, e.ts) for e in result.events],
                         [("U9", "A2", 0), ("U9", "A1", 1), ("U9", "A2", 2)])
        self.write("S.test.inter", "user_id:token\titem_id_list:token_seq\titem_id:token\n0\t7\t1\n")
        with self.assertRaisesRegex(DataError, r"S\.test\.inter:2: item index '7'"):
            loaders.load_recbole_sequences(self.dir / "S")


class EventFormatTest(TempDirTest):
    def test_roundtrip_and_bad_values(self) -> None:
        events = [Event("u1", "i1", 10, "click", dwell_s=3.5, request_id="r1", position=2),
                  Event("u1", "i2", 11, "purchase", amount=19.99, rating=None, text="")]
        path = self.dir / "events.jsonl"
        self.assertEqual(write_events(path, events), 2)
        back = read_events(path)
        self.assertEqual(back, events)
        self.assertNotIn("variant", json.loads(path.read_text().splitlines()[0]))
        write_items(self.dir / "items.jsonl", [Item("i1", "Title", "Cat", "Brand", 9.5)])
        self.assertEqual(read_items(self.dir / "items.jsonl")[0].price, 9.5)

    def test_type_errors_name_line(self) -> None:
        good = {"user_id": "u", "item_id": "i", "ts": 1, "event_type": "view"}
        cases = [({**good, "event_type": "like"}, "event_type must be one of"),
                 ({**good, "ts": "yesterday"}, "ts must be an integer"),
                 ({**good, "ts": 1.5}, "ts must be an integer"),
                 ({**good, "dwell_s": "long"}, "dwell_s must be a number"),
                 ([1, 2], "expected a JSON object")]
        for obj, message in cases:
            path = self.write("e.jsonl", json.dumps(good) + "\n" + json.dumps(obj) + "\n")
            with self.subTest(message=message), self.assertRaises(DataError) as ctx:
                read_events(path)
            self.assertEqual(ctx.exception.line, 2)
            self.assertIn(message, str(ctx.exception))

    def test_clean_nulls_and_clips_with_counts(self) -> None:
        events = [Event("u", f"i{k}", k, "view", dwell_s=float(k)) for k in range(1, 11)]
        events[0].rating = 7.0
        events[1].dwell_s = -1.0
        events[2].amount = float("nan")
        events.append(Event(None, "i1", 1, "view"))
        cleaned, report = clean_events(events, clip={"dwell_s": 8.0})
        c = report.counts
        self.assertEqual((c["nulled_rating_out_of_range"], c["nulled_dwell_invalid"], c["nulled_amount_invalid"],
                          c["dropped_missing_user"], c["clipped_dwell_s"], c["rows_out"]), (1, 1, 1, 1, 2, 10))
        self.assertEqual(cleaned[-1].dwell_s, 8.0)
        norm = NormConstants(**report.norm["dwell_s"])
        self.assertEqual(norm.clip_max, 8.0)
        self.assertAlmostEqual(norm.apply(100.0), norm.apply(8.0))
        self.assertEqual(norm.apply(None), 0.0)


if __name__ == "__main__":
    unittest.main()
