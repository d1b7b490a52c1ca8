"""The seed workload: the `Attention` module of the Slapo tutorial, compiled by flashlift.

    python examples/slapo_attention.py [--target cpu] [--dtype f32|f16]

The model is the tutorial's, with its two bugs fixed so that it runs in eager PyTorch
(see ../shared/FACTS.md): `torch.sqrt(d_k)` on an int (now `math.sqrt`) and the discarded
results of `output.permute(...)` / `output.view(...)` in SelfAttention.forward (now
assigned; `.reshape` since the permuted tensor is not contiguous). Its `F.dropout(x, 0.1)`
keeps the default training=True, as written: flashlift compiles for inference and removes it.
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled_dot_product(q, k, v):
    # (bs, head, seq, hs // head)
    d_k = q.shape[-1]
    attn_score = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)
    # (bs, head, seq, seq)
    attn_probs = F.softmax(attn_score, dim=-1)
    attn_probs = F.dropout(attn_probs, 0.1)
    # (bs, head, seq, hs // head)
    attn = torch.matmul(attn_probs, v)
    return attn


class SelfAttention(nn.Module):
    def __init__(self, hidden_size, n_heads):
        super().__init__()
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.n_heads = n_heads

    def permute_for_scores(self, x):
        # x: (batch_size, seq_len, hidden_size)
        new_shape = x.shape[:-1] + (self.n_heads, -1)
        x = x.view(new_shape)
        # output: (bs, head, seq, hs // head)
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states):
        # hidden_states: (batch_size, seq_len, hidden_size)
        q = self.permute_for_scores(self.q_proj(hidden_states))
        k = self.permute_for_scores(self.k_proj(hidden_states))
        v = self.permute_for_scores(self.v_proj(hidden_states))
        output = scaled_dot_product(q, k, v)
        # output: (bs, seq, head, hs // head)
        output = output.permute(0, 2, 1, 3)
        output = output.reshape(output.shape[0], output.shape[1], -1)
        return output


class Projection(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(0.1)
        self.layer_norm = nn.LayerNorm(hidden_size)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.layer_norm(hidden_states + input_tensor)
        return hidden_states


class Attention(nn.Module):
    def __init__(self, hidden_size, n_heads):
        super().__init__()
        self.self_attn = SelfAttention(hidden_size, n_heads)
        self.proj = Projection(hidden_size)

    def forward(self, hidden_states):
        self_output = self.self_attn(hidden_states)
        attention_output = self.proj(self_output, hidden_states)
        return attention_output


def main() -> int:
    import flashlift
    from flashlift.reference import reference

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=128)
    args = parser.parse_args()
    dtype = {"f32": torch.float32, "f16": torch.float16}[args.dtype]

    torch.manual_seed(0)
    model = Attention(hidden_size=args.hidden, n_heads=args.heads).to(dtype)
    x = torch.randn(args.batch, args.seq, args.hidden, dtype=dtype)
    compiled = flashlift.compile_model(model, (x,), target=args.target)
    print(compiled.report)
    out = compiled(x)
    ref = reference(model, x)
    err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    ok = err < tol and len(compiled.report.raised) == 1
    print(f"check against PyTorch ({args.dtype}, input {list(x.shape)}): relative error {err:.2e} "
          f"(tolerance {tol:g}) -> {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
