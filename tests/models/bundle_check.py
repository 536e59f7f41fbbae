#!/usr/bin/python3
"""The model bundle end to end: the Python writer, the C loader and driftrec-score.

    bundle_check.py DRIFTREC_SCORE TEST_BUNDLE        (DR_BUILD_DIR: where driftrec-index is)

A small random interest model (item_dim 16, LSTM 1 x 32) and 300 random item vectors (two of
them identical, so exact score ties happen) are written as bundles with the fp32 and the
int8 interest model. Then:

* read_bundle gives back what was written; test_bundle loads it (ids, exact scores, index);
* driftrec-score exact ranks, candidate counts and top-k on the fp32 bundle equal the
  evaluator's rule (driftrec_train.evaluate.full_ranks) over PyTorch's user vectors and
  float64 scores, except where near-ties (|difference| <= 1e-5 relative) explain the gap;
  also with --all, and identical for 1 and 3 threads;
* the int8 bundle ranks close to the fp32 one; --ann top-10 recalls the exact top-10;
* broken bundles (truncated vectors, bad checksum, a missing or duplicate id, a path with
  "..", an absolute path, a link out, a dimension mismatch, bad JSON, a missing file or key,
  an index of the wrong size, a non-finite vector, ...) fail in test_bundle and in
  driftrec-score with exit status 2 and a message naming the problem;
* driftrec-score's input errors (unknown target, bad line, bad argument) exit 2 with a
  message naming the line;
* a bundle with a small BERT text encoder and a text projection round-trips (writer, reader,
  test_bundle); the writer refuses a projection without an encoder or of the wrong shape, and
  test_bundle refuses a projection of the wrong size, without an encoder, with a text_dim
  other than the encoder's output size, or without a checksum.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "models" / "train"))

import driftrec_train.runtime  # noqa: F401,E402  (BLAS set-up: before numpy and torch load)

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from driftrec_train import bundle as bundle_mod  # noqa: E402
from driftrec_train import bert, export, golden, interest as I  # noqa: E402
from driftrec_train.evaluate import full_ranks  # noqa: E402
from driftrec_train.events import EVENT_TYPES  # noqa: E402

N_ITEMS, DIM, K = 300, 16, 10
TIE_A, TIE_B = 5, 200  # identical vectors: B's score always ties A's, and A wins
CLIP = {"dwell_s": 300.0, "amount": 500.0}
failures = 0


def check(cond: bool, what: str) -> None:
    global failures
    if not cond:
        failures += 1
        print(f"FAIL {what}")


def make_model(dim: int, seed: int, max_events: int = 20) -> I.InterestModel:
    c = I.InterestConfig(item_dim=dim, hidden_size=32, num_layers=1, max_events=max_events,
                         half_life_s=3 * 86400.0)
    m = I.InterestModel(c)
    I.random_init(m, torch.Generator().manual_seed(seed))
    return m.eval()


def make_events(rng: np.random.Generator, ids: list[str]):
    """(event dicts in file order, {user: target id}, users in first-appearance order)."""
    per_user, targets = {}, {}
    users = [f"u{i}" for i in range(60)] + [12345, "caf\u00e9 \"q\""]
    for u in users:
        n = int(rng.integers(3, 31))  # some above max_events (20)
        ts = 1_700_000_000 + int(rng.integers(0, 10**6))
        evs = []
        for _ in range(n):
            gap = int(rng.choice([0, 0, 30, 400, 7200, 90000]))  # zeros: ties on ts
            ts += gap
            ev = {"user_id": u, "item_id": ids[int(rng.integers(0, N_ITEMS))], "ts": ts,
                  "event_type": EVENT_TYPES[int(rng.integers(0, len(EVENT_TYPES)))],
                  "dwell_s": None, "amount": None, "rating": None, "text": "ignored"}
            if rng.random() < 0.7:
                ev["dwell_s"] = float(rng.choice([rng.uniform(0, 200), 1e4]))  # 1e4: clipped
            if rng.random() < 0.3:
                ev["amount"] = float(rng.uniform(1, 900))
            if rng.random() < 0.3:
                ev["rating"] = float(rng.integers(1, 6))
            evs.append(ev)
        if rng.random() < 0.2:  # an item the bundle does not have: skipped
            evs.insert(int(rng.integers(0, len(evs))),
                       dict(evs[0], item_id="no-such-item", event_type="click"))
        per_user[str(u)] = evs
        r = rng.random()
        if r < 0.25:
            targets[str(u)] = ids[TIE_B]
        elif r < 0.4:
            targets[str(u)] = evs[-1]["item_id"] if evs[-1]["item_id"] in ids else ids[0]
        else:
            targets[str(u)] = ids[int(rng.integers(0, N_ITEMS))]
    # Users interleaved, so the tool must group them; each user's lines stay in their order,
    # which is the tie-break for equal ts.
    lines, cursors = [], {u: 0 for u in per_user}
    while cursors:
        for u in list(cursors):
            lines.append(per_user[u][cursors[u]])
            cursors[u] += 1
            if cursors[u] == len(per_user[u]):
                del cursors[u]
    return lines, targets, [str(u) for u in users]


def expected(model, vectors, ids, lines, targets, users, max_events):
    """Per target: (rank, n_candidates, top ids, float64 scores) by the evaluator's rule."""
    row = {i: r for r, i in enumerate(ids)}
    hist = {u: [] for u in users}
    for e in lines:  # file order; the sort below is stable, so equal ts keep it
        if e["item_id"] in row:
            hist[str(e["user_id"])].append(e)
    out = {}
    for u in users:
        evs = sorted(hist[u], key=lambda e: e["ts"])
        replay = evs[-max_events:] if max_events else evs
        clip = lambda v, c: None if v is None else min(v, c)  # noqa: E731
        ue = I.UserEvents(
            item_vecs=np.stack([vectors[row[e["item_id"]]] for e in replay])
            if replay else np.zeros((0, vectors.shape[1]), np.float32),
            text_vecs=None, event_types=[EVENT_TYPES.index(e["event_type"]) for e in replay],
            ts=[e["ts"] for e in replay],
            dwell_s=[clip(e["dwell_s"], CLIP["dwell_s"]) for e in replay],
            amount=[clip(e["amount"], CLIP["amount"]) for e in replay],
            rating=[e["rating"] for e in replay])
        with torch.no_grad():
            uv = model.forward_user(ue).double().numpy()
        scores = vectors.astype(np.float64) @ uv
        t = row[targets[u]]
        h = np.array([row[e["item_id"]] for e in evs], np.int64)
        s = scores[None].copy()
        ranks, cands = full_ranks(s, [h], np.array([t]))
        masked = s[0]  # history rows other than the target are -inf now
        order = sorted(range(len(ids)), key=lambda j: (-masked[j], j))
        top = [ids[j] for j in order[:K] if np.isfinite(masked[j])]
        out[u] = (int(ranks[0]), int(cands[0]), top, scores, set(h.tolist()) - {t})
    return out


