"""The BERT text encoder as torch modules, with Hugging Face BERT's parameter names.

This is the reference the C encoder (models/bert.c) is tested against, and what export.py
writes to model files. The layer math is BERT's: embeddings (word + position + token type)
and LayerNorm; per layer, multi-head self-attention with a padding mask, residual +
LayerNorm, a GELU (exact, erf) feed-forward, residual + LayerNorm. On top: [CLS] or mean
pooling over the valid tokens, an optional linear projection to the item-vector size, and
optional L2 normalisation. Parameter names are ``bert.embeddings.word_embeddings.weight``,
``bert.encoder.layer.3.output.dense.weight``, ... and ``projection.weight`` / ``.bias``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pooling: str = "mean"          # "cls" or "mean" (over the valid tokens)
    projection_dim: int = 0        # 0: no projection; the output is hidden_size wide
    normalize: bool = False        # L2-normalise the output vector

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def output_dim(self) -> int:
        return self.projection_dim or self.hidden_size

    def check(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', not {self.pooling!r}")


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(pos)[None]
             + self.token_type_embeddings.weight[0])
        return self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.n_heads = c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        d = h // self.n_heads

        def heads(y):
            return y.view(b, t, self.n_heads, d).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        ctx = torch.softmax(scores, dim=-1) @ v
        return ctx.transpose(1, 2).reshape(b, t, h)


class BertSelfOutput(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, ctx, x):
        return self.LayerNorm(self.dense(ctx) + x)


class BertAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x))  # exact (erf) GELU, as BERT


class BertOutput(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, y, x):
        return self.LayerNorm(self.dense(y) + x)


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class BertModel(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)

    def forward(self, input_ids, mask):
        return self.encoder(self.embeddings(input_ids), mask)


class TextEncoder(nn.Module):
    """BERT + pooling + optional projection: text ids -> one vector per sequence."""

    def __init__(self, c: BertConfig):
        super().__init__()
        c.check()
        self.config = c
        self.bert = BertModel(c)
        self.projection = nn.Linear(c.hidden_size, c.projection_dim) if c.projection_dim else None

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """input_ids: [B, T] (padding anywhere past each length); lengths: [B], >= 1."""
        t = input_ids.shape[1]
        mask = torch.arange(t)[None, :] < lengths[:, None]
        hidden = self.bert(input_ids, mask)
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            m = mask.to(hidden.dtype)[..., None]
            pooled = (hidden * m).sum(1) / lengths[:, None].to(hidden.dtype)
        if self.projection is not None:
            pooled = self.projection(pooled)
        if self.config.normalize:
            pooled = F.normalize(pooled, dim=-1)
        return pooled


def random_init(model: TextEncoder, generator: torch.Generator, std: float = 0.02) -> None:
    """Random weights in BERT's initialisation style, with non-trivial biases and LayerNorms
    so that tests exercise every parameter."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            elif name.endswith("bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(std * torch.randn(p.shape, generator=generator))


def linear_weight_names(c: BertConfig) -> list[str]:
    """The weights that are int8 in an int8 model file ([out][in], per-output-channel)."""
    names = []
    for i in range(c.num_hidden_layers):
        p = f"bert.encoder.layer.{i}."
        names += [p + "attention.self.query.weight", p + "attention.self.key.weight",
                  p + "attention.self.value.weight", p + "attention.output.dense.weight",
                  p + "intermediate.dense.weight", p + "output.dense.weight"]
    if c.projection_dim:
        names.append("projection.weight")
    return names
