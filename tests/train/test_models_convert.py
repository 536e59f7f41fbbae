"""The Hugging Face BERT converter on checkpoints written here in each real-world layout.

transformers and the safetensors package are not needed: the checkpoints are written from
the formats' specifications (safetensors_io) and with torch.save, with random weights.
"""

import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch

from ._paths import REPO_ROOT  # noqa: F401  (puts models/train on sys.path)

from driftrec_train import bert as B
from driftrec_train import convert_hf, export, safetensors_io

HF_CONFIG = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 120,
             "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 64, "max_position_embeddings": 40, "type_vocab_size": 2,
             "layer_norm_eps": 1e-12, "hidden_act": "gelu",
             "position_embedding_type": "absolute"}


def reference():
    cfg = B.BertConfig.from_dict(dict(HF_CONFIG, pooling="cls"))
    model = B.TextEncoder(cfg).eval()
    B.random_init(model, torch.Generator().manual_seed(7), std=0.1)
    return model


def hf_state(model, prefix=True, old_ln=False):
    out = {}
    for k, v in model.state_dict().items():
        n = k if prefix else k[len("bert."):]
        if old_ln and "LayerNorm" in n:
            n = n.replace(".weight", ".gamma").replace(".bias", ".beta")
        out[n] = v.clone()
    return out


def write_dir(d: Path, lower=None):
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(HF_CONFIG))
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] +
                                           [f"w{i}" for i in range(116)]) + "\n")
    if lower is not None:
        (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower}))


class Convert(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        self.model = reference()
        self.ids = torch.randint(4, 120, (3, 12), generator=torch.Generator().manual_seed(1))
        self.lens = torch.tensor([12, 5, 1])
        with torch.no_grad():
            self.want = self.model(self.ids, self.lens)

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, hf_dir, atol, lower=True):
        out = convert_hf.convert(hf_dir, self.root / (hf_dir.name + "-out"), dtype="fp32")
        manifest = json.loads((out / "manifest.json").read_text())
        self.assertEqual(manifest["vocab"]["do_lower_case"], lower)
        got_model = export.load_bert(out)
        with torch.no_grad():
            got = got_model(self.ids, self.lens)
        np.testing.assert_allclose(got.numpy(), self.want.numpy(), atol=atol, rtol=0)
        return out

    def test_safetensors_with_prefix_f32(self):
        d = self.root / "st-prefix"
        write_dir(d)
        state = hf_state(self.model, prefix=True)
        state["bert.embeddings.position_ids"] = torch.arange(40)[None]
        state["bert.pooler.dense.weight"] = torch.zeros(32, 32)
        safetensors_io.write(d / "model.safetensors", state, metadata={"format": "pt"})
        self.check(d, 1e-6)

    def test_bin_without_prefix_old_layernorm_names(self):
        d = self.root / "bin-old"
        write_dir(d, lower=False)
        state = hf_state(self.model, prefix=False, old_ln=True)
        state["embeddings.position_ids"] = torch.arange(40)[None]
        torch.save(state, d / "pytorch_model.bin")
        self.check(d, 1e-6, lower=False)

    def test_f16_bf16_and_tied_word_embeddings(self):
        d = self.root / "st-half"
        write_dir(d)
        state = {k: v.numpy() for k, v in hf_state(self.model, prefix=True).items()}
        word = state.pop("bert.embeddings.word_embeddings.weight")
        state["cls.predictions.decoder.weight"] = word  # the tied copy is the one kept
        state["cls.predictions.bias"] = np.zeros(120, np.float32)
        halves = {k: (v.astype(np.float16) if "attention" in k else v) for k, v in state.items()}
        bf16 = [k for k in state if "intermediate" in k or "decoder" in k]
        safetensors_io.write(d / "model.safetensors", halves, bf16=bf16)
        raw = safetensors_io.read(d / "model.safetensors")
        self.assertEqual(raw["bert.encoder.layer.0.attention.self.query.weight"].dtype,
                         np.float16)
        self.check(d, 0.05)

    def test_bf16_bits_round_to_nearest_even(self):
        x = np.array([1.0, 1.00390625, 1.01171875, -2.5, np.inf], np.float32)
        bits = safetensors_io.bf16_bits(x)
        back = (bits.astype(np.uint32) << 16).view(np.float32)
        np.testing.assert_array_equal(back, [1.0, 1.0, 1.015625, -2.5, np.inf])

    def test_int8_export_and_errors(self):
        d = self.root / "int8"
        write_dir(d)
        safetensors_io.write(d / "model.safetensors", hf_state(self.model))
        out = convert_hf.convert(d, self.root / "int8-out", dtype="int8")
        manifest, _ = export.read_model(out)
        self.assertEqual(manifest["int8"]["scheme"], "s8act-per-row/s7w-per-col/v1")
        with torch.no_grad():
            got = export.load_bert(out)(self.ids, self.lens)
        cos = torch.nn.functional.cosine_similarity(got, self.want)
        self.assertGreater(float(cos.min()), 0.99)
        # A missing tensor, a wrong shape and an unsupported activation are named.
        state = hf_state(self.model)
        del state["bert.encoder.layer.1.output.dense.bias"]
        safetensors_io.write(d / "model.safetensors", state)
        with self.assertRaisesRegex(convert_hf.ConvertError, "layer.1.output.dense.bias"):
            convert_hf.convert(d, self.root / "bad")
        state = hf_state(self.model)
        state["bert.encoder.layer.0.output.dense.weight"] = torch.zeros(32, 60)
        safetensors_io.write(d / "model.safetensors", state)
        with self.assertRaisesRegex(convert_hf.ConvertError, "shape 32x60, expected 32x64"):
            convert_hf.convert(d, self.root / "bad")
        (d / "config.json").write_text(json.dumps(dict(HF_CONFIG, hidden_act="gelu_new")))
        with self.assertRaisesRegex(convert_hf.ConvertError, "gelu_new"):
            convert_hf.convert(d, self.root / "bad")


if __name__ == "__main__":
    unittest.main()