def run_score(tool, bundle, events, targets, *args, expect_rc=0):
    p = subprocess.run([tool, str(bundle), "--events", str(events), "--targets", str(targets),
                        *args], capture_output=True, text=True)
    if p.returncode != expect_rc:
        check(False, f"driftrec-score {' '.join(args)}: exit {p.returncode}, expected "
                     f"{expect_rc}: {p.stderr.strip()}")
    return p


def compare_exact(rows, exp, ids, what):
    """C ranks and top-k against the float64 reference, allowing only near-ties."""
    row = {i: r for r, i in enumerate(ids)}
    n_equal = n_near = n_top_equal = 0
    for r in rows:
        n_top_equal += r["top"] == exp[r["user_id"]][2]
        e_rank, e_cands, e_top, scores, excluded = exp[r["user_id"]]
        check(r["n_candidates"] == e_cands, f"{what} {r['user_id']}: n_candidates "
                                            f"{r['n_candidates']}, expected {e_cands}")
        st = scores[row[r["target"]]]
        tol = 1e-5 * (1.0 + abs(st))
        # exact float64 ties (identical vectors) must follow the row rule; only scores that
        # differ by float32 rounding may land either side
        near = int(np.count_nonzero((np.abs(scores - st) <= tol) & (scores != st)))
        if r["rank"] == e_rank:
            n_equal += 1
        else:
            n_near += 1
            check(abs(r["rank"] - e_rank) <= near,
                  f"{what} {r['user_id']}: rank {r['rank']}, expected {e_rank} "
                  f"({near} near-ties)")
        check(len(r["top"]) == len(e_top) and len(set(r["top"])) == len(r["top"]),
              f"{what} {r['user_id']}: top has {len(r['top'])} distinct of {len(e_top)}")
        for j, (got, want) in enumerate(zip(r["top"], e_top)):
            check(row[got] not in excluded, f"{what} {r['user_id']}: top holds history item {got}")
            sg, sw = scores[row[got]], scores[row[want]]
            check(got == want or abs(sg - sw) <= 1e-5 * (1.0 + abs(sw)),
                  f"{what} {r['user_id']}: top[{j}] {got} ({sg:.7g}), expected {want} ({sw:.7g})")
    check(n_equal >= 0.95 * len(rows), f"{what}: only {n_equal}/{len(rows)} ranks equal")
    print(f"{what}: {n_equal}/{len(rows)} ranks equal, {n_near} differ within near-ties; "
          f"{n_top_equal} top lists equal")


