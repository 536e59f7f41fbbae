"""safetensors_io, the int8 weight quantiser and the model-file writer."""

import json
import struct
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch

from ._paths import REPO_ROOT  # noqa: F401

from driftrec_train import bert as B
from driftrec_train import export, interest as I, safetensors_io as S


class Safetensors(unittest.TestCase):
    def test_round_trip_and_layout(self):
        t = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array([-1, 2], np.int8),
             "c": np.array([7], np.int64), "s": np.float32(3.5).reshape(())}
        buf = S.encode(t, metadata={"k": "v"})
        (n,) = struct.unpack("<Q", buf[:8])
        self.assertEqual(n % 8, 0)
        header = json.loads(buf[8:8 + n])
        self.assertEqual(header["__metadata__"], {"k": "v"})
        self.assertEqual(header["a"]["data_offsets"], [0, 2])  # name order, no gaps
        back, meta = S.decode(buf)
        for k in t:
            np.testing.assert_array_equal(back[k], t[k])
            self.assertEqual(back[k].dtype, np.asarray(t[k]).dtype)

    def test_rejects_overlap_and_truncation(self):
        h = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}).encode()
        buf = struct.pack("<Q", len(h)) + h + bytes(8)
        with self.assertRaisesRegex(S.SafetensorsError, "gap or overlap"):
            S.decode(buf)
        good = S.encode({"a": np.zeros(4, np.float32)})
        with self.assertRaisesRegex(S.SafetensorsError, "cover"):
            S.decode(good[:-1])
        with self.assertRaisesRegex(S.SafetensorsError, "runs past"):
            S.decode(good[:12])


class Quantise(unittest.TestCase):
    def test_scheme(self):
        w = np.array([[0.0, 0.5, -1.0, 0.25], [0, 0, 0, 0], [63, -31.5, 0.5, 1.5]], np.float32)
        q, s = export.quantize_weight(w)
        np.testing.assert_array_equal(s, np.float32([1 / 63, 0, 1]))
        # 0.5 / float32(1/63) is 31.499998 in float32, as in C: 31
        np.testing.assert_array_equal(q[0], [0, 31, -63, 16])
        np.testing.assert_array_equal(q[1], [0, 0, 0, 0])
        np.testing.assert_array_equal(q[2], [63, -32, 0, 2])  # half to even: -31.5, 0.5, 1.5
        self.assertLessEqual(np.abs(q).max(), 63)


class Export(unittest.TestCase):
    def test_bert_files(self):
        cfg = B.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=32,
                           max_position_embeddings=8, projection_dim=8)
        m = B.TextEncoder(cfg)
        with tempfile.TemporaryDirectory() as tmp:
            out = export.export_bert(m, Path(tmp) / "m", dtype="int8", name="t")
            manifest, tensors = export.read_model(out)
            self.assertEqual(manifest["architecture"], "bert-encoder")
            self.assertEqual(manifest["weights"]["dtype"], "int8")
            raw = S.read(out / "model.safetensors")
            self.assertEqual(raw["projection.weight"].dtype, np.int8)
            self.assertEqual(raw["projection.weight_scale"].shape, (8,))
            self.assertEqual(raw["bert.embeddings.word_embeddings.weight"].dtype, np.float32)
            self.assertNotIn("bert.embeddings.position_ids", raw)

    def test_interest_reference_rules(self):
        self.assertEqual(I.gap_bucket(None, 5, 16), 0)
        self.assertEqual([I.gap_bucket(0, g, 16) for g in (0, 59, 60, 119, 120, 240, 10**9)],
                         [1, 1, 2, 2, 3, 4, 15])
        raw, present = I.numeric_raw(None, 0.0, float("nan"))
        self.assertEqual(present.tolist(), [False, True, False, True])
        self.assertEqual(raw[3], 0.0)
        # The decayed long-term mean weights an event one half-life old by 1/2.
        m = I.InterestModel(I.InterestConfig(item_dim=2, hidden_size=4, num_layers=1,
                                             half_life_s=100.0))
        v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        long = m.long_term(v, torch.tensor([0.0, 100.0], dtype=torch.float64))
        np.testing.assert_allclose(long.numpy(), [1 / 3, 2 / 3], rtol=1e-6)


if __name__ == "__main__":
    unittest.main()
