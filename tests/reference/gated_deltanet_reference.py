#!/usr/bin/env python3
"""gated_deltanet_reference.py — an independent numpy model of the Gated DeltaNet core
of Qwen3-Next as Hugging Face transformers' torch fallback computes it
(../shared/HYBRIDS.md C.3-C.6: `torch_chunk_gated_delta_rule` and
`torch_recurrent_gated_delta_rule`, the causal conv and the gated RMSNorm of
`Qwen3NextGatedDeltaNet`), written from the spec, in float32 as the fallback runs.
It writes the small fixture tests/test_gated_deltanet_fixture.c compares the C CPU ops
with:

    gated_deltanet_reference.py OUT.txt
    gated_deltanet_reference.py --check FIXTURE.txt   (exit 1 unless FIXTURE is what it writes)

Two cases on one set of weights (2 key heads, 4 value heads of 16, conv width 4):
`fresh`, 80 tokens from zero states (one full chunk and a short one, through the
chunked form), and `continued`, 20 more tokens from a given conv state and recurrent
state (a cached prefix), through the chunked form too; the script checks each against
the per-token recurrence before writing (exit 1 if they differ).

Format: one array per line, `name count v0 v1 ...` (float32 printed with 9 significant
digits); the first line is `shape n_key_heads n_value_heads head_dim width`.
"""
import sys

import numpy as np

HK, HV, D, WIDTH, CHUNK = 2, 4, 16, 4, 64
KEY_DIM, VALUE_DIM = HK * D, HV * D
CONV_DIM = 2 * KEY_DIM + VALUE_DIM
EPS = np.float32(1e-6)
F32 = np.float32


def silu(x):
    return x / (F32(1) + np.exp(-x))


def softplus(x):
    """torch.nn.functional.softplus with beta 1, threshold 20."""
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))).astype(F32)


def causal_conv(mixed, weight, state):
    """Depthwise conv1d, padding width-1 and the first T outputs kept (HF prefill), or over
    cat(state, x) when a state is given (the cached path); then SiLU. Returns the output
    and the last width-1 inputs (the new state). mixed [T, C], weight [C, W], state [W-1, C]."""
    history = np.zeros((WIDTH - 1, mixed.shape[1]), F32) if state is None else state
    padded = np.concatenate([history, mixed], axis=0)
    out = np.zeros_like(mixed)
    for t in range(mixed.shape[0]):
        window = padded[t:t + WIDTH]  # oldest first: weight[:, 0] meets the token 3 back
        out[t] = (window.T * weight).sum(axis=1)
    return silu(out).astype(F32), padded[-(WIDTH - 1):].copy()


def l2norm(x):
    return (x / np.sqrt((x * x).sum(axis=-1, keepdims=True) + EPS)).astype(F32)