def rewrite_manifest(d: Path, fn) -> None:
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    (d / "manifest.json").write_text(json.dumps(m))


def resum(d: Path, rel: str) -> None:
    rewrite_manifest(d, lambda m: m["sha256"].__setitem__(rel, export.sha256_file(d / rel)))


def broken_bundles(good: Path, work: Path, index_tool: Path):
    """(name, directory, text the error must hold) for each way a bundle can be broken."""
    cases = []

    def case(name, text, fn):
        d = work / name
        shutil.copytree(good, d, symlinks=True)
        fn(d)
        cases.append((name, d, text))

    def truncate_vectors(d):
        p = d / "items/vectors.f32"
        p.write_bytes(p.read_bytes()[:-4])
        resum(d, "items/vectors.f32")

    def flip_byte(d):
        p = d / "items/vectors.f32"
        b = bytearray(p.read_bytes())
        b[100] ^= 1
        p.write_bytes(bytes(b))

    def drop_id_line(d):
        p = d / "items/ids.txt"
        p.write_text("".join(p.read_text().splitlines(keepends=True)[:-1]))
        resum(d, "items/ids.txt")

    def duplicate_id(d):
        p = d / "items/ids.txt"
        lines = p.read_text().splitlines(keepends=True)
        lines[10] = lines[3]
        p.write_text("".join(lines))
        resum(d, "items/ids.txt")

    def set_ids(value):
        def fn(d):
            p = d / "items/ids.txt"
            lines = p.read_bytes().split(b"\n")
            lines[7] = value
            p.write_bytes(b"\n".join(lines))
            resum(d, "items/ids.txt")
        return fn

    def no_final_newline(d):
        p = d / "items/ids.txt"
        p.write_bytes(p.read_bytes()[:-1])
        resum(d, "items/ids.txt")

    def move_vectors(rel):
        def fn(d):
            def edit(m):
                m["items"]["vectors"] = rel
                m["sha256"][rel] = m["sha256"].pop("items/vectors.f32")
            rewrite_manifest(d, edit)
        return fn

    def link_out(d):
        outside = work / "outside-ids.txt"
        shutil.copyfile(d / "items/ids.txt", outside)
        (d / "items/ids.txt").unlink()
        os.symlink(outside, d / "items/ids.txt")

    def wrong_dim(d):
        shutil.rmtree(d / "interest")
        export.export_interest(make_model(8, 3), d / "interest", dtype="int8")

    def index_of(n):
        def fn(d):
            sub = work / "subset.f32"
            np.fromfile(d / "items/vectors.f32", "<f4")[:n * DIM].tofile(sub)
            (d / "items/index.ann").unlink()
            subprocess.run([str(index_tool), "build", "--input", str(sub), "--dim", str(DIM),
                            "--out", str(d / "items/index.ann"), "--threads", "1"],
                           check=True, capture_output=True)
            resum(d, "items/index.ann")
        return fn

    def corrupt_index(d):
        p = d / "items/index.ann"
        b = bytearray(p.read_bytes())
        b[len(b) // 2] ^= 0x40
        p.write_bytes(bytes(b))
        resum(d, "items/index.ann")

    def nan_vector(d):
        p = d / "items/vectors.f32"
        v = np.fromfile(p, "<f4")
        v[DIM * 9 + 2] = np.nan
        v.tofile(p)
        resum(d, "items/vectors.f32")

    def bad_category(d):
        p = d / "items/categories.u32"
        c = np.fromfile(p, "<u4")
        c[4] = 99
        c.tofile(p)
        resum(d, "items/categories.u32")

    def truncate_manifest(d):
        p = d / "manifest.json"
        p.write_bytes(p.read_bytes()[:200])

    case("truncated_vectors", "vectors.f32: 19196 bytes, expected 19200", truncate_vectors)
    case("bad_checksum", "vectors.f32: sha256", flip_byte)
    case("missing_id_line", "ids.txt: 299 lines, the manifest says 300", drop_id_line)
    case("duplicate_id", "ids.txt: duplicate id", duplicate_id)
    case("empty_id", "ids.txt: line 8: empty id", set_ids(b""))
    case("tab_in_id", "ids.txt: line 8: a tab", set_ids(b"a\tb"))
    case("bad_utf8_id", "not UTF-8", set_ids(b"caf\xe9"))
    case("no_final_newline", "no newline", no_final_newline)
    case("dotdot_path", "leaves the bundle", move_vectors("items/../../x/vectors.f32"))
    case("absolute_path", "leaves the bundle", move_vectors("/etc/hostname"))
    case("link_out", "leaves the bundle", link_out)
    case("wrong_dim", "the interest model's item_dim is 8", wrong_dim)
    case("bad_json", "manifest.json: not a JSON object", truncate_manifest)
    case("missing_index", "index.ann: No such file", lambda d: (d / "items/index.ann").unlink())
    case("missing_key", "n_items is missing",
         lambda d: rewrite_manifest(d, lambda m: m.pop("n_items")))
    case("format_version", "format_version must be 1",
         lambda d: rewrite_manifest(d, lambda m: m.__setitem__("format_version", 2)))
    case("wrong_format", "format must be",
         lambda d: rewrite_manifest(d, lambda m: m.__setitem__("format", "driftrec-model")))
    case("n_items_type", "n_items must be an integer",
         lambda d: rewrite_manifest(d, lambda m: m.__setitem__("n_items", "300")))
    case("no_checksum", "sha256 has no checksum for \"items/ids.txt\"",
         lambda d: rewrite_manifest(d, lambda m: m["sha256"].pop("items/ids.txt")))
    case("bad_checksum_text", "must be 64 hex digits",
         lambda d: rewrite_manifest(d, lambda m: m["sha256"].__setitem__("items/ids.txt", "x")))
    case("index_size", "index.ann: 299 items of dim 16, the bundle has 300", index_of(299))
    case("index_corrupt", "index.ann: checksum mismatch", corrupt_index)
    case("nan_vector", "row 9", nan_vector)
    case("bad_category", "row 4 has category 99", bad_category)
    case("metric", "index.metric",
         lambda d: rewrite_manifest(d, lambda m: m["index"].__setitem__("metric", "l2")))
    case("max_events", "preprocessing.max_events",
         lambda d: rewrite_manifest(d, lambda m: m["preprocessing"].__setitem__("max_events", 3)))
    case("missing_interest", "interest: No such file",
         lambda d: shutil.rmtree(d / "interest"))
    return cases


TEXT_DIM = 24


def text_bundle(work: Path, common: dict, test_bin: str) -> None:
    """A bundle with a text encoder and a projection: written, read back, loaded; then the
    writer's refusals and broken projections in the C loader."""
    vocab = work / "vocab.txt"
    golden.write_vocab(vocab, 64)
    enc = bert.TextEncoder(bert.BertConfig(vocab_size=64, hidden_size=TEXT_DIM,
                                           num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=32, max_position_embeddings=32))
    bert.random_init(enc, torch.Generator().manual_seed(3))
    text_dir = export.export_bert(enc.eval(), work / "text-model", vocab=vocab)
    proj = np.random.default_rng(5).standard_normal((DIM, TEXT_DIM)).astype(np.float32)
    pre = dict(common["preprocessing"], text={"max_len": 20})
    args = dict(common, preprocessing=pre, text_model_dir=text_dir)
    good = bundle_mod.write_bundle(work / "text", text_projection=torch.from_numpy(proj), **args)
    manifest, _, _ = bundle_mod.read_bundle(good)
    check(manifest["text_projection"] == {"file": "items/text_proj.f32", "text_dim": TEXT_DIM,
                                          "normalize_input": True}, "text_projection manifest")
    check("items/text_proj.f32" in manifest["sha256"], "text_proj.f32 has a checksum")
    back = bundle_mod.read_text_projection(good)
    check(back is not None and np.array_equal(back, proj), "read_text_projection round trip")
    check(bundle_mod.read_text_projection(work / "fp32") is None, "no projection: None")
    p = subprocess.run([test_bin, "load", str(good)], capture_output=True, text=True)
    print(p.stdout.strip())
    check(p.returncode == 0 and f"text projection {DIM} x {TEXT_DIM}, normalize_input 1, "
          "max_len 20" in p.stdout, f"test_bundle load (text): {p.stdout} {p.stderr.strip()}")
    for name, kw, text in (
            ("no encoder", dict(common, text_projection=proj), "without text_model_dir"),
            ("transposed", dict(args, text_projection=proj.T), "expected [item_dim, text_dim]"),
            ("nan", dict(args, text_projection=proj * np.nan), "non-finite")):
        try:
            bundle_mod.write_bundle(work / "refused", **kw)
            check(False, f"write_bundle took a text projection: {name}")
        except bundle_mod.BundleError as e:
            check(text in str(e), f"write_bundle {name}: {e}")
    check(not (work / "refused").exists(), "a refused bundle was left behind")

    def case(name, text, fn):
        d = work / name
        shutil.copytree(good, d)
        fn(d)
        p = subprocess.run([test_bin, "bad", str(d), text], capture_output=True, text=True)
        check(p.returncode == 0, f"{name}: {p.stdout.strip()} {p.stderr.strip()}")
        print(f"{name}: {p.stdout.strip()}")

    def truncate(d):
        f = d / "items/text_proj.f32"
        f.write_bytes(f.read_bytes()[:-4])
        resum(d, "items/text_proj.f32")

    def other_dim(d):  # a consistent file and text_dim, but not the encoder's output size
        np.zeros((DIM, 8), "<f4").tofile(d / "items/text_proj.f32")
        resum(d, "items/text_proj.f32")
        rewrite_manifest(d, lambda m: m["text_projection"].__setitem__("text_dim", 8))

    case("proj_size", f"text_proj.f32: {DIM * TEXT_DIM * 4 - 4} bytes, expected "
         f"{DIM * TEXT_DIM * 4}", truncate)
    case("proj_no_encoder", "text_projection without a text_encoder",
         lambda d: rewrite_manifest(d, lambda m: m.pop("text_encoder")))
    case("proj_dim", f"text_projection.text_dim is 8, the text encoder", other_dim)
    case("proj_no_checksum", "sha256 has no checksum for \"items/text_proj.f32\"",
         lambda d: rewrite_manifest(d, lambda m: m["sha256"].pop("items/text_proj.f32")))
    case("proj_normalize", "normalize_input must be a boolean",
         lambda d: rewrite_manifest(
             d, lambda m: m["text_projection"].__setitem__("normalize_input", "yes")))
    case("text_max_len", "preprocessing.text.max_len must be an integer",
         lambda d: rewrite_manifest(
             d, lambda m: m["preprocessing"]["text"].__setitem__("max_len", 1)))


def main() -> int:
    score_bin, test_bin = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    rng = np.random.default_rng(20261127)
    index_tool = bundle_mod.find_index_tool()
    work = Path(tempfile.mkdtemp(prefix="bundle-check-"))
    try:
        model = make_model(DIM, 11)
        ids = [f"item-{i}" for i in range(N_ITEMS)]
        ids[7], ids[42] = "caf\u00e9 \"7\"", "1042"
        vectors = (0.5 * rng.standard_normal((N_ITEMS, DIM))).astype(np.float32)
        vectors[TIE_B] = vectors[TIE_A]
        cats = (np.arange(N_ITEMS) % 4).astype(np.uint32)
        common = dict(name="check", interest_model=model, item_ids=ids, item_vectors=vectors,
                      preprocessing={"clip": CLIP, "time_unit": "seconds"},
                      training={"run": "bundle_check"}, categories=cats,
                      category_names=["a", "b", "c", "d"], index_threads=1)
        fp32 = bundle_mod.write_bundle(work / "fp32", interest_dtype="fp32", **common)
        int8 = bundle_mod.write_bundle(work / "int8", **common)
        check(not any(p.name.startswith(".") for p in work.iterdir()), "a temporary directory "
              "was left behind")
        try:
            bundle_mod.write_bundle(work / "fp32", **common)
            check(False, "write_bundle overwrote an existing bundle")
        except bundle_mod.BundleError:
            pass
        try:
            bundle_mod.write_bundle(work / "dup", **dict(common, item_ids=["x"] * N_ITEMS))
            check(False, "write_bundle took duplicate ids")
        except bundle_mod.BundleError as e:
            check("duplicate" in str(e), f"duplicate ids: {e}")

        manifest, ids_back, vec_back = bundle_mod.read_bundle(fp32)
        check(ids_back == ids and np.array_equal(vec_back, vectors), "read_bundle round trip")
        check(manifest["n_items"] == N_ITEMS and manifest["item_dim"] == DIM
              and manifest["preprocessing"]["max_events"] == 20, "manifest fields")
        p = subprocess.run([test_bin, "load", str(int8)], capture_output=True, text=True)
        print(p.stdout.strip())
        check(p.returncode == 0, f"test_bundle load: {p.stderr.strip()}")

        lines, targets, users = make_events(rng, ids)
        users.append("ghost")  # no events at all
        targets["ghost"] = ids[3]
        events_path, targets_path = work / "events.jsonl", work / "targets.jsonl"
        events_path.write_text("".join(json.dumps(e) + "\n" for e in lines) + "\n")
        targets_path.write_text("".join(json.dumps({"user_id": u, "target": targets[u]}) + "\n"
                                        for u in users))

        # exact, fp32: the evaluator's rule over PyTorch
        p = run_score(score_bin, fp32, events_path, targets_path, "--precision", "fp32",
                      "--threads", "3")
        rows = [json.loads(x) for x in p.stdout.splitlines()]
        check([r["user_id"] for r in rows] == users, "one line per target, in order")
        check("events skipped: item not in the bundle" in p.stderr, "unknown items counted")
        check("1 targets have a user with no events" in p.stderr, "the user without events")
        exp = expected(model, vectors, ids, lines, targets, users, 20)
        compare_exact(rows, exp, ids, "exact fp32")
        ties = [r for r in rows if r["target"] == ids[TIE_B]]
        check(len(ties) >= 5, f"only {len(ties)} tie targets")
        p1 = run_score(score_bin, fp32, events_path, targets_path, "--threads", "1")
        check(p1.stdout == p.stdout, "1 and 3 threads differ")
        p = run_score(score_bin, fp32, events_path, targets_path, "--all", "--k", "7")
        all_rows = [json.loads(x) for x in p.stdout.splitlines()]
        exp_all = expected(model, vectors, ids, lines, targets, users, 0)
        compare_exact(all_rows,
                      {u: (a, b, c[:7], d, e) for u, (a, b, c, d, e) in exp_all.items()},
                      ids, "exact fp32 --all")

        # int8: close to fp32
        p = run_score(score_bin, int8, events_path, targets_path)
        rows8 = [json.loads(x) for x in p.stdout.splitlines()]
        if not rows or len(rows8) != len(rows):
            check(False, "no exact fp32 or int8 results to compare")
            return 1
        diffs = np.array([abs(a["rank"] - b["rank"]) / b["n_candidates"]
                          for a, b in zip(rows8, rows)])
        overlap = np.mean([len(set(a["top"]) & set(b["top"])) / K for a, b in zip(rows8, rows)])
        print(f"int8 vs fp32: rank difference / candidates median {np.median(diffs):.4f}, "
              f"max {diffs.max():.4f}; top-{K} overlap {overlap:.3f}")
        check(np.median(diffs) <= 0.01 and diffs.max() <= 0.1 and overlap >= 0.7,
              "int8 ranks far from fp32")

        # ANN: recall of the exact top-10
        p = run_score(score_bin, fp32, events_path, targets_path, "--ann", "--ef", "64")
        ann = [json.loads(x) for x in p.stdout.splitlines()]
        recall = np.mean([len(set(a["top"]) & set(b["top"])) / len(b["top"])
                          for a, b in zip(ann, rows)])
        print(f"--ann top-{K} recall of the exact top-{K}: {recall:.3f}")
        check(recall >= 0.9, f"ANN recall {recall:.3f}")
        for a, b in zip(ann, rows):
            check(a["n_candidates"] == b["n_candidates"], "ann n_candidates")
            check(a["rank"] == (a["top"].index(a["target"]) if a["target"] in a["top"] else -1),
                  f"ann rank of {a['user_id']}")
            check(not (set(a["top"]) & exp[a["user_id"]][4]), "ann returned a history item")

        # input errors
        bad_targets = work / "bad-targets.jsonl"
        bad_targets.write_text('{"user_id": "u1", "target": "item-1"}\n'
                               '{"user_id": "u2", "target": "nope"}\n')
        p = run_score(score_bin, fp32, events_path, bad_targets, expect_rc=2)
        check("bad-targets.jsonl:2: unknown target item" in p.stderr, f"unknown target: {p.stderr}")
        bad_events = work / "bad-events.jsonl"
        bad_events.write_text(json.dumps(lines[0]) + "\n{not json\n")
        p = run_score(score_bin, fp32, bad_events, targets_path, expect_rc=2)
        check("bad-events.jsonl:2: not a JSON object" in p.stderr, f"bad line: {p.stderr}")
        bad_events.write_text(json.dumps(dict(lines[0], event_type="like")) + "\n")
        p = run_score(score_bin, fp32, bad_events, targets_path, expect_rc=2)
        check("bad-events.jsonl:1: event_type" in p.stderr, f"bad type: {p.stderr}")
        for args in (["--k", "0"], ["--precision", "fp16"], ["--threads", "x"], ["--bogus", "1"]):
            p = run_score(score_bin, fp32, events_path, targets_path, *args, expect_rc=2)
        p = run_score(score_bin, int8, events_path, targets_path, "--precision", "fp32",
                      expect_rc=2)
        check("interest" in p.stderr, f"fp32 precision on an int8 file: {p.stderr}")

        # broken bundles
        for name, d, text in broken_bundles(fp32, work, index_tool):
            p = subprocess.run([test_bin, "bad", str(d), text], capture_output=True, text=True)
            check(p.returncode == 0, f"{name}: {p.stdout.strip()} {p.stderr.strip()}")
            s = run_score(score_bin, d, events_path, targets_path, expect_rc=2)
            check(text in s.stderr, f"{name}: driftrec-score said {s.stderr.strip()!r}")
            print(f"{name}: {s.stderr.strip()}")
        try:
            bundle_mod.read_bundle(work / "bad_checksum")
            check(False, "read_bundle took a bad checksum")
        except bundle_mod.BundleError:
            pass

        text_bundle(work, common, test_bin)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("PASS" if failures == 0 else f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
