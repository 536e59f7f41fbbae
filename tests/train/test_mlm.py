"""MLM pre-training of the text encoder (driftrec_train.mlm) and the pretrain_text command,
on a tiny vocabulary and corpus (golden.write_vocab), one torch thread, a few seconds."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from ._paths import REPO_ROOT, TRAIN_DIR, dataset_available, skip_message

from driftrec_train import mlm  # noqa: E402  (before torch: sets OMP_WAIT_POLICY if it can)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from driftrec_train import bert as B  # noqa: E402
from driftrec_train import export, golden, tokenizer  # noqa: E402

SENTENCES = [
    "the red shoe fits well", "great phone case love it", "blue boot hiking warm",
    "cheap price quality battery screen", "water proof light heavy run walk",
    "the small boot fits great", "large blue phone case", "hiking shoe water proof",
    "love the price", "battery screen quality great", "warm light boot",
    "the cheap red case fits well",
]


def tiny_config(**kw) -> mlm.MlmConfig:
    base = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=64, max_len=16, batch_size=16, lr=5e-3, warmup_steps=5,
                minutes=0, max_steps=40, threads=1, log_every=5, eval_every=10,
                checkpoint_minutes=10)
    base.update(kw)
    return mlm.MlmConfig(**base)


def quiet(_msg):
    pass


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        self.vocab = self.root / "vocab.txt"
        golden.write_vocab(self.vocab, 120)
        self.texts = SENTENCES * 8
        self.threads = torch.get_num_threads()

    def tearDown(self):
        torch.set_num_threads(self.threads)
        self.tmp.cleanup()

    def log_lines(self, out):
        return [json.loads(line) for line in (Path(out) / mlm.LOG_NAME).read_text().splitlines()]


class Training(Base):
    LEARN = dict(hidden_size=64, intermediate_size=128, max_steps=150, lr=5e-3)

    def assert_learns(self, out):
        train = [r for r in self.log_lines(out) if "loss" in r]
        self.assertEqual([r["step"] for r in train], list(range(5, 151, 5)))
        last = train[-3:]   # windows of 5 steps: average three
        self.assertLess(np.mean([r["loss"] for r in last]), 0.6 * train[0]["loss"])
        self.assertGreater(np.mean([r["acc"] for r in last]), 0.25)
        self.assertLess(train[0]["acc"], 0.2)

    def test_loss_decreases(self):
        out = self.root / "run"
        enc = mlm.pretrain(self.texts, self.vocab, True, tiny_config(**self.LEARN), out,
                           progress=False, log=quiet)
        self.assert_learns(out)
        summary = json.loads((out / mlm.SUMMARY_NAME).read_text())
        self.assertEqual(summary["steps"], 150)
        self.assertEqual(summary["stopped"], "max_steps")
        self.assertEqual(enc.config.pooling, "mean")
        self.assertEqual(enc.config.max_position_embeddings, 16)
        self.assertEqual(enc.config.hidden_size, 64)
        self.assertFalse(enc.training)
        # the encoder keeps bert.py's names: the state dict is a plain TextEncoder's
        self.assertEqual(set(enc.state_dict()), set(B.TextEncoder(enc.config).state_dict()))

    def test_full_softmax_also_learns(self):
        out = self.root / "full"
        mlm.pretrain(self.texts, self.vocab, True,
                     tiny_config(output_vocab="full", **self.LEARN), out,
                     progress=False, log=quiet)
        self.assert_learns(out)
        val = [r for r in self.log_lines(out) if "val_loss" in r]
        self.assertEqual(val[0]["step"], 0)
        self.assertAlmostEqual(val[0]["val_loss"], np.log(120), delta=0.3)  # untrained: uniform

    def test_resume_continues_from_checkpoint(self):
        whole = self.root / "whole"
        a = mlm.pretrain(self.texts, self.vocab, True, tiny_config(max_steps=30), whole,
                         progress=False, log=quiet)
        parts = self.root / "parts"
        messages = []
        mlm.pretrain(self.texts, self.vocab, True, tiny_config(max_steps=30, steps_per_run=12),
                     parts, progress=False, log=messages.append)
        ck = torch.load(parts / mlm.CKPT_NAME)
        self.assertEqual(ck["step"], 12)
        b = mlm.pretrain(self.texts, self.vocab, True, tiny_config(max_steps=30), parts,
                         progress=False, log=messages.append)
        self.assertTrue(any("resuming" in m and "at step 12 of 30" in m for m in messages))
        self.assertEqual(torch.load(parts / mlm.CKPT_NAME)["step"], 30)
        # the same steps, batches and masks as one uninterrupted run
        for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            torch.testing.assert_close(va, vb, rtol=0, atol=1e-6, msg=k)
        steps = [r["step"] for r in self.log_lines(parts) if "loss" in r]
        self.assertEqual(steps, [5, 10, 15, 20, 25, 30])
        # log lines past the checkpoint (a run killed before its checkpoint) are dropped
        with open(parts / mlm.LOG_NAME, "a") as f:
            f.write(json.dumps({"step": 35, "loss": 1.0}) + "\n")
        mlm.pretrain(self.texts, self.vocab, True, tiny_config(max_steps=30), parts,
                     progress=False, log=quiet)
        self.assertEqual(max(r["step"] for r in self.log_lines(parts)), 30)
        # finished: a rerun does no step; another config is refused
        c = mlm.pretrain(self.texts, self.vocab, True, tiny_config(max_steps=30), parts,
                         progress=False, log=quiet)
        torch.testing.assert_close(c.state_dict(), b.state_dict(), rtol=0, atol=0)
        with self.assertRaisesRegex(ValueError, "another config"):
            mlm.pretrain(self.texts, self.vocab, True, tiny_config(max_steps=30, lr=1e-3),
                         parts, progress=False, log=quiet)
        with self.assertRaisesRegex(ValueError, "texts or vocabulary"):
            mlm.pretrain(self.texts[:-1], self.vocab, True, tiny_config(max_steps=30),
                         parts, progress=False, log=quiet)

    def test_time_cap_stops_cleanly(self):
        out = self.root / "cap"
        mlm.pretrain(self.texts, self.vocab, True, tiny_config(max_steps=0, minutes=0.03),
                     out, progress=False, log=quiet)
        summary = json.loads((out / mlm.SUMMARY_NAME).read_text())
        self.assertIn(summary["stopped"], ("time cap", "max_steps"))
        self.assertLess(summary["run_seconds"], 0.03 * 60 + 2)
        self.assertGreater(summary["steps"], 0)
        self.assertEqual(torch.load(out / mlm.CKPT_NAME)["step"], summary["steps"])


class Masking(unittest.TestCase):
    def test_bert_rule_statistics(self):
        sp = mlm.SpecialIds(cls=2, sep=3, mask=4, pad=0, special=(0, 1, 2, 3, 4))
        vocab_size, b, t = 1000, 400, 64
        g = torch.Generator().manual_seed(0)
        lengths = torch.randint(3, t + 1, (b,), generator=g)
        ids = torch.randint(5, vocab_size, (b, t), generator=g)
        ids[:, 0] = 2
        ids[torch.arange(b), lengths - 1] = 3
        ids[torch.arange(t)[None, :] >= lengths[:, None]] = 0
        ids[::7, 1] = 1  # some [UNK]s
        cfg = mlm.MlmConfig()
        inputs, pos, labels = mlm.mask_batch(ids, lengths, cfg, sp, vocab_size, g)
        special = torch.isin(ids, torch.tensor(sp.special))
        valid = torch.arange(t)[None, :] < lengths[:, None]
        candidates = valid & ~special
        self.assertFalse((pos & ~candidates).any())          # specials, padding: never
        torch.testing.assert_close(labels, ids[pos])
        torch.testing.assert_close(inputs[~pos], ids[~pos])  # the rest untouched
        n = int(candidates.sum())
        chosen = int(pos.sum())
        self.assertAlmostEqual(chosen / n, 0.15, delta=4 * (0.15 * 0.85 / n) ** 0.5)
        got = inputs[pos]
        masked = float((got == sp.mask).float().mean())
        kept = float((got == labels).float().mean())
        replaced = got[(got != sp.mask) & (got != labels)]
        tol = 4 * (0.1 * 0.9 / chosen) ** 0.5
        self.assertAlmostEqual(masked, 0.8, delta=4 * (0.16 / chosen) ** 0.5)
        self.assertAlmostEqual(kept, 0.1, delta=tol + 1 / vocab_size)
        self.assertAlmostEqual(replaced.numel() / chosen, 0.1, delta=tol)
        self.assertFalse(torch.isin(replaced, torch.tensor(sp.special)).any())
        self.assertTrue(((replaced >= 5) & (replaced < vocab_size)).all())

    def test_random_replacements_cover_the_non_special_ids(self):
        sp = mlm.SpecialIds(cls=2, sep=3, mask=4, pad=0, special=(0, 1, 2, 3, 4))
        cfg = mlm.MlmConfig(mask_prob=0.999, mask_token_frac=0.0, random_token_frac=1.0)
        ids = torch.full((50, 40), 7)
        inputs, pos, _ = mlm.mask_batch(ids, torch.full((50,), 40), cfg, sp, 12,
                                        torch.Generator().manual_seed(1))
        self.assertEqual(sorted(set(inputs[pos].tolist())), [5, 6, 7, 8, 9, 10, 11])

    def test_sequences_split_long_texts(self):
        with tempfile.TemporaryDirectory() as tmp:
            v = Path(tmp) / "vocab.txt"
            golden.write_vocab(v, 60)
            tok = tokenizer.Tokenizer.from_file(v, True)
        text = " ".join(["red"] * 30)
        seqs = mlm.text_to_sequences(tok, text, 12)     # 30 pieces, room 10: 3 windows
        self.assertEqual([len(s) for s in seqs], [12, 12, 12])
        self.assertTrue(all(s[0] == tok.cls_id and s[-1] == tok.sep_id for s in seqs))
        seqs = mlm.text_to_sequences(tok, " ".join(["red"] * 11), 12)  # 11: 6 + 5
        self.assertEqual([len(s) - 2 for s in seqs], [6, 5])
        self.assertEqual(mlm.text_to_sequences(tok, " \t ", 12), [])

    def test_validation_split_keeps_copies_together(self):
        texts = [f"t{i % 50}" for i in range(500)]
        train, val = mlm.split_texts(texts, 0.02, seed=3)
        self.assertEqual(len(set(val)), 1)
        self.assertEqual(len(val), 10)
        self.assertFalse(set(train) & set(val))
        self.assertEqual(mlm.split_texts(texts, 0.02, seed=3), (train, val))


class Encoding(Base):
    def encoder(self):
        enc = B.TextEncoder(tiny_config().bert_config(120))
        B.random_init(enc, torch.Generator().manual_seed(5), std=0.1)
        return enc.eval()

    def test_shape_determinism_and_empty_text(self):
        enc = self.encoder()
        texts = ["the red shoe", "", "great phone case love it " * 5, "   ", "blue"]
        a = mlm.encode_texts(enc, texts, self.vocab, True, 16)
        b = mlm.encode_texts(enc, texts, self.vocab, True, 16, batch_size=2)
        self.assertEqual(a.shape, (5, 32))
        self.assertEqual(a.dtype, np.float32)
        np.testing.assert_array_equal(a, mlm.encode_texts(enc, texts, self.vocab, True, 16))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(a[1], 0)
        np.testing.assert_array_equal(a[3], 0)
        self.assertTrue((np.abs(a[[0, 2, 4]]).sum(1) > 0).all())
        # the same as the encoder on the tokenizer's ids, truncated to max_len
        tok = tokenizer.Tokenizer.from_file(self.vocab, True)
        ids = tok.encode(texts[2], 16)
        self.assertEqual(len(ids), 16)
        with torch.no_grad():
            ref = enc(torch.tensor([ids]), torch.tensor([16]))[0].numpy()
        np.testing.assert_allclose(a[2], ref, rtol=0, atol=1e-6)

    def test_export_round_trip(self):
        enc = mlm.pretrain(self.texts, self.vocab, True, tiny_config(max_steps=20),
                           self.root / "run", progress=False, log=quiet)
        texts = SENTENCES + ["hiking"]
        ref = mlm.encode_texts(enc, texts, self.vocab, True, 16)
        for dtype in ("fp32", "int8"):
            d = export.export_bert(enc, self.root / dtype, dtype=dtype, vocab=self.vocab,
                                   do_lower_case=True)
            manifest = json.loads((d / "manifest.json").read_text())
            self.assertEqual(manifest["config"]["pooling"], "mean")
            self.assertTrue(manifest["vocab"]["do_lower_case"])
            back = mlm.encode_texts(export.load_bert(d), texts, self.vocab, True, 16)
            if dtype == "fp32":
                np.testing.assert_allclose(back, ref, rtol=0, atol=1e-6)
            else:
                cos = (back * ref).sum(1) / np.linalg.norm(back, axis=1) / np.linalg.norm(ref, axis=1)
                self.assertGreater(cos.min(), 0.99)
                self.assertGreater(np.abs(back - ref).max(), 0)  # it was quantised


class OutputVocab(Base):
    def test_corpus_classes_and_unigram_baseline(self):
        tok = tokenizer.Tokenizer.from_file(self.vocab, True)
        sp = mlm.special_ids(tok)
        seqs = [tok.encode("red red blue"), tok.encode("shoe")]
        ov = mlm.output_vocab("corpus", seqs, 120, sp, tok.unk_id)
        red, blue, shoe, boot = (tok.vocab[w] for w in ("red", "blue", "shoe", "boot"))
        self.assertEqual(ov.candidates.tolist(), sorted([red, blue, shoe]) + [tok.unk_id])
        self.assertEqual(ov.classes(torch.tensor([boot])).item(), 3)    # unseen: [UNK]
        logp = mlm.unigram_log_probs(seqs, 120, sp, ov)
        p = [float(np.exp(logp[ov.class_of[i]])) for i in (red, blue, shoe, boot)]
        np.testing.assert_allclose(p, [3 / 8, 2 / 8, 2 / 8, 1 / 8], rtol=1e-12)
        self.assertAlmostEqual(float(np.exp(logp).sum()), 1.0, places=12)
        full = mlm.unigram_log_probs(seqs, 120, sp)
        self.assertAlmostEqual(float(np.exp(full[red])), 3 / (4 + 115), places=12)
        self.assertEqual(float(np.exp(full[tok.cls_id])), 0.0)

    def test_model_logits_over_candidates(self):
        enc = B.TextEncoder(tiny_config().bert_config(120))
        model = mlm.MlmModel(enc)
        mlm.init_weights(model, torch.Generator().manual_seed(0))
        self.assertIs(model.cls.predictions.decoder.weight,
                      enc.bert.embeddings.word_embeddings.weight)
        ids = torch.tensor([[2, 10, 11, 12, 3]])
        pos = torch.tensor([[False, True, False, True, False]])
        lens = torch.tensor([5])
        full = model(ids, lens, pos)
        cand = torch.tensor([12, 40, 10])
        sub = model(ids, lens, pos, cand)
        self.assertEqual(tuple(full.shape), (2, 120))
        torch.testing.assert_close(sub, full[:, cand])


class Corpus(unittest.TestCase):
    def test_absent_data_is_skipped_with_a_message(self):
        with tempfile.TemporaryDirectory() as tmp:
            old = os.environ.get("DR_DATA_DIR")
            os.environ["DR_DATA_DIR"] = tmp
            try:
                messages = []
                self.assertEqual(mlm.corpus_texts(log=messages.append), [])
            finally:
                if old is None:
                    del os.environ["DR_DATA_DIR"]
                else:
                    os.environ["DR_DATA_DIR"] = old
        self.assertEqual(len(messages), len(mlm.ENGLISH_TEXT_DATASETS))
        self.assertTrue(all("skipped" in m and "not found" in m for m in messages))

    @unittest.skipUnless(dataset_available("movielens-100k"), skip_message("movielens-100k"))
    def test_movielens_titles_and_genres(self):
        texts = mlm.corpus_texts(["movielens-100k"], log=quiet)
        self.assertIn("Toy Story (1995) Animation|Children's|Comedy", texts)
        self.assertEqual(len(texts), len(set(texts)))


class Command(Base):
    def test_pretrain_text_end_to_end(self):
        texts = self.root / "texts.txt"
        texts.write_text("\n".join(self.texts) + "\n")
        out = self.root / "out"
        cfg = json.dumps(dict(tiny_config(max_steps=15).to_dict(), minutes=1))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(
            [sys.executable, str(TRAIN_DIR / "pretrain_text.py"), "--out", str(out),
             "--vocab", str(self.vocab), "--texts", str(texts), "--config", cfg,
             "--no-progress", "--check", "6"],
            capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        report = (out / "report.md").read_text()
        self.assertIn("| train |", report)
        self.assertIn("unigram baseline", report)
        enc = export.load_bert(out / "text")
        self.assertEqual(enc.config.hidden_size, 32)
        self.assertTrue((out / "text" / "vocab.txt").exists())
        if (REPO_ROOT / "build" / "models" / "driftrec-encode").exists():
            self.assertIn("c_int8_cosine_min", report)
        else:
            self.assertIn("Skipped", report)

    def test_hf_checkpoint_import(self):
        from .test_models_convert import hf_state, reference, write_dir
        from driftrec_train import safetensors_io

        hf = self.root / "hf"
        write_dir(hf, lower=False)
        model = reference()
        safetensors_io.write(hf / "model.safetensors",
                             {k: v.numpy() for k, v in hf_state(model).items()})
        texts = self.root / "texts.txt"
        texts.write_text("w1 w2 w3\nw5 w10 w20 w30 w31\n")
        out = self.root / "out"
        proc = subprocess.run(
            [sys.executable, str(TRAIN_DIR / "pretrain_text.py"), "--out", str(out),
             "--hf-checkpoint", str(hf), "--texts", str(texts), "--check", "2"],
            capture_output=True, text=True, timeout=120,
            env=dict(os.environ, OMP_NUM_THREADS="1"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("Imported checkpoint", (out / "report.md").read_text())
        manifest = json.loads((out / "text" / "manifest.json").read_text())
        self.assertFalse(manifest["vocab"]["do_lower_case"])
        self.assertEqual(manifest["config"]["pooling"], "mean")
        self.assertFalse((out / mlm.CKPT_NAME).exists())


if __name__ == "__main__":
    unittest.main()