def heads_for_values(x):
    """[T, HK, D] -> [T, HV, D], value head j reading key head j // (HV/HK) (repeat_interleave)."""
    return np.repeat(x, HV // HK, axis=1)


def recurrent(q, k, v, g, beta, state):
    """Per token: S <- exp(g) S; u = S^T k; S += k (beta (v - u))^T; o = S^T q.
    q, k already normalised and q scaled; [T, HV, D]; state [HV, D, D]."""
    S = state.copy()
    out = np.zeros_like(v)
    for t in range(q.shape[0]):
        for h in range(HV):
            S[h] *= np.exp(g[t, h])
            u = S[h].T @ k[t, h]
            S[h] += np.outer(k[t, h], beta[t, h] * (v[t, h] - u))
            out[t, h] = S[h].T @ q[t, h]
    return out, S


def chunked(q, k, v, g, beta, state):
    """The torch fallback's chunked form: pad T to a multiple of 64 (g and beta with
    zeros), cumulative log-decay per chunk, the strictly lower system
    A = (beta k) k^T * exp(gamma_i - gamma_j), its unit lower-triangular inverse by rows,
    then the sequential scan over chunks with V' = U - W S."""
    T = q.shape[0]
    pad = (-T) % CHUNK
    padf = lambda x: np.concatenate([x, np.zeros((pad,) + x.shape[1:], F32)], axis=0)
    q, k, v, g, beta = (padf(x) for x in (q, k, v, g, beta))
    S = state.copy()
    out = np.zeros_like(v)
    lower = np.tril(np.ones((CHUNK, CHUNK), bool), -1)
    causal = np.tril(np.ones((CHUNK, CHUNK), bool), 0)
    for h in range(HV):
        for c0 in range(0, T + pad, CHUNK):
            rows = slice(c0, c0 + CHUNK)
            qc, kc, vc = q[rows, h], k[rows, h], v[rows, h]
            gamma = np.cumsum(g[rows, h]).astype(F32)
            bc = beta[rows, h][:, None]
            decay = np.exp(np.where(causal, gamma[:, None] - gamma[None, :], -np.inf)).astype(F32)
            A = np.where(lower, ((bc * kc) @ kc.T) * decay, 0).astype(F32)
            # T = (I + A)^{-1}, row by row: row i of the inverse is e_i - A_i. (rows above).
            inv = np.eye(CHUNK, dtype=F32)
            for i in range(1, CHUNK):
                inv[i, :i] = -A[i, :i] @ inv[:i, :i]
            U = inv @ (bc * vc)
            W = inv @ (bc * np.exp(gamma)[:, None] * kc)
            v_new = U - W @ S[h]
            scores = np.where(causal, (qc @ kc.T) * decay, 0).astype(F32)
            out[rows, h] = (qc * np.exp(gamma)[:, None]) @ S[h] + scores @ v_new
            S[h] = S[h] * np.exp(gamma[-1]) + (kc * np.exp(gamma[-1] - gamma)[:, None]).T @ v_new
    return out[:T], S


def gated_norm(o, z, weight):
    """Per head: o / sqrt(mean o^2 + eps) * w * silu(z) (plain w, norm before the gate)."""
    inv = 1 / np.sqrt((o * o).mean(axis=-1, keepdims=True) + EPS)
    return (o * inv * weight * silu(z)).astype(F32)


def layer_core(p, mixed, a, b, z, conv_state, state, form):
    conv_out, new_conv_state = causal_conv(mixed, p["conv_weight"], conv_state)
    T = mixed.shape[0]
    q = conv_out[:, :KEY_DIM].reshape(T, HK, D)
    k = conv_out[:, KEY_DIM:2 * KEY_DIM].reshape(T, HK, D)
    v = conv_out[:, 2 * KEY_DIM:].reshape(T, HV, D)
    g = (-np.exp(p["a_log"]) * softplus(a + p["dt_bias"])).astype(F32)
    beta = (1 / (1 + np.exp(-b))).astype(F32)
    q = heads_for_values(l2norm(q)) * F32(D ** -0.5)
    k = heads_for_values(l2norm(k))
    o, new_state = form(q.astype(F32), k, v, g, beta, state)
    y = gated_norm(o, z.reshape(T, HV, D), p["norm_weight"]).reshape(T, VALUE_DIM)
    return y, new_state, new_conv_state


def fixture_difference(committed, fresh):
    """Why two fixture texts differ, or None when they agree: every line's words the same,
    but numbers that may differ by the float32 rounding another BLAS build or CPU gives a
    matrix product (1e-6 of the line's largest magnitude): the outputs are sums, and
    OpenBLAS picks its kernels, and so its summation order, by CPU."""
    a, b = committed.splitlines(), fresh.splitlines()
    if len(a) != len(b):
        return f"{len(a)} lines, {len(b)} expected"
    for i, (x, y) in enumerate(zip(a, b)):
        wx, wy = x.split(), y.split()
        if len(wx) != len(wy) or wx[:2] != wy[:2]:
            return f"line {i + 1} starts '{' '.join(wx[:2])}', '{' '.join(wy[:2])}' expected"
        if wx[0] in ("shape", "case"):
            if wx != wy:
                return f"line {i + 1} is '{x}', '{y}' expected"
            continue
        vx, vy = np.array(wx[2:], dtype=np.float64), np.array(wy[2:], dtype=np.float64)
        worst = np.max(np.abs(vx - vy)) if vx.size else 0.0
        if not worst <= 1e-6 * max(np.max(np.abs(vy)) if vy.size else 0.0, 1e-30):
            return f"line {i + 1} ({wx[0]}) differs by {worst:.3e}"
    return None


def main(argv):
    check = len(argv) == 3 and argv[1] == "--check"
    if len(argv) != 2 and not check:
        print(__doc__, file=sys.stderr)
        return 2
    rng = np.random.default_rng(14)
    u = lambda shape, bound: rng.uniform(-bound, bound, shape).astype(F32)
    p = {"conv_weight": u((CONV_DIM, WIDTH), 0.5), "a_log": u(HV, 1.0), "dt_bias": u(HV, 1.0),
         "norm_weight": u(D, 1.0) + F32(1)}
    cases = []
    for name, T, with_state in (("fresh", 80, False), ("continued", 20, True)):
        inputs = {"mixed": u((T, CONV_DIM), 2.0), "a": u((T, HV), 3.0), "b": u((T, HV), 3.0),
                  "z": u((T, VALUE_DIM), 2.0)}
        conv_state = u((WIDTH - 1, CONV_DIM), 2.0) if with_state else None
        state = u((HV, D, D), 0.5) if with_state else np.zeros((HV, D, D), F32)
        args = (p, inputs["mixed"], inputs["a"], inputs["b"], inputs["z"], conv_state, state)
        y, S, conv_next = layer_core(*args, chunked)
        y_rec, S_rec, _ = layer_core(*args, recurrent)
        err = max(np.linalg.norm(y - y_rec) / np.linalg.norm(y_rec), np.linalg.norm(S - S_rec) / np.linalg.norm(S_rec))
        if not err < 1e-5:
            print(f"{name}: the chunked form is {err:.3e} from the recurrence", file=sys.stderr)
            return 1
        arrays = dict(inputs)
        arrays["conv_state_in"] = conv_state if with_state else np.zeros((WIDTH - 1, CONV_DIM), F32)
        arrays["state_in"] = state
        arrays.update(out=y, state_out=S, conv_state_out=conv_next)
        cases.append((name, with_state, arrays))
    line = lambda key, arr: f"{key} {arr.size} " + " ".join(f"{x:.9g}" for x in arr.ravel()) + "\n"
    text = f"shape {HK} {HV} {D} {WIDTH}\n"
    text += "".join(line(key, p[key]) for key in ("conv_weight", "a_log", "dt_bias", "norm_weight"))
    for name, with_state, arrays in cases:
        text += f"case {name} {arrays['mixed'].shape[0]} {int(with_state)}\n"
        text += "".join(line(key, arr) for key, arr in arrays.items())
    if check:
        try:
            with open(argv[2]) as f:
                committed = f.read()
        except OSError as err:
            print(f"cannot read {argv[2]}: {err}", file=sys.stderr)
            return 2
        why = fixture_difference(committed, text)
        if why:
            print(f"{argv[2]} is not what this script writes ({why}): regenerate it", file=sys.stderr)
            return 1
        print(f"{argv[2]} is current")
        return 0
    with open(argv[1], "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
